//! The measured table: long-form CSV rows -> families of grid points, indexed at load.
//!
//! A *family* is every row of one operator kind with one fixed shape (say `gemm fp8 n=2112
//! k=7168`), laid out as rows over a secondary axis `y` (groups, batch) each holding points over
//! the primary axis `x` (tokens, context, bytes). All sorting and grouping happens here, once, so
//! that a prediction is a hash lookup plus a binary search and never allocates.

use std::collections::HashMap;
use std::path::Path;

use crate::error::InputError;

use super::roofline::Roofline;

/// Operator kinds a table may hold (the `op` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Gemm,
    GroupedGemm,
    GroupedGemmSkew,
    MlaDecode,
    HbmRead,
    DsaIndexer,
    GqaDecode,
    MlaPrefill,
    GqaPrefill,
    HbmCopy,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::Gemm,
        Op::GroupedGemm,
        Op::GroupedGemmSkew,
        Op::MlaDecode,
        Op::HbmRead,
        Op::DsaIndexer,
        Op::GqaDecode,
        Op::MlaPrefill,
        Op::GqaPrefill,
        Op::HbmCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Gemm => "gemm",
            Op::GroupedGemm => "grouped_gemm",
            Op::GroupedGemmSkew => "grouped_gemm_skew",
            Op::MlaDecode => "mla_decode",
            Op::HbmRead => "hbm_read",
            Op::DsaIndexer => "dsa_indexer",
            Op::GqaDecode => "gqa_decode",
            Op::MlaPrefill => "mla_prefill",
            Op::GqaPrefill => "gqa_prefill",
            Op::HbmCopy => "hbm_copy",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == s)
    }

    /// The columns a row or query of this kind must fill (each ≥ 1).
    pub fn required(self) -> &'static [Field] {
        use Field::*;
        match self {
            Op::Gemm => &[M, N, K],
            Op::GroupedGemm => &[M, N, K, Groups],
            Op::GroupedGemmSkew => &[M, N, K, Groups, MMax],
            Op::MlaDecode | Op::GqaDecode | Op::MlaPrefill | Op::GqaPrefill => {
                &[Batch, Ctx, Heads, KvHeads, HeadDim]
            }
            Op::DsaIndexer => &[Batch, Ctx, Heads, HeadDim],
            Op::HbmRead => &[Batch, Ctx, HeadDim],
            Op::HbmCopy => &[K],
        }
    }
}

/// Element type of the operator's inputs (`fp8`: e4m3 inputs, bf16 output; `mxfp4`: a GEMM
/// whose weights are MXFP4 and whose activations are BF16, see [`Dtype::Mxfp4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    Bf16,
    Fp8,
    /// OCP Microscaling FP4 weights (E2M1 values, one E8M0 scale per 32 values: 4.25 bits
    /// per parameter) with BF16 activations and output (w4a16), as gpt-oss's experts run on
    /// Hopper. Only `gemm` and `grouped_gemm` take it. A table without MXFP4 rows answers it
    /// from its BF16 rows (`ComputeTable::predict`, method `roofline`).
    Mxfp4,
}

impl Dtype {
    pub const ALL: [Dtype; 3] = [Dtype::Bf16, Dtype::Fp8, Dtype::Mxfp4];

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp8 => "fp8",
            Dtype::Mxfp4 => "mxfp4",
        }
    }

    pub fn parse(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Bytes per weight element of a GEMM in this type (MXFP4: 4 bits + 8 bits per 32 values).
    pub fn weight_bytes(self) -> f64 {
        match self {
            Dtype::Bf16 => 2.0,
            Dtype::Fp8 => 1.0,
            Dtype::Mxfp4 => 4.25 / 8.0,
        }
    }

    /// The type of a GEMM's activations (its non-weight input): MXFP4 GEMMs take BF16.
    pub fn activation(self) -> Dtype {
        match self {
            Dtype::Mxfp4 => Dtype::Bf16,
            d => d,
        }
    }

    /// Bytes per activation element of a GEMM in this type.
    pub fn activation_bytes(self) -> f64 {
        self.activation().weight_bytes()
    }
}

