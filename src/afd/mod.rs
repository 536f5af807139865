//! AFD decode on the fabric: one decode step of an attention-FFN-disaggregated deployment,
//! built as a [`Workload`] that any level executes.
//!
//! Per layer and micro-batch: every attention GPU runs its attention side (measured tables,
//! `compute::Model::attention_side_at`: projections, core attention, router, shared expert,
//! and for dense layers the dense FFN) on its share of the micro-batch (with per-sequence
//! contexts, each GPU from its own sequences: [`ContextShape`]); every token picks
//! `top_k` experts ([`ExpertRouting`]: uniform, Zipf or a histogram); each expert lives in one or
//! more slots on the FFN GPUs ([`Placement`]: contiguous, round-robin or EPLB copies of hot
//! experts); each attention GPU dispatches its tokens once per destination FFN GPU
//! ([`Dedup::Gpu`], DeepEP normal mode) or once per expert ([`Dedup::Expert`], DeepEP
//! low-latency mode), `dispatch_bytes_per_token` each; every FFN GPU runs its grouped expert
//! GEMMs (`ffn_side`) once all its dispatches of that micro-batch are in, for the tokens it
//! actually received, plus, with `shared_expert_side = "ffn"`, the shared expert of the
//! tokens [`shared_gpu`] gives it, one of each token's destinations (no extra dispatch or
//! combine copy: that GPU already receives the token and returns one sum); it returns the same copies as combines (`combine_bytes_per_token`,
//! summed per attention GPU); an attention GPU's next layer of that micro-batch waits for
//! its combines. Micro-batches overlap by themselves: each GPU's compute stream runs one
//! kernel at a time in ready order, and the network levels share links.
//!
//! Dispatch and combine move through the deployment's communication library
//! (`Deployment::comm`, `[afd] comm`): with `ideal` as plain messages (the step as it was
//! before kernels were modelled, byte for byte); otherwise as one `comm::launch` kernel call
//! per layer, micro-batch and direction, whose fixed costs are delays beside the streams,
//! whose copies share rate limiters, and whose SMs slow the kernels they overlap. A GPU runs
//! its parts of dispatch calls in call order, one at a time, and likewise of combine calls
//! (docs/comm.md, "The AFD pipeline under a library").
//!
//! The grouped GEMM of an FFN GPU sees the real per-expert counts of the draw. Where the
//! table has the kernel's tile rules for the shape, each grouped GEMM is the balanced kernel
//! at the whole-token mean (the configuration PyTorch picks) times its work on the real
//! counts over its work on the mean (`ComputeTable::tile_work_ratio`: every slot's rows
//! padded to that configuration's tiles, in waves of the persistent grid; docs/compute.md,
//! "Uneven loads"). Otherwise the balanced time at the mean (rounded up) is scaled by the
//! skew factor `grouped_gemm_skew(groups, mean, max) / grouped_gemm(bf16, groups, mean)`
//! (the measured skew rows, BF16, applied to the model's GEMM dtype; without them the
//! balanced kernel at the busiest slot's count).
//!
//! Attention GPUs are the first GPUs of the fabric and FFN GPUs the next ones (the
//! colocated baseline uses the same GPUs for both). Choices and measurements: docs/afd.md.
//!
//! Invariant: the builder only creates tasks; it never times the network itself.

mod context;
mod placement;
mod routing;

pub use context::{ContextDist, ContextShape};
pub use placement::{ExpertMap, Placement};
pub use routing::ExpertRouting;

use crate::comm::{self, Launched, Library};
use crate::compute::{
    Attention, AttentionKernel, ComputeTable, Dtype, Mla, Model, Op, OpQuery, QueryError, Side,
    Work,
};
use crate::engine::{Dur, SimRng, Time};
use crate::net::{MessageSpec, NetParams, TaskRef, Workload};
use crate::topology::{Fabric, NodeId};
use routing::Router;
use std::sync::Arc;

/// A resolved AFD decode deployment (or, with the FFN GPUs equal to the attention GPUs, the
/// colocated expert-parallel baseline): what stays the same from one step to the next. Cheap
/// to clone (the compute tables are shared); a step's shape is a [`StepShape`].
#[derive(Clone, Debug)]
pub struct Deployment {
    /// The model, with the scenario's dispatch and combine dtypes (when it overrides them).
    pub model: Model,
    pub attention_table: Arc<ComputeTable>,
    /// The same table as `attention_table` unless `[afd] ffn_table` names another.
    pub ffn_table: Arc<ComputeTable>,
    pub kernel: AttentionKernel,
    pub attention_gpus: Vec<NodeId>,
    pub ffn_gpus: Vec<NodeId>,
    pub micro_batches: u32,
    pub routing: ExpertRouting,
    pub placement: Placement,
    /// The slots of every expert on the FFN GPUs (from `placement` and the routing's
    /// expected load).
    pub experts: ExpertMap,
    pub dedup: Dedup,
    /// The communication library whose kernels move every dispatch and combine
    /// (`[afd] comm`, docs/comm.md). `ideal` sends each as a plain message.
    pub comm: Arc<Library>,
    /// SMs per GPU: a kernel of `comm` takes its `sms` of them from the compute it
    /// overlaps (0: not modelled).
    pub gpu_sms: u32,
}

impl Deployment {
    /// A hash of everything that makes the deployment's steps what they are (the tables by
    /// their [`ComputeTable::fingerprint`]): two deployments with equal fingerprints time
    /// every step alike on the same fabric (within one process).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.attention_table.fingerprint().hash(&mut h);
        self.ffn_table.fingerprint().hash(&mut h);
        format!(
            "{:?} {:?} {:?} {:?} {} {:?} {:?} {:?} {:?} {:?} {}",
            self.model,
            self.kernel,
            self.attention_gpus,
            self.ffn_gpus,
            self.micro_batches,
            self.routing,
            self.placement,
            self.experts,
            self.dedup,
            self.comm,
            self.gpu_sms
        )
        .hash(&mut h);
        h.finish()
    }
}

