//! afdsim: a network-fabric simulator for Attention-FFN-disaggregated MoE serving.
//!
//! See ARCHITECTURE.md for the code map and each module's invariant.

pub mod compute;
pub mod engine;
pub mod error;
pub mod validation;
