//! Bad input to the compute commands and the bound on extrapolation (issue 13): a malformed
//! query file is an error naming the file, line and column; a well-formed row the table cannot
//! answer is marked; sizes beyond the tables' range are refused everywhere prediction is used;
//! a compute table is named by where it was given; each `compute layer` flag names itself.

use std::path::PathBuf;

use afdsim::compute::command::{ComputeCommand, KernelChoice, run_command};
use afdsim::compute::{
    AttentionKernel, CausalPrefill, ComputeTable, Dtype, Model, Op, OpQuery, QueryError,
    RANGE_FACTOR,
};
use afdsim::error::InputError;
use rstest::{Context, rstest};

mod common;
use common::{afdsim, h100, stderr, stdout, tables, temp_file};

const COLUMNS: &str = "op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max";

fn run(cmd: ComputeCommand) -> Result<String, InputError> {
    let mut out = Vec::new();
    run_command(&cmd, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn query(name: &str, text: &str) -> (Result<String, InputError>, PathBuf) {
    let input = temp_file("compute-input", &format!("{name}.csv"), text);
    let output = input.with_extension("out.csv");
    let r = run(ComputeCommand::Query {
        table: "h100-sxm".into(),
        input: input.clone(),
        out: output.clone(),
    });
    (r, output)
}

/// A query file whose row 2 is `row` fails naming the file, `line 2, column `col``, and
/// `fragment`; no output is written.
fn check_bad_row(name: &str, row: &str, col: &str, fragment: &str) {
    let (r, output) = query(name, &format!("{COLUMNS}\n{row}\n"));
    let e = r.expect_err(row);
    assert!(e.file.ends_with(&format!("{name}.csv")), "{e}");
    assert_eq!(e.key, format!("line 2, column `{col}`"), "{row}: {e}");
    assert!(e.message.contains(fragment), "{row}: {e}");
    assert!(!output.exists(), "{row}: output written");
}

#[rstest]
#[case::text("gemm,bf16,abc,7168,2048,,,,,,,", "m", "not a whole number")]
#[case::negative("gemm,bf16,-3,7168,2048,,,,,,,", "m", "negative")]
#[case::zero("gemm,bf16,0,7168,2048,,,,,,,", "m", "needs column `m` ≥ 1")]
#[case::empty("gemm,bf16,64,,2048,,,,,,,", "n", "needs column `n` ≥ 1")]
#[case::fraction("gemm,bf16,1.5,7168,2048,,,,,,,", "m", "not a whole number")]
#[case::huge("gemm,bf16,1e30,7168,2048,,,,,,,", "m", "beyond the largest size")]
#[case::overflow(
    "gemm,bf16,18446744073709551616,7168,2048,,,,,,,",
    "m",
    "beyond the largest size"
)]
#[case::op("softmax,bf16,1,2,3,,,,,,,", "op", "unknown op `softmax`")]
#[case::dtype("gemm,int4,1,2,3,,,,,,,", "dtype", "unknown dtype `int4`")]
#[case::mxfp4(
    "mla_decode,mxfp4,,,,,4,512,128,1,576,",
    "dtype",
    "mxfp4 applies to gemm and grouped_gemm only"
)]
#[case::skew(
    "grouped_gemm_skew,bf16,64,7168,2048,8,,,,,,10",
    "m_max",
    "below the mean"
)]
fn malformed_query_rows_are_errors_naming_line_and_column(
    #[context] ctx: Context,
    #[case] row: &str,
    #[case] col: &str,
    #[case] fragment: &str,
) {
    check_bad_row(ctx.description.unwrap(), row, col, fragment);
}

