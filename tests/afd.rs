//! AFD decode scenarios through the CLI: metrics, determinism, bad input.

mod common;

use common::{afdsim, temp_file};
use rstest::{Context, rstest};
use std::path::PathBuf;
use std::process::Output;

const SMALL: &str = r#"
name = "afd-small"
level = "flow"
[fabric]
file = "hgx-h100"
nodes = 2
[afd]
model = "deepseek-v3.2"
# H200 FFN GPUs (141 GB): 32 experts of every MoE layer (76 GiB) do not fit an H100.
ffn_table = "h200-sxm"
attention_gpus = 8
ffn_gpus = 8
micro_batches = 2
batch_per_attention_gpu = 32
context = 4096
layers = 6
"#;

fn file(name: &str, text: &str) -> PathBuf {
    temp_file("afd", name, text)
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn an_afd_run_reports_step_metrics_and_the_network_beneath() {
    let p = file("small.toml", SMALL);
    let v = json(&afdsim(&["run", p.to_str().unwrap(), "--json"]));
    let m = &v["metrics"];
    let tpot = m["tpot_ms"].as_f64().unwrap();
    assert!(tpot > 0.0);
    // 8 attention GPUs x 32 sequences per step.
    let tps = m["tokens_per_s"].as_f64().unwrap();
    assert!((tps * tpot / 1e3 - 256.0).abs() < 1e-6, "{tps} x {tpot}");
    assert!((m["tokens_per_s_per_gpu"].as_f64().unwrap() * 16.0 - tps).abs() < 1e-6);
    for k in ["attention_busy_fraction", "ffn_busy_fraction"] {
        let b = m[k].as_f64().unwrap();
        assert!(b > 0.0 && b <= 1.0, "{k} = {b}");
    }
    assert!(m["ffn_load_imbalance"].as_f64().unwrap() >= 1.0);
    assert!(m["network"]["messages"].as_u64().unwrap() > 0);
}

/// The human table carries the two communication figures the JSON has, as percentages
/// with their bases named (issue 13: they were missing).
#[test]
fn the_human_table_shows_exposed_and_hidden_communication() {
    let p = file("human.toml", SMALL);
    let v = json(&afdsim(&["run", p.to_str().unwrap(), "--json"]));
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for (name, key, unit) in [
        (
            "communication exposed (on the critical path)",
            "comm_time_fraction_exposed",
            "% of step",
        ),
        (
            "communication hidden by overlap",
            "comm_hidden_fraction",
            "% of transfer time",
        ),
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line {name:?} in\n{text}"));
        assert!(line.trim_end().ends_with(unit), "{line}");
        let shown: f64 = line[line.find(name).unwrap() + name.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = 100.0 * v["metrics"][key].as_f64().unwrap();
        assert!((shown - want).abs() <= 0.05 + 1e-9, "{line}: {want}");
    }
}

#[test]
fn the_same_seed_gives_the_same_step_and_another_seed_another_draw() {
    let p = file("seeded.toml", SMALL);
    let p = p.to_str().unwrap();
    let a = afdsim(&["run", p, "--json", "--seed", "4"]);
    let b = afdsim(&["run", p, "--json", "--seed", "4"]);
    let c = afdsim(&["run", p, "--json", "--seed", "5"]);
    assert_eq!(a.stdout, b.stdout);
    // Another draw loads the FFN GPUs differently (the bytes are the same whatever the draw
    // under the default library's per-expert copies).
    assert_ne!(
        json(&a)["metrics"]["ffn_load_imbalance"],
        json(&c)["metrics"]["ffn_load_imbalance"]
    );
}

/// SMALL with `from` replaced by `to` (written as `name`.toml) fails naming `key` and saying
/// `words`.
#[rstest]
#[case::too_many(
    "too-many",
    "ffn_gpus = 8",
    "ffn_gpus = 9",
    "afd.ffn_gpus",
    "exceed the fabric"
)]
#[case::indivisible(
    "indivisible",
    "ffn_gpus = 8",
    "ffn_gpus = 6",
    "afd.ffn_gpus",
    "do not divide"
)]
#[case::thin_batch(
    "thin-batch",
    "batch_per_attention_gpu = 32",
    "batch_per_attention_gpu = 1",
    "afd.batch_per_attention_gpu",
    "cannot fill"
)]
#[case::model(
    "model",
    "\"deepseek-v3.2\"",
    "\"no-such-model\"",
    "afd.model",
    "neither an embedded model"
)]
#[case::analytical(
    "analytical",
    "level = \"flow\"",
    "level = \"analytical\"",
    "afd",
    "flow"
)]
#[case::layers(
    "layers",
    "layers = 6",
    "layers = 99",
    "afd.layers",
    "between 1 and 61"
)]
#[case::kernel(
    "kernel",
    "layers = 6",
    "layers = 6\nattention_kernel = \"magic\"",
    "afd.attention_kernel",
    "flash-mla"
)]
fn bad_afd_settings_are_clear_errors(
    #[case] name: &str,
    #[case] from: &str,
    #[case] to: &str,
    #[case] key: &str,
    #[case] words: &str,
) {
    let text = SMALL.replacen(from, to, 1);
    assert_ne!(text, SMALL, "{name}: replacement did not apply");
    let p = file(&format!("{name}.toml"), &text);
    let o = afdsim(&["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(err.contains(key) && err.contains(words), "{name}: {err}");
}

/// `afd-bandwidth-monotone`: at the flow level, doubling the NIC and scale-out rates never
/// makes a decode step slower, over random small deployments.
mod monotone {
    use afdsim::config::Scenario;
    use proptest::prelude::*;

    fn step_ms(rate_gbps: u32, att: u32, ffn: u32, mb: u32, batch: u32, seed: u64) -> f64 {
        let text = format!(
            r#"
name = "monotone"
level = "flow"
seed = {seed}
[fabric]
file = "hgx-h100"
nodes = 2
[fabric.nic]
rate_gbps = {rate_gbps}
[afd]
model = "qwen3-30b-a3b"
attention_gpus = {att}
ffn_gpus = {ffn}
micro_batches = {mb}
batch_per_attention_gpu = {batch}
context = 2048
layers = 4
"#
        );
        let s = Scenario::parse(&text, "monotone", None).expect("valid");
        let o = afdsim::run(&s, &mut |_| {}).expect("runs");
        o.afd().expect("afd metrics").tpot_ms
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn more_bandwidth_is_never_slower(
            att in 1u32..8,
            ffn_pow in 0u32..4,
            mb in 1u32..4,
            batch in 4u32..64,
            rate in prop_oneof![Just(50u32), Just(100), Just(200), Just(400)],
            seed in 0u64..1000,
        ) {
            let ffn = 1 << ffn_pow; // divides Qwen3-30B-A3B's 128 experts
            let slow = step_ms(rate, att, ffn, mb, batch.max(mb), seed);
            let fast = step_ms(rate * 2, att, ffn, mb, batch.max(mb), seed);
            prop_assert!(fast <= slow * (1.0 + 1e-9), "{rate} Gb/s: {slow} ms; {} Gb/s: {fast} ms", rate * 2);
        }
    }
}

/// Runs scenario `text` (saved as `name`.toml) with `--json --trace`: its JSON output and
/// its trace.
fn traced(name: &str, text: &str) -> (serde_json::Value, serde_json::Value) {
    let p = file(&format!("{name}.toml"), text);
    let t = std::env::temp_dir().join(format!("afdsim-{name}-{}.json", std::process::id()));
    let o = afdsim(&[
        "run",
        p.to_str().unwrap(),
        "--json",
        "--trace",
        t.to_str().unwrap(),
    ]);
    let v = json(&o);
    let trace = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).expect("valid JSON");
    (v, trace)
}

#[test]
fn a_trace_has_a_slice_per_kernel_and_a_begin_end_pair_per_transfer() {
    let (v, trace) = traced("traced", SMALL);
    let events = trace["traceEvents"].as_array().unwrap();
    // Transfers' slices (a communication kernel's fixed costs are slices of category
    // `kernel`, checked in `a_library_traces_its_fixed_costs_apart_from_its_transfers`).
    let count = |ph: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == ph && e["cat"] != "kernel")
            .count() as u64
    };
    let messages = v["metrics"]["network"]["messages"].as_u64().unwrap();
    assert_eq!(count("b"), messages);
    assert_eq!(count("e"), messages);
    // 6 layers x 2 micro-batches x 8 attention GPUs, plus 3 MoE layers x 2 x (up to) 8 FFN.
    let kernels = count("X");
    assert!((96 + 1..=96 + 48).contains(&kernels), "{kernels}");
    assert!(events.iter().any(|e| e["name"] == "experts L5"));
    // GPUs 0-7 run attention, 8-15 the experts: their tracks say so.
    let process = |g: u64| {
        events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "process_name" && e["pid"] == g)
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(process(0), "GPU 0 (attention)");
    assert_eq!(process(15), "GPU 15 (FFN)");
    assert!(
        events
            .iter()
            .all(|e| e["ph"] == "M" || e["ts"].as_f64().unwrap() >= 0.0)
    );
}

