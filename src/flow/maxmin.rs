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
//!
//! A region link whose flows are all in the region already when the search reaches it keeps
//! no capacity for others, and its refilled weight is its list-order weight sum, kept to the
//! bit ([`LinkState::list_sum`]): it is set up without reading its list (checked against an
//! allocator that reads every list, with weights whose sums round).

use std::cmp::Ordering;
use std::collections::HashMap;

/// Relative slack on `theta`: flows within this of the threshold are refilled too, so a
/// rounding difference never keeps a flow that should move.
const THETA_SLACK: f64 = 1e-9;

/// The allocation state: links with capacities, flows with their weighted links.
#[derive(Clone)]
pub struct Allocator {
    /// Every link's state, side by side (see [`LinkState`]).
    links: Vec<LinkState>,
    /// Active entries on each link.
    on_link: Vec<Vec<Slot>>,
    /// The rates of the active flows of the links whose `LinkState::rate_set` is set (see
    /// `LinkState::max_rate`); empty for the others.
    rates: Vec<RateSet>,
    /// Every flow's entries (CSR): flow f owns `off[f]..off[f + 1]`, its links in
    /// `e_link`, their weights as indices into `weights` in `e_wi`. Until the first start,
    /// as registered; from then on (`prepared`), the entries the allocation works on: the
    /// registered ones less those on dominated links and twins (see
    /// [`Allocator::prepare`]), compacted in place. A flow's registered entries are not
    /// kept: at 8 links of 12 bytes they were 96 bytes a flow, beside about 70 for the
    /// working ones (5.9 entries of 12 bytes, with their list positions).
    off: Vec<u32>,
    e_link: Vec<u32>,
    e_wi: Vec<u32>,
    /// The distinct weights, in first-seen order (an ECMP route's are all 1.0): an entry
    /// holds a 4-byte index rather than an 8-byte weight, and its slot in a link's list 8
    /// bytes rather than 16.
    weights: Vec<f64>,
    /// While flows are registered: each weight's index (by its bits), and the last one.
    weight_ids: HashMap<u64, u32>,
    last_weight: Option<(u64, u32)>,
    /// Where the entry sits in its link's `on_link` list while the flow is active.
    e_pos: Vec<u32>,
    prepared: bool,
    /// Whether `prepare` leaves dominated links out (off only for tests' references).
    prune: bool,
    /// Whether a link whose flows are all refilled already is set up from its `list_sum`
    /// without reading its list (off only for tests' references).
    skip_enrolled: bool,
    /// Rate and this update's stamps of every flow, side by side (one cache line).
    fl: Vec<FlowState>,
    active: Vec<bool>,
    n_active: usize,
    // Scratch, reused across updates (stamped with `epoch` instead of cleared).
    epoch: u32,
    step_stamp: u32,
    heap: LinkHeap,
    /// Regions of at most this many links fill from a list rather than a heap.
    linear_max: usize,
    region: Region,
    touched: Vec<u32>,
    pending_links: Vec<u32>,
    pending_new: Vec<u32>,
    theta: f64,
    /// Flows refilled, summed over updates (the incremental recompute's work).
    pub refilled: u64,
    /// Links visited by refills, summed over updates.
    pub links_visited: u64,
    pub updates: u64,
}

/// A flow's entry in its link's list: the flow and its weight (`weights` index). (The
/// entry itself, needed only when a stop moves a slot, is found among the flow's.)
#[derive(Clone, Copy)]
struct Slot {
    f: u32,
    wi: u32,
}

/// A link's state, read and written together by every update (one cache line).
#[derive(Clone, Copy)]
struct LinkState {
    cap: f64,
    /// The sum of the weights of the link's active entries.
    weight_sum: f64,
    /// The same sum taken in list order, `((0 + w_1) + w_2) + ...` over `on_link`, as a
    /// scan that finds every flow on the link refilled would take it: kept to the bit. A
    /// start adds its weight last. A stop reorders the list: while every weight on the link
    /// is a small integer ([`exact_weight`]: an ECMP path's 1.0) any order sums to the same
    /// integer, so it subtracts; otherwise it sums the list again.
    list_sum: f64,
    /// Active entries on the link whose weight is not an [`exact_weight`].
    inexact: u32,
    /// The fastest rate of the active flows on the link and how many flows have it: a link
    /// whose fastest flow is below theta is not scanned. Kept exact: refills and scans
    /// recount it, and when the last flow at the top stops, the new top is found by reading
    /// the link's list, or, once that has happened [`RATE_SET_AFTER`] times on the link
    /// and its list is long, from a [`RateSet`] of its flows' rates kept from then on
    /// (`rate_set`). In an all-to-all the fastest flows on a link finish first, level
    /// after level: reading the list at each level took 60-75 % of the run at 1,024 GPUs. Keeping a rate set for
    /// every link instead made the AFD decode step 20-45 % slower (an update of the set for
    /// every link of every refilled flow, where the list is read rarely).
    max_rate: f64,
    max_cnt: u32,
    /// How many times the link's list was read for a new top.
    recounts: u32,
    /// Whether the link keeps a [`RateSet`] (in `Allocator::rates`).
    rate_set: bool,
    /// Whether the link is in `pending_links` (a flow on it started or stopped since the
    /// last update): each link is listed once, not once per flow (a million flows starting
    /// together listed 6 million links).
    pending: bool,
    /// During a filling: capacity left, weight and number of the unfrozen flows.
    rem: f64,
    n: f64,
    unfrozen: u32,
    /// The update that put the link in the scan, in the region, and set up its capacity
    /// left to the region (during the scan); the freezing step that last touched it.
    scan_stamp: u32,
    region_stamp: u32,
    filled_stamp: u32,
    touch_stamp: u32,
    /// Flows of the region on the link (valid while `region_stamp` is this update's).
    enrolled: u32,
}

