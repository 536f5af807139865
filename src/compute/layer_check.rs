//! Whole-layer measurements against assembled layers: the check of the glue model.
//!
//! `tools/profiler/profile.py --layers` times one MoE layer's attention side and FFN side as a
//! whole (one CUDA graph: the big kernels plus the glue between them) into `layers.csv`. Each
//! row here is assembled the way [`Model::attention_side_at`] / [`Model::ffn_side`] build it,
//! from a compute table, with the kernels the profiler ran: the measured decode attention
//! ([`AttentionKernel::Measured`]) and the GEMM dtype the row records (a CPU smoke run has no
//! FP8 GEMMs). The comparison says how far the assembled layer is from the measured one, with
//! and without the glue lines (the goal, [`GOAL_PCT`]: within 10 % with glue).

use std::path::Path;

use crate::error::InputError;

use super::layer::AttentionKernel;
use super::model::Model;
use super::predict::ErrorSummary;
use super::table::{ComputeTable, Dtype};

/// The goal for an assembled layer against the whole layer, %.
pub const GOAL_PCT: f64 = 10.0;

/// Which side of the layer a row timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSide {
    /// `tokens` decoding sequences over `ctx` cached tokens each.
    Attention { tokens: u64, ctx: u64 },
    /// `experts` experts with `tokens_per_expert` tokens each.
    Ffn {
        experts: u64,
        tokens_per_expert: u64,
    },
}

impl LayerSide {
    pub fn name(self) -> &'static str {
        match self {
            LayerSide::Attention { .. } => "attention",
            LayerSide::Ffn { .. } => "ffn",
        }
    }
}

/// One row of `layers.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerMeasurement {
    /// 1-based data line in the file (for messages).
    pub line: u64,
    pub device: String,
    pub model: String,
    pub layer: u64,
    pub gemm_dtype: Dtype,
    pub side: LayerSide,
    /// Glue implementation: `eager` or `compiled`.
    pub mode: String,
    pub time_us: f64,
}

/// A measured row and the same layer assembled from a table.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerComparison {
    pub measured: LayerMeasurement,
    /// Table operators + glue.
    pub assembled_us: f64,
    /// The table operators alone.
    pub table_us: f64,
}

impl LayerComparison {
    /// Signed error of the assembled layer, % of the measured time.
    pub fn err_pct(&self) -> f64 {
        100.0 * (self.assembled_us / self.measured.time_us - 1.0)
    }

    /// Signed error of the table operators alone, %.
    pub fn table_err_pct(&self) -> f64 {
        100.0 * (self.table_us / self.measured.time_us - 1.0)
    }
}

const COLUMNS: [&str; 10] = [
    "device",
    "model",
    "side",
    "layer",
    "gemm_dtype",
    "tokens",
    "ctx",
    "experts",
    "tokens_per_expert",
    "time_us",
];

/// Reads a `layers.csv` (columns [`COLUMNS`] plus `mode`; extra columns ignored). Errors name
/// the file, the line and the column.
pub fn load_measurements(path: &Path) -> Result<Vec<LayerMeasurement>, InputError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path)
        .map_err(|e| InputError::new(&file, "", format!("cannot read layer timings: {e}")))?;
    parse_measurements(&file, f)
}