/// The size columns of a row or query, in the table's column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    M,
    N,
    K,
    Groups,
    Batch,
    Ctx,
    Heads,
    KvHeads,
    HeadDim,
    MMax,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::M,
        Field::N,
        Field::K,
        Field::Groups,
        Field::Batch,
        Field::Ctx,
        Field::Heads,
        Field::KvHeads,
        Field::HeadDim,
        Field::MMax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::M => "m",
            Field::N => "n",
            Field::K => "k",
            Field::Groups => "groups",
            Field::Batch => "batch",
            Field::Ctx => "ctx",
            Field::Heads => "heads",
            Field::KvHeads => "kv_heads",
            Field::HeadDim => "head_dim",
            Field::MMax => "m_max",
        }
    }
}

/// One operator to time. Sizes are counts (0 = not applicable to this op); which ones an op
/// needs is [`Op::required`]. Build with the constructors or fill the fields directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpQuery {
    pub op: Op,
    pub dtype: Dtype,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub groups: u64,
    pub batch: u64,
    pub ctx: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub m_max: u64,
}

impl OpQuery {
    fn blank(op: Op, dtype: Dtype) -> OpQuery {
        OpQuery {
            op,
            dtype,
            m: 0,
            n: 0,
            k: 0,
            groups: 0,
            batch: 0,
            ctx: 0,
            heads: 0,
            kv_heads: 0,
            head_dim: 0,
            m_max: 0,
        }
    }

    /// `m` tokens times a k×n weight.
    pub fn gemm(dtype: Dtype, m: u64, n: u64, k: u64) -> OpQuery {
        OpQuery {
            m,
            n,
            k,
            ..OpQuery::blank(Op::Gemm, dtype)
        }
    }

    /// `groups` experts with `m` tokens each.
    pub fn grouped_gemm(dtype: Dtype, groups: u64, m: u64, n: u64, k: u64) -> OpQuery {
        OpQuery {
            m,
            n,
            k,
            groups,
            ..OpQuery::blank(Op::GroupedGemm, dtype)
        }
    }

    /// `groups` experts with `m` tokens on average and `m_max` at the most loaded one.
    pub fn grouped_gemm_skew(groups: u64, m: u64, m_max: u64, n: u64, k: u64) -> OpQuery {
        OpQuery {
            m,
            n,
            k,
            groups,
            m_max,
            ..OpQuery::blank(Op::GroupedGemmSkew, Dtype::Bf16)
        }
    }

    /// Attention-kind operators (`mla_decode`, `gqa_decode`, `dsa_indexer`, prefill).
    pub fn attention(
        op: Op,
        batch: u64,
        ctx: u64,
        heads: u64,
        kv_heads: u64,
        head_dim: u64,
    ) -> OpQuery {
        OpQuery {
            batch,
            ctx,
            heads,
            kv_heads,
            head_dim,
            ..OpQuery::blank(op, Dtype::Bf16)
        }
    }

    /// Reading `batch × ctx × head_dim` bf16 values once.
    pub fn hbm_read(batch: u64, ctx: u64, head_dim: u64) -> OpQuery {
        OpQuery {
            batch,
            ctx,
            head_dim,
            ..OpQuery::blank(Op::HbmRead, Dtype::Bf16)
        }
    }

    pub fn get(&self, f: Field) -> u64 {
        match f {
            Field::M => self.m,
            Field::N => self.n,
            Field::K => self.k,
            Field::Groups => self.groups,
            Field::Batch => self.batch,
            Field::Ctx => self.ctx,
            Field::Heads => self.heads,
            Field::KvHeads => self.kv_heads,
            Field::HeadDim => self.head_dim,
            Field::MMax => self.m_max,
        }
    }