/// An update's region: the links to look for flows at or above theta on, the links whose
/// capacity is handed out again, the flows refilled.
#[derive(Clone, Default)]
struct Region {
    scan: Vec<u32>,
    links: Vec<u32>,
    flows: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct FlowState {
    rate: f64,
    /// The update whose region holds the flow; the update that froze it.
    stamp: u32,
    frozen: u32,
}

/// The region's links that still have unfrozen flows, by saturation level, then link id
/// (ties resolve the same way every run): an indexed binary heap, one slot per link, whose
/// key is updated in place when a link's level moves (no stale entries).
///
/// A small region (at most [`Allocator::linear_max`] links) keeps the links in a plain list
/// instead, scanned for the lowest at every step: cheaper than sifting when every step
/// moves the levels of many of a few dozen links. Both pop the same links in the same order.
#[derive(Clone)]
struct LinkHeap {
    /// The heap, or in linear mode the list.
    heap: Vec<u32>,
    /// Position of each link in `heap` (u32::MAX: not in it).
    pos: Vec<u32>,
    key: Vec<f64>,
    linear: bool,
    /// Linear mode: `heap`'s links with their keys, side by side, each as one integer
    /// `(f64 bits of the level) << 32 | link` (levels are never negative, never -0.0,
    /// never NaN, so the integers order like (level, link) under `total_cmp`).
    lin_key: Vec<u128>,
}

impl LinkHeap {
    fn new(links: usize) -> LinkHeap {
        LinkHeap {
            heap: Vec::new(),
            pos: vec![u32::MAX; links],
            key: vec![0.0; links],
            linear: false,
            lin_key: Vec::new(),
        }
    }

    /// Chooses the mode for the next filling (the structure is empty between fillings).
    fn set_linear(&mut self, linear: bool) {
        debug_assert!(self.heap.is_empty());
        self.linear = linear;
    }

    /// Drops link `l` (its flows are all frozen). A heap leaves it: popped, it is skipped.
    fn remove(&mut self, l: u32) {
        let p = self.pos[l as usize];
        if !self.linear || p == u32::MAX {
            return;
        }
        self.heap.swap_remove(p as usize);
        self.lin_key.swap_remove(p as usize);
        self.pos[l as usize] = u32::MAX;
        if let Some(&m) = self.heap.get(p as usize) {
            self.pos[m as usize] = p;
        }
    }

    fn pop_linear(&mut self) -> Option<(f64, u32)> {
        if self.heap.is_empty() {
            return None;
        }
        let min = *self.lin_key.iter().min().expect("non-empty");
        let l = min as u32;
        self.remove(l);
        Some((self.key[l as usize], l))
    }

    /// Whether `a` pops before `b`: lower level, then lower id.
    #[inline]
    fn before(&self, a: u32, b: u32) -> bool {
        match self.key[a as usize].total_cmp(&self.key[b as usize]) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    /// Inserts link `l` at level `k`, or moves it there.
    #[inline(always)]
    fn set(&mut self, l: u32, k: f64) {
        self.key[l as usize] = k;
        let p = self.pos[l as usize];
        if self.linear {
            debug_assert!(k.is_sign_positive() && !k.is_nan());
            let packed = (k.to_bits() as u128) << 32 | l as u128;
            if p == u32::MAX {
                self.pos[l as usize] = self.heap.len() as u32;
                self.heap.push(l);
                self.lin_key.push(packed);
            } else {
                self.lin_key[p as usize] = packed;
            }
            return;
        }
        if p == u32::MAX {
            self.heap.push(l);
            let i = self.heap.len() - 1;
            self.pos[l as usize] = i as u32;
            self.sift_up(i);
        } else {
            let i = self.sift_up(p as usize);
            self.sift_down(i);
        }
    }

    fn pop(&mut self) -> Option<(f64, u32)> {
        if self.linear {
            return self.pop_linear();
        }
        let top = *self.heap.first()?;
        let last = self.heap.pop().expect("non-empty");
        self.pos[top as usize] = u32::MAX;
        if last != top {
            self.heap[0] = last;
            self.pos[last as usize] = 0;
            self.sift_down(0);
        }
        Some((self.key[top as usize], top))
    }

    fn sift_up(&mut self, mut i: usize) -> usize {
        let l = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            let p = self.heap[parent];
            if !self.before(l, p) {
                break;
            }
            self.heap[i] = p;
            self.pos[p as usize] = i as u32;
            i = parent;
        }
        self.heap[i] = l;
        self.pos[l as usize] = i as u32;
        i
    }

    fn sift_down(&mut self, mut i: usize) {
        let l = self.heap[i];
        let len = self.heap.len();
        loop {
            let mut c = 2 * i + 1;
            if c >= len {
                break;
            }
            if c + 1 < len && self.before(self.heap[c + 1], self.heap[c]) {
                c += 1;
            }
            let child = self.heap[c];
            if !self.before(child, l) {
                break;
            }
            self.heap[i] = child;
            self.pos[child as usize] = i as u32;
            i = c;
        }
        self.heap[i] = l;
        self.pos[l as usize] = i as u32;
    }
}

/// A link is dominated when every flow registered on it also crosses another link with the
/// same weight and a capacity lower by more than this (relative): see
/// [`Allocator::prepare`]. The margin dwarfs rounding in the sums compared.
const DOMINANCE_MARGIN: f64 = 1e-6;

/// Regions of at most this many links fill from a list (see [`LinkHeap`]).
const LINEAR_MAX: usize = 256;

impl Allocator {
    /// Links with these capacities (any unit; rates come out in the same unit).
    pub fn new(cap: Vec<f64>) -> Allocator {
        assert!(cap.iter().all(|&c| c > 0.0 && c.is_finite()));
        let n = cap.len();
        let links = cap
            .iter()
            .map(|&cap| LinkState {
                cap,
                weight_sum: 0.0,
                list_sum: 0.0,
                inexact: 0,
                max_rate: 0.0,
                max_cnt: 0,
                recounts: 0,
                rate_set: false,
                pending: false,
                rem: 0.0,
                n: 0.0,
                unfrozen: 0,
                scan_stamp: 0,
                region_stamp: 0,
                filled_stamp: 0,
                touch_stamp: u32::MAX,
                enrolled: 0,
            })
            .collect();
        Allocator {
            links,
            on_link: vec![Vec::new(); n],
            rates: vec![RateSet::default(); n],
            off: vec![0],
            e_link: Vec::new(),
            e_wi: Vec::new(),
            weights: Vec::new(),
            weight_ids: HashMap::new(),
            last_weight: None,
            e_pos: Vec::new(),
            prepared: true,
            prune: true,
            skip_enrolled: true,
            fl: Vec::new(),
            active: Vec::new(),
            n_active: 0,
            epoch: 0,
            step_stamp: 0,
            heap: LinkHeap::new(n),
            linear_max: LINEAR_MAX,
            region: Region::default(),
            touched: Vec::new(),
            pending_links: Vec::new(),
            pending_new: Vec::new(),
            theta: f64::INFINITY,
            refilled: 0,
            links_visited: 0,
            updates: 0,
        }
    }