/// What one step of a [`Deployment`] runs: its sequences, their contexts, the prompt tokens
/// it prefills and the layers it simulates. An `[afd]` study has one; request-level serving
/// builds one per simulated iteration.
#[derive(Clone, Debug, Default)]
pub struct StepShape {
    /// Attention GPUs that have tokens this step: the first ones (request-level serving
    /// asks for steps in which only some do); the rest run no attention and send nothing.
    /// Equal to the number of attention GPUs for a decode scenario.
    pub active_attention_gpus: u32,
    /// Sequences decoding on each attention GPU (split over the micro-batches).
    pub batch_per_attention_gpu: u32,
    /// Cached tokens per sequence (with `contexts`: their mean, rounded).
    pub context: u64,
    /// Each attention GPU's sequences' cached tokens, drawn from a distribution
    /// (`[afd] context_dist`); empty: every sequence has `context`. Only for decode steps
    /// (no prefill chunk): the attention of a micro-batch on a GPU is timed from its own
    /// sequences (see `Deployment::spread_attention_us`).
    pub contexts: Vec<Vec<u64>>,
    /// Prompt tokens each attention GPU also prefills in this step (a chunked-prefill
    /// iteration of request-level serving; 0 for a pure decode step), split over the
    /// micro-batches like the batch, each piece after the ones before it.
    pub prefill_tokens: u32,
    /// Tokens of the prompt already cached before the chunk.
    pub prefill_prefix: u64,
    /// Layers to simulate: the model's, or fewer (quick studies; serving's iterations
    /// extrapolate from a few).
    pub layers: u64,
}

/// The `[afd]` study: a deployment, the shape of its steps and how many to simulate.
#[derive(Clone, Debug)]
pub struct AfdSpec {
    pub deployment: Deployment,
    pub shape: StepShape,
    /// Decode steps to simulate, one after another, each with its own routing draw.
    pub steps: u32,
}

impl AfdSpec {
    /// One step of the study's shape on `fabric`; routing draws come from `rng`.
    pub fn decode_step(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        rng: &mut SimRng,
    ) -> Result<DecodeStep, QueryError> {
        self.deployment
            .decode_step(fabric, params, &self.shape, rng)
    }
}

/// How many copies of a token a dispatch sends (and a combine returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dedup {
    /// Once per destination GPU, whatever number of its experts there (DeepEP normal mode).
    Gpu,
    /// Once per expert slot (DeepEP low-latency mode): top_k copies per token.
    Expert,
}

impl Dedup {
    pub fn name(self) -> &'static str {
        match self {
            Dedup::Gpu => "gpu",
            Dedup::Expert => "expert",
        }
    }
}

/// Which part of the step a compute task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Attention,
    Ffn,
    /// A fixed cost of a dispatch or combine kernel on one GPU (a delay beside its compute
    /// stream: see `comm::launch`).
    Kernel(Transfer, KernelPart),
}

/// Which fixed cost of a communication kernel a delay is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPart {
    /// Launch and start barrier, before the GPU's first transfer of the call.
    Start,
    /// A token for the GPU's own experts, copied through HBM.
    Copy,
    /// Completion flag and polling after its last transfer.
    End,
    /// A combine's weighted sum of the copies the GPU received.
    Reduce,
}

impl Stage {
    /// Whether the task is a communication kernel's fixed cost (not a compute kernel).
    pub fn is_kernel(self) -> bool {
        matches!(self, Stage::Kernel(..))
    }
}

/// Which part of the step a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    Dispatch,
    Combine,
}

/// A decode step as a workload, with what each task is.
#[derive(Clone, Debug)]
pub struct DecodeStep {
    pub workload: Workload,
    pub compute_stage: Vec<Stage>,
    /// The layer of each compute task.
    pub compute_layer: Vec<u32>,
    pub message_kind: Vec<Transfer>,
    /// Token-expert pairs each FFN GPU received over the step.
    pub ffn_pairs: Vec<u64>,
    /// Sum over every token of every MoE layer of the copies it sends across the fabric: its
    /// distinct destination FFN GPUs ([`Dedup::Gpu`]) or its experts ([`Dedup::Expert`]),
    /// other than its own GPU, as the routing drew them. (Only the colocated baseline has
    /// tokens for its own GPU.) Each is one dispatch and one combine of a token.
    pub token_copies: u64,
    /// Sequences decoded per step (all attention GPUs).
    pub tokens: u64,
    /// Tokens (over every MoE layer) whose shared expert each FFN GPU ran (all 0 unless
    /// `shared_expert_side = "ffn"`).
    pub ffn_shared: Vec<u64>,
}

fn us(t: f64) -> Dur {
    Dur::from_ps((t * 1e6).round() as u64)
}

/// FFN kernel times by (slots, tokens on them in all, tokens at the busiest slot, the slots'
/// tokens padded to 128 and to 256 summed): the same loads recur across layers,
/// micro-batches and GPUs, and the time depends on nothing else.
type FfnMemo = std::collections::HashMap<(u64, u64, u64, u64, u64), f64>;

/// Attention-side times by (dense layer, sequences, their context shape).
type AttentionMemo = std::collections::HashMap<(bool, u64, ContextShape), f64>;

/// The routing of one micro-batch of one layer.
struct MicroBatchRoute {
    /// Copies each attention GPU sends each FFN GPU.
    copies: Vec<Vec<u64>>,
    /// Token-expert pairs per slot.
    slot_pairs: Vec<u64>,
    /// Tokens whose shared expert each FFN GPU runs (`shared_expert_side = "ffn"`; else 0).
    shared: Vec<u64>,
}

