//! Bad scenario input blames the right thing: each error names the file that
//! holds the key, the key, and what is allowed; exit status 2, one line, no panic.

mod common;

use common::{afdsim, stderr, stdout, temp_file};
use rstest::{Context, rstest};
use std::path::{Path, PathBuf};

const SUITE: &str = "config-errors";

/// Writes `text` as `name` in this suite's temp folder, runs it, and expects exit status 2
/// with one line `error: <file>: <key>: ...` whose message holds every one of `words`.
/// `file` is the path the message must name (`None`: the scenario itself).
fn expect_error(name: &str, text: &str, file: Option<&Path>, key: &str, words: &[&str]) {
    let p = temp_file(SUITE, name, text);
    expect_error_at(&p, file.unwrap_or(&p), key, words);
}

/// Runs the scenario at `scenario` and expects the error of [`expect_error`] in `file`.
fn expect_error_at(scenario: &Path, file: &Path, key: &str, words: &[&str]) {
    let o = afdsim(&["run", scenario.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}: {e}", scenario.display());
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    let head = format!("error: {}: {key}: ", file.display());
    assert!(e.starts_with(&head), "expected `{head}...`, got: {e}");
    for w in words {
        assert!(e.contains(w), "`{w}` not in: {e}");
    }
}

/// A small star fabric with one all-to-all (resolves in microseconds).
const STAR: &str = r#"name = "t"
[fabric]
nodes = 4
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 100
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 100
[[traffic]]
pattern = "all-to-all"
bytes = 4096
"#;

/// An embedded fabric with an override table.
const HGX: &str = r#"name = "t"
[fabric]
file = "hgx-h100"
nodes = 2
[fabric.switch]
latency_ns = 300
[[traffic]]
pattern = "all-to-all"
bytes = 4096
"#;

// Item 1: a cross-key fabric error is blamed on the file that set the key that triggers it.

#[test]
fn lossy_mode_set_by_the_scenario_blames_the_scenario() {
    expect_error(
        "lossy.toml",
        &HGX.replace("latency_ns = 300", "latency_ns = 300\nmode = \"lossy\""),
        None,
        "fabric.switch.mode",
        &["lossy", "buffer_kib"],
    );
    // A lossy fabric file without a buffer is that file's fault, whoever includes it.
    let fabric = temp_file(
        SUITE,
        "lossy-fabric.toml",
        "nodes = 4\ngpus_per_node = 1\n[nic]\nrate_gbps = 400\nlatency_ns = 100\n\
         [scale_out]\ntopology = \"single-switch\"\n[switch]\nmode = \"lossy\"\n",
    );
    expect_error(
        "uses-lossy-fabric.toml",
        "name = \"t\"\n[fabric]\nfile = \"lossy-fabric.toml\"\n[[traffic]]\npattern = \"all-to-all\"\nbytes = 4096\n",
        Some(&fabric),
        "fabric.switch.mode",
        &["buffer_kib"],
    );
}

#[test]
fn half_a_pfc_or_ecn_pair_blames_the_half_that_was_set() {
    expect_error(
        "pfc-half.toml",
        &HGX.replace("latency_ns = 300", "latency_ns = 300\npfc_xoff_kib = 10"),
        None,
        "fabric.switch.pfc_xoff_kib",
        &["pfc_xon_kib"],
    );
    expect_error(
        "ecn-half.toml",
        &HGX.replace("latency_ns = 300", "latency_ns = 300\necn_kmin_kib = 10"),
        None,
        "fabric.switch.ecn_kmin_kib",
        &["ecn_kmax_kib"],
    );
    expect_error(
        "buffer-no-pfc.toml",
        &HGX.replace("latency_ns = 300", "latency_ns = 300\nbuffer_kib = 512"),
        None,
        "fabric.switch.buffer_kib",
        &["pfc_xoff_kib"],
    );
}

// Items 2 and 7: model files are found next to the scenario, and a readable model file
// with bad content reports its own error.

/// An AFD step of four layers on 3 HGX H100 servers, its model `model`.
fn afd_scenario(model: &str, extra: &str) -> String {
    format!(
        "name = \"t\"\nlevel = \"flow\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 3\n[afd]\n\
         model = \"{model}\"\nattention_gpus = 8\nffn_gpus = 16\nbatch_per_attention_gpu = 8\n\
         context = 1024\nlayers = 4\n{extra}"
    )
}

fn model_text() -> String {
    std::fs::read_to_string("workloads/models/deepseek-v3.2.toml").unwrap()
}

/// A scenario and a model file in a folder of their own, named relative to each other.
fn in_own_dir(dir: &str, files: &[(&str, &str)]) -> Vec<PathBuf> {
    let d = std::env::temp_dir().join(format!("afdsim-{SUITE}-{}-{dir}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    files
        .iter()
        .map(|(n, t)| {
            let p = d.join(n);
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect()
}

#[test]
fn a_model_file_resolves_against_the_scenario_folder() {
    let p = in_own_dir(
        "model-ok",
        &[
            ("my-model.toml", &model_text()),
            ("s.toml", &afd_scenario("my-model.toml", "")),
        ],
    );
    // The test runs in the crate root: only the scenario's folder holds my-model.toml.
    assert!(!Path::new("my-model.toml").exists());
    let o = afdsim(&["run", "--json", p[1].to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["metrics"]["tpot_ms"].as_f64().unwrap() > 0.0);
    // The same through a path with a folder, relative to the scenario.
    let p = in_own_dir(
        "model-sub",
        &[("s.toml", &afd_scenario("models/m.toml", ""))],
    );
    let sub = p[0].parent().unwrap().join("models");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("m.toml"), model_text()).unwrap();
    let o = afdsim(&["run", p[0].to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The model file edited by `edit` names itself, the key `key` and every one of `words`.
#[rstest]
#[case::empty(|_: &str| String::new(), "", &["missing field `name`"])]
#[case::type_(
    |good: &str| good.replacen("hidden = ", "hidden = \"big\"\n#", 1),
    "hidden",
    &["invalid type", "line"]
)]
#[case::unknown(
    |good: &str| format!("bogus_key = 1\n{good}"),
    "",
    &["unknown field `bogus_key`"]
)]
#[case::syntax(|good: &str| format!("name = \n{good}"), "name (line 1)", &["quoted"])]
fn a_bad_model_file_reports_its_own_error(
    #[context] ctx: Context,
    #[case] edit: fn(&str) -> String,
    #[case] key: &str,
    #[case] words: &[&str],
) {
    let what = ctx.description.unwrap().trim_end_matches('_');
    let text = edit(&model_text());
    let p = in_own_dir(
        &format!("model-{what}"),
        &[
            ("bad-model.toml", &text),
            ("s.toml", &afd_scenario("bad-model.toml", "")),
        ],
    );
    let o = afdsim(&["run", p[1].to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{what}: {e}");
    assert!(
        e.starts_with(&format!("error: {}: {key}", p[0].display())),
        "{what}: the model file and `{key}` not named: {e}"
    );
    assert!(!e.contains("neither"), "{what}: {e}");
    for w in words {
        assert!(e.contains(w), "{what}: `{w}` not in {e}");
    }
}

#[test]
fn a_model_name_neither_embedded_nor_a_file_is_the_scenarios_key() {
    // A name that is neither embedded nor a file next to the scenario: the scenario's key.
    expect_error(
        "no-model.toml",
        &afd_scenario("no-such-model.toml", ""),
        None,
        "afd.model",
        &[
            "neither an embedded model",
            "deepseek-v3.2",
            "no-such-model.toml",
        ],
    );
}

// Item 9 (and 7 for tables): a compute table is found next to the scenario; an unknown
// name is the scenario's error.

#[test]
fn a_compute_table_resolves_against_the_scenario_folder_and_bad_names_are_the_scenarios() {
    let csv = std::fs::read_to_string("workloads/compute/h100-sxm.csv").unwrap();
    let p = in_own_dir(
        "table-ok",
        &[
            ("t.csv", &csv),
            (
                "s.toml",
                &afd_scenario("deepseek-v3.2", "table = \"t.csv\"\n"),
            ),
        ],
    );
    assert!(!Path::new("t.csv").exists());
    let o = afdsim(&["run", p[1].to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    expect_error(
        "garbage-table.toml",
        &afd_scenario("deepseek-v3.2", "table = \"garbage.toml\"\n"),
        None,
        "afd.table",
        &["h100-sxm", "garbage.toml"],
    );
    expect_error(
        "missing-csv.toml",
        &afd_scenario("deepseek-v3.2", "ffn_table = \"missing.csv\"\n"),
        None,
        "afd.ffn_table",
        &["missing.csv"],
    );
    // A readable CSV with bad content names itself.
    let p = in_own_dir(
        "table-bad",
        &[
            ("bad.csv", "op,nonsense\n1,2\n"),
            (
                "s.toml",
                &afd_scenario("deepseek-v3.2", "table = \"bad.csv\"\n"),
            ),
        ],
    );
    let o = afdsim(&["run", p[1].to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.starts_with(&format!("error: {}: line 1: ", p[0].display())),
        "{e}"
    );
}

// Item 3: a traffic name in a scenario is the scenario's key.

/// A serving scenario on 8 HGX H100 servers (64 GPUs): a decode pool of 16 attention and
/// 32 FFN GPUs.
fn serving(traffic: &str, extra: &str) -> String {
    format!(
        "name = \"t\"\nlevel = \"flow\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 8\n[serving]\n\
         traffic = \"{traffic}\"\nrequests = 10\n{extra}\n[serving.decode]\nmode = \"afd\"\n\
         model = \"deepseek-v3.2\"\nattention_gpus = 16\nffn_gpus = 32\n"
    )
}

/// Requests that would arrive past the simulator's clock are an error naming the count,
/// not arrival times clipped to the clock's end.
#[test]
fn requests_arriving_past_the_clock_are_the_scenarios_key() {
    // 10 requests at one a million seconds: the last after about 100 days.
    expect_error(
        "late.toml",
        &serving("chat", "rate = 0.000001"),
        None,
        "serving.requests",
        &["10 requests", "at most 40 days", "serving.rate"],
    );
}

#[test]
fn an_unknown_traffic_name_is_the_scenarios_key() {
    expect_error(
        "gossip.toml",
        &serving("gossip", ""),
        None,
        "serving.traffic",
        &["gossip", "chat"],
    );
    // A traffic file next to the scenario with bad content names itself.
    let p = in_own_dir(
        "traffic-bad",
        &[
            (
                "tr.toml",
                "name = \"x\"\narrival = \"poisson\"\nrate = -1.0\n",
            ),
            ("s.toml", &serving("tr.toml", "")),
        ],
    );
    let o = afdsim(&["run", p[1].to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.starts_with(&format!("error: {}: ", p[0].display())),
        "{e}"
    );
}

#[test]
fn an_inline_traffic_table_blames_its_trace_file_for_the_traces_errors() {
    let p = in_own_dir(
        "inline-trace",
        &[
            ("t.jsonl", "{\"arrival_s\": 0.0, \"input\": 0, \"output\": 3}\n"),
            (
                "s.toml",
                &serving("x", "")
                    .replace(
                        "traffic = \"x\"\n",
                        "",
                    )
                    .replace(
                        "[serving.decode]",
                        "[serving.traffic]\nname = \"r\"\narrival = \"trace\"\ntrace = \"t.jsonl\"\n[serving.decode]",
                    ),
            ),
        ],
    );
    let o = afdsim(&["run", p[1].to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.starts_with(&format!("error: {}: line 1", p[0].display())),
        "{e}"
    );
}

// Item 4: pools that do not fit the fabric are reported as such, before divisibility.

#[test]
fn pools_that_exceed_the_fabric_say_so_first() {
    expect_error(
        "prefill-40.toml",
        &serving("chat", "prefill_gpus = 40"),
        None,
        "serving.prefill_gpus",
        &["48 decode", "40 prefill", "64 GPUs"],
    );
    expect_error(
        "prefill-table.toml",
        &serving(
            "chat",
            "[serving.prefill]\nmode = \"afd\"\nattention_gpus = 8\nffn_gpus = 12",
        ),
        None,
        "serving.prefill.ffn_gpus",
        &["48 decode", "20 prefill", "64 GPUs"],
    );
    // The decode pool alone: 16 + 40 > 48 is reported before 40 FFN GPUs fail to divide.
    expect_error(
        "decode-big.toml",
        &serving("chat", "")
            .replace("nodes = 8", "nodes = 6")
            .replace("ffn_gpus = 32", "ffn_gpus = 40"),
        None,
        "serving.decode.ffn_gpus",
        &["exceed", "48 GPUs"],
    );
}

// Item 5: nan and inf are not finite, wherever they are written.

/// STAR with `from` replaced by `to` fails naming `key` as not finite.
#[rstest]
#[case::nan_rate("rate_gbps = 400", "rate_gbps = nan", "fabric.nic.rate_gbps")]
#[case::inf_latency(
    "latency_ns = 100\n[fabric.scale",
    "latency_ns = inf\n[fabric.scale",
    "fabric.nic.latency_ns"
)]
#[case::minus_inf_start("bytes = 4096", "bytes = 4096\nstart_ns = -inf", "traffic[0].start_ns")]
#[case::plus_nan_jitter(
    "bytes = 4096",
    "bytes = 4096\nstart_jitter_ns = +nan",
    "traffic[0].start_jitter_ns"
)]
#[case::nan_pfc_xon(
    "latency_ns = 100\n[[",
    "latency_ns = 100\nbuffer_kib = 512\npfc_xoff_kib = 200\npfc_xon_kib = nan\n[[",
    "fabric.switch.pfc_xon_kib"
)]
fn nan_and_inf_in_a_scenario_are_not_finite_and_name_their_key(
    #[context] ctx: Context,
    #[case] from: &str,
    #[case] to: &str,
    #[case] key: &str,
) {
    let text = STAR.replacen(from, to, 1);
    assert_ne!(text, STAR, "{from}");
    let name = format!("{}.toml", ctx.description.unwrap());
    expect_error(&name, &text, None, key, &["finite"]);
}

#[test]
fn nan_and_inf_are_not_finite_and_name_their_key() {
    expect_error(
        "nan-afd.toml",
        &afd_scenario("deepseek-v3.2", "routing = \"zipf\"\nzipf_s = nan\n"),
        None,
        "afd.zipf_s",
        &["finite"],
    );
    expect_error(
        "inf-serving.toml",
        &serving("chat", "rate = inf"),
        None,
        "serving.rate",
        &["finite"],
    );
    // In a fabric file: that file is named.
    let fabric = temp_file(
        SUITE,
        "nan-fabric.toml",
        "gpus_per_node = 1\nnodes = 4\n[nic]\nrate_gbps = nan\nlatency_ns = 100\n[scale_out]\ntopology = \"single-switch\"\n",
    );
    expect_error(
        "uses-nan-fabric.toml",
        "name = \"t\"\n[fabric]\nfile = \"nan-fabric.toml\"\n[[traffic]]\npattern = \"all-to-all\"\nbytes = 4096\n",
        Some(&fabric),
        "fabric.nic.rate_gbps",
        &["finite"],
    );
}

// Item 6: an integer TOML cannot hold names its key, not just the line.

#[test]
fn an_integer_too_large_names_its_key() {
    expect_error(
        "huge-bytes.toml",
        &STAR.replace("bytes = 4096", "bytes = 99999999999999999999"),
        None,
        "traffic[0].bytes (line 14)",
        &["9223372036854775807"],
    );
    expect_error(
        "huge-rate.toml",
        &STAR.replace(
            "rate_gbps = 400",
            "rate_gbps = 400\nper_gpu = 18446744073709551616",
        ),
        None,
        "fabric.nic.per_gpu (line 7)",
        &["integer"],
    );
}

// Item 8: DCQCN without ECN thresholds marks and reacts (the DCQCN paper's thresholds).

#[test]
fn dcqcn_without_ecn_thresholds_marks_and_reacts() {
    let text = r#"name = "dcqcn-default-ecn"
[fabric]
nodes = 9
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 1000
congestion_control = "dcqcn"
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 300
[[traffic]]
pattern = "incast"
senders = [1, 2, 3, 4, 5, 6, 7, 8]
receiver = 0
bytes = 1048576
"#;
    let p = temp_file(SUITE, "dcqcn-default.toml", text);
    let o = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let m = &v["metrics"];
    assert!(m["ecn_marks"].as_u64().unwrap() > 0, "{m}");
    assert!(m["cnps"].as_u64().unwrap() > 0, "{m}");
    // Without DCQCN the same incast gets no marks: the default thresholds belong to DCQCN.
    let p = temp_file(
        SUITE,
        "no-dcqcn.toml",
        &text.replace("congestion_control = \"dcqcn\"\n", ""),
    );
    let o = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["metrics"]["ecn_marks"], 0);
}

/// `[afd] comm` names a preset or a library file; `comm_sms` is a positive count.
#[test]
fn afd_comm_names_a_library() {
    expect_error(
        "afd-comm.toml",
        &afd_scenario("deepseek-v3.2", "comm = \"nope\"\n"),
        None,
        "afd.comm",
        &["`nope`", "deepep-ll", ".toml"],
    );
    expect_error(
        "afd-comm-sms.toml",
        &afd_scenario("deepseek-v3.2", "comm = \"nccl\"\ncomm_sms = 0\n"),
        None,
        "afd.comm_sms",
        &["0"],
    );
    // A library file next to the scenario, with a bad key: the file and its key are named.
    let p = in_own_dir(
        "comm-file",
        &[
            ("lib.toml", "name = \"mine\"\ncopies = \"token\"\n"),
            (
                "s.toml",
                &afd_scenario("deepseek-v3.2", "comm = \"lib.toml\"\n"),
            ),
        ],
    );
    expect_error_at(&p[1], &p[0], "copies", &["`token`", "gpu or expert"]);
}