    /// Registers a flow (inactive) over `(link, weight)` entries, each link at most once;
    /// returns its id. Every flow is registered before the first start.
    pub fn register(&mut self, links: impl IntoIterator<Item = (u32, f64)>) -> u32 {
        assert!(
            self.fl.is_empty() || !self.prepared,
            "register every flow before the first start"
        );
        let f = self.fl.len() as u32;
        let first = self.e_link.len();
        for (l, w) in links {
            assert!((l as usize) < self.links.len() && w > 0.0 && w.is_finite());
            assert!(
                !self.e_link[first..].contains(&l),
                "a link appears once in a route"
            );
            self.e_link.push(l);
            let bits = w.to_bits();
            let wi = match self.last_weight {
                Some((b, wi)) if b == bits => wi,
                _ => {
                    let weights = &mut self.weights;
                    let wi = *self.weight_ids.entry(bits).or_insert_with(|| {
                        weights.push(w);
                        (weights.len() - 1) as u32
                    });
                    self.last_weight = Some((bits, wi));
                    wi
                }
            };
            self.e_wi.push(wi);
        }
        assert!(self.e_link.len() > first);
        u32::try_from(self.e_link.len())
            .ok()
            .filter(|&n| n < u32::MAX)
            .expect("fewer than 2^32 - 1 entries over all flows");
        self.off.push(self.e_link.len() as u32);
        self.fl.push(FlowState::default());
        self.active.push(false);
        self.prepared = false;
        f
    }

    pub fn rate(&self, f: u32) -> f64 {
        self.fl[f as usize].rate
    }

    pub fn is_active(&self, f: u32) -> bool {
        self.active[f as usize]
    }

    /// Flow `f`'s entries the allocation works on (its registered ones less those on
    /// dominated links and twins).
    #[cfg(test)]
    pub(crate) fn working_entries(&mut self, f: u32) -> usize {
        self.prepare();
        (self.off[f as usize + 1] - self.off[f as usize]) as usize
    }

    /// Links the allocation leaves out (dominated ones).
    #[cfg(test)]
    fn dominated_links(&mut self) -> Vec<u32> {
        assert!(
            !self.prepared,
            "before the first start: the registered entries"
        );
        let nl = self.links.len();
        let mut used = vec![false; nl];
        self.e_link.iter().for_each(|&l| used[l as usize] = true);
        self.prepare();
        let mut kept = vec![false; nl];
        self.e_link.iter().for_each(|&l| kept[l as usize] = true);
        (0..nl as u32)
            .filter(|&l| used[l as usize] && !kept[l as usize])
            .collect()
    }

    /// Builds the entries the allocation works on: the registered ones less those on
    /// dominated links. Link A is dominated by link B when every flow registered on A also
    /// crosses B with the same weight and B's capacity is lower (by more than
    /// [`DOMINANCE_MARGIN`]). Then at every step of progressive filling A's unfrozen flows
    /// are among B's, A's frozen load is at most B's, so A's level
    /// `(cap_A - frozen load) / unfrozen weight` stays above B's: B saturates first and
    /// freezes all of A's flows, and A never sets a rate (nor the arrival bound: A's
    /// `cap / weight sum` is above B's too). Leaving A out changes no rate, to the bit, and
    /// saves its bookkeeping (in an HGX route the PCIe hops are dominated by the 400 Gb/s
    /// NIC links). Dominance is transitive and strict, so every flow keeps a link.
    ///
    /// Twins are left out too: links with the same capacity whose registered entries are the
    /// same flows with the same weights, to the bit, keep only the lowest-numbered one. Twins
    /// are one constraint: at every step their capacity left, unfrozen weight and level are
    /// the same floating-point values (the same flows freeze in the same order on each), and
    /// ties pop the lower id first, so the one kept saturates where the first of them did and
    /// the others would freeze nothing. A flow spread over parallel links (an NVLink route
    /// over a GPU's 18 links, every GPU of the domain spreading the same way) crosses one of
    /// them instead of all ([`twins`]).
    fn prepare(&mut self) {
        if self.prepared {
            return;
        }
        assert_eq!(self.n_active, 0);
        let nl = self.links.len();
        let nf = self.fl.len();
        // Flow of each registered entry, and the registered entries on each link (CSR).
        let mut flow_of = vec![0u32; self.e_link.len()];
        for f in 0..nf {
            for e in self.off[f]..self.off[f + 1] {
                flow_of[e as usize] = f as u32;
            }
        }
        let mut link_off = vec![0u32; nl + 1];
        for &l in &self.e_link {
            link_off[l as usize + 1] += 1;
        }
        for l in 0..nl {
            link_off[l + 1] += link_off[l];
        }
        let mut fill = link_off.clone();
        let mut link_entries = vec![0u32; self.e_link.len()];
        for (e, &l) in self.e_link.iter().enumerate() {
            link_entries[fill[l as usize] as usize] = e as u32;
            fill[l as usize] += 1;
        }
        drop(fill);
        let weight_on = |f: u32, b: u32| -> Option<u32> {
            let r = self.off[f as usize] as usize..self.off[f as usize + 1] as usize;
            r.into_iter()
                .find(|&e| self.e_link[e] == b)
                .map(|e| self.e_wi[e])
        };
        let mut dominated = vec![false; nl];
        for a in (0..nl).filter(|_| self.prune) {
            let on_a = &link_entries[link_off[a] as usize..link_off[a + 1] as usize];
            let Some(&e0) = on_a.first() else { continue };
            let f0 = flow_of[e0 as usize] as usize;
            for eb in self.off[f0] as usize..self.off[f0 + 1] as usize {
                let b = self.e_link[eb];
                if b as usize == a
                    || self.links[a].cap <= self.links[b as usize].cap * (1.0 + DOMINANCE_MARGIN)
                {
                    continue;
                }
                if on_a
                    .iter()
                    .all(|&ea| weight_on(flow_of[ea as usize], b) == Some(self.e_wi[ea as usize]))
                {
                    dominated[a] = true;
                    break;
                }
            }
        }
        if self.prune {
            for l in twins(&self.links, &link_off, &link_entries, &flow_of, &self.e_wi) {
                dominated[l as usize] = true;
            }
        }
        drop((flow_of, link_off, link_entries));
        // Keep the working entries, in place and in order.
        let mut k = 0usize;
        let mut from = 0usize;
        for f in 0..nf {
            let to = self.off[f + 1] as usize;
            for e in from..to {
                let l = self.e_link[e];
                if !dominated[l as usize] {
                    self.e_link[k] = l;
                    self.e_wi[k] = self.e_wi[e];
                    k += 1;
                }
            }
            debug_assert!(k > self.off[f] as usize, "every flow keeps a link");
            from = to;
            self.off[f + 1] = k as u32;
        }
        self.e_link.truncate(k);
        self.e_link.shrink_to_fit();
        self.e_wi.truncate(k);
        self.e_wi.shrink_to_fit();
        self.weight_ids = HashMap::new();
        self.e_pos = vec![u32::MAX; self.e_link.len()];
        self.prepared = true;
    }

