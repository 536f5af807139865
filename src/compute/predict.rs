//! Prediction: a query -> a time and the path that answered it; leave-one-out accuracy.
//!
//! Order of paths: an exact grid point; interpolation within the query's family (same op,
//! dtype and fixed shape) along its grid axes; extrapolation beyond the family's grid; the
//! roofline fitted on the table's rows of the same op and dtype. Every answer is finite and
//! > 0 or an error that says why.

use super::interp::{GroupedTiles, Path, Scheme, interp_tiles, interp1};
use super::table::{ComputeTable, Dtype, Family, FamilyKey, Field, GridRow, Op, OpQuery};

/// Which path produced a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// The query is a grid point of the table.
    Exact,
    /// Between grid points of the query's own shape.
    Interpolated,
    /// Beyond the grid of the query's own shape.
    Extrapolated,
    /// The table lacks the shape: fitted roofline of the same operator kind.
    Roofline,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Interpolated => "interpolated",
            Method::Extrapolated => "extrapolated",
            Method::Roofline => "roofline",
        }
    }

    fn from_path(p: Path) -> Method {
        match p {
            Path::Exact => Method::Exact,
            Path::Interpolated => Method::Interpolated,
            Path::Extrapolated => Method::Extrapolated,
        }
    }
}

/// A predicted time: finite, > 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub time_us: f64,
    pub method: Method,
}

