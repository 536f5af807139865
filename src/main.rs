//! The afdsim command line: a thin shell over the library.
//!
//! Exit status: 0 success, 1 a validation regression, 2 bad input or usage, 3 the
//! simulation deadlocked (a cycle of PFC or credit pauses).

use afdsim::config::Scenario;
use afdsim::error::InputError;
use afdsim::report::write_out_dir;
use afdsim::validation::{self, Check, CheckRow};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "afdsim",
    version,
    about = "Network-fabric simulator for Attention-FFN-disaggregated MoE serving"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario (the embedded default when no file is given).
    Run {
        /// Scenario file (TOML); see README.md for the format.
        scenario: Option<PathBuf>,
        /// Seed of the run's random numbers (overrides the file's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON object {scenario, seed, level, metrics} and nothing else on stdout.
        #[arg(long)]
        json: bool,
        /// Also write metrics.json, messages.csv and links.csv into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write a Chrome trace (open in Perfetto): a compute track per GPU, transfers as
        /// async slices.
        #[arg(long, value_name = "FILE.json")]
        trace: Option<PathBuf>,
        /// Simulation level (overrides the file's `level`).
        #[arg(long, value_parser = ["packet", "flow", "analytical"])]
        level: Option<String>,
    },
    /// Measured compute-time tables: queries, layer breakdowns, accuracy.
    #[command(subcommand)]
    Compute(afdsim::compute::cli::ComputeCommand),
    /// Inspect fabric files.
    Fabric {
        #[command(subcommand)]
        command: FabricCommand,
    },
    /// Run every validation case and print the comparison table.
    Validate {
        /// Print a JSON array of rows instead of the table.
        #[arg(long)]
        json: bool,
        /// Only the cases whose name contains TEXT.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
    },
    /// Run a sweep's points in parallel into an output folder (resumable; shardable).
    Sweep(afdsim::sweep::cli::SweepArgs),
    /// Merge sweep output folders (shards) into one CSV, checking that no point is missing.
    Merge(afdsim::sweep::cli::MergeArgs),
    /// Plot two columns of a result table as SVG.
    Plot(afdsim::sweep::cli::PlotArgs),
    /// Draw the standard figures of a merged sweep as SVG files.
    Report(afdsim::sweep::cli::ReportArgs),
    /// Find the highest request rate that meets TTFT and TPOT limits, for one serving
    /// scenario or several (a deployment comparison table).
    SloSearch(SloSearchArgs),
}

#[derive(clap::Args)]
struct SloSearchArgs {
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
}

