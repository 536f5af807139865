//! Compute tables: loading, prediction paths, bad input, the query and layer commands.

use std::path::PathBuf;

use afdsim::compute::command::{ComputeCommand, KernelChoice, run_command};
use afdsim::compute::{
    AttentionKernel, ComputeTable, Dtype, ErrorSummary, Method, Model, Op, OpQuery, QueryError,
    Source,
};

mod common;
use common::{h100, h200};

const HEADER: &str = "device,op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max,time_us,tflops,gbps,reps,impl\n";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("afdsim-compute-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

// ---------------------------------------------------------------- loader

/// A table made of `body` rows (after the header) fails at `line` with `fragment`.
fn check_load_error(body: &str, line: u64, fragment: &str) {
    let text = format!("{HEADER}{body}");
    let e = ComputeTable::parse("t", "t.csv", &text).unwrap_err();
    assert_eq!(e.file, "t.csv");
    assert_eq!(e.key, format!("line {line}"), "{e}");
    assert!(e.message.contains(fragment), "{e}");
}

#[test]
fn malformed_rows_are_errors_naming_the_line() {
    let good = "X,gemm,bf16,1,64,32,,,,,,,,3.5,,,10,graph\n";
    check_load_error(
        &format!("{good}X,conv2d,bf16,1,64,32,,,,,,,,3.5,,,10,g\n"),
        3,
        "unknown op `conv2d`",
    );
    check_load_error(
        "X,gemm,int4,1,64,32,,,,,,,,3.5,,,10,g\n",
        2,
        "unknown dtype `int4`",
    );
    check_load_error("X,gemm,bf16,-1,64,32,,,,,,,,3.5,,,10,g\n", 2, "negative");
    check_load_error(
        "X,gemm,bf16,1.5,64,32,,,,,,,,3.5,,,10,g\n",
        2,
        "not a whole number",
    );
    check_load_error(
        "X,gemm,bf16,1,,32,,,,,,,,3.5,,,10,g\n",
        2,
        "needs column `n`",
    );
    check_load_error(
        "X,gemm,bf16,1,64,32,,,,,,,,abc,,,10,g\n",
        2,
        "time_us `abc`",
    );
    check_load_error("X,gemm,bf16,1,64,32,,,,,,,,0,,,10,g\n", 2, "> 0");
    check_load_error("X,gemm,bf16,1,64,32,,,,,,,,NaN,,,10,g\n", 2, "> 0");
    check_load_error(
        "X,mla_decode,bf16,,,,,4,512,128,1,,,7.0,,,10,g\n",
        2,
        "head_dim",
    );
    check_load_error(
        "X,grouped_gemm_skew,bf16,64,64,32,8,,,,,,10,7.0,,,10,g\n",
        2,
        "m_max 10 is below",
    );
}

#[test]
fn missing_table_and_missing_columns() {
    let e = ComputeTable::load(std::path::Path::new("/nonexistent/t.csv")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/t.csv") && e.message.contains("cannot read"));
    let e = ComputeTable::parse("t", "t.csv", "op,dtype,m\ngemm,bf16,1\n").unwrap_err();
    assert_eq!(e.key, "line 1");
    assert!(e.message.contains("lacks the `n` column"), "{e}");
    let e = ComputeTable::parse("t", "t.csv", HEADER).unwrap_err();
    assert!(e.message.contains("no rows"), "{e}");
    let e = ComputeTable::embedded("b300").unwrap_err();
    assert!(e.message.contains("h100-sxm"), "{e}");
}

#[test]
fn shipped_tables_load_with_their_row_counts_and_devices() {
    assert_eq!(h100().rows().len(), 2288);
    assert_eq!(h200().rows().len(), 2288);
    assert_eq!(h100().device(), "NVIDIA H100 80GB HBM3");
    assert_eq!(h200().device(), "NVIDIA H200");
}

// ---------------------------------------------------------------- prediction

#[test]
fn every_grid_point_is_reproduced_exactly() {
    for t in [h100(), h200()] {
        for r in t.rows() {
            let p = t.predict(&r.query).unwrap();
            assert_eq!(p.method, Method::Exact, "{:?}", r.query);
            assert_eq!(p.time_us, r.time_us, "line {}", r.line);
        }
    }
}

/// The time of `q` on `t` lies within [lo, hi] and came from `method`.
fn check_between(t: &ComputeTable, q: OpQuery, lo: f64, hi: f64, method: Method) {
    let p = t.predict(&q).unwrap();
    assert_eq!(p.method, method, "{q:?}");
    assert!(
        p.time_us.is_finite() && p.time_us >= lo && p.time_us <= hi,
        "{q:?}: {} not in [{lo}, {hi}]",
        p.time_us
    );
}

fn exact(t: &ComputeTable, q: OpQuery) -> f64 {
    let p = t.predict(&q).unwrap();
    assert_eq!(p.method, Method::Exact, "{q:?}");
    p.time_us
}

#[test]
fn in_between_sizes_interpolate_between_their_neighbours() {
    let t = h100();
    let g = |m| OpQuery::gemm(Dtype::Bf16, m, 7168, 16384);
    let (a, b) = (exact(t, g(1024)), exact(t, g(2048)));
    check_between(t, g(1500), a, b, Method::Interpolated);
    let gg = |g, m| OpQuery::grouped_gemm(Dtype::Fp8, g, m, 4096, 7168);
    let (a, b) = (exact(t, gg(8, 512)), exact(t, gg(16, 512)));
    check_between(t, gg(12, 512), a.min(b), a.max(b), Method::Interpolated);
    let mla = |b, c| OpQuery::attention(Op::MlaDecode, b, c, 128, 1, 576);
    let (a, b) = (exact(t, mla(16, 4096)), exact(t, mla(32, 8192)));
    check_between(t, mla(24, 6000), a, b, Method::Interpolated);
}

#[test]
fn sizes_beyond_the_grid_extrapolate_monotonically() {
    let t = h100();
    let g = |m| OpQuery::gemm(Dtype::Fp8, m, 2112, 7168);
    let last = exact(t, g(8192));
    // At most proportional growth, at least no shrinking.
    check_between(t, g(16384), last, 2.0 * last, Method::Extrapolated);
    let gqa = |b, c| OpQuery::attention(Op::GqaDecode, b, c, 64, 4, 128);
    let last = exact(t, gqa(256, 32768));
    check_between(t, gqa(512, 32768), last, 2.0 * last, Method::Extrapolated);
}

#[test]
fn shapes_the_table_lacks_fall_back_to_the_fitted_roofline() {
    for t in [h100(), h200()] {
        // Kimi K2's router: 384 experts.
        let q = OpQuery::gemm(Dtype::Bf16, 64, 384, 7168);
        let p = t.predict(&q).unwrap();
        assert_eq!(p.method, Method::Roofline);
        // Close to the measured 256-expert router at the same m, and above it.
        let near = exact(t, OpQuery::gemm(Dtype::Bf16, 64, 256, 7168));
        assert!(
            p.time_us > near * 0.8 && p.time_us < near * 2.0,
            "{} vs {near}",
            p.time_us
        );
    }
}

#[test]
fn leave_one_shape_out_roofline_error_is_bounded() {
    // The roofline must be a usable fallback, not just a finite number: over every GEMM row the
    // fitted model stays within a factor of two for 90 % of rows.
    for t in [h100(), h200()] {
        for dtype in [Dtype::Bf16, Dtype::Fp8] {
            let fit = *t.roofline().get(Op::Gemm, dtype).unwrap();
            let errs = t
                .rows()
                .iter()
                .filter(|r| r.query.op == Op::Gemm && r.query.dtype == dtype)
                .map(|r| {
                    let (f, b) = r.query.flops_and_bytes();
                    (fit.time_us(f, b) / r.time_us).ln().abs()
                });
            let s = ErrorSummary::of(errs).unwrap();
            assert!(s.p90_pct < 2f64.ln(), "{} {dtype:?}: {s:?}", t.name());
        }
    }
}

#[test]
fn bad_queries_are_errors_not_nan_or_zero() {
    let t = h100();
    let e = t
        .predict(&OpQuery::gemm(Dtype::Bf16, 0, 64, 64))
        .unwrap_err();
    assert_eq!(
        e,
        QueryError::MissingSize {
            op: "gemm",
            field: "m"
        }
    );
    // A table with only gemm rows has no attention data and no roofline for it.
    let only_gemm = ComputeTable::parse(
        "g",
        "g.csv",
        &format!(
            "{HEADER}X,gemm,bf16,1,64,32,,,,,,,,3.5,,,10,g\nX,gemm,bf16,2,64,32,,,,,,,,3.6,,,10,g\n"
        ),
    )
    .unwrap();
    let e = only_gemm
        .predict(&OpQuery::attention(Op::MlaDecode, 4, 512, 128, 1, 576))
        .unwrap_err();
    assert!(matches!(e, QueryError::NoData { .. }), "{e}");
    assert!(e.to_string().contains("mla_decode"), "{e}");
}

#[test]
fn skewed_grouped_gemm_is_at_least_the_balanced_time() {
    let t = h100();
    let balanced = exact(t, OpQuery::grouped_gemm(Dtype::Bf16, 8, 256, 4096, 7168));
    let p = t
        .predict(&OpQuery::grouped_gemm_skew(8, 256, 800, 4096, 7168))
        .unwrap();
    assert_eq!(p.method, Method::Interpolated);
    assert!(p.time_us >= balanced * 0.95, "{} vs {balanced}", p.time_us);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_valid_query_gives_a_positive_finite_time(
            op_i in 0usize..10, m in 1u64..100_000, n in 1u64..50_000, k in 1u64..50_000,
            g in 1u64..300, b in 1u64..2000, c in 1u64..200_000, heads in 1u64..200,
            kvh in 1u64..16, d in 1u64..1024, extra in 0u64..1000, fp8 in any::<bool>(),
        ) {
            let op = Op::ALL[op_i];
            let q = OpQuery {
                op, dtype: if fp8 { Dtype::Fp8 } else { Dtype::Bf16 },
                m, n, k, groups: g, batch: b, ctx: c, heads, kv_heads: kvh, head_dim: d,
                m_max: m + extra,
            };
            for t in [h100(), h200()] {
                // A size the op uses beyond the table's range (`RANGE_FACTOR`) is refused.
                // (Within these generators only the prefill ops' batch, measured at 1, can be.)
                let beyond = op.required().iter().any(|&f| {
                    t.size_limit(op, f).is_some_and(|lim| q.get(f) > lim)
                });
                match t.predict(&q) {
                    Ok(p) => prop_assert!(p.time_us.is_finite() && p.time_us > 0.0 && !beyond, "{q:?}: {p:?}"),
                    Err(QueryError::OutOfRange { .. }) => prop_assert!(beyond, "{q:?}"),
                    // Only fp8 kinds the table never measured may be unanswerable.
                    Err(e) => prop_assert!(matches!(e, QueryError::NoData { .. }) && fp8, "{q:?}: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------- query command

fn run(cmd: ComputeCommand) -> Result<String, afdsim::error::InputError> {
    let mut out = Vec::new();
    run_command(&cmd, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn query_command_answers_rows_and_explains_the_rest() {
    let input = scratch("queries.csv");
    let output = scratch("predictions.csv");
    std::fs::write(
        &input,
        "label,op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max\n\
         grid,gemm,bf16,1024,7168,16384,,,,,,,\n\
         between,gemm,bf16,1500,7168,16384,,,,,,,\n\
         beyond,gemm,bf16,20000,7168,16384,,,,,,,\n\
         unknown-shape,gemm,bf16,64,384,7168,,,,,,,\n\
         far-beyond,gemm,bf16,18446744073709551615,7168,16384,,,,,,,\n\
         never-measured,mla_decode,fp8,,,,,4,512,128,1,576,\n",
    )
    .unwrap();
    let report = run(ComputeCommand::Query {
        table: "h100-sxm".into(),
        input: input.clone(),
        out: output.clone(),
    })
    .unwrap();
    assert!(report.contains("6 queries"), "{report}");
    assert!(report.contains("1 out of range, 1 unanswered"), "{report}");
    let mut rdr = csv::Reader::from_path(&output).unwrap();
    let h = rdr.headers().unwrap().clone();
    assert_eq!(h.get(0), Some("label"));
    assert_eq!(
        h.iter().rev().take(3).collect::<Vec<_>>(),
        vec!["l2_resident", "method", "time_us"]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    let expect = [
        ("grid", "exact"),
        ("between", "interpolated"),
        ("beyond", "extrapolated"),
        ("unknown-shape", "roofline"),
        (
            "far-beyond",
            "out-of-range: `gemm` m = 18446744073709551615",
        ),
        (
            "never-measured",
            "no-data: table `h100-sxm` has no `mla_decode` fp8 rows",
        ),
    ];
    assert_eq!(rows.len(), expect.len());
    for (row, (label, method)) in rows.iter().zip(expect) {
        let n = row.len();
        assert_eq!(&row[0], label);
        // Not memory probes: no L2 flag.
        assert_eq!(&row[n - 1], "", "{label}");
        assert!(row[n - 2].starts_with(method), "{label}: {}", &row[n - 2]);
        let time = &row[n - 3];
        if method.contains(':') {
            assert_eq!(time, "", "{label}");
        } else {
            let v: f64 = time.parse().unwrap();
            assert!(v > 0.0 && v.is_finite(), "{label}: {v}");
        }
    }
}

#[test]
fn query_command_fails_on_bad_files() {
    let missing = run(ComputeCommand::Query {
        table: "h100-sxm".into(),
        input: scratch("does-not-exist.csv"),
        out: scratch("o.csv"),
    })
    .unwrap_err();
    assert!(missing.message.contains("cannot read queries"), "{missing}");
    let input = scratch("no-op-column.csv");
    std::fs::write(&input, "m,n,k\n1,2,3\n").unwrap();
    let e = run(ComputeCommand::Query {
        table: "h100-sxm".into(),
        input,
        out: scratch("o2.csv"),
    })
    .unwrap_err();
    assert!(e.message.contains("`op`"), "{e}");
    let e = run(ComputeCommand::Query {
        table: "/nonexistent/table.csv".into(),
        input: scratch("queries.csv"),
        out: scratch("o3.csv"),
    })
    .unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.key.as_str()),
        ("<command line>", "--table"),
        "{e}"
    );
    assert!(
        e.message.contains("/nonexistent/table.csv") && e.message.contains("h100-sxm"),
        "{e}"
    );
}

// ---------------------------------------------------------------- layers

#[test]
fn layer_breakdowns_sum_and_use_the_table_where_it_has_the_shape() {
    for name in Model::embedded_names() {
        let m = Model::embedded(name).unwrap();
        for kernel in [AttentionKernel::Measured, AttentionKernel::FLASH_MLA] {
            let a = m.attention_side(h100(), 64, 8192, kernel).unwrap();
            let sum: f64 = a.ops.iter().map(|o| o.time_us).sum();
            assert_eq!(a.total_us(), sum);
            assert!(
                a.ops
                    .iter()
                    .all(|o| o.time_us.is_finite() && o.time_us > 0.0),
                "{name}"
            );
            assert!(
                a.glue_us() > 0.0 && a.table_us() > a.glue_us(),
                "{name}: {a:?}"
            );
            let f = m.ffn_side(h200(), 8, 32).unwrap();
            assert!(f.total_us() > 0.0);
            assert!(f.ops.iter().any(|o| o.name == "experts up+gate"));
        }
    }
}

/// Names of the attention-side operators of `model` at `ctx`.
fn op_names(model: &str, ctx: u64) -> Vec<&'static str> {
    let m = Model::embedded(model).unwrap();
    m.attention_side(h100(), 32, ctx, AttentionKernel::Measured)
        .unwrap()
        .ops
        .iter()
        .map(|o| o.name)
        .collect()
}

#[test]
fn sparse_attention_runs_the_indexer_only_beyond_topk() {
    assert!(op_names("deepseek-v3.2", 8192).contains(&"dsa indexer + topk"));
    assert!(!op_names("deepseek-v3.2", 2048).contains(&"dsa indexer + topk"));
    assert!(!op_names("deepseek-v3", 8192).contains(&"dsa indexer + topk"));
    // V3.2's MLA reads min(ctx, 2048): at 32K it costs what V3's costs at 2K.
    let core = |model: &str, ctx| {
        let m = Model::embedded(model).unwrap();
        let a = m
            .attention_side(h100(), 32, ctx, AttentionKernel::Measured)
            .unwrap();
        a.ops
            .iter()
            .find(|o| o.name == "mla decode")
            .unwrap()
            .time_us
    };
    assert_eq!(core("deepseek-v3.2", 32768), core("deepseek-v3", 2048));
}

#[test]
fn memory_floor_kernel_is_the_read_floor_over_efficiency() {
    let m = Model::embedded("deepseek-v3").unwrap();
    let (t, c) = (64u64, 8192u64);
    let a = m
        .attention_side(
            h100(),
            t,
            c,
            AttentionKernel::MemoryFloor { efficiency: 0.5 },
        )
        .unwrap();
    let core = a.ops.iter().find(|o| o.name == "mla decode").unwrap();
    let floor = h100().read_floor((t * c * 576) as f64).unwrap().time_us;
    assert_eq!(core.time_us, floor / 0.5);
    // The unfused measured kernel is several times slower than a FlashMLA-class one.
    let measured = m
        .attention_side(h100(), t, c, AttentionKernel::Measured)
        .unwrap();
    let mcore = measured
        .ops
        .iter()
        .find(|o| o.name == "mla decode")
        .unwrap();
    assert!(
        mcore.time_us > 3.0 * floor / 0.9,
        "{} vs {}",
        mcore.time_us,
        floor
    );
    assert!(matches!(mcore.source, Source::Table(Method::Exact)));
    let e = m.attention_side(
        h100(),
        t,
        c,
        AttentionKernel::MemoryFloor { efficiency: 0.0 },
    );
    assert!(e.is_err());
}

#[test]
fn h200_attention_is_faster_than_h100_for_memory_bound_decode() {
    let m = Model::embedded("qwen3-235b-a22b").unwrap();
    let a100 = m
        .attention_side(h100(), 128, 16384, AttentionKernel::Measured)
        .unwrap();
    let a200 = m
        .attention_side(h200(), 128, 16384, AttentionKernel::Measured)
        .unwrap();
    let r = a200.total_us() / a100.total_us();
    assert!(r > 0.6 && r < 0.95, "{r}");
}

#[test]
fn layer_inputs_out_of_range_are_errors() {
    let m = Model::embedded("deepseek-v3").unwrap();
    assert!(
        m.attention_side(h100(), 0, 100, AttentionKernel::Measured)
            .is_err()
    );
    assert!(
        m.attention_side(h100(), 1, 0, AttentionKernel::Measured)
            .is_err()
    );
    assert!(m.ffn_side(h100(), 0, 4).is_err());
    assert!(m.ffn_side(h100(), 300, 4).is_err());
}

#[test]
fn layer_command_prints_both_sides_with_model_name_or_file() {
    let cmd = |model: Option<&str>, file: Option<PathBuf>| ComputeCommand::Layer {
        model: model.map(String::from),
        model_file: file,
        table: "h200-sxm".into(),
        ffn_table: Some("h100-sxm".into()),
        tokens: 64,
        ctx: 4096,
        prefill_tokens: 0,
        prefill_prefix: 0,
        experts_per_gpu: Some(4),
        tokens_per_expert: None,
        kernel: KernelChoice::FlashMla,
        efficiency: 0.9,
        layer: None,
    };
    let s = run(cmd(Some("kimi-k2"), None)).unwrap();
    for needle in [
        "attention side, layer 1 (MoE), on h200-sxm",
        "ffn side: 4 experts x 2 tokens each, on h100-sxm",
        "total attention",
        "total ffn",
        "dense layers: 1 (attention GPUs, no dispatch)",
    ] {
        assert!(s.contains(needle), "missing `{needle}` in\n{s}");
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads/models/kimi-k2.toml");
    assert_eq!(run(cmd(None, Some(path))).unwrap(), s);
    let e = run(cmd(Some("llama"), None)).unwrap_err();
    assert!(e.message.contains("deepseek-v3.2"), "{e}");
}

// ---------------------------------------------------------------- accuracy

#[test]
fn leave_one_out_medians_meet_the_goal() {
    // Goal: median ≤ 3 %, p90 ≤ 10 % on in-between sizes. The median is met on both tables;
    // the p90 is not (11.0 % / 11.9 %, see docs/compute.md: kernel-regime jumps that no
    // interpolation from neighbours can see); `afdsim validate` reports it as a failing check.
    for t in [h100(), h200()] {
        let e = t
            .leave_one_out(None)
            .into_iter()
            .filter(|p| p.method == Method::Interpolated)
            .map(|p| p.abs_err_pct());
        let s = ErrorSummary::of(e).unwrap();
        assert!(s.count > 2000, "{s:?}");
        assert!(s.median_pct <= 3.0, "{}: {s:?}", t.name());
    }
}

#[test]
fn compute_validation_cases_pass_except_the_missed_accuracy_goals() {
    let checks = afdsim::validation::run(Some("compute-")).unwrap();
    assert!(checks.len() >= 10);
    for c in &checks {
        // The accuracy goals the tables miss: leave-one-out's p90, the tile model's median
        // and p90 on the skew rows, the shipped H200 table's p90 on the dense run of
        // 2026-12-04, and the assembled layers against whole layers timed on that GPU
        // (known gaps, docs/compute.md).
        let missed_goal = (c.metric.starts_with("p90") && c.case.starts_with("compute-loo"))
            || (c.case.starts_with("compute-skew-tiles") && c.metric.ends_with("tile model"))
            || (c.case == "compute-shipped-h200-vs-dense" && c.metric.starts_with("p90"))
            || c.case == "compute-layers-h200";
        assert!(c.simulated.is_finite(), "{c:?}");
        if !missed_goal {
            assert!(c.pass(), "{c:?}");
        }
    }
}

#[test]
fn a_table_fed_back_as_queries_comes_back_exact_with_its_times() {
    let output = scratch("fed-back.csv");
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads/compute/h200-sxm.csv");
    let report = run(ComputeCommand::Query {
        table: input.to_str().unwrap().into(),
        input,
        out: output.clone(),
    })
    .unwrap();
    assert!(
        report.contains("2288 queries") && report.contains("2288 exact"),
        "{report}"
    );
    let mut rdr = csv::Reader::from_path(&output).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (given, got) = (col("input_time_us"), col("time_us"));
    for r in rdr.records() {
        let r = r.unwrap();
        let (a, b): (f64, f64) = (r[given].parse().unwrap(), r[got].parse().unwrap());
        assert!((a - b).abs() < 5e-4, "{a} vs {b}");
    }
}

/// Context the attention of `layer` of `model` reads at `ctx` cached tokens.
fn check_attended(model: &str, layer: u64, ctx: u64, expected: u64) {
    let m = Model::embedded(model).unwrap();
    assert_eq!(
        m.attended_ctx(layer, ctx),
        expected,
        "{model} layer {layer}"
    );
}

#[test]
fn sliding_and_sparse_layers_read_less_context() {
    check_attended("gpt-oss-120b", 0, 8192, 128);
    check_attended("gpt-oss-120b", 1, 8192, 8192);
    check_attended("gpt-oss-120b", 2, 100, 100);
    check_attended("deepseek-v3.2", 5, 8192, 2048);
    check_attended("deepseek-v3", 5, 8192, 8192);
    check_attended("qwen3-235b-a22b", 0, 8192, 8192);
    // The breakdown uses it: gpt-oss's default layer is a full-attention one.
    let m = Model::embedded("gpt-oss-120b").unwrap();
    assert_eq!(m.first_full_moe_layer(), 1);
    let slide = m
        .attention_side_at(h100(), 0, 64, 32768, AttentionKernel::Measured)
        .unwrap();
    let full = m
        .attention_side_at(h100(), 1, 64, 32768, AttentionKernel::Measured)
        .unwrap();
    assert!(slide.total_us() < full.total_us() / 2.0);
}

/// The profiler's `kernel` column (the kernels a row ran, names with commas and quotes, CSV
/// quoted) loads beside the others and changes no prediction.
#[test]
fn a_kernel_column_loads_and_changes_nothing() {
    let rows = [
        "X,gemm,bf16,1,64,32,,,,,,,,3.5,,,10,graph",
        "X,gemm,bf16,8,64,32,,,,,,,,4.5,,,10,graph",
    ];
    let kernels = [
        "\"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64_cluster1x1x1 ; void at::native::f<float, 4>(int, \"\"x\"\")\"",
        "\"cutlass::Kernel2<cutlass_80_tensorop_s16816gemm_relu_bf16_64x64_64x4_tn_align8>\"",
    ];
    let plain = format!("{HEADER}{}\n{}\n", rows[0], rows[1]);
    let with = format!(
        "{},kernel\n{},{}\n{},{}\n",
        HEADER.trim_end(),
        rows[0],
        kernels[0],
        rows[1],
        kernels[1]
    );
    let a = ComputeTable::parse("t", "t.csv", &plain).unwrap();
    let b = ComputeTable::parse("t", "t.csv", &with).unwrap();
    let q = OpQuery::gemm(Dtype::Bf16, 4, 64, 32);
    assert_eq!(
        a.predict(&q).unwrap().time_us,
        b.predict(&q).unwrap().time_us
    );
    assert_eq!(b.rows().len(), 2);
}

/// Grouped GEMM rows measured by PyTorch's CUTLASS grouped kernels on an SM90 GPU (`impl`
/// names `grouped_mm`, `device` an H100) interpolate in the kernel's padded rows: 192 rows per
/// group run as 256. The same rows from an unknown stack keep the op's scheme, which puts 192
/// between 128's and 256's times.
#[test]
fn grouped_gemm_rows_of_a_known_stack_interpolate_in_padded_rows() {
    let table = |device: &str, impl_: &str| {
        let rows: String = [(128, 13.9), (256, 26.6), (512, 27.0), (1024, 27.5)]
            .iter()
            .map(|(m, t)| {
                format!("{device},grouped_gemm,bf16,{m},1536,2048,1,,,,,,,{t},,,10,{impl_}\n")
            })
            .collect();
        ComputeTable::parse("t", "t.csv", &format!("{HEADER}{rows}")).unwrap()
    };
    let q = OpQuery::grouped_gemm(Dtype::Bf16, 1, 192, 1536, 2048);
    let known = table("NVIDIA H100 80GB HBM3", "graph/grouped_mm/dsv3.expert");
    assert_eq!(known.predict(&q).unwrap().time_us, 26.6);
    assert_eq!(known.predict(&q).unwrap().method, Method::Interpolated);
    for (device, impl_) in [
        ("NVIDIA H100 80GB HBM3", "graph/loop_mm/dsv3.expert"),
        ("NVIDIA B200", "graph/grouped_mm/dsv3.expert"),
    ] {
        let t = table(device, impl_).predict(&q).unwrap().time_us;
        assert!(t > 13.9 && t < 26.6, "{device} {impl_}: {t}");
    }
}

// ---------------------------------------------------------------- uneven loads (issue 16)

const LOADS_HEADER: &str = "device,op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max,time_us,tflops,gbps,reps,impl,loads\n";

#[test]
fn a_loads_cell_must_agree_with_its_row() {
    let table = |row: &str| ComputeTable::parse("t", "t.csv", &format!("{LOADS_HEADER}{row}\n"));
    let skew = "X,grouped_gemm_skew,bf16,3,64,32,4,,,,,,6,7.0,,,10,g";
    // 4 experts, 12 tokens (mean 3), the busiest 6: loads as written.
    let t = table(&format!("{skew},1;6;0;5")).unwrap();
    assert_eq!(t.rows()[0].loads, vec![1, 6, 0, 5]);
    for (cell, fragment) in [
        ("1;6;5", "3 counts"),
        ("5;6;0;5", "do not match"),
        ("1;5;1;5", "largest of 5"),
        ("1;six;0;5", "not `;`-separated whole token counts"),
    ] {
        let e = table(&format!("{skew},{cell}")).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.key.as_str()),
            ("t.csv", "line 2"),
            "{e}"
        );
        assert!(e.message.contains(fragment), "{cell}: {e}");
    }
    let e = table("X,gemm,bf16,1,64,32,,,,,,,,3.5,,,10,g,1;2").unwrap_err();
    assert!(
        e.message.contains("only for `grouped_gemm_skew` rows"),
        "{e}"
    );
}

/// A bf16 grouped GEMM family (n = 4096, k = 7168, 8 experts) as PyTorch's SM90 grouped
/// kernel measured it on an H100 (or on an unknown GPU), at the means 128 to 1024.
fn grouped_family(device: &str) -> ComputeTable {
    let rows: String = [(128, 180.0), (256, 203.0), (512, 346.0), (1024, 725.0)]
        .iter()
        .map(|(m, t)| {
            format!(
                "{device},grouped_gemm,bf16,{m},4096,7168,8,,,,,,,{t},,,10,graph/grouped_mm/x\n"
            )
        })
        .collect();
    ComputeTable::parse("t", "t.csv", &format!("{HEADER}{rows}")).unwrap()
}

#[test]
fn uneven_loads_cost_their_padded_tiles() {
    let t = grouped_family("NVIDIA H100 80GB HBM3");
    let ratio = |m, loads: &[u64]| {
        t.tile_work_ratio(Dtype::Bf16, 4096, 7168, m, loads)
            .unwrap()
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    // Mean 512 runs the large configuration: rows padded to 256 per expert. 4,096 tokens as
    // 1024, 1000, 500 x 3, 300, 200, 72 take 1024 + 1024 + 512 x 4 + 256 x 2 = 4,608 rows,
    // 9/8 of the balanced 4,096 (both over many waves: 4,608 / 128 x 16 tiles / 132 SMs).
    let loads = [1024, 1000, 500, 500, 500, 300, 200, 72];
    close(ratio(512, &loads), 4608.0 / 4096.0);
    // Not the busiest expert's kernel: far below the balanced kernel at m_max (725 us).
    let q = OpQuery::grouped_gemm(Dtype::Bf16, 8, 512, 4096, 7168);
    close(t.predict(&q).unwrap().time_us * ratio(512, &loads), 389.25);
    // An expert without tokens takes no tile; balanced loads cost the balanced kernel.
    close(ratio(512, &[1024, 1024, 1024, 1024, 0, 0, 0, 0]), 1.0);
    close(ratio(512, &[512; 8]), 1.0);
    // Mean 128 runs the small configuration (rows padded to 128): 200 rows take 256.
    close(
        ratio(128, &[200, 56, 128, 128, 128, 128, 128, 128]),
        9.0 / 8.0,
    );
    // Under one wave the grid has idle SMs: more tiles cost nothing until it fills (one
    // expert of 128 rows, small configuration: 2 x 32 = 64 tiles; 256 rows: 128 tiles).
    close(ratio(128, &[256]), 1.0);
    // Other stacks have no tile rules.
    let other = grouped_family("NVIDIA B200");
    assert_eq!(
        other.tile_work_ratio(Dtype::Bf16, 4096, 7168, 512, &loads),
        None
    );
}

#[test]
fn a_skew_query_without_skew_rows_takes_the_least_uneven_loads() {
    // 8 experts, mean 512, busiest 1024: the others share 3,072 tokens (439 x 6, 438), all
    // padded to 512 rows: 1024 + 7 x 512 = 4,608 rows, 9/8 of the balanced kernel.
    let q = OpQuery::grouped_gemm_skew(8, 512, 1024, 4096, 7168);
    let p = grouped_family("NVIDIA H100 80GB HBM3").predict(&q).unwrap();
    assert!((p.time_us - 346.0 * 1.125).abs() < 1e-9, "{}", p.time_us);
    assert_eq!(p.method, Method::Extrapolated);
    // Without tile rules: bounded by the busiest expert's balanced kernel.
    let p = grouped_family("NVIDIA B200").predict(&q).unwrap();
    assert_eq!((p.time_us, p.method), (725.0, Method::Extrapolated));
}

/// A memory probe whose bytes fit the L2 measures the cache: flagged, and kept out of the
/// roofline's bandwidths (issue 16). The 8 MiB copy (16 MiB moved) runs at 4,833 GB/s as in
/// the H100 table; the 64 and 256 MiB ones at 3,000 GB/s.
#[test]
fn l2_resident_probes_are_flagged_and_set_no_bandwidth() {
    let table = |device: &str| {
        let rows: String = [(8u64, 3.472), (64, 44.739), (256, 178.957)]
            .iter()
            .map(|(mib, t)| {
                format!(
                    "{device},hbm_copy,bf16,,,{},,,,,,,,{t},,,10,copy_\n",
                    mib << 20
                )
            })
            .collect();
        ComputeTable::parse("t", "t.csv", &format!("{HEADER}{rows}")).unwrap()
    };
    let copy = |mib: u64| {
        let mut q = OpQuery::gemm(Dtype::Bf16, 0, 0, mib << 20);
        q.op = Op::HbmCopy;
        q
    };
    let h100 = table("NVIDIA H100 80GB HBM3");
    assert_eq!(h100.l2_resident(&copy(8)), Some(true));
    assert_eq!(h100.l2_resident(&copy(64)), Some(false));
    assert_eq!(
        h100.l2_resident(&OpQuery::gemm(Dtype::Bf16, 8, 64, 64)),
        None
    );
    let rate = |mib: u64, us: f64| 2.0 * (mib << 20) as f64 / us;
    let hbm = rate(64, 44.739).max(rate(256, 178.957));
    let r = h100.roofline();
    assert_eq!(r.hbm_bytes_per_us, hbm);
    let fit = r.get(Op::HbmCopy, Dtype::Bf16).unwrap();
    assert!(fit.bytes_per_us <= hbm, "{} > {hbm}", fit.bytes_per_us);
    assert_eq!(fit.rows, 2);
    // A GPU whose L2 is not known: nothing flagged, copies from 64 MiB set the bandwidth.
    let other = table("Some GPU");
    assert_eq!(other.l2_resident(&copy(8)), None);
    assert_eq!(other.roofline().hbm_bytes_per_us, hbm);
}
