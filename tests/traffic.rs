//! Serving workloads (`src/serving/traffic.rs`): presets, distributions against their exact
//! means, Poisson arrivals against the exponential's moments, determinism, traces and errors.
//!
//! Statistical tolerances are 4 standard errors from the central limit theorem (a false
//! failure about once in 16,000 runs, and the seeds are fixed, so a run is repeatable).

use std::path::{Path, PathBuf};

use afdsim::serving::traffic::{Request, Traffic, cached_tokens, load_trace};
use rstest::rstest;

const N: u32 = 100_000;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("afdsim-traffic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn parse(text: &str) -> Result<Traffic, afdsim::error::InputError> {
    Traffic::parse("t.toml", text, Path::new("."))
}

/// Mean and sample standard deviation.
fn moments(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let xs: Vec<f64> = xs.collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Asserts that a sample mean matches `want` within 4 standard errors.
fn assert_mean(what: &str, xs: impl Iterator<Item = f64>, want: f64) {
    let (mean, sd) = moments(xs);
    let tol = 4.0 * sd / f64::from(N).sqrt();
    assert!(
        (mean - want).abs() <= tol,
        "{what}: sample mean {mean:.3}, expected {want:.3} ± {tol:.3}"
    );
}

fn check_invariants(rs: &[Request]) {
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.id as usize, i);
        assert!(r.input >= 1 && r.output >= 1 && r.cached < r.input, "{r:?}");
    }
    assert!(rs.windows(2).all(|w| w[0].arrival <= w[1].arrival));
}

#[test]
fn presets_parse_and_match_their_exact_means() {
    assert_eq!(
        Traffic::preset_names(),
        ["chat", "coding", "agentic-coding"]
    );
    assert!(Traffic::preset("nope").is_none());
    for name in Traffic::preset_names() {
        let t = Traffic::preset(name).unwrap();
        assert_eq!(t.name(), *name);
        let rs = t.requests(N, 7).unwrap();
        assert_eq!(rs.len(), N as usize);
        check_invariants(&rs);
        let f = |g: fn(&Request) -> u32| rs.iter().map(move |r| f64::from(g(r)));
        assert_mean(&format!("{name} input"), f(|r| r.input), t.mean_input());
        assert_mean(&format!("{name} output"), f(|r| r.output), t.mean_output());
        assert_mean(&format!("{name} cached"), f(|r| r.cached), t.mean_cached());
        eprintln!(
            "{name}: rate {:?}/s, mean input {:.1}, output {:.1}, cached {:.1}",
            t.rate(),
            t.mean_input(),
            t.mean_output(),
            t.mean_cached()
        );
    }
}

#[test]
fn every_request_caches_round_reuse_times_input_but_prefills_one_token() {
    let t = Traffic::preset("agentic-coding").unwrap();
    for r in t.requests(10_000, 3).unwrap() {
        let want = ((0.9 * f64::from(r.input)).round() as u32).min(r.input - 1);
        assert_eq!(r.cached, want, "{r:?}");
    }
    // A reuse of 1 still leaves one token to prefill, also for one-token prompts.
    let t = parse(&poisson_with("prefix_reuse = 1.0", FIXED_LENGTHS)).unwrap();
    assert!(t.requests(100, 1).unwrap().iter().all(|r| r.cached == 9));
    assert_eq!(cached_tokens(1, 1.0), 0);
}

