//! Max-min fair rates by progressive filling, kept up to date incrementally.
//!
//! A flow `f` puts `w(f, l) * rate(f)` on each link `l` of its route (`w` is 1 on an ECMP
//! path, a share on a spread route, already in wire bytes). Progressive filling raises all
//! unfrozen rates together; a link saturates at level `rem / n` (capacity not taken by
//! frozen flows, over the weights of the unfrozen ones on it); the link that saturates
//! first freezes its flows at that level. This is the weighted max-min fair allocation.
//!
//! **Incremental update.** Filling is the same, level by level, with and without a change
//! up to the level where the change first matters, so flows whose rate is below that
//! level keep it:
//! - a flow leaving at rate `r` changes nothing below `r` (its links saturate at `r` or
//!   above, else it would have frozen lower);
//! - a flow arriving gets at least `min over its links of capacity / (sum of the weights
//!   of all flows on the link)` (no link fills faster than with everyone at the same
//!   rate), so nothing below that bound changes.
//!
//! With `theta` the smallest such level of a batch of changes, only flows at or above
//! `theta` can change, and of those only the ones connected to a changed link through
//! links shared by such flows (max-min fairness separates over the components of the
//! flow-link graph). [`Allocator::update`] refills exactly that set against the capacity
//! the other flows leave; everything else keeps its rate without being visited.
//! `tests::incremental_equals_full_recompute` checks this against a full refill.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Relative slack on `theta`: flows within this of the threshold are refilled too, so a
/// rounding difference never keeps a flow that should move.
const THETA_SLACK: f64 = 1e-9;

/// The allocation state: links with capacities, flows with their weighted links.
pub struct Allocator {
    cap: Vec<f64>,
    /// Active entries on each link (entry ids) and the sum of their weights.
    on_link: Vec<Vec<u32>>,
    weight_sum: Vec<f64>,
    /// Rates of the active flows on each link (f64 bits of positive rates order like the
    /// rates), with counts: a link whose fastest flow is below theta is not scanned.
    /// Sorted ascending; a link carries few distinct rates, so a sorted vector beats a
    /// tree here.
    rates_on: Vec<Vec<(u64, u32)>>,
    /// Entries of every flow ever added (CSR): flow f owns `off[f]..off[f + 1]`.
    off: Vec<u32>,
    e_link: Vec<u32>,
    e_w: Vec<f64>,
    e_flow: Vec<u32>,
    /// Where the entry sits in its link's `on_link` list while the flow is active.
    e_pos: Vec<u32>,
    rate: Vec<f64>,
    active: Vec<bool>,
    // Scratch, reused across updates (stamped with `epoch` instead of cleared).
    epoch: u32,
    link_stamp: Vec<u32>,
    region_stamp: Vec<u32>,
    flow_stamp: Vec<u32>,
    frozen_stamp: Vec<u32>,
    touch_stamp: Vec<u32>,
    step_stamp: u32,
    rem: Vec<f64>,
    n: Vec<f64>,
    unfrozen: Vec<u32>,
    pending_links: Vec<u32>,
    pending_new: Vec<u32>,
    theta: f64,
    /// Flows refilled, summed over updates (the incremental recompute's work).
    pub refilled: u64,
    /// Links visited by refills, summed over updates.
    pub links_visited: u64,
    pub updates: u64,
}

/// A heap key: saturation level, then link id (ties resolve the same way every run).
#[derive(PartialEq)]
struct Key(f64, u32);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    // Reversed: BinaryHeap is a max-heap and the lowest level must pop first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

