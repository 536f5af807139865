//! Request workloads for serving: traffic files (`workloads/traffic/*.toml`) as written -> a
//! validated [`Traffic`] -> a deterministic list of [`Request`]s.
//!
//! Invariants: every `Traffic` is valid (positive rate, lengths ≥ 1, `min ≤ max`, reuse in
//! `[0, 1]`, a trace that loaded without error); every request it draws has `input ≥ 1`,
//! `output ≥ 1`, `cached < input` (so each request prefills at least one token) and arrivals
//! that never decrease; the same traffic and seed give the same requests, bit for bit. The
//! `mean_*` figures are exact means of the drawn (rounded, clamped) lengths, computed by
//! summing the distribution, not by sampling. Format and presets: `docs/traffic.md`.

use std::path::Path;

use serde::Deserialize;

use crate::engine::{Dur, PS_PER_S, SimRng, Time, stream};
use crate::error::InputError;

/// One request of a serving workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u32,
    pub arrival: Time,
    /// Prompt tokens (≥ 1).
    pub input: u32,
    /// Tokens to generate (≥ 1).
    pub output: u32,
    /// Prompt tokens whose KV is already cached (prefix reuse), `< input`.
    pub cached: u32,
}

/// The longest prompt or output a distribution may produce. The exact means sum over every
/// length in `[min, max]`, so the bound keeps that sum below a few milliseconds; 4 Mi tokens
/// is far beyond the context window of every model the project ships.
pub const MAX_TOKENS: u32 = 1 << 22;

/// The highest Poisson rate accepted: the mean gap must stay well above the picosecond clock.
const MAX_RATE_PER_S: f64 = 1e9;

/// The latest trace arrival accepted (about 116 days): far below `u64` picoseconds, and
/// seconds as `f64` still resolve well under a nanosecond there.
const MAX_ARRIVAL_S: f64 = 1e7;

/// The latest arrival a run accepts (40 days), well inside [`Time::HORIZON`] (about 53
/// days) so that the requests can be served before the simulated clock runs out: a later
/// one would be clipped, not simulated.
pub const LAST_ARRIVAL: Time = Time::from_ps(40 * 86_400 * PS_PER_S);

const PRESETS: [(&str, &str); 3] = [
    ("chat", include_str!("../../workloads/traffic/chat.toml")),
    (
        "coding",
        include_str!("../../workloads/traffic/coding.toml"),
    ),
    (
        "agentic-coding",
        include_str!("../../workloads/traffic/agentic-coding.toml"),
    ),
];
const PRESET_NAMES: [&str; 3] = ["chat", "coding", "agentic-coding"];

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    name: String,
    arrival: RawArrival,
    rate: Option<f64>,
    trace: Option<String>,
    prefix_reuse: Option<f64>,
    input: Option<RawDist>,
    output: Option<RawDist>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawArrival {
    Poisson,
    Trace,
}

#[derive(Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
enum RawDist {
    Fixed {
        value: u32,
    },
    Uniform {
        low: u32,
        high: u32,
    },
    Lognormal {
        mean: f64,
        sigma: f64,
        min: Option<u32>,
        max: u32,
    },
}

/// One line of a JSONL trace as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraceLine {
    arrival_s: f64,
    input: u32,
    output: u32,
    #[serde(default)]
    cached: u32,
}

// ---- validated ----

