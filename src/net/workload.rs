//! What a simulation executes: messages and compute tasks, with dependencies.
//!
//! This is the seam between the studies (AFD decode, serving) and the network levels: a study
//! builds a [`Workload`] (send n bytes from GPU a to GPU b; run a kernel on GPU g for t; each
//! after the tasks it depends on), and every level executes the same workload.
//!
//! Invariants: a task may only depend on tasks added before it, so a workload is acyclic by
//! construction; every GPU has one compute stream that runs one task at a time, in the order
//! tasks become ready (ties in the order they were added).

use super::MessageSpec;
use crate::engine::{Bandwidth, Dur, PS_PER_S, Time};
use crate::topology::{NodeId, Topology};
use std::sync::Arc;

/// How far a level has come with a workload, handed to a progress callback now and then.
/// A callback must not affect the run: it only reads this.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events the level has processed.
    pub events: u64,
    /// Simulated time reached.
    pub now: Time,
    /// Message bytes delivered (packet level) or drained (flow level) so far, and the
    /// workload's total: a fraction done that a progress bar can show with an ETA.
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A GPU whose messages cannot all leave it (or all reach it) before [`Time::HORIZON`], even
/// at the full rate of every link it has: a run of them would only stop at the horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct PastHorizonBound {
    pub gpu: NodeId,
    /// `"send"` or `"receive"`.
    pub direction: &'static str,
    pub bytes: u64,
    /// The sum of the GPU's link rates that way, bit/s.
    pub rate_bps: u64,
    /// The bytes over that rate: a lower bound on any level's makespan.
    pub seconds: f64,
}

/// The first GPU (lowest id, sending before receiving) whose payload bytes over the total
/// rate of its links exceed [`Time::HORIZON`]: a lower bound on every level's makespan, so
/// a scenario it finds can be refused before it runs (a packet-level run would otherwise
/// simulate up to ~10^8 packets to reach the horizon). O(messages + links).
pub fn past_horizon(topo: &Topology, messages: &[MessageSpec]) -> Option<PastHorizonBound> {
    let gpus = topo.gpus() as usize;
    let (mut out, mut inn) = (vec![0u128; gpus], vec![0u128; gpus]);
    for m in messages {
        out[m.src.0 as usize] += m.bytes as u128;
        inn[m.dst.0 as usize] += m.bytes as u128;
    }
    let (mut out_bps, mut in_bps) = (vec![0u128; gpus], vec![0u128; gpus]);
    for l in topo.links() {
        if (l.from.0 as usize) < gpus {
            out_bps[l.from.0 as usize] += l.rate.bps() as u128;
        }
        if (l.to.0 as usize) < gpus {
            in_bps[l.to.0 as usize] += l.rate.bps() as u128;
        }
    }
    let horizon = Time::HORIZON.as_ps() as u128;
    (0..gpus).find_map(|g| {
        [("send", out[g], out_bps[g]), ("receive", inn[g], in_bps[g])]
            .into_iter()
            .find(|&(_, bytes, bps)| bps > 0 && bytes * 8 * PS_PER_S as u128 / bps >= horizon)
            .map(|(direction, bytes, bps)| PastHorizonBound {
                gpu: NodeId(g as u32),
                direction,
                bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
                rate_bps: u64::try_from(bps).unwrap_or(u64::MAX),
                seconds: bytes as f64 * 8.0 / bps as f64,
            })
    })
}

/// A task of a workload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskRef {
    Message(u32),
    Compute(u32),
}

/// A kernel on a GPU's compute stream, or a fixed delay beside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ComputeSpec {
    pub gpu: NodeId,
    pub duration: Dur,
    /// Earliest start (it also waits for its dependencies and its stream).
    pub start: Time,
    /// Whether it holds the GPU's compute stream (one such task at a time). A delay that
    /// does not ([`Workload::delay`]: a communication kernel's launch, barrier or flag
    /// polling) starts as soon as it is ready and runs beside whatever else runs.
    pub stream: bool,
}