impl Allocator {
    /// Links with these capacities (any unit; rates come out in the same unit).
    pub fn new(cap: Vec<f64>) -> Allocator {
        assert!(cap.iter().all(|&c| c > 0.0 && c.is_finite()));
        let n = cap.len();
        Allocator {
            on_link: vec![Vec::new(); n],
            weight_sum: vec![0.0; n],
            rates_on: vec![Vec::new(); n],
            off: vec![0],
            e_link: Vec::new(),
            e_w: Vec::new(),
            e_flow: Vec::new(),
            e_pos: Vec::new(),
            rate: Vec::new(),
            active: Vec::new(),
            epoch: 0,
            link_stamp: vec![0; n],
            region_stamp: vec![0; n],
            flow_stamp: Vec::new(),
            frozen_stamp: Vec::new(),
            touch_stamp: vec![u32::MAX; n],
            step_stamp: 0,
            rem: vec![0.0; n],
            n: vec![0.0; n],
            unfrozen: vec![0; n],
            pending_links: Vec::new(),
            pending_new: Vec::new(),
            theta: f64::INFINITY,
            refilled: 0,
            links_visited: 0,
            updates: 0,
            cap,
        }
    }

    /// Registers a flow (inactive) over `(link, weight)` entries; returns its id.
    pub fn register(&mut self, links: impl IntoIterator<Item = (u32, f64)>) -> u32 {
        let f = self.rate.len() as u32;
        for (l, w) in links {
            assert!((l as usize) < self.cap.len() && w > 0.0 && w.is_finite());
            self.e_link.push(l);
            self.e_w.push(w);
            self.e_flow.push(f);
            self.e_pos.push(u32::MAX);
        }
        assert!(self.e_link.len() > *self.off.last().expect("non-empty") as usize);
        self.off.push(self.e_link.len() as u32);
        self.rate.push(0.0);
        self.active.push(false);
        self.flow_stamp.push(0);
        self.frozen_stamp.push(0);
        f
    }

    pub fn rate(&self, f: u32) -> f64 {
        self.rate[f as usize]
    }

    pub fn is_active(&self, f: u32) -> bool {
        self.active[f as usize]
    }