    /// Starts flow `f`; its rate is set by the next [`Allocator::update`].
    pub fn start(&mut self, f: u32) {
        self.prepare();
        let fi = f as usize;
        assert!(
            !self.active[fi] && self.fl[fi].rate == 0.0,
            "flow started twice"
        );
        self.active[fi] = true;
        self.n_active += 1;
        for e in self.off[fi]..self.off[fi + 1] {
            let l = self.e_link[e as usize] as usize;
            self.e_pos[e as usize] = self.on_link[l].len() as u32;
            let wi = self.e_wi[e as usize];
            self.on_link[l].push(Slot { f, wi });
            let ls = &mut self.links[l];
            let w = self.weights[wi as usize];
            ls.weight_sum += w;
            ls.list_sum += w;
            ls.inexact += u32::from(!exact_weight(w));
            if !ls.pending {
                ls.pending = true;
                self.pending_links.push(l as u32);
            }
        }
        // The arrival bound needs the weight sums after the whole batch: see `update`.
        self.pending_new.push(f);
    }

    /// Ends flow `f`; the rates it frees are handed out by the next update.
    pub fn stop(&mut self, f: u32) {
        let fi = f as usize;
        assert!(self.active[fi], "flow stopped twice");
        self.active[fi] = false;
        self.n_active -= 1;
        self.theta = self.theta.min(self.fl[fi].rate);
        for e in self.off[fi]..self.off[fi + 1] {
            let l = self.e_link[e as usize] as usize;
            let pos = self.e_pos[e as usize] as usize;
            let list = &mut self.on_link[l];
            list.swap_remove(pos);
            if pos < list.len() {
                // The slot moved into `pos`: find its entry among its flow's few.
                let g = list[pos].f as usize;
                let (from, to) = (self.off[g] as usize, self.off[g + 1] as usize);
                let moved = from
                    + self.e_link[from..to]
                        .iter()
                        .position(|&x| x as usize == l)
                        .expect("a listed flow crosses the link");
                self.e_pos[moved] = pos as u32;
            }
            self.e_pos[e as usize] = u32::MAX;
            let ls = &mut self.links[l];
            let w = self.weights[self.e_wi[e as usize] as usize];
            ls.weight_sum -= w;
            if exact_weight(w) && ls.inexact == 0 {
                // Integers before and after: exact in any order (see `list_sum`).
                ls.list_sum -= w;
            } else {
                ls.inexact -= u32::from(!exact_weight(w));
                let weights = &self.weights;
                ls.list_sum = self.on_link[l]
                    .iter()
                    .fold(0.0, |a, s| a + weights[s.wi as usize]);
            }
            let r = self.fl[fi].rate;
            if ls.rate_set {
                if r > 0.0 {
                    let set = &mut self.rates[l];
                    set.remove(r);
                    (ls.max_rate, ls.max_cnt) = set.top();
                }
            } else if r > 0.0 && r == ls.max_rate {
                ls.max_cnt -= 1;
                if ls.max_cnt == 0 {
                    // The last flow at the top left: find the new top.
                    ls.recounts = ls.recounts.saturating_add(1);
                    let (fl, list) = (&self.fl, &self.on_link[l]);
                    if ls.recounts < RATE_SET_AFTER || list.len() < RATE_SET_MIN_FLOWS {
                        let mut top = (0.0, 0);
                        for s in list {
                            count_top(&mut top, fl[s.f as usize].rate);
                        }
                        (ls.max_rate, ls.max_cnt) = top;
                    } else {
                        let set = RateSet::of(list.iter().map(|s| fl[s.f as usize].rate));
                        (ls.max_rate, ls.max_cnt) = set.top();
                        self.rates[l] = set;
                        ls.rate_set = true;
                    }
                }
            }
            if !ls.pending {
                ls.pending = true;
                self.pending_links.push(l as u32);
            }
        }
    }

    /// Recomputes the rates that the starts and stops since the last update can change;
    /// appends `(flow, old_rate)` to `changed` for each active flow whose rate changed (new
    /// flows have old rate 0), in a deterministic order.
    pub fn update(&mut self, changed: &mut Vec<(u32, f64)>) {
        self.update_each(|f, old, _| changed.push((f, old)));
    }

    /// [`Allocator::update`], calling `each(flow, old_rate, new_rate)` for each active flow
    /// whose rate changed as its new rate is set (final for this update), in the same order,
    /// rather than listing them (16 bytes a flow when every flow starts at once).
    pub fn update_each(&mut self, mut each: impl FnMut(u32, f64, f64)) {
        if self.pending_links.is_empty() {
            return;
        }
        self.updates += 1;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Stamps wrapped: clear them once every 4 billion updates.
            self.links
                .iter_mut()
                .for_each(|s| (s.scan_stamp, s.region_stamp, s.filled_stamp) = (0, 0, 0));
            self.fl
                .iter_mut()
                .for_each(|s| (s.stamp, s.frozen) = (0, 0));
            self.epoch = 1;
        }
        // The arrival bound of every new flow, with all of this batch's flows counted.
        let mut theta = self.theta;
        for &f in &self.pending_new {
            let fi = f as usize;
            if !self.active[fi] {
                continue;
            }
            for e in self.off[fi] as usize..self.off[fi + 1] as usize {
                let ls = &self.links[self.e_link[e] as usize];
                theta = theta.min(ls.cap / ls.weight_sum.max(f64::MIN_POSITIVE));
            }
        }
        self.theta = f64::INFINITY;
        let keep_below = theta * (1.0 - THETA_SLACK);
        self.find_region(keep_below);
        self.refilled += self.region.flows.len() as u64;
        self.links_visited += self.region.links.len() as u64;
        self.fill_region(&mut each);
    }