/// What each task of one kind waits for, all lists end to end: task `i`'s list ends at
/// `end[i]` and starts where task `i - 1`'s ends. 4 bytes per task with an empty list (a
/// traffic scenario's million independent messages), not a `Vec` each (24).
#[derive(Clone, Debug, Default, Hash)]
struct Deps {
    end: Vec<u32>,
    on: Vec<TaskRef>,
}

impl Deps {
    /// `n` tasks that wait for nothing.
    fn none(n: usize) -> Deps {
        Deps {
            end: vec![0; n],
            on: Vec::new(),
        }
    }

    fn push(&mut self, after: &[TaskRef]) {
        self.on.extend_from_slice(after);
        self.end.push(self.on.len() as u32);
    }

    fn get(&self, i: usize) -> &[TaskRef] {
        let start = if i == 0 { 0 } else { self.end[i - 1] as usize };
        &self.on[start..self.end[i] as usize]
    }
}

/// Messages and compute tasks; `after[t]` lists what task `t` waits for. Messages may share
/// a rate limiter: together they move at most its rate of payload (a communication kernel's
/// SM-bounded copy rate, or a transport's per-GPU rate; see `src/comm/`).
#[derive(Clone, Debug, Default, Hash)]
pub struct Workload {
    /// Shared, not copied, with the scenario that lists them where they are its
    /// `[[traffic]]` alone ([`Workload::from_shared`]): a million messages take 25 MB.
    pub messages: Arc<Vec<MessageSpec>>,
    pub computes: Vec<ComputeSpec>,
    message_after: Deps,
    compute_after: Deps,
    /// Limiter rates, and per message the limiter it shares (`None`: only the fabric
    /// limits it). Shorter than `messages` when the last messages have none.
    limiters: Vec<Bandwidth>,
    message_limiter: Vec<Option<u32>>,
    /// SMs a communication kernel takes from its GPU's compute stream while it runs.
    holds: Vec<SmHold>,
}

/// A share of a GPU's SMs held from the start of one delay to the finish of another (both
/// off the stream, on that GPU): a compute kernel running meanwhile gets the rest, so it
/// progresses at `1 - share` of its speed (see [`Tracker`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SmHold {
    pub gpu: NodeId,
    /// Parts per million of the GPU's SMs, below 1e6.
    pub share_ppm: u32,
    /// The delay whose start takes the SMs, and the one whose finish gives them back.
    pub from: u32,
    pub to: u32,
}

/// The largest share of a GPU's SMs a hold may take: a kernel alongside always keeps some.
pub const MAX_HOLD_PPM: u32 = 999_000;

impl Workload {
    /// Independent messages, each starting at its own time.
    pub fn from_messages(messages: Vec<MessageSpec>) -> Workload {
        Self::from_shared(Arc::new(messages))
    }

    /// [`Workload::from_messages`] on messages kept elsewhere too.
    pub fn from_shared(messages: Arc<Vec<MessageSpec>>) -> Workload {
        let n = messages.len();
        Workload {
            messages,
            message_after: Deps::none(n),
            ..Workload::default()
        }
    }

    /// Adds a message that starts once every task in `after` has completed (and not before
    /// `spec.start`). Panics if `after` names a task not yet added: that is a bug in the
    /// code building the workload, which would otherwise make a cycle possible.
    pub fn message(&mut self, spec: MessageSpec, after: &[TaskRef]) -> TaskRef {
        self.check(after);
        Arc::make_mut(&mut self.messages).push(spec);
        self.message_after.push(after);
        TaskRef::Message(self.messages.len() as u32 - 1)
    }

    /// Adds a compute task on `gpu` of `duration`, after the tasks in `after`.
    pub fn compute(&mut self, gpu: NodeId, duration: Dur, after: &[TaskRef]) -> TaskRef {
        self.push_compute(gpu, duration, after, true)
    }

    /// Adds a fixed delay attributed to `gpu`, after the tasks in `after`, that does not
    /// hold its compute stream (see [`ComputeSpec::stream`]).
    pub fn delay(&mut self, gpu: NodeId, duration: Dur, after: &[TaskRef]) -> TaskRef {
        self.push_compute(gpu, duration, after, false)
    }

