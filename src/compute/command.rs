//! The reports of `afdsim compute …` (batch queries, layer breakdowns, leave-one-out
//! figures, layer checks) as text, with no argument parser: the command line's flags map
//! onto [`ComputeCommand`] one to one, and an embedding caller can build one too.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::InputError;

use super::interp::Scheme;
use super::layer::{AttentionKernel, LayerBreakdown};
use super::layer_check::{self, LayerComparison, LayerSide};
use super::model::Model;
use super::predict::{ErrorSummary, LooPoint, Method};
use super::table::{ComputeTable, Header, Op};

/// The decode-attention kernel of [`ComputeCommand::Layer`], as the scenario key
/// `afd.attention_kernel` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The `hbm_read` memory floor divided by the efficiency (FlashMLA-class kernels).
    FlashMla,
    /// The table's measured decode-attention kernel (unfused for MLA).
    Measured,
}

/// One `afdsim compute` report, as its inputs: tables and models by name or path, sizes as
/// given. The command line builds it from its flags; an error names the flag
/// (`<command line>`, `--tokens`) or the file at fault.
#[derive(Clone, Debug, PartialEq)]
pub enum ComputeCommand {
    /// Predict the time of every operator in a CSV of queries into an output CSV.
    Query {
        /// A CSV path, or an embedded name (h100-sxm, h200-sxm).
        table: String,
        /// Queries: the table's columns op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,
        /// head_dim,m_max (unused sizes empty, extra columns kept).
        input: PathBuf,
        /// Each query row plus time_us and method.
        out: PathBuf,
    },
    /// Per-operator times of one layer (decode, optionally with a prefill chunk): attention
    /// side and FFN side.
    Layer {
        /// An embedded model name (when `model_file` is `None`).
        model: Option<String>,
        /// A model TOML file instead of an embedded model.
        model_file: Option<PathBuf>,
        /// Compute table of the attention GPUs (path or embedded name).
        table: String,
        /// Compute table of the FFN GPUs (default: the same as `table`).
        ffn_table: Option<String>,
        tokens: u64,
        ctx: u64,
        prefill_tokens: u64,
        prefill_prefix: u64,
        experts_per_gpu: Option<u64>,
        tokens_per_expert: Option<u64>,
        kernel: KernelChoice,
        /// Fraction of the memory floor's bandwidth (flash-mla only), in (0, 1].
        efficiency: f64,
        /// Layer index (0-based); default: the first full-attention MoE layer.
        layer: Option<u64>,
    },
    /// Whole layers timed by the profiler against the same layers assembled from a table.
    LayerCheck {
        table: String,
        /// The profiler's layers.csv.
        layers: PathBuf,
        /// Write every row to this CSV.
        out: Option<PathBuf>,
    },
    /// Leave-one-out accuracy of the interpolation on a table.
    Loo {
        table: String,
        /// Write every left-out point to this CSV.
        out: Option<PathBuf>,
        /// One scheme for every op instead of each op's own.
        scheme: Option<Scheme>,
    },
}