/// A token-length distribution. Draws are rounded to the nearest integer and clamped to
/// `[min, max]` (lognormal); uniform draws are integers in `[low, high]`.
#[derive(Clone, Debug, PartialEq)]
enum Dist {
    Fixed(u32),
    Uniform {
        low: u32,
        high: u32,
    },
    /// `ln X ~ Normal(mu, sigma)`; `mu` set so that the unclamped mean is the file's `mean`.
    Lognormal {
        mu: f64,
        sigma: f64,
        min: u32,
        max: u32,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Arrivals {
    Poisson {
        rate_per_s: f64,
        input: Dist,
        output: Dist,
        prefix_reuse: f64,
    },
    Trace {
        /// The trace file as named in errors.
        file: String,
        requests: Vec<Request>,
        /// The file line of each request (1-based).
        lines: Vec<u32>,
        /// Set by [`Traffic::with_rate`]: the mean rate the gaps were scaled to.
        rate_per_s: Option<f64>,
    },
}

/// A parsed, validated traffic description: Poisson arrivals with length distributions and
/// prefix reuse, or a trace of requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    name: String,
    arrivals: Arrivals,
    /// Exact means of the drawn lengths (computed once, at validation).
    means: Means,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Means {
    input: f64,
    output: f64,
    cached: f64,
}

impl Traffic {
    /// An embedded preset by name: "chat", "coding", "agentic-coding".
    pub fn preset(name: &str) -> Option<Traffic> {
        let (n, text) = PRESETS.iter().find(|(n, _)| *n == name)?;
        let file = format!("<embedded workloads/traffic/{n}.toml>");
        Some(
            Traffic::parse(&file, text, Path::new("."))
                .expect("embedded presets are valid (tested)"),
        )
    }

    pub fn preset_names() -> &'static [&'static str] {
        &PRESET_NAMES
    }

    /// Parses a traffic TOML file's text; `file` names it in errors; `dir` resolves a
    /// relative trace path.
    pub fn parse(file: &str, text: &str, dir: &Path) -> Result<Traffic, InputError> {
        let raw: RawTraffic = crate::input::parse_toml(text, file)?;
        let arrivals = match raw.arrival {
            RawArrival::Poisson => {
                resolve_poisson(&raw).map_err(|(k, m)| InputError::new(file, k, m))?
            }
            RawArrival::Trace => {
                let trace = trace_path(&raw).map_err(|(k, m)| InputError::new(file, k, m))?;
                let path = dir.join(trace);
                Arrivals::Trace {
                    file: path.display().to_string(),
                    requests: load_trace(&path)?,
                    lines: trace_lines(&path),
                    rate_per_s: None,
                }
            }
        };
        Ok(Traffic::new(raw.name, arrivals))
    }

    /// Where request `id` came from, for an error about it: a trace's file and line, or
    /// `None` for a drawn request.
    pub fn locate(&self, id: u32) -> Option<(&str, String)> {
        match &self.arrivals {
            Arrivals::Trace { file, lines, .. } => lines
                .get(id as usize)
                .map(|l| (file.as_str(), format!("line {l}"))),
            Arrivals::Poisson { .. } => None,
        }
    }

    /// A preset name, or a traffic file path relative to `dir` (a scenario's folder).
    pub fn by_name_or_path_in(s: &str, dir: &Path) -> Result<Traffic, InputError> {
        if Traffic::preset(s).is_some() || Path::new(s).is_absolute() {
            return Traffic::by_name_or_path(s);
        }
        Traffic::by_name_or_path(&dir.join(s).display().to_string())
    }

    /// Loads a preset name or a traffic file path.
    pub fn by_name_or_path(s: &str) -> Result<Traffic, InputError> {
        if let Some(t) = Traffic::preset(s) {
            return Ok(t);
        }
        let path = Path::new(s);
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(
                "<command line>",
                "traffic",
                format!(
                    "`{s}` is neither a preset ({}) nor a readable traffic file: {e}",
                    PRESET_NAMES.join(", ")
                ),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Traffic::parse(s, &text, dir)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Poisson rate in requests/s. For a trace: `None` as recorded, the rate set by
    /// [`Traffic::with_rate`] once rescaled.
    pub fn rate(&self) -> Option<f64> {
        match &self.arrivals {
            Arrivals::Poisson { rate_per_s, .. } => Some(*rate_per_s),
            Arrivals::Trace { rate_per_s, .. } => *rate_per_s,
        }
    }

    /// The same traffic at another arrival rate. Poisson: the new rate. A trace: every gap
    /// scaled by one factor so that its mean rate, (requests − 1) / (last − first arrival),
    /// becomes `rate_per_s`; the first arrival stays where it is and lengths are unchanged.
    /// A trace whose requests all arrive at once has no rate to scale (an error).
    pub fn with_rate(&self, rate_per_s: f64) -> Result<Traffic, InputError> {
        let rate =
            check_rate(rate_per_s).map_err(|m| InputError::new("<command line>", "rate", m))?;
        let mut t = self.clone();
        match &mut t.arrivals {
            Arrivals::Poisson { rate_per_s, .. } => *rate_per_s = rate,
            Arrivals::Trace {
                file,
                requests,
                rate_per_s,
                ..
            } => {
                scale_trace(requests, rate).map_err(|m| InputError::new(file.as_str(), "", m))?;
                *rate_per_s = Some(rate);
            }
        }
        Ok(t)
    }

    /// Draws `n` requests with `seed`, deterministically (ids `0..n`). A trace gives its
    /// first `n` requests (the seed is not used) and is an error when it holds fewer.
    /// `config::check_fits` checks that the last arrives by [`LAST_ARRIVAL`].
    pub fn requests(&self, n: u32, seed: u64) -> Result<Vec<Request>, InputError> {
        match &self.arrivals {
            Arrivals::Poisson {
                rate_per_s,
                input,
                output,
                prefix_reuse,
            } => Ok(draw_poisson(
                n,
                seed,
                *rate_per_s,
                input,
                output,
                *prefix_reuse,
            )),
            Arrivals::Trace { file, requests, .. } => requests
                .get(..n as usize)
                .map(<[Request]>::to_vec)
                .ok_or_else(|| {
                    InputError::new(
                        file.as_str(),
                        "",
                        format!("holds {} requests; {n} were asked for", requests.len()),
                    )
                }),
        }
    }

    /// Mean prompt tokens per request (exact, of the clamped distribution; a trace's mean).
    pub fn mean_input(&self) -> f64 {
        self.means.input
    }

    /// Mean tokens generated per request.
    pub fn mean_output(&self) -> f64 {
        self.means.output
    }

    /// Mean cached prompt tokens per request.
    pub fn mean_cached(&self) -> f64 {
        self.means.cached
    }

    fn new(name: String, arrivals: Arrivals) -> Traffic {
        let means = match &arrivals {
            Arrivals::Poisson {
                input,
                output,
                prefix_reuse,
                ..
            } => {
                let (input_mean, cached) = input.means(*prefix_reuse);
                Means {
                    input: input_mean,
                    output: output.means(0.0).0,
                    cached,
                }
            }
            Arrivals::Trace { requests, .. } => {
                let n = requests.len() as f64;
                let sum = |f: fn(&Request) -> u32| {
                    requests.iter().map(|r| f64::from(f(r))).sum::<f64>() / n
                };
                Means {
                    input: sum(|r| r.input),
                    output: sum(|r| r.output),
                    cached: sum(|r| r.cached),
                }
            }
        };
        Traffic {
            name,
            arrivals,
            means,
        }
    }
}

/// Validates a Poisson traffic file; errors are (key, message).
fn resolve_poisson(raw: &RawTraffic) -> Result<Arrivals, (String, String)> {
    let err = |key: &str, msg: &str| (key.to_string(), msg.to_string());
    if raw.trace.is_some() {
        return Err(err(
            "trace",
            "is for arrival = \"trace\"; this file has arrival = \"poisson\"",
        ));
    }
    let rate = raw
        .rate
        .ok_or_else(|| err("rate", "is required for arrival = \"poisson\" (requests/s)"))?;
    let input = raw.input.as_ref().ok_or_else(|| {
        err(
            "input",
            "is required for arrival = \"poisson\" (an [input] table)",
        )
    })?;
    let output = raw.output.as_ref().ok_or_else(|| {
        err(
            "output",
            "is required for arrival = \"poisson\" (an [output] table)",
        )
    })?;
    let reuse = raw.prefix_reuse.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&reuse) {
        return Err(err(
            "prefix_reuse",
            &format!("{reuse} is not a fraction in [0, 1]"),
        ));
    }
    Ok(Arrivals::Poisson {
        rate_per_s: check_rate(rate).map_err(|m| err("rate", &m))?,
        input: Dist::resolve(input, "input")?,
        output: Dist::resolve(output, "output")?,
        prefix_reuse: reuse,
    })
}

/// The `trace` key of a trace-driven file, which must set nothing the trace gives.
fn trace_path(raw: &RawTraffic) -> Result<&str, (String, String)> {
    for (key, set) in [
        ("rate", raw.rate.is_some()),
        ("prefix_reuse", raw.prefix_reuse.is_some()),
        ("input", raw.input.is_some()),
        ("output", raw.output.is_some()),
    ] {
        if set {
            return Err((
                key.to_string(),
                "is not used with arrival = \"trace\": the trace gives each request's \
                 arrival, lengths and cached tokens"
                    .to_string(),
            ));
        }
    }
    raw.trace.as_deref().ok_or_else(|| {
        (
            "trace".to_string(),
            "is required for arrival = \"trace\" (a JSONL file)".to_string(),
        )
    })
}

fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_PER_S {
        Ok(rate)
    } else {
        Err(format!(
            "{rate} is not a rate in requests/s (> 0 and ≤ {MAX_RATE_PER_S:e})"
        ))
    }
}

/// Cached prompt tokens of a request: `round(reuse × input)`, at most `input − 1`, so every
/// request prefills at least one token (the one whose logits give the first output token).
pub fn cached_tokens(input: u32, prefix_reuse: f64) -> u32 {
    let c = (prefix_reuse * f64::from(input)).round() as u32;
    c.min(input - 1)
}

fn draw_poisson(
    n: u32,
    seed: u64,
    rate_per_s: f64,
    input: &Dist,
    output: &Dist,
    prefix_reuse: f64,
) -> Vec<Request> {
    let mut gaps = SimRng::stream(seed, stream::ARRIVALS);
    let mut inputs = SimRng::stream(seed, stream::INPUT);
    let mut outputs = SimRng::stream(seed, stream::OUTPUT);
    let mean_gap_ps = PS_PER_S as f64 / rate_per_s;
    let mut t = Time::ZERO;
    (0..n)
        .map(|id| {
            // Exponential gap by inversion; 1 − U lies in (0, 1], so the log is finite.
            let gap = -(1.0 - gaps.unit_f64()).ln() * mean_gap_ps;
            t += Dur::from_ps(gap.round() as u64);
            let input = input.draw(&mut inputs);
            Request {
                id,
                arrival: t,
                input,
                output: output.draw(&mut outputs),
                cached: cached_tokens(input, prefix_reuse),
            }
        })
        .collect()
}

impl Dist {
    /// Validates a distribution table; errors carry the key (`input.max`) and the message.
    fn resolve(raw: &RawDist, table: &str) -> Result<Dist, (String, String)> {
        let key = |k: &str| format!("{table}.{k}");
        let tokens = |k: &str, v: u32| {
            if (1..=MAX_TOKENS).contains(&v) {
                Ok(v)
            } else {
                Err((
                    key(k),
                    format!("{v} is not a token count in [1, {MAX_TOKENS}]"),
                ))
            }
        };
        match *raw {
            RawDist::Fixed { value } => Ok(Dist::Fixed(tokens("value", value)?)),
            RawDist::Uniform { low, high } => {
                let (low, high) = (tokens("low", low)?, tokens("high", high)?);
                if high < low {
                    return Err((key("high"), format!("{high} is below low = {low}")));
                }
                Ok(Dist::Uniform { low, high })
            }
            RawDist::Lognormal {
                mean,
                sigma,
                min,
                max,
            } => {
                if !(mean.is_finite() && mean > 0.0) {
                    return Err((key("mean"), format!("{mean} is not a positive token count")));
                }
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err((
                        key("sigma"),
                        format!("{sigma} is not > 0 (use dist = \"fixed\" for a constant)"),
                    ));
                }
                let (min, max) = (tokens("min", min.unwrap_or(1))?, tokens("max", max)?);
                if max < min {
                    return Err((key("max"), format!("{max} is below min = {min}")));
                }
                Ok(Dist::Lognormal {
                    mu: mean.ln() - sigma * sigma / 2.0,
                    sigma,
                    min,
                    max,
                })
            }
        }
    }

