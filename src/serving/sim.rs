//! The request-level simulation: arrivals, continuous batching, chunked prefill, KV-cache
//! transfers, decode iterations.
//!
//! Two layouts:
//! - **Aggregated**: every GPU of the pool holds sequences. Each iteration runs, on every
//!   GPU at once (expert parallelism couples them: one all-to-all per layer), the GPU's
//!   decoding sequences plus up to `chunk_tokens` prompt tokens (Sarathi-style chunked
//!   prefill, oldest request first). A request is admitted to prefill once a batch slot is
//!   free and its KV cache fits the GPU ([`Admission`]): its whole cache (input + output
//!   tokens), so it never has to be preempted later; or (vLLM-style) its prompt, the cache
//!   then growing a token per iteration, the newest sequences preempted and recomputed
//!   (prefilled again over prompt + tokens made) when the GPU's sequences cannot all grow.
//! - **Disaggregated** (P/D, with AFD or expert-parallel decode): the prefill pool iterates
//!   over prompt chunks; a finished prompt's KV cache (every input token's) goes over the
//!   fabric, as a flow of the online flow level, to the decode GPU with the most free KV
//!   cache that has room for it (the whole request, or its prompt) and a batch slot, first
//!   come first served; a sequence preempted on a decode GPU is prefilled again on the
//!   prefill pool and its KV cache transferred again. The decode pool iterates over all
//!   its sequences at once; a sequence joins at the first iteration after its KV cache
//!   arrived. Unless
//!   [`SimOptions::kv_shares_fabric`] is off, the KV transfers get only what the pools'
//!   running iterations leave of each link: each pool's iteration traffic
//!   ([`StepCost::link_bytes`]), spread evenly over the iteration, is the online flow
//!   level's background from the iteration's start to its end (first order: the transfers
//!   do not slow the iterations).
//!
//! Iteration times come from a [`StepCost`] (the fabric simulations of `cost.rs`, or a
//! closed form in tests), asked for as `n` GPUs each as busy as the busiest one (the most
//! sequences and the most prompt tokens on any GPU), with `n` = all the iteration's tokens
//! over the busiest GPU's, rounded up: attention takes the busiest GPU's time, expert work
//! and traffic scale with the tokens of all. Context: the mean over the decoding sequences;
//! prefix: the token-weighted mean of the prompt chunks.
//!
//! Tokens: the prefill produces a request's first token; each decode iteration one more.
//! TTFT = arrival to the first token at the decode side (end of prefill, plus the KV
//! transfer under P/D); TPOT = (finish - first token) / (output - 1).
//!
//! Invariant: time never goes back; every request finishes and makes each of its tokens
//! once (config guarantees that each fits an empty GPU; a lone sequence is never preempted
//! and every recompute makes a token); a GPU never holds more KV cache than it has;
//! requests in the system = arrived - finished at every event. The same requests and
//! costs give the same results (ties: flows before pool events, then insertion order).

use std::collections::VecDeque;

use super::traffic::Request;
use crate::compute::QueryError;
use crate::engine::{Dur, EventQueue, Time};
use crate::flow::online::OnlineFlows;
use crate::net::{MessageSpec, NetParams, NetRun};
use crate::topology::{Fabric, NodeId};

/// The time of one iteration of a pool, for its busiest GPU.
pub trait StepCost {
    /// A decode iteration: `gpus` GPUs with `batch` sequences at `ctx` cached tokens each.
    fn decode(&mut self, gpus: u32, batch: u32, ctx: u64) -> Result<Dur, QueryError>;
    /// A prefill iteration of the prefill pool: `gpus` GPUs with `tokens` prompt tokens
    /// after `prefix`.
    fn prefill(&mut self, gpus: u32, tokens: u32, prefix: u64) -> Result<Dur, QueryError>;
    /// An aggregated iteration: both at once (either may be zero, not both).
    fn mixed(
        &mut self,
        gpus: u32,
        batch: u32,
        ctx: u64,
        tokens: u32,
        prefix: u64,
    ) -> Result<Dur, QueryError>;
    /// The wire bytes per link of the iteration the last call timed (the pool's own
    /// dispatch, combine or all-to-all), appended to `out` as (link, bytes), each link
    /// once. Default: none known (the KV transfers see an idle fabric).
    fn link_bytes(&mut self, _out: &mut Vec<(u32, f64)>) {}
}

/// Choices of the request-level simulation beyond the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// KV-cache transfers share each link with the pools' running iterations (they get the
    /// capacity the iterations' traffic leaves); off: each sees an idle fabric, timed as if
    /// alone.
    pub kv_shares_fabric: bool,
}

/// When a request may take KV cache on a GPU, and what happens when the cache runs out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Admission {
    /// A request is admitted once its whole KV cache (input + output tokens) fits: room
    /// for every token it will make is reserved up front, so nothing is ever preempted.
    #[default]
    Reserve,
    /// vLLM/SGLang: a request is admitted once its prompt fits with `watermark_tokens` to
    /// spare (no watermark on a GPU that holds nothing); a decoding sequence's cache grows
    /// by a token per iteration, and when a GPU's sequences cannot all grow, the most
    /// recently admitted are preempted (cache freed, recomputed on re-admission).
    Grow { watermark_tokens: u64 },
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            kv_shares_fabric: true,
        }
    }
}

/// The online flow level's background sources: one per pool.
const BG_DECODE: usize = 0;
const BG_PREFILL: usize = 1;

/// How the deployment's GPUs serve requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Aggregated,
    Disaggregated { prefill_gpus: Vec<NodeId> },
}

/// What the simulation needs of a deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub mode: Mode,
    /// GPUs that hold sequences: the aggregated pool, or the decode pool's attention GPUs.
    pub decode_gpus: Vec<NodeId>,
    /// KV-cache tokens one decode GPU holds.
    pub kv_capacity_tokens: u64,
    /// Sequences one GPU decodes at most.
    pub max_batch: u32,
    /// Prompt tokens one GPU prefills per iteration at most.
    pub chunk_tokens: u32,
    /// KV-cache bytes per token, all layers: the size of a transfer is input x this.
    pub kv_bytes_per_token: u64,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestResult {
    pub id: u32,
    pub arrival: Time,
    pub input: u32,
    pub output: u32,
    pub cached: u32,
    /// When the first token reached the decode side.
    pub first_token: Time,
    pub finish: Time,
    /// The KV-cache transfer's start and finish (P/D only; after a preemption, the first
    /// transfer, the one before the first token).
    pub kv_transfer: Option<(Time, Time)>,
    /// The GPU (index in the aggregated or decode pool) that held its KV cache last, and
    /// when it was first admitted (to prefill; under P/D, its first transfer's start);
    /// every stay is in `stints`.
    pub decode_gpu: u32,
    pub admitted: Time,
    /// Times it was preempted (always 0 under [`Admission::Reserve`]).
    pub preemptions: u32,
    /// Its stays on decode GPUs, in order: one, plus one per preemption.
    pub stints: Vec<Stint>,
}

/// One stay of a request's KV cache on a GPU of the aggregated or decode pool: from
/// admission (aggregated: to prefill; P/D: the KV transfer's start) to its finish or
/// preemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stint {
    /// The GPU (index in the aggregated or decode pool).
    pub gpu: u32,
    pub admitted: Time,
    /// KV tokens taken at admission: input + output under [`Admission::Reserve`], the
    /// prompt (input, or input + tokens made so far after a preemption) under
    /// [`Admission::Grow`], where each decode iteration it joins adds one.
    pub reserved: u64,
    /// When it started decoding (its prompt's last chunk done, or its KV cache landed);
    /// `None` if preempted before.
    pub decoding: Option<Time>,
    /// Its finish or preemption: the cache is freed then.
    pub end: Time,
}

impl RequestResult {
    pub fn ttft(&self) -> Dur {
        self.first_token.since(self.arrival)
    }

    pub fn latency(&self) -> Dur {
        self.finish.since(self.arrival)
    }

    /// Time per output token after the first; `None` for a one-token output.
    pub fn tpot(&self) -> Option<Dur> {
        (self.output > 1).then(|| {
            Dur::from_ps(self.finish.since(self.first_token).as_ps() / (self.output as u64 - 1))
        })
    }
}

/// A pool's iterations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolStats {
    pub iterations: u64,
    pub busy: Dur,
    /// Sum over iterations of the busiest GPU's sequences (decode) or prompt tokens (prefill).
    pub load_sum: u64,
}

/// The result of a serving run.
pub struct ServingRun {
    /// In request order.
    pub requests: Vec<RequestResult>,
    /// The KV-cache transfers, as finished messages of the flow level.
    pub kv: NetRun,
    /// The aggregated pool's iterations, or the decode pool's.
    pub decode: PoolStats,
    /// Prompt tokens per iteration of the aggregated pool, or the prefill pool's iterations.
    pub prefill: PoolStats,
    /// Time-average of the requests in the system (arrived, not finished) from the first
    /// arrival to the last finish.
    pub mean_in_system: f64,
    /// The same average over the window in which requests arrive (first to last arrival):
    /// the steady-state measure Little's law compares with rate x mean latency.
    pub mean_in_system_arriving: f64,
    /// Output tokens made per second while requests arrive (the steady-state output rate,
    /// not diluted by the drain after the last arrival); 0 for a single request.
    pub window_tokens_per_s: f64,
    /// Prompt tokens prefilled (cached prefixes excluded).
    pub prefill_tokens: u64,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: u64,
    /// Preemptions, and the tokens prefilled again because of them (for each, the
    /// sequence's tokens at preemption, prompt and made, less its cached prefix; a
    /// sequence preempted while prefilling: its prompt tokens prefilled so far, less the
    /// cached prefix). Both 0 under [`Admission::Reserve`].
    pub preemptions: u64,
    pub recomputed_tokens: u64,
    pub end: Time,
    /// Start times of the aggregated or decode pool's iterations (tests replay the KV
    /// cache's growth from them).
    #[cfg(test)]
    pub decode_starts: Vec<Time>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Arrival(u32),
    /// The aggregated or decode pool's iteration ends.
    DecodeDone,
    /// The prefill pool's iteration ends.
    PrefillDone,
}