/// Runs one `afdsim compute` command, writing its report to `out`.
pub fn run_command(cmd: &ComputeCommand, out: &mut dyn Write) -> Result<(), InputError> {
    let text = match cmd {
        ComputeCommand::Query { table, input, out } => {
            let t = table_arg(table, "--table")?;
            query(&t, input, out)?
        }
        ComputeCommand::Layer {
            model,
            model_file,
            table,
            ffn_table,
            tokens,
            ctx,
            prefill_tokens,
            prefill_prefix,
            experts_per_gpu,
            tokens_per_expert,
            kernel,
            efficiency,
            layer,
        } => {
            let m = match (model, model_file) {
                (_, Some(p)) => Model::load(p)?,
                (Some(n), None) => Model::embedded(n)?,
                (None, None) => {
                    return Err(InputError::new(
                        "<command line>",
                        "--model",
                        "give --model NAME or --model-file PATH",
                    ));
                }
            };
            let ta = table_arg(table, "--table")?;
            let tf = match ffn_table {
                Some(s) => table_arg(s, "--ffn-table")?,
                None => ta.clone(),
            };
            if !(*efficiency > 0.0 && *efficiency <= 1.0) {
                return Err(cli_err(
                    "--efficiency",
                    format!("{efficiency} is outside (0, 1]"),
                ));
            }
            let kernel = match kernel {
                KernelChoice::Measured => AttentionKernel::Measured,
                KernelChoice::FlashMla => AttentionKernel::MemoryFloor {
                    efficiency: *efficiency,
                },
            };
            let args = LayerArgs {
                tokens: *tokens,
                ctx: *ctx,
                prefill_tokens: *prefill_tokens,
                prefill_prefix: *prefill_prefix,
                experts_per_gpu: *experts_per_gpu,
                tokens_per_expert: *tokens_per_expert,
                kernel,
                layer: *layer,
            };
            check_layer_args(&m, &args)?;
            check_layer_range(&m, &ta, &tf, &args)?;
            layer_report(&m, &ta, &tf, &args)?
        }
        ComputeCommand::LayerCheck { table, layers, out } => {
            let t = table_arg(table, "--table")?;
            layer_check_report(&t, layers, out.as_deref())?
        }
        ComputeCommand::Loo { table, out, scheme } => {
            let t = table_arg(table, "--table")?;
            loo_report(&t, out.as_deref(), *scheme)?
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| InputError::new("<stdout>", "", format!("cannot write: {e}")))
}

/// `afdsim compute layer-check`: one line per measured layer, then |error| per glue mode.
fn layer_check_report(
    table: &ComputeTable,
    layers: &Path,
    out: Option<&Path>,
) -> Result<String, InputError> {
    let file = layers.display().to_string();
    let rows = layer_check::load_measurements(layers)?;
    let cmp = layer_check::compare(&file, &rows, table)?;
    let mut s = String::new();
    let devices: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.device.as_str()).collect();
    let _ = writeln!(
        s,
        "whole layers from {file} ({}) against layers assembled on {} ({}); attention kernel: measured",
        devices.into_iter().collect::<Vec<_>>().join(", "),
        table.name(),
        table.device()
    );
    let _ = writeln!(
        s,
        "{:<16} {:<9} {:<5} {:<18} {:<8} {:>11} {:>11} {:>8} {:>11} {:>8}",
        "model",
        "side",
        "dtype",
        "point",
        "mode",
        "measured",
        "assembled",
        "err %",
        "table only",
        "err %"
    );
    for c in &cmp {
        let m = &c.measured;
        let point = match m.side {
            LayerSide::Attention { tokens, ctx } => format!("{tokens} tok, ctx {ctx}"),
            LayerSide::Ffn {
                experts,
                tokens_per_expert,
            } => format!("{experts} exp x {tokens_per_expert} tok"),
        };
        let _ = writeln!(
            s,
            "{:<16} {:<9} {:<5} {:<18} {:<8} {:>11.1} {:>11.1} {:>+8.1} {:>11.1} {:>+8.1}",
            m.model,
            m.side.name(),
            m.gemm_dtype.name(),
            point,
            m.mode,
            m.time_us,
            c.assembled_us,
            c.err_pct(),
            c.table_us,
            c.table_err_pct()
        );
    }
    let modes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.mode.as_str()).collect();
    let _ = writeln!(
        s,
        "\n|error| %          rows   median      p90      max   within {:.0} %   table only: median  max",
        layer_check::GOAL_PCT
    );
    for mode in modes {
        let sel: Vec<&LayerComparison> = cmp.iter().filter(|c| c.measured.mode == mode).collect();
        if let Some((w, t)) = layer_check::summarize(&sel) {
            let within = sel
                .iter()
                .filter(|c| c.err_pct().abs() <= layer_check::GOAL_PCT)
                .count();
            let _ = writeln!(
                s,
                "glue {mode:<12} {:>5} {:>8.2} {:>8.2} {:>8.2}   {within:>5} / {:<5}          {:>8.2} {:>6.2}",
                w.count,
                w.median_pct,
                w.p90_pct,
                w.max_pct,
                sel.len(),
                t.median_pct,
                t.max_pct
            );
        }
    }
    if let Some(path) = out {
        let ofile = path.display().to_string();
        let werr = |e: csv::Error| InputError::new(&ofile, "", format!("cannot write: {e}"));
        let mut w = csv::Writer::from_path(path).map_err(werr)?;
        w.write_record([
            "device",
            "model",
            "side",
            "gemm_dtype",
            "tokens",
            "ctx",
            "experts",
            "tokens_per_expert",
            "mode",
            "measured_us",
            "assembled_us",
            "err_pct",
            "table_only_us",
            "table_only_err_pct",
        ])
        .map_err(werr)?;
        for c in &cmp {
            let m = &c.measured;
            let (a, b, e, x) = match m.side {
                LayerSide::Attention { tokens, ctx } => {
                    (tokens.to_string(), ctx.to_string(), "".into(), "".into())
                }
                LayerSide::Ffn {
                    experts,
                    tokens_per_expert,
                } => (
                    String::new(),
                    String::new(),
                    experts.to_string(),
                    tokens_per_expert.to_string(),
                ),
            };
            w.write_record([
                m.device.as_str(),
                &m.model,
                m.side.name(),
                m.gemm_dtype.name(),
                &a,
                &b,
                &e,
                &x,
                &m.mode,
                &format!("{:.3}", m.time_us),
                &format!("{:.3}", c.assembled_us),
                &format!("{:.2}", c.err_pct()),
                &format!("{:.3}", c.table_us),
                &format!("{:.2}", c.table_err_pct()),
            ])
            .map_err(werr)?;
        }
        w.flush()
            .map_err(|e| InputError::new(&ofile, "", format!("cannot write: {e}")))?;
        let _ = writeln!(s, "rows -> {ofile}");
    }
    Ok(s)
}