    fn draw(&self, rng: &mut SimRng) -> u32 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Uniform { low, high } => low + rng.below(u64::from(high - low) + 1) as u32,
            Dist::Lognormal {
                mu,
                sigma,
                min,
                max,
            } => {
                let x = (mu + sigma * standard_normal(rng)).exp().round();
                x.clamp(f64::from(min), f64::from(max)) as u32
            }
        }
    }

    /// Exact means of a drawn length `L` and of `cached_tokens(L, reuse)`, by summing
    /// `P(L = k) = P(L ≤ k) − P(L ≤ k − 1)` over every `k` the distribution can produce.
    fn means(&self, reuse: f64) -> (f64, f64) {
        let (lo, hi) = match *self {
            Dist::Fixed(v) => (v, v),
            Dist::Uniform { low, high } => (low, high),
            Dist::Lognormal { min, max, .. } => (min, max),
        };
        let (mut mean, mut cached, mut below) = (0.0, 0.0, 0.0);
        for k in lo..=hi {
            let upto = if k == hi { 1.0 } else { self.cdf(k) };
            let p = upto - below;
            below = upto;
            mean += p * f64::from(k);
            cached += p * f64::from(cached_tokens(k, reuse));
        }
        (mean, cached)
    }

    /// `P(L ≤ k)` for `k` in the distribution's range.
    fn cdf(&self, k: u32) -> f64 {
        match *self {
            Dist::Fixed(_) => 1.0,
            Dist::Uniform { low, high } => f64::from(k - low + 1) / f64::from(high - low + 1),
            // L ≤ k when round(X) ≤ k, i.e. X < k + ½ (the clamp puts the tails on min, max).
            Dist::Lognormal { mu, sigma, .. } => {
                normal_cdf(((f64::from(k) + 0.5).ln() - mu) / sigma)
            }
        }
    }
}