#[derive(Clone, Debug)]
struct Req {
    r: Request,
    /// The prompt to prefill: the input, or after a preemption the input and the tokens
    /// made so far (recompute).
    prompt: u32,
    /// Prompt tokens whose KV exists (the cached prefix, then prefilled chunks).
    prefilled: u32,
    generated: u32,
    /// The GPU (index in its pool) that prefills it, and the one that decodes it.
    pgpu: u32,
    dgpu: u32,
    first_token: Option<Time>,
    finish: Option<Time>,
    kv: Option<(Time, Time)>,
    admitted: Option<Time>,
    /// KV tokens it holds on its decode GPU now (0 when it holds none).
    held: u64,
    /// Admission order of its current stint (the newest is preempted first).
    admit_order: u64,
    preemptions: u32,
    stints: Vec<Stint>,
}

/// One GPU's queues. In the aggregated pool a GPU uses all of them; in P/D a prefill GPU
/// uses `waiting`/`prefilling`, a decode GPU `ready`/`running` and the reservations.
#[derive(Clone, Debug, Default)]
struct Gpu {
    waiting: VecDeque<u32>,
    prefilling: Vec<u32>,
    /// KV arrived, joins at the next iteration (P/D).
    ready: Vec<u32>,
    running: Vec<u32>,
    /// KV tokens held (reserved whole requests, or grown caches) and batch slots taken
    /// (P/D: from the transfer).
    kv_used: u64,
    slots: u32,
    /// Prompt tokens waiting or being prefilled (the arrival balancer's measure).
    backlog: u64,
}

/// A piece of prompt in an iteration.
#[derive(Clone, Copy, Debug)]
struct Piece {
    req: u32,
    tokens: u32,
}

struct Sim<'a, C: StepCost> {
    layout: &'a Layout,
    cost: &'a mut C,
    reqs: Vec<Req>,
    /// Aggregated: the pool; P/D: the decode pool.
    dgpus: Vec<Gpu>,
    /// P/D: the prefill pool.
    pgpus: Vec<Gpu>,
    queue: EventQueue<Event>,
    net: OnlineFlows<'a>,
    flow_req: Vec<u32>,
    /// P/D: prompts done, waiting for a decode GPU, oldest first.
    handoff: VecDeque<u32>,
    decode_busy: bool,
    prefill_busy: bool,
    /// The pieces of the running aggregated or prefill iteration.
    decode_pieces: Vec<Piece>,
    prefill_pieces: Vec<Piece>,
    decode: PoolStats,
    prefill: PoolStats,
    in_system: u64,
    area_ps: u128,
    last: Time,
    first_arrival: Option<Time>,
    /// The area and the window up to the last arrival.
    arriving: (u128, u64),
    last_arrival: Time,
    /// Output tokens made from the first to the last arrival.
    window_tokens: u64,
    /// P/D with `kv_shares_fabric`: iterations load the KV transfers' links.
    coupled: bool,
    /// A pool's iteration ended and its background is still declared (cleared unless the
    /// next iteration starts at the same time): decode, prefill.
    bg_stale: [bool; 2],
    link_bytes: Vec<(u32, f64)>,
    admission: Admission,
    admissions: u64,
    preemptions: u64,
    recomputed: u64,
    /// Prompt tokens of every chunk prefilled (checks the recompute bookkeeping).
    prefilled_total: u64,
    /// Requests finished so far (for progress reports).
    finished: u64,
    #[cfg(test)]
    decode_starts: Vec<Time>,
}

/// Serves `requests` (in arrival order) on `layout`, timing iterations with `cost` and the
/// KV-cache transfers with the flow level on `fabric` (default options).
pub fn simulate<C: StepCost>(
    fabric: &Fabric,
    params: &NetParams,
    layout: &Layout,
    requests: &[Request],
    cost: &mut C,
) -> Result<ServingRun, QueryError> {
    simulate_with(
        fabric,
        params,
        layout,
        requests,
        cost,
        SimOptions::default(),
    )
}

/// [`simulate`] with explicit options.
pub fn simulate_with<C: StepCost>(
    fabric: &Fabric,
    params: &NetParams,
    layout: &Layout,
    requests: &[Request],
    cost: &mut C,
    options: SimOptions,
) -> Result<ServingRun, QueryError> {
    simulate_admitting(
        fabric,
        params,
        layout,
        requests,
        cost,
        options,
        Admission::Reserve,
    )
}

/// [`simulate_with`] with an explicit admission policy.
pub fn simulate_admitting<C: StepCost>(
    fabric: &Fabric,
    params: &NetParams,
    layout: &Layout,
    requests: &[Request],
    cost: &mut C,
    options: SimOptions,
    admission: Admission,
) -> Result<ServingRun, QueryError> {
    simulate_observed(
        fabric,
        params,
        layout,
        requests,
        cost,
        options,
        admission,
        &mut |_| {},
    )
}

/// [`simulate_admitting`], calling `finished(n)` each time the requests finished so far
/// become `n` (for a progress display; it cannot change the run).
#[allow(clippy::too_many_arguments)]
pub fn simulate_observed<C: StepCost>(
    fabric: &Fabric,
    params: &NetParams,
    layout: &Layout,
    requests: &[Request],
    cost: &mut C,
    options: SimOptions,
    admission: Admission,
    finished: &mut dyn FnMut(u64),
) -> Result<ServingRun, QueryError> {
    let end = simulate_until(
        fabric, params, layout, requests, cost, options, admission, None, finished,
    )?;
    match end {
        RunEnd::Finished(run) => Ok(*run),
        RunEnd::Missed(_) => unreachable!("a run without limits is never stopped"),
    }
}

/// Latency limits a run is stopped at as soon as it certainly misses them: the TTFT or
/// TPOT percentile of the whole run can only be above its limit, whatever happens next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MissRule {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    /// Nearest-rank percentile in [0, 100], as `stats::percentile` takes it.
    pub percentile: f64,
}

/// How a run ended.
pub enum RunEnd {
    Finished(Box<ServingRun>),
    /// Stopped: the limits of its [`MissRule`] are missed already.
    Missed(EarlyMiss),
}

/// Where a run stood when it was stopped for certainly missing its limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyMiss {
    pub at: Time,
    pub requests_done: u64,
    pub requests: u64,
    /// Lower bounds of the whole run's TTFT and TPOT at the rule's percentile, ms: the
    /// percentile of every request's value so far (its final one, or what it has waited
    /// already; 0 for a request with no bound yet). At least one is above its limit.
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    /// Output tokens made per second so far (first arrival to `at`).
    pub tokens_per_s: f64,
}

/// Loop turns between two checks of a [`MissRule`] (each check reads every request).
const MISS_CHECK_EVERY: u64 = 32;

