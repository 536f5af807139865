//! Causal prefill attention of one sequence, in chunks: the time of `n` new tokens whose
//! sequence already has `p` tokens cached, from the table's whole-sequence prefill rows.
//!
//! Assumption: causal attention work grows with the number of (query, key) pairs, and a chunk's
//! queries see the prefix and themselves; so a chunk costs T(p + n) − T(p), where T(L) is the
//! time of a whole causal prefill of length L and T(0) = 0. The chunks of one prompt add up to
//! the whole prompt's time (to float rounding) however it is cut.
//!
//! T(L) is the predictor's answer for `mla_prefill` / `gqa_prefill` at length L (log-log between
//! grid points, proportional scaling below the grid). Above the largest measured length the
//! predictor's generic rule (growth at most proportional) would make a long prompt's later
//! chunks cheaper than its earlier ones, so there T grows as L², from the largest measured
//! length: causal prefill is compute-bound there (the shipped tables' top rows run at a steady
//! 630–690 TFLOPS) and its work is quadratic.
//!
//! With a window W (sliding-window layers, DSA's top-k), a query attends to at most W keys:
//! T_W(L) = T(L) for L ≤ W, and each query past W costs what a query over W keys costs, taken
//! as 2·T(W)/W (a causal prefill of W queries averages W/2 keys per query).
//!
//! Invariant: every time returned is finite and > 0, or a [`QueryError`] that says why.

use std::fmt;

use super::predict::{Method, Prediction, QueryError};
use super::table::{ComputeTable, Dtype, Op, OpQuery};

/// One causal prefill kernel shape (batch 1; the length is set per query), a window of keys per
/// query, and a factor on the kernel's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CausalPrefill {
    /// `mla_prefill` or `gqa_prefill` with batch = 1 and ctx = the chunk's end (p + n).
    pub query: OpQuery,
    /// Tokens already cached before the chunk (p).
    pub prefix: u64,
    /// Each query attends to at most this many keys.
    pub window: Option<u64>,
    /// FLOPs per (query, key) of the form that runs over those of the measured kernel (1 when
    /// the measured kernel's form runs).
    pub scale: f64,
}

impl CausalPrefill {
    /// `op` over `heads` query heads, `kv_heads` KV heads of `head_dim`, for the chunk of
    /// `tokens` new tokens after `prefix`.
    pub fn new(
        op: Op,
        heads: u64,
        kv_heads: u64,
        head_dim: u64,
        prefix: u64,
        tokens: u64,
    ) -> Result<CausalPrefill, QueryError> {
        let end = prefix.checked_add(tokens).ok_or_else(|| {
            QueryError::Invalid(format!(
                "prefill prefix {prefix} + {tokens} tokens overflows"
            ))
        })?;
        if tokens == 0 {
            return Err(QueryError::Invalid(
                "a prefill chunk needs ≥ 1 token".into(),
            ));
        }
        Ok(CausalPrefill {
            query: OpQuery::attention(op, 1, end, heads, kv_heads, head_dim),
            prefix,
            window: None,
            scale: 1.0,
        })
    }

    /// New tokens in the chunk.
    pub fn tokens(&self) -> u64 {
        self.query.ctx - self.prefix
    }

    /// T_W(prefix + tokens) − T_W(prefix), times `scale`. A chunk ending beyond the table's
    /// range ([`super::predict::RANGE_FACTOR`] × its longest prefill) is `OutOfRange`: the L²
    /// growth below is carried on only that far.
    pub fn time(&self, table: &ComputeTable) -> Result<Prediction, QueryError> {
        let end = self.query.ctx;
        table.check_range(&self.query)?;
        let (hi, m_hi) = self.windowed(table, end)?;
        let (lo, m_lo) = self.windowed(table, self.prefix)?;
        let t = (hi - lo) * self.scale;
        if !(t.is_finite() && t > 0.0) {
            return Err(QueryError::Invalid(format!(
                "`{}` on table `{}`: T({end}) − T({}) = {t} us is not a positive time (its rows \
                 must grow with length)",
                self.query.op.name(),
                table.name(),
                self.prefix
            )));
        }
        Ok(Prediction {
            time_us: t,
            method: m_hi.max(m_lo),
        })
    }

    /// T_W(len): whole-sequence time with at most `window` keys per query.
    fn windowed(&self, table: &ComputeTable, len: u64) -> Result<(f64, Method), QueryError> {
        match self.window {
            Some(w) if len > w => {
                let (tw, m) = self.whole(table, w)?;
                let per_query = 2.0 * tw / w as f64;
                Ok((
                    tw + (len - w) as f64 * per_query,
                    m.max(Method::Extrapolated),
                ))
            }
            _ => self.whole(table, len),
        }
    }