    fn push_compute(
        &mut self,
        gpu: NodeId,
        duration: Dur,
        after: &[TaskRef],
        stream: bool,
    ) -> TaskRef {
        self.check(after);
        self.computes.push(ComputeSpec {
            gpu,
            duration,
            start: Time::ZERO,
            stream,
        });
        self.compute_after.push(after);
        TaskRef::Compute(self.computes.len() as u32 - 1)
    }

    /// A new rate limiter of `rate` (payload bytes), shared by the messages given it with
    /// [`Workload::limit`].
    pub fn limiter(&mut self, rate: Bandwidth) -> u32 {
        self.limiters.push(rate);
        self.limiters.len() as u32 - 1
    }

    /// Message `m` shares limiter `limiter`. Panics on a message or limiter not yet added.
    pub fn limit(&mut self, m: u32, limiter: u32) {
        assert!((m as usize) < self.messages.len() && (limiter as usize) < self.limiters.len());
        if self.message_limiter.len() <= m as usize {
            self.message_limiter.resize(m as usize + 1, None);
        }
        self.message_limiter[m as usize] = Some(limiter);
    }

    /// Every limiter's rate, by id.
    pub fn limiters(&self) -> &[Bandwidth] {
        &self.limiters
    }

    /// The limiter message `m` shares, if any.
    pub fn limiter_of(&self, m: u32) -> Option<u32> {
        self.message_limiter.get(m as usize).copied().flatten()
    }

    /// Delay `from` takes `share` of its GPU's SMs when it starts, and delay `to` (on the
    /// same GPU, `from` itself or one after it) gives them back when it finishes. Panics
    /// on tasks that are not such delays, or a share outside (0, 1]: bugs in the builder. A
    /// share above [`MAX_HOLD_PPM`] holds that much.
    pub fn hold_sms(&mut self, share: f64, from: TaskRef, to: TaskRef) {
        let (TaskRef::Compute(a), TaskRef::Compute(b)) = (from, to) else {
            panic!("SMs are held between delays");
        };
        let (ca, cb) = (&self.computes[a as usize], &self.computes[b as usize]);
        assert!(!ca.stream && !cb.stream && ca.gpu == cb.gpu && a <= b);
        assert!(share > 0.0 && share <= 1.0, "a share of the SMs: {share}");
        let share_ppm = ((share * 1e6).round() as u32).clamp(1, MAX_HOLD_PPM);
        self.holds.push(SmHold {
            gpu: ca.gpu,
            share_ppm,
            from: a,
            to: b,
        });
    }

    /// Every SM hold, in the order added.
    pub fn holds(&self) -> &[SmHold] {
        &self.holds
    }

    fn check(&self, after: &[TaskRef]) {
        for t in after {
            let ok = match *t {
                TaskRef::Message(i) => (i as usize) < self.messages.len(),
                TaskRef::Compute(i) => (i as usize) < self.computes.len(),
            };
            assert!(ok, "a task may only depend on tasks added before it: {t:?}");
        }
    }

    pub fn after(&self, t: TaskRef) -> &[TaskRef] {
        match t {
            TaskRef::Message(i) => self.message_after.get(i as usize),
            TaskRef::Compute(i) => self.compute_after.get(i as usize),
        }
    }