    pub fn set(&mut self, f: Field, v: u64) {
        match f {
            Field::M => self.m = v,
            Field::N => self.n = v,
            Field::K => self.k = v,
            Field::Groups => self.groups = v,
            Field::Batch => self.batch = v,
            Field::Ctx => self.ctx = v,
            Field::Heads => self.heads = v,
            Field::KvHeads => self.kv_heads = v,
            Field::HeadDim => self.head_dim = v,
            Field::MMax => self.m_max = v,
        }
    }

    /// The first required size that is zero, if any.
    pub fn missing_field(&self) -> Option<Field> {
        self.op
            .required()
            .iter()
            .copied()
            .find(|&f| self.get(f) == 0)
    }

    /// Whether the bytes of a memory probe (`hbm_copy`: source and destination; `hbm_read`)
    /// fit an L2 of `l2_bytes`: the profiler reads one buffer over and over, so such a row
    /// measures the cache, not HBM (the H100 table's 8 MiB copy runs at 4,833 GB/s against an
    /// HBM peak of about 3,350). `None` for other operators (the profiler rotates their
    /// weights past the L2) or an unknown L2.
    pub fn l2_resident(&self, l2_bytes: Option<f64>) -> Option<bool> {
        match self.op {
            Op::HbmCopy | Op::HbmRead => Some(self.flops_and_bytes().1 <= l2_bytes?),
            _ => None,
        }
    }

    /// Floating-point operations and HBM bytes of this operator under the table's own counting
    /// (measure.py): used by the roofline fallback and by the glue model.
    pub fn flops_and_bytes(&self) -> (f64, f64) {
        let f = |v: u64| v as f64;
        let (m, n, k, g) = (f(self.m), f(self.n), f(self.k), f(self.groups));
        let (b, c, h, kvh, d) = (
            f(self.batch),
            f(self.ctx),
            f(self.heads),
            f(self.kv_heads),
            f(self.head_dim),
        );
        // Weight and activation bytes per element (equal except for MXFP4's BF16 activations).
        let (w, e) = (self.dtype.weight_bytes(), self.dtype.activation_bytes());
        match self.op {
            Op::Gemm => (2.0 * m * n * k, n * k * w + m * k * e + m * n * 2.0),
            Op::GroupedGemm => (
                2.0 * g * m * n * k,
                g * n * k * w + g * m * k * e + g * m * n * 2.0,
            ),
            Op::GroupedGemmSkew => (
                2.0 * g * m * n * k,
                g * n * k * 2.0 + g * m * k * 2.0 + g * m * n * 2.0,
            ),
            // Absorbed MLA: qk over the whole latent+rope width, v over the latent (512 of 576).
            Op::MlaDecode => {
                let dv = d * 512.0 / 576.0;
                (2.0 * b * h * c * (d + dv), b * c * d * kvh.max(1.0) * 2.0)
            }
            Op::GqaDecode => (4.0 * b * h * c * d, 2.0 * b * kvh * c * d * 2.0),
            Op::DsaIndexer => (2.0 * b * h * c * d, b * c * d * 2.0),
            // Causal: half the score matrix.
            Op::MlaPrefill | Op::GqaPrefill => (
                2.0 * b * h * c * c * d,
                b * c * (h + 2.0 * kvh) * d * 2.0 * 2.0,
            ),
            Op::HbmRead => (0.0, b * c * d * 2.0),
            Op::HbmCopy => (0.0, 2.0 * k),
        }
    }
}

/// Which shape a family of rows shares: everything but its grid axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FamilyKey {
    pub op: Op,
    pub dtype: Dtype,
    pub n: u64,
    pub k: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
}

