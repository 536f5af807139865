//! Measured compute-time tables: loading, interpolation, model layers -> time.
