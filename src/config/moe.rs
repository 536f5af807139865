//! The `moe-dispatch` traffic pattern: expert-parallel dispatch bytes from a seeded routing
//! draw, under a stated deduplication convention (shared/DOMAIN.md, "Byte accounting").
//!
//! Every GPU holds `tokens_per_gpu` tokens; each picks `top_k` distinct experts uniformly at
//! random, from all experts or, with `node_groups`, from the experts of that many randomly
//! chosen nodes (DeepSeek-V3's group-limited routing, as DeepEP's benchmarks run it).
//! Experts are placed contiguously: GPU g hosts experts [g E/N, (g+1) E/N).
//!
//! Conventions (which one a published figure used decides what it means):
//! - `expert`: one send per (token, expert) — DeepEP low-latency kernels;
//! - `gpu`: one send per (token, destination GPU) — DeepEP normal kernels inside a node;
//! - `node`: one RDMA send per (token, remote node) to the GPU of the same local rank there,
//!   which forwards over NVLink to each GPU of its node that hosts one of the token's experts;
//!   GPUs of the token's own node get it over NVLink directly — DeepEP normal internode.
//!   DeepEP pipelines forwarding behind the RDMA stage in chunks; here both stages start at
//!   once, which assumes that pipeline is perfect (on few nodes the NVLink stage, carrying
//!   both forwarded and local tokens, can be the slower one).
//!
//! A GPU's tokens for its own experts do not cross the fabric: they make no message, only a
//! local copy where a `kernel` library charges one (`src/comm/`).
//!
//! `direction = "combine"` sends the same matrix back (destination to source) in the combine
//! dtype; `router = "balanced"` replaces the draw with an even spread (token u takes experts
//! u, u + E/k, ... mod E), as kernel benchmarks run it.

use super::{Ctx, TrafficFile};
use crate::engine::SimRng;
use crate::error::InputError;

/// (source GPU, destination GPU, bytes) of every message, in (source, destination) order.
pub(super) type Sends = Vec<(u32, u32, u64)>;