/// Reads a `layers.csv` from `reader`; `file` names it in errors ([`load_measurements`]).
pub fn parse_measurements(
    file: &str,
    reader: impl std::io::Read,
) -> Result<Vec<LayerMeasurement>, InputError> {
    let file = file.to_string();
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| InputError::new(&file, "line 1", format!("bad CSV header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let mut idx = Vec::with_capacity(COLUMNS.len());
    for c in COLUMNS {
        idx.push(col(c).ok_or_else(|| {
            InputError::new(
                &file,
                "line 1",
                format!(
                    "missing column `{c}` (a layers.csv from tools/profiler/profile.py --layers has {})",
                    COLUMNS.join(",")
                ),
            )
        })?);
    }
    let mode_col = col("mode");
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let key = |c: &str| format!("line {line}, column {c}");
        let rec = rec.map_err(|e| InputError::new(&file, format!("line {line}"), e.to_string()))?;
        let get = |k: usize| rec.get(idx[k]).unwrap_or("").trim();
        let int = |k: usize| -> Result<u64, InputError> {
            let s = get(k);
            match s.parse::<u64>() {
                Ok(v) if v > 0 || COLUMNS[k] == "layer" => Ok(v),
                _ => Err(InputError::new(
                    &file,
                    key(COLUMNS[k]),
                    format!("`{s}` is not a positive integer"),
                )),
            }
        };
        let side = match get(2) {
            "attention" => LayerSide::Attention {
                tokens: int(5)?,
                ctx: int(6)?,
            },
            "ffn" => LayerSide::Ffn {
                experts: int(7)?,
                tokens_per_expert: int(8)?,
            },
            s => {
                return Err(InputError::new(
                    &file,
                    key("side"),
                    format!("`{s}` is not a side (attention or ffn)"),
                ));
            }
        };
        // A model's GEMMs run in BF16 or FP8 (MXFP4 is a weight format of routed experts).
        let gemm_dtype = Dtype::parse(get(4))
            .filter(|d| matches!(d, Dtype::Bf16 | Dtype::Fp8))
            .ok_or_else(|| {
                InputError::new(
                    &file,
                    key("gemm_dtype"),
                    format!("`{}` is not a GEMM dtype (bf16 or fp8)", get(4)),
                )
            })?;
        let time_us = match get(9).parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 => t,
            _ => {
                return Err(InputError::new(
                    &file,
                    key("time_us"),
                    format!("`{}` is not a positive time", get(9)),
                ));
            }
        };
        out.push(LayerMeasurement {
            line,
            device: get(0).to_string(),
            model: get(1).to_string(),
            layer: int(3)?,
            gemm_dtype,
            side,
            mode: mode_col
                .and_then(|c| rec.get(c))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "eager".into()),
            time_us,
        });
    }
    if out.is_empty() {
        return Err(InputError::new(&file, "", "no layer timings in the file"));
    }
    Ok(out)
}

/// Assembles every measured row on `table`. Models are the embedded ones; a row naming
/// another, or a size the model rejects, is an error naming the file and line.
pub fn compare(
    file: &str,
    rows: &[LayerMeasurement],
    table: &ComputeTable,
) -> Result<Vec<LayerComparison>, InputError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let at = |col: &str| format!("line {}, column {col}", r.line);
        let mut model =
            Model::embedded(&r.model).map_err(|e| InputError::new(file, at("model"), e.message))?;
        // The profiler ran every GEMM, routed experts included, in the row's dtype.
        model.gemm_dtype = r.gemm_dtype;
        model.expert_dtype = r.gemm_dtype;
        let b = match r.side {
            LayerSide::Attention { tokens, ctx } => {
                model.attention_side_at(table, r.layer, tokens, ctx, AttentionKernel::Measured)
            }
            LayerSide::Ffn {
                experts,
                tokens_per_expert,
            } => model.ffn_side(table, experts, tokens_per_expert),
        }
        .map_err(|e| InputError::new(file, at("side"), e.to_string()))?;
        out.push(LayerComparison {
            measured: r.clone(),
            assembled_us: b.total_us(),
            table_us: b.table_us(),
        });
    }
    Ok(out)
}