#[test]
fn poisson_gaps_have_mean_one_over_rate_and_unit_coefficient_of_variation() {
    let rate = 250.0;
    let t = parse(&poisson_with(&format!("rate = {rate}"), FIXED_LENGTHS)).unwrap();
    assert_eq!(t.rate(), Some(rate));
    let rs = t.requests(N, 11).unwrap();
    // The first gap runs from time 0.
    let gaps: Vec<f64> = std::iter::once(rs[0].arrival.as_ps())
        .chain(
            rs.windows(2)
                .map(|w| w[1].arrival.as_ps() - w[0].arrival.as_ps()),
        )
        .map(|ps| ps as f64 * 1e-12)
        .collect();
    let (mean, sd) = moments(gaps.iter().copied());
    // Exponential gaps: the mean's standard error is (1/rate)/sqrt(n); by the delta method on
    // (mean, variance) with the exponential's moments (mu3 = 2, mu4 = 9 in units of the
    // mean), the coefficient of variation's standard error is 1/sqrt(n).
    let se = 1.0 / f64::from(N).sqrt();
    assert!(
        (mean * rate - 1.0).abs() <= 4.0 * se,
        "mean gap {mean} s, expected {} s",
        1.0 / rate
    );
    assert!((sd / mean - 1.0).abs() <= 4.0 * se, "CV {}", sd / mean);
}

#[test]
fn clamped_lognormal_mean_is_the_mean_of_what_is_drawn() {
    // A wide clamp: the exact sum reproduces the lognormal's closed-form mean.
    let wide = parse(&poisson_with(
        "rate = 1.0",
        "[input]\ndist = \"lognormal\"\nmean = 1000.0\nsigma = 0.5\nmax = 4194304\n\
         [output]\ndist = \"fixed\"\nvalue = 1",
    ))
    .unwrap();
    assert!(
        (wide.mean_input() - 1000.0).abs() < 0.01,
        "{}",
        wide.mean_input()
    );
    // A tight clamp moves the mean far from the file's `mean`; samples follow the clamp.
    let tight = parse(&poisson_with(
        "rate = 1.0",
        "[input]\ndist = \"lognormal\"\nmean = 1000.0\nsigma = 2.0\nmin = 50\nmax = 2000\n\
         [output]\ndist = \"uniform\"\nlow = 3\nhigh = 9",
    ))
    .unwrap();
    assert!(tight.mean_input() < 700.0, "{}", tight.mean_input());
    assert!((tight.mean_output() - 6.0).abs() < 1e-12);
    let rs = tight.requests(N, 5).unwrap();
    assert_mean(
        "tight input",
        rs.iter().map(|r| f64::from(r.input)),
        tight.mean_input(),
    );
    assert_mean(
        "uniform output",
        rs.iter().map(|r| f64::from(r.output)),
        6.0,
    );
    assert!(rs.iter().all(|r| (50..=2000).contains(&r.input)));
    assert!(rs.iter().any(|r| r.input == 2000) && rs.iter().any(|r| r.input == 50));
    assert!(rs.iter().any(|r| r.output == 3) && rs.iter().any(|r| r.output == 9));
}

#[test]
fn the_same_seed_gives_the_same_requests_and_another_seed_others() {
    let t = Traffic::preset("chat").unwrap();
    let a = t.requests(1000, 42).unwrap();
    assert_eq!(a, t.requests(1000, 42).unwrap());
    assert_ne!(a, t.requests(1000, 43).unwrap());
    // Drawing more requests extends the list without changing its start.
    assert_eq!(a[..100], t.requests(100, 42).unwrap()[..]);
    // Arrivals, inputs and outputs come from separate streams: another output
    // distribution leaves the arrivals and inputs as they were.
    let text = include_str!("../workloads/traffic/chat.toml");
    let other = parse(&text.replace("mean = 300.0", "mean = 50.0")).unwrap();
    let b = other.requests(1000, 42).unwrap();
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.arrival == y.arrival && x.input == y.input)
    );
    assert_ne!(
        a.iter().map(|r| r.output).collect::<Vec<_>>(),
        b.iter().map(|r| r.output).collect::<Vec<_>>()
    );
}

