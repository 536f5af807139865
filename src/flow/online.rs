//! Fluid flows that start while the simulation runs: the flow level for callers that decide
//! what to send as time goes on (request-level serving's KV-cache transfers).
//!
//! Same routes ([`route`]), capacities and fixed tail as the batch flow level
//! ([`super::simulate`]); rates are the max-min fair allocation over the active flows,
//! recomputed from scratch ([`full_recompute`]) at every distinct time a flow starts or
//! drains. That is cheap while few flows are active at once (tens of transfers, not the
//! millions of messages of a decode step, which go through the incremental allocator).
//!
//! **Background traffic.** A caller may declare traffic that is not made of these flows
//! ([`OnlineFlows::set_background`]: serving's pools' own iteration traffic): so many wire
//! bytes per link spread evenly over a span (a fluid approximation). The flows then share
//! what it leaves of each link, capacity x (1 - u) with u the background's utilisation
//! summed over its sources, never less than [`MIN_SHARE`] of the capacity. The background
//! itself is not slowed by the flows (first order).
//!
//! Invariant: time only moves forward (`start`, `advance` and `set_background` never go
//! back); each flow drains its wire bytes exactly once and finishes at drain + its route's
//! tail; the order of completions at one time is the order the flows started; no link's
//! capacity is ever zero or negative. Deterministic.

use super::maxmin::full_recompute;
use super::paths::route;
use super::{assemble, links_of};
use crate::engine::{Dur, PS_PER_S, Time};
use crate::net::{MessageSpec, NetParams, NetRun};
use crate::topology::Fabric;

/// The least share of a link's capacity the flows keep however busy the background makes
/// it: a guard for utilisations at or above 1 (interpolated or summed over sources), so a
/// transfer is slowed, never stopped. Not a model of how a switch shares a full link.
pub const MIN_SHARE: f64 = 0.05;

struct Flow {
    spec: MessageSpec,
    links: Vec<(u32, f64)>,
    wire_bytes: u64,
    tail: Dur,
    /// Wire bytes left as of `since`.
    left: f64,
    since: Time,
    rate: f64,
    /// When it drains at its current rate.
    drain_at: Time,
    finish: Option<Time>,
}

/// Flows started one at a time on a fabric, each finishing when its last byte arrives.
pub struct OnlineFlows<'a> {
    fabric: &'a Fabric,
    params: &'a NetParams,
    /// Each link's capacity, bytes/ps, and what the background leaves of it.
    base: Vec<f64>,
    cap: Vec<f64>,
    /// Per background source: its utilisation of each link (dense, empty until used) and
    /// the links it loads.
    background: Vec<(Vec<f64>, Vec<u32>)>,
    flows: Vec<Flow>,
    /// Draining flows, in start order.
    active: Vec<u32>,
    /// Drained flows waiting for their tail: (finish time, flow), in drain order.
    tails: Vec<(Time, u32)>,
    now: Time,
}