fn cli_err(key: &str, msg: impl Into<String>) -> InputError {
    InputError::new("<command line>", key, msg)
}

/// The table a command-line flag names (an embedded name or a CSV path).
fn table_arg(spec: &str, flag: &str) -> Result<ComputeTable, InputError> {
    ComputeTable::by_name_or_path_from(spec, "<command line>", flag)
}

/// Answers every row of `input` into `output`. A malformed file (a missing column, a row with
/// the wrong number of fields, a cell that is not a valid op, dtype or size) is an error naming
/// the file, line and column, and nothing is written. A well-formed row the table cannot
/// answer (sizes beyond its range, an op and dtype it has no rows of) gets an empty `time_us`
/// and a `method` saying why: `out-of-range: …` or `no-data: …`.
fn query(table: &ComputeTable, input: &Path, output: &Path) -> Result<String, InputError> {
    let file = input.display().to_string();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(input)
        .map_err(|e| InputError::new(&file, "", format!("cannot read queries: {e}")))?;
    let headers = rdr
        .headers()
        .map_err(|e| InputError::new(&file, "line 1", format!("bad CSV header: {e}")))?
        .clone();
    Header::require_query_columns(&file, &headers)?;
    let header = Header::parse(&file, &headers)?;
    // Every row is checked before anything is written, so a bad file leaves no output.
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            InputError::new(&file, format!("line {line}"), format!("bad CSV: {e}"))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() != headers.len() {
            return Err(InputError::new(
                &file,
                format!("line {line}"),
                format!(
                    "{} fields, but the header has {}; leave unused sizes empty, not out",
                    rec.len(),
                    headers.len()
                ),
            ));
        }
        let q = header.query(&rec).map_err(|e| {
            InputError::new(
                &file,
                format!("line {line}, column `{}`", e.column),
                e.message,
            )
        })?;
        rows.push((rec, q));
    }
    let ofile = output.display().to_string();
    let mut w = csv::Writer::from_path(output)
        .map_err(|e| InputError::new(&ofile, "", format!("cannot write predictions: {e}")))?;
    let werr = |e: csv::Error| InputError::new(&ofile, "", format!("cannot write: {e}"));
    // An input `time_us` / `method` column (e.g. a table fed back in) keeps its values under
    // `input_…`, so that the added columns are unambiguous.
    let mut out_headers: Vec<String> = headers
        .iter()
        .map(|h| match h.trim() {
            "time_us" | "method" | "l2_resident" => format!("input_{}", h.trim()),
            _ => h.to_string(),
        })
        .collect();
    out_headers.push("time_us".into());
    out_headers.push("method".into());
    out_headers.push("l2_resident".into());
    w.write_record(&out_headers).map_err(werr)?;
    // exact, interpolated, extrapolated, roofline, out of range, unanswered
    let mut counts = [0usize; 6];
    for (rec, q) in &rows {
        let (time, method) = match table.predict(q) {
            Ok(p) => {
                counts[p.method as usize] += 1;
                (format!("{:.3}", p.time_us), p.method.name().to_string())
            }
            Err(e @ super::QueryError::OutOfRange { .. }) => {
                counts[4] += 1;
                (String::new(), format!("out-of-range: {e}"))
            }
            Err(e @ super::QueryError::NoData { .. }) => {
                counts[5] += 1;
                (String::new(), format!("no-data: {e}"))
            }
            Err(e) => {
                counts[5] += 1;
                (String::new(), format!("error: {e}"))
            }
        };
        let l2 = match table.l2_resident(q) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        let mut row: Vec<&str> = rec.iter().collect();
        row.push(&time);
        row.push(&method);
        row.push(l2);
        w.write_record(&row).map_err(werr)?;
    }
    w.flush()
        .map_err(|e| InputError::new(&ofile, "", format!("cannot write: {e}")))?;
    Ok(format!(
        "{} queries on {} -> {ofile}: {} exact, {} interpolated, {} extrapolated, {} roofline, \
         {} out of range, {} unanswered\n",
        rows.len(),
        table.name(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5]
    ))
}

