//! Roofline fallback with efficiencies fitted from the table itself.
//!
//! For each (op, dtype) with rows, the model is
//! `time_us = floor_us + max(flops / flops_per_us, hbm_bytes / bytes_per_us)`, where the peak
//! rates start at the best rate any row of that kind achieved and are then scaled by the
//! efficiencies (and the floor by a factor) that minimise the mean |ln(predicted / measured)|
//! over those rows: a coarse grid search, deterministic and fast (< 1 ms per table in release).
//! Why not the datasheet peaks: a table measures one software stack on one GPU, and users carry
//! tables between GPUs; the table's own rates keep the fallback consistent with its rows.

use super::table::{Dtype, Op, OpQuery, TableRow};

/// Fitted rates of one operator kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RooflineFit {
    pub op: Op,
    pub dtype: Dtype,
    pub floor_us: f64,
    /// Effective compute rate, FLOP per microsecond.
    pub flops_per_us: f64,
    /// Effective memory rate, bytes per microsecond.
    pub bytes_per_us: f64,
    /// Mean |ln(pred/measured)| over the rows it was fitted on.
    pub fit_log_error: f64,
    pub rows: usize,
}

impl RooflineFit {
    pub fn time_us(&self, flops: f64, hbm_bytes: f64) -> f64 {
        self.floor_us + (flops / self.flops_per_us).max(hbm_bytes / self.bytes_per_us)
    }
}

/// All fits of a table, plus the table-wide HBM bandwidth and per-kernel launch floor that the
/// glue operators use.
#[derive(Clone, Debug)]
pub struct Roofline {
    pub fits: Vec<RooflineFit>,
    /// Sustained HBM bandwidth, bytes per microsecond (best large `hbm_copy`, read + write).
    pub hbm_bytes_per_us: f64,
    /// The time a tiny kernel costs beyond its memory traffic, microseconds.
    pub launch_floor_us: f64,
}

/// Copies at least this large do not fit the 50 MB L2 of an H100/H200 (source and destination):
/// the rule for a GPU whose L2 is not known.
const HBM_COPY_MIN_BYTES: u64 = 64 << 20;

impl Roofline {
    /// Fits a table's rows; `l2_bytes` is the GPU's L2 where known. Rows that an L2 of that
    /// size holds (`OpQuery::l2_resident`) set no bandwidth: they measure the cache.
    pub fn fit(rows: &[TableRow], l2_bytes: Option<f64>) -> Roofline {
        let mut fits = Vec::new();
        for op in Op::ALL {
            for dtype in Dtype::ALL {
                let pts: Vec<(f64, f64, f64, bool)> = rows
                    .iter()
                    .filter(|r| r.query.op == op && r.query.dtype == dtype)
                    .map(|r| {
                        let (f, b) = r.query.flops_and_bytes();
                        let cached = r.query.l2_resident(l2_bytes) == Some(true);
                        (f, b, r.time_us, cached)
                    })
                    .collect();
                if let Some(fit) = fit_one(op, dtype, &pts) {
                    fits.push(fit);
                }
            }
        }
        let beyond_l2 = |r: &&TableRow| match r.query.l2_resident(l2_bytes) {
            Some(cached) => !cached,
            None => r.query.k >= HBM_COPY_MIN_BYTES,
        };
        let copy_rate = rows
            .iter()
            .filter(|r| r.query.op == Op::HbmCopy)
            .filter(beyond_l2)
            .map(|r| r.query.flops_and_bytes().1 / r.time_us)
            .fold(0.0, f64::max);
        let hbm_bytes_per_us = if copy_rate > 0.0 {
            copy_rate
        } else {
            // No copy rows: the best memory rate any operator reached.
            fits.iter().map(|f| f.bytes_per_us).fold(1.0, f64::max)
        };
        // The smallest GEMM's time left over after its memory traffic: launch, prologue, tail.
        let launch_floor_us = rows
            .iter()
            .filter(|r| r.query.op == Op::Gemm)
            .map(|r| r.time_us - r.query.flops_and_bytes().1 / hbm_bytes_per_us)
            .fold(f64::INFINITY, f64::min);
        let launch_floor_us = if launch_floor_us.is_finite() {
            launch_floor_us.max(1.0)
        } else {
            2.0
        };
        Roofline {
            fits,
            hbm_bytes_per_us,
            launch_floor_us,
        }
    }

    pub fn get(&self, op: Op, dtype: Dtype) -> Option<&RooflineFit> {
        self.fits.iter().find(|f| f.op == op && f.dtype == dtype)
    }

    /// The roofline time of a query, if the table has rows of its kind.
    pub fn predict(&self, q: &OpQuery) -> Option<f64> {
        let fit = self.get(q.op, q.dtype)?;
        let (f, b) = q.flops_and_bytes();
        Some(fit.time_us(f, b))
    }
}

/// Fits one kind's points (flops, bytes, time, in the L2): the peak memory rate comes from
/// the points beyond the L2 where there are any.
fn fit_one(op: Op, dtype: Dtype, pts: &[(f64, f64, f64, bool)]) -> Option<RooflineFit> {
    if pts.is_empty() {
        return None;
    }
    let peak_f = pts.iter().map(|p| p.0 / p.2).fold(0.0, f64::max);
    // Points in the L2 are left out of the rates and the error (unless there is nothing
    // else); the launch floor still comes from the quickest point.
    let all_cached = pts.iter().all(|p| p.3);
    let fitted = || pts.iter().filter(move |p| all_cached || !p.3);
    let peak_b = fitted().map(|p| p.1 / p.2).fold(0.0, f64::max);
    let n_fitted = fitted().count();
    let t_min = pts.iter().map(|p| p.2).fold(f64::INFINITY, f64::min);
    // Ops without a FLOP count (reads, copies) get an unreachable compute rate.
    let peak_f = if peak_f > 0.0 { peak_f } else { f64::MAX };
    let peak_b = if peak_b > 0.0 { peak_b } else { f64::MAX };
    let mut best: Option<RooflineFit> = None;
    for fi in 0..=14 {
        let ef = 0.3 + 0.05 * fi as f64;
        for bi in 0..=14 {
            let eb = 0.3 + 0.05 * bi as f64;
            for floor_scale in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let fit = RooflineFit {
                    op,
                    dtype,
                    floor_us: t_min * floor_scale,
                    flops_per_us: peak_f * ef,
                    bytes_per_us: peak_b * eb,
                    fit_log_error: 0.0,
                    rows: n_fitted,
                };
                let err = fitted()
                    .map(|&(f, b, t, _)| (fit.time_us(f, b) / t).ln().abs())
                    .sum::<f64>()
                    / n_fitted as f64;
                if best.is_none_or(|b| err < b.fit_log_error) {
                    best = Some(RooflineFit {
                        fit_log_error: err,
                        ..fit
                    });
                }
            }
        }
    }
    best
}
