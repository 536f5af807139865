//! Running a sweep's points into an output folder, in parallel, resumably.
//!
//! The folder holds `sweep.json` (the manifest: every point's index, id and parameters) and
//! `points/<id>.csv`, one file per finished point: a header line and one row.
//!
//! Why one file per point, written to a temporary name and renamed into place, rather than
//! appending to one CSV: a rename is atomic, so at any instant a point's file is either
//! absent or whole; a SIGKILL at any moment leaves at most a stray temporary file, which no
//! reader counts. It also lets any number of processes (the tasks of a Slurm array, on one
//! node or many sharing a file system) write into one folder without locks or interleaved
//! appends. There is no fsync per point: a killed process loses nothing the kernel already
//! holds, and against a power loss (which can leave a renamed file empty) resume re-checks
//! every finished file and runs again any point whose file does not hold its one valid row.

use super::shard::Shard;
use super::spec::{Point, Sweep, cell};
use crate::error::InputError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The afdsim version written into every row.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Columns every row has, between the swept parameters and the metrics.
pub const FIXED_COLUMNS: [&str; 4] = ["seed", "scenario", "level", "afdsim_version"];

/// A batch of points run into an output folder: a sweep file's points ([`Sweep`]), or an
/// explore study's candidates. The folder, resume, shards and merge work the same on both.
pub trait Batch: Sync {
    fn name(&self) -> &str;
    /// The file the batch came from (errors name it).
    fn origin(&self) -> &str;
    /// The parameter columns of every row, in order (`seed` is written among the fixed
    /// columns instead).
    fn param_keys(&self) -> Vec<String>;
    fn points(&self) -> &[Point];
    /// Runs one point: its row after the parameter columns.
    fn run_point(&self, point: &Point) -> Result<PointRow, InputError>;
}

/// What a point's run gives its row, and how long its parts took.
pub struct PointRow {
    pub seed: String,
    pub scenario: String,
    pub level: String,
    /// (column, cell) after the fixed columns.
    pub metrics: Vec<(String, String)>,
    pub resolve: Duration,
    pub simulate: Duration,
}

impl Batch for Sweep {
    fn name(&self) -> &str {
        &self.name
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn param_keys(&self) -> Vec<String> {
        Sweep::param_keys(self)
    }

    fn points(&self) -> &[Point] {
        Sweep::points(self)
    }

    fn run_point(&self, point: &Point) -> Result<PointRow, InputError> {
        let t0 = Instant::now();
        let scenario = self.scenario(point)?;
        let t1 = Instant::now();
        let outcome = crate::run(&scenario, &mut |_| {}).map_err(|d| {
            InputError::new(
                self.origin.as_str(),
                format!("point {} ({})", point.index, point.id),
                d.to_string(),
            )
        })?;
        let t2 = Instant::now();
        let output = serde_json::to_value(outcome.output(&scenario)).expect("output serializes");
        Ok(PointRow {
            seed: output["seed"].to_string(),
            scenario: output["scenario"].as_str().unwrap_or_default().to_string(),
            level: output["level"].as_str().unwrap_or_default().to_string(),
            metrics: flatten_metrics(&output["metrics"]),
            resolve: t1 - t0,
            simulate: t2 - t1,
        })
    }
}

/// What `sweep.json` holds. Every process of a sweep writes the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub sweep: String,
    /// The swept keys: the parameter columns of every row.
    pub param_keys: Vec<String>,
    pub points: Vec<ManifestPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestPoint {
    pub index: usize,
    pub id: String,
    /// Cell text of each parameter, in `param_keys` order.
    pub params: Vec<String>,
}

impl Manifest {
    pub fn of(sweep: &dyn Batch) -> Manifest {
        Manifest {
            sweep: sweep.name().to_string(),
            param_keys: sweep.param_keys(),
            points: sweep
                .points()
                .iter()
                .map(|p| ManifestPoint {
                    index: p.index,
                    id: p.id.clone(),
                    params: p.params.iter().map(|(_, v)| cell(v)).collect(),
                })
                .collect(),
        }
    }

    pub fn read(dir: &Path) -> Result<Manifest, InputError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            InputError::for_path(
                &path,
                "",
                format!("cannot read the sweep manifest ({e}); is this the --out folder of `afdsim sweep`?"),
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| InputError::for_path(&path, "", format!("not a sweep manifest: {e}")))
    }

