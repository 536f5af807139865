//! afdsim: a network-fabric simulator for Attention-FFN-disaggregated MoE serving.
//!
//! See ARCHITECTURE.md for the code map and each module's invariant. The dependency order
//! (arrows point down, never up): config -> topology, packet -> engine; validation and
//! report sit above the models; the CLI (`main.rs`) above everything.

pub mod compute;
pub mod config;
pub mod engine;
pub mod error;
pub mod packet;
pub mod report;
pub mod topology;
pub mod validation;
