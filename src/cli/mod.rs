//! The command line's modules: clap arguments, progress display and output formatting, one
//! module per command (or family). Only the binary (`main.rs`) declares them; what they
//! compute is the library's.

pub mod compute;
pub mod explore;
pub mod fabric;
pub mod run;
pub mod slo_search;
pub mod sweep;
pub mod validate;