/// The critical path is contiguous: its transfers and kernels add up to the whole step; on
/// a near-ideal network (the pipeline case) almost none of it is communication, while on
/// real NICs some is.
#[test]
fn the_critical_path_spans_the_step() {
    use afdsim::config::Scenario;
    for (text, exposed_max) in [
        (
            include_str!("../validation/afd-pipeline-closed-form.toml"),
            1e-3,
        ),
        (SMALL, 1.0),
    ] {
        let s = Scenario::parse(text, "t", None).unwrap();
        let o = afdsim::run(&s, &mut |_| {}).unwrap();
        let step = o.step().unwrap();
        let (comm, compute) = afdsim::afd::critical_path(&step.workload, &o.run);
        let m = o.afd().unwrap().clone();
        let span_s = m.tpot_ms / 1e3;
        assert!(
            ((comm + compute) - span_s).abs() <= 1e-9 * span_s.max(1.0),
            "{comm} + {compute} vs {span_s}"
        );
        assert!(
            m.comm_time_fraction_exposed <= exposed_max,
            "{}",
            m.comm_time_fraction_exposed
        );
        assert!((0.0..=1.0).contains(&m.comm_hidden_fraction));
    }
}

/// Micro-batches exist to hide communication: three hide more than one and expose less.
#[test]
fn more_micro_batches_hide_more_communication() {
    use afdsim::config::Scenario;
    let metrics = |m: u32| {
        let text = SMALL.replace("micro_batches = 2", &format!("micro_batches = {m}"));
        let s = Scenario::parse(&text, "t", None).unwrap();
        afdsim::run(&s, &mut |_| {}).unwrap().afd().unwrap().clone()
    };
    let (one, three) = (metrics(1), metrics(3));
    assert!(
        three.comm_hidden_fraction > one.comm_hidden_fraction,
        "{} vs {}",
        three.comm_hidden_fraction,
        one.comm_hidden_fraction
    );
    assert!(three.comm_time_fraction_exposed < one.comm_time_fraction_exposed);
}

/// The colocated baseline: experts on the attention GPUs; a GPU's own tokens never touch
/// the fabric, so the bytes delivered are exactly the cross-GPU (token, GPU) pairs, and
/// each GPU is counted once per token rate.
#[test]
fn the_colocated_baseline_keeps_local_tokens_off_the_fabric() {
    use afdsim::afd::Transfer;
    use afdsim::config::Scenario;
    let text = SMALL
        .replace(
            "model = \"deepseek-v3.2\"",
            "mode = \"colocated\"\nmodel = \"deepseek-v3.2\"",
        )
        .replace("attention_gpus = 8\nffn_gpus = 8", "attention_gpus = 16");
    let s = Scenario::parse(&text, "t", None).unwrap();
    let o = afdsim::run(&s, &mut |_| {}).unwrap();
    let step = o.step().unwrap();
    let model = &s.afd().unwrap().deployment.model;
    let dispatched: u64 = o
        .run
        .messages
        .iter()
        .zip(&step.message_kind)
        .filter(|(_, k)| **k == Transfer::Dispatch)
        .map(|(m, _)| m.bytes)
        .sum();
    assert_eq!(
        dispatched,
        step.token_copies * model.dispatch_bytes_per_token(model.dispatch_dtype)
    );
    assert!(o.run.messages.iter().all(|m| m.src != m.dst));
    let m = o.afd().unwrap().clone();
    assert!((m.tokens_per_s_per_gpu * 16.0 - m.tokens_per_s).abs() < 1e-6);
    // One stream per GPU runs both sides: together they cannot exceed it.
    assert!(m.attention_busy_fraction + m.ffn_busy_fraction <= 1.0 + 1e-9);
}