#[derive(Clone)]
struct LayerArgs {
    tokens: u64,
    ctx: u64,
    prefill_tokens: u64,
    prefill_prefix: u64,
    experts_per_gpu: Option<u64>,
    tokens_per_expert: Option<u64>,
    kernel: AttentionKernel,
    layer: Option<u64>,
}

/// The flags of `compute layer` that set sizes, in the order a size beyond the table's range
/// is blamed on: (flag, its value, `args` with it set to `v`, its smallest valid value).
type SizeFlag = (
    &'static str,
    fn(&LayerArgs) -> u64,
    fn(&mut LayerArgs, u64),
    u64,
);

fn size_flags(a: &LayerArgs) -> [SizeFlag; 6] {
    [
        (
            "--tokens",
            |a| a.tokens,
            |a, v| a.tokens = v,
            u64::from(a.tokens > 0),
        ),
        ("--ctx", |a| a.ctx, |a, v| a.ctx = v, 1),
        (
            "--prefill-tokens",
            |a| a.prefill_tokens,
            |a, v| a.prefill_tokens = v,
            u64::from(a.prefill_tokens > 0),
        ),
        (
            "--prefill-prefix",
            |a| a.prefill_prefix,
            |a, v| a.prefill_prefix = v,
            0,
        ),
        (
            "--experts-per-gpu",
            |a| a.experts_per_gpu.unwrap_or(0),
            |a, v| a.experts_per_gpu = Some(v),
            1,
        ),
        (
            "--tokens-per-expert",
            |a| a.tokens_per_expert.unwrap_or(0),
            |a, v| a.tokens_per_expert = Some(v),
            1,
        ),
    ]
}