impl FamilyKey {
    /// The key and the grid position (x, y) of a query or row.
    pub fn of(q: &OpQuery) -> (FamilyKey, f64, f64) {
        let mut key = FamilyKey {
            op: q.op,
            dtype: q.dtype,
            n: 0,
            k: 0,
            heads: 0,
            kv_heads: 0,
            head_dim: 0,
        };
        let (x, y) = match q.op {
            Op::Gemm => {
                (key.n, key.k) = (q.n, q.k);
                (q.m as f64, 0.0)
            }
            Op::GroupedGemm | Op::GroupedGemmSkew => {
                (key.n, key.k) = (q.n, q.k);
                (q.m as f64, q.groups as f64)
            }
            Op::MlaDecode
            | Op::HbmRead
            | Op::DsaIndexer
            | Op::GqaDecode
            | Op::MlaPrefill
            | Op::GqaPrefill => {
                (key.heads, key.kv_heads, key.head_dim) = (q.heads, q.kv_heads, q.head_dim);
                (q.ctx as f64, q.batch as f64)
            }
            Op::HbmCopy => (q.k as f64, 0.0),
        };
        (key, x, y)
    }
}

/// One line of the grid: points over x at one value of y, sorted by x.
#[derive(Clone, Debug)]
pub(crate) struct GridRow {
    pub y: f64,
    pub pts: Vec<(f64, f64)>,
}

/// A point of a skewed grouped GEMM: mean tokens per expert, tokens at the busiest, time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SkewPoint {
    pub groups: f64,
    pub m: f64,
    pub m_max: f64,
    pub time_us: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Family {
    pub rows: Vec<GridRow>,
    /// Kernel tile rules for interpolation along tokens, where every row of the family was
    /// measured by a stack that has them (`Stack::TorchGroupedSm90` grouped GEMMs).
    pub tiles: Option<super::interp::GroupedTiles>,
    /// Only for `grouped_gemm_skew`: the scattered points (no regular grid).
    pub skew: Vec<SkewPoint>,
    /// Only for `grouped_gemm_skew`: skew factors over imbalance, built after indexing.
    pub skew_rows: Vec<super::predict::SkewRow>,
}

/// One parsed row of a table file.
#[derive(Clone, Debug)]
pub struct TableRow {
    pub line: u64,
    pub query: OpQuery,
    pub time_us: f64,
    /// The software that measured the row, where its kernel rules are known (`impl` and
    /// `device` columns).
    pub stack: Stack,
    /// A `grouped_gemm_skew` row's tokens at each expert (`loads` column, `;`-separated), in
    /// the order the kernel ran them; empty where the table does not give them.
    pub loads: Vec<u64>,
}

/// The software stack behind a table row, as far as interpolation has rules for it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Stack {
    /// No known rules: interpolation by the op's scheme alone.
    #[default]
    Unknown,
    /// PyTorch's CUTLASS grouped GEMMs (`_grouped_mm`, `_scaled_grouped_mm`) on a GH100 GPU
    /// (H100, H200, H800) with `sms` streaming multiprocessors: the tile rules of
    /// `interp::GroupedTiles`.
    TorchGroupedSm90 { sms: u32 },
}

impl Stack {
    /// From a row's `impl` and `device` cells (the profiler writes `graph/grouped_mm/...`).
    /// SMs: 132 on the SXM5 and NVL parts, 114 on the PCIe card (NVIDIA H100 Tensor Core GPU
    /// Architecture whitepaper; the H200 and H800 are the same GH100 configurations).
    pub fn of(impl_: &str, device: &str) -> Stack {
        let words: Vec<&str> = device.split_whitespace().collect();
        let gh100 = words.iter().any(|w| matches!(*w, "H100" | "H200" | "H800"));
        let grouped = impl_
            .split('/')
            .any(|p| p == "grouped_mm" || p == "scaled_grouped_mm");
        if gh100 && grouped {
            let sms = if words.contains(&"PCIe") { 114 } else { 132 };
            Stack::TorchGroupedSm90 { sms }
        } else {
            Stack::Unknown
        }
    }
}

/// A loaded compute-time table with its indices and fitted fallbacks.
#[derive(Clone, Debug)]
pub struct ComputeTable {
    name: String,
    device: String,
    rows: Vec<TableRow>,
    pub(crate) families: Vec<Family>,
    pub(crate) index: HashMap<FamilyKey, usize>,
    /// `hbm_read` as a function of bytes (sorted, duplicates averaged): the memory floor.
    pub(crate) read_floor: Vec<(f64, f64)>,
    pub(crate) roofline: Roofline,
    /// The largest value of each size column over the rows of each op (any dtype, any shape),
    /// indexed `[op as usize][field as usize]`; 0 where the op has no rows. Bounds
    /// extrapolation (`predict::RANGE_FACTOR`).
    pub(crate) measured_max: [[u64; 10]; 10],
}