#[test]
fn mode_settings_are_checked() {
    let run = |text: String| {
        let p = file("mode.toml", &text);
        afdsim(&["run", p.to_str().unwrap()])
    };
    let o = run(SMALL.replace(
        "model = \"deepseek-v3.2\"",
        "mode = \"colocated\"\nmodel = \"deepseek-v3.2\"",
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("afd.ffn_gpus"));
    let o = run(SMALL.replace("ffn_gpus = 8\n", ""));
    assert!(String::from_utf8_lossy(&o.stderr).contains("required for mode"));
    let o = run(SMALL.replace(
        "model = \"deepseek-v3.2\"",
        "mode = \"split\"\nmodel = \"deepseek-v3.2\"",
    ));
    assert!(String::from_utf8_lossy(&o.stderr).contains("afd.mode"));
}

#[test]
fn several_steps_give_a_mean_and_a_p99() {
    use afdsim::config::Scenario;
    let m = |steps: u32| {
        let text = SMALL.replace("layers = 6", &format!("layers = 6\nsteps = {steps}"));
        let s = Scenario::parse(&text, "t", None).unwrap();
        afdsim::run(&s, &mut |_| {}).unwrap().afd().unwrap().clone()
    };
    let (one, four) = (m(1), m(4));
    assert_eq!((one.steps, four.steps), (1, 4));
    assert_eq!(one.tpot_ms, one.tpot_p99_ms);
    assert!(four.tpot_p99_ms >= four.tpot_ms);
    // Different routing draws per step: the slowest step is slower than the mean.
    assert!(
        four.tpot_p99_ms > four.tpot_ms,
        "{} vs {}",
        four.tpot_p99_ms,
        four.tpot_ms
    );
}

/// Hot experts (Zipf routing) load some FFN GPUs more: the imbalance grows with the skew. At
/// 64 tokens per expert on average (one micro-batch of 8 x 256 sequences) the hot FFN GPUs'
/// experts outgrow the small kernel configuration and the step gets slower. At 4 per expert
/// (the small scenario) it need not: every expert's weights are read however few its tokens,
/// and hot experts leave others idle, which read nothing (docs/compute.md, "Uneven loads").
#[test]
fn zipf_routing_skews_the_ffn_load() {
    use afdsim::config::Scenario;
    let m = |base: &str, routing: &str| {
        let text = base.replace("layers = 6", &format!("layers = 6\n{routing}"));
        let s = Scenario::parse(&text, "t", None).unwrap();
        afdsim::run(&s, &mut |_| {}).unwrap().afd().unwrap().clone()
    };
    let uniform = m(SMALL, "routing = \"uniform\"");
    let hot = m(SMALL, "routing = \"zipf\"\nzipf_s = 1.2");
    assert!(
        hot.ffn_load_imbalance > 1.5 * uniform.ffn_load_imbalance,
        "{} vs {}",
        hot.ffn_load_imbalance,
        uniform.ffn_load_imbalance
    );
    let big = SMALL
        .replace("micro_batches = 2", "micro_batches = 1")
        .replace(
            "batch_per_attention_gpu = 32",
            "batch_per_attention_gpu = 256",
        );
    let (uniform, hot) = (
        m(&big, "routing = \"uniform\""),
        m(&big, "routing = \"zipf\"\nzipf_s = 1.2"),
    );
    assert!(
        hot.tpot_ms > 1.1 * uniform.tpot_ms,
        "{} vs {}",
        hot.tpot_ms,
        uniform.tpot_ms
    );
    let p = file(
        "zipf-bad.toml",
        &SMALL.replace("layers = 6", "layers = 6\nzipf_s = 1.0"),
    );
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs routing"));
}

/// Runs SMALL with `extra` lines appended to its `[afd]` table.
fn small_with(extra: &str) -> (afdsim::Outcome, afdsim::config::Scenario) {
    let text = format!("{SMALL}{extra}\n");
    let s = afdsim::config::Scenario::parse(&text, "t", None).unwrap();
    (afdsim::run(&s, &mut |_| {}).unwrap(), s)
}

/// Dispatched and combined bytes are exactly the token copies the routing drew times the
/// bytes per token copy, whatever the placement.
fn assert_bytes_conserved(o: &afdsim::Outcome, s: &afdsim::config::Scenario) {
    use afdsim::afd::Transfer;
    let step = o.step().unwrap();
    let model = &s.afd().unwrap().deployment.model;
    let sent = |kind: Transfer| -> u64 {
        o.run
            .messages
            .iter()
            .zip(&step.message_kind)
            .filter(|(m, k)| **k == kind && m.finish.is_some())
            .map(|(m, _)| m.bytes)
            .sum()
    };
    assert_eq!(
        sent(Transfer::Dispatch),
        step.token_copies * model.dispatch_bytes_per_token(model.dispatch_dtype)
    );
    assert_eq!(
        sent(Transfer::Combine),
        step.token_copies * model.combine_bytes_per_token(model.combine_dtype)
    );
}

/// EPLB copies hot experts and packs them by expected load: under Zipf routing it spreads
/// the token-expert pairs over the FFN GPUs far more evenly than contiguous placement, and
/// every pair still arrives (the pairs and bytes add up).
#[test]
fn eplb_balances_hot_experts_and_conserves_bytes() {
    for s in ["0.8", "1.0"] {
        let zipf = format!("routing = \"zipf\"\nzipf_s = {s}");
        let (contiguous, sc) = small_with(&zipf);
        let (eplb, se) = small_with(&format!(
            "{zipf}\nplacement = \"eplb\"\nredundant_experts = 16"
        ));
        let (ci, ei) = (
            contiguous.afd().unwrap().ffn_load_imbalance,
            eplb.afd().unwrap().ffn_load_imbalance,
        );
        assert!(
            ei < 0.75 * ci && ei < 1.3,
            "zipf {s}: eplb {ei} vs contiguous {ci}"
        );
        for (o, sc) in [(&contiguous, &sc), (&eplb, &se)] {
            assert_bytes_conserved(o, sc);
            let step = o.step().unwrap();
            // 256 tokens x 8 experts x 3 MoE layers, every pair on some FFN GPU.
            assert_eq!(step.ffn_pairs.iter().sum::<u64>(), 256 * 8 * 3);
        }
    }
}

/// Round-robin and EPLB place experts over FFN GPUs that do not divide them; contiguous
/// placement refuses and says what to choose instead.
#[test]
fn uneven_expert_counts_need_a_placement_that_says_how() {
    let uneven = SMALL.replace("ffn_gpus = 8", "ffn_gpus = 6");
    for p in ["round-robin", "eplb"] {
        let text = format!("{uneven}placement = \"{p}\"\n");
        let s = afdsim::config::Scenario::parse(&text, "t", None).unwrap();
        let spec = s.afd().unwrap();
        assert_eq!(spec.deployment.experts.slots_on.iter().sum::<u64>(), 256);
        assert!(
            spec.deployment
                .experts
                .slots_on
                .iter()
                .all(|&n| n == 42 || n == 43)
        );
        let o = afdsim::run(&s, &mut |_| {}).unwrap();
        assert_bytes_conserved(&o, &s);
    }
    let p = file("uneven.toml", &uneven);
    let o = afdsim(&["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("afd.ffn_gpus") && err.contains("round-robin") && err.contains("eplb"),
        "{err}"
    );
}

/// SMALL plus `extra` fails naming `key` and saying `words`.
#[rstest]
#[case::random_placement("placement = \"random\"", "afd.placement", "round-robin")]
#[case::redundant_without_eplb("redundant_experts = 4", "afd.redundant_experts", "eplb")]
#[case::negative_redundant(
    "placement = \"eplb\"\nredundant_experts = -1",
    "afd.redundant_experts",
    "between 0"
)]
fn placement_settings_are_checked(
    #[context] ctx: Context,
    #[case] extra: &str,
    #[case] key: &str,
    #[case] words: &str,
) {
    let name = format!("placement-bad-{}.toml", ctx.description.unwrap());
    let p = file(&name, &format!("{SMALL}{extra}\n"));
    let o = afdsim(&["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{extra}: {err}");
    assert!(err.contains(key) && err.contains(words), "{extra}: {err}");
}

/// The KV cache of a batch that does not fit the attention GPU's HBM is refused, saying by
/// how much and how many sequences would fit.
#[test]
fn a_batch_whose_kv_cache_overflows_hbm_is_refused_with_the_excess() {
    let p = file(
        "hbm.toml",
        &SMALL.replace("context = 4096", "context = 4096\nhbm_gib = 1.0"),
    );
    let o = afdsim(&["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("afd.batch_per_attention_gpu")
            && err.contains("GiB more than its 1.0 GiB")
            && err.contains("sequences fit"),
        "{err}"
    );
}

/// 256 tokens x top-8 = 2048 pairs: 64 experts with 32 tokens each (of 256 experts).
fn histogram_csv() -> String {
    let mut csv = String::from("# a test histogram\nexpert,tokens\n");
    for e in 0..64 {
        csv.push_str(&format!("{},32\n", e * 4));
    }
    csv
}

/// The `[afd]` lines that route by the histogram at `path`.
fn histogram_routing(path: &std::path::Path) -> String {
    format!(
        "routing = \"histogram\"\nrouting_file = \"{}\"",
        path.display()
    )
}

/// A histogram file is reproduced exactly in every MoE layer.
#[test]
fn a_routing_histogram_is_followed_exactly() {
    let h = file("hist.csv", &histogram_csv());
    let (o, s) = small_with(&histogram_routing(&h));
    let step = o.step().unwrap();
    // Experts 0, 4, 8, ... sit on GPUs 0..8 (32 experts each), 8 of them per GPU: every FFN
    // GPU gets 8 x 32 pairs per MoE layer.
    assert_eq!(step.ffn_pairs, vec![8 * 32 * 3; 8]);
    assert_bytes_conserved(&o, &s);
}

/// A histogram (the good one edited by `edit`, written as `name`) that does not add up to
/// tokens x top_k, or has a bad line, is an error naming the file and saying `words`.
#[rstest]
#[case::short(
    "short.csv",
    |csv: &str| csv.replacen("tokens\n0,32\n", "tokens\n0,31\n", 1),
    "sum to 2047 token-expert pairs"
)]
#[case::header("header.csv", |_: &str| "e,t\n0,1\n".to_string(), "line 1")]
#[case::expert("expert.csv", |csv: &str| format!("{csv}999,0\n"), "line 67: expert `999`")]
#[case::twice("twice.csv", |csv: &str| format!("{csv}0,0\n"), "expert 0 appears twice")]
#[case::many(
    "many.csv",
    |_: &str| "expert,tokens\n0,257\n".to_string(),
    "line 2: tokens `257`"
)]
fn a_bad_routing_histogram_names_its_file(
    #[case] name: &str,
    #[case] edit: fn(&str) -> String,
    #[case] words: &str,
) {
    let hp = file(name, &edit(&histogram_csv()));
    let sp = file(
        &format!("{name}.toml"),
        &format!("{SMALL}{}\n", histogram_routing(&hp)),
    );
    let o = afdsim(&["run", sp.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(
        err.contains(hp.to_str().unwrap()) && err.contains(words),
        "{name}: {err}"
    );
}

/// The dedup convention and dtype overrides change the bytes exactly as stated: once per
/// expert sends top_k copies of every token; BF16 doubles the hidden vector.
#[test]
fn dedup_per_expert_and_bf16_change_the_bytes_as_stated() {
    let (gpu, sg) = small_with("dedup = \"gpu\"");
    let (expert, se) = small_with("dedup = \"expert\"");
    let (bf16, sb) = small_with("dispatch_dtype = \"bf16\"\ncombine_dtype = \"bf16\"");
    for (o, s) in [(&gpu, &sg), (&expert, &se), (&bf16, &sb)] {
        assert_bytes_conserved(o, s);
    }
    // Per expert: exactly tokens x top_k x MoE layers copies, whatever the draw.
    assert_eq!(expert.step().unwrap().token_copies, 256 * 8 * 3);
    assert!(gpu.step().unwrap().token_copies < 256 * 8 * 3);
    // Unset, dedup follows the library: per expert under DeepEP's low-latency kernels (the
    // default), per GPU under its normal kernels.
    let (ll, _) = small_with("");
    assert_eq!(ll.step().unwrap().token_copies, 256 * 8 * 3);
    let (normal, _) = small_with("comm = \"deepep-normal\"");
    assert_eq!(
        normal.step().unwrap().token_copies,
        gpu.step().unwrap().token_copies
    );
    let model = &sb.afd().unwrap().deployment.model;
    assert_eq!(
        model.dispatch_bytes_per_token(model.dispatch_dtype),
        7168 * 2
    );
    let p = file(
        "dtype-bad.toml",
        &format!("{SMALL}dispatch_dtype = \"fp4\"\n"),
    );
    let err = String::from_utf8_lossy(&afdsim(&["run", p.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("afd.dispatch_dtype") && err.contains("fp8 or bf16"),
        "{err}"
    );
}

/// The grouped GEMM of an FFN GPU is timed from the per-expert counts the routing drew, by
/// the kernel's tile rules (PyTorch's SM90 grouped kernels; docs/compute.md, "Uneven loads").
/// One micro-batch of 2,048 tokens (8 x 256) per layer over the 32 experts of each FFN GPU:
/// mean 64, the small configuration, rows padded to clusters of 128. Spread evenly, every
/// expert takes one cluster: exactly the balanced kernel. Crowded onto a quarter of the
/// experts (256 each): 8 x 256 rows, half the work (an expert without tokens takes no tile
/// and its weights are not read). Uneven with every expert busy (8 at 160, 24 at 32):
/// 8 x 256 + 24 x 128 rows, 5/4 of the work. Plain transfers: no communication kernel's SMs
/// slow the expert kernels.
#[test]
fn skew_inside_an_ffn_gpu_costs_its_padded_tiles() {
    use afdsim::compute::{Op, Work};
    let base = small_under("ideal")
        .replace("micro_batches = 2", "micro_batches = 1")
        .replace(
            "batch_per_attention_gpu = 32",
            "batch_per_attention_gpu = 256",
        );
    let run = |name: &str, tokens: &dyn Fn(u64) -> u64| {
        let mut csv = String::from("expert,tokens\n");
        for g in 0..8 {
            for e in 0..32 {
                csv.push_str(&format!("{},{}\n", 32 * g + e, tokens(e)));
            }
        }
        let h = file(name, &csv);
        let text = format!(
            "{base}routing = \"histogram\"\nrouting_file = \"{}\"\n",
            h.display()
        );
        let s = afdsim::config::Scenario::parse(&text, "t", None).unwrap();
        let o = afdsim::run(&s, &mut |_| {}).unwrap();
        assert_eq!(o.step().unwrap().ffn_pairs, vec![2048 * 3; 8]);
        (o.afd().unwrap().clone(), s)
    };
    let (even, s) = run("even.csv", &|_| 64);
    let (crowded, _) = run("crowded.csv", &|e| if e < 8 { 256 } else { 0 });
    let (uneven, _) = run("uneven.csv", &|e| if e < 8 { 160 } else { 32 });
    let spec = s.afd().unwrap();
    let side = spec
        .deployment
        .model
        .ffn_side(&spec.deployment.ffn_table, 32, 64)
        .unwrap();
    let balanced = side.total_us();
    let grouped: f64 = side
        .ops
        .iter()
        .filter(|op| matches!(op.work, Work::Table(q) if q.op == Op::GroupedGemm))
        .map(|op| op.time_us)
        .sum();
    assert!(grouped > 0.5 * balanced, "{grouped} of {balanced}");
    for (got, want) in [
        (even.ffn_us, balanced),
        (crowded.ffn_us, balanced - 0.5 * grouped),
        (uneven.ffn_us, balanced + 0.25 * grouped),
    ] {
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }
}

/// The example AFD sweep runs, and `report` draws every AFD figure from its merged table:
/// the figures' column names are the ones an AFD run's metrics flatten to.
#[test]
fn the_afd_sweep_draws_the_afd_figures() {
    let dir = std::env::temp_dir().join(format!("afdsim-afd-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sweep = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/sweeps/afd-micro-batches.toml"
    );
    let (out, csv, figs) = (dir.join("out"), dir.join("t.csv"), dir.join("figs"));
    for args in [
        vec!["sweep", sweep, "--out", out.to_str().unwrap()],
        vec![
            "merge",
            out.to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
        ],
        vec![
            "report",
            csv.to_str().unwrap(),
            "--out",
            figs.to_str().unwrap(),
        ],
    ] {
        let o = afdsim(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for f in [
        "bandwidth-throughput.svg",
        "bandwidth-tpot.svg",
        "pareto-throughput-tpot.svg",
        "exposed-comm-micro-batches.svg",
    ] {
        let svg = std::fs::read_to_string(figs.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(svg.contains("<svg"), "{f}");
    }
}

/// Every AFD scenario shipped resolves, from any working folder (a histogram file is found
/// beside its scenario).
#[test]
fn the_shipped_afd_scenarios_resolve() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.extension().is_some_and(|x| x == "toml") && name.contains("afd") {
            let s = afdsim::config::Scenario::load(&p, None);
            assert!(s.is_ok(), "{name}: {}", s.err().unwrap());
            n += 1;
        }
    }
    assert!(n >= 3, "{n} AFD scenarios");
}

/// A DeepSeek-V3 (dense MLA: attention time linear in the KV read) step with long contexts,
/// so that attention matters; `context` is replaced by `ctx` lines.
fn long_context(ctx: &str) -> String {
    SMALL
        .replace("deepseek-v3.2", "deepseek-v3")
        .replace("context = 4096", ctx)
}

fn run_text(text: &str) -> (afdsim::Outcome, afdsim::config::Scenario) {
    let s = afdsim::config::Scenario::parse(text, "t", None).unwrap();
    (afdsim::run(&s, &mut |_| {}).unwrap(), s)
}

/// Attention kernel time per attention GPU over the step, microseconds.
fn attention_busy_per_gpu(o: &afdsim::Outcome) -> std::collections::BTreeMap<u32, f64> {
    let step = o.step().unwrap();
    let mut busy = std::collections::BTreeMap::new();
    for (c, s) in o.run.computes.iter().zip(&step.compute_stage) {
        if *s == afdsim::afd::Stage::Attention {
            let d = c.finish.unwrap().since(c.start.unwrap()).as_secs_f64() * 1e6;
            *busy.entry(c.gpu.0).or_insert(0.0) += d;
        }
    }
    busy
}

/// Contexts drawn per sequence (same mean as the fixed context) give each attention GPU its
/// own attention time; the slowest GPU sets the pace, so with attention linear in the KV
/// read the step is no faster than at the fixed mean context. The draw is seeded.
#[test]
fn a_context_distribution_gives_each_attention_gpu_its_own_time() {
    let (fixed, _) = run_text(&long_context("context = 16384"));
    let wide = long_context("context_dist = \"uniform\"\ncontext_min = 1\ncontext_max = 32767");
    let (spread, s) = run_text(&wide);
    let spec = s.afd().unwrap();
    assert_eq!(spec.shape.contexts.len(), 8);
    assert!(spec.shape.contexts.iter().all(|c| c.len() == 32));
    let all: Vec<u64> = spec.shape.contexts.iter().flatten().copied().collect();
    assert!(all.iter().all(|&c| (1..=32767).contains(&c)));
    assert!(all.iter().min() < Some(&4000) && all.iter().max() > Some(&28000));
    let fixed_busy = attention_busy_per_gpu(&fixed);
    let spread_busy = attention_busy_per_gpu(&spread);
    let range = |b: &std::collections::BTreeMap<u32, f64>| {
        let v: Vec<f64> = b.values().copied().collect();
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        )
    };
    let (lo, hi) = range(&fixed_busy);
    assert!(
        (hi - lo) / hi < 1e-9,
        "fixed: every GPU the same ({lo} .. {hi})"
    );
    let (lo, hi) = range(&spread_busy);
    assert!(hi > 1.02 * lo, "spread: GPUs differ ({lo} .. {hi})");
    let (tf, ts) = (fixed.afd().unwrap().tpot_ms, spread.afd().unwrap().tpot_ms);
    assert!(ts >= tf, "spread {ts} ms vs fixed {tf} ms");
    // Seeded: the same seed draws the same contexts, another seed others.
    let (_, again) = run_text(&wide);
    assert_eq!(again.afd().unwrap().shape.contexts, spec.shape.contexts);
    let other = afdsim::config::Scenario::parse(&wide, "t", Some(9)).unwrap();
    assert_ne!(other.afd().unwrap().shape.contexts, spec.shape.contexts);
}

/// The KV check of drawn contexts uses the attention GPU whose sequences hold the most
/// tokens, not the mean.
#[test]
fn drawn_contexts_are_checked_against_hbm_on_the_fullest_gpu() {
    let wide =
        long_context("context_dist = \"lognormal\"\ncontext_mean = 16384\ncontext_sigma = 1.0");
    let s =
        afdsim::config::Scenario::parse(&format!("{wide}hbm_gib = 10000\n"), "t", None).unwrap();
    let spec = s.afd().unwrap();
    let sums: Vec<u64> = spec.shape.contexts.iter().map(|c| c.iter().sum()).collect();
    let (max, mean) = (
        *sums.iter().max().unwrap() as f64,
        sums.iter().sum::<u64>() as f64 / sums.len() as f64,
    );
    assert!(max > 1.1 * mean, "{max} vs {mean}");
    let gib = spec.deployment.model.layers as f64
        * spec.deployment.model.kv_bytes_per_token_per_layer() as f64
        / (1u64 << 30) as f64;
    let between = (max + mean) / 2.0 * gib;
    let e = afdsim::config::Scenario::parse(&format!("{wide}hbm_gib = {between}\n"), "t", None)
        .expect_err("the fullest GPU overflows");
    assert_eq!(e.key, "afd.batch_per_attention_gpu");
    let g = sums.iter().position(|&x| x as f64 == max).unwrap();
    assert!(
        e.message.contains(&format!("attention GPU {g} ")),
        "{}",
        e.message
    );
    // Room for the fullest GPU's KV cache beside the attention side's weights.
    let weights = spec
        .deployment
        .model
        .weight_bytes(afdsim::compute::WeightPlacement::AttentionSide) as f64
        / (1u64 << 30) as f64;
    let roomy = max * gib * 1.001 + weights;
    assert!(
        afdsim::config::Scenario::parse(&format!("{wide}hbm_gib = {roomy}\n"), "t", None).is_ok()
    );
}

/// SMALL with `context = 4096` replaced by `lines` is refused at `k`, saying `words`.
#[rstest]
#[case::context_with_dist(
    "context_dist = \"uniform\"\ncontext_min = 1\ncontext_max = 100\ncontext = 5",
    "afd.context",
    "not allowed with context_dist"
)]
#[case::uniform_without_max(
    "context_dist = \"uniform\"\ncontext_min = 10",
    "afd.context_max",
    "required"
)]
#[case::uniform_max_below_min(
    "context_dist = \"uniform\"\ncontext_min = 10\ncontext_max = 5",
    "afd.context_max",
    "below context_min"
)]
#[case::uniform_with_sigma(
    "context_dist = \"uniform\"\ncontext_min = 1\ncontext_max = 9\ncontext_sigma = 1",
    "afd.context_sigma",
    "lognormal"
)]
#[case::lognormal_sigma_too_large(
    "context_dist = \"lognormal\"\ncontext_mean = 4096\ncontext_sigma = 9",
    "afd.context_sigma",
    "> 0 and <= 4"
)]
#[case::lognormal_without_mean(
    "context_dist = \"lognormal\"\ncontext_sigma = 1",
    "afd.context_mean",
    "required"
)]
#[case::unknown_dist("context_dist = \"gamma\"", "afd.context_dist", "uniform or lognormal")]
#[case::mean_without_dist("context_mean = 4096", "afd.context_mean", "needs context_dist")]
#[case::no_context("", "afd.context", "required")]
fn context_distribution_settings_are_checked(
    #[case] lines: &str,
    #[case] k: &str,
    #[case] words: &str,
) {
    let text = SMALL.replace("context = 4096", lines);
    let e = afdsim::config::Scenario::parse(&text, "t", None)
        .err()
        .unwrap_or_else(|| panic!("{lines}: accepted"));
    assert_eq!(e.key, k, "{lines}");
    assert!(e.message.contains(words), "{lines}: {}", e.message);
}