/// Each flag's own problems, named by that flag, before anything is assembled.
fn check_layer_args(m: &Model, a: &LayerArgs) -> Result<(), InputError> {
    if a.tokens == 0 && a.prefill_tokens == 0 {
        return Err(cli_err(
            "--tokens",
            "0 with --prefill-tokens 0 leaves nothing to run: give --tokens ≥ 1, or \
             --prefill-tokens ≥ 1 for a prefill-only iteration",
        ));
    }
    if a.tokens > 0 && a.ctx == 0 {
        return Err(cli_err(
            "--ctx",
            "0 is not allowed: cached tokens per decoding sequence, ≥ 1",
        ));
    }
    if a.tokens.checked_add(a.prefill_tokens).is_none() {
        return Err(cli_err(
            "--prefill-tokens",
            format!(
                "{} + --tokens {} overflows a 64-bit count",
                a.prefill_tokens, a.tokens
            ),
        ));
    }
    if a.prefill_prefix.checked_add(a.prefill_tokens).is_none() {
        return Err(cli_err(
            "--prefill-prefix",
            format!(
                "{} + --prefill-tokens {} overflows a 64-bit count",
                a.prefill_prefix, a.prefill_tokens
            ),
        ));
    }
    if let Some(l) = a.layer
        && l >= m.layers
    {
        return Err(cli_err(
            "--layer",
            format!(
                "{l} is beyond the model's {} layers: allowed 0..={}",
                m.layers,
                m.layers - 1
            ),
        ));
    }
    if let Some(e) = a.experts_per_gpu
        && !(1..=m.routed_experts).contains(&e)
    {
        return Err(cli_err(
            "--experts-per-gpu",
            format!(
                "{e} is not allowed: 1..={} (the model's routed experts)",
                m.routed_experts
            ),
        ));
    }
    if a.tokens_per_expert == Some(0) {
        return Err(cli_err("--tokens-per-expert", "0 is not allowed: ≥ 1"));
    }
    Ok(())
}

/// A size beyond the tables' range ([`super::RANGE_FACTOR`]) as an error naming the flag
/// that drives it and its largest allowed value with the other flags as given. The flag is the
/// first (in [`size_flags`] order) whose smallest value makes that size's error go away; its
/// maximum is found by bisection (every size grows with every flag).
fn check_layer_range(
    m: &Model,
    ta: &ComputeTable,
    tf: &ComputeTable,
    a: &LayerArgs,
) -> Result<(), InputError> {
    use super::QueryError::OutOfRange;
    let out_of_range = |a: &LayerArgs| match sides(m, ta, tf, a) {
        Err((_, e @ OutOfRange { .. })) => Some(e),
        _ => None,
    };
    let Some(err) = out_of_range(a) else {
        return Ok(());
    };
    let same = |e: &Option<super::QueryError>| match (e, &err) {
        (
            Some(OutOfRange { op, field, .. }),
            OutOfRange {
                op: o, field: f, ..
            },
        ) => op == o && field == f,
        _ => false,
    };
    for (flag, get, set, min) in size_flags(a) {
        let given = get(a);
        if given <= min {
            continue;
        }
        let with = |v: u64| {
            let mut b = a.clone();
            set(&mut b, v);
            b
        };
        if same(&out_of_range(&with(min))) {
            continue;
        }
        let bound = if out_of_range(&with(min)).is_none() {
            // ok(lo), !ok(hi)
            let (mut lo, mut hi) = (min, given);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if out_of_range(&with(mid)).is_none() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            format!("at most {lo} with the other flags as given")
        } else {
            "other flags are out of range too".to_string()
        };
        return Err(cli_err(
            flag,
            format!("{given} is too large for the compute tables ({bound}): {err}"),
        ));
    }
    let key = if a.layer.is_some() {
        "--layer"
    } else {
        "--model"
    };
    Err(cli_err(key, format!("the model's own sizes: {err}")))
}

/// The breakdowns `compute layer` prints: the attention side of the chosen layer, the FFN side
/// (MoE layers) and the attention side of a dense layer (models with dense layers). An error
/// comes with the flag of the table it was predicted on.
struct Sides {
    layer: u64,
    experts: u64,
    tokens_per_expert: u64,
    att: LayerBreakdown,
    ffn: Option<LayerBreakdown>,
    dense: Option<LayerBreakdown>,
}