    /// Every task, messages first.
    pub fn tasks(&self) -> impl Iterator<Item = TaskRef> + '_ {
        (0..self.messages.len() as u32)
            .map(TaskRef::Message)
            .chain((0..self.computes.len() as u32).map(TaskRef::Compute))
    }

    pub fn has_dependencies(&self) -> bool {
        !self.computes.is_empty() || !self.message_after.on.is_empty()
    }

    /// Task `t`'s position in [`Workload::tasks`] order (messages first).
    pub fn task_index(&self, t: TaskRef) -> usize {
        match t {
            TaskRef::Message(m) => m as usize,
            TaskRef::Compute(c) => self.messages.len() + c as usize,
        }
    }

    /// The task at position `i` of [`Workload::tasks`] (the inverse of
    /// [`Workload::task_index`]).
    pub fn task_at(&self, i: usize) -> TaskRef {
        match i.checked_sub(self.messages.len()) {
            None => TaskRef::Message(i as u32),
            Some(c) => TaskRef::Compute(c as u32),
        }
    }

    /// Whether task `t` lies at or past the first `(messages, compute tasks)`.
    pub fn past(t: TaskRef, (messages, computes): (u32, u32)) -> bool {
        match t {
            TaskRef::Message(m) => m >= messages,
            TaskRef::Compute(c) => c >= computes,
        }
    }

    /// Whether this workload is `long`'s first tasks: the same messages and compute tasks,
    /// each waiting for the same tasks, the same limiters and SM holds (`long`'s holds that
    /// begin among them end among them), while every task of `long` past them waits for
    /// some task (so none of them can start before one of these completes). Returns how
    /// many messages and compute tasks that is.
    pub fn prefix_of(&self, long: &Workload) -> Option<(u32, u32)> {
        let (nm, nc) = (self.messages.len(), self.computes.len());
        let same_tasks = long.messages.get(..nm) == Some(&self.messages[..])
            && long.computes.get(..nc) == Some(&self.computes[..])
            && self.tasks().all(|t| self.after(t) == long.after(t));
        let same_limits = long.limiters.get(..self.limiters.len()) == Some(&self.limiters[..])
            && (0..nm as u32).all(|m| self.limiter_of(m) == long.limiter_of(m));
        let mut early = long.holds.iter().filter(|h| (h.from as usize) < nc);
        let same_holds = early.clone().eq(self.holds.iter()) && early.all(|h| (h.to as usize) < nc);
        let cut = (nm as u32, nc as u32);
        let rest_waits = long
            .tasks()
            .all(|t| !Workload::past(t, cut) || !long.after(t).is_empty());
        (same_tasks && same_limits && same_holds && rest_waits).then_some(cut)
    }
}

/// Execution state of a workload that every level drives the same way: which tasks still
/// wait for prerequisites, and each GPU's compute stream (one task at a time, in ready
/// order). A level tells it when tasks complete and runs what it says is ready.
///
/// It also times compute tasks: a delay takes its duration; a stream kernel its duration at
/// full speed, slowed while communication kernels hold some of its GPU's SMs
/// ([`Workload::hold_sms`]): it progresses at (1 - held share) of its speed, in integer
/// picoseconds of work. A level schedules each finish the tracker gives with its version and
/// ignores a finish whose version is no longer current ([`Tracker::is_current`]): a hold
/// that starts or ends while a kernel runs moves the kernel's finish. Without holds every
/// task finishes at its start plus its duration.
#[derive(Clone)]
pub struct Tracker<'a> {
    workload: &'a Workload,
    /// Unfinished prerequisites per task, in `Workload::tasks` order (messages first).
    waiting: Vec<u32>,
    /// The tasks waiting for each task (CSR, tasks in `Workload::tasks` order): task `i`'s
    /// dependents are `dependents[dep_off[i]..dep_off[i + 1]]`, in the order they were added.
    /// `waiting` and `dep_off` are empty when no task waits for another.
    dep_off: Vec<u32>,
    dependents: Vec<TaskRef>,
    completed: Vec<bool>,
    busy: Vec<bool>,
    queued: Vec<std::collections::VecDeque<u32>>,
    /// Holds that start with each delay's start and end with each delay's finish.
    opens: std::collections::HashMap<u32, Vec<u32>>,
    closes: std::collections::HashMap<u32, Vec<u32>>,
    /// Per GPU: the SM share held now (ppm) and the stream kernel running on it.
    held_ppm: Vec<u32>,
    running: Vec<Option<Running>>,
    /// Per compute task, the version of its scheduled finish.
    version: Vec<u32>,
}

/// A stream kernel in progress: work left at full speed (ps) as of `since`.
#[derive(Copy, Clone, Debug)]
struct Running {
    c: u32,
    left_ps: u64,
    since: Time,
}

/// A compute task's finish to schedule: task, time, version.
pub type Finish = (u32, Time, u32);