    /// Finds the flows to refill: new ones and those at or above theta (`keep_below` with
    /// the slack), reachable from a changed link through links they share, and sets up the
    /// capacity every link of the region leaves to them. `scan` holds the links to look for
    /// such flows on (the changed links and the region's); `links` only the links that carry
    /// a flow of the region, the ones whose capacity is handed out again.
    fn find_region(&mut self, keep_below: f64) {
        let epoch = self.epoch;
        let mut reg = std::mem::take(&mut self.region);
        reg.scan.clear();
        reg.links.clear();
        reg.flows.clear();
        let Allocator {
            links,
            on_link,
            fl,
            off,
            e_link,
            active,
            pending_links,
            pending_new,
            skip_enrolled,
            weights,
            ..
        } = self;
        let skip = *skip_enrolled;
        let (off, e_link) = (&off[..], &e_link[..]);
        for &l in pending_links.iter() {
            let ls = &mut links[l as usize];
            ls.pending = false;
            if ls.scan_stamp != epoch {
                ls.scan_stamp = epoch;
                reg.scan.push(l);
            }
        }
        pending_links.clear();
        // New flows are in the region by definition (rate 0: below every bound).
        for &f in pending_new.iter() {
            if active[f as usize] && fl[f as usize].stamp != epoch {
                enroll(f, epoch, fl, off, e_link, links, &mut reg);
            }
        }
        pending_new.clear();
        let mut i = 0;
        while i < reg.scan.len() {
            let l = reg.scan[i] as usize;
            i += 1;
            // Skip the scan where no flow is at or above theta.
            if links[l].max_rate < keep_below {
                continue;
            }
            if skip && all_enrolled(&mut links[l], on_link[l].len(), epoch) {
                continue;
            }
            // Every flow on the link at or above theta joins the region now, and no flow
            // below it joins later (only new flows do, and they are in already): so the
            // capacity the link leaves to the region is known after this one pass.
            let (mut rem, mut n, mut cnt, mut top) = (links[l].cap, 0.0, 0u32, (0.0, 0));
            for s in &on_link[l] {
                let fs = fl[s.f as usize];
                if fs.stamp == epoch || fs.rate >= keep_below {
                    if fs.stamp != epoch {
                        enroll(s.f, epoch, fl, off, e_link, links, &mut reg);
                    }
                    n += weights[s.wi as usize];
                    cnt += 1;
                } else {
                    rem -= fs.rate * weights[s.wi as usize];
                    count_top(&mut top, fs.rate);
                }
            }
            fill_from(&mut links[l], rem, n, cnt, top);
            links[l].filled_stamp = epoch;
        }

        // Capacity left by the flows that keep their rates; weights of those refilled (on
        // the region's links the scan skipped: no flow on them at or above theta).
        for &l in &reg.links {
            let l = l as usize;
            if links[l].filled_stamp == epoch
                || skip && all_enrolled(&mut links[l], on_link[l].len(), epoch)
            {
                continue;
            }
            let (mut rem, mut n, mut cnt, mut top) = (links[l].cap, 0.0, 0u32, (0.0, 0));
            for s in &on_link[l] {
                let fs = &fl[s.f as usize];
                if fs.stamp == epoch {
                    n += weights[s.wi as usize];
                    cnt += 1;
                } else {
                    rem -= fs.rate * weights[s.wi as usize];
                    count_top(&mut top, fs.rate);
                }
            }
            fill_from(&mut links[l], rem, n, cnt, top);
        }
        self.region = reg;
    }

    /// Progressive filling over the region [`Allocator::find_region`] set up.
    fn fill_region(&mut self, each: &mut impl FnMut(u32, f64, f64)) {
        let epoch = self.epoch;
        let Allocator {
            links,
            on_link,
            rates,
            fl,
            off,
            e_link,
            e_wi,
            weights,
            heap,
            region,
            touched,
            ..
        } = self;
        let (off, e_link, e_wi, weights) = (&off[..], &e_link[..], &e_wi[..], &weights[..]);
        heap.set_linear(region.links.len() <= self.linear_max);
        for &l in &region.links {
            let ls = &links[l as usize];
            if ls.unfrozen > 0 {
                heap.set(l, ls.rem / ls.n);
            }
        }
        let mut level = 0.0f64;
        // Stamps for `touched`, distinct per freezing step across updates.
        let mut step = self.step_stamp.wrapping_add(1);
        while let Some((key, l)) = heap.pop() {
            let l = l as usize;
            if links[l].unfrozen == 0 {
                continue; // its flows froze on other links
            }
            debug_assert!(key == links[l].rem / links[l].n);
            // Levels only rise; rounding must not make a later link fill below an earlier.
            level = level.max(key);
            // A link saturates at a positive level unless rounding ate its capacity: then
            // its flows get a sliver rather than zero, so every flow keeps finishing.
            let r = if level > 0.0 {
                level
            } else {
                links[l].cap * 1e-12
            };
            touched.clear();
            if step == u32::MAX {
                // Stamps wrapped (after 4 billion freezing steps): start them over.
                links.iter_mut().for_each(|s| s.touch_stamp = u32::MAX);
                step = 0;
            }
            for s in &on_link[l] {
                let f = s.f as usize;
                let fs = &mut fl[f];
                if fs.stamp != epoch || fs.frozen == epoch {
                    continue;
                }
                fs.frozen = epoch;
                let old = fs.rate;
                fs.rate = r;
                for e2 in off[f] as usize..off[f + 1] as usize {
                    let l2 = e_link[e2] as usize;
                    let w = weights[e_wi[e2] as usize];
                    let ls = &mut links[l2];
                    ls.rem = (ls.rem - r * w).max(0.0);
                    ls.n -= w;
                    ls.unfrozen -= 1;
                    let mut top = (ls.max_rate, ls.max_cnt);
                    count_top(&mut top, r);
                    (ls.max_rate, ls.max_cnt) = top;
                    if ls.rate_set && old != r {
                        let set = &mut rates[l2];
                        if old > 0.0 {
                            set.remove(old);
                        }
                        set.add(r);
                    }
                    if l2 != l && ls.touch_stamp != step {
                        ls.touch_stamp = step;
                        touched.push(l2 as u32);
                    }
                }
                if old != r {
                    each(f as u32, old, r);
                }
            }
            // One key update per link whose level moved (not one per flow frozen on it).
            for &l2 in touched.iter() {
                let ls = &mut links[l2 as usize];
                if ls.unfrozen > 0 {
                    ls.n = ls.n.max(f64::MIN_POSITIVE);
                    heap.set(l2, ls.rem / ls.n);
                } else {
                    heap.remove(l2);
                }
            }
            step = step.wrapping_add(1);
        }
        self.step_stamp = step;
        debug_assert!(
            self.region
                .flows
                .iter()
                .all(|&f| self.fl[f as usize].frozen == epoch)
        );
    }
}

/// Whether a weight is an integer of at most 2^16: sums of fewer than 2^32 of them are
/// integers below 2^53, exact in `f64` whatever the order of the additions.
#[inline]
fn exact_weight(w: f64) -> bool {
    w <= 65_536.0 && w == w.trunc()
}