fn sides(
    m: &Model,
    ta: &ComputeTable,
    tf: &ComputeTable,
    a: &LayerArgs,
) -> Result<Sides, (&'static str, super::QueryError)> {
    let layer = a.layer.unwrap_or_else(|| m.first_full_moe_layer());
    let e = a.experts_per_gpu.unwrap_or(8.min(m.routed_experts));
    let x = a
        .tokens_per_expert
        .unwrap_or_else(|| m.balanced_tokens_per_expert(a.tokens.saturating_add(a.prefill_tokens)));
    let side = |layer| {
        m.attention_side_mixed(
            ta,
            layer,
            a.tokens,
            a.ctx,
            a.prefill_tokens,
            a.prefill_prefix,
            a.kernel,
        )
        .map_err(|e| ("--table", e))
    };
    let att = side(layer)?;
    let ffn = if m.is_moe(layer) {
        Some(m.ffn_side(tf, e, x).map_err(|e| ("--ffn-table", e))?)
    } else {
        None
    };
    let first_dense = (0..m.layers).find(|&l| !m.is_moe(l));
    let dense = if let Some(d) = first_dense.filter(|_| m.is_moe(layer)) {
        Some(side(d)?)
    } else {
        None
    };
    Ok(Sides {
        layer,
        experts: e,
        tokens_per_expert: x,
        att,
        ffn,
        dense,
    })
}

fn layer_report(
    m: &Model,
    ta: &ComputeTable,
    tf: &ComputeTable,
    a: &LayerArgs,
) -> Result<String, InputError> {
    let sides = sides(m, ta, tf, a).map_err(|(flag, e)| cli_err(flag, e.to_string()))?;
    let (layer, e, x, att) = (
        sides.layer,
        sides.experts,
        sides.tokens_per_expert,
        &sides.att,
    );
    let mut s = String::new();
    let _ = write!(
        s,
        "model {} | decode {} tokens at ctx {}",
        m.name, a.tokens, a.ctx
    );
    if a.prefill_tokens > 0 {
        let _ = write!(
            s,
            " + prefill chunk of {} tokens after {}",
            a.prefill_tokens, a.prefill_prefix
        );
    }
    let _ = writeln!(s, " | attention kernel: {}", a.kernel);
    let _ = writeln!(
        s,
        "bytes per token: dispatch {} {} B, combine {} {} B, KV {} B per layer ({} B, all layers)",
        m.dispatch_dtype.name(),
        m.dispatch_bytes_per_token(m.dispatch_dtype),
        m.combine_dtype.name(),
        m.combine_bytes_per_token(m.combine_dtype),
        m.kv_bytes_per_token_per_layer(),
        m.kv_bytes_per_token()
    );
    let kind = if m.is_moe(layer) { "MoE" } else { "dense" };
    let _ = writeln!(
        s,
        "\nattention side, layer {layer} ({kind}), on {} ({})",
        ta.name(),
        ta.device()
    );
    print_breakdown(&mut s, att);
    if let Some(ffn) = &sides.ffn {
        let _ = writeln!(
            s,
            "\nffn side: {e} experts x {x} tokens each, on {} ({})",
            tf.name(),
            tf.device()
        );
        print_breakdown(&mut s, ffn);
    }
    if let Some(dense) = &sides.dense {
        let _ = writeln!(
            s,
            "\ndense layers: {} (attention GPUs, no dispatch): {:.2} us each (--layer {} for the breakdown)",
            m.dense_layers(),
            dense.total_us(),
            (0..m.layers).find(|&l| !m.is_moe(l)).unwrap_or(0)
        );
    }
    Ok(s)
}

fn print_breakdown(s: &mut String, b: &LayerBreakdown) {
    let _ = writeln!(s, "  {:<30} {:>10}  {:<13} work", "op", "time_us", "method");
    for o in &b.ops {
        let _ = writeln!(
            s,
            "  {:<30} {:>10.2}  {:<13} {}",
            o.name,
            o.time_us,
            o.source.to_string(),
            o.work
        );
    }
    let _ = writeln!(
        s,
        "  {:<30} {:>10.2}  (table {:.2}, glue {:.2})",
        format!("total {}", b.side),
        b.total_us(),
        b.table_us(),
        b.glue_us()
    );
}