impl<'a> Tracker<'a> {
    /// `gpus`: how many GPU streams there are (every compute task's GPU is below it).
    pub fn new(workload: &'a Workload, gpus: u32) -> Tracker<'a> {
        let index = |t: TaskRef| workload.task_index(t);
        let tasks = workload.messages.len() + workload.computes.len();
        // Independent tasks (a traffic scenario's million messages) need no counts.
        let none_wait = workload.tasks().all(|t| workload.after(t).is_empty());
        let mut dep_off = vec![0u32; if none_wait { 0 } else { tasks + 1 }];
        let mut waiting = Vec::with_capacity(if none_wait { 0 } else { tasks });
        for t in workload.tasks().filter(|_| !none_wait) {
            let after = workload.after(t);
            for &a in after {
                dep_off[index(a) + 1] += 1;
            }
            waiting.push(after.len() as u32);
        }
        for i in 0..dep_off.len().saturating_sub(1) {
            dep_off[i + 1] += dep_off[i];
        }
        let mut fill = dep_off.clone();
        let mut dependents =
            vec![TaskRef::Message(0); dep_off.last().copied().unwrap_or(0) as usize];
        for t in workload.tasks().filter(|_| !none_wait) {
            for &a in workload.after(t) {
                let slot = &mut fill[index(a)];
                dependents[*slot as usize] = t;
                *slot += 1;
            }
        }
        let mut opens: std::collections::HashMap<u32, Vec<u32>> = Default::default();
        let mut closes: std::collections::HashMap<u32, Vec<u32>> = Default::default();
        for (i, h) in workload.holds.iter().enumerate() {
            opens.entry(h.from).or_default().push(i as u32);
            closes.entry(h.to).or_default().push(i as u32);
        }
        Tracker {
            workload,
            waiting,
            dep_off,
            dependents,
            completed: vec![false; tasks],
            busy: vec![false; gpus as usize],
            queued: (0..gpus).map(|_| Default::default()).collect(),
            opens,
            closes,
            held_ppm: vec![0; gpus as usize],
            running: vec![None; gpus as usize],
            version: vec![0; workload.computes.len()],
        }
    }

    /// Compute task `c` starts at `now`: the finishes to schedule (its own, and those of a
    /// stream kernel that SMs this delay takes slow down).
    pub fn started(&mut self, c: u32, now: Time) -> Vec<Finish> {
        let spec = &self.workload.computes[c as usize];
        let g = spec.gpu.0 as usize;
        if spec.stream {
            let r = Running {
                c,
                left_ps: spec.duration.as_ps(),
                since: now,
            };
            self.running[g] = Some(r);
            return vec![self.finish_of(g, r)];
        }
        let mut out = vec![(c, now + spec.duration, self.version[c as usize])];
        if let Some(hs) = self.opens.get(&c) {
            let add: u32 = hs
                .iter()
                .map(|&h| self.workload.holds[h as usize].share_ppm)
                .sum();
            out.extend(self.reshare(g, now, self.held_ppm[g] + add));
        }
        out
    }

    /// Compute task `c` finishes at `now`: the finishes to reschedule (a stream kernel on its
    /// GPU gets back the SMs this delay held).
    pub fn finished(&mut self, c: u32, now: Time) -> Vec<Finish> {
        let spec = &self.workload.computes[c as usize];
        let g = spec.gpu.0 as usize;
        if spec.stream {
            self.running[g] = None;
            return Vec::new();
        }
        match self.closes.get(&c) {
            Some(hs) => {
                let sub: u32 = hs
                    .iter()
                    .map(|&h| self.workload.holds[h as usize].share_ppm)
                    .sum();
                self.reshare(g, now, self.held_ppm[g] - sub)
            }
            None => Vec::new(),
        }
    }

    /// Whether `version` is the current finish of compute task `c`.
    pub fn is_current(&self, c: u32, version: u32) -> bool {
        self.version[c as usize] == version
    }

    /// GPU `g`'s held share becomes `ppm` at `now`: the running kernel's progress so far is
    /// booked at the old speed and its finish moves (a new version).
    fn reshare(&mut self, g: usize, now: Time, ppm: u32) -> Vec<Finish> {
        let old = self.speed_ppm(g);
        self.held_ppm[g] = ppm;
        let Some(mut r) = self.running[g] else {
            return Vec::new();
        };
        if self.speed_ppm(g) == old {
            return Vec::new();
        }
        let done = (now.since(r.since).as_ps() as u128 * old as u128 / 1_000_000) as u64;
        r.left_ps = r.left_ps.saturating_sub(done);
        r.since = now;
        self.running[g] = Some(r);
        self.version[r.c as usize] += 1;
        vec![self.finish_of(g, r)]
    }

    /// The speed of GPU `g`'s stream, ppm of full speed: what the holds leave, at least
    /// 1 - [`MAX_HOLD_PPM`].
    fn speed_ppm(&self, g: usize) -> u32 {
        1_000_000 - self.held_ppm[g].min(MAX_HOLD_PPM)
    }

    fn finish_of(&self, g: usize, r: Running) -> Finish {
        let s = self.speed_ppm(g) as u128;
        let ps = (r.left_ps as u128 * 1_000_000).div_ceil(s) as u64;
        (r.c, r.since + Dur::from_ps(ps), self.version[r.c as usize])
    }

    /// Tasks without prerequisites, in `Workload::tasks` order.
    pub fn initially_ready(&self) -> Vec<TaskRef> {
        self.workload
            .tasks()
            .filter(|&t| self.workload.after(t).is_empty())
            .collect()
    }

    /// When a task whose prerequisites are done at `now` may start: not before its own
    /// start time.
    pub fn ready_at(&self, t: TaskRef, now: Time) -> Time {
        now.max(match t {
            TaskRef::Message(m) => self.workload.messages[m as usize].start,
            TaskRef::Compute(c) => self.workload.computes[c as usize].start,
        })
    }

    /// Task `t` completed: the tasks that waited only for it, in the order they were added.
    /// A task completes once.
    pub fn complete(&mut self, t: TaskRef) -> Vec<TaskRef> {
        let w = self.workload;
        let i = w.task_index(t);
        assert!(!self.completed[i], "{t:?} completed twice");
        self.completed[i] = true;
        if self.dep_off.is_empty() {
            return Vec::new();
        }
        let deps = &self.dependents[self.dep_off[i] as usize..self.dep_off[i + 1] as usize];
        let mut ready = Vec::new();
        for &d in deps {
            let left = &mut self.waiting[w.task_index(d)];
            *left -= 1;
            if *left == 0 {
                ready.push(d);
            }
        }
        ready
    }

    /// Compute task `c` is ready: returns it if its GPU's stream is idle (start it now),
    /// else queues it. A delay off the stream starts at once.
    pub fn compute_ready(&mut self, c: u32) -> Option<u32> {
        let spec = &self.workload.computes[c as usize];
        if !spec.stream {
            return Some(c);
        }
        let g = spec.gpu.0 as usize;
        if self.busy[g] {
            self.queued[g].push_back(c);
            None
        } else {
            self.busy[g] = true;
            Some(c)
        }
    }

    /// Compute task `c` finished: the next task its GPU's stream starts now, if any.
    pub fn compute_done(&mut self, c: u32) -> Option<u32> {
        let spec = &self.workload.computes[c as usize];
        if !spec.stream {
            return None;
        }
        let g = spec.gpu.0 as usize;
        let next = self.queued[g].pop_front();
        self.busy[g] = next.is_some();
        next
    }

    /// Whether every stream is idle with nothing queued.
    pub fn streams_idle(&self) -> bool {
        !self.busy.iter().any(|&b| b) && self.queued.iter().all(|q| q.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "only depend on tasks added before")]
    fn forward_dependencies_are_refused() {
        let mut w = Workload::default();
        w.compute(NodeId(0), Dur::from_ns(1), &[TaskRef::Compute(3)]);
    }

    #[test]
    fn tasks_and_their_dependencies() {
        let mut w = Workload::default();
        let c = w.compute(NodeId(0), Dur::from_ns(5), &[]);
        let m = w.message(
            MessageSpec {
                src: NodeId(0),
                dst: NodeId(1),
                bytes: 10,
                start: Time::ZERO,
            },
            &[c],
        );
        assert_eq!(w.after(m), &[c]);
        assert_eq!(w.tasks().count(), 2);
        assert!(w.has_dependencies());
    }
}