impl Deployment {
    /// Tokens of micro-batch `mb` on one attention GPU (the batch split as evenly as it goes).
    pub fn tokens_in(&self, shape: &StepShape, mb: u32) -> u64 {
        let (b, m) = (
            shape.batch_per_attention_gpu as u64,
            self.micro_batches as u64,
        );
        b / m + u64::from((mb as u64) < b % m)
    }

    /// The sequences of micro-batch `mb` on one attention GPU: the micro-batches take the
    /// GPU's sequences in order.
    fn sequences_in(&self, shape: &StepShape, mb: u32) -> std::ops::Range<usize> {
        let start: u64 = (0..mb).map(|i| self.tokens_in(shape, i)).sum();
        start as usize..(start + self.tokens_in(shape, mb)) as usize
    }

    /// The attention side of `layer` for decode sequences with the given contexts, which
    /// differ. The tables take one context per query, so (docs/afd.md, "Context-length
    /// distributions"): the side at the mean *attended* context, min(ctx, cap) per sequence
    /// (cap: DSA's top-k or a sliding window), exact for the memory-bound core attention,
    /// whose time is linear in the KV read; for DSA plus the indexer of the sequences whose
    /// context exceeds the top-k at their mean context, which is the side of those sequences
    /// at that context minus their side at the top-k (the same ops but the indexer).
    fn spread_attention_us(
        &self,
        layer: u64,
        contexts: &[u64],
        memo: &mut AttentionMemo,
    ) -> Result<f64, QueryError> {
        let model = &self.model;
        let topk = match &model.attention {
            Attention::Mla(Mla {
                sparse: Some(s), ..
            }) => Some(s.topk),
            _ => None,
        };
        let shape = ContextShape::of(contexts, |c| model.attended_ctx(layer, c), topk);
        let key = (!model.is_moe(layer), contexts.len() as u64, shape);
        if let Some(&t) = memo.get(&key) {
            return Ok(t);
        }
        let (table, kernel) = (&self.attention_table, self.kernel);
        let side = |n: u64, c: u64| -> Result<f64, QueryError> {
            Ok(model
                .attention_side_at(table, layer, n, c, kernel)?
                .total_us())
        };
        let mut t = side(contexts.len() as u64, shape.attended)?;
        if let (Some(k), true) = (topk, shape.long > 0) {
            t += side(shape.long, shape.long_ctx)? - side(shape.long, k)?;
        }
        memo.insert(key, t);
        Ok(t)
    }

    /// Attention GPUs with tokens: the first `active_attention_gpus`.
    fn active(&self, shape: &StepShape) -> usize {
        (shape.active_attention_gpus as usize).min(self.attention_gpus.len())
    }

    /// Prompt tokens of micro-batch `mb` on one attention GPU, and the prefix before them.
    pub fn prefill_in(&self, shape: &StepShape, mb: u32) -> (u64, u64) {
        let (c, m) = (shape.prefill_tokens as u64, self.micro_batches as u64);
        let piece = |i: u64| c / m + u64::from(i < c % m);
        let before: u64 = (0..mb as u64).map(piece).sum();
        (piece(mb as u64), shape.prefill_prefix + before)
    }

    /// Routes `tokens` tokens on every attention GPU: experts from `router`, slots in turn
    /// among an expert's copies, copies counted per `dedup`.
    fn route(
        &self,
        na: usize,
        tokens: u64,
        router: &mut Router,
        rng: &mut SimRng,
    ) -> MicroBatchRoute {
        let nf = self.ffn_gpus.len();
        let map = &self.experts;
        let mut r = MicroBatchRoute {
            copies: vec![vec![0u64; nf]; na],
            slot_pairs: vec![0u64; map.slots()],
            shared: vec![0u64; nf],
        };
        let shared_on_ffn = self.shared_on_ffn();
        let mut turn = vec![0u32; map.replicas.len()];
        let mut hit = vec![false; nf];
        let mut picked = Vec::with_capacity(self.model.top_k as usize);
        for (a, row) in r.copies.iter_mut().enumerate() {
            // Shared experts this attention GPU has placed on each FFN GPU so far.
            let mut placed = vec![0u64; nf];
            for _ in 0..tokens {
                router.draw(rng, &mut picked);
                hit.iter_mut().for_each(|h| *h = false);
                for &e in &picked {
                    let slots = &map.replicas[e as usize];
                    let slot = slots[(turn[e as usize] as usize) % slots.len()] as usize;
                    turn[e as usize] += 1;
                    r.slot_pairs[slot] += 1;
                    let f = map.slot_gpu[slot] as usize;
                    hit[f] = true;
                    if self.dedup == Dedup::Expert {
                        row[f] += 1;
                    }
                }
                if self.dedup == Dedup::Gpu {
                    for (f, &h) in hit.iter().enumerate() {
                        row[f] += u64::from(h);
                    }
                }
                if shared_on_ffn {
                    let f = shared_gpu(&hit, &placed, a);
                    placed[f] += 1;
                    r.shared[f] += 1;
                }
            }
        }
        r
    }

    /// Whether the shared expert(s) run on the FFN GPUs.
    fn shared_on_ffn(&self) -> bool {
        self.model.shared_expert_side == Side::Ffn && self.model.shared_experts > 0
    }

    /// The table's skew factor of a grouped GEMM with `m_max` tokens at the busiest of
    /// `groups` experts and `m` on average: skewed / balanced, both in BF16 (the dtype of the
    /// measured skew rows).
    fn skew_factor(
        &self,
        groups: u64,
        m: u64,
        m_max: u64,
        n: u64,
        k: u64,
    ) -> Result<f64, QueryError> {
        let skewed = self
            .ffn_table
            .predict(&OpQuery::grouped_gemm_skew(groups, m, m_max, n, k))?;
        let flat = self
            .ffn_table
            .predict(&OpQuery::grouped_gemm(Dtype::Bf16, groups, m, n, k))?;
        Ok(skewed.time_us / flat.time_us)
    }