/// A standard normal draw (Box-Muller, cosine branch; two uniforms per draw, no state).
fn standard_normal(rng: &mut SimRng) -> f64 {
    let u1 = 1.0 - rng.unit_f64(); // (0, 1]: the log is finite
    let u2 = rng.unit_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The standard normal CDF, through [`erfc`].
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function: the Chebyshev fit of Numerical Recipes (2nd ed.,
/// §6.2, `erfcc`), fractional error below 1.2e-7 everywhere (std's `erf` is not stable).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn scale_trace(requests: &mut [Request], rate_per_s: f64) -> Result<(), String> {
    let (Some(first), Some(last)) = (requests.first(), requests.last()) else {
        return Err("an empty trace has no rate to scale".into());
    };
    let (t0, span) = (
        first.arrival.as_ps(),
        last.arrival.as_ps() - first.arrival.as_ps(),
    );
    if span == 0 {
        return Err("all requests arrive at the same time: the trace has no rate to scale".into());
    }
    let recorded = (requests.len() - 1) as f64 * PS_PER_S as f64 / span as f64;
    let factor = recorded / rate_per_s;
    for r in requests {
        let offset = (r.arrival.as_ps() - t0) as f64 * factor;
        r.arrival = Time::from_ps(t0 + offset.round() as u64);
    }
    Ok(())
}

/// The 1-based line of each request of a trace that [`load_trace`] accepted.
fn trace_lines(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

/// Loads a JSONL trace: one object per line, `{"arrival_s": 0.25, "input": 812, "output":
/// 143, "cached": 0}` (`cached` optional, default 0; blank lines skipped). Errors name the
/// file and `line N`: bad JSON, a missing or unknown field, a negative or decreasing
/// arrival, input or output 0, cached ≥ input, no requests.
pub fn load_trace(path: &Path) -> Result<Vec<Request>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::for_path(path, "", format!("cannot read the trace: {e}")))?;
    let mut requests: Vec<Request> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: String| InputError::for_path(path, format!("line {}", i + 1), msg);
        let raw: RawTraceLine = serde_json::from_str(line).map_err(|e| err(json_message(&e)))?;
        let id = u32::try_from(requests.len()).map_err(|_| err("too many requests".into()))?;
        let request = trace_request(id, &raw, requests.last()).map_err(err)?;
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(InputError::for_path(path, "", "holds no requests"));
    }
    Ok(requests)
}

