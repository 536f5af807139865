//! Measured compute-time tables: loading, interpolation, model layers -> time.
//!
//! Invariant: every time this module returns is finite and > 0, or an error that says why;
//! input problems never panic. Prediction does no I/O and no allocation per query (indices are
//! built when a table loads); files are read only by the `load`/`embedded` constructors and
//! the reports of `afdsim compute` in [`command`].
//!
//! API boundary: [`ComputeTable`] (`load`, `embedded`, `predict`, `read_floor`,
//! `leave_one_out`), [`Model`] (`embedded`, `load`, byte and FLOP accounting, the weights a GPU
//! holds for a [`WeightPlacement`], KV bytes per token) and the layer assembly
//! [`Model::attention_side`] / [`Model::attention_side_mixed`] (decode tokens plus a prefill
//! chunk) / [`Model::ffn_side`] returning a [`LayerBreakdown`]; [`layer_check`] compares such
//! assembled layers with whole layers timed by the profiler (`layers.csv`, read by its
//! `load_measurements` constructor).
//! Method and figures: docs/compute.md.

pub mod command;
mod glue;
pub mod holdout;
mod interp;
mod layer;
pub mod layer_check;
mod model;
mod predict;
mod prefill;
mod roofline;
mod table;
mod weights;

pub use glue::Glue;
pub use interp::{Path, Scheme};
pub use layer::{AttentionKernel, LayerBreakdown, OpTime, Source, Work};
pub use model::{Attention, DecodeFlops, Gqa, Mla, Model, Side, Sparse};
pub use predict::{
    ErrorSummary, LooPoint, Method, Prediction, QueryError, RANGE_FACTOR, across_first, scheme_for,
};
pub use prefill::CausalPrefill;
pub use roofline::{Roofline, RooflineFit};
pub use table::{ComputeTable, Dtype, Field, Op, OpQuery, Stack, TableRow};
pub use weights::WeightPlacement;