    /// Kernel time of FFN GPU `f` for the token-expert pairs per slot of a micro-batch: the
    /// balanced time at the mean per slot (rounded up), each grouped GEMM timed on the real
    /// per-slot loads (see the module doc).
    fn ffn_us(&self, f: usize, slot_pairs: &[u64], memo: &mut FfnMemo) -> Result<f64, QueryError> {
        let counts = self.experts.gpu_slots[f]
            .iter()
            .map(|&s| slot_pairs[s as usize]);
        let groups = self.experts.slots_on[f];
        let total = counts.clone().sum::<u64>();
        let m = total.div_ceil(groups);
        let m_max = counts.clone().max().unwrap_or(0);
        // What the tile rules see of the loads: their rows padded to 128 and to 256.
        let pads = counts.clone().fold((0, 0), |(a, b), c| {
            (a + c.div_ceil(128), b + c.div_ceil(256))
        });
        let key = (groups, total, m_max, pads.0, pads.1);
        if let Some(&t) = memo.get(&key) {
            return Ok(t);
        }
        let side = self.model.ffn_side(&self.ffn_table, groups, m)?;
        let mut t = side.total_us();
        // The grouped kernel picks its configuration by the whole-token mean (PyTorch divides
        // the rows by the groups), so under tile rules it is timed there.
        let loads: Vec<u64> = counts.collect();
        let m_kernel = (total / groups).max(1);
        let table = &self.ffn_table;
        for op in &side.ops {
            if let Work::Table(q) = op.work
                && q.op == Op::GroupedGemm
            {
                t += match table.tile_work_ratio(q.dtype, q.n, q.k, m_kernel, &loads) {
                    Some(r) => {
                        let at_mean = OpQuery { m: m_kernel, ..q };
                        table.predict(&at_mean)?.time_us * r - op.time_us
                    }
                    None if m_max > m => {
                        op.time_us * (self.skew_factor(groups, m, m_max, q.n, q.k)? - 1.0)
                    }
                    None => 0.0,
                };
            }
        }
        memo.insert(key, t);
        Ok(t)
    }

