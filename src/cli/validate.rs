//! `afdsim validate`: every validation case, as a table or JSON.

use afdsim::error::InputError;
use afdsim::validation::{self, Check, CheckRow};
use indicatif::ProgressBar;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub fn run(json: bool, filter: Option<&str>) -> Result<ExitCode, InputError> {
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