pub(super) fn dispatch(
    cx: &Ctx,
    at: &str,
    t: &TrafficFile,
    gpus: u32,
    gpus_per_node: u32,
    rng: &mut SimRng,
) -> Result<Sends, InputError> {
    let key = |k: &str| format!("{at}.{k}");
    let need = |k: &str, v: Option<i64>| {
        v.ok_or_else(|| cx.err(key(k), "required for pattern `moe-dispatch`"))
    };
    let tokens = cx.int_in(
        &key("tokens_per_gpu"),
        need("tokens_per_gpu", t.tokens_per_gpu)?,
        1,
        1 << 20,
    )? as u32;
    let experts = cx.int_in(&key("experts"), need("experts", t.experts)?, 1, 1 << 16)? as u32;
    let top_k = cx.int_in(&key("top_k"), need("top_k", t.top_k)?, 1, experts as i64)? as u32;
    let hidden = cx.int_in(&key("hidden"), need("hidden", t.hidden)?, 1, 1 << 20)? as u64;
    if !experts.is_multiple_of(gpus) {
        return Err(cx.err(
            key("experts"),
            format!("{experts} experts do not divide over {gpus} GPUs (contiguous placement)"),
        ));
    }
    let combine = match t.direction.as_deref().unwrap_or("dispatch") {
        "dispatch" => false,
        "combine" => true,
        other => {
            return Err(cx.err(
                key("direction"),
                format!("`{other}` is not allowed: dispatch or combine"),
            ));
        }
    };
    let balanced = match t.router.as_deref().unwrap_or("random") {
        "random" => false,
        "balanced" => true,
        other => {
            return Err(cx.err(
                key("router"),
                format!("`{other}` is not allowed: random or balanced"),
            ));
        }
    };
    if balanced && t.node_groups.is_some() {
        return Err(cx.err(
            key("node_groups"),
            "not used with router = \"balanced\" (every token spreads over all experts)",
        ));
    }
    // A combine sends back what the dispatch delivered, in the combine dtype (BF16 unless
    // `dtype` says otherwise).
    let default_dtype = if combine { "bf16" } else { "fp8" };
    let per_token = match t.dtype.as_deref().unwrap_or(default_dtype) {
        // e4m3 values plus one fp32 scale per 128 values.
        "fp8" => hidden + hidden.div_ceil(128) * 4,
        "bf16" => hidden * 2,
        other => {
            return Err(cx.err(
                key("dtype"),
                format!("`{other}` is not allowed: fp8 or bf16"),
            ));
        }
    } + cx.int_in(
        &key("metadata_bytes"),
        t.metadata_bytes.unwrap_or(0),
        0,
        4096,
    )? as u64;
    let nodes = gpus / gpus_per_node;
    let groups = match t.node_groups {
        None => nodes,
        Some(g) => cx.int_in(&key("node_groups"), g, 1, nodes as i64)? as u32,
    };
    let per_gpu = experts / gpus;
    let per_node = per_gpu * gpus_per_node;
    if groups * per_node < top_k {
        return Err(cx.err(
            key("node_groups"),
            format!(
                "{groups} nodes hold {} experts, fewer than top_k = {top_k}",
                groups * per_node
            ),
        ));
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Dedup {
        Expert,
        Gpu,
        Node,
    }
    let dedup = match t.dedup.as_deref().unwrap_or("gpu") {
        "expert" => Dedup::Expert,
        "gpu" => Dedup::Gpu,
        "node" => Dedup::Node,
        other => {
            return Err(cx.err(
                key("dedup"),
                format!("`{other}` is not allowed: expert, gpu or node"),
            ));
        }
    };

    let g = gpus as usize;
    let mut count = vec![0u64; g * g];
    let mut node_order: Vec<u32> = (0..nodes).collect();
    let mut candidates: Vec<u32> = Vec::with_capacity(experts as usize);
    let mut hit_gpu = vec![false; g];
    let mut hit_node = vec![false; nodes as usize];
    for src in 0..gpus {
        let src_node = src / gpus_per_node;
        for token in 0..tokens {
            // Choose the nodes, then top_k distinct experts among theirs (partial shuffles).
            for i in 0..groups as usize * usize::from(!balanced) {
                let j = i + rng.below((nodes as usize - i) as u64) as usize;
                node_order.swap(i, j);
            }
            candidates.clear();
            if balanced {
                // Token u of all takes experts u, u + E/k, u + 2E/k, ... (mod E): every
                // expert gets the same number of tokens, spread as evenly as k allows.
                let u = src as u64 * tokens as u64 + token as u64;
                let stride = (experts / top_k).max(1) as u64;
                for j in 0..top_k as u64 {
                    let mut e = ((u + j * stride) % experts as u64) as u32;
                    while candidates.contains(&e) {
                        e = (e + 1) % experts;
                    }
                    candidates.push(e);
                }
            } else {
                for &n in &node_order[..groups as usize] {
                    candidates.extend(n * per_node..(n + 1) * per_node);
                }
                for i in 0..top_k as usize {
                    let j = i + rng.below((candidates.len() - i) as u64) as usize;
                    candidates.swap(i, j);
                }
            }
            hit_gpu.iter_mut().for_each(|h| *h = false);
            hit_node.iter_mut().for_each(|h| *h = false);
            for &e in &candidates[..top_k as usize] {
                let dst = e / per_gpu;
                match dedup {
                    Dedup::Expert => count[src as usize * g + dst as usize] += 1,
                    Dedup::Gpu | Dedup::Node => hit_gpu[dst as usize] = true,
                }
            }
            if dedup == Dedup::Expert {
                continue;
            }
            for dst in 0..gpus {
                if !hit_gpu[dst as usize] {
                    continue;
                }
                let dst_node = dst / gpus_per_node;
                if dedup == Dedup::Gpu || dst_node == src_node {
                    count[src as usize * g + dst as usize] += 1;
                } else {
                    // One RDMA send to the same local rank of the destination node...
                    let peer = dst_node * gpus_per_node + src % gpus_per_node;
                    if !hit_node[dst_node as usize] {
                        hit_node[dst_node as usize] = true;
                        count[src as usize * g + peer as usize] += 1;
                    }
                    // ...which forwards it over NVLink.
                    count[peer as usize * g + dst as usize] += 1;
                }
            }
        }
    }
    let mut sends = Vec::new();
    for s in 0..gpus {
        for d in 0..gpus {
            let c = count[s as usize * g + d as usize];
            if c > 0 {
                sends.push((s, d, c * per_token));
            }
        }
    }
    if combine {
        // The reverse matrix: what d received from s goes back from d to s.
        sends = sends.into_iter().map(|(s, d, b)| (d, s, b)).collect();
        sends.sort_unstable();
    }
    Ok(sends)
}