    /// Builds one step of `shape`; routing draws come from `rng`.
    pub fn decode_step(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        shape: &StepShape,
        rng: &mut SimRng,
    ) -> Result<DecodeStep, QueryError> {
        let model = &self.model;
        let (na, nf) = (self.active(shape), self.ffn_gpus.len());
        let dispatch_bytes = model.dispatch_bytes_per_token(model.dispatch_dtype);
        let combine_bytes = model.combine_bytes_per_token(model.combine_dtype);
        let mut step = DecodeStep {
            workload: Workload::default(),
            compute_stage: Vec::new(),
            compute_layer: Vec::new(),
            message_kind: Vec::new(),
            ffn_pairs: vec![0; nf],
            token_copies: 0,
            ffn_shared: vec![0; nf],
            tokens: na as u64 * shape.batch_per_attention_gpu as u64,
        };
        let w = &mut step.workload;
        // What the next layer's attention of each (micro-batch, attention GPU) waits for.
        let mut waits: Vec<Vec<Vec<TaskRef>>> =
            vec![vec![Vec::new(); na]; self.micro_batches as usize];
        let mut router = Router::new(&self.routing, model.routed_experts, model.top_k);
        // Each GPU's part of the previous dispatch and of the previous combine call: a GPU
        // runs its parts of one kind in call order, one at a time.
        let mut last_dispatch: std::collections::BTreeMap<NodeId, Vec<TaskRef>> =
            Default::default();
        let mut last_combine = last_dispatch.clone();
        let mut memo = FfnMemo::new();
        let mut att_memo = AttentionMemo::new();
        let mut shared_memo = std::collections::HashMap::<u64, f64>::new();
        let b = shape.batch_per_attention_gpu as usize;
        if !shape.contexts.is_empty()
            && (shape.contexts.len() < na || shape.contexts.iter().any(|c| c.len() != b))
        {
            return Err(QueryError::Invalid(format!(
                "per-sequence contexts for {} GPUs do not match {na} GPUs x {b} sequences",
                shape.contexts.len()
            )));
        }
        for layer in 0..shape.layers {
            let moe_index = model.moe_index(layer);
            let dense = moe_index.is_none();
            if let Some(moe_index) = moe_index {
                router.start_layer(
                    moe_index as usize,
                    step.tokens + na as u64 * shape.prefill_tokens as u64,
                    rng,
                );
            }
            for mb in 0..self.micro_batches {
                let decode = self.tokens_in(shape, mb);
                let (chunk, prefix) = self.prefill_in(shape, mb);
                let tokens = decode + chunk;
                if tokens == 0 {
                    continue;
                }
                let table = &self.attention_table;
                let t_att: Vec<f64> = if chunk == 0 && !shape.contexts.is_empty() {
                    let seqs = self.sequences_in(shape, mb);
                    (0..na)
                        .map(|a| {
                            let c = &shape.contexts[a][seqs.clone()];
                            self.spread_attention_us(layer, c, &mut att_memo)
                        })
                        .collect::<Result<_, _>>()?
                } else if chunk == 0 {
                    let side = model.attention_side_at(
                        table,
                        layer,
                        decode,
                        shape.context,
                        self.kernel,
                    )?;
                    vec![side.total_us(); na]
                } else {
                    let side = model.attention_side_mixed(
                        table,
                        layer,
                        decode,
                        shape.context,
                        chunk,
                        prefix,
                        self.kernel,
                    )?;
                    vec![side.total_us(); na]
                };
                let atts: Vec<TaskRef> = (0..na)
                    .map(|a| {
                        let t =
                            w.compute(self.attention_gpus[a], us(t_att[a]), &waits[mb as usize][a]);
                        step.compute_stage.push(Stage::Attention);
                        step.compute_layer.push(layer as u32);
                        t
                    })
                    .collect();
                if dense {
                    for (a, &t) in atts.iter().enumerate() {
                        waits[mb as usize][a] = vec![t];
                    }
                    continue;
                }
                let route = self.route(na, tokens, &mut router, rng);
                let tok = &route.copies;
                let ideal = self.comm.is_ideal();
                // The dispatch: with `ideal` one message per (attention, FFN) GPU pair after
                // that attention kernel; else one kernel call of the library over them all.
                let mut into_ffn: Vec<Vec<TaskRef>> = vec![Vec::new(); nf];
                let mut dispatched = Launched::default();
                if ideal {
                    for (a, row) in tok.iter().enumerate() {
                        for (f, &n) in row.iter().enumerate() {
                            if n > 0 && self.attention_gpus[a] == self.ffn_gpus[f] {
                                // Colocated: this GPU's own tokens need no transfer.
                                into_ffn[f].push(atts[a]);
                            } else if n > 0 {
                                step.token_copies += n;
                                let m = w.message(
                                    MessageSpec {
                                        src: self.attention_gpus[a],
                                        dst: self.ffn_gpus[f],
                                        bytes: n * dispatch_bytes,
                                        start: Time::ZERO,
                                    },
                                    &[atts[a]],
                                );
                                step.message_kind.push(Transfer::Dispatch);
                                into_ffn[f].push(m);
                            }
                        }
                    }
                } else {
                    let mut transfers = Vec::new();
                    for (a, row) in tok.iter().enumerate() {
                        for (f, &n) in row.iter().enumerate().filter(|(_, n)| **n > 0) {
                            let (src, dst) = (self.attention_gpus[a], self.ffn_gpus[f]);
                            if src != dst {
                                step.token_copies += n;
                            }
                            transfers.push(comm::Transfer {
                                src,
                                dst,
                                bytes: n * dispatch_bytes,
                            });
                        }
                    }
                    let attention_of =
                        |g: NodeId| self.attention_gpus[..na].iter().position(|&x| x == g);
                    let kernel = comm::Kernel {
                        library: &self.comm,
                        op: comm::Op::Dispatch,
                        transfers: &transfers,
                        start: Time::ZERO,
                        gpu_sms: self.gpu_sms,
                    };
                    // Each attention GPU's part starts after its attention kernel; an FFN
                    // GPU's receive as soon as its previous one is done (docs/comm.md).
                    dispatched = comm::launch(w, fabric, params, kernel, &mut |g| {
                        let mut after = last_dispatch.get(&g).cloned().unwrap_or_default();
                        after.extend(attention_of(g).map(|a| atts[a]));
                        after
                    });
                    last_dispatch.extend(dispatched.done.clone());
                    let labels = (&mut step.compute_stage, &mut step.compute_layer);
                    label(
                        labels,
                        &mut step.message_kind,
                        &dispatched,
                        Transfer::Dispatch,
                        layer,
                    );
                    for (f, into) in into_ffn.iter_mut().enumerate() {
                        *into = dispatched
                            .done
                            .get(&self.ffn_gpus[f])
                            .cloned()
                            .unwrap_or_default();
                    }
                }
                let mut pairs = vec![0u64; nf];
                for (s, &p) in route.slot_pairs.iter().enumerate() {
                    pairs[self.experts.slot_gpu[s] as usize] += p;
                }
                let mut next: Vec<Vec<TaskRef>> = vec![Vec::new(); na];
                let mut ffns: Vec<Option<TaskRef>> = vec![None; nf];
                for f in 0..nf {
                    if pairs[f] == 0 {
                        continue;
                    }
                    step.ffn_pairs[f] += pairs[f];
                    let mut t_ffn = self.ffn_us(f, &route.slot_pairs, &mut memo)?;
                    let shared = route.shared[f];
                    if shared > 0 {
                        t_ffn += match shared_memo.get(&shared) {
                            Some(&t) => t,
                            None => {
                                let t = model
                                    .shared_expert_ffn_side(&self.ffn_table, shared)?
                                    .total_us();
                                *shared_memo.entry(shared).or_insert(t)
                            }
                        };
                        step.ffn_shared[f] += shared;
                    }
                    let ffn = w.compute(self.ffn_gpus[f], us(t_ffn), &into_ffn[f]);
                    step.compute_stage.push(Stage::Ffn);
                    step.compute_layer.push(layer as u32);
                    ffns[f] = Some(ffn);
                    if !ideal {
                        continue;
                    }
                    for (a, row) in tok.iter().enumerate() {
                        if row[f] > 0 && self.attention_gpus[a] == self.ffn_gpus[f] {
                            next[a].push(ffn);
                        } else if row[f] > 0 {
                            let c = w.message(
                                MessageSpec {
                                    src: self.ffn_gpus[f],
                                    dst: self.attention_gpus[a],
                                    bytes: row[f] * combine_bytes,
                                    start: Time::ZERO,
                                },
                                &[ffn],
                            );
                            step.message_kind.push(Transfer::Combine);
                            next[a].push(c);
                        }
                    }
                }
                if !ideal {
                    // The combine: one kernel call, each FFN GPU's part after its expert
                    // kernel, each attention GPU's after its part of the dispatch.
                    let mut transfers = Vec::new();
                    for (f, _) in ffns.iter().enumerate().filter(|(_, t)| t.is_some()) {
                        for (a, row) in tok.iter().enumerate().filter(|(_, row)| row[f] > 0) {
                            transfers.push(comm::Transfer {
                                src: self.ffn_gpus[f],
                                dst: self.attention_gpus[a],
                                bytes: row[f] * combine_bytes,
                            });
                        }
                    }
                    let kernel = comm::Kernel {
                        library: &self.comm,
                        op: comm::Op::Combine,
                        transfers: &transfers,
                        start: Time::ZERO,
                        gpu_sms: self.gpu_sms,
                    };
                    let combined = comm::launch(w, fabric, params, kernel, &mut |g| {
                        let mut after = dispatched.done.get(&g).cloned().unwrap_or_default();
                        after.extend(last_combine.get(&g).into_iter().flatten().copied());
                        let f = self.ffn_gpus.iter().position(|&x| x == g);
                        after.extend(f.and_then(|f| ffns[f]));
                        after
                    });
                    last_combine.extend(combined.done.clone());
                    let labels = (&mut step.compute_stage, &mut step.compute_layer);
                    label(
                        labels,
                        &mut step.message_kind,
                        &combined,
                        Transfer::Combine,
                        layer,
                    );
                    for (a, n) in next.iter_mut().enumerate() {
                        *n = combined
                            .done
                            .get(&self.attention_gpus[a])
                            .cloned()
                            .unwrap_or_default();
                    }
                }
                waits[mb as usize] = next;
            }
        }
        Ok(step)
    }
}

