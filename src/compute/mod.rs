//! Measured compute-time tables: loading, interpolation, model layers -> time.

mod interp;
mod predict;
mod roofline;
mod table;

pub use interp::{Path, Scheme};
pub use predict::{
    ErrorSummary, LooPoint, Method, Prediction, QueryError, across_first, scheme_for,
};
pub use roofline::{Roofline, RooflineFit};
pub use table::{ComputeTable, Dtype, Field, Op, OpQuery, TableRow};