#[test]
fn with_rate_rescales_poisson_gaps_and_keeps_lengths() {
    let t = Traffic::preset("coding").unwrap();
    let fast = t.with_rate(8.0).unwrap();
    assert_eq!(fast.rate(), Some(8.0));
    assert_eq!(fast.mean_input(), t.mean_input());
    let (a, b) = (
        t.requests(1000, 9).unwrap(),
        fast.requests(1000, 9).unwrap(),
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!((x.input, x.output, x.cached), (y.input, y.output, y.cached));
        // Twice the rate, the same uniforms: every gap halves (each rounded to 1 ps).
        let half = x.arrival.as_ps() as f64 / 2.0;
        assert!((y.arrival.as_ps() as f64 - half).abs() <= i as f64 + 1.0);
    }
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(t.with_rate(bad).is_err(), "{bad}");
    }
}

#[test]
fn ten_thousand_requests_take_milliseconds() {
    let t = Traffic::preset("agentic-coding").unwrap();
    let start = std::time::Instant::now();
    let rs = t.requests(10_000, 1).unwrap();
    let took = start.elapsed();
    eprintln!("10,000 agentic-coding requests drawn in {took:?}");
    assert_eq!(rs.len(), 10_000);
    // Generous against a loaded 2-core machine; a quiet one takes about a millisecond.
    assert!(took.as_millis() < 100, "{took:?}");
    let start = std::time::Instant::now();
    let _ = Traffic::preset("agentic-coding").unwrap();
    eprintln!(
        "agentic-coding preset parsed, exact means summed, in {:?}",
        start.elapsed()
    );
}

// ---- traces ----

const GOOD_TRACE: &str = r#"{"arrival_s": 0.0, "input": 100, "output": 10}
{"arrival_s": 0.5, "input": 2000, "output": 1, "cached": 1999}

{"arrival_s": 0.5, "input": 7, "output": 3, "cached": 2}
{"arrival_s": 2.0, "input": 50, "output": 5, "cached": 0}
"#;

#[test]
fn a_trace_loads_in_order_with_cached_defaulting_to_zero() {
    let d = temp_dir("good");
    std::fs::write(d.join("t.jsonl"), GOOD_TRACE).unwrap();
    let rs = load_trace(&d.join("t.jsonl")).unwrap();
    check_invariants(&rs);
    let got: Vec<(u64, u32, u32, u32)> = rs
        .iter()
        .map(|r| (r.arrival.as_ps(), r.input, r.output, r.cached))
        .collect();
    assert_eq!(
        got,
        [
            (0, 100, 10, 0),
            (500_000_000_000, 2000, 1, 1999),
            (500_000_000_000, 7, 3, 2),
            (2_000_000_000_000, 50, 5, 0)
        ]
    );

    // Through a traffic file, with the trace path relative to the file's folder.
    std::fs::write(
        d.join("replay.toml"),
        "name = \"replay\"\narrival = \"trace\"\ntrace = \"t.jsonl\"\n",
    )
    .unwrap();
    let t = Traffic::by_name_or_path(d.join("replay.toml").to_str().unwrap()).unwrap();
    assert_eq!(t.rate(), None);
    assert_eq!(t.requests(4, 1).unwrap(), rs);
    assert_eq!(t.requests(2, 99).unwrap(), rs[..2]);
    assert_eq!(t.mean_input(), (100.0 + 2000.0 + 7.0 + 50.0) / 4.0);
    assert_eq!(t.mean_output(), 19.0 / 4.0);
    assert_eq!(t.mean_cached(), 2001.0 / 4.0);
    let e = t.requests(5, 1).unwrap_err();
    assert!(
        e.file.ends_with("t.jsonl") && e.message.contains("holds 4"),
        "{e}"
    );

    // Recorded mean rate: 3 gaps over 2 s = 1.5/s. At 3/s every offset halves.
    let fast = t.with_rate(3.0).unwrap();
    assert_eq!(fast.rate(), Some(3.0));
    let arrivals: Vec<u64> = fast
        .requests(4, 1)
        .unwrap()
        .iter()
        .map(|r| r.arrival.as_ps())
        .collect();
    assert_eq!(
        arrivals,
        [0, 250_000_000_000, 250_000_000_000, 1_000_000_000_000]
    );
    assert_eq!(fast.mean_input(), t.mean_input());
}

