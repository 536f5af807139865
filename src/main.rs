//! The afdsim command line: a thin shell over the library.
//!
//! Exit status: 0 success, 1 a validation regression, 2 bad input or usage, 3 the
//! simulation deadlocked (a cycle of PFC or credit pauses).

mod cli;

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
    Compute(cli::compute::ComputeArgs),
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
    Sweep(cli::sweep::SweepArgs),
    /// Merge sweep output folders (shards) into one CSV, checking that no point is missing.
    Merge(cli::sweep::MergeArgs),
    /// Plot two columns of a result table as SVG.
    Plot(cli::sweep::PlotArgs),
    /// Draw the standard figures of a merged sweep as SVG files.
    Report(cli::sweep::ReportArgs),
    /// Find the highest request rate that meets TTFT and TPOT limits, for one serving
    /// scenario or several (a deployment comparison table).
    SloSearch(cli::slo_search::SloSearchArgs),
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
        Command::Compute(c) => {
            cli::compute::run(c, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Fabric {
            command:
                FabricCommand::Show {
                    fabric,
                    nodes,
                    json,
                },
        } => cmd_fabric_show(&fabric, nodes, json),
        Command::Sweep(args) => cli::sweep::run_sweep(&args),
        Command::Merge(args) => cli::sweep::run_merge(&args),
        Command::Plot(args) => cli::sweep::run_plot(&args),
        Command::Report(args) => cli::sweep::run_report(&args),
        Command::SloSearch(args) => cli::slo_search::run(&args),
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
                _ => eprintln!("error: {}: {e}", scenario.origin),
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
                &scenario.fabric.topology,
                &outcome.run,
                outcome.step.as_ref(),
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
