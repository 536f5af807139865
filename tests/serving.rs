//! Request-level serving as a user meets it: `run` on a serving scenario, `slo-search`,
//! determinism, bad input; and the layer extrapolation of iteration times.

mod common;

use common::{afdsim, stderr, stdout, temp_file};

use afdsim::afd::StepShape;
use afdsim::config::Scenario;
use afdsim::serving::points::FabricPoints;
use rstest::{Context, rstest};

/// A small aggregated deployment: DeepSeek-V3.2 on two HGX H100 servers, short requests.
const SMALL: &str = r#"
name = "serving-small"
seed = 4
level = "flow"
[fabric]
file = "hgx-h100"
nodes = 2
[serving]
requests = 200
max_batch_per_gpu = 32
chunk_tokens = 1024
ttft_ms = 500.0
tpot_ms = 80.0
[serving.traffic]
name = "short"
arrival = "poisson"
rate = 20.0
[serving.traffic.input]
dist = "uniform"
low = 128
high = 1024
[serving.traffic.output]
dist = "uniform"
low = 4
high = 64
[serving.decode]
mode = "colocated"
model = "deepseek-v3.2"
attention_gpus = 16
micro_batches = 2
"#;

#[test]
fn run_reports_serving_metrics_and_is_deterministic() {
    let p = temp_file("serving", "small.toml", SMALL);
    let a = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("one JSON object");
    let m = &v["metrics"];
    assert_eq!(m["deployment"], "aggregated");
    assert_eq!(m["requests"], 200);
    assert_eq!(m["gpus"], 16);
    for k in ["ttft_ms", "tpot_ms", "latency_ms"] {
        let d = &m[k];
        let (p50, p90, p99) = (
            d["p50"].as_f64().unwrap(),
            d["p90"].as_f64().unwrap(),
            d["p99"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{k}: {d}");
    }
    assert!(m["tokens_per_s_per_gpu"].as_f64().unwrap() > 0.0);
    assert!(m["slo_met"].is_boolean());
    let b = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert_eq!(stdout(&a), stdout(&b), "same input + seed = same output");
    let c = afdsim(&["run", "--json", "--seed", "5", p.to_str().unwrap()]);
    assert_ne!(stdout(&a), stdout(&c), "another seed draws other requests");
}

#[test]
fn slo_search_brackets_the_limit() {
    let p = temp_file("serving", "search.toml", SMALL);
    let o = afdsim(&[
        "slo-search",
        "--json",
        "--probes",
        "8",
        "--tolerance",
        "0.2",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let r = &v[0]["result"];
    let probes = r["probes"].as_array().unwrap();
    assert!(!probes.is_empty() && probes.len() <= 8);
    let best = r["best_rate_per_s"]
        .as_f64()
        .expect("a feasible rate was found");
    let failed = r["failed_rate_per_s"]
        .as_f64()
        .expect("an infeasible rate was found");
    assert!(best < failed);
    // Every probe at or below the best met the limits' percentiles as printed.
    for pr in probes {
        let met = pr["met"].as_bool().unwrap();
        let (ttft, tpot) = (
            pr["ttft_ms"].as_f64().unwrap(),
            pr["tpot_ms"].as_f64().unwrap(),
        );
        assert_eq!(met, ttft <= 500.0 && tpot <= 80.0, "{pr}");
    }
}

#[rstest]
#[case::batch_in_decode(
    SMALL.replace(
        "attention_gpus = 16",
        "attention_gpus = 16\nbatch_per_attention_gpu = 4",
    ),
    "serving.decode.batch_per_attention_gpu"
)]
#[case::prefill_gpus_with_prefill_pool(
    SMALL.replace("requests = 200", "requests = 200\nprefill_gpus = 16"),
    "serving.prefill_gpus"
)]
#[case::no_tpot(SMALL.replace("tpot_ms = 80.0", ""), "serving.tpot_ms")]
#[case::output_low_zero(
    SMALL.replace("low = 4\nhigh = 64", "low = 0\nhigh = 64"),
    "serving.traffic.output"
)]
#[case::too_few_attention_gpus(
    SMALL.replace("attention_gpus = 16", "attention_gpus = 2"),
    "serving.decode"
)]
// 16 experts per GPU plus the attention side fit 80 GB, not 70 % of it.
#[case::memory_reserve(
    SMALL.replace(
        "chunk_tokens = 1024",
        "chunk_tokens = 1024\nmemory_reserve = 0.3",
    ),
    "serving.memory_reserve"
)]
fn bad_serving_input_names_the_key(
    #[context] ctx: Context,
    #[case] text: String,
    #[case] key: &str,
) {
    let suite = format!("serving-{}", ctx.description.unwrap());
    let p = temp_file(&suite, "bad.toml", &text);
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(key), "{key} not in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_request_that_never_fits_is_named_by_its_trace_line() {
    let trace = temp_file(
        "serving",
        "trace.jsonl",
        "{\"arrival_s\": 0.0, \"input\": 100, \"output\": 10}\n{\"arrival_s\": 0.5, \"input\": 9000000, \"output\": 10}\n",
    );
    let text = SMALL
        .replace(
            "[serving.traffic]\nname = \"short\"\narrival = \"poisson\"\nrate = 20.0",
            &format!(
                "[serving.traffic]\nname = \"t\"\narrival = \"trace\"\ntrace = \"{}\"",
                trace.display()
            ),
        )
        .replace("requests = 200", "requests = 2");
    let text = text
        .split("[serving.traffic.input]")
        .next()
        .unwrap()
        .to_string()
        + "[serving.decode]\nmode = \"colocated\"\nmodel = \"deepseek-v3.2\"\nattention_gpus = 16\nmicro_batches = 2\n";
    let p = temp_file("serving", "trace.toml", &text);
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("line 2") && e.contains("never"), "{e}");
}

