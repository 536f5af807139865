//! Merging the output folders of a sweep's shards into one table, in sweep order.
//!
//! The manifests (`sweep.json`) of all folders must be the same sweep; every point of it must
//! be finished in exactly one folder. Anything else is reported by point: index, id and
//! parameters of what is missing, duplicated or foreign.

use super::run::{MANIFEST, Manifest, ManifestPoint, POINTS, csv_text};
use crate::error::InputError;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A merged table: one row per point, sorted by point index.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The afdsim versions that wrote the rows (more than one: the rows mix versions).
    pub versions: Vec<String>,
    /// Points with no row (only when merging with `allow_missing`).
    pub missing: Vec<usize>,
}

impl Merged {
    pub fn to_csv(&self) -> String {
        csv_text(&self.header, &self.rows)
    }
}

/// How many points a message lists before it says "and N more".
const LIST_AT_MOST: usize = 10;

/// Merges shard folders. With `allow_missing`, unfinished points are left out (and listed
/// in `missing`) instead of being an error.
pub fn merge(dirs: &[PathBuf], allow_missing: bool) -> Result<Merged, InputError> {
    let Some(first) = dirs.first() else {
        return Err(InputError::new(
            "<command line>",
            "DIR",
            "name at least one sweep output folder",
        ));
    };
    let manifest = Manifest::read(first)?;
    for d in &dirs[1..] {
        if Manifest::read(d)? != manifest {
            return Err(InputError::for_path(
                &d.join(MANIFEST),
                "",
                format!(
                    "is not the same sweep as {}: merge only the shards of one sweep",
                    first.join(MANIFEST).display()
                ),
            ));
        }
    }
    let by_id: HashMap<&str, &ManifestPoint> =
        manifest.points.iter().map(|p| (p.id.as_str(), p)).collect();

    // id -> the folders holding it; files that are no point of this sweep.
    let mut found: BTreeMap<usize, Vec<&PathBuf>> = BTreeMap::new();
    let mut foreign: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let pdir = d.join(POINTS);
        let entries = std::fs::read_dir(&pdir).map_err(|e| {
            InputError::for_path(&pdir, "", format!("cannot list finished points: {e}"))
        })?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.')) // temporaries of running or killed writers
            .collect();
        names.sort();
        for n in names {
            match n.strip_suffix(".csv").and_then(|id| by_id.get(id)) {
                Some(p) => found.entry(p.index).or_default().push(d),
                None => foreign.push(pdir.join(&n)),
            }
        }
    }
    let place = first.display().to_string();
    if !foreign.is_empty() {
        let list: Vec<String> = foreign
            .iter()
            .take(LIST_AT_MOST)
            .map(|p| p.display().to_string())
            .collect();
        return Err(InputError::new(
            place,
            "points",
            format!(
                "{} file(s) are no point of sweep `{}`: {}{}",
                foreign.len(),
                manifest.sweep,
                list.join(", "),
                more(foreign.len())
            ),
        ));
    }
    let duplicated: Vec<(&ManifestPoint, &Vec<&PathBuf>)> = manifest
        .points
        .iter()
        .filter_map(|p| found.get(&p.index).filter(|d| d.len() > 1).map(|d| (p, d)))
        .collect();
    if !duplicated.is_empty() {
        let list: Vec<String> = duplicated
            .iter()
            .take(LIST_AT_MOST)
            .map(|(p, ds)| {
                let ds: Vec<String> = ds.iter().map(|d| d.display().to_string()).collect();
                format!(
                    "point {} (id {}, {}) in {}",
                    p.index,
                    p.id,
                    manifest.describe(p),
                    ds.join(" and ")
                )
            })
            .collect();
        return Err(InputError::new(
            place,
            "points",
            format!(
                "{} point(s) are finished in more than one folder: {}{}",
                duplicated.len(),
                list.join("; "),
                more(duplicated.len())
            ),
        ));
    }
    let missing: Vec<&ManifestPoint> = manifest
        .points
        .iter()
        .filter(|p| !found.contains_key(&p.index))
        .collect();
    if !missing.is_empty() && !allow_missing {
        let list: Vec<String> = missing
            .iter()
            .take(LIST_AT_MOST)
            .map(|p| format!("point {} (id {}, {})", p.index, p.id, manifest.describe(p)))
            .collect();
        return Err(InputError::new(
            place,
            "points",
            format!(
                "{} of {} point(s) are not finished: {}{}; run the sweep (or its shards) again to finish them",
                missing.len(),
                manifest.points.len(),
                list.join("; "),
                more(missing.len())
            ),
        ));
    }

    let mut header: Option<(Vec<String>, PathBuf)> = None;
    let mut rows = Vec::with_capacity(found.len());
    let mut versions: Vec<String> = Vec::new();
    for (index, ds) in &found {
        let p = &manifest.points[*index];
        let path = ds[0].join(POINTS).join(format!("{}.csv", p.id));
        let (h, row) = read_point(&path, &p.id)?;
        match &header {
            None => header = Some((h, path.clone())),
            Some((h0, p0)) if *h0 != h => {
                return Err(InputError::for_path(
                    &path,
                    "",
                    format!(
                        "has other columns than {} (rows of different afdsim versions?): [{}] vs [{}]",
                        p0.display(),
                        h.join(", "),
                        h0.join(", ")
                    ),
                ));
            }
            Some(_) => {}
        }
        let hv = header.as_ref().expect("set above");
        if let Some(i) = hv.0.iter().position(|c| c == "afdsim_version")
            && !versions.contains(&row[i])
        {
            versions.push(row[i].clone());
        }
        rows.push(row);
    }
    let header = match header {
        Some((h, _)) => h,
        None => {
            return Err(InputError::new(
                place,
                "points",
                "no point of the sweep is finished yet",
            ));
        }
    };
    Ok(Merged {
        header,
        rows,
        versions,
        missing: missing.iter().map(|p| p.index).collect(),
    })
}

fn more(n: usize) -> String {
    if n > LIST_AT_MOST {
        format!(" and {} more", n - LIST_AT_MOST)
    } else {
        String::new()
    }
}

/// The header and the one row of a point file.
fn read_point(path: &Path, id: &str) -> Result<(Vec<String>, Vec<String>), InputError> {
    let bad = |m: String| InputError::for_path(path, "", m);
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad(format!("not CSV: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let rows: Vec<csv::StringRecord> = r
        .records()
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not CSV: {e}")))?;
    match rows.as_slice() {
        [row] if row.len() == header.len() && row.get(0) == Some(id) && text.ends_with('\n') => {
            Ok((header, row.iter().map(str::to_string).collect()))
        }
        _ => Err(bad(
            "does not hold one whole row for this point (written by an interrupted run? run the sweep again: it redoes such points)".into(),
        )),
    }
}