    /// T(len): the causal prefill of a whole sequence; T(0) = 0.
    fn whole(&self, table: &ComputeTable, len: u64) -> Result<(f64, Method), QueryError> {
        if len == 0 {
            return Ok((0.0, Method::Exact));
        }
        let at = |l: u64| {
            table.predict(&OpQuery {
                ctx: l,
                ..self.query
            })
        };
        match table.grid_max(self.query.op, self.query.dtype) {
            Some(top) if len > top => {
                let p = at(top)?;
                let r = len as f64 / top as f64;
                Ok((p.time_us * r * r, p.method.max(Method::Extrapolated)))
            }
            _ => at(len).map(|p| (p.time_us, p.method)),
        }
    }
}

impl fmt::Display for CausalPrefill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = &self.query;
        write!(
            f,
            "{} {} heads={} kv_heads={} head_dim={}: T({}) - T({})",
            q.op.name(),
            q.dtype.name(),
            q.heads,
            q.kv_heads,
            q.head_dim,
            q.ctx,
            self.prefix
        )?;
        if let Some(w) = self.window {
            write!(f, ", window {w}")?;
        }
        if self.scale != 1.0 {
            write!(f, " x {:.3}", self.scale)?;
        }
        Ok(())
    }
}

impl ComputeTable {
    /// The largest primary size (tokens, context, bytes) measured for `op` in `dtype`, over all
    /// its shapes; `None` without such rows.
    pub(crate) fn grid_max(&self, op: Op, dtype: Dtype) -> Option<u64> {
        self.index
            .iter()
            .filter(|(k, _)| k.op == op && k.dtype == dtype)
            .flat_map(|(_, &fi)| self.families[fi].rows.iter())
            .filter_map(|r| r.pts.last().map(|p| p.0))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            })
            .map(|x| x.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> ComputeTable {
        ComputeTable::embedded("h100-sxm").unwrap()
    }

    fn mla(prefix: u64, tokens: u64) -> CausalPrefill {
        CausalPrefill::new(Op::MlaPrefill, 128, 128, 192, prefix, tokens).unwrap()
    }

    #[test]
    fn a_whole_prompt_on_the_grid_is_its_row() {
        let t = h100();
        let p = mla(0, 4096).time(&t).unwrap();
        assert_eq!(p.time_us, 1294.437);
        assert_eq!(p.method, Method::Exact);
        assert_eq!(t.grid_max(Op::MlaPrefill, Dtype::Bf16), Some(16384));
    }

    #[test]
    fn beyond_the_grid_time_grows_as_the_square() {
        let t = h100();
        let whole = mla(0, 32768).time(&t).unwrap();
        assert_eq!(whole.time_us, 4.0 * 20492.064);
        assert_eq!(whole.method, Method::Extrapolated);
        // A chunk past the grid costs more than the same chunk just inside it.
        let inside = mla(14336, 2048).time(&t).unwrap().time_us;
        let beyond = mla(16384, 2048).time(&t).unwrap().time_us;
        assert!(beyond > inside, "{beyond} vs {inside}");
    }

    #[test]
    fn below_the_grid_time_scales_in_proportion() {
        let t = h100();
        let p = mla(0, 128).time(&t).unwrap();
        assert!((p.time_us - 51.584 / 4.0).abs() < 1e-9, "{}", p.time_us);
        assert_eq!(p.method, Method::Extrapolated);
    }

    #[test]
    fn a_window_caps_the_cost_of_each_query() {
        let t = h100();
        let w = |prefix| CausalPrefill {
            window: Some(2048),
            ..mla(prefix, 1024)
        };
        let a = w(4096).time(&t).unwrap().time_us;
        let b = w(12288).time(&t).unwrap().time_us;
        assert!((a - b).abs() < 1e-9 * a, "{a} vs {b}");
        assert!((a - 1024.0 * 2.0 * 358.948 / 2048.0).abs() < 1e-6, "{a}");
    }

    #[test]
    fn bad_chunks_are_errors() {
        assert!(CausalPrefill::new(Op::MlaPrefill, 128, 128, 192, 5, 0).is_err());
        assert!(CausalPrefill::new(Op::MlaPrefill, 128, 128, 192, u64::MAX, 2).is_err());
    }
}
