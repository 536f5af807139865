//! The sweep commands of the CLI (`sweep`, `merge`, `plot`, `report`): clap arguments and
//! `run_*` functions that `main.rs` calls, over the library's [`afdsim::sweep`] and
//! [`afdsim::report`].
//! Each returns the exit code, or an [`InputError`] that the CLI prints on one line with
//! exit status 2.

use afdsim::error::InputError;
use afdsim::report::figures::standard_figures;
use afdsim::report::plot::{Mark, Plot, Table, axis_label, default_title, render_svg, series_of};
use afdsim::sweep::spec::cell;
use afdsim::sweep::{Plan, Shard, Sweep, merge};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The most threads `--jobs` may ask for. Points are CPU-bound, so more threads than cores
/// gain nothing; the bound is far above any node's cores (a Slurm task passes its
/// `--cpus-per-task`) and refuses a typo such as `--jobs 100000`, which started thousands
/// of threads.
pub const MAX_JOBS: usize = 1024;

/// `afdsim sweep SWEEP.toml --out DIR [--jobs N] [--shard I/N]`
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep file (TOML): a base scenario and axes; see docs/sweeps.md.
    pub sweep: PathBuf,
    /// Output folder: sweep.json and one file per finished point. Rerunning the same command
    /// skips finished points.
    #[arg(long, value_name = "DIR", required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Points run in parallel, 1 to 1024 (default: the number of cores); never more threads
    /// than points to run.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only points with index ≡ I (mod N), I from 0. Default: the Slurm array task
    /// (SLURM_ARRAY_TASK_ID/_COUNT/_MIN) when set, else every point.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// List the points (index, id, parameters) this process would run, and run nothing.
    #[arg(long)]
    pub list: bool,
}

/// `afdsim merge DIR... --out results.csv`
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output folders of the sweep's shards (one folder if all shards wrote to it).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The merged CSV: one row per point, in sweep order.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Write the finished points even if some are missing (they are listed on stderr).
    #[arg(long)]
    pub allow_missing: bool,
}

/// `afdsim plot results.csv --x COL --y COL [--series COL] [--log-x] --out FILE.svg`
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A result table (the CSV of `afdsim merge`, or any CSV with a header).
    pub table: PathBuf,
    /// Column for the x axis.
    #[arg(long, value_name = "COL")]
    pub x: String,
    /// Column for the y axis.
    #[arg(long, value_name = "COL")]
    pub y: String,
    /// One line per value of this column (repeat for combinations).
    #[arg(long, value_name = "COL")]
    pub series: Vec<String>,
    /// Keep only rows where COL equals VALUE (repeatable).
    #[arg(long = "where", value_name = "COL=VALUE")]
    pub filters: Vec<String>,
    /// Average y over rows that share x and series (e.g. over seeds).
    #[arg(long)]
    pub mean: bool,
    #[arg(long)]
    pub log_x: bool,
    #[arg(long)]
    pub log_y: bool,
    /// Title (default: y and x by their readable names, "makespan vs fabric NIC rate").
    /// A subtitle names the swept keys with one value over the rows drawn and the --where
    /// choices.
    #[arg(long)]
    pub title: Option<String>,
    /// Axis labels (default: the column names, with units spelled out from their suffix).
    #[arg(long, value_name = "TEXT")]
    pub x_label: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub y_label: Option<String>,
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
}

/// `afdsim report results.csv --out DIR`
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A merged sweep table (`afdsim merge`).
    pub table: PathBuf,
    /// Folder for the figures (SVG).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn read_table(path: &std::path::Path) -> Result<Table, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::for_path(path, "", format!("cannot read: {e}")))?;
    Table::parse(&text).map_err(|m| InputError::for_path(path, "", m))
}