/// Sets link `ls` up for filling: `rem` capacity left by the flows keeping their rates
/// (`top`: the fastest of them and how many), `cnt` refilled flows of weight `n` on it.
#[inline]
fn fill_from(ls: &mut LinkState, rem: f64, n: f64, cnt: u32, top: (f64, u32)) {
    ls.rem = rem.max(0.0);
    ls.n = n;
    ls.unfrozen = cnt;
    // The refilled flows are counted in as they freeze.
    (ls.max_rate, ls.max_cnt) = top;
}

/// Counts a flow at `rate` into `(fastest rate, flows at it)`.
#[inline]
fn count_top(top: &mut (f64, u32), rate: f64) {
    if rate > top.0 {
        *top = (rate, 1);
    } else if rate == top.0 {
        top.1 += 1;
    }
}

/// Reads of a link's list for a new top after which the link keeps a [`RateSet`], if the
/// list holds at least [`RATE_SET_MIN_FLOWS`] flows then. Short lists are cheap to read
/// however often (the AFD decode step's links, read many times over its 61 layers, ran 25 %
/// slower with sets of their own); an all-to-all's lists hold a flow per GPU.
const RATE_SET_AFTER: u32 = 8;
const RATE_SET_MIN_FLOWS: usize = 256;

/// The positive rates of a link's active flows, as a multiset: (rate bits, flows at that
/// rate), ascending (rates are never negative, so their bits order like them). A sorted
/// vector searched from the top: a link gains rates in increasing order (a filling freezes
/// level after level) and loses them from the top (the fastest flows finish first). (A
/// `BTreeMap` for every link made the AFD decode step 45 % slower.)
#[derive(Clone, Default)]
struct RateSet(Vec<(u64, u32)>);

impl RateSet {
    /// The set of `rates` (those at 0, flows not yet given a rate, left out).
    fn of(rates: impl Iterator<Item = f64>) -> RateSet {
        let mut bits: Vec<u64> = rates.filter(|&r| r > 0.0).map(f64::to_bits).collect();
        bits.sort_unstable();
        let mut set: Vec<(u64, u32)> = Vec::new();
        for b in bits {
            match set.last_mut() {
                Some(last) if last.0 == b => last.1 += 1,
                _ => set.push((b, 1)),
            }
        }
        RateSet(set)
    }

    /// The fastest rate and how many flows have it (`(0.0, 0)` when there is none).
    #[inline]
    fn top(&self) -> (f64, u32) {
        self.0
            .last()
            .map_or((0.0, 0), |&(bits, n)| (f64::from_bits(bits), n))
    }

    /// Where `bits` is, or where it would go: the top few by a scan, the rest by bisection.
    #[inline]
    fn find(&self, bits: u64) -> Result<usize, usize> {
        let v = &self.0;
        let below = v.len().saturating_sub(4);
        for i in (below..v.len()).rev() {
            if v[i].0 == bits {
                return Ok(i);
            }
            if v[i].0 < bits {
                return Err(i + 1);
            }
        }
        v[..below].binary_search_by_key(&bits, |&(b, _)| b)
    }

    /// Counts one more flow at `rate`.
    #[inline]
    fn add(&mut self, rate: f64) {
        match self.find(rate.to_bits()) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => self.0.insert(i, (rate.to_bits(), 1)),
        }
    }

    /// Counts one flow at `rate` less.
    #[inline]
    fn remove(&mut self, rate: f64) {
        let i = self
            .find(rate.to_bits())
            .expect("an active flow's rate is counted");
        self.0[i].1 -= 1;
        if self.0[i].1 == 0 {
            if i + 1 == self.0.len() {
                self.0.pop();
            } else {
                self.0.remove(i);
            }
        }
    }
}

/// Sets link `ls` (with `len` active flows) up for filling without reading its list when
/// every flow on it is in update `epoch`'s region already: nothing keeps capacity, and the
/// refilled weight is the list-order sum a scan would take. Returns whether it did.
#[inline]
fn all_enrolled(ls: &mut LinkState, len: usize, epoch: u32) -> bool {
    if ls.region_stamp != epoch || ls.enrolled as usize != len {
        return false;
    }
    fill_from(ls, ls.cap, ls.list_sum, ls.enrolled, (0.0, 0));
    ls.filled_stamp = epoch;
    true
}

/// Puts flow `f` in update `epoch`'s region, and its links (CSR `off`, `e_link`) in the
/// region and the scan.
#[inline(always)]
fn enroll(
    f: u32,
    epoch: u32,
    fl: &mut [FlowState],
    off: &[u32],
    e_link: &[u32],
    links: &mut [LinkState],
    reg: &mut Region,
) {
    let fi = f as usize;
    fl[fi].stamp = epoch;
    reg.flows.push(f);
    for &l in &e_link[off[fi] as usize..off[fi + 1] as usize] {
        let ls = &mut links[l as usize];
        if ls.region_stamp != epoch {
            ls.region_stamp = epoch;
            ls.enrolled = 0;
            reg.links.push(l);
        }
        ls.enrolled += 1;
        if ls.scan_stamp != epoch {
            ls.scan_stamp = epoch;
            reg.scan.push(l);
        }
    }
}

/// The links that are twins of a lower-numbered link: the same capacity, and the same
/// registered entries (flow and weight index `wi`: weights are interned by their bits, so
/// the same index is the same weight to the bit) in the CSR lists `link_off` /
/// `link_entries` (each list in flow order). Links are grouped by a hash of their list and
/// compared in full within a group, so the work is linear in the entries.
fn twins(
    links: &[LinkState],
    link_off: &[u32],
    link_entries: &[u32],
    flow_of: &[u32],
    wi: &[u32],
) -> Vec<u32> {
    let list =
        |l: u32| &link_entries[link_off[l as usize] as usize..link_off[l as usize + 1] as usize];
    let mut keyed: Vec<(u64, u64, u32)> = (0..links.len() as u32)
        .filter(|&l| !list(l).is_empty())
        .map(|l| {
            let hash = list(l).iter().fold(list(l).len() as u64, |h, &e| {
                let h = (h.rotate_left(5) ^ flow_of[e as usize] as u64).wrapping_mul(HASH_MUL);
                (h.rotate_left(5) ^ wi[e as usize] as u64).wrapping_mul(HASH_MUL)
            });
            (links[l as usize].cap.to_bits(), hash, l)
        })
        .collect();
    keyed.sort_unstable();
    let same = |a: u32, b: u32| {
        let (la, lb) = (list(a), list(b));
        la.len() == lb.len()
            && la.iter().zip(lb).all(|(&ea, &eb)| {
                flow_of[ea as usize] == flow_of[eb as usize] && wi[ea as usize] == wi[eb as usize]
            })
    };
    let mut out = Vec::new();
    for group in keyed.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        // Sorted by id within a group: the first is the lowest of any twins it has. (A hash
        // collision between lists that differ only leaves their twins in: no rate changes.)
        let first = group[0].2;
        out.extend(group[1..].iter().map(|k| k.2).filter(|&l| same(first, l)));
    }
    out
}