#[test]
fn bad_trace_lines_are_named() {
    let d = temp_dir("bad");
    let ok = "{\"arrival_s\": 1.0, \"input\": 10, \"output\": 5}\n";
    // (third line, what the message must say)
    let cases = [
        ("{\"arrival_s\": 2.0, \"input\": 10", "EOF"),
        (
            "{\"arrival_s\": 2.0, \"input\": 10}",
            "missing field `output`",
        ),
        (
            "{\"arrival_s\": 2.0, \"input\": 10, \"output\": 1, \"x\": 1}",
            "unknown field `x`",
        ),
        (
            "{\"arrival_s\": -1.0, \"input\": 10, \"output\": 1}",
            "arrival_s = -1",
        ),
        (
            "{\"arrival_s\": 0.5, \"input\": 10, \"output\": 1}",
            "must not decrease",
        ),
        (
            "{\"arrival_s\": 2.0, \"input\": 0, \"output\": 1}",
            "input = 0",
        ),
        (
            "{\"arrival_s\": 2.0, \"input\": 10, \"output\": 0}",
            "output = 0",
        ),
        (
            "{\"arrival_s\": 2.0, \"input\": 10, \"output\": 1, \"cached\": 10}",
            "cached = 10",
        ),
        ("{\"arrival_s\": 2.0, \"input\": -3, \"output\": 1}", "-3"),
        ("not json", "expected"),
    ];
    for (i, (line, says)) in cases.iter().enumerate() {
        let path = d.join(format!("bad{i}.jsonl"));
        std::fs::write(&path, format!("{ok}{ok}{line}\n{ok}")).unwrap();
        let e = load_trace(&path).unwrap_err();
        assert_eq!(e.key, "line 3", "{line}: {e}");
        assert!(e.file.ends_with(&format!("bad{i}.jsonl")), "{e}");
        assert!(
            e.message.contains(says),
            "{line}: `{}` lacks `{says}`",
            e.message
        );
    }
    std::fs::write(d.join("empty.jsonl"), "\n\n").unwrap();
    let e = load_trace(&d.join("empty.jsonl")).unwrap_err();
    assert!(e.message.contains("no requests"), "{e}");
    let e = load_trace(&d.join("missing.jsonl")).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
    // A trace whose requests all arrive together has no rate to scale.
    std::fs::write(d.join("burst.jsonl"), format!("{ok}{ok}")).unwrap();
    std::fs::write(
        d.join("burst.toml"),
        "name = \"b\"\narrival = \"trace\"\ntrace = \"burst.jsonl\"\n",
    )
    .unwrap();
    let t = Traffic::by_name_or_path(d.join("burst.toml").to_str().unwrap()).unwrap();
    assert!(t.with_rate(2.0).unwrap_err().message.contains("same time"));
}

// ---- traffic files ----

const FIXED_LENGTHS: &str =
    "[input]\ndist = \"fixed\"\nvalue = 10\n[output]\ndist = \"fixed\"\nvalue = 2";

fn poisson_with(extra: &str, lengths: &str) -> String {
    let rate = if extra.starts_with("rate") {
        ""
    } else {
        "rate = 5.0\n"
    };
    format!("name = \"t\"\narrival = \"poisson\"\n{rate}{extra}\n{lengths}\n")
}

/// An input-length table of a poisson file: lognormal with `body`.
fn lognormal_input(body: &str) -> String {
    poisson_with(
        "",
        &format!("[input]\ndist = \"lognormal\"\n{body}\n[output]\ndist = \"fixed\"\nvalue = 2"),
    )
}