/// Iteration times extrapolated from 4 and 8 MoE layers agree with whole-model steps, up to
/// the layers' own routing variance.
#[test]
fn layer_extrapolation_matches_whole_steps() {
    let s = Scenario::parse(SMALL, "small", None).unwrap();
    let spec = s.serving().unwrap();
    let points = FabricPoints::new(spec, s.fabric(), s.net(), s.level());
    for (batch, ctx, tokens, prefix) in [(16, 4096, 0, 0), (1, 512, 0, 0), (8, 2048, 1024, 4096)] {
        let pool = &spec.decode;
        let shape = StepShape {
            active_attention_gpus: pool.attention_gpus.len() as u32,
            batch_per_attention_gpu: batch,
            context: ctx,
            contexts: Vec::new(),
            prefill_tokens: tokens,
            prefill_prefix: prefix,
            layers: pool.model.layers,
        };
        let whole = points.step(pool, &shape).unwrap().as_secs_f64();
        let fast = points.time_of(pool, &shape).unwrap().as_secs_f64();
        let err = (fast - whole).abs() / whole;
        // One sequence per attention GPU puts about 8 tokens on each FFN GPU's 16 experts:
        // how many experts a layer's draw activates sets its grouped GEMMs' time (an idle
        // expert reads no weights; docs/compute.md, "Uneven loads"), so layers differ and
        // the 4 layers extrapolated over 54 are a sample of them (2.5 % here). Larger
        // batches activate every expert: within 1 %.
        let tolerance = if batch == 1 { 0.03 } else { 0.01 };
        assert!(
            err < tolerance,
            "({batch},{ctx},{tokens},{prefix}): {fast} vs {whole}"
        );
    }
}

/// An AFD prefill pool from a `[serving.prefill]` table: every GPU of both pools counted;
/// the table and `prefill_gpus` exclude each other.
#[test]
fn an_afd_prefill_pool() {
    let text = SMALL
        .replace("nodes = 2", "nodes = 5")
        .replace("requests = 200", "requests = 30")
        .replace(
            "[serving.decode]",
            "[serving.prefill]\nmode = \"afd\"\nattention_gpus = 4\nffn_gpus = 16\n[serving.decode]",
        );
    let p = temp_file("serving", "afd-prefill.toml", &text);
    let o = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["metrics"]["deployment"], "pd");
    assert_eq!(v["metrics"]["gpus"], 16 + 4 + 16);
    assert!(v["metrics"]["kv_transfer_ms"]["mean"].as_f64().unwrap() > 0.0);
    let both = text.replace("requests = 30", "requests = 30\nprefill_gpus = 16");
    let p = temp_file("serving", "both.toml", &both);
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("serving.prefill"), "{}", stderr(&o));
}