#[derive(Subcommand)]
enum FabricCommand {
    /// Print what a fabric resolves to: counts of GPUs, switches and links, bisection.
    Show {
        /// An embedded fabric (hgx-h100, hgx-h200, hgx-h800, gb200-nvl72) or a file.
        fabric: String,
        /// Override the file's node count.
        #[arg(long)]
        nodes: Option<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            json,
            out,
            level,
            trace,
        } => cmd_run(scenario, seed, json, out, level.as_deref(), trace),
        Command::Validate { json, filter } => cmd_validate(json, filter.as_deref()),
        Command::Compute(c) => afdsim::compute::cli::run_command(&c, &mut std::io::stdout().lock())
            .map(|()| ExitCode::SUCCESS),
        Command::Fabric {
            command:
                FabricCommand::Show {
                    fabric,
                    nodes,
                    json,
                },
        } => cmd_fabric_show(&fabric, nodes, json),
        Command::Sweep(args) => afdsim::sweep::cli::run_sweep(&args),
        Command::Merge(args) => afdsim::sweep::cli::run_merge(&args),
        Command::Plot(args) => afdsim::sweep::cli::run_plot(&args),
        Command::Report(args) => afdsim::sweep::cli::run_report(&args),
        Command::SloSearch(args) => cmd_slo_search(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// How often a run not on a terminal prints a progress line to stderr.
const PROGRESS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A run's progress on stderr: a bar on a terminal, otherwise a plain line every
/// [`PROGRESS_LINE_EVERY`] (so a long run in a batch job or behind a pipe says it is alive).
/// Both show the bytes delivered over the bytes offered, with an ETA, and the events and
/// simulated time. Wall-clock reading lives here only; the library's run never sees it.
struct RunProgress {
    bar: Option<ProgressBar>,
    started: std::time::Instant,
    last_line: std::time::Instant,
}

impl RunProgress {
    fn new() -> Self {
        let now = std::time::Instant::now();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
            );
            bar
        });
        RunProgress {
            bar,
            started: now,
            last_line: now,
        }
    }

    fn update(&mut self, p: afdsim::Progress) {
        let wall = std::time::Instant::now();
        let line = self.bar.is_none() && wall.duration_since(self.last_line) >= PROGRESS_LINE_EVERY;
        if self.bar.is_none() && !line {
            return;
        }
        let done = if p.bytes_total == 0 {
            String::new()
        } else {
            let f = p.bytes_done.min(p.bytes_total) as f64 / p.bytes_total as f64;
            let elapsed = wall.duration_since(self.started).as_secs_f64();
            let eta = if f > 0.0 {
                format!(", ETA {:.0} s", elapsed * (1.0 - f) / f)
            } else {
                String::new()
            };
            format!(
                "{:.1} % of {} bytes delivered{eta}, ",
                100.0 * f,
                p.bytes_total
            )
        };
        let msg = format!("{done}{} events, simulated {}", p.events, p.now);
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None => {
                eprintln!("progress: {msg}");
                self.last_line = wall;
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn cmd_run(
    path: Option<PathBuf>,
    seed: Option<u64>,
    json: bool,
    out: Option<PathBuf>,
    level: Option<&str>,
    trace: Option<PathBuf>,
) -> Result<ExitCode, InputError> {
    let level = level.and_then(afdsim::config::Level::parse);
    let scenario = match (&path, level) {
        (Some(p), _) => Scenario::load_at_level(p, seed, level)?,
        (None, None) => Scenario::embedded_default(seed),
        (None, Some(l)) => Scenario::embedded_default(seed).with_level(l)?,
    };
    let mut progress = RunProgress::new();
    let outcome = afdsim::run(&scenario, &mut |p| progress.update(p));
    progress.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            match &e {
                // An input error names its own file.
                afdsim::RunError::Input(i) => eprintln!("error: {i}"),
                _ => eprintln!("error: {}: {e}", scenario.origin()),
            }
            return Ok(ExitCode::from(match e {
                afdsim::RunError::Deadlock(_) => 3,
                afdsim::RunError::Compute(_)
                | afdsim::RunError::Input(_)
                | afdsim::RunError::PastHorizon(_)
                | afdsim::RunError::Unsupported(_) => 2,
            }));
        }
    };
    let output = outcome.output(&scenario);
    if let Some(file) = &trace {
        let write = || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(std::fs::File::create(file)?);
            afdsim::report::trace::write_trace(
                &mut w,
                &scenario.fabric().topology,
                &outcome.run,
                outcome.step(),
            )?;
            w.flush()
        };
        write().map_err(|e| {
            InputError::for_path(file, "--trace", format!("cannot write the trace: {e}"))
        })?;
    }
    if let Some(dir) = &out {
        write_out_dir(dir, &output, &scenario, &outcome.run).map_err(|e| {
            InputError::for_path(dir, "--out", format!("cannot write results: {e}"))
        })?;
    }
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        writeln!(stdout, "{}", output.to_json())
    } else {
        output.write_human(&mut stdout)
    };
    // A closed pipe (e.g. `| head`) is not an error worth a message.
    let _ = written;
    Ok(ExitCode::SUCCESS)
}