/// [`simulate_observed`] that, given `stop`, ends the run as soon as it certainly misses
/// those limits (an SLO search's probe needs only the verdict). A run that is not stopped
/// is the same run, to the bit, as without `stop`.
#[allow(clippy::too_many_arguments)]
pub fn simulate_until<C: StepCost>(
    fabric: &Fabric,
    params: &NetParams,
    layout: &Layout,
    requests: &[Request],
    cost: &mut C,
    options: SimOptions,
    admission: Admission,
    stop: Option<MissRule>,
    finished: &mut dyn FnMut(u64),
) -> Result<RunEnd, QueryError> {
    let disagg = matches!(layout.mode, Mode::Disaggregated { .. });
    let mut sim = Sim {
        layout,
        cost,
        reqs: requests
            .iter()
            .map(|r| Req {
                r: r.clone(),
                prompt: r.input,
                prefilled: r.cached,
                generated: 0,
                pgpu: 0,
                dgpu: 0,
                first_token: None,
                finish: None,
                kv: None,
                admitted: None,
                held: 0,
                admit_order: 0,
                preemptions: 0,
                stints: Vec::new(),
            })
            .collect(),
        dgpus: vec![Gpu::default(); layout.decode_gpus.len()],
        pgpus: match &layout.mode {
            Mode::Aggregated => Vec::new(),
            Mode::Disaggregated { prefill_gpus } => vec![Gpu::default(); prefill_gpus.len()],
        },
        queue: EventQueue::new(),
        net: OnlineFlows::new(fabric, params),
        flow_req: Vec::new(),
        handoff: VecDeque::new(),
        decode_busy: false,
        prefill_busy: false,
        decode_pieces: Vec::new(),
        prefill_pieces: Vec::new(),
        decode: PoolStats::default(),
        prefill: PoolStats::default(),
        in_system: 0,
        area_ps: 0,
        last: Time::ZERO,
        first_arrival: None,
        arriving: (0, 0),
        last_arrival: requests.last().map_or(Time::ZERO, |r| r.arrival),
        window_tokens: 0,
        coupled: disagg && options.kv_shares_fabric,
        bg_stale: [false; 2],
        link_bytes: Vec::new(),
        admission,
        admissions: 0,
        preemptions: 0,
        recomputed: 0,
        prefilled_total: 0,
        finished: 0,
        #[cfg(test)]
        decode_starts: Vec::new(),
    };
    for (i, r) in requests.iter().enumerate() {
        assert!(
            i == 0 || requests[i - 1].arrival <= r.arrival,
            "arrival order"
        );
        sim.queue.schedule_at(r.arrival, Event::Arrival(i as u32));
    }
    let mut finished_flows = Vec::new();
    let mut reported = 0;
    let mut turns = 0u64;
    loop {
        let tq = sim.queue.peek_time();
        let tf = sim.net.next_event();
        let now = match (tq, tf) {
            (None, None) => break,
            // Flows first at equal times: a KV cache that lands now joins an iteration
            // that starts now.
            (_, Some(f)) if tq.is_none_or(|q| f <= q) => {
                finished_flows.clear();
                sim.net.advance(f, &mut finished_flows);
                for &fl in &finished_flows {
                    sim.kv_arrived(f, sim.flow_req[fl as usize]);
                }
                f
            }
            _ => {
                let (now, ev) = sim.queue.pop().expect("peeked");
                match ev {
                    Event::Arrival(i) => sim.arrive(now, i),
                    Event::DecodeDone => sim.decode_done(now, disagg),
                    Event::PrefillDone => sim.prefill_done(now),
                }
                if disagg {
                    sim.start_prefill(now)?;
                }
                now
            }
        };
        if now >= Time::HORIZON {
            // Arrivals end well before it (`traffic::LAST_ARRIVAL`); serving them took the
            // rest of the clock.
            return Err(QueryError::Invalid(format!(
                "the serving run passed the simulator's horizon ({}) with {} of {} requests \
                 unfinished",
                Time::HORIZON,
                requests.len() as u64 - sim.finished,
                requests.len()
            )));
        }
        if sim.start_decode(now)? && disagg {
            // Preempted sequences went back to the prefill pool, which may be idle.
            sim.start_prefill(now)?;
        }
        sim.clear_stale_background(now);
        if sim.finished != reported {
            reported = sim.finished;
            finished(reported);
        }
        turns += 1;
        if let Some(rule) = stop
            && turns.is_multiple_of(MISS_CHECK_EVERY)
            && let Some(miss) = sim.missed(now, &rule)
        {
            return Ok(RunEnd::Missed(miss));
        }
    }
    sim.finish().map(|run| RunEnd::Finished(Box::new(run)))
}

/// KV tokens request `r` takes at admission: its whole cache, or its prompt.
fn admission_need(admission: Admission, r: &Req) -> u64 {
    match admission {
        Admission::Reserve => (r.r.input + r.r.output) as u64,
        Admission::Grow { .. } => r.prompt as u64,
    }
}

/// Whether `gpu` (with `pending` KV tokens to grow before its next iteration) has a batch
/// slot and room for a request that takes `need` KV tokens, with the watermark to spare
/// unless it holds nothing.
fn room(admission: Admission, layout: &Layout, gpu: &Gpu, pending: u64, need: u64) -> bool {
    let spare = match admission {
        Admission::Grow { watermark_tokens } if gpu.slots > 0 => watermark_tokens,
        _ => 0,
    };
    gpu.slots < layout.max_batch
        && gpu.kv_used + pending + need + spare <= layout.kv_capacity_tokens
}

/// GPUs that, each as busy as the busiest GPU (`per_gpu` tokens), carry `work` tokens in
/// all: the iteration's expert work and traffic scale with this, its attention with the
/// busiest GPU.
fn equivalent_gpus(work: u64, per_gpu: u64) -> u32 {
    work.div_ceil(per_gpu.max(1)).max(1) as u32
}