/// P/D on four HGX servers: the prefill pool's KV caches enter the decode servers through
/// the NICs that carry the decode pool's own all-to-all. With `kv_shares_fabric` (the
/// default) the transfers get what the iterations leave and take longer; off, they see an
/// idle fabric. Each run is deterministic; bad values name the key.
#[test]
fn kv_transfers_share_the_nics_with_the_iterations() {
    let pd = SMALL
        .replace("nodes = 2", "nodes = 4")
        .replace("requests = 200", "requests = 80\nprefill_gpus = 16")
        .replace("rate = 20.0", "rate = 40.0");
    let kv = |text: &str| {
        let p = temp_file("serving", "kv-share.toml", text);
        let o = afdsim(&["run", "--json", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["metrics"]["deployment"], "pd");
        let k = &v["metrics"]["kv_transfer_ms"];
        (
            k["mean"].as_f64().unwrap(),
            k["p50"].as_f64().unwrap(),
            stdout(&o),
        )
    };
    let on = kv(&pd);
    let explicit = kv(&pd.replace(
        "prefill_gpus = 16",
        "prefill_gpus = 16\nkv_shares_fabric = true",
    ));
    assert_eq!(on.2, explicit.2, "true is the default");
    let off = kv(&pd.replace(
        "prefill_gpus = 16",
        "prefill_gpus = 16\nkv_shares_fabric = false",
    ));
    assert!(
        on.0 > off.0 * 1.01 && on.1 > off.1,
        "KV transfer mean/p50 on {:?} vs off {:?}",
        (on.0, on.1),
        (off.0, off.1)
    );
    for (text, want) in [
        (
            pd.replace(
                "prefill_gpus = 16",
                "prefill_gpus = 16\nkv_shares_fabric = \"yes\"",
            ),
            "true",
        ),
        (
            SMALL.replace("requests = 200", "requests = 200\nkv_shares_fabric = false"),
            "prefill pool",
        ),
    ] {
        let p = temp_file("serving", "kv-bad.toml", &text);
        let o = afdsim(&["run", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("serving.kv_shares_fabric") && e.contains(want) && e.contains("kv-bad.toml"),
            "{e}"
        );
    }
}

/// [`SMALL`] under KV pressure: GPUs of 63.2 GiB leave about 4,100 tokens of KV cache
/// each, and outputs (300-900 tokens) are longer than prompts (128-512).
fn kv_pressure(extra: &str) -> String {
    SMALL
        .replace("micro_batches = 2", "micro_batches = 2\nhbm_gib = 63.2")
        .replace("requests = 200", &format!("requests = 100\n{extra}"))
        .replace("low = 4", "low = 300")
        .replace("high = 64", "high = 900")
        .replace("high = 1024", "high = 512")
}

fn run_json(name: &str, text: &str) -> (serde_json::Value, String) {
    let p = temp_file("serving", name, text);
    let o = afdsim(&["run", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    (serde_json::from_str(&out).expect("one JSON object"), out)
}

/// `admission = "grow"` admits on the prompt and preempts when the caches outgrow the
/// GPU: aggregated and P/D both preempt and recompute, first tokens come far sooner than
/// when whole caches are reserved, and the run is deterministic. "reserve" (the default)
/// reports no preemption keys at all.
#[test]
fn grow_admission_preempts_under_kv_pressure() {
    for (pd, extra) in [(false, ""), (true, "prefill_gpus = 16\n")] {
        let text = |a: &str| {
            let t = kv_pressure(&format!("{extra}{a}"));
            if pd {
                t.replace("nodes = 2", "nodes = 4")
            } else {
                t
            }
        };
        let (reserve, default_out) = run_json("kvp-default.toml", &text(""));
        let (_, reserve_out) = run_json("kvp-reserve.toml", &text("admission = \"reserve\""));
        assert_eq!(default_out, reserve_out, "reserve is the default");
        let grow_text = text("admission = \"grow\"\nkv_watermark = 0.02");
        let (grow, grow_out) = run_json("kvp-grow.toml", &grow_text);
        let (_, again) = run_json("kvp-grow.toml", &grow_text);
        assert_eq!(grow_out, again, "same input + seed = same output");
        let (r, g) = (&reserve["metrics"], &grow["metrics"]);
        assert_eq!(r["deployment"], if pd { "pd" } else { "aggregated" });
        assert!(r.get("preemptions").is_none() && r.get("recomputed_tokens").is_none());
        let (n, tokens) = (
            g["preemptions"].as_u64().unwrap(),
            g["recomputed_tokens"].as_u64().unwrap(),
        );
        // Each preemption recomputes at most a whole sequence (input + output - 1).
        assert!(
            n > 0 && tokens > 0 && tokens < n * (512 + 900),
            "{n}, {tokens}"
        );
        let ttft = |m: &serde_json::Value| m["ttft_ms"]["p90"].as_f64().unwrap();
        assert!(
            ttft(g) * 10.0 < ttft(r),
            "TTFT p90 grow {} vs reserve {}",
            ttft(g),
            ttft(r)
        );
        assert!(g["mean_decode_batch"].as_f64() > r["mean_decode_batch"].as_f64());
        // The human table says the same (and nothing of preemption under reserve).
        let human = |name: &str, text: &str| {
            let p = temp_file("serving", name, text);
            stdout(&afdsim(&["run", p.to_str().unwrap()]))
        };
        let line = format!("{n}, {tokens}");
        let h = human("kvp-grow-human.toml", &grow_text);
        assert!(
            h.lines()
                .any(|l| l.contains("preemptions, tokens recomputed") && l.contains(&line)),
            "{h}"
        );
        assert!(!human("kvp-reserve-human.toml", &text("")).contains("preemptions"));
    }
}

/// slo-search says how many sequences each probe preempted under grow (and, in JSON, only
/// then).
#[test]
fn slo_search_reports_preemptions_under_grow() {
    let search = |name: &str, text: &str, json: bool| {
        let p = temp_file("serving", name, text);
        let mut args = vec!["slo-search", "--probes", "2", p.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let o = afdsim(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let grow = kv_pressure("admission = \"grow\"");
    let text = search("kvp-search-grow.toml", &grow, false);
    let probes: Vec<&str> = text.lines().filter(|l| l.starts_with("  probe ")).collect();
    assert_eq!(probes.len(), 2, "{text}");
    assert!(probes.iter().any(|l| l.contains("preempted)")), "{text}");
    let json = search("kvp-search-grow.toml", &grow, true);
    assert!(json.contains("\"preemptions\""), "{json}");
    let reserve = search("kvp-search-reserve.toml", &kv_pressure(""), true);
    assert!(!reserve.contains("preemptions"), "{reserve}");
}

/// Bad admission settings name the file, the key and what is allowed.
#[rstest]
#[case::unknown_admission("admission = \"lazy\"", "serving.admission", "\"grow\"")]
#[case::admission_not_a_string("admission = true", "serving.admission", "\"reserve\"")]
#[case::watermark_without_grow(
    "kv_watermark = 0.05",
    "serving.kv_watermark",
    "admission = \"grow\""
)]
#[case::watermark_with_reserve(
    "admission = \"reserve\"\nkv_watermark = 0.05",
    "serving.kv_watermark",
    "admission = \"grow\""
)]
#[case::watermark_above_1(
    "admission = \"grow\"\nkv_watermark = 1.5",
    "serving.kv_watermark",
    "0 <= watermark < 1"
)]
#[case::watermark_not_a_number(
    "admission = \"grow\"\nkv_watermark = \"x\"",
    "serving.kv_watermark",
    "fraction"
)]
fn bad_admission_settings_are_named(
    #[context] ctx: Context,
    #[case] extra: &str,
    #[case] k: &str,
    #[case] want: &str,
) {
    let p = temp_file(
        &format!("serving-{}", ctx.description.unwrap()),
        "admission-bad.toml",
        &SMALL.replace("requests = 200", &format!("requests = 200\n{extra}")),
    );
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{extra}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(k) && e.contains(want) && e.contains("admission-bad.toml"),
        "{extra}: {e}"
    );
}