impl<'a> OnlineFlows<'a> {
    pub fn new(fabric: &'a Fabric, params: &'a NetParams) -> OnlineFlows<'a> {
        let cap: Vec<f64> = fabric
            .topology
            .links()
            .iter()
            .map(|l| l.rate.bps() as f64 / 8.0 / PS_PER_S as f64)
            .collect();
        OnlineFlows {
            fabric,
            params,
            base: cap.clone(),
            cap,
            background: Vec::new(),
            flows: Vec::new(),
            active: Vec::new(),
            tails: Vec::new(),
            now: Time::ZERO,
        }
    }

    /// Starts sending `bytes` from `src` to `dst` at `now` (not before the last event
    /// processed); returns the flow's id (dense, in start order).
    pub fn start(&mut self, now: Time, spec: MessageSpec) -> u32 {
        assert!(now >= self.now, "flows start in time order");
        assert!(spec.src != spec.dst && spec.bytes > 0);
        self.settle(now);
        let id = self.flows.len() as u32;
        let r = route(self.fabric, self.params, id, &spec);
        self.flows.push(Flow {
            spec: MessageSpec { start: now, ..spec },
            links: r.links.iter().map(|&(l, w)| (l.0, w)).collect(),
            wire_bytes: r.wire_bytes,
            tail: r.tail,
            left: r.wire_bytes as f64,
            since: now,
            rate: 0.0,
            drain_at: Time::MAX,
            finish: None,
        });
        self.active.push(id);
        self.reallocate();
        id
    }

    /// The time of the next drain or finish, if any flow is still in flight.
    pub fn next_event(&self) -> Option<Time> {
        let drain = self.active.iter().map(|&f| self.flows[f as usize].drain_at);
        let tail = self.tails.iter().map(|&(t, _)| t);
        drain.chain(tail).min()
    }

    /// Processes every drain and finish up to and including `to`; appends the flows that
    /// finished, in finish order (ties: drain order, then start order).
    pub fn advance(&mut self, to: Time, finished: &mut Vec<u32>) {
        while let Some(t) = self.next_event().filter(|&t| t <= to) {
            self.settle(t);
            // Tails that end now, in drain order.
            let mut i = 0;
            while i < self.tails.len() {
                if self.tails[i].0 == t {
                    let (_, f) = self.tails.remove(i);
                    self.flows[f as usize].finish = Some(t);
                    finished.push(f);
                } else {
                    i += 1;
                }
            }
            // Flows that drain now leave the allocation; their tail starts.
            let before = self.active.len();
            let flows = &mut self.flows;
            let tails = &mut self.tails;
            self.active.retain(|&f| {
                let fl = &mut flows[f as usize];
                if fl.drain_at != t {
                    return true;
                }
                fl.left = 0.0;
                tails.push((t + fl.tail, f));
                false
            });
            if self.active.len() != before {
                self.reallocate();
            }
        }
    }

    /// From `now` on, background source `source` (any small index; serving uses one per
    /// pool) loads each link `l` of `bytes` with its wire bytes spread evenly over `span`:
    /// utilisation u = bytes / (capacity x span). It replaces what the source declared
    /// before; an empty `bytes` (or a zero `span`) clears it. Flows in flight get the
    /// capacity left, capacity x max(1 - the sources' summed u, [`MIN_SHARE`]), from now;
    /// when no link's capacity changes, nothing else does (not even rounding).
    pub fn set_background(&mut self, now: Time, source: usize, bytes: &[(u32, f64)], span: Dur) {
        assert!(now >= self.now, "time only moves forward");
        let links = self.base.len();
        if self.background.len() <= source {
            self.background.resize_with(source + 1, Default::default);
        }
        let (util, loaded) = &mut self.background[source];
        if util.is_empty() {
            util.resize(links, 0.0);
        }
        let mut changed = std::mem::take(loaded);
        for &l in &changed {
            util[l as usize] = 0.0;
        }
        let span = span.as_ps() as f64;
        if span > 0.0 {
            for &(l, b) in bytes {
                if b > 0.0 {
                    util[l as usize] += b / (self.base[l as usize] * span);
                    loaded.push(l);
                }
            }
        }
        changed.extend_from_slice(loaded);
        let mut any = false;
        for l in changed {
            let l = l as usize;
            let u: f64 = self
                .background
                .iter()
                .map(|(u, _)| u.get(l).copied().unwrap_or(0.0))
                .sum();
            let cap = self.base[l] * (1.0 - u).max(MIN_SHARE);
            if cap != self.cap[l] {
                self.cap[l] = cap;
                any = true;
            }
        }
        if any && !self.active.is_empty() {
            // The bytes sent so far at the old rates, then the new rates from now.
            self.settle(now);
            self.reallocate();
        } else {
            self.now = now;
        }
    }

    /// The capacity, bytes/ps, flows may use on `link` now (its line rate less the
    /// background).
    pub fn capacity(&self, link: u32) -> f64 {
        self.cap[link as usize]
    }

    /// Bytes sent at the current rates up to `t`.
    fn settle(&mut self, t: Time) {
        for &f in &self.active {
            let fl = &mut self.flows[f as usize];
            fl.left = (fl.left - fl.rate * t.since(fl.since).as_ps() as f64).max(0.0);
            fl.since = t;
        }
        self.now = t;
    }

    fn reallocate(&mut self) {
        let routes: Vec<Vec<(u32, f64)>> = self
            .active
            .iter()
            .map(|&f| self.flows[f as usize].links.clone())
            .collect();
        let rates = full_recompute(&self.cap, &routes);
        for (&f, rate) in self.active.iter().zip(rates) {
            let fl = &mut self.flows[f as usize];
            fl.rate = rate;
            // Bounded: bytes <= 2^40 and rates >= 1 bit/s keep this far below u64 ps.
            fl.drain_at = fl.since + Dur::from_ps((fl.left / rate).ceil() as u64);
        }
    }

    /// Flows started so far.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// When flow `f` finished (its last byte arrived), once it has.
    pub fn finish(&self, f: u32) -> Option<Time> {
        self.flows[f as usize].finish
    }

    /// Every flow as a finished message, with the wire bytes each put on each link (the
    /// batch flow level's result type). Flows still in flight are left out.
    pub fn into_run(self) -> NetRun {
        let mut bytes = vec![0.0f64; self.fabric.topology.links().len()];
        let done: Vec<&Flow> = self.flows.iter().filter(|f| f.finish.is_some()).collect();
        for fl in &done {
            for &(l, w) in &fl.links {
                bytes[l as usize] += fl.wire_bytes as f64 * w;
            }
        }
        let specs: Vec<MessageSpec> = done.iter().map(|f| f.spec.clone()).collect();
        let started: Vec<Time> = done.iter().map(|f| f.spec.start).collect();
        let finish = done.iter().map(|f| f.finish.expect("filtered")).collect();
        let links = links_of(self.fabric, &bytes);
        assemble(&specs, &started, finish, links, Default::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scenario;
    use crate::topology::{LinkId, NodeId};

    fn star() -> Scenario {
        Scenario::parse(
            crate::config::STAR_SCENARIO,
            crate::config::STAR_SCENARIO_ORIGIN,
            None,
        )
        .expect("embedded scenario")
    }

    fn msg(src: u32, dst: u32, bytes: u64) -> MessageSpec {
        MessageSpec {
            src: NodeId(src),
            dst: NodeId(dst),
            bytes,
            start: Time::ZERO,
        }
    }

    /// Flows all started at zero finish exactly where the batch flow level puts them.
    #[test]
    fn agrees_with_the_batch_flow_level() {
        let s = star();
        let specs: Vec<MessageSpec> = (0..4)
            .flat_map(|a| (0..4).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| msg(a, b, 1 << 20))
            .collect();
        let batch = super::super::simulate(s.fabric(), s.net(), &specs, &mut |_| {}).unwrap();
        let mut online = OnlineFlows::new(s.fabric(), s.net());
        for m in &specs {
            online.start(Time::ZERO, m.clone());
        }
        let mut done = Vec::new();
        online.advance(Time::MAX, &mut done);
        assert_eq!(done.len(), specs.len());
        for (i, m) in batch.messages.iter().enumerate() {
            let want = m.finish.expect("finished").as_ps() as i64;
            let got = online.finish(i as u32).expect("finished").as_ps() as i64;
            assert!((want - got).abs() <= 2, "flow {i}: {got} vs {want} ps");
        }
    }

    /// A flow that joins a link halfway slows the first one: both share from then on.
    #[test]
    fn a_late_flow_shares_the_link() {
        let s = star();
        let mut net = OnlineFlows::new(s.fabric(), s.net());
        let mut done = Vec::new();
        let a = net.start(Time::ZERO, msg(0, 1, 1 << 20));
        let alone = net.next_event().expect("in flight");
        let mid = Time::from_ps(alone.as_ps() / 2);
        net.advance(mid, &mut done);
        assert!(done.is_empty());
        let b = net.start(mid, msg(2, 1, 1 << 20));
        net.advance(Time::MAX, &mut done);
        let (fa, fb) = (net.finish(a).unwrap(), net.finish(b).unwrap());
        assert!(fa > alone, "the shared link slows the first flow");
        assert!(fb > fa, "the second flow started later with as many bytes");
        assert_eq!(done, vec![a, b]);
        let run = net.into_run();
        assert_eq!(run.bytes_delivered, 2 << 20);
    }

    /// The flow's bottleneck rate, bytes/ps, on the capacities the flows see now.
    fn bottleneck(net: &OnlineFlows, links: &[(LinkId, f64)]) -> f64 {
        links
            .iter()
            .map(|&(l, w)| net.capacity(l.0) / w)
            .fold(f64::INFINITY, f64::min)
    }

    /// Background traffic with utilisation u on every link of a flow's route leaves it
    /// capacity x (1 - u): it drains in wire bytes / ((1 - u) x its bottleneck) and ends its
    /// route's tail later. Past u = 1 it keeps MIN_SHARE; a cleared background gives the
    /// whole line rate back, to the bit.
    #[test]
    fn background_leaves_the_rest_of_each_link() {
        let s = star();
        let m = msg(0, 1, 3 << 20);
        let r = route(s.fabric(), s.net(), 0, &m);
        let span = Dur::from_ps(1_000_000_000);
        for (u, share) in [(0.0, 1.0), (0.3, 0.7), (0.75, 0.25), (1.4, MIN_SHARE)] {
            let mut net = OnlineFlows::new(s.fabric(), s.net());
            let alone = bottleneck(&net, &r.links);
            // Two sources of u / 2 each on every link of the route.
            let load: Vec<(u32, f64)> = r
                .links
                .iter()
                .map(|&(l, _)| (l.0, u / 2.0 * net.capacity(l.0) * span.as_ps() as f64))
                .collect();
            net.set_background(Time::ZERO, 0, &load, span);
            net.set_background(Time::ZERO, 1, &load, span);
            let f = net.start(Time::ZERO, m.clone());
            let mut done = Vec::new();
            net.advance(Time::MAX, &mut done);
            let want =
                (r.wire_bytes as f64 / (share * alone)).ceil() as i64 + r.tail.as_ps() as i64;
            let got = net.finish(f).unwrap().as_ps() as i64;
            assert!((got - want).abs() <= 1, "u = {u}: {got} vs {want} ps");
            let end = net.finish(f).unwrap();
            net.set_background(end, 0, &[], Dur::ZERO);
            net.set_background(end, 1, &[], Dur::ZERO);
            for &(l, _) in &r.links {
                assert_eq!(net.capacity(l.0), net.base[l.0 as usize], "cleared");
            }
        }
    }

    /// A background that starts while a flow is in flight slows it from then on: the bytes
    /// sent before at the full rate, the rest at (1 - u).
    #[test]
    fn background_applies_from_when_it_is_declared() {
        let s = star();
        let m = msg(0, 1, 1 << 20);
        let r = route(s.fabric(), s.net(), 0, &m);
        let mut net = OnlineFlows::new(s.fabric(), s.net());
        let rate = bottleneck(&net, &r.links);
        let f = net.start(Time::ZERO, m);
        let half = Time::from_ps((r.wire_bytes as f64 / 2.0 / rate).round() as u64);
        let mut done = Vec::new();
        net.advance(half, &mut done);
        let span = Dur::from_ps(1 << 40);
        let u = 0.5;
        let load: Vec<(u32, f64)> = r
            .links
            .iter()
            .map(|&(l, _)| (l.0, u * net.capacity(l.0) * span.as_ps() as f64))
            .collect();
        net.set_background(half, 0, &load, span);
        net.advance(Time::MAX, &mut done);
        let left = r.wire_bytes as f64 - rate * half.as_ps() as f64;
        let want = half.as_ps() as f64 + left / (rate * (1.0 - u)) + r.tail.as_ps() as f64;
        let got = net.finish(f).unwrap().as_ps() as f64;
        assert!((got - want).abs() <= 2.0, "{got} vs {want} ps");
    }
}