const COLUMNS: [&str; 13] = [
    "op", "dtype", "m", "n", "k", "groups", "batch", "ctx", "heads", "kv_heads", "head_dim",
    "m_max", "time_us",
];

/// The L2 of a GPU named like a table's `device` column, bytes, where known: 50 MiB on the
/// GH100 parts (H100, H200, H800; NVIDIA H100 Tensor Core GPU Architecture whitepaper; the
/// profiler's `--l2-mib` default).
pub fn l2_bytes_of(device: &str) -> Option<f64> {
    device
        .split_whitespace()
        .any(|w| matches!(w, "H100" | "H200" | "H800"))
        .then_some(50.0 * 1024.0 * 1024.0)
}

/// A row's `loads` cell: empty, or on a `grouped_gemm_skew` row one token count per expert,
/// `;`-separated, that agree with the row's `groups`, `m` (the whole-token mean) and `m_max`.
fn parse_loads(cell: &str, q: &OpQuery) -> Result<Vec<u64>, String> {
    if cell.is_empty() {
        return Ok(Vec::new());
    }
    if q.op != Op::GroupedGemmSkew {
        return Err(format!(
            "column `loads` is only for `grouped_gemm_skew` rows, not `{}` (leave it empty)",
            q.op.name()
        ));
    }
    let loads = cell
        .split(';')
        .map(|v| v.trim().parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| format!("column `loads`: `{cell}` is not `;`-separated whole token counts"))?;
    let total: u64 = loads.iter().sum();
    let max = loads.iter().copied().max().unwrap_or(0);
    if loads.len() as u64 != q.groups || total / q.groups.max(1) != q.m || max != q.m_max {
        return Err(format!(
            "column `loads`: {} counts summing to {total} with a largest of {max} do not match \
             groups {}, m {} (total / groups) and m_max {}",
            loads.len(),
            q.groups,
            q.m,
            q.m_max
        ));
    }
    Ok(loads)
}

/// Tables shipped in the binary: (name, CSV text).
const EMBEDDED: [(&str, &str); 2] = [
    (
        "h100-sxm",
        include_str!("../../workloads/compute/h100-sxm.csv"),
    ),
    (
        "h200-sxm",
        include_str!("../../workloads/compute/h200-sxm.csv"),
    ),
];

/// Column positions of the query/size columns in a CSV header; `None` where absent.
pub(crate) struct Header {
    pub op: usize,
    pub dtype: Option<usize>,
    pub sizes: [Option<usize>; 10],
    pub time_us: Option<usize>,
    pub device: Option<usize>,
    pub impl_: Option<usize>,
    pub loads: Option<usize>,
}