/// SMALL at a light 2 requests/s (100 s of arrivals, latencies of a few seconds).
fn small_light() -> String {
    let text = SMALL.replace("rate = 20.0", "rate = 2.0");
    assert_ne!(text, SMALL);
    text
}

/// Both throughputs, named apart (issue 13): the whole run's is the requests over first
/// arrival to last finish exactly; the steady one, at light load, is the offered rate
/// within the Poisson noise of 200 arrivals (3 standard deviations, 3 sqrt(2 / 200) = 30 %
/// relative: the count in half the arrival window and the window's length).
#[test]
fn steady_and_whole_run_throughput() {
    let (v, _) = run_json("light.toml", &small_light());
    let p = temp_file("serving", "light-human.toml", &small_light());
    let o = afdsim(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let human = stdout(&o);
    let m = &v["metrics"];
    let whole = m["throughput_req_per_s"].as_f64().unwrap();
    let duration = m["duration_s"].as_f64().unwrap();
    assert!(
        (whole * duration - 200.0).abs() < 1e-9 * 200.0,
        "{whole} x {duration}"
    );
    let steady = m["throughput_steady_req_per_s"].as_f64().unwrap();
    let window = m["steady_window_s"].as_f64().unwrap();
    assert!(
        window > 0.0 && window < duration / 2.0 + 1e-9,
        "{window} of {duration}"
    );
    let tol = 3.0 * (2.0f64 / 200.0).sqrt();
    assert!((steady / 2.0 - 1.0).abs() <= tol, "{steady}");
    assert!(
        human.contains("throughput, whole run (first arrival to last finish)")
            && human.contains("throughput, steady (2nd half of the arrivals"),
        "{human}"
    );
}

/// Several scenarios' searches run side by side, yet the text output tells them one after
/// another, in the order given (each header, then its probes), and each row is the one a
/// search of that scenario alone gives.
#[test]
fn several_scenarios_are_told_in_order_with_their_own_results() {
    let a = temp_file("serving", "order-a.toml", SMALL);
    let light = small_light().replace("name = \"serving-small\"", "name = \"serving-light\"");
    let b = temp_file("serving", "order-b.toml", &light);
    let args = |files: &[&std::path::Path], json: bool| {
        let mut v = vec!["slo-search", "--probes", "3", "--tolerance", "0.2"];
        if json {
            v.push("--json");
        }
        v.extend(files.iter().map(|p| p.to_str().unwrap()));
        afdsim(&v)
    };
    let both = args(&[&a, &b], false);
    assert!(both.status.success(), "{}", stderr(&both));
    let text = stdout(&both);
    let lines: Vec<&str> = text.lines().collect();
    let header = |name: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no header for {name}:\n{text}"))
    };
    let (ha, hb) = (header("serving-small"), header("serving-light"));
    assert!(ha < hb, "{text}");
    let probes = |from: usize, to: usize| {
        lines[from..to]
            .iter()
            .filter(|l| l.trim_start().starts_with("probe"))
            .count()
    };
    let end = lines
        .iter()
        .position(|l| l.starts_with("scenario "))
        .unwrap();
    // Each scenario's probes right after its own header, as many as its search alone made.
    let rows = |files: &[&std::path::Path]| -> Vec<serde_json::Value> {
        let o = args(files, true);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let (alone_a, alone_b) = (rows(&[&a])[0].clone(), rows(&[&b])[0].clone());
    let n = |v: &serde_json::Value| v["result"]["probes"].as_array().unwrap().len();
    assert_eq!(probes(ha, hb), n(&alone_a), "{text}");
    assert_eq!(probes(hb, end), n(&alone_b), "{text}");
    assert_eq!(rows(&[&a, &b]), vec![alone_a, alone_b]);
}

/// `best` holds the metrics of the best rate's probe: its `rate_per_s` is that rate, and
/// Little's product uses it (issue 13: both were the scenario's own rate, where the search
/// started).
#[test]
fn slo_search_best_metrics_are_at_the_best_rate() {
    let p = temp_file("serving", "best.toml", &small_light());
    let o = afdsim(&[
        "slo-search",
        "--json",
        "--probes",
        "3",
        "--tolerance",
        "0.2",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let r = &v[0]["result"];
    let best = r["best_rate_per_s"]
        .as_f64()
        .expect("a rate met the limits");
    assert!(
        best > 2.0,
        "precondition: the search moved off the scenario's rate: {r}"
    );
    let m = &r["best"];
    assert_eq!(m["rate_per_s"].as_f64(), Some(best), "{m}");
    let latency_s = m["latency_ms"]["mean"].as_f64().unwrap() / 1e3;
    let little = m["littles_law_product"].as_f64().unwrap();
    assert!((little - best * latency_s).abs() <= 1e-9 * little, "{m}");
    let probe = r["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["rate_per_s"].as_f64() == Some(best))
        .expect("the best rate was probed");
    assert_eq!(probe["tokens_per_s_per_gpu"], m["tokens_per_s_per_gpu"]);
}

/// A search reports its progress (each probe's requests finished, the corners simulated)
/// and gives the very same result, serialized, as one that reports nothing.
#[test]
fn progress_changes_nothing_and_counts_every_request_and_corner() {
    use afdsim::error::InputError;
    use afdsim::serving::traffic::Request;
    use afdsim::serving::{Server, search};
    let p = temp_file("serving", "progress.toml", &small_light());
    let s = Scenario::load_at_level(&p, None, None).unwrap();
    let spec = s.serving().unwrap();
    let slo = spec.slo.unwrap();
    let opts = search::Options {
        max_probes: 2,
        tolerance: 0.2,
        stop_early: true,
        keep_up: 0.0,
    };
    let draw = |rate: f64| -> Result<Vec<Request>, InputError> {
        spec.traffic
            .with_rate(rate)?
            .requests(spec.requests, s.seed())
    };
    let mut plain = Server::new(spec, s.fabric(), s.net(), s.level());
    let a = search::search(&mut plain, slo, opts, 2.0, draw, |_| {}).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let mut observed = Server::new(spec, s.fabric(), s.net(), s.level());
    let b = search::search_observed(
        &mut observed,
        slo,
        opts,
        2.0,
        draw,
        |_| {},
        &|p: search::SearchProgress| seen.lock().unwrap().push(p),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let seen = seen.into_inner().unwrap();
    assert_eq!(b.probes.len(), 2);
    for (i, probe) in b.probes.iter().enumerate() {
        let mine: Vec<_> = seen.iter().filter(|p| p.probe == i as u32 + 1).collect();
        let last = mine.last().expect("each probe reports");
        assert_eq!(last.rate_per_s, probe.rate_per_s);
        assert_eq!(last.run.requests_done, spec.requests as u64);
        for p in &mine {
            assert_eq!(p.run.requests, spec.requests as u64);
            assert!(p.run.requests_done <= p.run.requests, "{p:?}");
            assert!(p.run.corners_done <= p.run.corners_needed, "{p:?}");
        }
    }
    let corners = seen.iter().map(|p| p.run.corners_simulated).max();
    assert_eq!(corners, Some(observed.cost_stats().corners_simulated));
    assert!(corners.unwrap() > 0);
}

/// `SMALL` with `requests` per probe, loaded.
fn small_with(requests: u32, name: &str) -> Scenario {
    let text = SMALL.replace("requests = 200", &format!("requests = {requests}"));
    let p = temp_file("serving", name, &text);
    Scenario::load_at_level(&p, None, None).unwrap()
}

/// The request stream of serving scenario `s` at a rate (what a search probes).
fn draws(
    s: &Scenario,
) -> impl Fn(f64) -> Result<Vec<afdsim::serving::traffic::Request>, afdsim::error::InputError> + Copy + '_
{
    let spec = s.serving().unwrap();
    move |rate| {
        spec.traffic
            .with_rate(rate)?
            .requests(spec.requests, s.seed())
    }
}

/// Stopping a probe once it certainly misses the limits changes no verdict: the probes'
/// rates and verdicts, the answer and its metrics are those of whole probes; a stopped
/// probe's TTFT and TPOT are at most the whole probe's.
#[test]
fn stopping_missed_probes_early_changes_no_verdict() {
    use afdsim::serving::{Server, search};
    let s = small_with(1500, "stop-early.toml");
    let spec = s.serving().unwrap();
    let slo = spec.slo.unwrap();
    let draw = draws(&s);
    let run = |stop_early: bool| {
        let opts = search::Options {
            max_probes: 6,
            tolerance: 0.05,
            stop_early,
            keep_up: 0.0,
        };
        let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
        search::search(&mut server, slo, opts, 80.0, draw, |_| {}).unwrap()
    };
    let (early, whole) = (run(true), run(false));
    assert_eq!(early.best_rate_per_s, whole.best_rate_per_s);
    assert!(early.best_rate_per_s.is_some());
    // Everything but the corners the probe simulated itself (earlier probes stopped early
    // left more of them to it).
    let metrics = |r: &search::SearchResult| {
        let mut m = r.best.clone().expect("an answer");
        m.iterations_simulated = 0;
        serde_json::to_string(&m).unwrap()
    };
    assert_eq!(metrics(&early), metrics(&whole));
    assert_eq!(early.probes.len(), whole.probes.len());
    for (e, w) in early.probes.iter().zip(&whole.probes) {
        assert_eq!((e.rate_per_s, e.met), (w.rate_per_s, w.met));
        match e.stopped_after {
            Some(n) => {
                assert!(!e.met && n < spec.requests as u64, "{e:?}");
                assert!(
                    e.ttft_ms <= w.ttft_ms && e.tpot_ms <= w.tpot_ms,
                    "{e:?} {w:?}"
                );
            }
            None => assert_eq!(format!("{e:?}"), format!("{w:?}")),
        }
    }
    assert!(
        early.probes.iter().any(|p| p.stopped_after.is_some()),
        "no probe was stopped: the test needs an overloaded probe"
    );
}

/// A search over several SLO cells on one server gives each cell the probes and verdicts
/// of its own search, an answer at least its own search's and at least any stricter cell's,
/// and serves fewer probes than the searches together.
#[test]
fn searching_slo_cells_together_equals_searching_each() {
    use afdsim::serving::{Server, Slo, search};
    let s = small_with(1000, "cells.toml");
    let spec = s.serving().unwrap();
    let draw = draws(&s);
    let opts = search::Options {
        max_probes: 6,
        tolerance: 0.05,
        stop_early: true,
        keep_up: 0.0,
    };
    let cells: Vec<Slo> = [
        (300.0, 60.0),
        (300.0, 100.0),
        (1000.0, 60.0),
        (1000.0, 100.0),
    ]
    .iter()
    .map(|&(t, p)| Slo::new(t, p, 90.0).unwrap())
    .collect();
    let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
    let mut served = 0;
    let together =
        search::search_cells(&mut server, &cells, opts, 40.0, draw, &|_| {}, &mut served).unwrap();
    let mut probes = 0;
    for (slo, t) in cells.iter().zip(&together) {
        let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
        let alone = search::search(&mut server, *slo, opts, 40.0, draw, |_| {}).unwrap();
        probes += alone.probes.len() as u32;
        assert!(t.best_rate_per_s >= alone.best_rate_per_s, "{slo:?}");
        if let Some(b) = t.best_rate_per_s {
            // The answer met this cell's limits in a whole run at that rate.
            let m = t.best.as_ref().unwrap();
            assert_eq!(m.rate_per_s, Some(b));
            let p = t.best_probe.as_ref().unwrap();
            assert!(p.met && p.rate_per_s == b, "{p:?}");
            assert!(
                m.ttft_ms.p90 <= slo.ttft_ms && m.tpot_ms.p90 <= slo.tpot_ms,
                "{m:?}"
            );
        }
        assert_eq!(t.failed_rate_per_s, alone.failed_rate_per_s, "{slo:?}");
        let verdicts = |r: &search::SearchResult| -> Vec<(f64, bool)> {
            r.probes.iter().map(|p| (p.rate_per_s, p.met)).collect()
        };
        assert_eq!(verdicts(t), verdicts(&alone), "{slo:?}");
    }
    assert!(served < probes, "{served} probes served, {probes} alone");
    // Looser limits never allow less.
    for (i, a) in cells.iter().enumerate() {
        for (j, b) in cells.iter().enumerate() {
            if a.ttft_ms <= b.ttft_ms && a.tpot_ms <= b.tpot_ms {
                assert!(
                    together[j].best_rate_per_s >= together[i].best_rate_per_s,
                    "{b:?} allows less than {a:?}"
                );
            }
        }
    }
    assert!(together.iter().any(|r| r.best_rate_per_s.is_some()));
    assert!(together.iter().any(|r| r.failed_rate_per_s.is_some()));
}

/// Servers sharing corners: a corner one simulated is taken by the other, which serves the
/// same run as a server of its own; another fabric (context) shares nothing.
#[test]
fn shared_corners_change_no_run() {
    use afdsim::serving::Server;
    use afdsim::serving::cost::SharedCorners;
    let p = temp_file("serving", "shared.toml", &small_light());
    let s = Scenario::load_at_level(&p, None, None).unwrap();
    let spec = s.serving().unwrap();
    let reqs = spec.traffic.requests(spec.requests, s.seed()).unwrap();
    let shared = std::sync::Arc::new(SharedCorners::default());
    let mut a = Server::new(spec, s.fabric(), s.net(), s.level());
    a.share_corners(shared.clone(), "hgx-h100 x2");
    let ra = a.serve(&reqs).unwrap();
    assert!(!shared.is_empty() && a.cost_stats().corners_shared == 0);
    let mut b = Server::new(spec, s.fabric(), s.net(), s.level());
    b.share_corners(shared.clone(), "hgx-h100 x2");
    let rb = b.serve(&reqs).unwrap();
    let st = b.cost_stats();
    assert_eq!(st.corners_simulated, 0, "{st:?}");
    assert_eq!(st.corners_shared, a.cost_stats().corners_simulated);
    let mut c = Server::new(spec, s.fabric(), s.net(), s.level());
    let rc = c.serve(&reqs).unwrap();
    assert!(rb.run.requests == rc.run.requests && rb.run.requests == ra.run.requests);
    // Another context (another fabric) shares nothing.
    let mut d = Server::new(spec, s.fabric(), s.net(), s.level());
    d.share_corners(shared, "hgx-h100 x4");
    d.serve(&reqs).unwrap();
    assert_eq!(d.cost_stats().corners_shared, 0);
}

/// A short probe far beyond what the deployment sustains can meet loose limits (its whole
/// burst arrives within the TTFT limit); with `keep_up` the search calls it missed.
#[test]
fn a_probe_that_falls_behind_misses_with_keep_up() {
    use afdsim::serving::{Server, Slo, search};
    let s = small_with(300, "keep-up.toml");
    let spec = s.serving().unwrap();
    let draw = draws(&s);
    let slo = Slo::new(600_000.0, 10_000.0, 90.0).unwrap();
    let probe = |keep_up: f64| {
        let opts = search::Options {
            max_probes: 1,
            tolerance: 0.05,
            stop_early: true,
            keep_up,
        };
        let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
        let r = search::search(&mut server, slo, opts, 2000.0, draw, |_| {}).unwrap();
        r.probes[0].clone()
    };
    let loose = probe(0.0);
    assert!(loose.met && !loose.falls_behind, "{loose:?}");
    let strict = probe(0.9);
    assert!(!strict.met && strict.falls_behind, "{strict:?}");
    assert_eq!(
        (strict.ttft_ms, strict.tpot_ms),
        (loose.ttft_ms, loose.tpot_ms)
    );
}

/// Each pool has its communication library: by default DeepEP's low-latency kernels for
/// decode and its normal kernels for prefill; a `comm` in `[serving.decode]` applies to both,
/// and `[serving.prefill]` may set its own.
#[test]
fn each_pool_has_its_communication_library() {
    use afdsim::config::Scenario;
    let text = include_str!("../workloads/scenarios/serving-pd-afd-64.toml");
    let libs = |t: &str| {
        let s = Scenario::parse(t, "t.toml", None).unwrap();
        let sv = s.serving().unwrap();
        (
            sv.decode.comm.name.clone(),
            sv.prefill.as_ref().unwrap().comm.name.clone(),
        )
    };
    assert_eq!(libs(text), ("deepep-ll".into(), "deepep-normal".into()));
    let named = text.replace("[serving.decode]\n", "[serving.decode]\ncomm = \"nccl\"\n");
    assert_eq!(libs(&named), ("nccl".into(), "nccl".into()));
    let own = text.replace("prefill_gpus = 16\n", "").replace(
        "[serving.decode]\n",
        "[serving.prefill]\nmode = \"colocated\"\nattention_gpus = 16\ncomm = \"stepmesh\"\n\
             [serving.decode]\n",
    );
    assert_eq!(libs(&own), ("deepep-ll".into(), "stepmesh".into()));
}
