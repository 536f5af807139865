//! `afdsim explore STUDY.toml --out DIR`: a study's candidates run as a batch (all cores,
//! resume, Slurm shards), then its report once every candidate is finished.

use afdsim::error::InputError;
use afdsim::explore::{Study, report};
use afdsim::sweep::spec::cell;
use afdsim::sweep::{Batch, Plan, merge};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::sweep::{batch_bar, shard_and_jobs, write_file_atomically};

#[derive(Args)]
pub struct ExploreArgs {
    /// Study file (TOML): model, GPU budget, workloads, hardware, SLO grid, families.
    pub study: PathBuf,
    /// Output folder: the candidates' rows (as a sweep's), then `report/` (report.md,
    /// cells.csv, SVG figures). Rerunning skips finished candidates.
    #[arg(long, required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Threads running candidates (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run only shard I of N (I from 0); default: from SLURM_ARRAY_TASK_* or all.
    #[arg(long)]
    pub shard: Option<String>,
    /// Print `index id parameters` for every candidate (and the excluded ones) and stop.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: &ExploreArgs) -> Result<ExitCode, InputError> {
    let study = Study::load(&args.study)?;
    let (shard, jobs) = shard_and_jobs(args.shard.as_deref(), args.jobs, "candidates")?;
    if args.list {
        let mut out = std::io::stdout().lock();
        for p in study.points().iter().filter(|p| shard.contains(p.index)) {
            let params: Vec<String> = p
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", cell(v)))
                .collect();
            if writeln!(out, "{}\t{}\t{}", p.index, p.id, params.join(" ")).is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        for (c, why) in &study.excluded {
            let _ = writeln!(
                out,
                "excluded\t{} on {}: {}",
                study.describe(c),
                study.hardware[c.hardware].name,
                why.lines().next().unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let out = args
        .out
        .as_deref()
        .expect("clap requires --out unless --list");
    let plan = Plan::new(&study, out, shard)?;
    let jobs = jobs.min(plan.pending.len()).max(1);
    let r = plan.report();
    eprintln!(
        "explore {}: {} candidates ({} excluded), {} workloads x {} SLO cells each; shard \
         {shard}: {} candidates, {} already finished, {} to run on {jobs} thread(s); seed {}",
        study.name,
        r.points_total,
        study.excluded.len(),
        study.workloads.len(),
        study.cells().len(),
        r.in_shard,
        r.already_done,
        plan.pending.len(),
        study.seed
    );
    let bar = batch_bar(plan.pending.len(), "candidates");
    let tty = std::io::stderr().is_terminal();
    let report = plan.execute(jobs, &|p| {
        bar.inc(1);
        if !tty {
            let params: Vec<String> = p.params.iter().map(|(_, v)| cell(v)).collect();
            eprintln!("finished candidate {} ({})", p.index, params.join(" "));
        }
    });
    bar.finish_and_clear();
    let report = report?;
    eprintln!(
        "ran {} candidates in {:.1} s; results in {}",
        report.ran,
        report.wall.as_secs_f64(),
        out.display()
    );
    // The report needs every candidate, from every shard.
    let merged = merge(&[out.to_path_buf()], true)?;
    if !merged.missing.is_empty() {
        eprintln!(
            "{} of {} candidates are not finished (other shards?): run the command again \
             without --shard once they are, for the report",
            merged.missing.len(),
            study.points().len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let err = |m: String| InputError::for_path(out, "--out", m);
    let cells = report::cell_results(&study, &merged.to_csv()).map_err(err)?;
    let rep = report::build(&study, cells).map_err(err)?;
    let dir = out.join("report");
    write_file_atomically(&dir.join("cells.csv"), rep.csv.as_bytes())?;
    write_file_atomically(&dir.join("report.md"), rep.markdown.as_bytes())?;
    for (name, svg) in &rep.figures {
        write_file_atomically(&dir.join(name), svg.as_bytes())?;
    }
    let _ = std::io::stdout().lock().write_all(rep.markdown.as_bytes());
    eprintln!(
        "report: {} (report.md, cells.csv, {} figures)",
        dir.display(),
        rep.figures.len()
    );
    Ok(ExitCode::SUCCESS)
}