/// Each bad file must fail naming this key (a prefix of the error's key) and saying this.
#[rstest]
#[case::negative_rate(poisson_with("rate = -2.0", FIXED_LENGTHS), "rate", "> 0")]
#[case::zero_rate(poisson_with("rate = 0.0", FIXED_LENGTHS), "rate", "> 0")]
#[case::prefix_reuse_above_1(
    poisson_with("prefix_reuse = 1.5", FIXED_LENGTHS),
    "prefix_reuse",
    "[0, 1]"
)]
#[case::unknown_key(poisson_with("colour = 1", FIXED_LENGTHS), "colour", "unknown field")]
#[case::trace_without_trace_arrival(
    poisson_with("trace = \"x.jsonl\"", FIXED_LENGTHS),
    "trace",
    "arrival = \"trace\""
)]
#[case::unknown_arrival(
    "name = \"t\"\narrival = \"bursty\"\nrate = 1.0\n".into(),
    "arrival",
    "poisson"
)]
#[case::poisson_without_rate("name = \"t\"\narrival = \"poisson\"\n".into(), "rate", "required")]
#[case::no_input(
    poisson_with("", "[output]\ndist = \"fixed\"\nvalue = 2"),
    "input",
    "required"
)]
#[case::input_zero(
    poisson_with(
        "",
        "[input]\ndist = \"fixed\"\nvalue = 0\n[output]\ndist = \"fixed\"\nvalue = 2",
    ),
    "input.value",
    "[1, 4194304]"
)]
#[case::unknown_dist(
    poisson_with(
        "",
        "[input]\ndist = \"normal\"\nmean = 3.0\n[output]\ndist = \"fixed\"\nvalue = 2",
    ),
    "input",
    "lognormal"
)]
#[case::uniform_high_below_low(
    poisson_with(
        "",
        "[input]\ndist = \"fixed\"\nvalue = 5\n[output]\ndist = \"uniform\"\nlow = 9\nhigh = 3",
    ),
    "output.high",
    "below low"
)]
#[case::lognormal_max_below_min(
    lognormal_input("mean = 100.0\nsigma = 1.0\nmin = 50\nmax = 20"),
    "input.max",
    "below min"
)]
#[case::lognormal_sigma_zero(
    lognormal_input("mean = 100.0\nsigma = 0.0\nmax = 200"),
    "input.sigma",
    "fixed"
)]
#[case::lognormal_negative_mean(
    lognormal_input("mean = -1.0\nsigma = 1.0\nmax = 200"),
    "input.mean",
    "positive"
)]
#[case::lognormal_without_max(lognormal_input("mean = 100.0\nsigma = 1.0"), "input", "max")]
#[case::lognormal_with_value(
    lognormal_input("mean = 100.0\nsigma = 1.0\nmax = 200\nvalue = 3"),
    "input",
    "value"
)]
#[case::trace_with_rate(
    "name = \"t\"\narrival = \"trace\"\ntrace = \"x.jsonl\"\nrate = 2.0\n".into(),
    "rate",
    "not used"
)]
#[case::trace_without_file("name = \"t\"\narrival = \"trace\"\n".into(), "trace", "required")]
fn bad_traffic_files_name_the_key(#[case] text: String, #[case] key: &str, #[case] says: &str) {
    let e = parse(&text).unwrap_err();
    assert_eq!(e.file, "t.toml");
    assert!(e.key.starts_with(key), "want key {key}, got {e}");
    assert!(e.message.contains(says), "{e} lacks `{says}`");
}

/// A trace file that cannot be read names that file; an unknown traffic name lists the
/// embedded ones.
#[test]
fn an_unreadable_trace_or_unknown_name_is_an_error() {
    let e = Traffic::parse(
        "t.toml",
        "name = \"t\"\narrival = \"trace\"\ntrace = \"no-such.jsonl\"\n",
        Path::new("/nonexistent-dir"),
    )
    .unwrap_err();
    assert!(
        e.file.contains("no-such.jsonl") && e.message.contains("cannot read"),
        "{e}"
    );
    let e = Traffic::by_name_or_path("chatt").unwrap_err();
    assert!(e.message.contains("chat, coding, agentic-coding"), "{e}");
}
