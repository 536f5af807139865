//! One kernel call as workload tasks (see the module above for the model).

use std::collections::{BTreeMap, BTreeSet};

use super::{Library, SmHoldMode};
use crate::engine::{Bandwidth, Dur, Time};
use crate::net::{MessageSpec, NetParams, TaskRef, Workload};
use crate::topology::{Fabric, NodeId, NodeKind};

/// A logical transfer of one kernel call: `bytes` from `src` to `dst` (a GPU to itself is a
/// local copy).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub src: NodeId,
    pub dst: NodeId,
    pub bytes: u64,
}

/// What a kernel call added: per GPU it touches, the tasks after which its part is done
/// (the end delay, or with `ideal` the messages it sends and receives), and the fixed-cost
/// tasks (start and end delays) for reporting.
#[derive(Clone, Debug, Default)]
pub struct Launched {
    pub done: BTreeMap<NodeId, Vec<TaskRef>>,
    pub messages: Vec<u32>,
    pub start_delays: Vec<u32>,
    pub end_delays: Vec<u32>,
    pub local_copies: Vec<u32>,
    /// A combine's reductions at its receivers, each after that GPU's end delay.
    pub reductions: Vec<u32>,
}

/// Whether the call is a combine (the receiver reduces what it gets) or not.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Dispatch,
    Combine,
}

/// The rate limit SM-driven NVLink stores put on GPU `g`'s NVLink sends under `lib`, or
/// `None` where the library sets none (or `g` has no NVLink).
pub fn nvlink_limit(
    lib: &Library,
    fabric: &Fabric,
    params: &NetParams,
    g: NodeId,
) -> Option<Bandwidth> {
    let nv = lib.nvlink.as_ref()?;
    let topo = &fabric.topology;
    let wire = params.nvlink_wire;
    let payload_share = wire.mtu_bytes as f64 / (wire.mtu_bytes + wire.header_bytes) as f64;
    let line: f64 = topo
        .links()
        .iter()
        .filter(|l| l.from == g && matches!(topo.kind(l.to), NodeKind::NvSwitch | NodeKind::Gpu))
        .map(|l| l.rate.bps() as f64)
        .sum();
    if line == 0.0 {
        return None;
    }
    let by_link = line * payload_share * nv.efficiency;
    let by_sms = nv
        .sm_bound
        .map_or(f64::INFINITY, |(k, r)| r.bps() as f64 * k as f64);
    Bandwidth::from_bps(by_link.min(by_sms).round() as u64)
}

/// One kernel call: `library` moving `transfers`, starting no earlier than `start`.
#[derive(Copy, Clone, Debug)]
pub struct Kernel<'a> {
    pub library: &'a Library,
    pub op: Op,
    pub transfers: &'a [Transfer],
    pub start: Time,
    /// SMs of each GPU: the kernel holds `library.sms` of them (as its `sm_hold` says),
    /// slowing the compute kernel it overlaps in proportion. 0: not modelled.
    pub gpu_sms: u32,
}