/// The shipped DeepSeek-V3.2 scenario, 6 layers, with `attention_gpus` + `ffn_gpus`
/// (round-robin placement) and the shared expert on `side`.
fn dsv32_shared(na: u32, nf: u32, side: &str) -> (afdsim::Outcome, afdsim::config::Scenario) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/scenarios");
    let text = std::fs::read_to_string(dir.join("afd-dsv32-4hgx.toml"))
        .unwrap()
        .replace("attention_gpus = 16", &format!("attention_gpus = {na}"))
        .replace("ffn_gpus = 16", &format!("ffn_gpus = {nf}"));
    run_text(&format!(
        "{text}layers = 6\nplacement = \"round-robin\"\nshared_expert_side = \"{side}\"\n"
    ))
}

/// The mean kernel time of `stage` over the MoE layers (3 ..) of a DeepSeek step, us.
fn moe_kernel_us(o: &afdsim::Outcome, stage: afdsim::afd::Stage) -> f64 {
    let step = o.step().unwrap();
    let times: Vec<f64> = o
        .run
        .computes
        .iter()
        .zip(step.compute_stage.iter().zip(&step.compute_layer))
        .filter(|(_, (s, l))| **s == stage && **l >= 3)
        .map(|(c, _)| c.finish.unwrap().since(c.start.unwrap()).as_secs_f64() * 1e6)
        .collect();
    times.iter().sum::<f64>() / times.len() as f64
}