fn cmd_slo_search(a: &SloSearchArgs) -> Result<ExitCode, InputError> {
    use afdsim::serving::{Server, Slo, search};
    let cmd = |key: &str, msg: String| InputError::new("<command line>", key, msg);
    if !(a.tolerance.is_finite() && a.tolerance > 0.0 && a.tolerance < 10.0) {
        return Err(cmd("--tolerance", "must be > 0 and < 10".into()));
    }
    if a.probes == 0 {
        return Err(cmd("--probes", "must be at least 1".into()));
    }
    if a.requests == Some(0) {
        return Err(cmd("--requests", "must be at least 1".into()));
    }
    let level = a.level.as_deref().and_then(afdsim::config::Level::parse);
    // Progress within a probe goes to stderr (stdout keeps the results): a bar on a
    // terminal, otherwise a line at most every PLAIN_EVERY. The wall clock is read here
    // only; the search's results do not depend on it.
    const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let tty = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for path in &a.scenarios {
        let scenario = Scenario::load_at_level(path, a.seed, level)?;
        let origin = scenario.origin().to_string();
        let Some(spec) = &scenario.serving() else {
            return Err(InputError::new(
                origin,
                "serving",
                "slo-search needs a serving scenario (a [serving] table)",
            ));
        };
        let file = spec.slo;
        let slo = match (
            a.ttft_ms.or(file.map(|s| s.ttft_ms)),
            a.tpot_ms.or(file.map(|s| s.tpot_ms)),
        ) {
            (Some(ttft), Some(tpot)) => {
                let pct = a.percentile.or(file.map(|s| s.percentile)).unwrap_or(90.0);
                Slo::new(ttft, tpot, pct)
                    .map_err(|(k, m)| cmd(&format!("--{}", k.replace('_', "-")), m))?
            }
            _ => {
                return Err(InputError::new(
                    origin,
                    "serving.ttft_ms",
                    "no limits: give --ttft-ms and --tpot-ms, or serving.ttft_ms and serving.tpot_ms",
                ));
            }
        };
        let Some(start) = spec.traffic.rate() else {
            return Err(InputError::new(
                origin,
                "serving.traffic",
                "a trace has no rate to search over: use a Poisson traffic",
            ));
        };
        let requests = a.requests.unwrap_or(spec.requests);
        if !a.json {
            let _ = writeln!(
                stdout,
                "{}: {} on {} GPUs, p{} TTFT <= {} ms, TPOT <= {} ms, {} requests, seed {}",
                scenario.name(),
                spec.deployment.as_str(),
                spec.total_gpus,
                slo.percentile,
                slo.ttft_ms,
                slo.tpot_ms,
                requests,
                scenario.seed()
            );
        }
        let mut server = Server::new(spec, &scenario.fabric(), &scenario.net(), scenario.level());
        let bar = if tty {
            let bar = ProgressBar::new(requests as u64);
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} [{bar:16}] {pos}/{len} req  {wide_msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let last_line = std::sync::Mutex::new(std::time::Instant::now());
        let name = scenario.name();
        // Called from the search's thread and from the threads simulating corners.
        let progress = |p: search::SearchProgress| {
            let r = p.run;
            if tty {
                // Short: the line is cut at the terminal's width.
                bar.set_length(r.requests);
                bar.set_position(r.requests_done);
                bar.set_message(if r.corners_needed > 0 {
                    format!(
                        "probe {} @ {:.3}/s, corners {}/{} ({} done)",
                        p.probe,
                        p.rate_per_s,
                        r.corners_done,
                        r.corners_needed,
                        r.corners_simulated
                    )
                } else {
                    format!(
                        "probe {} @ {:.3}/s, {} corners done",
                        p.probe, p.rate_per_s, r.corners_simulated
                    )
                });
                return;
            }
            let mut last = last_line.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= PLAIN_EVERY {
                *last = std::time::Instant::now();
                let corners = if r.corners_needed > 0 {
                    format!(
                        "corners {}/{} for this iteration, {} simulated",
                        r.corners_done, r.corners_needed, r.corners_simulated
                    )
                } else {
                    format!("{} corners simulated", r.corners_simulated)
                };
                eprintln!(
                    "{name}: probe {} at {:.3} req/s: {}/{} requests served, {corners}",
                    p.probe, p.rate_per_s, r.requests_done, r.requests
                );
            }
        };
        let mut n = 0;
        let result = search::search_observed(
            &mut server,
            slo,
            search::Options {
                max_probes: a.probes,
                tolerance: a.tolerance,
            },
            start,
            |rate| {
                let reqs = spec.traffic.with_rate(rate)?.requests(requests, scenario.seed())?;
                afdsim::config::check_fits(&origin, spec, &reqs)?;
                Ok(reqs)
            },
            |p| {
                n += 1;
                if !a.json {
                    bar.suspend(|| writeln!(
                        std::io::stdout(),
                        "  probe {n:>2}: {:>10.3} req/s  TTFT {:>10.1} ms  TPOT {:>8.2} ms  {:>8.1} tok/s/GPU  {}{}",
                        p.rate_per_s,
                        p.ttft_ms,
                        p.tpot_ms,
                        p.tokens_per_s_per_gpu,
                        if p.met { "met" } else { "missed" },
                        p.preemptions
                            .map(|n| format!("  ({n} preempted)"))
                            .unwrap_or_default()
                    ))
                    .ok();
                }
            },
            &progress,
        )
        .map_err(|e| InputError::new(origin.clone(), "serving", e.to_string()))?;
        bar.finish_and_clear();
        let stats = server.cost_stats();
        eprintln!(
            "{}: {} iterations simulated in {:.1} s for {} asked",
            scenario.name(),
            stats.corners_simulated,
            stats.corner_wall_s,
            stats.queries
        );
        results.push((
            scenario.name().to_string(),
            spec.deployment.as_str(),
            spec.total_gpus,
            scenario.seed(),
            scenario.level().as_str(),
            result,
        ));
    }
    if a.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, dep, gpus, seed, level, r)| {
                serde_json::json!({"scenario": name, "deployment": dep, "gpus": gpus, "seed": seed, "level": level, "result": r})
            })
            .collect();
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&v).expect("serializes")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let _ = writeln!(
        stdout,
        "\n{:<28} {:<15} {:>5} {:>12} {:>13} {:>10} {:>10} {:>7}",
        "scenario", "deployment", "GPUs", "best req/s", "tok/s/GPU", "TTFT pX", "TPOT pX", "probes"
    );
    for (name, dep, gpus, _, _, r) in &results {
        let best = r.best.as_ref();
        let probe = r
            .probes
            .iter()
            .find(|p| p.met && Some(p.rate_per_s) == r.best_rate_per_s);
        let _ = writeln!(
            stdout,
            "{:<28} {:<15} {:>5} {:>12} {:>13} {:>10} {:>10} {:>7}",
            name,
            dep,
            gpus,
            r.best_rate_per_s
                .map_or("none".into(), |x| format!("{x:.3}")),
            best.map_or("-".into(), |b| format!("{:.1}", b.tokens_per_s_per_gpu)),
            probe.map_or("-".into(), |p| format!("{:.1}", p.ttft_ms)),
            probe.map_or("-".into(), |p| format!("{:.2}", p.tpot_ms)),
            r.probes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_fabric_show(fabric: &str, nodes: Option<u32>, json: bool) -> Result<ExitCode, InputError> {
    let (rf, built, cc) = afdsim::config::load_fabric(fabric, nodes)?;
    let summary = afdsim::report::fabric::summarize(&rf, &built, cc);
    let mut stdout = std::io::stdout().lock();
    let _ = if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        )
    } else {
        summary.write_human(&mut stdout)
    };
    Ok(ExitCode::SUCCESS)
}