/// The multiplier of [`twins`]'s list hash (FxHash's).
const HASH_MUL: u64 = 0x517c_c1b7_2722_0a95;

/// Max-min rates of `flows` (each a list of `(link, weight)`) from scratch: the reference
/// the incremental allocator is tested against, and the analytical and online levels'
/// helper.
///
/// Only the links the flows cross are set up, renumbered in their order: an allocator's
/// work and memory go with the links it holds (a few dozen transfers on a fabric of
/// thousands of links), and nothing in it reads a link id but to order links (ties pop the
/// lower id, twins keep the lower), which the renumbering keeps: the same rates, to the bit
/// (`tests::compacted_links_change_no_rate`).
pub fn full_recompute(cap: &[f64], flows: &[Vec<(u32, f64)>]) -> Vec<f64> {
    let mut used: Vec<u32> = flows.iter().flatten().map(|&(l, _)| l).collect();
    used.sort_unstable();
    used.dedup();
    let caps = used.iter().map(|&l| cap[l as usize]).collect();
    let dense = |l: u32| used.binary_search(&l).expect("a used link") as u32;
    let flows: Vec<Vec<(u32, f64)>> = flows
        .iter()
        .map(|f| f.iter().map(|&(l, w)| (dense(l), w)).collect())
        .collect();
    full_recompute_with(Allocator::new(caps), &flows)
}

