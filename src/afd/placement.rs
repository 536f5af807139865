//! Expert placement: which FFN GPU holds each expert, and the redundant copies of hot
//! experts (EPLB).
//!
//! A placement is a list of expert *slots*, each on one FFN GPU and holding one expert;
//! every expert has at least one slot. A token routed to an expert with several slots goes
//! to them in turn (the i-th token of a layer and micro-batch routed to the expert, counted
//! over all attention GPUs in order, takes slot i mod replicas): deterministic, and it splits
//! an expert's tokens evenly over its copies, as a static EPLB dispatch does in expectation.
//!
//! Invariant: every GPU holds at least one slot, every expert at least one, and EPLB puts
//! an expert's copies on distinct GPUs whenever its greedy packing finds a GPU with a free
//! slot that lacks the expert (otherwise two copies share a GPU).

/// How experts are laid out over the FFN GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Experts E/F per GPU in order (expert e on GPU e / (E/F)); needs F to divide E.
    Contiguous,
    /// Expert e on GPU e mod F.
    RoundRobin,
    /// DeepSeek EPLB: `redundant` extra slots go one by one to the expert with the highest
    /// expected load per copy; then copies, heaviest first, are packed onto the GPU with the
    /// least expected load that still has a free slot (GPUs hold (E + N) / F slots, the
    /// first (E + N) mod F one more) and does not hold that expert yet.
    Eplb { redundant: u64 },
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::Contiguous => "contiguous",
            Placement::RoundRobin => "round-robin",
            Placement::Eplb { .. } => "eplb",
        }
    }
}

/// A resolved placement: slots, their GPUs and experts.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpertMap {
    /// The FFN GPU (index into the deployment's FFN GPUs) of each slot.
    pub slot_gpu: Vec<u32>,
    /// The slots of each expert.
    pub replicas: Vec<Vec<u32>>,
    /// Slots on each FFN GPU.
    pub slots_on: Vec<u64>,
    /// The slots of each FFN GPU, in slot order.
    pub gpu_slots: Vec<Vec<u32>>,
}

impl ExpertMap {
    /// Lays `experts` out over `gpus` GPUs. `load` is each expert's expected load (used by
    /// EPLB only). The caller checks that contiguous placement divides evenly and that
    /// there are at least as many slots as GPUs.
    pub fn new(placement: Placement, experts: u64, gpus: u32, load: &[f64]) -> ExpertMap {
        let gpu_of: Vec<(u64, u32)> = match placement {
            Placement::Contiguous => {
                let per = experts / gpus as u64;
                (0..experts).map(|e| (e, (e / per) as u32)).collect()
            }
            Placement::RoundRobin => (0..experts)
                .map(|e| (e, (e % gpus as u64) as u32))
                .collect(),
            Placement::Eplb { redundant } => eplb(load, redundant, gpus),
        };
        let mut map = ExpertMap {
            slot_gpu: Vec::with_capacity(gpu_of.len()),
            replicas: vec![Vec::new(); experts as usize],
            slots_on: vec![0; gpus as usize],
            gpu_slots: vec![Vec::new(); gpus as usize],
        };
        for (slot, &(e, g)) in gpu_of.iter().enumerate() {
            map.slot_gpu.push(g);
            map.replicas[e as usize].push(slot as u32);
            map.slots_on[g as usize] += 1;
            map.gpu_slots[g as usize].push(slot as u32);
        }
        map
    }

    pub fn slots(&self) -> usize {
        self.slot_gpu.len()
    }
}

/// EPLB (DeepSeek's `eplb.py`, one level): replicate, then pack greedily. Returns one
/// (expert, GPU) per slot. Ties go to the lower expert or GPU index.
fn eplb(load: &[f64], redundant: u64, gpus: u32) -> Vec<(u64, u32)> {
    let experts = load.len();
    let mut copies = vec![1u64; experts];
    for _ in 0..redundant {
        let hottest = (0..experts)
            .max_by(|&a, &b| {
                let (la, lb) = (load[a] / copies[a] as f64, load[b] / copies[b] as f64);
                la.total_cmp(&lb).then(b.cmp(&a))
            })
            .expect("at least one expert");
        copies[hottest] += 1;
    }
    // Copies, heaviest first.
    let mut items: Vec<(u64, f64)> = (0..experts)
        .flat_map(|e| (0..copies[e]).map(move |_| e as u64))
        .map(|e| (e, load[e as usize] / copies[e as usize] as f64))
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total = items.len() as u64;
    let cap: Vec<u64> = (0..gpus as u64)
        .map(|g| total / gpus as u64 + u64::from(g < total % gpus as u64))
        .collect();
    let (mut used, mut gpu_load) = (vec![0u64; gpus as usize], vec![0.0f64; gpus as usize]);
    let mut holds: Vec<Vec<u64>> = vec![Vec::new(); gpus as usize];
    let mut out = Vec::with_capacity(items.len());
    for (e, w) in items {
        let least = |fresh: bool| {
            (0..gpus as usize)
                .filter(|&g| used[g] < cap[g] && (!fresh || !holds[g].contains(&e)))
                .min_by(|&a, &b| gpu_load[a].total_cmp(&gpu_load[b]).then(a.cmp(&b)))
        };
        let g = least(true)
            .or_else(|| least(false))
            .expect("capacities sum to the slots");
        used[g] += 1;
        gpu_load[g] += w;
        holds[g].push(e);
        out.push((e, g as u32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_loads(m: &ExpertMap, load: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; m.slots_on.len()];
        for (e, slots) in m.replicas.iter().enumerate() {
            for &s in slots {
                out[m.slot_gpu[s as usize] as usize] += load[e] / slots.len() as f64;
            }
        }
        out
    }

    #[test]
    fn contiguous_and_round_robin_lay_experts_out_in_order() {
        let load = vec![1.0; 8];
        let c = ExpertMap::new(Placement::Contiguous, 8, 4, &load);
        assert_eq!(c.slot_gpu, vec![0, 0, 1, 1, 2, 2, 3, 3]);
        let r = ExpertMap::new(Placement::RoundRobin, 10, 4, &load);
        assert_eq!(r.slot_gpu, vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
        assert_eq!(r.slots_on, vec![3, 3, 2, 2]);
    }

    /// EPLB copies the hottest experts, spreads each expert's copies over distinct GPUs and
    /// balances the expected load far better than contiguous placement.
    #[test]
    fn eplb_replicates_hot_experts_and_balances_the_expected_load() {
        let load: Vec<f64> = (0..32).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let e = ExpertMap::new(Placement::Eplb { redundant: 8 }, 32, 8, &load);
        assert_eq!(e.slots(), 40);
        assert_eq!(e.slots_on, vec![5; 8]);
        assert!(e.replicas[0].len() > 1 && e.replicas[31].len() == 1);
        for slots in &e.replicas {
            let mut g: Vec<u32> = slots.iter().map(|&s| e.slot_gpu[s as usize]).collect();
            g.sort_unstable();
            g.dedup();
            assert_eq!(g.len(), slots.len(), "copies share a GPU");
        }
        let imbalance = |m: &ExpertMap| {
            let l = gpu_loads(m, &load);
            l.iter().copied().fold(0.0, f64::max) / (l.iter().sum::<f64>() / l.len() as f64)
        };
        let c = ExpertMap::new(Placement::Contiguous, 32, 8, &load);
        assert!(imbalance(&e) < 1.1, "{}", imbalance(&e));
        assert!(imbalance(&c) > 2.0, "{}", imbalance(&c));
    }
}
