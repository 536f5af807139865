//! The scenario file as written: serde structs that mirror the TOML one to one.
//!
//! Nothing here is validated beyond types; `resolve` turns these into a [`super::Scenario`].
//! Units are part of every key name so a file reads unambiguously.

use super::fabric::FabricFile;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// A short name, echoed in every output.
    pub name: String,
    /// The run's seed when `--seed` is not given.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The simulation level: `packet` (the default), `flow` or `analytical`.
    #[serde(default)]
    pub level: Option<String>,
    /// The fabric: `file = NAME|PATH` and keys that override it, or a whole fabric inline.
    pub fabric: FabricFile,
    /// Traffic generators, combined.
    #[serde(default)]
    pub traffic: Vec<TrafficFile>,
    /// An AFD decode deployment on the fabric; with it, `traffic` is optional.
    #[serde(default)]
    pub afd: Option<super::afd::AfdFile>,
    /// A request stream served by a deployment on the fabric; with it, `traffic` is
    /// optional.
    #[serde(default)]
    pub serving: Option<super::serving::ServingFile>,
}

/// One traffic generator. Which keys apply depends on `pattern`; `resolve` rejects keys that
/// the pattern does not use rather than silently ignoring them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficFile {
    /// `message`, `all-to-all`, `incast`, `permutation` or `matrix`.
    pub pattern: String,
    /// Bytes of each message (per pair for all-to-all); not used by `matrix`.
    #[serde(default)]
    pub bytes: Option<i64>,
    /// `matrix`: bytes from GPU row to GPU column, N x N; zero entries send nothing.
    #[serde(default)]
    pub matrix_bytes: Option<Vec<Vec<i64>>>,
    #[serde(default)]
    pub start_ns: Option<f64>,
    /// Each message starts at `start_ns` plus a uniform draw in [0, start_jitter_ns].
    #[serde(default)]
    pub start_jitter_ns: Option<f64>,
    /// `message`: source and destination GPU.
    #[serde(default)]
    pub src: Option<i64>,
    #[serde(default)]
    pub dst: Option<i64>,
    /// `incast`: the GPUs that send and the one that receives.
    #[serde(default)]
    pub senders: Option<Vec<i64>>,
    #[serde(default)]
    pub receiver: Option<i64>,
    /// `permutation`: GPU i sends to GPU (i + shift) mod N; a random derangement when absent.
    #[serde(default)]
    pub shift: Option<i64>,
    /// `moe-dispatch` (see `config/moe.rs`): tokens per GPU, experts, top-k, hidden size,
    /// `dtype` (fp8 | bf16), `dedup` (expert | gpu | node), routing limited to
    /// `node_groups` nodes, and metadata bytes per token.
    #[serde(default)]
    pub tokens_per_gpu: Option<i64>,
    #[serde(default)]
    pub experts: Option<i64>,
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub hidden: Option<i64>,
    #[serde(default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub dedup: Option<String>,
    #[serde(default)]
    pub node_groups: Option<i64>,
    #[serde(default)]
    pub metadata_bytes: Option<i64>,
    /// `moe-dispatch`: `dispatch` (default) or `combine` (the reverse matrix, in the
    /// combine dtype), and the `router`: `random` (default, seeded) or `balanced`.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub router: Option<String>,
    /// Any pattern: run the entry's messages as one kernel call of this communication
    /// library (a preset name or a library file; see `src/comm/`).
    #[serde(default)]
    pub kernel: Option<String>,
    /// SMs the kernel is given (a deployment choice; the library's `sms` by default).
    #[serde(default)]
    pub kernel_sms: Option<i64>,
}
