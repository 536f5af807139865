//! In-between sizes held out: the accuracy a query between two grid points actually sees.
//!
//! Leave-one-out on a powers-of-two grid removes a point and leaves a 4x gap, twice the gap a
//! real in-between query faces. A table measured with the profiler's dense grid (3·2^i sizes
//! between the powers of two) allows the direct test: build the table from its powers-of-two
//! points only and predict each in-between point from them, a 2x gap as in use.

use super::predict::{LooPoint, Method};
use super::table::{ComputeTable, FamilyKey, Op, OpQuery, TableRow};

/// Whether a grid position is a power of two (the main grid's sizes).
fn on_main_grid(x: f64) -> bool {
    x >= 1.0 && x.fract() == 0.0 && (x as u64).is_power_of_two()
}

/// Every row whose size along its grid axis (tokens, context, prompt length, bytes) is not a
/// power of two, predicted by the table of the other rows. Empty when the table has no such
/// rows (the shipped tables) or no powers-of-two rows to predict from. Skewed grouped GEMMs
/// are scattered points, not a grid, and are left out.
pub fn in_between_holdout(table: &ComputeTable) -> Vec<LooPoint> {
    let (kept, held): (Vec<TableRow>, Vec<TableRow>) = table
        .rows()
        .iter()
        .filter(|r| r.query.op != Op::GroupedGemmSkew)
        .cloned()
        .partition(|r| on_main_grid(FamilyKey::of(&r.query).1));
    if held.is_empty() || kept.is_empty() {
        return Vec::new();
    }
    let main = ComputeTable::from_rows(table.name(), table.device(), kept);
    held.iter()
        .filter_map(|r| {
            let p = main.predict(&r.query).ok()?;
            Some(LooPoint {
                query: r.query,
                measured_us: r.time_us,
                predicted_us: p.time_us,
                method: p.method,
            })
        })
        .filter(|p| p.method != Method::Exact)
        .collect()
}

/// Every `grouped_gemm_skew` row with its `loads`, predicted by the grouped kernel's tile
/// model from the balanced kernel at the row's mean (`ComputeTable::tile_work_ratio`), the
/// skew rows themselves unused: out of sample. Rows whose shape has no tile rules, or whose
/// balanced kernel the table cannot answer, are left out.
pub fn uneven_loads_holdout(table: &ComputeTable) -> Vec<LooPoint> {
    table
        .rows()
        .iter()
        .filter(|r| r.query.op == Op::GroupedGemmSkew && !r.loads.is_empty())
        .filter_map(|r| {
            let q = r.query;
            let balanced = OpQuery::grouped_gemm(q.dtype, q.groups, q.m, q.n, q.k);
            let p = table.predict(&balanced).ok()?;
            let ratio = table.tile_work_ratio(q.dtype, q.n, q.k, q.m, &r.loads)?;
            Some(LooPoint {
                query: q,
                measured_us: r.time_us,
                predicted_us: p.time_us * ratio,
                method: p.method.max(Method::Interpolated),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Dtype, OpQuery};

    fn row(m: u64, t: f64) -> TableRow {
        TableRow {
            line: 0,
            query: OpQuery::gemm(Dtype::Bf16, m, 64, 64),
            time_us: t,
            stack: Default::default(),
            loads: Vec::new(),
        }
    }

    #[test]
    fn powers_of_two_predict_the_points_between_them() {
        // Affine in m: the 3·2^i points are predicted exactly from the powers of two.
        let rows: Vec<TableRow> = [1, 2, 3, 4, 6, 8, 12, 16]
            .into_iter()
            .map(|m| row(m, 5.0 + 0.5 * m as f64))
            .collect();
        let t = ComputeTable::from_rows("t", "d", rows);
        let h = in_between_holdout(&t);
        let ms: Vec<u64> = h.iter().map(|p| p.query.m).collect();
        assert_eq!(ms, vec![3, 6, 12]);
        for p in &h {
            assert_eq!(p.method, Method::Interpolated);
            assert!(p.abs_err_pct() < 1e-9, "{p:?}");
        }
    }

    #[test]
    fn a_knee_between_grid_points_shows_as_error() {
        // Flat to m = 4, then steep: the point at 6 is over-predicted by the chord's midpoint
        // bracket, and the holdout reports it.
        let rows = vec![
            row(1, 10.0),
            row(2, 10.0),
            row(4, 10.0),
            row(6, 10.0),
            row(8, 40.0),
            row(16, 80.0),
        ];
        let t = ComputeTable::from_rows("t", "d", rows);
        let h = in_between_holdout(&t);
        assert_eq!(h.len(), 1);
        assert!(h[0].abs_err_pct() > 10.0, "{:?}", h[0]);
    }

    #[test]
    fn shipped_tables_have_no_in_between_sizes() {
        for name in ComputeTable::embedded_names() {
            let t = ComputeTable::embedded(name).unwrap();
            assert!(in_between_holdout(&t).is_empty(), "{name}");
        }
    }
}