fn trace_request(id: u32, raw: &RawTraceLine, prev: Option<&Request>) -> Result<Request, String> {
    let s = raw.arrival_s;
    if !(s.is_finite() && (0.0..=MAX_ARRIVAL_S).contains(&s)) {
        return Err(format!(
            "arrival_s = {s} is not a time in seconds in [0, {MAX_ARRIVAL_S:e}]"
        ));
    }
    let arrival = Time::from_ps((s * PS_PER_S as f64).round() as u64);
    if let Some(p) = prev
        && arrival < p.arrival
    {
        return Err(format!(
            "arrival_s = {s} is before the previous request's ({} s): arrivals must not decrease",
            p.arrival.as_ps() as f64 / PS_PER_S as f64
        ));
    }
    if raw.input == 0 {
        return Err("input = 0: a request has at least one prompt token".into());
    }
    if raw.output == 0 {
        return Err("output = 0: a request generates at least one token".into());
    }
    if raw.cached >= raw.input {
        return Err(format!(
            "cached = {} is not below input = {}: at least one prompt token is prefilled",
            raw.cached, raw.input
        ));
    }
    Ok(Request {
        id,
        arrival,
        input: raw.input,
        output: raw.output,
        cached: raw.cached,
    })
}

/// serde_json's message without its "at line 1 column C" (each line is its own document),
/// keeping the column.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(msg) => format!("{msg} (column {})", e.column()),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_reference_values() {
        // erfc(0) = 1, erfc(1) = 0.157299207050285, erfc(-1) = 1.842700792949715,
        // erfc(3) = 2.20904969985854e-5 (Abramowitz & Stegun table 7.1).
        for (x, want) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207_050_285),
            (-1.0, 1.842_700_792_949_715),
            (3.0, 2.209_049_699_858_54e-5),
        ] {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1.2e-7,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn cached_tokens_rounds_and_leaves_one_to_prefill() {
        assert_eq!(cached_tokens(1000, 0.0), 0);
        assert_eq!(cached_tokens(1000, 0.8), 800);
        assert_eq!(cached_tokens(3, 0.5), 2); // 1.5 rounds away from zero
        assert_eq!(cached_tokens(1000, 1.0), 999);
        assert_eq!(cached_tokens(1, 0.9), 0);
    }
}
