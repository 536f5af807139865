//! GPUs, NICs, NVSwitch chips, switches and links, and the routes between GPUs. Shared by
//! every simulation level.
//!
//! Invariant: a [`Topology`] is valid once built (dense ids, GPUs first, every GPU reaches
//! every other, all equal-cost next hops known); builders report problems as
//! [`BuildError`]s naming the fabric key at fault.

mod build;
mod graph;

pub use build::{
    BuildError, Fabric, FabricSpec, GraphSize, NicSpec, NvlinkSpec, ScaleOutKind, ScaleOutSpec,
    Tier, build, size,
};
pub use graph::{Link, LinkClass, LinkId, NodeId, NodeKind, Topology, TopologyError};