/// |error| summaries over a set of comparisons: (with glue, table operators alone).
pub fn summarize(c: &[&LayerComparison]) -> Option<(ErrorSummary, ErrorSummary)> {
    Some((
        ErrorSummary::of(c.iter().map(|x| x.err_pct().abs()))?,
        ErrorSummary::of(c.iter().map(|x| x.table_err_pct().abs()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("afdsim-layer-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEADER: &str = "device,model,side,layer,gemm_dtype,tokens,ctx,experts,tokens_per_expert,mode,time_us,reps,impl\n";

    #[test]
    fn a_measurement_equal_to_the_assembly_has_zero_error() {
        let t = ComputeTable::embedded("h100-sxm").unwrap();
        let m = Model::embedded("deepseek-v3").unwrap();
        let att = m
            .attention_side_at(&t, 3, 64, 4096, AttentionKernel::Measured)
            .unwrap();
        let ffn = m.ffn_side(&t, 8, 32).unwrap();
        let text = format!(
            "{HEADER}gpu,deepseek-v3,attention,3,fp8,64,4096,,,eager,{},10,graph\n\
             gpu,deepseek-v3,ffn,3,fp8,,,8,32,compiled,{},10,graph\n",
            att.total_us(),
            ffn.total_us() * 1.25
        );
        let p = write("equal.csv", &text);
        let rows = load_measurements(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].mode, "compiled");
        let c = compare("equal.csv", &rows, &t).unwrap();
        assert!(c[0].err_pct().abs() < 1e-9, "{}", c[0].err_pct());
        assert!((c[0].table_us - att.table_us()).abs() < 1e-9);
        assert!(c[0].table_err_pct() < 0.0, "glue is part of the layer");
        assert!((c[1].err_pct() + 20.0).abs() < 1e-9, "{}", c[1].err_pct());
        let (with, alone) = summarize(&c.iter().collect::<Vec<_>>()).unwrap();
        assert!((with.max_pct - 20.0).abs() < 1e-9);
        assert!(alone.median_pct > 0.0);
    }

    #[test]
    fn the_row_dtype_overrides_the_model() {
        let t = ComputeTable::embedded("h100-sxm").unwrap();
        let text = format!(
            "{HEADER}cpu,deepseek-v3,ffn,3,bf16,,,8,32,eager,100,3,eager\n\
             cpu,deepseek-v3,ffn,3,fp8,,,8,32,eager,100,3,eager\n"
        );
        let p = write("dtype.csv", &text);
        let c = compare("dtype.csv", &load_measurements(&p).unwrap(), &t).unwrap();
        assert_ne!(c[0].table_us, c[1].table_us);
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let t = ComputeTable::embedded("h100-sxm").unwrap();
        let cases = [
            (
                "gpu,deepseek-v3,middle,3,fp8,1,1,,,eager,5,1,x\n",
                "column side",
            ),
            (
                "gpu,deepseek-v3,attention,3,fp4,1,1,,,eager,5,1,x\n",
                "column gemm_dtype",
            ),
            (
                "gpu,deepseek-v3,attention,3,mxfp4,1,1,,,eager,5,1,x\n",
                "column gemm_dtype",
            ),
            (
                "gpu,deepseek-v3,attention,3,fp8,0,1,,,eager,5,1,x\n",
                "column tokens",
            ),
            (
                "gpu,deepseek-v3,ffn,3,fp8,,,8,,eager,5,1,x\n",
                "column tokens_per_expert",
            ),
            (
                "gpu,deepseek-v3,ffn,3,fp8,,,8,2,eager,NaN,1,x\n",
                "column time_us",
            ),
            (
                "gpu,deepseek-v3,ffn,3,fp8,,,8,2,eager,-1,1,x\n",
                "column time_us",
            ),
        ];
        for (i, (row, want)) in cases.iter().enumerate() {
            let p = write(&format!("bad{i}.csv"), &format!("{HEADER}{row}"));
            let e = load_measurements(&p).unwrap_err();
            assert_eq!(e.key, format!("line 2, {want}"), "{row}: {e}");
            assert!(e.file.ends_with(&format!("bad{i}.csv")));
        }
        let p = write(
            "nomodel.csv",
            &format!("{HEADER}gpu,llama,ffn,0,fp8,,,8,2,eager,5,1,x\n"),
        );
        let e = compare("nomodel.csv", &load_measurements(&p).unwrap(), &t).unwrap_err();
        assert_eq!(e.key, "line 2, column model", "{e}");
        assert!(e.message.contains("unknown model `llama`"), "{e}");
        let p = write(
            "toomany.csv",
            &format!("{HEADER}gpu,deepseek-v3,ffn,3,fp8,,,999,2,eager,5,1,x\n"),
        );
        let e = compare("toomany.csv", &load_measurements(&p).unwrap(), &t).unwrap_err();
        assert_eq!(e.key, "line 2, column side", "{e}");
        let p = write("nocol.csv", "device,model,side\ngpu,deepseek-v3,ffn\n");
        let e = load_measurements(&p).unwrap_err();
        assert!(e.message.contains("missing column `layer`"), "{e}");
        let p = write("empty.csv", HEADER);
        assert!(
            load_measurements(&p)
                .unwrap_err()
                .message
                .contains("no layer timings")
        );
    }
}