impl<C: StepCost> Sim<'_, C> {
    /// Declares the iteration just timed (the cost's last call), lasting `d` from `now`,
    /// as pool `source`'s background on the KV transfers' links.
    fn load_links(&mut self, now: Time, source: usize, d: Dur) {
        if !self.coupled {
            return;
        }
        self.link_bytes.clear();
        self.cost.link_bytes(&mut self.link_bytes);
        self.net.set_background(now, source, &self.link_bytes, d);
        self.bg_stale[source] = false;
    }

    /// Clears the background of a pool whose iteration ended and that did not start
    /// another at the same time.
    fn clear_stale_background(&mut self, now: Time) {
        for source in [BG_DECODE, BG_PREFILL] {
            if self.bg_stale[source] {
                self.bg_stale[source] = false;
                self.net.set_background(now, source, &[], Dur::ZERO);
            }
        }
    }

    fn count(&mut self, now: Time, delta: i64) {
        self.area_ps += self.in_system as u128 * now.since(self.last).as_ps() as u128;
        self.last = now;
        self.in_system = (self.in_system as i64 + delta) as u64;
    }

    fn arrive(&mut self, now: Time, i: u32) {
        let first = *self.first_arrival.get_or_insert(now);
        self.count(now, 1);
        if i as usize == self.reqs.len() - 1 {
            self.arriving = (self.area_ps, now.since(first).as_ps());
        }
        let left = (self.reqs[i as usize].r.input - self.reqs[i as usize].prefilled) as u64;
        // The least backlogged GPU; on ties (at low load every backlog is 0) the one holding
        // the fewest requests, then the lowest index. In an aggregated
        // pool the requests a GPU decodes count: without them every arrival at low load went
        // to GPU 0, whose cache and batch filled while the others idled. A prefill GPU
        // holds only its backlog's prompts, plus one whose last chunk is in the running
        // iteration: an idle one is preferred to it.
        let pool = if self.pgpus.is_empty() {
            &mut self.dgpus
        } else {
            &mut self.pgpus
        };
        let g = (0..pool.len())
            .min_by_key(|&g| {
                let gpu = &pool[g];
                let held = gpu.waiting.len() + gpu.prefilling.len() + gpu.ready.len();
                (gpu.backlog, held + gpu.running.len(), g)
            })
            .expect("a pool has GPUs");
        pool[g].backlog += left;
        pool[g].waiting.push_back(i);
        self.reqs[i as usize].pgpu = g as u32;
        self.reqs[i as usize].dgpu = g as u32;
    }

    /// Counts `n` output tokens made at `now` if requests are still arriving.
    fn count_tokens(&mut self, now: Time, n: u64) {
        if now <= self.last_arrival {
            self.window_tokens += n;
        }
    }

    fn done(&mut self, now: Time, i: u32) {
        let r = &mut self.reqs[i as usize];
        r.finish = Some(now);
        r.stints.last_mut().expect("admitted").end = now;
        let g = &mut self.dgpus[r.dgpu as usize];
        g.kv_used -= r.held;
        r.held = 0;
        g.slots -= 1;
        self.finished += 1;
        self.count(now, -1);
    }

    /// Books request `i`'s admission to decode GPU `g` (its KV and slot already taken).
    fn admitted(&mut self, now: Time, g: u32, i: u32, need: u64) {
        self.admissions += 1;
        let r = &mut self.reqs[i as usize];
        r.admitted.get_or_insert(now);
        r.held = need;
        r.admit_order = self.admissions;
        r.stints.push(Stint {
            gpu: g,
            admitted: now,
            reserved: need,
            decoding: None,
            end: Time::MAX,
        });
    }

    /// Preempts request `i` on decode GPU `g` (recompute): frees its KV cache and slot and
    /// puts it at the head of its prefill GPU's waiting queue (aggregated: the same GPU),
    /// to be prefilled again over its prompt and the tokens made so far.
    fn preempt(&mut self, now: Time, g: usize, i: u32) {
        let aggregated = self.pgpus.is_empty();
        let gpu = &mut self.dgpus[g];
        let decoding = match gpu.running.iter().position(|&x| x == i) {
            Some(k) => {
                gpu.running.remove(k);
                true
            }
            None => {
                let k = gpu
                    .prefilling
                    .iter()
                    .position(|&x| x == i)
                    .expect("a victim decodes or prefills");
                gpu.prefilling.remove(k);
                false
            }
        };
        let r = &mut self.reqs[i as usize];
        gpu.kv_used -= r.held;
        gpu.slots -= 1;
        r.held = 0;
        r.preemptions += 1;
        r.stints.last_mut().expect("admitted").end = now;
        if decoding {
            // Recompute: the prompt and every token made so far (the newest's KV was not
            // written yet; its forward pass makes the next token).
            r.prompt = r.r.input + r.generated;
        }
        // The tokens whose KV is computed again: all but the cached prefix of what was
        // prefilled (and, decoding, made).
        let lost = if decoding { r.prompt } else { r.prefilled } - r.r.cached;
        r.prefilled = r.r.cached;
        self.preemptions += 1;
        self.recomputed += lost as u64;
        let pool = if aggregated {
            &mut self.dgpus[g]
        } else {
            &mut self.pgpus[r.pgpu as usize]
        };
        pool.backlog += lost as u64;
        pool.waiting.push_front(i);
    }

    /// [`Admission::Grow`]: makes room for each of GPU `g`'s decoding sequences to grow by
    /// a token in the iteration starting now, preempting the most recently admitted
    /// sequences (decoding or prefilling) while they cannot, then grows them. Whether it
    /// preempted.
    fn grow(&mut self, now: Time, g: usize) -> bool {
        let cap = self.layout.kv_capacity_tokens;
        let mut preempted = false;
        loop {
            let gpu = &self.dgpus[g];
            let n = gpu.running.len() as u64;
            if gpu.kv_used + n <= cap {
                break;
            }
            let victim = gpu
                .running
                .iter()
                .chain(&gpu.prefilling)
                .copied()
                .max_by_key(|&i| self.reqs[i as usize].admit_order)
                .expect("a GPU over capacity holds sequences");
            // A lone sequence fits (config: input + output <= capacity, and a decoding
            // sequence holds at most input + output - 1); one left alone with caches in
            // flight to its GPU (P/D) gives way to them.
            assert!(
                gpu.running.len() + gpu.prefilling.len() > 1
                    || gpu.kv_used > self.reqs[victim as usize].held,
                "a lone sequence cannot grow on decode GPU {g}"
            );
            self.preempt(now, g, victim);
            preempted = true;
        }
        let gpu = &mut self.dgpus[g];
        gpu.kv_used += gpu.running.len() as u64;
        for &i in &gpu.running {
            self.reqs[i as usize].held += 1;
        }
        preempted
    }

    /// The prompt pieces of one GPU's next iteration: requests already prefilling first,
    /// then new ones; `admit` says whether request `i` may start (and reserves for it).
    fn chunk(
        reqs: &[Req],
        gpu: &mut Gpu,
        budget: u32,
        mut admit: impl FnMut(&mut Gpu, u32, &Req) -> bool,
        out: &mut Vec<Piece>,
    ) -> u32 {
        let mut left = budget;
        for &i in &gpu.prefilling {
            if left == 0 {
                break;
            }
            let r = &reqs[i as usize];
            let t = (r.prompt - r.prefilled).min(left);
            out.push(Piece { req: i, tokens: t });
            left -= t;
        }
        while left > 0 {
            let Some(&i) = gpu.waiting.front() else { break };
            if !admit(gpu, i, &reqs[i as usize]) {
                break;
            }
            gpu.waiting.pop_front();
            gpu.prefilling.push(i);
            let r = &reqs[i as usize];
            let t = (r.prompt - r.prefilled).min(left);
            out.push(Piece { req: i, tokens: t });
            left -= t;
        }
        budget - left
    }

    /// The token-weighted mean prefix of `pieces`.
    fn mean_prefix(reqs: &[Req], pieces: &[Piece]) -> u64 {
        let tokens: u64 = pieces.iter().map(|p| p.tokens as u64).sum();
        if tokens == 0 {
            return 0;
        }
        let w: u64 = pieces
            .iter()
            .map(|p| reqs[p.req as usize].prefilled as u64 * p.tokens as u64)
            .sum();
        w / tokens
    }

    /// Starts the aggregated or decode pool's next iteration if it is idle and has work.
    /// Whether it preempted a sequence ([`Admission::Grow`]).
    fn start_decode(&mut self, now: Time) -> Result<bool, QueryError> {
        if self.decode_busy {
            return Ok(false);
        }
        let aggregated = self.pgpus.is_empty();
        let grow = matches!(self.admission, Admission::Grow { .. });
        self.decode_pieces.clear();
        let (mut batch, mut chunk, mut work) = (0u32, 0u32, 0u64);
        let (mut ctx_sum, mut seqs) = (0u64, 0u64);
        let mut preempted = false;
        let mut admitted = Vec::new();
        for g in 0..self.dgpus.len() {
            let gpu = &mut self.dgpus[g];
            let ready = std::mem::take(&mut gpu.ready);
            gpu.running.extend(ready);
            if grow {
                preempted |= self.grow(now, g);
            }
            if aggregated {
                admitted.clear();
                let (admission, layout) = (self.admission, self.layout);
                let c = Self::chunk(
                    &self.reqs,
                    &mut self.dgpus[g],
                    self.layout.chunk_tokens,
                    |gpu, i, r| {
                        let need = admission_need(admission, r);
                        let fits = room(admission, layout, gpu, 0, need);
                        if fits {
                            gpu.kv_used += need;
                            gpu.slots += 1;
                            admitted.push((i, need));
                        }
                        fits
                    },
                    &mut self.decode_pieces,
                );
                for &(i, need) in &admitted {
                    self.admitted(now, g as u32, i, need);
                }
                chunk = chunk.max(c);
                work += c as u64;
            }
            let gpu = &self.dgpus[g];
            batch = batch.max(gpu.running.len() as u32);
            work += gpu.running.len() as u64;
            for &i in &gpu.running {
                let r = &self.reqs[i as usize];
                ctx_sum += (r.r.input + r.generated) as u64;
                seqs += 1;
            }
        }
        if batch == 0 && chunk == 0 {
            return Ok(preempted);
        }
        #[cfg(test)]
        self.decode_starts.push(now);
        let ctx = ctx_sum.checked_div(seqs).unwrap_or(0);
        let active = equivalent_gpus(work, batch as u64 + chunk as u64);
        let d = if aggregated {
            let prefix = Self::mean_prefix(&self.reqs, &self.decode_pieces);
            self.prefill.iterations += u64::from(chunk > 0);
            self.prefill.load_sum += chunk as u64;
            self.cost.mixed(active, batch, ctx, chunk, prefix)?
        } else {
            self.cost.decode(active, batch, ctx)?
        };
        self.decode.iterations += 1;
        self.decode.busy += d;
        self.decode.load_sum += batch as u64;
        self.decode_busy = true;
        self.queue.schedule_at(now + d, Event::DecodeDone);
        self.load_links(now, BG_DECODE, d);
        Ok(preempted)
    }

    fn decode_done(&mut self, now: Time, disagg: bool) {
        self.decode_busy = false;
        self.bg_stale[BG_DECODE] = self.coupled;
        // Every decoding sequence gained a token.
        for g in 0..self.dgpus.len() {
            let running = std::mem::take(&mut self.dgpus[g].running);
            let mut kept = Vec::with_capacity(running.len());
            self.count_tokens(now, running.len() as u64);
            for i in running {
                let r = &mut self.reqs[i as usize];
                r.generated += 1;
                if r.generated == r.r.output {
                    self.done(now, i);
                } else {
                    kept.push(i);
                }
            }
            self.dgpus[g].running = kept;
        }
        if disagg {
            self.handoff_kv(now);
            return;
        }
        // Aggregated: the prompt pieces advanced; a finished prompt made its first token.
        let pieces = std::mem::take(&mut self.decode_pieces);
        self.advance_prompts(&pieces, false);
        for p in &pieces {
            let r = &mut self.reqs[p.req as usize];
            let g = r.dgpu as usize;
            if r.prefilled == r.prompt {
                // The prompt's last chunk makes a token: the first, or after a recompute
                // the next one (those made before are kept).
                r.first_token.get_or_insert(now);
                r.generated += 1;
                r.stints.last_mut().expect("admitted").decoding = Some(now);
                self.count_tokens(now, 1);
                self.dgpus[g].prefilling.retain(|&x| x != p.req);
                let r = &self.reqs[p.req as usize];
                if r.generated == r.r.output {
                    self.done(now, p.req);
                } else {
                    self.dgpus[g].running.push(p.req);
                }
            }
        }
    }

    /// An iteration prefilled `pieces`: each request's prompt and its GPU's backlog (in the
    /// prefill pool, or the aggregated one) advance by its piece.
    fn advance_prompts(&mut self, pieces: &[Piece], prefill_pool: bool) {
        for p in pieces {
            self.prefilled_total += p.tokens as u64;
            let r = &mut self.reqs[p.req as usize];
            r.prefilled += p.tokens;
            let gpu = if prefill_pool {
                &mut self.pgpus[r.pgpu as usize]
            } else {
                &mut self.dgpus[r.dgpu as usize]
            };
            gpu.backlog -= p.tokens as u64;
        }
    }

    /// Starts the prefill pool's next iteration if it is idle and has prompts.
    fn start_prefill(&mut self, now: Time) -> Result<(), QueryError> {
        if self.prefill_busy {
            return Ok(());
        }
        self.prefill_pieces.clear();
        let (mut chunk, mut work) = (0, 0u64);
        for g in 0..self.pgpus.len() {
            let c = Self::chunk(
                &self.reqs,
                &mut self.pgpus[g],
                self.layout.chunk_tokens,
                |_, _, _| true,
                &mut self.prefill_pieces,
            );
            chunk = chunk.max(c);
            work += c as u64;
        }
        if chunk == 0 {
            return Ok(());
        }
        let active = equivalent_gpus(work, chunk as u64);
        let prefix = Self::mean_prefix(&self.reqs, &self.prefill_pieces);
        let d = self.cost.prefill(active, chunk, prefix)?;
        self.prefill.iterations += 1;
        self.prefill.busy += d;
        self.prefill.load_sum += chunk as u64;
        self.prefill_busy = true;
        self.queue.schedule_at(now + d, Event::PrefillDone);
        self.load_links(now, BG_PREFILL, d);
        Ok(())
    }

    fn prefill_done(&mut self, now: Time) {
        self.prefill_busy = false;
        self.bg_stale[BG_PREFILL] = self.coupled;
        let pieces = std::mem::take(&mut self.prefill_pieces);
        self.advance_prompts(&pieces, true);
        for p in &pieces {
            let r = &self.reqs[p.req as usize];
            let g = r.pgpu as usize;
            if r.prefilled == r.prompt {
                self.pgpus[g].prefilling.retain(|&x| x != p.req);
                self.handoff.push_back(p.req);
            }
        }
        self.handoff_kv(now);
    }

    /// Sends finished prompts' KV caches to decode GPUs, oldest first, while one has room.
    fn handoff_kv(&mut self, now: Time) {
        let Mode::Disaggregated { prefill_gpus } = &self.layout.mode else {
            return;
        };
        let grow = matches!(self.admission, Admission::Grow { .. });
        while let Some(&i) = self.handoff.front() {
            let need = admission_need(self.admission, &self.reqs[i as usize]);
            // Grow: the sequences that join the next iteration grow a token there first.
            let pending = |gpu: &Gpu| {
                if grow {
                    (gpu.running.len() + gpu.ready.len()) as u64
                } else {
                    0
                }
            };
            // The decode GPU with the most free KV cache that fits the request.
            let best = (0..self.dgpus.len())
                .filter(|&g| {
                    let gpu = &self.dgpus[g];
                    room(self.admission, self.layout, gpu, pending(gpu), need)
                })
                .min_by_key(|&g| (self.dgpus[g].kv_used + pending(&self.dgpus[g]), g));
            let Some(g) = best else { break };
            self.handoff.pop_front();
            self.dgpus[g].kv_used += need;
            self.dgpus[g].slots += 1;
            self.admitted(now, g as u32, i, need);
            let r = &mut self.reqs[i as usize];
            r.dgpu = g as u32;
            let f = self.net.start(
                now,
                MessageSpec {
                    src: prefill_gpus[r.pgpu as usize],
                    dst: self.layout.decode_gpus[g],
                    bytes: r.prompt as u64 * self.layout.kv_bytes_per_token,
                    start: now,
                },
            );
            debug_assert_eq!(f as usize, self.flow_req.len());
            self.flow_req.push(i);
            // The first transfer (the one before the first token) is the one reported.
            r.kv.get_or_insert((now, Time::MAX));
        }
    }

    fn kv_arrived(&mut self, now: Time, i: u32) {
        self.count_tokens(now, 1);
        let r = &mut self.reqs[i as usize];
        let kv = r.kv.as_mut().expect("transfer started");
        if kv.1 == Time::MAX {
            kv.1 = now;
        }
        // The prefill made a token: the first, or after a recompute the next one.
        r.first_token.get_or_insert(now);
        r.generated += 1;
        r.stints.last_mut().expect("admitted").decoding = Some(now);
        if r.generated == r.r.output {
            self.done(now, i);
            self.handoff_kv(now);
        } else {
            let g = r.dgpu as usize;
            self.dgpus[g].ready.push(i);
        }
    }

    /// Whether the run already misses `rule` whatever happens next: at least as many
    /// requests as lie above the percentile's rank have a TTFT (or TPOT) above the limit
    /// for certain. A request's TTFT is at least what it has waited for its first token;
    /// its TPOT at least the time since its first token over its output tokens after the
    /// first (final values once known). Compared as `meets` compares, in ms.
    fn missed(&self, now: Time, rule: &MissRule) -> Option<EarlyMiss> {
        let mut ttft = Vec::with_capacity(self.reqs.len());
        let mut tpot = Vec::with_capacity(self.reqs.len());
        for r in &self.reqs {
            let arrived = r.r.arrival <= now;
            let t = match r.first_token {
                Some(f) => f.since(r.r.arrival).as_ps(),
                None if arrived => now.since(r.r.arrival).as_ps(),
                None => 0,
            };
            ttft.push(t);
            if r.r.output > 1 {
                let p = r.first_token.map_or(0, |f| {
                    r.finish.unwrap_or(now).since(f).as_ps() / (r.r.output as u64 - 1)
                });
                tpot.push(p);
            }
        }
        let over = |v: &[u64], limit_ms: f64| {
            let above = v.iter().filter(|&&x| x as f64 / 1e9 > limit_ms).count();
            // The percentile is the value at this rank (1-based) of the sorted values: it
            // is above the limit once the values from the rank up all are.
            let rank = ((rule.percentile / 100.0 * v.len() as f64).ceil() as usize)
                .clamp(1, v.len().max(1));
            !v.is_empty() && above > v.len() - rank
        };
        if !over(&ttft, rule.ttft_ms) && !over(&tpot, rule.tpot_ms) {
            return None;
        }
        let pct_ms = |v: Vec<u64>| {
            crate::stats::Sorted::new(v).map_or(0.0, |s| s.percentile(rule.percentile) as f64 / 1e9)
        };
        let made: u64 = self.reqs.iter().map(|r| r.generated as u64).sum();
        let span_s = now.since(self.first_arrival.unwrap_or(Time::ZERO)).as_ps() as f64 / 1e12;
        Some(EarlyMiss {
            at: now,
            requests_done: self.finished,
            requests: self.reqs.len() as u64,
            ttft_ms: pct_ms(ttft),
            tpot_ms: pct_ms(tpot),
            tokens_per_s: if span_s > 0.0 {
                made as f64 / span_s
            } else {
                0.0
            },
        })
    }

    fn finish(mut self) -> Result<ServingRun, QueryError> {
        let (mut prefill_tokens, mut cached_tokens) = (0, 0);
        let requests: Vec<RequestResult> = self
            .reqs
            .iter_mut()
            .map(|r| {
                prefill_tokens += (r.r.input - r.r.cached) as u64;
                cached_tokens += r.r.cached as u64;
                assert_eq!(r.generated, r.r.output, "every token made once");
                RequestResult {
                    id: r.r.id,
                    arrival: r.r.arrival,
                    input: r.r.input,
                    output: r.r.output,
                    cached: r.r.cached,
                    first_token: r.first_token.expect("every request gets its first token"),
                    finish: r.finish.expect("every request finishes"),
                    kv_transfer: r.kv,
                    decode_gpu: r.dgpu,
                    admitted: r.admitted.expect("every request was admitted"),
                    preemptions: r.preemptions,
                    stints: std::mem::take(&mut r.stints),
                }
            })
            .collect();
        assert_eq!(self.in_system, 0, "every request left");
        assert_eq!(
            self.prefilled_total,
            prefill_tokens + self.recomputed,
            "prompt tokens prefilled = every prompt's once + those recomputed"
        );
        let end = requests
            .iter()
            .map(|r| r.finish)
            .max()
            .unwrap_or(Time::ZERO);
        let span = end.since(self.first_arrival.unwrap_or(Time::ZERO)).as_ps();
        Ok(ServingRun {
            requests,
            kv: self.net.into_run(),
            decode: self.decode,
            prefill: self.prefill,
            mean_in_system: if span == 0 {
                0.0
            } else {
                self.area_ps as f64 / span as f64
            },
            window_tokens_per_s: if self.arriving.1 == 0 {
                0.0
            } else {
                self.window_tokens as f64 / (self.arriving.1 as f64 / 1e12)
            },
            mean_in_system_arriving: if self.arriving.1 == 0 {
                0.0
            } else {
                self.arriving.0 as f64 / self.arriving.1 as f64
            },
            prefill_tokens,
            cached_tokens,
            preemptions: self.preemptions,
            recomputed_tokens: self.recomputed,
            end,
            #[cfg(test)]
            decode_starts: self.decode_starts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{STAR_SCENARIO, STAR_SCENARIO_ORIGIN, Scenario};
    use crate::engine::SimRng;
    use crate::flow::online::MIN_SHARE;

    /// Closed-form iteration times: a fixed part plus a part per sequence and per token.
    struct Linear {
        calls: u32,
    }

    const US: u64 = 1_000_000;

    impl StepCost for Linear {
        fn decode(&mut self, _gpus: u32, batch: u32, ctx: u64) -> Result<Dur, QueryError> {
            self.calls += 1;
            Ok(Dur::from_ps(
                1000 * US + batch as u64 * 10 * US + ctx * 1000,
            ))
        }
        fn prefill(&mut self, _gpus: u32, tokens: u32, _prefix: u64) -> Result<Dur, QueryError> {
            self.calls += 1;
            Ok(Dur::from_ps(2000 * US + tokens as u64 * US))
        }
        fn mixed(&mut self, g: u32, b: u32, ctx: u64, t: u32, p: u64) -> Result<Dur, QueryError> {
            match (b, t) {
                (0, _) => self.prefill(g, t, p),
                (_, 0) => self.decode(g, b, ctx),
                _ => Ok(self.decode(g, b, ctx)? + self.prefill(g, t, p)?),
            }
        }
    }

    fn star() -> Scenario {
        Scenario::parse(STAR_SCENARIO, STAR_SCENARIO_ORIGIN, None).expect("embedded")
    }

    fn layout(mode: Mode) -> Layout {
        let decode_gpus = match mode {
            Mode::Aggregated => (0..8).map(NodeId).collect(),
            Mode::Disaggregated { .. } => (4..8).map(NodeId).collect(),
        };
        Layout {
            mode,
            decode_gpus,
            kv_capacity_tokens: 1 << 20,
            max_batch: 64,
            chunk_tokens: 1024,
            kv_bytes_per_token: 70_000,
        }
    }

    fn pd() -> Mode {
        Mode::Disaggregated {
            prefill_gpus: (0..4).map(NodeId).collect(),
        }
    }

    fn one(input: u32, output: u32, cached: u32) -> Vec<Request> {
        vec![Request {
            id: 0,
            arrival: Time::from_ps(5 * US),
            input,
            output,
            cached,
        }]
    }

    fn poisson(n: u32, rate_per_s: f64, seed: u64) -> Vec<Request> {
        let mut rng = SimRng::new(seed);
        let mut t = 0.0;
        (0..n)
            .map(|id| {
                t += -(1.0 - rng.unit_f64()).ln() / rate_per_s;
                Request {
                    id,
                    arrival: Time::from_ps((t * 1e12) as u64),
                    input: 200 + rng.below(3000) as u32,
                    output: 1 + rng.below(300) as u32,
                    cached: 0,
                }
            })
            .collect()
    }

    /// Iterations so slow (a day each) that a long output outlasts the simulated clock: the
    /// run is an error, not a result with clipped times.
    struct Glacial;

    impl StepCost for Glacial {
        fn decode(&mut self, _gpus: u32, _batch: u32, _ctx: u64) -> Result<Dur, QueryError> {
            Ok(Dur::from_ps(86_400 * crate::engine::PS_PER_S))
        }
        fn prefill(&mut self, g: u32, _tokens: u32, _prefix: u64) -> Result<Dur, QueryError> {
            self.decode(g, 1, 0)
        }
        fn mixed(&mut self, g: u32, b: u32, ctx: u64, _t: u32, _p: u64) -> Result<Dur, QueryError> {
            self.decode(g, b, ctx)
        }
    }

    #[test]
    fn a_run_past_the_horizon_is_an_error() {
        let s = star();
        let l = layout(Mode::Aggregated);
        // 100 output tokens at a day an iteration: past the clock's 53 days.
        let Err(err) = simulate(s.fabric(), s.net(), &l, &one(10, 100, 0), &mut Glacial) else {
            panic!("a run past the horizon gave a result");
        };
        assert!(err.to_string().contains("horizon"), "{err}");
        assert!(
            err.to_string().contains("1 of 1 requests unfinished"),
            "{err}"
        );
        // 20 tokens end inside it.
        let run = simulate(s.fabric(), s.net(), &l, &one(10, 20, 0), &mut Glacial).expect("runs");
        assert!(run.end < Time::HORIZON);
    }

    fn run(mode: Mode, reqs: &[Request]) -> ServingRun {
        let s = star();
        let l = layout(mode);
        simulate(s.fabric(), s.net(), &l, reqs, &mut Linear { calls: 0 }).expect("runs")
    }

    /// A run stopped for missing its limits misses them over the whole run too, and its
    /// bounds are at most the whole run's percentiles; a run that is not stopped is the
    /// whole run, request for request.
    #[test]
    fn a_run_is_stopped_only_when_it_certainly_misses() {
        let s = star();
        // Overloaded: queues and TPOTs grow through the run.
        let reqs = poisson(3000, 300.0, 7);
        for mode in [Mode::Aggregated, pd()] {
            let l = layout(mode);
            let whole =
                simulate(s.fabric(), s.net(), &l, &reqs, &mut Linear { calls: 0 }).expect("runs");
            let (ttft, tpot) = crate::serving::at_percentile(&whole, 90.0);
            let cases = [
                (ttft * 0.5, tpot * 2.0, true),
                (ttft * 2.0, tpot * 0.5, true),
                (ttft * 2.0, tpot * 2.0, false),
                (ttft, tpot, false),
            ];
            for (ttft_ms, tpot_ms, missed) in cases {
                let rule = MissRule {
                    ttft_ms,
                    tpot_ms,
                    percentile: 90.0,
                };
                let end = simulate_until(
                    s.fabric(),
                    s.net(),
                    &l,
                    &reqs,
                    &mut Linear { calls: 0 },
                    SimOptions::default(),
                    Admission::Reserve,
                    Some(rule),
                    &mut |_| {},
                )
                .expect("runs");
                match end {
                    RunEnd::Missed(m) => {
                        assert!(missed, "stopped at limits the whole run meets: {rule:?}");
                        assert!(m.requests_done < reqs.len() as u64 / 2, "{m:?}");
                        assert!(m.ttft_ms > ttft_ms || m.tpot_ms > tpot_ms, "{m:?}");
                        assert!(m.ttft_ms <= ttft && m.tpot_ms <= tpot, "{m:?}");
                    }
                    RunEnd::Finished(run) => {
                        let run = *run;
                        assert!(!missed, "not stopped though the whole run misses: {rule:?}");
                        assert!(run.requests == whole.requests && run.end == whole.end);
                    }
                }
            }
        }
    }

    /// At low load every prompt backlog is empty when a request arrives: an aggregated pool
    /// spreads its arrivals by the requests each GPU holds (before, all went to GPU 0).
    #[test]
    fn low_load_arrivals_spread_over_an_aggregated_pool() {
        // 16 short prompts 1 ms apart, each decoding far longer than the arrivals last.
        let reqs: Vec<Request> = (0..16)
            .map(|i| Request {
                id: i,
                arrival: Time::from_ps((1 + i as u64) * 1000 * US),
                input: 8,
                output: 2000,
                cached: 0,
            })
            .collect();
        let run = run(Mode::Aggregated, &reqs);
        let mut per_gpu = [0u32; 8];
        for r in &run.requests {
            per_gpu[r.decode_gpu as usize] += 1;
        }
        assert_eq!(per_gpu, [2; 8], "{per_gpu:?}");
    }

    /// Alone in the system, a request's first token comes after its prompt's chunks, and
    /// every later token after one decode iteration at its growing context.
    #[test]
    fn a_lone_request_aggregated() {
        let r = &run(Mode::Aggregated, &one(2500, 4, 0)).requests[0];
        // 2500 tokens in chunks of 1024: 1024, 1024, 452.
        let prefill: u64 = [1024u64, 1024, 452]
            .iter()
            .map(|t| 2000 * US + t * US)
            .sum();
        assert_eq!(r.ttft().as_ps(), prefill);
        // Decode iterations at context 2501, 2502, 2503 (input + tokens so far).
        let decode: u64 = (1..4).map(|g| 1010 * US + (2500 + g) * 1000).sum();
        assert_eq!(r.finish.since(r.first_token).as_ps(), decode);
        assert_eq!(r.tpot().unwrap().as_ps(), decode / 3);
    }

    /// Under P/D the first token also waits for the KV cache's transfer, which takes what
    /// the flow level says one message of that size takes.
    #[test]
    fn a_lone_request_disaggregated() {
        let s = star();
        let run = run(pd(), &one(1000, 2, 200));
        let r = &run.requests[0];
        let (ks, kf) = r.kv_transfer.expect("P/D transfers");
        assert_eq!(ks.since(r.arrival).as_ps(), 2000 * US + 800 * US);
        let alone = crate::flow::simulate(
            s.fabric(),
            s.net(),
            &[MessageSpec {
                src: NodeId(0),
                dst: NodeId(4),
                bytes: 1000 * 70_000,
                start: Time::ZERO,
            }],
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            kf.since(ks),
            alone.messages[0].finish.unwrap().since(Time::ZERO)
        );
        assert_eq!(r.first_token, kf);
        assert_eq!(run.prefill_tokens, 800);
        assert_eq!(run.cached_tokens, 200);
    }

    /// Little's law holds on the simulator's own bookkeeping: the time-average of the
    /// requests in the system equals throughput x mean latency over the run.
    #[test]
    fn littles_law_on_the_books() {
        for mode in [Mode::Aggregated, pd()] {
            let reqs = poisson(2000, 40.0, 7);
            let run = run(mode, &reqs);
            let span = run.end.since(reqs[0].arrival).as_ps() as f64;
            let sum: f64 = run
                .requests
                .iter()
                .map(|r| r.latency().as_ps() as f64)
                .sum();
            let want = sum / span;
            assert!(
                (run.mean_in_system - want).abs() <= 1e-9 * want,
                "{} vs {want}",
                run.mean_in_system
            );
        }
    }

    /// At light load requests finish at the rate they arrive. Over the steady window,
    /// finishes = arrivals in it less the change in requests in the system (exactly, on
    /// the books), which is the offered rate within the Poisson noise of the arrivals
    /// (3 standard deviations, 3 sqrt(2 / n) relative: the count in half the window, and
    /// the window's own length). The whole-run figure, n over first arrival to last
    /// finish, is never above the arrival window's n / (last - first arrival), and at
    /// light load (a drain of a few hundred ms after 400 s of arrivals) within 0.5 % of it.
    #[test]
    fn steady_throughput_at_light_load_is_the_arrival_rate() {
        let (n, rate) = (4000u32, 10.0);
        for mode in [Mode::Aggregated, pd()] {
            let reqs = poisson(n, rate, 11);
            let run = run(mode, &reqs);
            let r = &run.requests;
            let (from, to) = crate::serving::steady_window(r).expect("a window");
            let (window_s, steady) = crate::serving::steady_throughput(r).expect("a window");
            assert_eq!(window_s, to.since(from).as_ps() as f64 / 1e12);
            let in_system =
                |t: Time| r.iter().filter(|q| q.arrival <= t && q.finish > t).count() as f64;
            let arrived = r
                .iter()
                .filter(|q| q.arrival > from && q.arrival <= to)
                .count() as f64;
            let want = (arrived - (in_system(to) - in_system(from))) / window_s;
            assert!((steady - want).abs() <= 1e-9 * want, "{steady} vs {want}");
            let tol = 3.0 * (2.0 / n as f64).sqrt();
            assert!((steady / rate - 1.0).abs() <= tol, "{steady} vs {rate}");
            let first = r[0].arrival;
            let whole = n as f64 / (run.end.since(first).as_ps() as f64 / 1e12);
            let arrivals = n as f64 / (to.since(first).as_ps() as f64 / 1e12);
            assert!(
                whole <= arrivals && whole >= 0.995 * arrivals,
                "{whole} vs {arrivals}"
            );
        }
    }

    /// A GPU never holds more KV cache than it has, nor more sequences than its batch:
    /// replayed per GPU from each request's reservation (admission) to its finish.
    #[test]
    fn capacity_limits_hold() {
        for mode in [Mode::Aggregated, pd()] {
            let s = star();
            let mut l = layout(mode);
            l.kv_capacity_tokens = 7000;
            l.max_batch = 3;
            let reqs = poisson(300, 200.0, 3);
            let run =
                simulate(s.fabric(), s.net(), &l, &reqs, &mut Linear { calls: 0 }).expect("runs");
            let mut events: Vec<(u32, Time, i64, i64)> = Vec::new();
            for r in &run.requests {
                assert!(r.admitted <= r.first_token && r.first_token <= r.finish);
                let need = (r.input + r.output) as i64;
                events.push((r.decode_gpu, r.admitted, 1, need));
                events.push((r.decode_gpu, r.finish, -1, -need));
            }
            // Releases before reservations at one time (a freed slot is reused at once).
            events.sort_by_key(|e| (e.0, e.1, e.2));
            let (mut n, mut kv, mut most) = (0i64, 0i64, (0, 0));
            let mut gpu = u32::MAX;
            for (g, _, dn, dkv) in events {
                if g != gpu {
                    (gpu, n, kv) = (g, 0, 0);
                }
                n += dn;
                kv += dkv;
                most = (most.0.max(n), most.1.max(kv));
            }
            assert!(most.0 <= 3, "{} sequences on one GPU", most.0);
            assert!(most.1 <= 7000, "{} KV tokens on one GPU", most.1);
            // The limits bind: without them more would have run at once.
            assert_eq!(most.0, 3, "the batch limit is reached");
        }
    }

    /// [`Linear`] whose decode iterations load `links` (link, utilisation) over their
    /// whole length, and whose prefill iterations load nothing.
    struct Loaded {
        inner: Linear,
        links: Vec<(u32, f64)>,
        cap: Vec<f64>,
        last_decode: Option<Dur>,
    }

    impl Loaded {
        fn new(s: &Scenario, links: Vec<(u32, f64)>) -> Loaded {
            let cap = OnlineFlows::new(s.fabric(), s.net());
            let cap = (0..s.fabric().topology.links().len() as u32)
                .map(|l| cap.capacity(l))
                .collect();
            Loaded {
                inner: Linear { calls: 0 },
                links,
                cap,
                last_decode: None,
            }
        }
    }

    impl StepCost for Loaded {
        fn decode(&mut self, g: u32, b: u32, ctx: u64) -> Result<Dur, QueryError> {
            let d = self.inner.decode(g, b, ctx)?;
            self.last_decode = Some(d);
            Ok(d)
        }
        fn prefill(&mut self, g: u32, t: u32, p: u64) -> Result<Dur, QueryError> {
            self.last_decode = None;
            self.inner.prefill(g, t, p)
        }
        fn mixed(&mut self, g: u32, b: u32, c: u64, t: u32, p: u64) -> Result<Dur, QueryError> {
            self.last_decode = None;
            self.inner.mixed(g, b, c, t, p)
        }
        fn link_bytes(&mut self, out: &mut Vec<(u32, f64)>) {
            if let Some(d) = self.last_decode {
                out.extend(
                    self.links
                        .iter()
                        .map(|&(l, u)| (l, u * self.cap[l as usize] * d.as_ps() as f64)),
                );
            }
        }
    }

    /// Request 0 decodes for a long time (short prompt, long output); request 1 arrives
    /// later, so its KV transfer runs while the decode pool iterates.
    fn decoding_and_probe() -> Vec<Request> {
        vec![
            Request {
                id: 0,
                arrival: Time::from_ps(5 * US),
                input: 10,
                output: 200,
                cached: 0,
            },
            Request {
                id: 1,
                arrival: Time::from_ps(20_000 * US),
                input: 1000,
                output: 2,
                cached: 0,
            },
        ]
    }

    /// The route of request 1's KV cache in [`decoding_and_probe`]: prefill GPU 0 to the
    /// second decode GPU (the first holds request 0), the second flow started.
    fn probe_route(s: &Scenario) -> crate::flow::paths::Route {
        let m = MessageSpec {
            src: NodeId(0),
            dst: NodeId(5),
            bytes: 1000 * 70_000,
            start: Time::ZERO,
        };
        crate::flow::paths::route(s.fabric(), s.net(), 1, &m)
    }

    /// A KV transfer that crosses links the decode pool's iterations load with utilisation
    /// u drains at (1 - u) of its bottleneck (the iterations run throughout it): wire bytes
    /// / ((1 - u) x bottleneck) + tail. With the coupling off it takes what it takes alone;
    /// past u = 1 it keeps MIN_SHARE.
    #[test]
    fn kv_transfers_get_what_the_iterations_leave() {
        let s = star();
        let l = layout(pd());
        let reqs = decoding_and_probe();
        let r = probe_route(&s);
        let alone = r
            .links
            .iter()
            .map(|&(link, w)| {
                s.fabric().topology.links()[link.0 as usize].rate.bps() as f64 / 8e12 / w
            })
            .fold(f64::INFINITY, f64::min);
        let kv_time = |u: f64, on: bool| {
            let links = r.links.iter().map(|&(link, _)| (link.0, u)).collect();
            let mut cost = Loaded::new(&s, links);
            let opts = SimOptions {
                kv_shares_fabric: on,
            };
            let run = simulate_with(s.fabric(), s.net(), &l, &reqs, &mut cost, opts).unwrap();
            let r1 = &run.requests[1];
            assert_eq!(r1.decode_gpu, 1, "the probe goes to the free decode GPU");
            let (ks, kf) = r1.kv_transfer.unwrap();
            // The decode pool is busy with request 0 throughout the transfer.
            assert!(run.requests[0].first_token < ks && run.requests[0].finish > kf);
            kf.since(ks).as_ps() as f64
        };
        let tail = r.tail.as_ps() as f64;
        let wire = r.wire_bytes as f64;
        let off = kv_time(0.4, false);
        assert!(
            (off - (wire / alone).ceil() - tail).abs() <= 1.0,
            "off: {off}"
        );
        for (u, share) in [(0.0, 1.0), (0.4, 0.6), (0.9, 0.1), (1.2, MIN_SHARE)] {
            let on = kv_time(u, true);
            let want = wire / (share * alone) + tail;
            // Re-declared at every iteration start: a picosecond of rounding each time.
            assert!((on - want).abs() <= 20.0, "u = {u}: {on} vs {want} ps");
        }
    }

    /// The background lasts only while an iteration runs: a lone request's transfer (both
    /// pools idle by then) takes what it takes alone, coupling on or off; and a cost that
    /// knows no link bytes gives the results of the coupling off exactly.
    #[test]
    fn no_running_iteration_no_background() {
        let s = star();
        let l = layout(pd());
        let everywhere: Vec<(u32, f64)> = (0..s.fabric().topology.links().len() as u32)
            .map(|link| (link, 0.5))
            .collect();
        let lone = one(1000, 3, 0);
        let runs: Vec<ServingRun> = [true, false]
            .iter()
            .map(|&on| {
                let mut cost = Loaded::new(&s, everywhere.clone());
                let opts = SimOptions {
                    kv_shares_fabric: on,
                };
                simulate_with(s.fabric(), s.net(), &l, &lone, &mut cost, opts).unwrap()
            })
            .collect();
        assert!(runs[0].requests == runs[1].requests);
        let reqs = poisson(400, 40.0, 5);
        let plain = run(pd(), &reqs);
        let opts = SimOptions {
            kv_shares_fabric: false,
        };
        let mut cost = Loaded::new(&s, everywhere.clone());
        let off = simulate_with(s.fabric(), s.net(), &l, &reqs, &mut cost, opts).unwrap();
        assert!(plain.requests == off.requests, "off = no link bytes known");
        // And on with the load, the same requests' transfers take longer.
        let mut cost = Loaded::new(&s, everywhere);
        let on = simulate_with(
            s.fabric(),
            s.net(),
            &l,
            &reqs,
            &mut cost,
            SimOptions::default(),
        )
        .unwrap();
        let kv = |run: &ServingRun| -> u64 {
            run.requests
                .iter()
                .filter_map(|r| r.kv_transfer)
                .map(|(a, b)| b.since(a).as_ps())
                .sum()
        };
        assert!(kv(&on) > kv(&plain), "{} vs {}", kv(&on), kv(&plain));
    }

    #[test]
    fn deterministic() {
        let reqs = poisson(500, 30.0, 11);
        let a = run(pd(), &reqs);
        let b = run(pd(), &reqs);
        assert_eq!(a.requests, b.requests);
    }

    fn grow(watermark_tokens: u64) -> Admission {
        Admission::Grow { watermark_tokens }
    }

    fn run_admitting(l: &Layout, reqs: &[Request], admission: Admission) -> ServingRun {
        let s = star();
        simulate_admitting(
            s.fabric(),
            s.net(),
            l,
            reqs,
            &mut Linear { calls: 0 },
            SimOptions::default(),
            admission,
        )
        .expect("runs")
    }

    /// One aggregated GPU with room for `cap` KV tokens, prompts prefilled in one chunk.
    fn one_gpu(cap: u64) -> Layout {
        Layout {
            decode_gpus: vec![NodeId(0)],
            kv_capacity_tokens: cap,
            chunk_tokens: 4096,
            ..layout(Mode::Aggregated)
        }
    }

    /// Closed form. One GPU holds N = 1000 KV tokens; A and B each have a 400-token prompt
    /// and 300 output tokens: either fits alone (700), both prompts fit (800), both whole
    /// caches do not (1400).
    /// - Reserve: B waits for A's finish; 300 iterations each (a prefill, 299 decodes).
    /// - Grow: A prefills in iteration 1; B is admitted when iteration 2 starts (A grown to
    ///   401, +400 = 801) and prefills in it. From iteration 3 both grow a token per
    ///   iteration: before iteration j's growth they hold 801 + 2 (j - 3), so the first j
    ///   where they cannot both grow (> N - 2) is j = 102. B, the newest, is preempted
    ///   then, having made 1 + 99 tokens: its length is 400 + 100 = 500, the tokens
    ///   recomputed. A holds 501 after growing, so B (500 + A's >= 501 > N) waits for A's
    ///   finish (iteration 300), is prefilled again over 500 tokens (making its token 101)
    ///   and decodes its last 199: 500 iterations in all.
    #[test]
    fn grow_admits_earlier_and_preempts_the_newest_once() {
        const N: u64 = 1000;
        let l = one_gpu(N);
        let reqs: Vec<Request> = (0..2)
            .map(|id| Request {
                id,
                arrival: Time::from_ps((5 + 10 * id as u64) * US),
                input: 400,
                output: 300,
                cached: 0,
            })
            .collect();
        let reserve = run_admitting(&l, &reqs, Admission::Reserve);
        let grow = run_admitting(&l, &reqs, grow(0));
        let (ra, rb) = (&reserve.requests[0], &reserve.requests[1]);
        let (ga, gb) = (&grow.requests[0], &grow.requests[1]);
        // Reserve: nothing preempted, B admitted at A's finish, 600 iterations.
        assert_eq!((reserve.preemptions, reserve.recomputed_tokens), (0, 0));
        assert_eq!(rb.admitted, ra.finish);
        assert_eq!(reserve.decode.iterations, 600);
        // Grow: B admitted when iteration 2 starts (A's first token), long before.
        assert_eq!(grow.decode_starts[1], ga.first_token);
        assert_eq!(gb.admitted, ga.first_token);
        assert!(gb.admitted < rb.admitted);
        assert_eq!(
            gb.first_token, grow.decode_starts[2],
            "B's prefill: iteration 2"
        );
        // The iteration where the two cannot both grow, from the closed form above.
        let j = (3..).find(|j| 801 + 2 * (j - 3) + 2 > N).unwrap();
        assert_eq!(j, 102);
        assert_eq!(
            (ga.preemptions, gb.preemptions, grow.preemptions),
            (0, 1, 1)
        );
        assert_eq!(gb.stints.len(), 2);
        let (s0, s1) = (&gb.stints[0], &gb.stints[1]);
        assert_eq!(
            s0.end,
            grow.decode_starts[j as usize - 1],
            "preempted at j's start"
        );
        // Its length then: the prompt and the tokens made (one from the prefill, one per
        // decode iteration it joined).
        let made = 1 + grow
            .decode_starts
            .iter()
            .filter(|&&t| s0.decoding.unwrap() <= t && t < s0.end)
            .count() as u64;
        assert_eq!(made, 100);
        assert_eq!(grow.recomputed_tokens, 400 + made);
        assert_eq!((s0.reserved, s1.reserved), (400, 400 + made));
        // Re-admitted when A's cache is freed, prefilled again, then decoded to the end.
        assert_eq!(s1.admitted, ga.finish);
        assert_eq!(gb.finish, grow.end);
        assert_eq!(grow.decode.iterations, 500);
        // TTFT keeps the first token; every token made once (finish checks generated =
        // output); a lone A's and the prefix cache's counts unchanged.
        assert_eq!(gb.first_token, grow.decode_starts[2]);
        assert_eq!(grow.prefill_tokens, 800);
        // A never waited, so it finishes as it does under reserve... except that it ran
        // beside B for a while: its TPOT is larger, its TTFT the same.
        assert_eq!(ga.first_token, ra.first_token);
        assert!(ga.finish > ra.finish);
        assert!(
            gb.finish < rb.finish,
            "B gains from the early start despite recompute"
        );
    }

    /// Under grow, no GPU ever holds more KV cache than it has, nor more sequences than
    /// its batch: replayed from each request's stints (KV reserved at admission, plus one
    /// token for every iteration started while it decodes) at every iteration start and
    /// every admission. A finished stint's cache is its input + output - 1 tokens (the
    /// last token's KV is never written); a stint preempted while decoding is recomputed
    /// over its length (its cache + the newest token).
    #[test]
    fn grow_capacity_limits_hold() {
        for mode in [Mode::Aggregated, pd()] {
            let mut l = layout(mode);
            l.kv_capacity_tokens = 7000;
            l.max_batch = 8;
            let reqs = poisson(300, 200.0, 3);
            let run = run_admitting(&l, &reqs, grow(50));
            assert!(run.preemptions > 10, "{} preemptions", run.preemptions);
            let starts = &run.decode_starts;
            let grown = |s: &Stint, t: Time| match s.decoding {
                None => 0,
                Some(d) => starts
                    .iter()
                    .filter(|&&x| d <= x && x <= t && x < s.end)
                    .count() as u64,
            };
            let mut recomputed = 0u64;
            let mut preemptions = 0;
            for r in &run.requests {
                assert_eq!(r.stints.len(), r.preemptions as usize + 1);
                preemptions += r.preemptions as u64;
                for (k, s) in r.stints.iter().enumerate() {
                    assert!(s.admitted <= s.end);
                    let held = s.reserved + grown(s, s.end);
                    match r.stints.get(k + 1) {
                        None => {
                            assert_eq!(s.end, r.finish);
                            assert_eq!(held, (r.input + r.output - 1) as u64);
                        }
                        Some(next) if s.decoding.is_some() => {
                            assert_eq!(next.reserved, held + 1);
                            recomputed += next.reserved - r.cached as u64;
                        }
                        Some(next) => assert_eq!(next.reserved, s.reserved),
                    }
                }
            }
            assert_eq!(preemptions, run.preemptions);
            assert!(recomputed <= run.recomputed_tokens);
            let mut times: Vec<Time> = starts.clone();
            times.extend(
                run.requests
                    .iter()
                    .flat_map(|r| r.stints.iter().map(|s| s.admitted)),
            );
            times.sort_unstable();
            times.dedup();
            let stints: Vec<&Stint> = run.requests.iter().flat_map(|r| &r.stints).collect();
            let (mut most_kv, mut most_n) = (0u64, 0u64);
            for &t in &times {
                let mut kv = vec![0u64; l.decode_gpus.len()];
                let mut n = vec![0u64; l.decode_gpus.len()];
                for s in stints.iter().filter(|s| s.admitted <= t && t < s.end) {
                    kv[s.gpu as usize] += s.reserved + grown(s, t);
                    n[s.gpu as usize] += 1;
                }
                most_kv = most_kv.max(*kv.iter().max().unwrap());
                most_n = most_n.max(*n.iter().max().unwrap());
            }
            assert!(most_kv <= 7000, "{most_kv} KV tokens on one GPU");
            assert!(most_n <= 8, "{most_n} sequences on one GPU");
            // The capacity binds: the GPUs were nearly full.
            assert!(most_kv > 6900, "{most_kv}");
        }
    }

    /// Aggregated, grow with room for everything admits as reserve does and never
    /// preempts: the same requests, times and iterations (watermark 0). (Under P/D the
    /// decode GPUs are chosen by free KV, which differs: prompts held, not whole caches.)
    #[test]
    fn grow_without_pressure_is_reserve() {
        {
            let l = layout(Mode::Aggregated);
            let reqs = poisson(400, 40.0, 9);
            let a = run_admitting(&l, &reqs, Admission::Reserve);
            let b = run_admitting(&l, &reqs, grow(0));
            assert_eq!(b.preemptions, 0);
            let strip = |run: &ServingRun| -> Vec<RequestResult> {
                run.requests
                    .iter()
                    .map(|r| RequestResult {
                        stints: Vec::new(),
                        ..r.clone()
                    })
                    .collect()
            };
            assert!(strip(&a) == strip(&b));
        }
    }

    /// Under grow, Little's law still holds on the books and the same requests give the
    /// same results.
    #[test]
    fn grow_littles_law_and_determinism() {
        for mode in [Mode::Aggregated, pd()] {
            let mut l = layout(mode);
            l.kv_capacity_tokens = 9000;
            let reqs = poisson(1000, 60.0, 7);
            let run = run_admitting(&l, &reqs, grow(90));
            assert!(run.preemptions > 0);
            let span = run.end.since(reqs[0].arrival).as_ps() as f64;
            let sum: f64 = run
                .requests
                .iter()
                .map(|r| r.latency().as_ps() as f64)
                .sum();
            let want = sum / span;
            assert!((run.mean_in_system - want).abs() <= 1e-9 * want);
            let again = run_admitting(&l, &reqs, grow(90));
            assert!(run.requests == again.requests);
            assert_eq!(run.decode_starts, again.decode_starts);
            assert_eq!(run.recomputed_tokens, again.recomputed_tokens);
        }
    }
}