fn full_recompute_with(mut a: Allocator, flows: &[Vec<(u32, f64)>]) -> Vec<f64> {
    let ids: Vec<u32> = flows
        .iter()
        .map(|f| a.register(f.iter().copied()))
        .collect();
    ids.into_iter().for_each(|id| a.start(id));
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

    /// An allocator that counts every link, reads every region link's list and always fills
    /// from a heap: the default one must give the same rates, to the bit.
    fn unpruned(cap: &[f64]) -> Allocator {
        let mut a = Allocator::new(cap.to_vec());
        a.prune = false;
        a.skip_enrolled = false;
        a.linear_max = 0;
        a
    }

    /// An HGX-like route: PCIe (capacity 1.1) then NIC (1.0) on both ends, a spine link
    /// between. The PCIe links are dominated by their NICs, and the spine link too (both its
    /// flows end at GPU 2's NIC); nothing else is.
    #[test]
    fn dominated_links_are_left_out_without_changing_rates() {
        // Links: 0, 1 PCIe up of GPUs 0, 1; 2, 3 their NICs up; 4 spine; 5 NIC down of
        // GPU 2; 6 its PCIe down; 7 a NIC link whose flows do not all cross one slower link.
        let cap = vec![1.1, 1.1, 1.0, 1.0, 1.5, 1.0, 1.1, 1.2];
        let flows = vec![
            vec![(0, 1.0), (2, 1.0), (4, 1.0), (5, 1.0), (6, 1.0)],
            vec![(1, 1.0), (3, 1.0), (4, 1.0), (5, 1.0), (6, 1.0)],
            vec![(1, 1.0), (3, 1.0), (7, 1.0)],
            vec![(7, 1.0)],
        ];
        let mut a = Allocator::new(cap.clone());
        flows.iter().for_each(|f| {
            a.register(f.iter().copied());
        });
        assert_eq!(a.dominated_links(), vec![0, 1, 4, 6]);
        let pruned = full_recompute(&cap, &flows);
        let full = full_recompute_with(unpruned(&cap), &flows);
        assert_eq!(pruned, full);
    }

    /// Parallel links that every flow crosses alike are one constraint: all but the lowest
    /// are left out, with the same rates to the bit; a flow on only one of them, or a
    /// different capacity, or a weight that differs in the last bit, keeps them apart.
    #[test]
    fn twin_links_keep_one_without_changing_rates() {
        // Links 0-2 parallel (flows spread a third on each), 3-4 parallel but flow 2 uses
        // only 4, 5-6 parallel with capacities a rounding apart (too close for one to
        // dominate the other), 7-8 parallel with weights a bit apart, 9 a link of its own.
        let cap = vec![
            1.0,
            1.0,
            1.0,
            2.0,
            2.0,
            1.5,
            1.5 * (1.0 + 1e-9),
            1.0,
            1.0,
            0.7,
        ];
        let third = 1.0 / 3.0;
        let next = f64::from_bits(0.5f64.to_bits() + 1);
        let flows = vec![
            vec![(0, third), (1, third), (2, third), (3, 0.5), (4, 0.5)],
            vec![(0, third), (1, third), (2, third), (9, 1.0)],
            vec![(4, 1.0), (5, 0.5), (6, 0.5)],
            vec![(7, 0.5), (8, next), (9, 1.0)],
        ];
        let mut a = Allocator::new(cap.clone());
        flows.iter().for_each(|f| {
            a.register(f.iter().copied());
        });
        assert_eq!(a.dominated_links(), vec![1, 2]);
        let pruned = full_recompute(&cap, &flows);
        let full = full_recompute_with(unpruned(&cap), &flows);
        assert_eq!(pruned, full);
    }

    /// Random flows start and stop in random batches; after every update the incremental
    /// rates equal a full recompute of the active flows (with every link counted), and the
    /// incremental allocator without leaving dominated links out, reading every list and
    /// filling from a heap gives the same rates and changes, to the bit.
    fn check_incremental(cap: Vec<f64>, flows: Vec<Vec<(u32, f64)>>, order: Vec<(bool, u8)>) {
        let mut a = Allocator::new(cap.clone());
        let mut b = unpruned(&cap);
        let ids: Vec<u32> = flows
            .iter()
            .map(|f| a.register(f.iter().copied()))
            .collect();
        flows.iter().for_each(|f| {
            b.register(f.iter().copied());
        });
        let mut started = vec![false; flows.len()];
        let mut stopped = vec![false; flows.len()];
        for (flush, pick) in order {
            let f = pick as usize % flows.len();
            if !started[f] {
                started[f] = true;
                a.start(ids[f]);
                b.start(ids[f]);
            } else if !stopped[f] {
                stopped[f] = true;
                a.stop(ids[f]);
                b.stop(ids[f]);
            }
            if flush {
                let (mut ca, mut cb) = (Vec::new(), Vec::new());
                a.update(&mut ca);
                b.update(&mut cb);
                assert_eq!(ca, cb, "pruned and unpruned change the same rates");
                let live: Vec<usize> = (0..flows.len())
                    .filter(|&f| started[f] && !stopped[f])
                    .collect();
                for &f in &live {
                    assert_eq!(a.rate(ids[f]), b.rate(ids[f]), "flow {f}: pruned vs not");
                }
                let sub: Vec<Vec<(u32, f64)>> = live.iter().map(|&f| flows[f].clone()).collect();
                let want = full_recompute_with(unpruned(&cap), &sub);
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

    /// A link with hundreds of flows whose fastest keep leaving (as in an all-to-all): it
    /// comes to keep a rate set, and with it the rates still equal a full recompute after
    /// every update, as flows start, stop and are refilled at new rates.
    #[test]
    fn a_long_list_keeps_a_rate_set_and_the_same_rates() {
        // Link 0 is shared by every flow; link 1 + i is flow i's own, of a distinct
        // capacity. The fastest flows share link 0 at one level; the rest are held by their
        // own links.
        let n = 700usize;
        let mut cap = vec![0.0; n + 1];
        for (i, c) in cap[1..].iter_mut().enumerate() {
            *c = 0.05 + ((i * 7919) % 997) as f64 * 0.001;
        }
        cap[0] = 0.7 * cap[1..=400].iter().sum::<f64>();
        let flows: Vec<Vec<(u32, f64)>> = (0..n)
            .map(|i| vec![(0, 1.0), (1 + i as u32, 1.0)])
            .collect();
        let mut a = Allocator::new(cap.clone());
        for f in &flows {
            a.register(f.iter().copied());
        }
        let mut active: Vec<usize> = (0..400).collect();
        let mut next = 400;
        active.iter().for_each(|&f| a.start(f as u32));
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut built = false;
        for step in 0..600 {
            a.update(&mut Vec::new());
            let sub: Vec<Vec<(u32, f64)>> = active.iter().map(|&f| flows[f].clone()).collect();
            let want = full_recompute_with(unpruned(&cap), &sub);
            for (k, &f) in active.iter().enumerate() {
                let got = a.rate(f as u32);
                assert!(
                    (got - want[k]).abs() <= 1e-7 * want[k],
                    "step {step}, flow {f}: {got} vs {}",
                    want[k]
                );
            }
            built |= a.links[0].rate_set;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if next < n && rng.is_multiple_of(4) {
                // A new flow: it takes a share of link 0, and the others are refilled.
                a.start(next as u32);
                active.push(next);
                next += 1;
            } else if !active.is_empty() {
                // The fastest flow leaves (the last top of link 0 more often than not), or
                // now and then any flow.
                let k = if rng.is_multiple_of(3) {
                    (rng >> 8) as usize % active.len()
                } else {
                    (0..active.len())
                        .max_by(|&x, &y| {
                            a.rate(active[x] as u32)
                                .total_cmp(&a.rate(active[y] as u32))
                        })
                        .expect("active")
                };
                a.stop(active.swap_remove(k) as u32);
            }
        }
        assert!(built, "link 0 came to keep a rate set");
    }

    proptest! {
        /// Flows over a few of 40 links, with capacities that make ties and twins: the
        /// rates over the renumbered links are the rates over all of them, to the bit.
        #[test]
        fn compacted_links_change_no_rate(
            cap in prop::collection::vec(1u32..4, 40),
            flows in prop::collection::vec(
                prop::collection::btree_map(0u32..40, 1u32..4, 1..4), 1..24),
        ) {
            let cap: Vec<f64> = cap.into_iter().map(|c| f64::from(c) / 3.0).collect();
            let flows: Vec<Vec<(u32, f64)>> = flows
                .into_iter()
                .map(|m| m.into_iter().map(|(l, w)| (l, f64::from(w) / 7.0)).collect())
                .collect();
            let all = full_recompute_with(Allocator::new(cap.clone()), &flows);
            let compact = full_recompute(&cap, &flows);
            let bits = |r: &[f64]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&compact), bits(&all));
        }

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

        /// Flows spread over groups of parallel links (0-2, 3-4, 5-7) or take one of
        /// them: twin links, kept as one, must change no rate.
        #[test]
        fn incremental_equals_full_recompute_parallel_links(
            cap in prop::collection::vec(1u32..4, 3),
            flows in prop::collection::vec(
                prop::collection::btree_map(0usize..3, 0u8..8, 1..3), 1..14),
            order in prop::collection::vec((any::<bool>(), any::<u8>()), 1..40),
        ) {
            // Group g's links and capacity (each of its links has the group's capacity).
            const GROUPS: [std::ops::Range<u32>; 3] = [0..3, 3..5, 5..8];
            let caps: Vec<f64> = GROUPS
                .iter()
                .zip(&cap)
                .flat_map(|(g, &c)| g.clone().map(move |_| f64::from(c)))
                .collect();
            let flows: Vec<Vec<(u32, f64)>> = flows
                .into_iter()
                .map(|m| {
                    m.into_iter()
                        .flat_map(|(g, pick)| {
                            let links = GROUPS[g].clone();
                            let n = links.len() as u32;
                            // Mostly spread evenly; now and then on one link only.
                            let (links, share) = if pick < 6 {
                                (links, 1.0 / f64::from(n))
                            } else {
                                let l = links.start + u32::from(pick) % n;
                                (l..l + 1, 1.0)
                            };
                            links.map(move |l| (l, share))
                        })
                        .collect()
                })
                .collect();
            check_incremental(caps, flows, order);
        }

        /// Weights in sixths, whose sums round: the list-order sums the allocator keeps
        /// must be the ones a scan of the list takes.
        #[test]
        fn incremental_equals_full_recompute_rounding_weights(
            cap in prop::collection::vec(1u32..8, 6),
            flows in prop::collection::vec(
                prop::collection::btree_map(0u32..6, 1u32..7, 1..4), 1..14),
            order in prop::collection::vec((any::<bool>(), any::<u8>()), 1..40),
        ) {
            let cap: Vec<f64> = cap.into_iter().map(f64::from).collect();
            let flows: Vec<Vec<(u32, f64)>> = flows
                .into_iter()
                .map(|m| m.into_iter().map(|(l, w)| (l, f64::from(w) / 6.0)).collect())
                .collect();
            check_incremental(cap, flows, order);
        }
    }
}