    /// The parameters of a point as `key=value, ...` (for messages).
    pub fn describe(&self, p: &ManifestPoint) -> String {
        self.param_keys
            .iter()
            .zip(&p.params)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub const MANIFEST: &str = "sweep.json";
pub const POINTS: &str = "points";

/// The file of a finished point.
pub fn point_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(POINTS).join(format!("{id}.csv"))
}

/// What a run did and how long its parts took (wall time summed over points).
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub points_total: usize,
    pub in_shard: usize,
    /// Points of the shard already finished before this run (skipped).
    pub already_done: usize,
    /// Finished files that did not hold their one valid row (run again).
    pub invalid_found: usize,
    pub ran: usize,
    pub wall: Duration,
    /// Applying overrides and `Scenario::parse`, summed over points.
    pub resolve: Duration,
    /// `afdsim::run`, summed over points.
    pub simulate: Duration,
    /// Building the row and writing its file, summed over points.
    pub write: Duration,
}

/// The work of one process: its shard's points that have no valid finished file.
pub struct Plan<'a> {
    sweep: &'a dyn Batch,
    dir: PathBuf,
    pub pending: Vec<&'a Point>,
    report: RunReport,
}

impl<'a> Plan<'a> {
    /// Prepares `dir` (writes the manifest, or checks that it is this sweep's) and finds the
    /// shard's unfinished points.
    pub fn new(sweep: &'a dyn Batch, dir: &Path, shard: Shard) -> Result<Plan<'a>, InputError> {
        let io = |e: std::io::Error, what: &str| {
            InputError::for_path(dir, "--out", format!("cannot {what}: {e}"))
        };
        std::fs::create_dir_all(dir.join(POINTS)).map_err(|e| io(e, "create the folder"))?;
        let manifest = Manifest::of(sweep);
        if dir.join(MANIFEST).exists() {
            let old = Manifest::read(dir)?;
            if old != manifest {
                return Err(InputError::for_path(
                    dir,
                    "--out",
                    format!(
                        "holds results of another sweep ({}): its sweep.json differs from `{}` ({}); use another --out folder",
                        old.sweep,
                        sweep.origin(),
                        first_difference(&old, &manifest)
                    ),
                ));
            }
        } else {
            let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes") + "\n";
            write_atomically(
                &dir.join(MANIFEST),
                text.as_bytes(),
                &format!("shard{}", shard.index()),
            )
            .map_err(|e| io(e, "write sweep.json"))?;
        }

        let header = header(sweep, None);
        let mut report = RunReport {
            points_total: sweep.points().len(),
            ..RunReport::default()
        };
        let mut pending = Vec::new();
        remove_stale_temporaries(dir, sweep, shard);
        for p in sweep.points().iter().filter(|p| shard.contains(p.index)) {
            report.in_shard += 1;
            match std::fs::read_to_string(point_path(dir, &p.id)) {
                Ok(text) if row_is_valid(&text, &header, &p.id) => report.already_done += 1,
                Ok(_) => {
                    report.invalid_found += 1;
                    pending.push(p);
                }
                Err(_) => pending.push(p),
            }
        }
        Ok(Plan {
            sweep,
            dir: dir.to_path_buf(),
            pending,
            report,
        })
    }

    /// Runs the pending points on `jobs` threads; `on_done` is called after each point's
    /// file is in place. Stops at the first error (points already written stay valid).
    pub fn execute(
        self,
        jobs: usize,
        on_done: &(dyn Fn(&Point) + Sync),
    ) -> Result<RunReport, InputError> {
        let started = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
            .map_err(|e| {
                InputError::new(
                    "<command line>",
                    "--jobs",
                    format!("cannot start threads: {e}"),
                )
            })?;
        let failed = AtomicBool::new(false);
        let times = Mutex::new((Duration::ZERO, Duration::ZERO, Duration::ZERO, 0usize));
        let sweep = self.sweep;
        let dir = &self.dir;
        let result = pool.install(|| {
            // One point per task (with_max_len(1)): points differ in cost, so let idle
            // threads steal single points rather than halves of the list.
            self.pending
                .par_iter()
                .with_max_len(1)
                .try_for_each(|p| -> Result<(), InputError> {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let r = run_point(sweep, dir, p);
                    match r {
                        Ok((resolve, simulate, write)) => {
                            let mut t = times.lock().expect("no panics while held");
                            t.0 += resolve;
                            t.1 += simulate;
                            t.2 += write;
                            t.3 += 1;
                            drop(t);
                            on_done(p);
                            Ok(())
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            Err(e)
                        }
                    }
                })
        });
        let (resolve, simulate, write, ran) = times.into_inner().expect("no panics while held");
        result?;
        Ok(RunReport {
            ran,
            wall: started.elapsed(),
            resolve,
            simulate,
            write,
            ..self.report
        })
    }

    /// Counts before running (for the progress line).
    pub fn report(&self) -> &RunReport {
        &self.report
    }
}

/// Runs one point and puts its file in place; returns (resolve, simulate, write) times.
pub fn run_point(
    sweep: &dyn Batch,
    dir: &Path,
    point: &Point,
) -> Result<(Duration, Duration, Duration), InputError> {
    let r = sweep.run_point(point)?;
    let t2 = Instant::now();
    let header = header(sweep, Some(&r.metrics));
    let mut row: Vec<String> = vec![point.id.clone(), point.index.to_string()];
    for (k, v) in &point.params {
        if k != "seed" {
            row.push(cell(v));
        }
    }
    row.push(r.seed);
    row.push(r.scenario);
    row.push(r.level);
    row.push(VERSION.to_string());
    row.extend(r.metrics.into_iter().map(|(_, v)| v));
    let text = csv_text(&header, &[row]);
    write_atomically(&point_path(dir, &point.id), text.as_bytes(), "")
        .map_err(|e| InputError::for_path(dir, "--out", format!("cannot write a point: {e}")))?;
    Ok((r.resolve, r.simulate, t2.elapsed()))
}

/// The row header: `point, index, <swept keys but seed>, seed, scenario, level,
/// afdsim_version`, then the metric columns when known.
pub fn header(sweep: &dyn Batch, metrics: Option<&[(String, String)]>) -> Vec<String> {
    let mut h = vec!["point".to_string(), "index".to_string()];
    h.extend(sweep.param_keys().into_iter().filter(|k| k != "seed"));
    h.extend(FIXED_COLUMNS.iter().map(|s| s.to_string()));
    if let Some(m) = metrics {
        h.extend(m.iter().map(|(k, _)| k.clone()));
    }
    h
}

/// A metrics JSON object as (column, cell) pairs: nested keys joined by `.`
/// (`message_time_us.p99`), arrays indexed (`x[0]`), in the object's (sorted) key order.
/// Generic on purpose: metrics added by later issues become columns with no change here.
pub fn flatten_metrics(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), x, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// CSV text of a header and rows (RFC 4180 quoting by the csv crate).
pub fn csv_text(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).expect("in-memory write");
    for r in rows {
        w.write_record(r).expect("in-memory write");
    }
    String::from_utf8(w.into_inner().expect("in-memory flush")).expect("utf-8 cells")
}

