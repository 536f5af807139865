//! Batch runs: sweep files, parallel local runs, shards (Slurm job arrays), resume, merge.
//!
//! Invariant: a point's result row is a pure function of its resolved scenario (its id) and
//! the afdsim version; every finished row is one file written whole and renamed into place,
//! so a kill at any moment loses no finished row and leaves no partial one; merged output is
//! in sweep order, so equal inputs give byte-identical files whatever `--jobs` or sharding.
//! The module sits above `config` and the models and below the CLI (the binary's
//! `src/cli/sweep.rs` holds the command-line arguments and the progress display).

pub mod id;
pub mod keypath;
pub mod merge;
pub mod run;
pub mod shard;
pub mod spec;

pub use merge::{Merged, merge};
pub use run::{Batch, Manifest, Plan, PointRow, RunReport};
pub use shard::Shard;
pub use spec::{Axis, Column, Point, Sweep};