#[test]
fn query_files_missing_a_column_or_fields_are_errors() {
    // The header lacks `dtype`.
    let (r, output) = query(
        "no-dtype",
        "op,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max\ngemm,64,7168,2048,,,,,,,\n",
    );
    let e = r.unwrap_err();
    assert_eq!(e.key, "line 1", "{e}");
    assert!(e.message.contains("lacks the `dtype` column"), "{e}");
    assert!(!output.exists());
    // Too few fields (a good row first: nothing is written even so).
    let (r, output) = query(
        "short",
        &format!("{COLUMNS}\ngemm,bf16,64,7168,2048,,,,,,,\ngemm,bf16\n"),
    );
    let e = r.unwrap_err();
    assert_eq!(e.key, "line 3", "{e}");
    assert!(e.message.contains("2 fields, but the header has 12"), "{e}");
    assert!(!output.exists());
    // Too many.
    let (r, _) = query(
        "long",
        &format!("{COLUMNS}\ngemm,bf16,64,7168,2048,,,,,,,,extra\n"),
    );
    assert!(r.unwrap_err().message.contains("13 fields"));
}

/// `afdsim compute query --table h100-sxm --in IN --out OUT`.
fn query_cli(input: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    afdsim(&[
        "compute",
        "query",
        "--table",
        "h100-sxm",
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn query_cli_exits_2_on_a_malformed_file_and_0_on_unanswerable_rows() {
    let bad = temp_file(
        "compute-input",
        "cli-bad.csv",
        &format!("{COLUMNS}\ngemm,bf16,-3,7168,2048,,,,,,,\n"),
    );
    let out = bad.with_extension("out.csv");
    let o = query_cli(&bad, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cli-bad.csv: line 2, column `m`: `-3` is negative"),
        "{err}"
    );
    let good = temp_file(
        "compute-input",
        "cli-good.csv",
        &format!("{COLUMNS}\ngemm,bf16,18446744073709551615,7168,2048,,,,,,,\n"),
    );
    let o = query_cli(&good, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 out of range"), "{}", stdout(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains(",,\"out-of-range: `gemm` m = 18446744073709551615"),
        "{text}"
    );
}

// ---------------------------------------------------------------- range

#[test]
fn sizes_beyond_the_range_factor_are_refused_and_within_it_answered() {
    for t in tables() {
        // The tables' largest gemm m is 8192.
        let limit = t.size_limit(Op::Gemm, afdsim::compute::Field::M).unwrap();
        assert_eq!(limit, 8192 * RANGE_FACTOR);
        let at = t
            .predict(&OpQuery::gemm(Dtype::Fp8, limit, 7168, 2048))
            .unwrap();
        assert!(at.time_us.is_finite() && at.time_us > 0.0);
        for m in [limit + 1, 1 << 32, u64::MAX] {
            let e = t
                .predict(&OpQuery::gemm(Dtype::Fp8, m, 7168, 2048))
                .unwrap_err();
            assert_eq!(
                e,
                QueryError::OutOfRange {
                    table: t.name().into(),
                    op: "gemm",
                    field: "m",
                    value: m,
                    measured: 8192,
                    limit,
                }
            );
        }
        // A shape size (n) and an attention context, through the roofline and the grid.
        assert!(matches!(
            t.predict(&OpQuery::gemm(Dtype::Bf16, 64, u64::MAX / 2, 2048)),
            Err(QueryError::OutOfRange { field: "n", .. })
        ));
        assert!(matches!(
            t.predict(&OpQuery::attention(Op::MlaDecode, 64, 1 << 40, 128, 1, 576)),
            Err(QueryError::OutOfRange { field: "ctx", .. })
        ));
        // The memory floor: bytes beyond RANGE_FACTOR x the largest hbm_read.
        assert!(t.read_floor(1e9).is_ok());
        assert!(matches!(
            t.read_floor(1e15),
            Err(QueryError::OutOfRange { field: "bytes", .. })
        ));
    }
}

#[test]
fn prefill_chunks_stop_at_the_range_but_cover_servings_largest_corner() {
    // Serving's prefix corners are 4x apart (…, 65536, 262144): an `agentic-coding` prompt
    // (up to 128 Ki tokens) in 8192-token chunks is timed at prefix 262144 (docs/compute.md,
    // "Range"). Every model answers it; a chunk ending past RANGE_FACTOR x 16384 does not.
    for name in Model::embedded_names() {
        let m = Model::embedded(name).unwrap();
        let layer = m.first_full_moe_layer();
        for kernel in [AttentionKernel::FLASH_MLA, AttentionKernel::Measured] {
            let ok = m.attention_side_mixed(h100(), layer, 0, 1, 8192, 262_144, kernel);
            assert!(ok.is_ok(), "{name}: {:?}", ok.err());
            let e = m
                .attention_side_mixed(h100(), layer, 0, 1, 8192, 16_384 * RANGE_FACTOR, kernel)
                .unwrap_err();
            assert!(matches!(e, QueryError::OutOfRange { .. }), "{name}: {e}");
        }
    }
    let c = CausalPrefill::new(Op::MlaPrefill, 128, 128, 192, u64::MAX - 10, 10).unwrap();
    assert!(matches!(
        c.time(h100()),
        Err(QueryError::OutOfRange { field: "ctx", .. })
    ));
}

#[test]
fn a_scenario_whose_sizes_leave_the_range_is_a_query_error_not_a_time() {
    // The AFD pipeline predicts through the same tables: a context of 2^40 is refused.
    let m = Model::embedded("deepseek-v3.2").unwrap();
    for kernel in [AttentionKernel::FLASH_MLA, AttentionKernel::Measured] {
        let e = m.attention_side(h100(), 64, 1 << 40, kernel).unwrap_err();
        assert!(matches!(e, QueryError::OutOfRange { .. }), "{e}");
    }
    let e = m.ffn_side(h100(), 8, u64::MAX).unwrap_err();
    assert!(
        matches!(
            e,
            QueryError::OutOfRange {
                op: "grouped_gemm",
                field: "m",
                ..
            }
        ),
        "{e}"
    );
}

// ---------------------------------------------------------------- layer flags

/// The flags of a `compute layer` run besides --tokens and --ctx.
#[derive(Default)]
struct Opts {
    ffn_table: Option<String>,
    prefill_tokens: u64,
    prefill_prefix: u64,
    experts_per_gpu: Option<u64>,
    tokens_per_expert: Option<u64>,
    layer: Option<u64>,
}

fn layer_with(tokens: u64, ctx: u64, o: Opts) -> ComputeCommand {
    ComputeCommand::Layer {
        model: Some("deepseek-v3".into()),
        model_file: None,
        table: "h100-sxm".into(),
        ffn_table: o.ffn_table,
        tokens,
        ctx,
        prefill_tokens: o.prefill_tokens,
        prefill_prefix: o.prefill_prefix,
        experts_per_gpu: o.experts_per_gpu,
        tokens_per_expert: o.tokens_per_expert,
        kernel: KernelChoice::FlashMla,
        efficiency: 0.9,
        layer: o.layer,
    }
}

fn layer(tokens: u64, ctx: u64) -> ComputeCommand {
    layer_with(tokens, ctx, Opts::default())
}

fn layer_err(cmd: ComputeCommand) -> InputError {
    let e = run(cmd).unwrap_err();
    assert_eq!(e.file, "<command line>", "{e}");
    e
}

#[test]
fn layer_sizes_beyond_the_range_name_their_flag_and_its_maximum() {
    let e = layer_err(layer(4_294_967_295, 4_294_967_295));
    assert_eq!(e.key, "--tokens", "{e}");
    assert!(
        e.message.contains(&(8192 * RANGE_FACTOR).to_string()),
        "{e}"
    );
    // Tokens alone: the largest that assembles, found by bisection, is the measured kernel's
    // batch limit or the gemm's m limit, whichever binds first.
    let e = layer_err(layer(1_000_000, 4096));
    assert_eq!(e.key, "--tokens", "{e}");
    let max: u64 = e
        .message
        .split("at most ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no maximum in {e}"));
    assert!(run(layer(max, 4096)).is_ok());
    assert!(run(layer(max + 1, 4096)).is_err());
    let e = layer_err(layer(64, 4_294_967_295));
    assert_eq!(e.key, "--ctx", "{e}");
    assert!(e.message.contains("at most"), "{e}");
    let e = layer_err(layer_with(
        64,
        4096,
        Opts {
            tokens_per_expert: Some(99_999_999),
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--tokens-per-expert", "{e}");
    assert!(
        e.message
            .contains(&format!("at most {}", 4096 * RANGE_FACTOR)),
        "{e}"
    );
}

#[test]
fn each_layer_flag_names_itself() {
    let e = layer_err(layer(8, 0));
    assert_eq!(e.key, "--ctx", "{e}");
    assert!(e.message.contains("≥ 1"), "{e}");
    let e = layer_err(layer_with(
        8,
        100,
        Opts {
            layer: Some(999),
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--layer", "{e}");
    assert!(e.message.contains("0..=60"), "{e}");
    let e = layer_err(layer(0, 100));
    assert_eq!(e.key, "--tokens", "{e}");
    let e = layer_err(layer_with(
        8,
        100,
        Opts {
            experts_per_gpu: Some(0),
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--experts-per-gpu", "{e}");
    assert!(e.message.contains("1..=256"), "{e}");
    let e = layer_err(layer_with(
        8,
        100,
        Opts {
            tokens_per_expert: Some(0),
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--tokens-per-expert", "{e}");
    let e = layer_err(layer_with(
        8,
        100,
        Opts {
            prefill_tokens: 10,
            prefill_prefix: u64::MAX,
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--prefill-prefix", "{e}");
}

#[test]
fn layer_kernel_takes_the_scenario_words_and_floor_as_an_alias() {
    let out = |k: &str| {
        let o = afdsim(&[
            "compute",
            "layer",
            "--model",
            "deepseek-v3",
            "--tokens",
            "8",
            "--ctx",
            "100",
            "--kernel",
            k,
        ]);
        assert_eq!(o.status.code(), Some(0), "{k}: {}", stderr(&o));
        stdout(&o)
    };
    let flash = out("flash-mla");
    assert_eq!(out("floor"), flash);
    assert_eq!(
        run(layer(8, 100)).unwrap(),
        flash,
        "flash-mla is the default"
    );
    assert_ne!(out("measured"), flash);
    let o = afdsim(&[
        "compute",
        "layer",
        "--model",
        "deepseek-v3",
        "--tokens",
        "8",
        "--ctx",
        "100",
        "--kernel",
        "bogus",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("flash-mla, measured"), "{}", stderr(&o));
}

// ---------------------------------------------------------------- table names

#[test]
fn an_unknown_table_is_named_where_it_was_given() {
    let e = run(ComputeCommand::Query {
        table: "a100".into(),
        input: PathBuf::from("unused.csv"),
        out: PathBuf::from("unused.out.csv"),
    })
    .unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.key.as_str()),
        ("<command line>", "--table")
    );
    assert!(
        e.message.contains("`a100`") && e.message.contains("h100-sxm, h200-sxm"),
        "{e}"
    );
    let e = layer_err(layer_with(
        8,
        100,
        Opts {
            ffn_table: Some("b200".into()),
            ..Opts::default()
        },
    ));
    assert_eq!(e.key, "--ffn-table", "{e}");
    let e = ComputeTable::by_name_or_path_from("garbage.toml", "s.toml", "afd.table").unwrap_err();
    assert_eq!((e.file.as_str(), e.key.as_str()), ("s.toml", "afd.table"));
    assert!(
        e.message.contains("garbage.toml") && e.message.contains("h100-sxm"),
        "{e}"
    );
    // From a scenario: the scenario file, its key and the name given; never `<embedded default>`.
    let text = afdsim::config::DEFAULT_SCENARIO
        .replace("table = \"h100-sxm\"", "table = \"garbage.toml\"");
    assert_ne!(text, afdsim::config::DEFAULT_SCENARIO);
    let e = afdsim::config::Scenario::parse(&text, "my-scenario.toml", None)
        .expect_err("an unknown table is refused");
    let shown = e.to_string();
    assert!(
        shown.starts_with("my-scenario.toml: afd.table: "),
        "{shown}"
    );
    assert!(
        shown.contains("garbage.toml") && shown.contains("h100-sxm, h200-sxm"),
        "{shown}"
    );
    assert!(!shown.contains("<embedded default>"), "{shown}");
}
