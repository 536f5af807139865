//! `afdsim slo-search`: the arguments, progress on stderr, and the comparison's text table
//! or JSON on stdout. The search and the comparison are [`afdsim::compare::compare`].

use afdsim::compare::{self, CompareError, Comparison, Limits, Setup};
use afdsim::config::Scenario;
use afdsim::error::InputError;
use afdsim::serving::search::{self, Probe, SearchProgress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SloSearchArgs {
    /// Serving scenario files (a `[serving]` table each); several give a comparison table.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// TTFT limit, ms (default: the scenario's `serving.ttft_ms`).
    #[arg(long)]
    ttft_ms: Option<f64>,
    /// TPOT limit, ms (default: the scenario's `serving.tpot_ms`).
    #[arg(long)]
    tpot_ms: Option<f64>,
    /// Percentile the limits apply to (default: the scenario's, else 90).
    #[arg(long)]
    percentile: Option<f64>,
    /// Most probes per scenario.
    #[arg(long, default_value_t = 12)]
    probes: u32,
    /// Stop when the bracket is this close (relative).
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// Requests per probe (default: the scenario's `serving.requests`).
    #[arg(long)]
    requests: Option<u32>,
    /// Seed (overrides the files').
    #[arg(long)]
    seed: Option<u64>,
    /// Simulation level of the iterations (overrides the files').
    #[arg(long, value_parser = ["packet", "flow"])]
    level: Option<String>,
    /// Print one JSON array of results instead of text.
    #[arg(long)]
    json: bool,
    /// Run every probe to its last request. By default a probe stops as soon as it
    /// certainly misses the limits (same verdicts and answer; a missed probe's TTFT and
    /// TPOT are then lower bounds, printed with >=).
    #[arg(long)]
    whole_probes: bool,
    /// A probe meets the limits only if requests finish over its steady window at this
    /// fraction of the offered rate or more (0, the default: not checked).
    #[arg(long, default_value_t = 0.0)]
    keep_up: f64,
}

fn cmd_err(key: &str, msg: impl Into<String>) -> InputError {
    InputError::new("<command line>", key, msg)
}

pub fn run(a: &SloSearchArgs) -> Result<ExitCode, InputError> {
    if !(a.tolerance.is_finite() && a.tolerance > 0.0 && a.tolerance < 10.0) {
        return Err(cmd_err("--tolerance", "must be > 0 and < 10"));
    }
    if !(a.keep_up.is_finite() && (0.0..=1.0).contains(&a.keep_up)) {
        return Err(cmd_err("--keep-up", "must be a fraction, 0 to 1"));
    }
    if a.probes == 0 {
        return Err(cmd_err("--probes", "must be at least 1"));
    }
    if a.requests == Some(0) {
        return Err(cmd_err("--requests", "must be at least 1"));
    }
    let level = a.level.as_deref().and_then(afdsim::config::Level::parse);
    // Every file is loaded before any search starts (the searches run side by side): one
    // that does not load is an error before minutes of searching.
    let scenarios = a
        .scenarios
        .iter()
        .map(|path| Scenario::load_at_level(path, a.seed, level))
        .collect::<Result<Vec<_>, _>>()?;
    let display = Display::new(a.json);
    let comparison = compare::compare(
        scenarios,
        Limits {
            ttft_ms: a.ttft_ms,
            tpot_ms: a.tpot_ms,
            percentile: a.percentile,
        },
        search::Options {
            max_probes: a.probes,
            tolerance: a.tolerance,
            stop_early: !a.whole_probes,
            keep_up: a.keep_up,
        },
        a.requests,
        &display,
    );
    let comparison = match comparison {
        Ok(c) => c,
        Err(CompareError::Limit { key, message }) => {
            return Err(cmd_err(&format!("--{}", key.replace('_', "-")), message));
        }
        Err(CompareError::Input(e)) => return Err(e),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth a message.
    let _ = if a.json {
        write_json(&mut stdout, &comparison)
    } else {
        write_table(&mut stdout, &comparison)
    };
    Ok(ExitCode::SUCCESS)
}

/// Progress within a probe goes to stderr (stdout keeps the results): a bar on a terminal,
/// otherwise a line at most every [`PLAIN_EVERY`]. The wall clock is read here only; the
/// search's results do not depend on it.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// What the comparison tells as it goes: each scenario's limits and probes on stdout (text
/// output only), progress and the iterations simulated on stderr.
struct Display {
    json: bool,
    tty: bool,
    /// The current scenario's bar (hidden when stderr is no terminal) and name.
    bar: Mutex<(ProgressBar, String)>,
    last_line: Mutex<Instant>,
}

impl Display {
    fn new(json: bool) -> Self {
        Display {
            json,
            tty: std::io::stderr().is_terminal(),
            bar: Mutex::new((ProgressBar::hidden(), String::new())),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn bar(&self) -> (ProgressBar, String) {
        self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl compare::Observer for Display {
    fn start(&self, s: &Setup) {
        if !self.json {
            let _ = writeln!(
                std::io::stdout(),
                "{}: {} on {} GPUs, p{} TTFT <= {} ms, TPOT <= {} ms, {} requests, seed {}",
                s.scenario,
                s.deployment,
                s.gpus,
                s.slo.percentile,
                s.slo.ttft_ms,
                s.slo.tpot_ms,
                s.requests,
                s.seed
            );
        }
        let bar = if self.tty {
            let bar = ProgressBar::new(s.requests as u64);
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} [{bar:16}] {pos}/{len} req  {wide_msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = (bar, s.scenario.clone());
        *self.last_line.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn probe(&self, n: u32, p: &Probe) {
        if self.json {
            return;
        }
        // A probe stopped early knows lower bounds of its percentiles.
        let ge = if p.stopped_after.is_some() { ">=" } else { "" };
        self.bar().0.suspend(|| {
            writeln!(
                std::io::stdout(),
                "  probe {n:>2}: {:>10.3} req/s  TTFT {:>10} ms  TPOT {:>8} ms  {:>8.1} tok/s/GPU  {}{}{}",
                p.rate_per_s,
                format!("{ge}{:.1}", p.ttft_ms),
                format!("{ge}{:.2}", p.tpot_ms),
                p.tokens_per_s_per_gpu,
                if p.met { "met" } else { "missed" },
                p.preemptions
                    .map(|n| format!("  ({n} preempted)"))
                    .unwrap_or_default(),
                p.stopped_after
                    .map(|n| format!("  (stopped after {n} requests)"))
                    .unwrap_or_default()
                    + if p.falls_behind {
                        "  (falls behind the rate)"
                    } else {
                        ""
                    }
            )
        })
        .ok();
    }

    fn progress(&self, p: SearchProgress) {
        let r = p.run;
        if self.tty {
            let (bar, _) = self.bar();
            // Short: the line is cut at the terminal's width.
            bar.set_length(r.requests);
            bar.set_position(r.requests_done);
            bar.set_message(if r.corners_needed > 0 {
                format!(
                    "probe {} @ {:.3}/s, corners {}/{} ({} done)",
                    p.probe, p.rate_per_s, r.corners_done, r.corners_needed, r.corners_simulated
                )
            } else {
                format!(
                    "probe {} @ {:.3}/s, {} corners done",
                    p.probe, p.rate_per_s, r.corners_simulated
                )
            });
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= PLAIN_EVERY {
            *last = Instant::now();
            let corners = if r.corners_needed > 0 {
                format!(
                    "corners {}/{} for this iteration, {} simulated",
                    r.corners_done, r.corners_needed, r.corners_simulated
                )
            } else {
                format!("{} corners simulated", r.corners_simulated)
            };
            let (_, name) = self.bar();
            eprintln!(
                "{name}: probe {} at {:.3} req/s: {}/{} requests served, {corners}",
                p.probe, p.rate_per_s, r.requests_done, r.requests
            );
        }
    }

    fn done(&self, s: &Setup, stats: &afdsim::serving::cost::CostStats) {
        self.bar().0.finish_and_clear();
        eprintln!(
            "{}: {} iterations simulated in {:.1} s for {} asked",
            s.scenario, stats.corners_simulated, stats.corner_wall_s, stats.queries
        );
    }
}

/// One JSON array: `{scenario, deployment, gpus, seed, level, result}` per scenario.
fn write_json(w: &mut dyn Write, c: &Comparison) -> std::io::Result<()> {
    let v: Vec<serde_json::Value> = c
        .rows
        .iter()
        .map(|row| {
            let s = &row.setup;
            serde_json::json!({"scenario": s.scenario, "deployment": s.deployment, "gpus": s.gpus, "seed": s.seed, "level": s.level, "result": row.result})
        })
        .collect();
    writeln!(
        w,
        "{}",
        serde_json::to_string_pretty(&v).expect("serializes")
    )
}

/// The comparison table: a blank line, a header, one line per scenario.
fn write_table(w: &mut dyn Write, c: &Comparison) -> std::io::Result<()> {
    writeln!(
        w,
        "\n{:<28} {:<15} {:>5} {:>12} {:>13} {:>10} {:>10} {:>7}",
        "scenario", "deployment", "GPUs", "best req/s", "tok/s/GPU", "TTFT pX", "TPOT pX", "probes"
    )?;
    for row in &c.rows {
        let s = &row.setup;
        let probe = row.best_probe();
        writeln!(
            w,
            "{:<28} {:<15} {:>5} {:>12} {:>13} {:>10} {:>10} {:>7}",
            s.scenario,
            s.deployment,
            s.gpus,
            row.best_rate_per_s()
                .map_or("none".into(), |x| format!("{x:.3}")),
            row.tokens_per_s_per_gpu()
                .map_or("-".into(), |x| format!("{x:.1}")),
            probe.map_or("-".into(), |p| format!("{:.1}", p.ttft_ms)),
            probe.map_or("-".into(), |p| format!("{:.2}", p.tpot_ms)),
            row.result.probes.len()
        )?;
    }
    Ok(())
}