/// Why a query has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("op `{op}` needs `{field}` ≥ 1")]
    MissingSize {
        op: &'static str,
        field: &'static str,
    },
    #[error(
        "table `{table}` has no `{op}` {dtype} rows, so neither interpolation nor a roofline fallback is possible"
    )]
    NoData {
        table: String,
        op: &'static str,
        dtype: &'static str,
    },
    #[error(
        "`{op}` {field} = {value} is beyond the range of table `{table}`: it measured {field} up to \
         {measured}, and predictions stop at {RANGE_FACTOR}x that ({limit})"
    )]
    OutOfRange {
        table: String,
        op: &'static str,
        /// The size column (`m`, `ctx`, …), or `bytes` for the memory floor.
        field: &'static str,
        value: u64,
        /// The largest value of `field` among the table's rows of `op`.
        measured: u64,
        /// `RANGE_FACTOR` × `measured`: the largest value answered.
        limit: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// How far past the table's measurements a prediction may reach: along each size column, up to
/// this factor times the largest value of that column among the table's rows of the same op
/// (any dtype, any shape; the memory floor: times the largest `hbm_read` byte count). Beyond
/// it, a query is a [`QueryError::OutOfRange`] instead of an answer.
///
/// Why a bound: extrapolation carries the last measured slope (or the fitted roofline) on
/// without limit, so a typo or an overflowed size (2^32 tokens, sizes near 2^64) came back as
/// days or 1e49 us instead of an error. Why 64: it is the smallest power of two that covers
/// what serving's grid asks of the shipped tables for every embedded model and traffic preset.
/// Serving times prefill chunks at prefix corners 4x apart (…, 65536, 262144): with the
/// `agentic-coding` preset (prompts up to 128 Ki tokens) and 8192-token chunks, a chunk is
/// timed at prefix 262144, so it ends at 270336 tokens: 16.5x the tables' longest prefill
/// (16384), and for dense MLA (DeepSeek-V3, Kimi K2) its `kv_b` projection runs at
/// m = 270336, 33x the tables' largest GEMM m (8192). DeepSeek-V3.2's unfused prefill indexer
/// (`attention_kernel = "measured"`) runs an 8192-token chunk as a batch of 8192 against the
/// tables' 256 (32x). The tables' largest points are already compute- or bandwidth-bound,
/// the regime the slope carries on in, so within 64x the answer extrapolates the physics, not
/// a trend; far beyond it (past any GPU's memory: 64x the largest `hbm_read` is 618 GB) the
/// tables say nothing. docs/compute.md, "Range".
pub const RANGE_FACTOR: u64 = 64;

/// The interpolation scheme used for each operator kind (chosen by leave-one-out on both
/// shipped tables; see docs/compute.md).
pub fn scheme_for(op: Op) -> Scheme {
    match op {
        // Flat-then-affine along tokens with knees between grid points: the middle of the
        // convex bracket had the lowest p90 on both tables.
        Op::Gemm | Op::GroupedGemm | Op::GroupedGemmSkew => Scheme::Midpoint,
        // Affine in batch × context (memory-bound) within a cache regime.
        Op::MlaDecode | Op::GqaDecode | Op::DsaIndexer | Op::HbmCopy => Scheme::Linear,
        // L2-resident, then a step down in bandwidth past the L2, then affine.
        Op::HbmRead => Scheme::Secant,
        // Causal prefill is quadratic in length: a power law.
        Op::MlaPrefill | Op::GqaPrefill => Scheme::LogLog,
    }
}

/// Whether to interpolate across the secondary axis (groups, batch) first when the query's
/// primary size is a grid value: kernels are chosen by tokens per group, so a column at a
/// measured m stays in one kernel regime. Chosen by leave-one-out.
pub fn across_first(op: Op) -> bool {
    matches!(op, Op::GroupedGemm | Op::DsaIndexer)
}

/// A point to leave out: (family, row, point); (family, WHOLE, WHOLE) hides a whole family.
type Skip = Option<(usize, usize, usize)>;
const WHOLE: usize = usize::MAX;

/// How far apart two shapes of one op are: summed |log ratio| of their fixed sizes.
fn shape_distance(a: &FamilyKey, b: &FamilyKey) -> f64 {
    let l = |v: u64| (v.max(1) as f64).ln();
    (l(a.n) - l(b.n)).abs()
        + (l(a.k) - l(b.k)).abs()
        + (l(a.heads) - l(b.heads)).abs()
        + (l(a.kv_heads) - l(b.kv_heads)).abs()
        + (l(a.head_dim) - l(b.head_dim)).abs()
}

/// `q` with the fixed sizes of family `k`.
fn with_shape(q: &OpQuery, k: &FamilyKey) -> OpQuery {
    let mut a = *q;
    match q.op {
        Op::Gemm | Op::GroupedGemm | Op::GroupedGemmSkew => (a.n, a.k) = (k.n, k.k),
        Op::HbmCopy => {}
        _ => (a.heads, a.kv_heads, a.head_dim) = (k.heads, k.kv_heads, k.head_dim),
    }
    a
}

impl ComputeTable {
    /// The time of one operator. Never allocates on the hot path.
    pub fn predict(&self, q: &OpQuery) -> Result<Prediction, QueryError> {
        self.predict_inner(q, scheme_for(q.op), None)
    }

    /// As [`predict`](Self::predict) with a chosen interpolation scheme (for comparisons).
    pub fn predict_with(&self, q: &OpQuery, scheme: Scheme) -> Result<Prediction, QueryError> {
        self.predict_inner(q, scheme, None)
    }

    fn predict_inner(
        &self,
        q: &OpQuery,
        scheme: Scheme,
        skip: Skip,
    ) -> Result<Prediction, QueryError> {
        if let Some(f) = q.missing_field() {
            return Err(QueryError::MissingSize {
                op: q.op.name(),
                field: f.name(),
            });
        }
        if q.op == Op::GroupedGemmSkew && q.m_max < q.m {
            return Err(QueryError::Invalid(format!(
                "m_max {} is below the mean m {}",
                q.m_max, q.m
            )));
        }
        self.check_range(q)?;
        let answer = if q.op == Op::GroupedGemmSkew {
            self.predict_skew(q, scheme, skip)?
        } else {
            let (key, x, y) = FamilyKey::of(q);
            self.index
                .get(&key)
                .filter(|&&fi| skip != Some((fi, WHOLE, WHOLE)))
                .and_then(|&fi| {
                    let skip_here = skip.filter(|s| s.0 == fi).map(|s| (s.1, s.2));
                    eval_family(
                        &self.families[fi],
                        x,
                        y,
                        scheme,
                        skip_here,
                        across_first(q.op),
                    )
                })
                .map(|(t, p)| Prediction {
                    time_us: t,
                    method: Method::from_path(p),
                })
        };
        let answer = match answer {
            Some(p) => p,
            None => self.roofline_prediction(q, scheme, skip)?,
        };
        if !(answer.time_us.is_finite() && answer.time_us > 0.0) {
            // Unreachable with times > 0 in the table; kept as a guard against NaN leaking out.
            return Err(QueryError::Invalid(format!(
                "prediction for `{}` is not a positive time ({})",
                q.op.name(),
                answer.time_us
            )));
        }
        Ok(answer)
    }

    /// `Ok` when every size `q.op` uses is within [`RANGE_FACTOR`] times the largest value of
    /// that column among the table's rows of the op; else the first size beyond it. An op the
    /// table has no rows of is not bounded here: it is answered from another op's rows (a
    /// skewed grouped GEMM from the balanced one), which are checked in turn, or not at all.
    pub fn check_range(&self, q: &OpQuery) -> Result<(), QueryError> {
        let top = &self.measured_max[q.op as usize];
        for &f in q.op.required() {
            let measured = top[f as usize];
            let limit = measured.saturating_mul(RANGE_FACTOR);
            if measured > 0 && q.get(f) > limit {
                return Err(QueryError::OutOfRange {
                    table: self.name().to_string(),
                    op: q.op.name(),
                    field: f.name(),
                    value: q.get(f),
                    measured,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// The largest value of `field` [`predict`](Self::predict) answers for `op` on this table
    /// ([`RANGE_FACTOR`] × the largest measured), or `None` when the table has no rows of `op`.
    pub fn size_limit(&self, op: Op, field: Field) -> Option<u64> {
        let measured = self.measured_max[op as usize][field as usize];
        (measured > 0).then(|| measured.saturating_mul(RANGE_FACTOR))
    }

    /// The fitted roofline, anchored to the nearest measured shape of the same op and dtype:
    /// that shape's (interpolated) time at the query's sizes, scaled by the ratio of the two
    /// shapes' roofline times. The anchor keeps what the roofline cannot see (kernel overheads,
    /// tile effects at this token count); the ratio carries the shape change. Without any
    /// measured shape of the kind, the plain roofline.
    fn roofline_prediction(
        &self,
        q: &OpQuery,
        scheme: Scheme,
        skip: Skip,
    ) -> Result<Prediction, QueryError> {
        let fit_op = if q.op == Op::GroupedGemmSkew {
            Op::GroupedGemm
        } else {
            q.op
        };
        let mut fq = *q;
        fq.op = fit_op;
        let Some(fit) = self.roofline.get(fit_op, q.dtype) else {
            if q.dtype == Dtype::Mxfp4 && matches!(q.op, Op::Gemm | Op::GroupedGemm) {
                return self.mxfp4_from_bf16(q, scheme, skip);
            }
            return Err(QueryError::NoData {
                table: self.name().to_string(),
                op: q.op.name(),
                dtype: q.dtype.name(),
            });
        };
        let roof = |qq: &OpQuery| {
            let (f, b) = qq.flops_and_bytes();
            fit.time_us(f, b)
        };
        let plain = roof(&fq);
        let (key, x, y) = FamilyKey::of(&fq);
        let mut best: Option<(f64, FamilyKey, usize)> = None;
        for (k, &fi) in &self.index {
            if k.op != key.op || k.dtype != key.dtype || skip == Some((fi, WHOLE, WHOLE)) {
                continue;
            }
            let d = shape_distance(&key, k);
            let better = match &best {
                None => true,
                Some((bd, bk, _)) => d < *bd || (d == *bd && k < bk),
            };
            if better {
                best = Some((d, *k, fi));
            }
        }
        if let Some((_, k, fi)) = best {
            let anchored =
                eval_family(&self.families[fi], x, y, scheme, None, across_first(fit_op));
            if let Some((t, _)) = anchored {
                let aq = with_shape(&fq, &k);
                return Ok(Prediction {
                    time_us: t * plain / roof(&aq),
                    method: Method::Roofline,
                });
            }
        }
        Ok(Prediction {
            time_us: plain,
            method: Method::Roofline,
        })
    }

    /// An MXFP4-weight GEMM on a table that has no MXFP4 rows of its kind, from the BF16 GEMM of
    /// the same shape. Hopper has no FP4 tensor cores: MXFP4 MoE kernels (Triton's
    /// `matmul_ogs`, which vLLM runs for gpt-oss on H100/H200) load the 4.25-bit weights,
    /// dequantise them to BF16 in registers and multiply at the BF16 rate. So the FLOPs are
    /// BF16's and only the weight traffic shrinks:
    ///
    /// `time = T_bf16(q) × R(q in mxfp4) / R(q in bf16)`,
    ///
    /// with `T_bf16` the table's BF16 prediction at the same sizes (exact, interpolated,
    /// extrapolated or itself anchored) and `R` the BF16 roofline fitted on the table
    /// (floor + max(FLOPs / F, bytes / B)) evaluated at each form's bytes. As with the anchored
    /// fallback, the measured BF16 kernel keeps what the roofline cannot see and the ratio
    /// carries the change. Consequences: the ratio is 1 where both forms are compute-bound
    /// (many tokens per expert), and never below 4.25/16 (only the weight bytes shrink, the
    /// floor and the activation bytes stay). The dequantisation's own cost is not modelled.
    /// Method: `roofline`.
    fn mxfp4_from_bf16(
        &self,
        q: &OpQuery,
        scheme: Scheme,
        skip: Skip,
    ) -> Result<Prediction, QueryError> {
        let no_bf16 = || QueryError::NoData {
            table: self.name().to_string(),
            op: q.op.name(),
            dtype: "bf16 (which mxfp4 is timed from)",
        };
        let bf16 = OpQuery {
            dtype: Dtype::Bf16,
            ..*q
        };
        let fit = self.roofline.get(q.op, Dtype::Bf16).ok_or_else(no_bf16)?;
        let base = self.predict_inner(&bf16, scheme, skip)?;
        let roof = |qq: &OpQuery| {
            let (f, b) = qq.flops_and_bytes();
            fit.time_us(f, b)
        };
        Ok(Prediction {
            time_us: base.time_us * roof(q) / roof(&bf16),
            method: Method::Roofline,
        })
    }

    /// Leave-one-shape-out: every family is hidden in turn and its points are predicted by the
    /// roofline fallback (anchored to the nearest other shape). Measures the fallback.
    pub fn leave_one_shape_out(&self) -> Vec<LooPoint> {
        let mut out = Vec::new();
        let mut keys: Vec<(&FamilyKey, &usize)> = self.index.iter().collect();
        keys.sort();
        for (key, &fi) in keys {
            if key.op == Op::GroupedGemmSkew {
                continue;
            }
            for row in &self.families[fi].rows {
                for &(x, t) in &row.pts {
                    let q = query_at(key, x, row.y);
                    let skip = Some((fi, WHOLE, WHOLE));
                    if let Ok(p) = self.predict_inner(&q, scheme_for(key.op), skip) {
                        out.push(LooPoint::new(q, t, p));
                    }
                }
            }
        }
        out
    }

    /// Skewed grouped GEMM: the balanced grouped GEMM at the mean load, times a skew factor
    /// interpolated from the measured skew rows (factor = measured / balanced prediction) over
    /// imbalance = m_max / m and over m (log). Without skew rows for the shape: under the
    /// kernel's tile rules, the balanced time times [`tile_work_ratio`](Self::tile_work_ratio)
    /// of the least uneven loads with that m_max; otherwise bounded by the busiest expert, the
    /// balanced time at m_max. Both marked `extrapolated`.
    fn predict_skew(
        &self,
        q: &OpQuery,
        scheme: Scheme,
        skip: Skip,
    ) -> Result<Option<Prediction>, QueryError> {
        let balanced = OpQuery::grouped_gemm(Dtype::Bf16, q.groups, q.m, q.n, q.k);
        let base = self.predict_inner(&balanced, scheme, None)?;
        let (key, _, _) = FamilyKey::of(q);
        let fam = self.index.get(&key).map(|&fi| (fi, &self.families[fi]));
        let Some((fi, fam)) = fam.filter(|(_, f)| !f.skew_rows.is_empty()) else {
            // Under tile rules: the least uneven loads with this busiest expert (the others
            // share the rest evenly), timed by the kernel's work. An assumption about the
            // loads the query does not give, so `extrapolated`.
            let g = q.groups;
            let rest = (g * q.m).saturating_sub(q.m_max);
            let (each, extra) = (rest / (g - 1).max(1), rest % (g - 1).max(1));
            let others = (0..g.saturating_sub(1)).map(|i| each + u64::from(i < extra));
            let loads = std::iter::once(q.m_max).chain(others);
            if let Some(r) = self.tile_ratio_of(Dtype::Bf16, q.n, q.k, q.m, g, loads) {
                return Ok(Some(Prediction {
                    time_us: base.time_us * r,
                    method: base.method.max(Method::Extrapolated),
                }));
            }
            // Otherwise bounded by the busiest expert: the balanced kernel at m_max.
            let at_max = OpQuery {
                m: q.m_max,
                ..balanced
            };
            let p = self.predict_inner(&at_max, scheme, None)?;
            return Ok(Some(Prediction {
                time_us: p.time_us,
                method: p.method.max(Method::Extrapolated),
            }));
        };
        let skip_here = skip.filter(|s| s.0 == fi).map(|s| (s.1, s.2));
        let groups = q.groups as f64;
        let imb = q.m_max as f64 / q.m as f64;
        // A measured point: its own time, bit for bit.
        for (ri, row) in fam.skew_rows.iter().enumerate() {
            if row.y != groups || row.m != q.m as f64 {
                continue;
            }
            for (pi, (&(i, _), &measured)) in row.pts.iter().zip(&row.measured).enumerate() {
                if let Some(t) = measured
                    && i == imb
                    && skip_here != Some((ri, pi))
                {
                    return Ok(Some(Prediction {
                        time_us: t,
                        method: Method::Exact,
                    }));
                }
            }
        }
        // Rows measured at this expert count, else at the nearest one (in ratio; ties go to the
        // smaller count). skew_rows are sorted by (groups, m), so one count's rows are a run.
        let mut g_sel = fam.skew_rows[0].y;
        for r in &fam.skew_rows {
            if (r.y.ln() - groups.ln()).abs() < (g_sel.ln() - groups.ln()).abs() {
                g_sel = r.y;
            }
        }
        let start = fam.skew_rows.partition_point(|r| r.y < g_sel);
        let end = fam.skew_rows.partition_point(|r| r.y <= g_sel);
        let run = &fam.skew_rows[start..end];
        // Up to 4 m-rows around the query's m.
        let mut pts = [(0.0, 0.0); 4];
        let mut count = 0;
        let mut worst = Path::Exact;
        let j = run.partition_point(|r| r.m < q.m as f64);
        let lo = j.saturating_sub(2);
        let hi = (j + 2).min(run.len());
        for (off, row) in run[lo..hi].iter().enumerate() {
            let ri = start + lo + off;
            let skip_pt = skip_here.and_then(|(r, p)| (r == ri).then_some(p));
            let owned;
            let row_pts: &[(f64, f64)] = match skip_pt {
                Some(p) => {
                    let mut v = row.pts.clone();
                    v.remove(p);
                    owned = v;
                    &owned
                }
                None => &row.pts,
            };
            if let Some((rho, p)) = interp1(row_pts, imb, Scheme::Linear)
                && count < 4
            {
                pts[count] = (row.m.ln(), rho);
                count += 1;
                worst = worst.max(p);
            }
        }
        let ln_m = (q.m as f64).ln();
        let (rho, pm) = match interp1(&pts[..count], ln_m, Scheme::Linear) {
            Some(v) => v,
            // One measured load level only: its factor, carried over.
            None if count == 1 => (pts[0].1, Path::Extrapolated),
            None => return Ok(None),
        };
        // Extrapolation never takes the factor below the smallest one used (or 1, the
        // balanced kernel), whichever is lower.
        let rho = rho.max(pts[..count].iter().map(|p| p.1).fold(1.0, f64::min));
        let mut path = worst.max(pm);
        if g_sel != groups {
            path = Path::Extrapolated;
        }
        let method = match (base.method, path) {
            (Method::Roofline, _) => Method::Roofline,
            (Method::Exact, Path::Exact) => Method::Exact,
            (b, p) => b.max(Method::from_path(p)).max(Method::Interpolated),
        };
        Ok(Some(Prediction {
            time_us: base.time_us * rho,
            method,
        }))
    }

    /// Uneven loads under the kernel's tile rules: the work of a grouped GEMM of `dtype`,
    /// `n`, `k` whose experts hold `loads` tokens, over its work with `m` tokens at every
    /// expert, in waves of the persistent grid ([`GroupedTiles::waves`]). Both run the
    /// configuration `m` selects, each expert's rows padded to whole clusters of its tiles
    /// (an expert without tokens takes no tile). So the time of the uneven kernel is the
    /// balanced time at `m` times this ratio: the persistent grid spreads every expert's tiles
    /// over all SMs, and the busiest expert costs only its padding, not a kernel of its own
    /// (docs/compute.md). `None` where the table has no tile rules for the shape (a stack
    /// other than PyTorch's SM90 grouped kernels, or a shape it did not measure), or `loads`
    /// is empty. MXFP4 without rows of its own takes the BF16 rows' rules, as its time does.
    pub fn tile_work_ratio(
        &self,
        dtype: Dtype,
        n: u64,
        k: u64,
        m: u64,
        loads: &[u64],
    ) -> Option<f64> {
        let groups = loads.len() as u64;
        self.tile_ratio_of(dtype, n, k, m, groups, loads.iter().copied())
    }

    /// [`tile_work_ratio`](Self::tile_work_ratio) over `groups` loads given one by one.
    fn tile_ratio_of(
        &self,
        dtype: Dtype,
        n: u64,
        k: u64,
        m: u64,
        groups: u64,
        loads: impl Iterator<Item = u64>,
    ) -> Option<f64> {
        if groups == 0 {
            return None;
        }
        let family = |d| {
            let (key, _, _) = FamilyKey::of(&OpQuery::grouped_gemm(d, groups, m, n, k));
            self.index.get(&key).map(|&fi| &self.families[fi])
        };
        // MXFP4 without rows of its own is timed from the BF16 rows: so are its loads.
        let fam = match family(dtype) {
            None if dtype == Dtype::Mxfp4 => family(Dtype::Bf16),
            f => f,
        };
        let tiles = fam?.tiles?;
        let c = tiles.config(m as f64);
        let rows: f64 = loads.map(|l| tiles.padded_in(c, l as f64)).sum();
        let even = groups as f64 * tiles.padded_in(c, m as f64);
        Some(tiles.waves(c, rows) / tiles.waves(c, even))
    }

    /// The memory floor: reading `hbm_bytes` once, interpolated over the `hbm_read` rows by
    /// byte count. `NoData` when the table has fewer than two `hbm_read` sizes; `OutOfRange`
    /// (field `bytes`) beyond [`RANGE_FACTOR`] times the largest read measured.
    pub fn read_floor(&self, hbm_bytes: f64) -> Result<Prediction, QueryError> {
        if !(hbm_bytes.is_finite() && hbm_bytes > 0.0) {
            return Err(QueryError::Invalid(format!(
                "the memory floor needs a byte count > 0, not {hbm_bytes}"
            )));
        }
        let no_data = || QueryError::NoData {
            table: self.name().to_string(),
            op: Op::HbmRead.name(),
            dtype: Dtype::Bf16.name(),
        };
        let measured = self.read_floor.last().ok_or_else(no_data)?.0;
        let limit = measured * RANGE_FACTOR as f64;
        if hbm_bytes > limit {
            return Err(QueryError::OutOfRange {
                table: self.name().to_string(),
                op: Op::HbmRead.name(),
                field: "bytes",
                value: hbm_bytes as u64,
                measured: measured as u64,
                limit: limit as u64,
            });
        }
        interp1(&self.read_floor, hbm_bytes, Scheme::Secant)
            .map(|(t, p)| Prediction {
                time_us: t,
                method: Method::from_path(p),
            })
            .ok_or_else(no_data)
    }

    /// Leave-one-out over every grid point (and skew point): the point is removed, then
    /// predicted from the rest with `scheme` (or each op's own scheme).
    pub fn leave_one_out(&self, scheme: Option<Scheme>) -> Vec<LooPoint> {
        let mut out = Vec::new();
        let mut keys: Vec<(&FamilyKey, &usize)> = self.index.iter().collect();
        keys.sort();
        for (key, &fi) in keys {
            let fam = &self.families[fi];
            let s = scheme.unwrap_or_else(|| scheme_for(key.op));
            if key.op == Op::GroupedGemmSkew {
                for (ri, row) in fam.skew_rows.iter().enumerate() {
                    for (pi, &(imb, _)) in row.pts.iter().enumerate() {
                        let m = row.m.round() as u64;
                        let m_max = (imb * row.m).round() as u64;
                        let q = OpQuery::grouped_gemm_skew(row.y as u64, m, m_max, key.n, key.k);
                        let Some(measured) = row.measured.get(pi).copied().flatten() else {
                            continue;
                        };
                        if let Ok(p) = self.predict_inner(&q, s, Some((fi, ri, pi))) {
                            out.push(LooPoint::new(q, measured, p));
                        }
                    }
                }
                continue;
            }
            for (ri, row) in fam.rows.iter().enumerate() {
                for (pi, &(x, t)) in row.pts.iter().enumerate() {
                    let q = query_at(key, x, row.y);
                    if let Ok(p) = self.predict_inner(&q, s, Some((fi, ri, pi))) {
                        out.push(LooPoint::new(q, t, p));
                    }
                }
            }
        }
        out
    }
}

/// A skew row: one (groups, mean m) with skew factors over imbalance, anchored at (1, 1).
#[derive(Clone, Debug)]
pub(crate) struct SkewRow {
    pub y: f64,
    pub m: f64,
    /// (m_max / m, measured / balanced prediction), sorted by imbalance.
    pub pts: Vec<(f64, f64)>,
    /// The measured time behind each point (None for the anchor).
    pub measured: Vec<Option<f64>>,
}

impl ComputeTable {
    /// Builds the skew rows of every skew family (called once, after the grid is indexed).
    pub(crate) fn index_skew(&mut self) {
        let keys: Vec<(FamilyKey, usize)> = self
            .index
            .iter()
            .filter(|(k, _)| k.op == Op::GroupedGemmSkew)
            .map(|(k, &i)| (*k, i))
            .collect();
        for (key, fi) in keys {
            let mut rows: Vec<SkewRow> = Vec::new();
            // Repeats of one (groups, m, m_max) are averaged, as grid rows are.
            let mut points: Vec<(f64, f64, f64, f64, u32)> = Vec::new();
            for sp in &self.families[fi].skew {
                match points
                    .iter_mut()
                    .find(|p| (p.0, p.1, p.2) == (sp.groups, sp.m, sp.m_max))
                {
                    Some(p) => {
                        p.3 += sp.time_us;
                        p.4 += 1;
                    }
                    None => points.push((sp.groups, sp.m, sp.m_max, sp.time_us, 1)),
                }
            }
            for (groups, m, m_max, sum, n) in points {
                let time_us = sum / n as f64;
                let balanced =
                    OpQuery::grouped_gemm(Dtype::Bf16, groups as u64, m as u64, key.n, key.k);
                let Ok(base) = self.predict(&balanced) else {
                    continue;
                };
                let idx = match rows.iter().position(|r| r.y == groups && r.m == m) {
                    Some(i) => i,
                    None => {
                        rows.push(SkewRow {
                            y: groups,
                            m,
                            pts: vec![(1.0, 1.0)],
                            measured: vec![None],
                        });
                        rows.len() - 1
                    }
                };
                let r = &mut rows[idx];
                let imb = m_max / m;
                if imb == 1.0 {
                    // A perfectly balanced draw: the measurement replaces the anchor.
                    r.pts[0].1 = time_us / base.time_us;
                    r.measured[0] = Some(time_us);
                    continue;
                }
                r.pts.push((imb, time_us / base.time_us));
                r.measured.push(Some(time_us));
            }
            for r in &mut rows {
                let mut both: Vec<((f64, f64), Option<f64>)> = r
                    .pts
                    .iter()
                    .copied()
                    .zip(r.measured.iter().copied())
                    .collect();
                both.sort_by(|a, b| a.0.0.total_cmp(&b.0.0));
                r.pts = both.iter().map(|b| b.0).collect();
                r.measured = both.iter().map(|b| b.1).collect();
            }
            rows.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.m.total_cmp(&b.m)));
            self.families[fi].skew_rows = rows;
        }
    }
}

fn query_at(key: &FamilyKey, x: f64, y: f64) -> OpQuery {
    let (xu, yu) = (x.round() as u64, y.round() as u64);
    let mut q = match key.op {
        Op::Gemm => OpQuery::gemm(key.dtype, xu, key.n, key.k),
        Op::GroupedGemm | Op::GroupedGemmSkew => {
            OpQuery::grouped_gemm(key.dtype, yu, xu, key.n, key.k)
        }
        Op::HbmRead => OpQuery::hbm_read(yu, xu, key.head_dim),
        Op::HbmCopy => {
            let mut q = OpQuery::gemm(key.dtype, 0, 0, xu);
            q.op = Op::HbmCopy;
            q
        }
        op => OpQuery::attention(op, yu, xu, key.heads, key.kv_heads, key.head_dim),
    };
    q.dtype = key.dtype;
    q.op = key.op;
    q
}

fn eval_row(
    row: &GridRow,
    x: f64,
    scheme: Scheme,
    tiles: Option<GroupedTiles>,
    skip_pt: Option<usize>,
) -> Option<(f64, Path)> {
    let along = |pts: &[(f64, f64)]| match tiles {
        Some(t) => interp_tiles(pts, x, t),
        None => interp1(pts, x, scheme),
    };
    match skip_pt {
        None => along(&row.pts),
        Some(i) => {
            // Leave-one-out only: a copy without the point.
            let mut v = row.pts.clone();
            v.remove(i);
            along(&v)
        }
    }
}

/// A family's value at (x, y): along x within the row at y when there is one; otherwise along
/// x in up to four rows around y, then along y.
fn eval_family(
    fam: &Family,
    x: f64,
    y: f64,
    scheme: Scheme,
    skip: Option<(usize, usize)>,
    across_first: bool,
) -> Option<(f64, Path)> {
    let rows = &fam.rows;
    let tiles = fam.tiles;
    // Under kernel tile rules, rows are evaluated at x by the rules and interpolated across
    // groups linearly (docs/compute.md).
    let across = if tiles.is_some() {
        Scheme::Linear
    } else {
        scheme
    };
    let skip_pt = |ri: usize| skip.and_then(|(r, p)| (r == ri).then_some(p));
    let at = rows.binary_search_by(|r| r.y.total_cmp(&y));
    let own = at
        .ok()
        .and_then(|ri| eval_row(&rows[ri], x, scheme, tiles, skip_pt(ri)));
    if let Some(v) = own.filter(|v| v.1 == Path::Exact) {
        return Some(v);
    }
    if across_first && let Some(v) = across_exact_column(rows, x, y, across, skip) {
        return Some(v);
    }
    let (lo, hi, own) = match at {
        Ok(ri) => {
            if let Some(v) = own.filter(|v| v.1 != Path::Extrapolated) {
                return Some(v);
            }
            (ri.saturating_sub(2), (ri + 3).min(rows.len()), own)
        }
        Err(j) => (j.saturating_sub(2), (j + 2).min(rows.len()), None),
    };
    let mut pts = [(0.0, 0.0); 4];
    let mut count = 0;
    let mut worst = Path::Exact;
    for (ri, row) in rows.iter().enumerate().take(hi).skip(lo) {
        if row.y == y || count == 4 {
            continue;
        }
        if let Some((t, p)) = eval_row(row, x, scheme, tiles, skip_pt(ri)) {
            pts[count] = (row.y, t);
            count += 1;
            worst = worst.max(p);
        }
    }
    let across = interp1(&pts[..count], y, across).map(|(t, p)| (t, p.max(worst)));
    match (across, own) {
        (Some(a), _) if a.1 == Path::Interpolated => Some(a),
        (_, Some(o)) => Some(o),
        (a, None) => a,
    }
}

/// Interpolation along y through rows that hold x exactly, when such rows lie on both sides of
/// y (up to two on each side). Kernel libraries pick a kernel by the per-group token count, so a
/// column at fixed x stays in one kernel regime while a row along x may cross several.
fn across_exact_column(
    rows: &[GridRow],
    x: f64,
    y: f64,
    scheme: Scheme,
    skip: Option<(usize, usize)>,
) -> Option<(f64, Path)> {
    let j = rows.partition_point(|r| r.y < y);
    let has_x = |ri: usize| {
        let skipped = skip.and_then(|(r, p)| (r == ri).then_some(p));
        match rows[ri].pts.binary_search_by(|p| p.0.total_cmp(&x)) {
            Ok(pi) if Some(pi) != skipped => Some(rows[ri].pts[pi].1),
            _ => None,
        }
    };
    let mut pts = [(0.0, 0.0); 4];
    let mut count = 0;
    // Two rows below y (nearest first, then reversed into order).
    let mut below = [(0.0, 0.0); 2];
    let mut nb = 0;
    for ri in (0..j).rev() {
        if nb == 2 {
            break;
        }
        match has_x(ri) {
            Some(t) => {
                below[nb] = (rows[ri].y, t);
                nb += 1;
            }
            None => break,
        }
    }
    for i in (0..nb).rev() {
        pts[count] = below[i];
        count += 1;
    }
    let start = if rows.get(j).is_some_and(|r| r.y == y) {
        j + 1
    } else {
        j
    };
    let mut na = 0;
    for (ri, row) in rows.iter().enumerate().skip(start) {
        if na == 2 {
            break;
        }
        match has_x(ri) {
            Some(t) => {
                pts[count] = (row.y, t);
                count += 1;
                na += 1;
            }
            None => break,
        }
    }
    if nb == 0 || na == 0 {
        return None;
    }
    interp1(&pts[..count], y, scheme)
}

/// One leave-one-out result.
#[derive(Clone, Copy, Debug)]
pub struct LooPoint {
    pub query: OpQuery,
    pub measured_us: f64,
    pub predicted_us: f64,
    pub method: Method,
}

impl LooPoint {
    fn new(query: OpQuery, measured_us: f64, p: Prediction) -> LooPoint {
        LooPoint {
            query,
            measured_us,
            predicted_us: p.time_us,
            method: p.method,
        }
    }

    /// |predicted - measured| / measured, percent.
    pub fn abs_err_pct(&self) -> f64 {
        (self.predicted_us - self.measured_us).abs() / self.measured_us * 100.0
    }
}

/// Median and 90th percentile of absolute percent errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorSummary {
    pub count: usize,
    pub median_pct: f64,
    pub p90_pct: f64,
    pub max_pct: f64,
}

impl ErrorSummary {
    /// `None` for an empty set. Percentiles by nearest rank.
    pub fn of(errors_pct: impl IntoIterator<Item = f64>) -> Option<ErrorSummary> {
        let mut v: Vec<f64> = errors_pct.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(ErrorSummary {
            count: v.len(),
            median_pct: rank(0.5),
            p90_pct: rank(0.9),
            max_pct: v[v.len() - 1],
        })
    }
}