    /// The flow's `(link, weight)` entries.
    pub fn entries(&self, f: u32) -> impl Iterator<Item = (u32, f64)> + '_ {
        let r = self.off[f as usize] as usize..self.off[f as usize + 1] as usize;
        r.map(|e| (self.e_link[e], self.e_w[e]))
    }

    /// Starts flow `f`; its rate is set by the next [`Allocator::update`].
    pub fn start(&mut self, f: u32) {
        let fi = f as usize;
        assert!(
            !self.active[fi] && self.rate[fi] == 0.0,
            "flow started twice"
        );
        self.active[fi] = true;
        for e in self.off[fi]..self.off[fi + 1] {
            let l = self.e_link[e as usize] as usize;
            self.e_pos[e as usize] = self.on_link[l].len() as u32;
            self.on_link[l].push(e);
            self.weight_sum[l] += self.e_w[e as usize];
            self.pending_links.push(l as u32);
        }
        // The arrival bound needs the weight sums after the whole batch: see `update`.
        self.pending_new.push(f);
    }

    /// Ends flow `f`; the rates it frees are handed out by the next update.
    pub fn stop(&mut self, f: u32) {
        let fi = f as usize;
        assert!(self.active[fi], "flow stopped twice");
        self.active[fi] = false;
        self.theta = self.theta.min(self.rate[fi]);
        for e in self.off[fi]..self.off[fi + 1] {
            let l = self.e_link[e as usize] as usize;
            let pos = self.e_pos[e as usize] as usize;
            let list = &mut self.on_link[l];
            list.swap_remove(pos);
            if pos < list.len() {
                self.e_pos[list[pos] as usize] = pos as u32;
            }
            self.e_pos[e as usize] = u32::MAX;
            self.weight_sum[l] -= self.e_w[e as usize];
            count_rate(&mut self.rates_on[l], self.rate[fi], false);
            self.pending_links.push(l as u32);
        }
    }

    /// Recomputes the rates that the starts and stops since the last update can change;
    /// appends `(flow, old_rate)` to `changed` for each active flow whose rate changed (new
    /// flows have old rate 0), in a deterministic order.
    pub fn update(&mut self, changed: &mut Vec<(u32, f64)>) {
        if self.pending_links.is_empty() {
            return;
        }
        self.updates += 1;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Stamps wrapped: clear them once every 4 billion updates.
            self.link_stamp.iter_mut().for_each(|s| *s = 0);
            self.region_stamp.iter_mut().for_each(|s| *s = 0);
            self.flow_stamp.iter_mut().for_each(|s| *s = 0);
            self.frozen_stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let seeds = std::mem::take(&mut self.pending_links);
        // The arrival bound of every new flow, with all of this batch's flows counted.
        let mut theta = self.theta;
        for &f in &self.pending_new {
            let fi = f as usize;
            if !self.active[fi] {
                continue;
            }
            for e in self.off[fi] as usize..self.off[fi + 1] as usize {
                let l = self.e_link[e] as usize;
                theta = theta.min(self.cap[l] / self.weight_sum[l].max(f64::MIN_POSITIVE));
            }
        }
        self.theta = f64::INFINITY;
        let keep_below = theta * (1.0 - THETA_SLACK);

        // The flows to refill: new ones and those at or above theta, reachable from a
        // changed link through links they share. `scan` holds the links to look for such
        // flows on (the changed links and the region's); `region_links` only the links that
        // carry a flow of the region, the ones whose capacity is handed out again.
        let mut scan: Vec<u32> = Vec::new();
        let mut region_links: Vec<u32> = Vec::new();
        let mut region_flows: Vec<u32> = Vec::new();
        for &l in &seeds {
            if self.link_stamp[l as usize] != epoch {
                self.link_stamp[l as usize] = epoch;
                scan.push(l);
            }
        }
        // New flows are in the region by definition (rate 0: not yet in `rates_on`).
        let new = std::mem::take(&mut self.pending_new);
        for &f in &new {
            if self.active[f as usize] && self.flow_stamp[f as usize] != epoch {
                self.enroll(f, &mut region_flows, &mut region_links, &mut scan);
            }
        }
        let mut i = 0;
        while i < scan.len() {
            let l = scan[i] as usize;
            i += 1;
            // Skip the scan where no flow is at or above theta.
            let fastest = self.rates_on[l]
                .last()
                .map_or(0.0, |&(bits, _)| f64::from_bits(bits));
            if fastest < keep_below {
                continue;
            }
            for k in 0..self.on_link[l].len() {
                let f = self.e_flow[self.on_link[l][k] as usize];
                if self.flow_stamp[f as usize] != epoch && self.rate[f as usize] >= keep_below {
                    self.enroll(f, &mut region_flows, &mut region_links, &mut scan);
                }
            }
        }
        self.pending_new = new;
        self.pending_new.clear();
        self.refilled += region_flows.len() as u64;
        self.links_visited += region_links.len() as u64;

        // Capacity left by the flows that keep their rates; weights of those refilled.
        let mut heap = BinaryHeap::new();
        for &l in &region_links {
            let l = l as usize;
            let (mut rem, mut n, mut cnt) = (self.cap[l], 0.0, 0u32);
            for &e in &self.on_link[l] {
                let f = self.e_flow[e as usize] as usize;
                if self.flow_stamp[f] == epoch {
                    n += self.e_w[e as usize];
                    cnt += 1;
                } else {
                    rem -= self.rate[f] * self.e_w[e as usize];
                }
            }
            self.rem[l] = rem.max(0.0);
            self.n[l] = n;
            self.unfrozen[l] = cnt;
            if cnt > 0 {
                heap.push(Key(self.rem[l] / n, l as u32));
            }
        }

        // Progressive filling over the region.
        let mut level = 0.0f64;
        let mut touched: Vec<u32> = Vec::new();
        // Stamps for `touched`, distinct per freezing step across updates.
        let mut step = self.step_stamp.wrapping_add(1);
        while let Some(Key(key, l)) = heap.pop() {
            let l = l as usize;
            if self.unfrozen[l] == 0 || key != self.rem[l] / self.n[l] {
                continue; // stale entry
            }
            // Levels only rise; rounding must not make a later link fill below an earlier.
            level = level.max(key);
            // A link saturates at a positive level unless rounding ate its capacity: then
            // its flows get a sliver rather than zero, so every flow keeps finishing.
            let r = if level > 0.0 {
                level
            } else {
                self.cap[l] * 1e-12
            };
            touched.clear();
            if step == u32::MAX {
                // Stamps wrapped (after 4 billion freezing steps): start them over.
                self.touch_stamp.iter_mut().for_each(|s| *s = u32::MAX);
                step = 0;
            }
            let list_len = self.on_link[l].len();
            for k in 0..list_len {
                let e = self.on_link[l][k] as usize;
                let f = self.e_flow[e] as usize;
                if self.flow_stamp[f] != epoch || self.frozen_stamp[f] == epoch {
                    continue;
                }
                self.frozen_stamp[f] = epoch;
                let old = self.rate[f];
                self.rate[f] = r;
                for e2 in self.off[f] as usize..self.off[f + 1] as usize {
                    let l2 = self.e_link[e2] as usize;
                    let w = self.e_w[e2];
                    self.rem[l2] = (self.rem[l2] - r * w).max(0.0);
                    self.n[l2] -= w;
                    self.unfrozen[l2] -= 1;
                    if l2 != l && self.touch_stamp[l2] != step {
                        self.touch_stamp[l2] = step;
                        touched.push(l2 as u32);
                    }
                }
                if old != r {
                    changed.push((f as u32, old));
                    for e2 in self.off[f] as usize..self.off[f + 1] as usize {
                        let rates = &mut self.rates_on[self.e_link[e2] as usize];
                        count_rate(rates, old, false);
                        count_rate(rates, r, true);
                    }
                }
            }
            // One new key per link whose level moved (not one per flow frozen on it).
            for &l2 in &touched {
                let l2 = l2 as usize;
                if self.unfrozen[l2] > 0 {
                    self.n[l2] = self.n[l2].max(f64::MIN_POSITIVE);
                    heap.push(Key(self.rem[l2] / self.n[l2], l2 as u32));
                }
            }
            step = step.wrapping_add(1);
        }
        self.step_stamp = step;
        debug_assert!(
            region_flows
                .iter()
                .all(|&f| self.frozen_stamp[f as usize] == epoch)
        );
    }
}