/// Moving the shared expert to the FFN GPUs takes its GEMMs off the attention side and
/// puts them on one of the FFN GPUs each token is dispatched to: no copy more on the fabric (bytes
/// conserved, the same as on the attention side), every token's shared expert run once per
/// MoE layer. When attention is the bottleneck (8 attention GPUs feeding 24 FFN GPUs) the
/// step gets faster; when the FFN side already is (16 + 16), slower: in memory-bound decode
/// each FFN GPU reads the shared expert's weights again for its few tokens.
#[test]
fn the_shared_expert_on_the_ffn_side_moves_work_across_and_conserves_bytes() {
    for (na, nf, attention_bound) in [(8, 24, true), (16, 16, false)] {
        let (att, sa) = dsv32_shared(na, nf, "attention");
        let (ffn, sf) = dsv32_shared(na, nf, "ffn");
        let (ma, mf) = (att.afd().unwrap(), ffn.afd().unwrap());
        let (a_us, f_us) = (
            moe_kernel_us(&att, afdsim::afd::Stage::Attention),
            moe_kernel_us(&att, afdsim::afd::Stage::Ffn),
        );
        assert_eq!(
            a_us > f_us,
            attention_bound,
            "{na}+{nf}: {a_us} / {f_us} us"
        );
        assert!(mf.attention_us < ma.attention_us && mf.ffn_us > ma.ffn_us);
        assert_bytes_conserved(&att, &sa);
        assert_bytes_conserved(&ffn, &sf);
        let (step_a, step_f) = (att.step().unwrap(), ffn.step().unwrap());
        assert_eq!(step_a.token_copies, step_f.token_copies);
        assert!(step_a.ffn_shared.iter().all(|&n| n == 0));
        // 3 dense layers, 3 MoE layers: every token's shared expert once per MoE layer.
        assert_eq!(step_f.ffn_shared.iter().sum::<u64>(), step_f.tokens * 3);
        assert_eq!(
            mf.tpot_ms < ma.tpot_ms,
            attention_bound,
            "{na}+{nf}: ffn side {} ms vs attention side {} ms",
            mf.tpot_ms,
            ma.tpot_ms
        );
    }
    let bad = SMALL.replace("layers = 6", "layers = 6\nshared_expert_side = \"both\"");
    let e =
        afdsim::config::Scenario::parse(&bad, "t", None).expect_err("an unknown side is refused");
    assert_eq!(e.key, "afd.shared_expert_side");
    assert!(e.message.contains("attention or ffn"), "{}", e.message);
}