impl Header {
    /// Finds the columns; `op` and `dtype` must be present, sizes may be missing (= empty).
    pub fn parse(file: &str, headers: &csv::StringRecord) -> Result<Header, InputError> {
        let find = |name: &str| headers.iter().position(|h| h.trim() == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                InputError::new(file, "line 1", format!("header lacks the `{name}` column"))
            })
        };
        let mut sizes = [None; 10];
        for (slot, f) in sizes.iter_mut().zip(Field::ALL) {
            *slot = find(f.name());
        }
        Ok(Header {
            op: need("op")?,
            dtype: find("dtype"),
            sizes,
            time_us: find("time_us"),
            device: find("device"),
            impl_: find("impl"),
            loads: find("loads"),
        })
    }

    /// The query columns a query file must have (a table file needs `time_us` too): `op`,
    /// `dtype` and every size column, unused ones left empty in a row.
    pub fn require_query_columns(
        file: &str,
        headers: &csv::StringRecord,
    ) -> Result<(), InputError> {
        for c in &COLUMNS[..12] {
            if !headers.iter().any(|h| h.trim() == *c) {
                return Err(InputError::new(
                    file,
                    "line 1",
                    format!(
                        "header lacks the `{c}` column (need: {}; unused sizes may be empty)",
                        COLUMNS[..12].join(",")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Parses the query part of a record; errors say which column and why.
    pub fn query(&self, rec: &csv::StringRecord) -> Result<OpQuery, CellError> {
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        let bad = |column: &'static str, message: String| CellError { column, message };
        let op_s = cell(self.op);
        let op = Op::parse(op_s).ok_or_else(|| {
            let known: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
            bad(
                "op",
                format!("unknown op `{op_s}` (known: {})", known.join(", ")),
            )
        })?;
        let dt_s = self.dtype.map_or("", cell);
        let dtype = if dt_s.is_empty() {
            Dtype::Bf16
        } else {
            Dtype::parse(dt_s).ok_or_else(|| {
                bad(
                    "dtype",
                    format!("unknown dtype `{dt_s}` (bf16, fp8 or mxfp4; empty: bf16)"),
                )
            })?
        };
        if dtype == Dtype::Mxfp4 && !matches!(op, Op::Gemm | Op::GroupedGemm) {
            return Err(bad(
                "dtype",
                format!(
                    "dtype mxfp4 applies to gemm and grouped_gemm only, not `{}`",
                    op.name()
                ),
            ));
        }
        let mut q = OpQuery::blank(op, dtype);
        for (slot, f) in self.sizes.iter().zip(Field::ALL) {
            let Some(i) = *slot else { continue };
            let s = cell(i);
            if s.is_empty() {
                continue;
            }
            let v = parse_size(s).map_err(|why| bad(f.name(), why))?;
            q.set(f, v);
        }
        if let Some(f) = q.missing_field() {
            return Err(bad(
                f.name(),
                format!(
                    "op `{}` needs column `{}` ≥ 1 (required: {})",
                    op.name(),
                    f.name(),
                    op.required()
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if op == Op::GroupedGemmSkew && q.m_max < q.m {
            return Err(bad(
                "m_max",
                format!(
                    "m_max {} is below the mean m {}: the busiest expert has at least the mean",
                    q.m_max, q.m
                ),
            ));
        }
        Ok(q)
    }
}

/// A cell of a row that is not a valid query: its column and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CellError {
    pub column: &'static str,
    pub message: String,
}

/// A size cell: a whole number from 0 to 2^64 − 1 (a trailing `.0` or an exponent is accepted
/// below 2^53, where a float holds every whole number exactly).
fn parse_size(s: &str) -> Result<u64, String> {
    if let Ok(v) = s.parse::<u64>() {
        return Ok(v);
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match s.parse::<f64>() {
        Ok(v) if v < 0.0 => Err(format!("`{s}` is negative; sizes are counts ≥ 0")),
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v <= EXACT => Ok(v as u64),
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v < u64::MAX as f64 => Err(format!(
            "`{s}` is too large to read exactly in this form; write the whole number's digits"
        )),
        Ok(v) if v.is_finite() && v.fract() == 0.0 || v == f64::INFINITY => {
            Err(format!("`{s}` is beyond the largest size, {}", u64::MAX))
        }
        _ => Err(format!("`{s}` is not a whole number")),
    }
}

impl ComputeTable {
    /// Loads a table file. Every problem names the file and the line.
    pub fn load(path: &Path) -> Result<ComputeTable, InputError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(&file, "", format!("cannot read compute table: {e}")))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone());
        ComputeTable::parse(&name, &file, &text)
    }

    /// One of the tables shipped with the binary: `h100-sxm` or `h200-sxm`.
    pub fn embedded(name: &str) -> Result<ComputeTable, InputError> {
        let (n, text) = EMBEDDED.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            InputError::new(
                "<embedded tables>",
                "",
                format!(
                    "no embedded compute table `{name}` (known: {})",
                    ComputeTable::embedded_names().join(", ")
                ),
            )
        })?;
        ComputeTable::parse(n, &format!("<embedded {n}.csv>"), text)
    }

    pub fn embedded_names() -> Vec<&'static str> {
        EMBEDDED.iter().map(|(n, _)| *n).collect()
    }

    /// A table given by name (embedded) or by path. Without the place the name came from, an
    /// unknown one is reported under its own name as the file; callers that know where it was
    /// given use [`by_name_or_path_from`](Self::by_name_or_path_from).
    pub fn by_name_or_path(spec: &str) -> Result<ComputeTable, InputError> {
        ComputeTable::by_name_or_path_from(spec, spec, "")
    }

    /// A table given by `spec`, an embedded name or a CSV path, at `key` of `origin` (a
    /// scenario file and `afd.table`, or `<command line>` and `--table`). A name that is neither
    /// an embedded table nor a readable file is an error naming `origin`, `key` and what is
    /// allowed; a readable file that is not a valid table is an error naming that file and line.
    pub fn by_name_or_path_from(
        spec: &str,
        origin: &str,
        key: &str,
    ) -> Result<ComputeTable, InputError> {
        if EMBEDDED.iter().any(|(n, _)| *n == spec) {
            return ComputeTable::embedded(spec);
        }
        let path = Path::new(spec);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| spec.to_string());
                ComputeTable::parse(&name, spec, &text)
            }
            Err(e) => Err(InputError::new(
                origin,
                key,
                format!(
                    "`{spec}` is neither an embedded compute table ({}) nor a readable compute \
                     table file ({e})",
                    ComputeTable::embedded_names().join(", ")
                ),
            )),
        }
    }

    /// Parses CSV text; `file` names it in errors.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<ComputeTable, InputError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| InputError::new(file, "line 1", format!("bad CSV header: {e}")))?
            .clone();
        for c in COLUMNS {
            if !headers.iter().any(|h| h.trim() == c) {
                return Err(InputError::new(
                    file,
                    "line 1",
                    format!(
                        "header lacks the `{c}` column (need: {})",
                        COLUMNS.join(",")
                    ),
                ));
            }
        }
        let header = Header::parse(file, &headers)?;
        let time_col = header.time_us.unwrap_or(0);
        let mut rows = Vec::new();
        let mut device = String::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                InputError::new(file, format!("line {line}"), format!("bad CSV: {e}"))
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let at = |msg: String| InputError::new(file, format!("line {line}"), msg);
            if rec.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let query = header
                .query(&rec)
                .map_err(|e| at(format!("column `{}`: {}", e.column, e.message)))?;
            let t_s = rec.get(time_col).unwrap_or("").trim();
            let time_us: f64 = t_s
                .parse()
                .map_err(|_| at(format!("time_us `{t_s}` is not a number")))?;
            if !(time_us.is_finite() && time_us > 0.0) {
                return Err(at(format!(
                    "time_us {t_s} must be a finite time > 0 microseconds"
                )));
            }
            if device.is_empty()
                && let Some(d) = header.device.and_then(|i| rec.get(i))
            {
                device = d.trim().to_string();
            }
            let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim();
            let loads = parse_loads(cell(header.loads), &query).map_err(at)?;
            rows.push(TableRow {
                line,
                query,
                time_us,
                stack: Stack::of(cell(header.impl_), cell(header.device)),
                loads,
            });
        }
        if rows.is_empty() {
            return Err(InputError::new(file, "", "compute table has no rows"));
        }
        Ok(ComputeTable::from_rows(name, &device, rows))
    }

    /// Builds the indices. Rows with the same shape and grid point are averaged.
    pub fn from_rows(name: &str, device: &str, rows: Vec<TableRow>) -> ComputeTable {
        let mut families: Vec<Family> = Vec::new();
        let mut index: HashMap<FamilyKey, usize> = HashMap::new();
        // (family, y bits) -> points (x, sum of times, count)
        type Sums = Vec<(f64, f64, u32)>;
        let mut acc: HashMap<(usize, u64), Sums> = HashMap::new();
        for r in &rows {
            let (key, x, y) = FamilyKey::of(&r.query);
            let fi = *index.entry(key).or_insert_with(|| {
                families.push(Family {
                    tiles: match r.stack {
                        Stack::TorchGroupedSm90 { sms } if r.query.op == Op::GroupedGemm => {
                            Some(super::interp::GroupedTiles {
                                fp8: r.query.dtype == Dtype::Fp8,
                                n: r.query.n as f64,
                                k: r.query.k as f64,
                                sms: sms as f64,
                            })
                        }
                        _ => None,
                    },
                    rows: Vec::new(),
                    skew: Vec::new(),
                    skew_rows: Vec::new(),
                });
                families.len() - 1
            });
            // The rules hold only where every row of the family ran that stack.
            let first = families[fi].tiles.map(|t| t.sms as u32);
            if !matches!(r.stack, Stack::TorchGroupedSm90 { sms } if Some(sms) == first) {
                families[fi].tiles = None;
            }
            if r.query.op == Op::GroupedGemmSkew {
                families[fi].skew.push(SkewPoint {
                    groups: r.query.groups as f64,
                    m: r.query.m as f64,
                    m_max: r.query.m_max as f64,
                    time_us: r.time_us,
                });
                continue;
            }
            let v = acc.entry((fi, y.to_bits())).or_default();
            match v.iter_mut().find(|p| p.0 == x) {
                Some(p) => {
                    p.1 += r.time_us;
                    p.2 += 1;
                }
                None => v.push((x, r.time_us, 1)),
            }
        }
        for ((fi, ybits), pts) in acc {
            let mut pts: Vec<(f64, f64)> =
                pts.into_iter().map(|(x, s, c)| (x, s / c as f64)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            families[fi].rows.push(GridRow {
                y: f64::from_bits(ybits),
                pts,
            });
        }
        for f in &mut families {
            f.rows.sort_by(|a, b| a.y.total_cmp(&b.y));
        }
        let mut read: Vec<(f64, f64, u32)> = Vec::new();
        for r in rows.iter().filter(|r| r.query.op == Op::HbmRead) {
            let bytes = r.query.flops_and_bytes().1;
            match read.iter_mut().find(|p| p.0 == bytes) {
                Some(p) => {
                    p.1 += r.time_us;
                    p.2 += 1;
                }
                None => read.push((bytes, r.time_us, 1)),
            }
        }
        let mut read_floor: Vec<(f64, f64)> = read
            .into_iter()
            .map(|(b, s, c)| (b, s / c as f64))
            .collect();
        read_floor.sort_by(|a, b| a.0.total_cmp(&b.0));
        let roofline = Roofline::fit(&rows, l2_bytes_of(device));
        let mut measured_max = [[0u64; 10]; 10];
        for r in &rows {
            let top = &mut measured_max[r.query.op as usize];
            for f in Field::ALL {
                top[f as usize] = top[f as usize].max(r.query.get(f));
            }
        }
        let mut table = ComputeTable {
            name: name.to_string(),
            device: device.to_string(),
            rows,
            families,
            index,
            read_floor,
            roofline,
            measured_max,
        };
        table.index_skew();
        table
    }

    /// The table's name (file stem or embedded name).
    /// A hash of the table's name, device and rows: equal for tables read from the same
    /// data (within one process; `std`'s hasher is not stable across builds).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        (&self.name, &self.device, format!("{:?}", self.rows)).hash(&mut h);
        h.finish()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The GPU as the driver named it in the table.
    /// [`OpQuery::l2_resident`] on this table's GPU.
    pub fn l2_resident(&self, q: &OpQuery) -> Option<bool> {
        q.l2_resident(l2_bytes_of(&self.device))
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// The rows as read, in file order.
    pub fn rows(&self) -> &[TableRow] {
        &self.rows
    }

    /// The fitted roofline rates (for glue operators and reports).
    pub fn roofline(&self) -> &Roofline {
        &self.roofline
    }
}