/// Whether a point file holds exactly one row whose first columns are as expected.
fn row_is_valid(text: &str, header_prefix: &[String], id: &str) -> bool {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let Ok(h) = r.headers() else { return false };
    if h.len() < header_prefix.len() || h.iter().zip(header_prefix).any(|(a, b)| a != b) {
        return false;
    }
    let width = h.len();
    let mut rows = r.records();
    let ok = matches!(rows.next(), Some(Ok(rec)) if rec.len() == width && rec.get(0) == Some(id));
    ok && rows.next().is_none() && text.ends_with('\n')
}

/// Writes `path` whole or not at all: a temporary file beside it, then a rename.
fn write_atomically(path: &Path, bytes: &[u8], tag: &str) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp{tag}-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Removes the temporary files that a killed run left for this shard's points (other
/// shards may be writing theirs into the same folder right now).
fn remove_stale_temporaries(dir: &Path, sweep: &dyn Batch, shard: Shard) {
    let Ok(entries) = std::fs::read_dir(dir.join(POINTS)) else {
        return;
    };
    let mine: std::collections::HashSet<&str> = sweep
        .points()
        .iter()
        .filter(|p| shard.contains(p.index))
        .map(|p| p.id.as_str())
        .collect();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix('.') else {
            continue;
        };
        if let Some((id, _)) = rest.split_once(".csv.tmp")
            && mine.contains(id)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn first_difference(a: &Manifest, b: &Manifest) -> String {
    if a.sweep != b.sweep {
        return format!("name `{}` vs `{}`", a.sweep, b.sweep);
    }
    if a.param_keys != b.param_keys {
        return format!(
            "swept keys [{}] vs [{}]",
            a.param_keys.join(", "),
            b.param_keys.join(", ")
        );
    }
    if a.points.len() != b.points.len() {
        return format!("{} points vs {}", a.points.len(), b.points.len());
    }
    match a.points.iter().zip(&b.points).find(|(x, y)| x != y) {
        Some((x, y)) => format!(
            "point {}: [{}] vs [{}]",
            x.index,
            a.describe(x),
            b.describe(y)
        ),
        None => "no difference".into(),
    }
}