/// The shared expert goes to the least-loaded of each token's destination GPUs, so it
/// spreads evenly even where the routed experts do not (Zipf, contiguous placement).
#[test]
fn the_shared_expert_spreads_evenly_over_the_ffn_gpus_under_skew() {
    let text = SMALL.replace("layers = 6", "layers = 6\nrouting = \"zipf\"\nzipf_s = 1.0");
    let (o, _) = run_text(&format!("{text}shared_expert_side = \"ffn\"\n"));
    let step = o.step().unwrap();
    let ratio = |v: &[u64]| {
        let max = *v.iter().max().unwrap() as f64;
        max / (v.iter().sum::<u64>() as f64 / v.len() as f64)
    };
    let (pairs, shared) = (ratio(&step.ffn_pairs), ratio(&step.ffn_shared));
    assert!(pairs > 2.0, "routed pairs imbalance {pairs}");
    assert!(shared < 1.1, "shared imbalance {shared}");
    assert_eq!(step.ffn_shared.iter().sum::<u64>(), 256 * 3);
}

/// 256 tokens x top-8 = 2048 pairs per layer; MoE layers 3, 4, 5 (3 dense, 6 simulated).
fn per_layer_csv() -> String {
    let mut csv = String::from("layer,expert,tokens\n");
    for e in 0..256 {
        csv.push_str(&format!("3,{e},8\n"));
    }
    for e in 0..64 {
        csv.push_str(&format!("4,{e},32\n"));
    }
    for e in 0..8 {
        csv.push_str(&format!("5,{e},256\n"));
    }
    csv
}