/// Adds kernel call `k` to `w`; on each GPU it waits for `after(gpu)`. With the `ideal`
/// library each transfer between two GPUs is one plain message after `after(src)`, and
/// nothing else is added.
pub fn launch(
    w: &mut Workload,
    fabric: &Fabric,
    params: &NetParams,
    k: Kernel<'_>,
    after: &mut dyn FnMut(NodeId) -> Vec<TaskRef>,
) -> Launched {
    let Kernel {
        library: lib,
        op,
        transfers,
        start,
        gpu_sms,
    } = k;
    let mut out = Launched::default();
    if lib.is_ideal() {
        for t in transfers.iter().filter(|t| t.src != t.dst && t.bytes > 0) {
            let (m, i) = message(w, t, start, &after(t.src));
            out.messages.push(i);
            out.done.entry(t.src).or_default().push(m);
            out.done.entry(t.dst).or_default().push(m);
        }
        return out;
    }
    // The GPUs the call touches, in id order (a deterministic task order).
    let mut gpus: BTreeMap<NodeId, Vec<TaskRef>> = BTreeMap::new();
    for t in transfers.iter().filter(|t| t.bytes > 0) {
        gpus.entry(t.src).or_default();
        gpus.entry(t.dst).or_default();
    }
    let mut begin: BTreeMap<NodeId, TaskRef> = BTreeMap::new();
    for &g in gpus.keys() {
        let deps = after(g);
        let d = w.delay(g, lib.start_cost(), &deps);
        let TaskRef::Compute(i) = d else {
            unreachable!()
        };
        w.computes[i as usize].start = start;
        out.start_delays.push(i);
        begin.insert(g, d);
    }
    let mut nvl_limiter: BTreeMap<NodeId, Option<u32>> = BTreeMap::new();
    let mut rdma_limiter: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut received: BTreeMap<NodeId, u64> = BTreeMap::new();
    // GPUs with something to send (a local copy included).
    let mut senders: BTreeSet<NodeId> = BTreeSet::new();
    for t in transfers.iter().filter(|t| t.bytes > 0) {
        *received.entry(t.dst).or_default() += t.bytes;
        senders.insert(t.src);
        if t.src == t.dst {
            if let Some(rate) = lib.local_copy {
                let d = w.delay(t.src, rate.serialize(t.bytes), &[begin[&t.src]]);
                let TaskRef::Compute(i) = d else {
                    unreachable!()
                };
                out.local_copies.push(i);
                gpus.get_mut(&t.src).expect("listed").push(d);
            }
            continue;
        }
        let (m, i) = message(w, t, start, &[begin[&t.src], begin[&t.dst]]);
        let limiter = if fabric.same_domain(t.src, t.dst) {
            *nvl_limiter
                .entry(t.src)
                .or_insert_with(|| nvlink_limit(lib, fabric, params, t.src).map(|r| w.limiter(r)))
        } else {
            lib.rdma_rate
                .map(|r| *rdma_limiter.entry(t.src).or_insert_with(|| w.limiter(r)))
        };
        if let Some(k) = limiter {
            w.limit(i, k);
        }
        out.messages.push(i);
        gpus.get_mut(&t.src).expect("listed").push(m);
        gpus.get_mut(&t.dst).expect("listed").push(m);
    }
    for (g, mut deps) in gpus {
        deps.insert(0, begin[&g]);
        let reduce = match (op, lib.reduce) {
            (Op::Combine, Some(rate)) => rate.serialize(received.get(&g).copied().unwrap_or(0)),
            _ => Dur::ZERO,
        };
        let d = w.delay(g, lib.end_cost(), &deps);
        let TaskRef::Compute(i) = d else {
            unreachable!()
        };
        out.end_delays.push(i);
        // A combine's reduction of what the GPU received, after the flag is seen.
        let r = (reduce > Dur::ZERO).then(|| {
            let r = w.delay(g, reduce, &[d]);
            let TaskRef::Compute(j) = r else {
                unreachable!()
            };
            out.reductions.push(j);
            r
        });
        let last = r.unwrap_or(d);
        out.done.insert(g, vec![last]);
        if lib.sms > 0 && gpu_sms > 0 {
            let share = lib.sms.min(gpu_sms) as f64 / gpu_sms as f64;
            match lib.sm_hold {
                SmHoldMode::Call => w.hold_sms(share, begin[&g], last),
                SmHoldMode::Fixed => {
                    // SMs issue a sender's sends and reduce what a combine's receiver got;
                    // waiting for data and flags costs none (a receive hook).
                    if senders.contains(&g) {
                        w.hold_sms(share, begin[&g], begin[&g]);
                    }
                    if let Some(r) = r {
                        w.hold_sms(share, r, r);
                    }
                }
            }
        }
    }
    out
}

/// Adds transfer `t` as a message after `deps`: its task and its index.
fn message(w: &mut Workload, t: &Transfer, start: Time, deps: &[TaskRef]) -> (TaskRef, u32) {
    let spec = MessageSpec {
        src: t.src,
        dst: t.dst,
        bytes: t.bytes,
        start,
    };
    match w.message(spec, deps) {
        m @ TaskRef::Message(i) => (m, i),
        TaskRef::Compute(_) => unreachable!("Workload::message adds a message"),
    }
}