fn cmd_validate(json: bool, filter: Option<&str>) -> Result<ExitCode, InputError> {
    let cases: Vec<_> = validation::cases()
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    if cases.is_empty() {
        return Err(InputError::new(
            "<command line>",
            "--filter",
            format!("no validation case matches `{}`", filter.unwrap_or("")),
        ));
    }
    let bar = if json || !std::io::stdout().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cases.len() as u64)
    };
    let mut checks: Vec<Check> = Vec::new();
    for case in &cases {
        bar.set_message(case.name);
        checks.extend((case.run)()?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = validation::Summary::of(&checks);
    let mut stdout = std::io::stdout().lock();
    let _ = if json {
        let rows: Vec<CheckRow> = checks.iter().map(CheckRow::from).collect();
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        )
    } else {
        print_table(&mut stdout, &checks, &summary)
    };
    // Known gaps that still fail are documented, not regressions: they leave the status 0.
    Ok(ExitCode::from(summary.exit_code()))
}

/// The checks that are no known gap, then the known gaps in their own section with their
/// reasons, then the summary line.
fn print_table(
    w: &mut dyn Write,
    checks: &[Check],
    summary: &validation::Summary,
) -> std::io::Result<()> {
    let header = [
        "case",
        "metric",
        "expected",
        "simulated",
        "error %",
        "tol %",
        "result",
        "source",
    ];
    let fmt_pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let rows: Vec<(validation::Status, [String; 8])> = checks
        .iter()
        .map(|c| {
            let tol = match c.compare {
                validation::Compare::Within { tolerance_pct } => format!("{tolerance_pct:.3}"),
                validation::Compare::AtLeast => ">= exp".to_string(),
                validation::Compare::AtMost => "<= exp".to_string(),
            };
            let status = validation::status(c);
            let result = match status {
                validation::Status::Pass => "pass",
                validation::Status::Fail => "FAIL",
                validation::Status::KnownGap => "gap",
                validation::Status::KnownGapPasses => "GAP PASSES",
            };
            let row = [
                c.case.clone(),
                c.metric.clone(),
                format!("{:.4}", c.expected),
                format!("{:.4}", c.simulated),
                fmt_pct(c.error_pct()),
                tol,
                result.to_string(),
                c.source.clone(),
            ];
            (status, row)
        })
        .collect();
    let mut widths = header.map(str::len);
    for (_, r) in &rows {
        for (i, cell) in r.iter().enumerate().take(7) {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 7 {
                s.push_str(c);
            } else if (2..6).contains(&i) {
                s.push_str(&format!("{c:>w$}  ", w = widths[i]));
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    let section = |w: &mut dyn Write, gaps: bool| -> std::io::Result<()> {
        writeln!(w, "{}", line(&header))?;
        for (_, r) in rows.iter().filter(|(s, _)| s.is_known_gap() == gaps) {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            writeln!(w, "{}", line(&cells))?;
        }
        Ok(())
    };
    let gaps: Vec<(&Check, validation::Status)> = checks
        .iter()
        .zip(&rows)
        .filter(|(_, (s, _))| s.is_known_gap())
        .map(|(c, (s, _))| (c, *s))
        .collect();
    if gaps.len() < checks.len() {
        section(w, false)?;
    }
    if !gaps.is_empty() {
        if gaps.len() < checks.len() {
            writeln!(w)?;
        }
        writeln!(
            w,
            "Known gaps: documented disagreements (validation::KNOWN_GAPS), expected to fail; \
             they do not fail `validate`."
        )?;
        section(w, true)?;
        for (c, status) in gaps {
            let why = validation::known_gap(c).unwrap_or_default();
            if status == validation::Status::KnownGapPasses {
                writeln!(
                    w,
                    "  {} / {}: PASSES NOW: a regression of the list until its entry leaves \
                     validation::KNOWN_GAPS (was: {why})",
                    c.case, c.metric
                )?;
            } else {
                writeln!(w, "  {} / {}: {why}", c.case, c.metric)?;
            }
        }
    }
    writeln!(w, "{summary}")
}