/// A histogram with a `layer` column routes each MoE layer by its own counts; every
/// simulated MoE layer must be there, dense layers may not, and each layer's sum is checked.
#[test]
fn a_per_layer_histogram_routes_each_layer_by_its_own_counts() {
    let csv = per_layer_csv();
    let with = histogram_routing;
    let h = file("layers.csv", &csv);
    let (o, s) = small_with(&with(&h));
    let step = o.step().unwrap();
    // Contiguous: 32 experts per GPU. Layer 3 puts 32 x 8 on every GPU; layer 4 32 x 32 on
    // GPUs 0 and 1; layer 5 all 2048 pairs on GPU 0.
    let mut want = vec![256u64; 8];
    want[0] += 1024 + 2048;
    want[1] += 1024;
    assert_eq!(step.ffn_pairs, want);
    // The FFN GPUs that ran a kernel, per MoE layer.
    let gpus = |layer: u32| {
        let mut g: Vec<u32> = o
            .run
            .computes
            .iter()
            .zip(step.compute_stage.iter().zip(&step.compute_layer))
            .filter(|(_, (st, l))| **st == afdsim::afd::Stage::Ffn && **l == layer)
            .map(|(c, _)| c.gpu.0)
            .collect();
        g.sort_unstable();
        g.dedup();
        g.len()
    };
    assert_eq!((gpus(3), gpus(4), gpus(5)), (8, 2, 1));
    assert_bytes_conserved(&o, &s);
    // A later layer than those simulated is checked, then not needed.
    let extra = file("extra.csv", &format!("{csv}60,0,2048\n"));
    let e = afdsim::config::Scenario::parse(&format!("{SMALL}{}\n", with(&extra)), "t", None)
        .expect_err("2048 > 256 tokens");
    assert!(e.message.contains("tokens `2048`"), "{}", e.message);
    let layer60: String = (0..256).map(|e| format!("60,{e},8\n")).collect();
    let later = file("later.csv", &format!("{csv}{layer60}"));
    let (o2, _) = small_with(&with(&later));
    assert_eq!(o2.step().unwrap().ffn_pairs, want);
}

/// A per-layer histogram (the good one edited by `edit`, written as `name`) without a
/// simulated MoE layer, with a dense layer, with a layer that does not sum up or a bad line
/// names its file and says `words`.
#[rstest]
#[case::no_layer_5(
    "no5.csv",
    |csv: &str| {
        csv.lines()
            .filter(|l| !l.starts_with("5,"))
            .map(|l| format!("{l}\n"))
            .collect()
    },
    "layer 5 has no lines"
)]
#[case::dense_layer("dense.csv", |csv: &str| format!("{csv}1,0,0\n"), "layer `1` is not allowed")]
#[case::layer_sum(
    "sum4.csv",
    |csv: &str| csv.replacen("4,0,32\n", "4,0,31\n", 1),
    "layer 4: the counts sum to 2047"
)]
#[case::expert_twice(
    "twice4.csv",
    |csv: &str| format!("{csv}4,0,0\n"),
    "expert 0 appears twice in layer 4"
)]
#[case::two_cells(
    "cells.csv",
    |_: &str| "layer,expert,tokens\n3,0\n".to_string(),
    "three cells expected"
)]
fn a_bad_per_layer_histogram_names_its_file(
    #[case] name: &str,
    #[case] edit: fn(&str) -> String,
    #[case] words: &str,
) {
    let hp = file(name, &edit(&per_layer_csv()));
    let e =
        afdsim::config::Scenario::parse(&format!("{SMALL}{}\n", histogram_routing(&hp)), "t", None)
            .expect_err(name);
    assert!(
        e.file.contains(hp.to_str().unwrap()) && e.message.contains(words),
        "{name}: {} {}",
        e.file,
        e.message
    );
}

/// Every GPU must hold its weights: 32 experts of every MoE layer of DeepSeek-V3.2 (76 GiB)
/// do not fit an H100's 80 GB; an attention GPU's weights count beside its KV cache.
#[test]
fn weights_must_fit_each_gpu() {
    let h100 = SMALL.replace("ffn_table = \"h200-sxm\"\n", "");
    let e = afdsim::config::Scenario::parse(&h100, "t", None).expect_err("too many experts");
    assert_eq!(e.key, "afd.ffn_gpus");
    assert!(e.message.contains("32 expert slots") && e.message.contains("use more FFN GPUs"));
    // 10 GiB of HBM holds the KV cache of 32 sequences at 4K (5.4 GiB) but not the
    // attention side's weights as well.
    let small = SMALL.replace("layers = 6", "layers = 6\nhbm_gib = 10");
    let e = afdsim::config::Scenario::parse(&small, "t", None).expect_err("weights + KV");
    assert_eq!(e.key, "afd.batch_per_attention_gpu");
    assert!(e.message.contains("GiB of weights"), "{}", e.message);
}

/// An embedding caller cannot put an AFD study at a level that cannot run it: the scenario
/// refuses the level, and the level itself refuses the step's workload (a typed error, never a
/// panic or a wrong answer).
#[test]
fn an_afd_study_at_the_analytical_level_is_refused_by_scenario_and_level() {
    use afdsim::config::{Scenario, Study};
    use afdsim::net::{Level, NetError};
    let s = Scenario::embedded_default(None);
    let Study::Afd(spec) = s.study() else {
        panic!("the default scenario is an AFD study");
    };
    let err = s.clone().with_level(Level::Analytical).unwrap_err();
    assert_eq!(err.key, "afd", "{err}");
    let mut rng = afdsim::engine::SimRng::stream(1, 2);
    let step = spec.decode_step(s.fabric(), s.net(), &mut rng).unwrap();
    let e = afdsim::levels::simulate(
        Level::Analytical,
        s.fabric(),
        s.net(),
        &step.workload,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            NetError::Unsupported {
                level: "analytical",
                ..
            }
        ),
        "{e}"
    );
    for level in [Level::Flow, Level::Packet] {
        let run = afdsim::levels::simulate(level, s.fabric(), s.net(), &step.workload, &mut |_| {})
            .unwrap();
        assert!(run.messages.iter().all(|m| m.finish.is_some()));
    }
}

/// SMALL under communication library `lib` (`[afd] comm`).
fn small_under(lib: &str) -> String {
    SMALL.replace("[afd]\n", &format!("[afd]\ncomm = \"{lib}\"\n"))
}