pub fn run_plot(args: &PlotArgs) -> Result<ExitCode, InputError> {
    let mut table = read_table(&args.table)?;
    let err = |key: &str, m: String| InputError::for_path(&args.table, key, m);
    for f in &args.filters {
        let (col, value) = f.split_once('=').ok_or_else(|| {
            InputError::new(
                "<command line>",
                "--where",
                format!("`{f}` is not COL=VALUE"),
            )
        })?;
        table = table.filter(col, value).map_err(|m| err("--where", m))?;
        if table.rows.is_empty() {
            return Err(err("--where", format!("no row has {col} = {value}")));
        }
    }
    let series: Vec<&str> = args.series.iter().map(String::as_str).collect();
    let lines = series_of(&table, &args.x, &args.y, &series, args.mean, Mark::Lines)
        .map_err(|m| err("", m))?;
    for (log, col, flag) in [
        (args.log_x, &args.x, "--log-x"),
        (args.log_y, &args.y, "--log-y"),
    ] {
        if log {
            table.check_positive(col, flag).map_err(|m| err("", m))?;
        }
    }
    // The subtitle: overrides fixed over the rows drawn (a one-value axis, a --where on a
    // swept key), and --where choices on other columns.
    let mut shown = vec![args.x.as_str(), args.y.as_str()];
    shown.extend(series.iter().copied());
    let mut subtitle = table.fixed_overrides(&shown);
    let params = table.param_columns();
    for f in &args.filters {
        let (col, value) = f.split_once('=').expect("checked above");
        if !params.iter().any(|p| p == col) && !shown.contains(&col) {
            subtitle.push(format!("{col} = {value}"));
        }
    }
    let plot = Plot {
        title: args
            .title
            .clone()
            .unwrap_or_else(|| default_title(&args.x, &args.y)),
        subtitle,
        x_label: args.x_label.clone().unwrap_or_else(|| axis_label(&args.x)),
        y_label: args.y_label.clone().unwrap_or_else(|| axis_label(&args.y)),
        log_x: args.log_x,
        log_y: args.log_y,
        series: lines,
    };
    let svg = render_svg(&plot).map_err(|m| err("", m))?;
    write_file_atomically(&args.out, svg.as_bytes())?;
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn run_report(args: &ReportArgs) -> Result<ExitCode, InputError> {
    let table = read_table(&args.table)?;
    let made = standard_figures(&table);
    let mut written = 0;
    let mut skipped = Vec::new();
    for m in &made {
        match &m.svg {
            Ok(svg) => {
                let path = args.out.join(m.file);
                write_file_atomically(&path, svg.as_bytes())?;
                eprintln!("wrote   {}", path.display());
                written += 1;
            }
            Err(why) => {
                eprintln!("skipped {}: {why}", m.file);
                skipped.push(format!("{}: {why}", m.file));
            }
        }
    }
    if written == 0 {
        return Err(InputError::for_path(
            &args.table,
            "",
            format!(
                "no standard figure can be drawn from this table: {}",
                skipped.join("; ")
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The shard (`--shard`, else the Slurm array task's, else all) and the threads (`--jobs`,
/// else all cores) of a batch run; `what` names what the threads run, for the error.
pub fn shard_and_jobs(
    shard: Option<&str>,
    jobs: Option<usize>,
    what: &str,
) -> Result<(Shard, usize), InputError> {
    let shard = match shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::from_slurm(|k| std::env::var(k).ok())?.unwrap_or(Shard::ALL),
    };
    let jobs = match jobs {
        Some(n) if !(1..=MAX_JOBS).contains(&n) => {
            return Err(InputError::new(
                "<command line>",
                "--jobs",
                format!("{n} is not allowed: 1 to {MAX_JOBS} (threads running {what})"),
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Ok((shard, jobs))
}

/// A bar of `len` finished `what` with ETA on a terminal's stderr; hidden otherwise.
pub fn batch_bar(len: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what}  {{elapsed_precise}} elapsed, ETA {{eta_precise}}"
        ))
        .expect("valid template"),
    );
    b
}

pub fn run_sweep(args: &SweepArgs) -> Result<ExitCode, InputError> {
    let sweep = Sweep::load(&args.sweep)?;
    let (shard, jobs) = shard_and_jobs(args.shard.as_deref(), args.jobs, "points")?;
    if args.list {
        return list(&sweep, shard);
    }
    let out = args
        .out
        .as_deref()
        .expect("clap requires --out unless --list");
    let plan = Plan::new(&sweep, out, shard)?;
    // A thread with no point to run would only cost its start.
    let jobs = jobs.min(plan.pending.len()).max(1);
    let r = plan.report();
    eprintln!(
        "sweep {}: {} points; shard {shard}: {} points, {} already finished{}, {} to run on {jobs} thread(s)",
        sweep.name,
        r.points_total,
        r.in_shard,
        r.already_done,
        if r.invalid_found > 0 {
            format!(" ({} unfinished files redone)", r.invalid_found)
        } else {
            String::new()
        },
        plan.pending.len()
    );
    let bar = batch_bar(plan.pending.len(), "points");
    let report = plan.execute(jobs, &|_| bar.inc(1));
    bar.finish_and_clear();
    let report = report?;
    let per = |d: std::time::Duration| {
        if report.ran == 0 {
            0.0
        } else {
            d.as_secs_f64() * 1e3 / report.ran as f64
        }
    };
    eprintln!(
        "ran {} points in {:.2} s; per point: resolve {:.3} ms, simulate {:.3} ms, write {:.3} ms; results in {}",
        report.ran,
        report.wall.as_secs_f64(),
        per(report.resolve),
        per(report.simulate),
        per(report.write),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints `index id key=value...` for the shard's points after resolving each one (so a
/// bad combination of values shows before a cluster job runs).
fn list(sweep: &Sweep, shard: Shard) -> Result<ExitCode, InputError> {
    let mut out = std::io::stdout().lock();
    for p in sweep.points().iter().filter(|p| shard.contains(p.index)) {
        sweep.scenario(p)?;
        let params: Vec<String> = p
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect();
        if writeln!(out, "{}\t{}\t{}", p.index, p.id, params.join(" ")).is_err() {
            break; // closed pipe
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_merge(args: &MergeArgs) -> Result<ExitCode, InputError> {
    let merged = merge(&args.dirs, args.allow_missing)?;
    if merged.versions.len() > 1 {
        eprintln!(
            "warning: rows were written by different afdsim versions: {}",
            merged.versions.join(", ")
        );
    }
    if !merged.missing.is_empty() {
        let list: Vec<String> = merged.missing.iter().map(usize::to_string).collect();
        eprintln!(
            "warning: {} point(s) not finished, left out: {}",
            merged.missing.len(),
            list.join(" ")
        );
    }
    write_file_atomically(&args.out, merged.to_csv().as_bytes())?;
    eprintln!(
        "merged {} rows from {} folder(s) into {}",
        merged.rows.len(),
        args.dirs.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a whole file or none (a temporary beside it, then a rename).
pub fn write_file_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), InputError> {
    let err = |e: std::io::Error| InputError::for_path(path, "--out", format!("cannot write: {e}"));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