/// Labels what a kernel call added to a step: its fixed-cost delays (the compute tasks past
/// those labelled so far) with their stage and layer, its messages with their kind.
fn label(
    (stage, layer_of): (&mut Vec<Stage>, &mut Vec<u32>),
    kinds: &mut Vec<Transfer>,
    l: &Launched,
    kind: Transfer,
    layer: u64,
) {
    kinds.extend(l.messages.iter().map(|_| kind));
    let layer = layer as u32;
    let parts = [
        (&l.start_delays, KernelPart::Start),
        (&l.local_copies, KernelPart::Copy),
        (&l.end_delays, KernelPart::End),
        (&l.reductions, KernelPart::Reduce),
    ];
    let added = parts.iter().map(|(v, _)| v.len()).sum::<usize>();
    let first = stage.len();
    stage.resize(first + added, Stage::Kernel(kind, KernelPart::Start));
    layer_of.resize(first + added, layer);
    for (tasks, part) in parts {
        for &i in tasks {
            stage[i as usize] = Stage::Kernel(kind, part);
        }
    }
}

/// The FFN GPU that runs a token's shared expert (`shared_expert_side = "ffn"`): among the
/// GPUs the token is dispatched to (`hit`), the one to which its attention GPU `a` has given
/// the fewest shared experts so far in this micro-batch (`placed`), ties to the first after
/// GPU a mod F in turn. Local to each attention GPU (it knows only its own tokens), adds no
/// copy, and spreads the shared work whatever order the router lists a token's experts in.
fn shared_gpu(hit: &[bool], placed: &[u64], a: usize) -> usize {
    let nf = hit.len();
    (0..nf)
        .filter(|&f| hit[f])
        .min_by_key(|&f| (placed[f], (f + nf - a % nf) % nf))
        .expect("a token has top_k >= 1 experts")
}

/// What one decode step measured (the `metrics` of an AFD run).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AfdMetrics {
    /// From the first kernel to the last combine: the time per output token (the mean over
    /// the steps simulated).
    pub tpot_ms: f64,
    /// The 99th percentile (nearest rank) of the steps' times; equals `tpot_ms` for one step.
    pub tpot_p99_ms: f64,
    pub steps: u64,
    pub tokens_per_s: f64,
    /// Over every GPU of the deployment, attention and FFN.
    pub tokens_per_s_per_gpu: f64,
    pub attention_gpus: u64,
    pub ffn_gpus: u64,
    pub micro_batches: u64,
    /// Kernel time / (GPUs x step time), per side.
    pub attention_busy_fraction: f64,
    pub ffn_busy_fraction: f64,
    /// Most token-expert pairs on one FFN GPU over the mean.
    pub ffn_load_imbalance: f64,
    /// Mean kernel time per (layer, micro-batch) on each side, and mean transfer time.
    pub attention_us: f64,
    pub ffn_us: f64,
    pub dispatch_us: f64,
    pub combine_us: f64,
    /// The communication library (`[afd] comm`).
    pub comm: String,
    /// Communication time split three ways. Fixed: a kernel call's costs on one GPU
    /// (launch, barrier, flag, polling and a combine's reduction), the mean per call and
    /// GPU; 0 with `ideal`. Wire: the mean transfer's time alone on the fabric (its bytes at
    /// its route's bottleneck or its rate limiter, plus latency: `levels::alone_times`).
    /// Queueing: the mean transfer time beyond that (links, NICs and limiters shared with
    /// other transfers), at least 0.
    pub dispatch_fixed_us: f64,
    pub dispatch_wire_us: f64,
    pub dispatch_queue_us: f64,
    pub combine_fixed_us: f64,
    pub combine_wire_us: f64,
    pub combine_queue_us: f64,
    /// Compute time lost to the SMs communication kernels held beside it: the kernels'
    /// time beyond their duration at full speed, over (GPUs x step time). 0 with `ideal`.
    pub sm_contention_fraction: f64,
    pub dispatch_bytes: u64,
    pub combine_bytes: u64,
    /// Share of the step on its critical path spent in transfers: communication that no
    /// kernel hid (see [`critical_path`]).
    pub comm_time_fraction_exposed: f64,
    /// 1 - (transfer time on the critical path) / (the transfer time a step without any
    /// overlap would spend: M x (mean dispatch + mean combine) per MoE layer), clamped to
    /// [0, 1]: how much of the communication the micro-batch pipeline hid.
    pub comm_hidden_fraction: f64,
}