impl Allocator {
    /// Puts flow `f` in this update's region, and its links in the region and the scan.
    fn enroll(
        &mut self,
        f: u32,
        region_flows: &mut Vec<u32>,
        region_links: &mut Vec<u32>,
        scan: &mut Vec<u32>,
    ) {
        let epoch = self.epoch;
        let fi = f as usize;
        self.flow_stamp[fi] = epoch;
        region_flows.push(f);
        for e in self.off[fi] as usize..self.off[fi + 1] as usize {
            let l = self.e_link[e] as usize;
            if self.region_stamp[l] != epoch {
                self.region_stamp[l] = epoch;
                region_links.push(l as u32);
            }
            if self.link_stamp[l] != epoch {
                self.link_stamp[l] = epoch;
                scan.push(l as u32);
            }
        }
    }
}

/// Adds (or removes) one flow at `rate` to a link's rate counts; rate 0 (a flow not yet
/// rated) is not counted.
fn count_rate(rates: &mut Vec<(u64, u32)>, rate: f64, add: bool) {
    if rate <= 0.0 {
        return;
    }
    let key = rate.to_bits();
    match (rates.binary_search_by_key(&key, |&(k, _)| k), add) {
        (Ok(i), true) => rates[i].1 += 1,
        (Err(i), true) => rates.insert(i, (key, 1)),
        (Ok(i), false) => {
            rates[i].1 -= 1;
            if rates[i].1 == 0 {
                rates.remove(i);
            }
        }
        (Err(_), false) => panic!("removing a rate that was never counted"),
    }
}