fn loo_report(
    t: &ComputeTable,
    out: Option<&Path>,
    scheme: Option<Scheme>,
) -> Result<String, InputError> {
    let loo = t.leave_one_out(scheme);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "leave-one-out on {} ({}), scheme: {}: each grid point removed and predicted from the rest",
        t.name(),
        t.device(),
        scheme.map_or("per op", |s| s.name())
    );
    let _ = writeln!(
        s,
        "{:<18} {:>6} {:>8} {:>8} {:>8}   (in-between points: method = interpolated)",
        "op", "points", "median%", "p90%", "max%"
    );
    let line = |s: &mut String, name: &str, e: Vec<f64>| {
        if let Some(x) = ErrorSummary::of(e) {
            let _ = writeln!(
                s,
                "{name:<18} {:>6} {:>8.2} {:>8.2} {:>8.1}",
                x.count, x.median_pct, x.p90_pct, x.max_pct
            );
        }
    };
    // One line per op of the points `keep` selects, then one over all of them.
    let per_op = |s: &mut String, pts: &[LooPoint], keep: &dyn Fn(&LooPoint) -> bool| {
        let errors = |op: Option<Op>| {
            pts.iter()
                .filter(|p| keep(p) && op.is_none_or(|op| p.query.op == op))
                .map(|p| p.abs_err_pct())
                .collect()
        };
        for op in Op::ALL {
            line(s, op.name(), errors(Some(op)));
        }
        line(s, "all", errors(None));
    };
    let interpolated = |p: &LooPoint| p.method == Method::Interpolated;
    per_op(&mut s, &loo, &interpolated);
    let edge = loo
        .iter()
        .filter(|p| p.method == Method::Extrapolated)
        .map(|p| p.abs_err_pct())
        .collect();
    line(&mut s, "(edges, extrap.)", edge);
    let loso = t.leave_one_shape_out();
    let _ = writeln!(
        s,
        "\nleave-one-shape-out: each shape hidden, its points answered by the roofline fallback"
    );
    for op in Op::ALL {
        let e = loso
            .iter()
            .filter(|p| p.query.op == op)
            .map(|p| p.abs_err_pct())
            .collect();
        line(&mut s, op.name(), e);
    }
    let uneven = super::holdout::uneven_loads_holdout(t);
    if !uneven.is_empty() {
        let _ = writeln!(
            s,
            "\nuneven loads: each skewed grouped GEMM with its loads predicted by the kernel's \
             tile model from the balanced kernel at its mean (the skew rows unused)"
        );
        line(
            &mut s,
            Op::GroupedGemmSkew.name(),
            uneven.iter().map(|p| p.abs_err_pct()).collect(),
        );
    }
    let held = super::holdout::in_between_holdout(t);
    if !held.is_empty() {
        let _ = writeln!(
            s,
            "\nin-between sizes held out: each size that is not a power of two predicted from \
             the powers-of-two points (a 2x gap, as a query between grid points sees)"
        );
        per_op(&mut s, &held, &interpolated);
    }
    if let Some(path) = out {
        let file = path.display().to_string();
        let werr = |e: csv::Error| InputError::new(&file, "", format!("cannot write: {e}"));
        let mut w = csv::Writer::from_path(path).map_err(werr)?;
        w.write_record([
            "op",
            "dtype",
            "m",
            "n",
            "k",
            "groups",
            "batch",
            "ctx",
            "heads",
            "kv_heads",
            "head_dim",
            "m_max",
            "measured_us",
            "predicted_us",
            "method",
            "abs_err_pct",
        ])
        .map_err(werr)?;
        for p in &loo {
            let q = p.query;
            let mut row = vec![q.op.name().to_string(), q.dtype.name().to_string()];
            for f in super::table::Field::ALL {
                let v = q.get(f);
                row.push(if v == 0 { String::new() } else { v.to_string() });
            }
            row.push(format!("{:.3}", p.measured_us));
            row.push(format!("{:.3}", p.predicted_us));
            row.push(p.method.name().to_string());
            row.push(format!("{:.2}", p.abs_err_pct()));
            w.write_record(&row).map_err(werr)?;
        }
        w.flush()
            .map_err(|e| InputError::new(&file, "", format!("cannot write: {e}")))?;
    }
    Ok(s)
}