impl AfdMetrics {
    /// The metrics of `step` executed as `run`; `alone`: each message's time alone on the
    /// fabric (`levels::alone_times`).
    pub fn of(
        spec: &AfdSpec,
        step: &DecodeStep,
        run: &crate::net::NetRun,
        alone: &[Dur],
    ) -> AfdMetrics {
        let (d, shape) = (&spec.deployment, &spec.shape);
        use crate::engine::Time;
        let first = run
            .computes
            .iter()
            .filter_map(|c| c.start)
            .min()
            .unwrap_or(Time::ZERO);
        let last = run
            .computes
            .iter()
            .filter_map(|c| c.finish)
            .chain(run.messages.iter().filter_map(|m| m.finish))
            .max()
            .unwrap_or(first);
        let step_s = last.since(first).as_secs_f64();
        let (na, nf) = (d.attention_gpus.len() as f64, d.ffn_gpus.len() as f64);
        // GPUs of the deployment, each counted once (the colocated baseline shares them).
        let mut all: Vec<u32> = d
            .attention_gpus
            .iter()
            .chain(&d.ffn_gpus)
            .map(|g| g.0)
            .collect();
        all.sort_unstable();
        all.dedup();
        let gpus = all.len() as f64;
        let mean_busy = |stage: Stage| {
            let times: Vec<f64> = run
                .computes
                .iter()
                .zip(&step.compute_stage)
                .filter(|(_, s)| **s == stage)
                .filter_map(|(c, _)| Some(c.finish?.since(c.start?).as_secs_f64()))
                .collect();
            let n = times.len().max(1) as f64;
            (times.iter().sum::<f64>(), times.iter().sum::<f64>() / n)
        };
        let mean_transfer = |kind: Transfer| {
            let times: Vec<(f64, u64)> = run
                .messages
                .iter()
                .zip(&step.message_kind)
                .filter(|(_, k)| **k == kind)
                .filter_map(|(m, _)| Some((m.finish?.since(m.start).as_secs_f64(), m.bytes)))
                .collect();
            let n = times.len().max(1) as f64;
            (
                times.iter().map(|t| t.0).sum::<f64>() / n,
                times.iter().map(|t| t.1).sum::<u64>(),
            )
        };
        // Mean over the messages of `kind` of their time alone.
        let mean_alone = |kind: Transfer| {
            let times: Vec<f64> = alone
                .iter()
                .zip(&step.message_kind)
                .filter(|(_, k)| **k == kind)
                .map(|(d, _)| d.as_secs_f64())
                .collect();
            times.iter().sum::<f64>() / times.len().max(1) as f64
        };
        // Fixed costs per (call, GPU): every start and end delay of `kind`, over the calls'
        // GPUs (one start delay each).
        let mean_fixed = |kind: Transfer| {
            let (mut total, mut calls) = (0.0, 0u64);
            for (c, s) in run.computes.iter().zip(&step.compute_stage) {
                let Stage::Kernel(k, part) = *s else { continue };
                if k != kind || part == KernelPart::Copy {
                    continue;
                }
                calls += u64::from(part == KernelPart::Start);
                if let (Some(a), Some(b)) = (c.start, c.finish) {
                    total += b.since(a).as_secs_f64();
                }
            }
            total / calls.max(1) as f64
        };
        let (dispatch_fixed, combine_fixed) = (
            mean_fixed(Transfer::Dispatch),
            mean_fixed(Transfer::Combine),
        );
        let (att_total, att_mean) = mean_busy(Stage::Attention);
        let (ffn_total, ffn_mean) = mean_busy(Stage::Ffn);
        let (dispatch_mean, dispatch_bytes) = mean_transfer(Transfer::Dispatch);
        let (combine_mean, combine_bytes) = mean_transfer(Transfer::Combine);
        let pairs_max = step.ffn_pairs.iter().copied().max().unwrap_or(0) as f64;
        let pairs_mean = step.ffn_pairs.iter().sum::<u64>() as f64 / nf;
        let per_s = |x: f64| if step_s > 0.0 { x / step_s } else { 0.0 };
        let (path_comm_s, _path_compute_s) = critical_path(&step.workload, run);
        let moe_layers = d.model.moe_layers_in(shape.layers) as f64;
        AfdMetrics {
            tpot_ms: step_s * 1e3,
            tpot_p99_ms: step_s * 1e3,
            steps: 1,
            tokens_per_s: per_s(step.tokens as f64),
            tokens_per_s_per_gpu: per_s(step.tokens as f64) / gpus,
            attention_gpus: na as u64,
            ffn_gpus: nf as u64,
            micro_batches: d.micro_batches as u64,
            attention_busy_fraction: per_s(att_total) / na,
            ffn_busy_fraction: per_s(ffn_total) / nf,
            ffn_load_imbalance: if pairs_mean > 0.0 {
                pairs_max / pairs_mean
            } else {
                0.0
            },
            attention_us: att_mean * 1e6,
            ffn_us: ffn_mean * 1e6,
            dispatch_us: dispatch_mean * 1e6,
            combine_us: combine_mean * 1e6,
            comm: d.comm.name.clone(),
            dispatch_fixed_us: dispatch_fixed * 1e6,
            dispatch_wire_us: mean_alone(Transfer::Dispatch) * 1e6,
            dispatch_queue_us: (dispatch_mean - mean_alone(Transfer::Dispatch)).max(0.0) * 1e6,
            combine_fixed_us: combine_fixed * 1e6,
            combine_wire_us: mean_alone(Transfer::Combine) * 1e6,
            combine_queue_us: (combine_mean - mean_alone(Transfer::Combine)).max(0.0) * 1e6,
            sm_contention_fraction: per_s(
                run.computes
                    .iter()
                    .zip(&step.workload.computes)
                    .filter(|(_, spec)| spec.stream)
                    .filter_map(|(c, spec)| {
                        let took = c.finish?.since(c.start?);
                        Some(took.as_secs_f64() - spec.duration.as_secs_f64())
                    })
                    .sum::<f64>(),
            ) / gpus,
            dispatch_bytes,
            combine_bytes,
            comm_time_fraction_exposed: per_s(path_comm_s),
            comm_hidden_fraction: {
                let serial_s = moe_layers
                    * d.micro_batches as f64
                    * (dispatch_mean + combine_mean + dispatch_fixed + combine_fixed);
                if serial_s > 0.0 {
                    (1.0 - path_comm_s / serial_s).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            },
        }
    }
}

impl AfdMetrics {
    /// Metrics over several steps: the mean of every per-step figure, with `tpot_p99_ms` the
    /// nearest-rank 99th percentile of the step times.
    pub fn over_steps(per_step: &[AfdMetrics]) -> AfdMetrics {
        let n = per_step.len().max(1) as f64;
        let mean = |f: fn(&AfdMetrics) -> f64| per_step.iter().map(f).sum::<f64>() / n;
        let mut tpots: Vec<f64> = per_step.iter().map(|m| m.tpot_ms).collect();
        tpots.sort_by(f64::total_cmp);
        let rank = ((0.99 * tpots.len() as f64).ceil() as usize).clamp(1, tpots.len().max(1));
        let first = per_step.first().expect("at least one step");
        let tpot = mean(|m| m.tpot_ms);
        AfdMetrics {
            tpot_ms: tpot,
            tpot_p99_ms: tpots.get(rank - 1).copied().unwrap_or(0.0),
            steps: per_step.len() as u64,
            // Throughput from the mean step time: tokens per step / mean step time.
            tokens_per_s: mean(|m| m.tokens_per_s * m.tpot_ms) / tpot,
            tokens_per_s_per_gpu: mean(|m| m.tokens_per_s_per_gpu * m.tpot_ms) / tpot,
            attention_gpus: first.attention_gpus,
            ffn_gpus: first.ffn_gpus,
            micro_batches: first.micro_batches,
            attention_busy_fraction: mean(|m| m.attention_busy_fraction),
            ffn_busy_fraction: mean(|m| m.ffn_busy_fraction),
            ffn_load_imbalance: mean(|m| m.ffn_load_imbalance),
            attention_us: mean(|m| m.attention_us),
            ffn_us: mean(|m| m.ffn_us),
            dispatch_us: mean(|m| m.dispatch_us),
            combine_us: mean(|m| m.combine_us),
            comm: first.comm.clone(),
            dispatch_fixed_us: mean(|m| m.dispatch_fixed_us),
            dispatch_wire_us: mean(|m| m.dispatch_wire_us),
            dispatch_queue_us: mean(|m| m.dispatch_queue_us),
            combine_fixed_us: mean(|m| m.combine_fixed_us),
            combine_wire_us: mean(|m| m.combine_wire_us),
            combine_queue_us: mean(|m| m.combine_queue_us),
            sm_contention_fraction: mean(|m| m.sm_contention_fraction),
            dispatch_bytes: per_step.iter().map(|m| m.dispatch_bytes).sum::<u64>()
                / per_step.len().max(1) as u64,
            combine_bytes: per_step.iter().map(|m| m.combine_bytes).sum::<u64>()
                / per_step.len().max(1) as u64,
            comm_time_fraction_exposed: mean(|m| m.comm_time_fraction_exposed),
            comm_hidden_fraction: mean(|m| m.comm_hidden_fraction),
        }
    }
}

/// The critical path of an executed workload: from the task that finished last, step back
/// to what it waited for last: the prerequisite that finished last, or, for a kernel that
/// started after all its prerequisites (its GPU's stream was busy), the kernel before it on
/// that stream. Returns the time on the path spent in (communication, kernels), seconds:
/// transfers and the fixed costs of communication kernels (delays off the compute stream,
/// `comm::launch`) count as communication. The path is contiguous (each task starts when
/// its predecessor ends), so the two sum to the span from the path's first task to the end.
pub fn critical_path(w: &Workload, run: &crate::net::NetRun) -> (f64, f64) {
    use crate::engine::Time;
    let span = |t: TaskRef| -> Option<(Time, Time)> {
        match t {
            TaskRef::Message(i) => {
                let m = &run.messages[i as usize];
                Some((m.start, m.finish?))
            }
            TaskRef::Compute(i) => {
                let c = &run.computes[i as usize];
                Some((c.start?, c.finish?))
            }
        }
    };
    // The kernel that ended on each GPU stream at a given time (its stream predecessor).
    let mut ended: std::collections::HashMap<(u32, Time), u32> = std::collections::HashMap::new();
    let on_stream = |i: u32| w.computes[i as usize].stream;
    for (i, c) in run.computes.iter().enumerate() {
        if let Some(f) = c.finish.filter(|_| on_stream(i as u32)) {
            ended.insert((c.gpu.0, f), i as u32);
        }
    }
    let Some(mut at) = w
        .tasks()
        .filter_map(|t| Some((span(t)?.1, t)))
        .max_by_key(|&(f, t)| (f, std::cmp::Reverse(t)))
        .map(|(_, t)| t)
    else {
        return (0.0, 0.0);
    };
    let (mut comm, mut compute) = (0.0, 0.0);
    while let Some((start, finish)) = span(at) {
        let d = finish.since(start).as_secs_f64();
        match at {
            TaskRef::Message(_) => comm += d,
            TaskRef::Compute(i) if !on_stream(i) => comm += d,
            TaskRef::Compute(_) => compute += d,
        }
        let last_dep = w
            .after(at)
            .iter()
            .filter_map(|&p| Some((span(p)?.1, p)))
            .max_by_key(|&(f, p)| (f, std::cmp::Reverse(p)));
        at = match (at, last_dep) {
            (TaskRef::Compute(i), dep) if on_stream(i) && dep.is_none_or(|(f, _)| f < start) => {
                let gpu = run.computes[i as usize].gpu.0;
                match ended.get(&(gpu, start)) {
                    Some(&prev) => TaskRef::Compute(prev),
                    None => match dep {
                        Some((_, p)) => p,
                        None => break,
                    },
                }
            }
            (_, Some((_, p))) => p,
            (_, None) => break,
        };
    }
    (comm, compute)
}