/// A library's kernels: the metrics split each transfer's time into fixed cost, wire time
/// and queueing; the fixed cost per call and GPU is the library's launch + barrier + flag +
/// poll (plus a combine's reduction); `ideal` has none, and no library makes the step faster.
#[test]
fn a_library_adds_its_fixed_costs_and_the_metrics_split_them() {
    let run = |lib: &str| {
        let p = file(&format!("lib-{lib}.toml"), &small_under(lib));
        json(&afdsim(&["run", p.to_str().unwrap(), "--json"]))["metrics"].clone()
    };
    let ideal = run("ideal");
    assert_eq!(ideal["comm"], "ideal");
    assert_eq!(ideal["dispatch_fixed_us"].as_f64(), Some(0.0));
    assert_eq!(ideal["combine_fixed_us"].as_f64(), Some(0.0));
    let f = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap();
    for m in [&ideal] {
        for k in ["dispatch", "combine"] {
            let (wire, queue) = (
                f(m, &format!("{k}_wire_us")),
                f(m, &format!("{k}_queue_us")),
            );
            assert!(wire > 0.0 && queue >= 0.0, "{k}: {wire} {queue}");
            assert!(
                (wire + queue - f(m, &format!("{k}_us"))).abs() < 1e-6,
                "{k}: wire + queueing is the mean transfer time"
            );
        }
    }
    // nccl: launch 3.1 + barrier 3.7 + flag 3.7 + poll 0 us per call and GPU, no reduction.
    let nccl = run("nccl");
    assert_eq!(nccl["comm"], "nccl");
    for k in ["dispatch_fixed_us", "combine_fixed_us"] {
        assert!((f(&nccl, k) - 10.5).abs() < 1e-9, "{k} = {}", f(&nccl, k));
    }
    // deepep-ll: 3.1 + 0 + 5 + 24 us, and a combine's receiver reduces what it gets.
    let ll = run("deepep-ll");
    assert!((f(&ll, "dispatch_fixed_us") - 32.1).abs() < 1e-9);
    assert!(f(&ll, "combine_fixed_us") > 32.1);
    for m in [&nccl, &ll] {
        assert!(f(m, "tpot_ms") > f(&ideal, "tpot_ms"), "{}", m["comm"]);
        assert!(f(m, "comm_time_fraction_exposed") >= f(&ideal, "comm_time_fraction_exposed"));
    }
}

/// `--trace` shows a library's fixed costs as slices of their own (category `kernel`,
/// named by call, part and layer), apart from the transfers they bracket: on each GPU a
/// call's launch + barrier ends before its first transfer starts, and its flag + poll starts
/// after its last transfer ends.
#[test]
fn a_library_traces_its_fixed_costs_apart_from_its_transfers() {
    let (v, trace) = traced("traced-nccl", &small_under("nccl"));
    let events = trace["traceEvents"].as_array().unwrap();
    let named = |name: &str| {
        events
            .iter()
            .filter(|e| e["cat"] == "kernel" && e["name"] == name)
            .map(|e| {
                (
                    e["ph"].as_str().unwrap().to_string(),
                    e["pid"].as_u64().unwrap(),
                    e["ts"].as_f64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    // Layer 3 (the first MoE layer), 2 micro-batches: 8 attention + 8 FFN GPUs per call.
    for part in ["launch + barrier", "flag + poll"] {
        for kind in ["dispatch", "combine"] {
            let ev = named(&format!("{kind} {part} L3"));
            assert_eq!(
                ev.len(),
                2 * 2 * 16,
                "{kind} {part}: a begin and an end per GPU and call"
            );
        }
    }
    // Attention GPU 0's first dispatch: launch + barrier, then its transfers, then flag + poll.
    let first = |name: &str, ph: &str| {
        named(name)
            .into_iter()
            .filter(|(p, g, _)| p == ph && *g == 0)
            .map(|(_, _, ts)| ts)
            .fold(f64::INFINITY, f64::min)
    };
    let start_end = first("dispatch launch + barrier L3", "e");
    let sent: Vec<(f64, f64)> = {
        let mut begins = std::collections::HashMap::new();
        let mut out = Vec::new();
        for e in events
            .iter()
            .filter(|e| e["cat"] == "dispatch" && e["pid"] == 0)
        {
            let id = e["id"].as_u64().unwrap();
            match e["ph"].as_str().unwrap() {
                "b" => {
                    begins.insert(id, e["ts"].as_f64().unwrap());
                }
                "e" => out.push((begins[&id], e["ts"].as_f64().unwrap())),
                _ => {}
            }
        }
        out
    };
    let first_send = sent.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    assert!(
        start_end <= first_send + 1e-6,
        "{start_end} vs {first_send}"
    );
    let flag = first("dispatch flag + poll L3", "b");
    let first_call_sends_end = sent
        .iter()
        .filter(|s| s.0 < flag)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    assert!(
        first_call_sends_end <= flag + 1e-6,
        "{first_call_sends_end} vs {flag}"
    );
    assert_eq!(v["metrics"]["comm"], "nccl");
}

/// The critical path stays contiguous with a library's delays on it: communication (its
/// transfers and fixed costs) and kernels add up to the step.
#[test]
fn the_critical_path_spans_a_step_under_a_library() {
    use afdsim::config::Scenario;
    for lib in ["deepep-ll", "nccl", "stepmesh"] {
        let s = Scenario::parse(&small_under(lib), "t", None).unwrap();
        let o = afdsim::run(&s, &mut |_| {}).unwrap();
        let step = o.step().unwrap();
        let (comm, compute) = afdsim::afd::critical_path(&step.workload, &o.run);
        let span_s = o.afd().unwrap().tpot_ms / 1e3;
        assert!(
            ((comm + compute) - span_s).abs() <= 1e-9 * span_s.max(1.0),
            "{lib}: {comm} + {compute} vs {span_s}"
        );
        assert!(comm > 0.0 && compute > 0.0);
    }
}

/// Same scenario and seed under a library: identical results, run to run.
#[test]
fn a_step_under_a_library_is_deterministic() {
    let p = file("det-ll.toml", &small_under("deepep-normal"));
    let a = afdsim(&["run", p.to_str().unwrap(), "--json"]);
    let b = afdsim(&["run", p.to_str().unwrap(), "--json"]);
    assert_eq!(json(&a), json(&b));
}

/// A library's SMs slow the compute they overlap: none with `ideal` or StepMesh (zero SMs),
/// some with NCCL (32 of 132 held from launch to completion), and less of it with DeepEP's
/// low-latency kernels, which hold theirs only while issuing and collecting. The attention
/// kernels, which overlap the calls, take longer on average.
#[test]
fn a_library_s_sms_slow_the_compute_they_overlap() {
    let run = |lib: &str| {
        let p = file(&format!("sms-{lib}.toml"), &small_under(lib));
        json(&afdsim(&["run", p.to_str().unwrap(), "--json"]))["metrics"].clone()
    };
    let f = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap();
    let (ideal, stepmesh, nccl) = (run("ideal"), run("stepmesh"), run("nccl"));
    assert_eq!(f(&ideal, "sm_contention_fraction"), 0.0);
    assert_eq!(f(&stepmesh, "sm_contention_fraction"), 0.0);
    assert!(f(&nccl, "sm_contention_fraction") > 0.01, "{nccl}");
    assert!(f(&nccl, "attention_us") > f(&ideal, "attention_us"));
    // Gated off (one SM of 132), NCCL's cost is its fixed costs again.
    let p = file(
        "sms-nccl-1.toml",
        &small_under("nccl").replace("[afd]\n", "[afd]\ncomm_sms = 1\n"),
    );
    let one = json(&afdsim(&["run", p.to_str().unwrap(), "--json"]))["metrics"].clone();
    assert!(f(&one, "sm_contention_fraction") < f(&nccl, "sm_contention_fraction") / 10.0);
}
