//! `afdsim run`: one scenario, its progress on stderr, its metrics on stdout (and files).

use afdsim::config::Scenario;
use afdsim::error::InputError;
use afdsim::report::write_out_dir;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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

pub fn run(
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
                | afdsim::RunError::Serving(_)
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