/// Max-min rates of `flows` (each a list of `(link, weight)`) from scratch: the reference
/// the incremental allocator is tested against, and the analytical level's helper.
pub fn full_recompute(cap: &[f64], flows: &[Vec<(u32, f64)>]) -> Vec<f64> {
    let mut a = Allocator::new(cap.to_vec());
    for f in flows {
        let id = a.register(f.iter().copied());
        a.start(id);
    }
    a.update(&mut Vec::new());
    (0..flows.len() as u32).map(|f| a.rate(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }

    /// The textbook example: three links of capacity 1; flow 0 crosses all, flows 1..=3
    /// one each, flow 4 shares link 0 with flow 0 and 1.
    #[test]
    fn textbook_max_min() {
        let cap = vec![1.0, 1.0, 2.0];
        let flows = vec![
            vec![(0, 1.0), (1, 1.0), (2, 1.0)],
            vec![(0, 1.0)],
            vec![(1, 1.0)],
            vec![(2, 1.0)],
            vec![(0, 1.0)],
        ];
        let r = full_recompute(&cap, &flows);
        // Link 0: three flows -> 1/3 each. Link 1: flow 0 frozen at 1/3, flow 2 gets 2/3.
        // Link 2: flow 0 at 1/3, flow 3 gets 5/3.
        let want = [1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0, 5.0 / 3.0, 1.0 / 3.0];
        for (a, b) in r.iter().zip(want) {
            assert!(close(*a, b), "{r:?}");
        }
    }

    #[test]
    fn weights_count_as_wire_bytes() {
        // A flow split in halves over two links of capacity 1 runs at 2; with a second
        // flow on one half, max-min gives both 2/3... (1 = r/2 + r) -> r = 2/3.
        let r = full_recompute(&[1.0, 1.0], &[vec![(0, 0.5), (1, 0.5)]]);
        assert!(close(r[0], 2.0));
        let r = full_recompute(&[1.0, 1.0], &[vec![(0, 0.5), (1, 0.5)], vec![(0, 1.0)]]);
        assert!(close(r[0], 2.0 / 3.0) && close(r[1], 2.0 / 3.0), "{r:?}");
    }

    /// Random flows start and stop in random batches; after every update the incremental
    /// rates equal a full recompute of the active flows.
    fn check_incremental(cap: Vec<f64>, flows: Vec<Vec<(u32, f64)>>, order: Vec<(bool, u8)>) {
        let mut a = Allocator::new(cap.clone());
        let ids: Vec<u32> = flows
            .iter()
            .map(|f| a.register(f.iter().copied()))
            .collect();
        let mut started = vec![false; flows.len()];
        let mut stopped = vec![false; flows.len()];
        for (flush, pick) in order {
            let f = pick as usize % flows.len();
            if !started[f] {
                started[f] = true;
                a.start(ids[f]);
            } else if !stopped[f] {
                stopped[f] = true;
                a.stop(ids[f]);
            }
            if flush {
                a.update(&mut Vec::new());
                let live: Vec<usize> = (0..flows.len())
                    .filter(|&f| started[f] && !stopped[f])
                    .collect();
                let sub: Vec<Vec<(u32, f64)>> = live.iter().map(|&f| flows[f].clone()).collect();
                let want = full_recompute(&cap, &sub);
                for (k, &f) in live.iter().enumerate() {
                    assert!(
                        (a.rate(ids[f]) - want[k]).abs() <= 1e-7 * want[k],
                        "flow {f}: incremental {} full {}",
                        a.rate(ids[f]),
                        want[k]
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn incremental_equals_full_recompute(
            cap in prop::collection::vec(1u32..8, 6),
            flows in prop::collection::vec(
                prop::collection::btree_map(0u32..6, 1u32..4, 1..4), 1..14),
            order in prop::collection::vec((any::<bool>(), any::<u8>()), 1..40),
        ) {
            let cap: Vec<f64> = cap.into_iter().map(f64::from).collect();
            let flows: Vec<Vec<(u32, f64)>> = flows
                .into_iter()
                .map(|m| m.into_iter().map(|(l, w)| (l, f64::from(w) / 2.0)).collect())
                .collect();
            check_incremental(cap, flows, order);
        }
    }
}
