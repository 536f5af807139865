//! Design-space exploration (`afdsim explore STUDY.toml`): which deployment, which split,
//! under which latency limits.
//!
//! A study file gives a model, a GPU budget, workloads, hardware (a fabric with its compute
//! table), a grid of SLO cells (TTFT limits x TPOT limits) and the deployment families to
//! consider. [`Study::load`] enumerates the candidate deployments that fit the budget and
//! resolves each one's serving scenario per workload (one that does not resolve, say its
//! weights do not fit a GPU, is excluded with the loader's reason). Each candidate is one
//! point of a [`Batch`]: it runs in the sweep machinery (all cores, resume, Slurm shards,
//! merge), and its row holds, for every workload and SLO cell, the best sustainable rate
//! ([`search::search_cells`]: one server per candidate, so every workload and cell reuses
//! the grid corners the others simulated, and probes shared where their outcome decides).
//! [`report`] turns the merged rows into the study's answers.
//!
//! Invariant: a candidate's row is a pure function of the study's settings and the
//! candidate (its point id covers both); the report is a pure function of the rows.

pub mod report;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::Scenario;
use crate::error::InputError;
use crate::serving::{Server, Slo, search};
use crate::sweep::{Batch, Point, PointRow};

/// A deployment family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// One expert-parallel pool, chunked prefill piggybacked on decode iterations.
    Aggregated,
    /// A prefill pool and an expert-parallel decode pool, one micro-batch.
    Pd,
    /// P/D with the decode pool's two micro-batches overlapping (dual-batch overlap).
    PdDbo,
    /// P/D with an AFD decode pool (attention GPUs, FFN GPUs, micro-batches).
    PdAfd,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Aggregated, Family::Pd, Family::PdDbo, Family::PdAfd];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Aggregated => "aggregated",
            Family::Pd => "pd",
            Family::PdDbo => "pd-dbo",
            Family::PdAfd => "pd-afd",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One candidate deployment on one piece of hardware.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Index into [`Study::hardware`].
    pub hardware: usize,
    pub family: Family,
    /// Prefill pool GPUs (0: aggregated).
    pub prefill_gpus: u32,
    /// GPUs that hold sequences: the aggregated pool, the decode pool, or AFD's attention
    /// GPUs.
    pub attention_gpus: u32,
    /// AFD's FFN GPUs (0 otherwise).
    pub ffn_gpus: u32,
    pub micro_batches: u32,
    pub chunk_tokens: u32,
}

impl Candidate {
    pub fn gpus(&self) -> u32 {
        self.prefill_gpus + self.attention_gpus + self.ffn_gpus
    }
}

/// A workload: a traffic preset name or a traffic file (relative to the study file).
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    pub traffic: String,
}

/// A fabric with the compute table its GPUs are timed with.
#[derive(Clone, Debug, PartialEq)]
pub struct Hardware {
    pub name: String,
    pub fabric: String,
    pub nodes: u32,
    pub table: String,
}

/// A resolved study.
pub struct Study {
    pub name: String,
    pub description: Option<String>,
    pub origin: String,
    dir: PathBuf,
    pub model: String,
    pub gpus: u32,
    pub requests: u32,
    pub seed: u64,
    pub level: String,
    pub start_rate: f64,
    pub percentile: f64,
    pub ttft_ms: Vec<f64>,
    pub tpot_ms: Vec<f64>,
    pub options: search::Options,
    pub max_batch_per_gpu: u32,
    pub workloads: Vec<Workload>,
    pub hardware: Vec<Hardware>,
    /// The candidates that resolved, in point order.
    pub candidates: Vec<Candidate>,
    /// The candidates that did not, with the reason.
    pub excluded: Vec<(Candidate, String)>,
    points: Vec<Point>,
    /// Grid corners shared by the candidates this process runs (a pool two candidates
    /// have alike, say the same prefill GPUs, is simulated once).
    corners: std::sync::Arc<crate::serving::cost::SharedCorners>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    name: String,
    description: Option<String>,
    model: String,
    gpus: u32,
    #[serde(default = "default_requests")]
    requests: u32,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_level")]
    level: String,
    #[serde(default = "default_start_rate")]
    start_rate: f64,
    #[serde(default = "default_probes")]
    probes: u32,
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    #[serde(default = "default_max_batch")]
    max_batch_per_gpu: u32,
    #[serde(default = "default_keep_up")]
    keep_up: f64,
    slo: SloFile,
    #[serde(default)]
    workload: Vec<WorkloadFile>,
    #[serde(default)]
    hardware: Vec<HardwareFile>,
    aggregated: Option<AggregatedFile>,
    pd: Option<PdFile>,
    pd_afd: Option<PdAfdFile>,
}

fn default_requests() -> u32 {
    2000
}
fn default_seed() -> u64 {
    1
}
fn default_level() -> String {
    "flow".into()
}
fn default_start_rate() -> f64 {
    8.0
}
fn default_probes() -> u32 {
    8
}
fn default_tolerance() -> f64 {
    0.1
}
fn default_max_batch() -> u32 {
    256
}
/// A short probe (2,000 requests at 300 req/s arrive within 7 s) can meet a loose TTFT
/// limit at a rate the deployment does not sustain: a met probe must also finish requests
/// over its steady window at 90 % of the offered rate or more.
fn default_keep_up() -> f64 {
    0.9
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SloFile {
    ttft_ms: Vec<f64>,
    tpot_ms: Vec<f64>,
    #[serde(default = "default_percentile")]
    percentile: f64,
}

fn default_percentile() -> f64 {
    90.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    traffic: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HardwareFile {
    name: String,
    fabric: String,
    nodes: u32,
    table: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregatedFile {
    /// Pool sizes (expert-parallel); default: the budget.
    gpus: Option<Vec<u32>>,
    #[serde(default = "default_dbo")]
    micro_batches: Vec<u32>,
    #[serde(default = "default_agg_chunk")]
    chunk_tokens: u32,
}

fn default_dbo() -> Vec<u32> {
    vec![2]
}
fn default_agg_chunk() -> u32 {
    2048
}
fn default_pd_chunk() -> u32 {
    8192
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PdFile {
    prefill_gpus: Vec<u32>,
    decode_gpus: Vec<u32>,
    /// 1: the `pd` family; 2 or more: `pd-dbo`.
    #[serde(default = "default_pd_micro")]
    micro_batches: Vec<u32>,
    #[serde(default = "default_pd_chunk")]
    chunk_tokens: u32,
}

fn default_pd_micro() -> Vec<u32> {
    vec![1, 2]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PdAfdFile {
    prefill_gpus: Vec<u32>,
    attention_gpus: Vec<u32>,
    ffn_gpus: Vec<u32>,
    #[serde(default = "default_afd_micro")]
    micro_batches: Vec<u32>,
    #[serde(default = "default_pd_chunk")]
    chunk_tokens: u32,
}

fn default_afd_micro() -> Vec<u32> {
    vec![3]
}

/// Parameter columns of a study's rows.
pub const PARAM_KEYS: [&str; 7] = [
    "hardware",
    "family",
    "gpus",
    "prefill_gpus",
    "attention_gpus",
    "ffn_gpus",
    "micro_batches",
];

/// The most SLO cells, workloads and hardware entries a study takes (each multiplies the
/// work of every candidate).
const MAX_CELLS: usize = 64;

impl Study {
    pub fn load(path: &Path) -> Result<Study, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::for_path(path, "", format!("cannot read file: {e}")))?;
        Study::parse(&text, &path.display().to_string(), path.parent())
    }

    pub fn parse(text: &str, origin: &str, dir: Option<&Path>) -> Result<Study, InputError> {
        let raw: StudyFile = crate::input::parse_toml(text, origin)?;
        let err = |key: &str, msg: String| InputError::new(origin, key, msg);
        if raw.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if raw.gpus == 0 {
            return Err(err("gpus", "the GPU budget must be at least 1".into()));
        }
        if raw.requests == 0 {
            return Err(err("requests", "must be at least 1".into()));
        }
        if !(raw.start_rate.is_finite() && raw.start_rate > 0.0) {
            return Err(err("start_rate", "must be a rate > 0 (requests/s)".into()));
        }
        if raw.probes == 0 {
            return Err(err("probes", "must be at least 1".into()));
        }
        if !(raw.tolerance.is_finite() && raw.tolerance > 0.0 && raw.tolerance < 10.0) {
            return Err(err("tolerance", "must be > 0 and < 10".into()));
        }
        if !(raw.keep_up.is_finite() && (0.0..=1.0).contains(&raw.keep_up)) {
            return Err(err(
                "keep_up",
                "must be a fraction of the offered rate, 0 (not checked) to 1".into(),
            ));
        }
        for (k, v) in [
            ("slo.ttft_ms", &raw.slo.ttft_ms),
            ("slo.tpot_ms", &raw.slo.tpot_ms),
        ] {
            if v.is_empty() {
                return Err(err(k, "needs at least one limit".into()));
            }
            if v.windows(2).any(|w| w[0] >= w[1]) {
                return Err(err(k, "limits must be given in increasing order".into()));
            }
            for &x in v {
                Slo::new(x, x, raw.slo.percentile).map_err(|(_, m)| err(k, m))?;
            }
        }
        Slo::new(1.0, 1.0, raw.slo.percentile).map_err(|(_, m)| err("slo.percentile", m))?;
        if raw.slo.ttft_ms.len() * raw.slo.tpot_ms.len() > MAX_CELLS {
            return Err(err(
                "slo",
                format!("at most {MAX_CELLS} cells (TTFT limits x TPOT limits)"),
            ));
        }
        if raw.workload.is_empty() {
            return Err(err(
                "workload",
                "needs at least one [[workload]] (traffic = a preset such as \"chat\" or a \
                 traffic file)"
                    .into(),
            ));
        }
        if raw.hardware.is_empty() {
            return Err(err(
                "hardware",
                "needs at least one [[hardware]] (name, fabric, nodes, table)".into(),
            ));
        }
        let mut workloads: Vec<Workload> = Vec::new();
        for (i, w) in raw.workload.iter().enumerate() {
            let name = w.name.clone().unwrap_or_else(|| {
                Path::new(&w.traffic)
                    .file_stem()
                    .map_or(w.traffic.clone(), |s| s.to_string_lossy().into_owned())
            });
            if !is_column_word(&name) {
                return Err(err(
                    &format!("workload[{i}].name"),
                    format!("`{name}`: letters, digits, - and _ only (it names columns)"),
                ));
            }
            if workloads.iter().any(|x| x.name == name) {
                return Err(err(
                    &format!("workload[{i}].name"),
                    format!("`{name}` twice: give each workload its own name"),
                ));
            }
            workloads.push(Workload {
                name,
                traffic: w.traffic.clone(),
            });
        }
        let mut hardware: Vec<Hardware> = Vec::new();
        for (i, h) in raw.hardware.iter().enumerate() {
            if !is_column_word(&h.name) || hardware.iter().any(|x| x.name == h.name) {
                return Err(err(
                    &format!("hardware[{i}].name"),
                    format!(
                        "`{}`: a name of its own, letters, digits, - and _ only",
                        h.name
                    ),
                ));
            }
            hardware.push(Hardware {
                name: h.name.clone(),
                fabric: h.fabric.clone(),
                nodes: h.nodes,
                table: h.table.clone(),
            });
        }
        if raw.aggregated.is_none() && raw.pd.is_none() && raw.pd_afd.is_none() {
            return Err(err(
                "aggregated",
                "no deployment family: give [aggregated], [pd] and/or [pd_afd]".into(),
            ));
        }
        let list_ok = |key: &str, v: &[u32]| -> Result<(), InputError> {
            if v.is_empty() || v.contains(&0) {
                return Err(err(key, "needs one or more values, each at least 1".into()));
            }
            Ok(())
        };
        // Every combination of a family's lists whose GPUs fit the budget.
        let mut shapes: Vec<Candidate> = Vec::new();
        let budget = raw.gpus;
        let over = |key: &str, n: u32| -> Result<(), InputError> {
            if n > budget {
                return Err(err(
                    key,
                    format!("{n} GPUs: more than the budget's {budget} by itself"),
                ));
            }
            Ok(())
        };
        if let Some(a) = &raw.aggregated {
            list_ok("aggregated.micro_batches", &a.micro_batches)?;
            let sizes = a.gpus.clone().unwrap_or(vec![budget]);
            list_ok("aggregated.gpus", &sizes)?;
            for &g in &sizes {
                over("aggregated.gpus", g)?;
                for &mb in &a.micro_batches {
                    shapes.push(Candidate {
                        hardware: 0,
                        family: Family::Aggregated,
                        prefill_gpus: 0,
                        attention_gpus: g,
                        ffn_gpus: 0,
                        micro_batches: mb,
                        chunk_tokens: a.chunk_tokens,
                    });
                }
            }
        }
        if let Some(p) = &raw.pd {
            list_ok("pd.prefill_gpus", &p.prefill_gpus)?;
            list_ok("pd.decode_gpus", &p.decode_gpus)?;
            list_ok("pd.micro_batches", &p.micro_batches)?;
            for &pg in &p.prefill_gpus {
                over("pd.prefill_gpus", pg)?;
                for &dg in &p.decode_gpus {
                    over("pd.decode_gpus", dg)?;
                    for &mb in p.micro_batches.iter().filter(|_| pg + dg <= budget) {
                        shapes.push(Candidate {
                            hardware: 0,
                            family: if mb == 1 { Family::Pd } else { Family::PdDbo },
                            prefill_gpus: pg,
                            attention_gpus: dg,
                            ffn_gpus: 0,
                            micro_batches: mb,
                            chunk_tokens: p.chunk_tokens,
                        });
                    }
                }
            }
        }
        if let Some(p) = &raw.pd_afd {
            list_ok("pd_afd.prefill_gpus", &p.prefill_gpus)?;
            list_ok("pd_afd.attention_gpus", &p.attention_gpus)?;
            list_ok("pd_afd.ffn_gpus", &p.ffn_gpus)?;
            list_ok("pd_afd.micro_batches", &p.micro_batches)?;
            for &pg in &p.prefill_gpus {
                over("pd_afd.prefill_gpus", pg)?;
                for &ag in &p.attention_gpus {
                    over("pd_afd.attention_gpus", ag)?;
                    for &fg in &p.ffn_gpus {
                        over("pd_afd.ffn_gpus", fg)?;
                        if pg + ag + fg > budget {
                            continue;
                        }
                        for &mb in &p.micro_batches {
                            shapes.push(Candidate {
                                hardware: 0,
                                family: Family::PdAfd,
                                prefill_gpus: pg,
                                attention_gpus: ag,
                                ffn_gpus: fg,
                                micro_batches: mb,
                                chunk_tokens: p.chunk_tokens,
                            });
                        }
                    }
                }
            }
        }
        if shapes.is_empty() {
            return Err(err(
                "gpus",
                format!("no combination of the families' GPU counts fits the budget of {budget}"),
            ));
        }
        let mut study = Study {
            name: raw.name.clone(),
            description: raw.description.clone(),
            origin: origin.to_string(),
            dir: dir.unwrap_or(Path::new(".")).to_path_buf(),
            model: raw.model.clone(),
            gpus: budget,
            requests: raw.requests,
            seed: raw.seed,
            level: raw.level.clone(),
            start_rate: raw.start_rate,
            percentile: raw.slo.percentile,
            ttft_ms: raw.slo.ttft_ms.clone(),
            tpot_ms: raw.slo.tpot_ms.clone(),
            options: search::Options {
                max_probes: raw.probes,
                tolerance: raw.tolerance,
                stop_early: true,
                keep_up: raw.keep_up,
            },
            max_batch_per_gpu: raw.max_batch_per_gpu,
            workloads,
            hardware,
            candidates: Vec::new(),
            excluded: Vec::new(),
            points: Vec::new(),
            corners: Default::default(),
        };
        for h in 0..study.hardware.len() {
            for shape in &shapes {
                let c = Candidate {
                    hardware: h,
                    ..shape.clone()
                };
                // Every workload's scenario resolves, or the candidate is out.
                let mut texts = Vec::new();
                let mut why = None;
                for w in 0..study.workloads.len() {
                    let table = study.scenario_table(&c, w);
                    texts.push(crate::sweep::id::canonical(&toml::Value::Table(
                        table.clone(),
                    )));
                    if let Err(e) = Scenario::from_table(table, origin, &study.dir, None) {
                        why = Some(format!("{}: {}", e.key, e.message));
                        break;
                    }
                }
                match why {
                    Some(reason) => study.excluded.push((c, reason)),
                    None => {
                        let id = study.point_id(&texts);
                        let index = study.points.len();
                        study.points.push(Point {
                            index,
                            id,
                            params: study.params(&c),
                        });
                        study.candidates.push(c);
                    }
                }
            }
        }
        if study.candidates.is_empty() {
            let (c, why) = &study.excluded[0];
            return Err(err(
                "",
                format!(
                    "no candidate deployment resolves; the first, {} on {}, says: {why}",
                    study.describe(c),
                    study.hardware[c.hardware].name
                ),
            ));
        }
        let mut ids: Vec<&str> = study.points.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(err(
                "",
                "two candidates are the same deployment (a family's lists repeat a value)".into(),
            ));
        }
        Ok(study)
    }

    /// The SLO cells, TTFT limits outermost.
    pub fn cells(&self) -> Vec<Slo> {
        self.ttft_ms
            .iter()
            .flat_map(|&t| {
                self.tpot_ms
                    .iter()
                    .map(move |&p| Slo::new(t, p, self.percentile).expect("checked"))
            })
            .collect()
    }

    /// `2000ms-50ms`: a cell's name in column names and tables.
    pub fn cell_name(slo: &Slo) -> String {
        format!("ttft{}-tpot{}", slo.ttft_ms, slo.tpot_ms)
    }

    /// `16P + 16A:32F x3`-style summary of a candidate's split.
    pub fn describe(&self, c: &Candidate) -> String {
        match c.family {
            Family::Aggregated => format!("aggregated {} x{}", c.attention_gpus, c.micro_batches),
            Family::Pd | Family::PdDbo => format!(
                "{} {}P + {}D x{}",
                c.family.as_str(),
                c.prefill_gpus,
                c.attention_gpus,
                c.micro_batches
            ),
            Family::PdAfd => format!(
                "pd-afd {}P + {}A:{}F x{}",
                c.prefill_gpus, c.attention_gpus, c.ffn_gpus, c.micro_batches
            ),
        }
    }

    fn params(&self, c: &Candidate) -> Vec<(String, toml::Value)> {
        let int = |n: u32| toml::Value::Integer(n as i64);
        let values = [
            toml::Value::String(self.hardware[c.hardware].name.clone()),
            toml::Value::String(c.family.as_str().into()),
            int(c.gpus()),
            int(c.prefill_gpus),
            int(c.attention_gpus),
            int(c.ffn_gpus),
            int(c.micro_batches),
        ];
        PARAM_KEYS
            .iter()
            .map(|k| k.to_string())
            .zip(values)
            .collect()
    }

    /// A point's id: FNV-1a of every workload's scenario of the candidate and of the
    /// search's settings, so a changed study never reuses a row it would not write.
    fn point_id(&self, scenario_texts: &[String]) -> String {
        let mut text = scenario_texts.join("\n");
        text.push_str(&format!(
            "\ncells {:?} {:?} p{} probes {} tolerance {} start {} stop_early {} keep_up {}",
            self.ttft_ms,
            self.tpot_ms,
            self.percentile,
            self.options.max_probes,
            self.options.tolerance,
            self.start_rate,
            self.options.stop_early,
            self.options.keep_up
        ));
        crate::sweep::id::point_id(&text)
    }

    /// The serving scenario of candidate `c` under workload `w`, as a TOML table.
    pub fn scenario_table(&self, c: &Candidate, w: usize) -> toml::Table {
        let h = &self.hardware[c.hardware];
        let wl = &self.workloads[w];
        let first = self.cells()[0];
        let mut fabric = toml::Table::new();
        fabric.insert("file".into(), h.fabric.clone().into());
        fabric.insert("nodes".into(), (h.nodes as i64).into());
        let mut decode = toml::Table::new();
        decode.insert(
            "mode".into(),
            if c.family == Family::PdAfd {
                "afd"
            } else {
                "colocated"
            }
            .into(),
        );
        decode.insert("model".into(), self.model.clone().into());
        decode.insert("table".into(), h.table.clone().into());
        decode.insert("attention_gpus".into(), (c.attention_gpus as i64).into());
        if c.family == Family::PdAfd {
            decode.insert("ffn_gpus".into(), (c.ffn_gpus as i64).into());
        }
        decode.insert("micro_batches".into(), (c.micro_batches as i64).into());
        let mut serving = toml::Table::new();
        serving.insert("traffic".into(), wl.traffic.clone().into());
        serving.insert("rate".into(), self.start_rate.into());
        serving.insert("requests".into(), (self.requests as i64).into());
        if c.prefill_gpus > 0 {
            serving.insert("prefill_gpus".into(), (c.prefill_gpus as i64).into());
        }
        serving.insert(
            "max_batch_per_gpu".into(),
            (self.max_batch_per_gpu as i64).into(),
        );
        serving.insert("chunk_tokens".into(), (c.chunk_tokens as i64).into());
        serving.insert("ttft_ms".into(), first.ttft_ms.into());
        serving.insert("tpot_ms".into(), first.tpot_ms.into());
        serving.insert("percentile".into(), self.percentile.into());
        serving.insert("decode".into(), toml::Value::Table(decode));
        let mut t = toml::Table::new();
        t.insert(
            "name".into(),
            format!(
                "{}-{}-{}-{}",
                self.name,
                h.name,
                wl.name,
                self.describe(c)
                    .replace([' ', '+', ':'], "")
                    .replace("x", "-mb")
            )
            .into(),
        );
        t.insert("seed".into(), (self.seed as i64).into());
        t.insert("level".into(), self.level.clone().into());
        t.insert("fabric".into(), toml::Value::Table(fabric));
        t.insert("serving".into(), toml::Value::Table(serving));
        t
    }

    /// Candidate `c`'s scenario under workload `w`.
    pub fn scenario(&self, c: &Candidate, w: usize) -> Result<Scenario, InputError> {
        Scenario::from_table(self.scenario_table(c, w), &self.origin, &self.dir, None)
    }

    /// Runs candidate `c`: the best rate under every SLO cell for every workload, on one
    /// server. `progress` hears (workload, probes served so far).
    pub fn run_candidate(
        &self,
        c: &Candidate,
        progress: &(dyn Fn(usize, u32) + Sync),
    ) -> Result<CandidateResult, InputError> {
        let scenarios: Vec<Scenario> = (0..self.workloads.len())
            .map(|w| self.scenario(c, w))
            .collect::<Result<_, _>>()?;
        let first = &scenarios[0];
        let spec0 = first.serving().expect("a serving scenario");
        let mut server = Server::new(spec0, first.fabric(), first.net(), first.level());
        let h = &self.hardware[c.hardware];
        server.share_corners(
            self.corners.clone(),
            &format!("fabric {:?} nodes {}", h.fabric, h.nodes),
        );
        let cells = self.cells();
        let mut per_workload = Vec::new();
        for (w, s) in scenarios.iter().enumerate() {
            let spec = s.serving().expect("a serving scenario");
            let origin = s.origin().to_string();
            let mut served = 0;
            let results = search::search_cells(
                &mut server,
                &cells,
                self.options,
                self.start_rate,
                |rate| {
                    let reqs = spec
                        .traffic
                        .with_rate(rate)?
                        .requests(self.requests, s.seed())?;
                    crate::config::check_fits(&origin, spec, &reqs)?;
                    Ok(reqs)
                },
                &|_| {},
                &mut served,
            )
            .map_err(|e| {
                InputError::new(
                    self.origin.as_str(),
                    format!("{} on {}", self.describe(c), self.hardware[c.hardware].name),
                    e.to_string(),
                )
            })?;
            progress(w, served);
            per_workload.push((served, results));
        }
        let stats = server.cost_stats();
        Ok(CandidateResult {
            gpus: spec0.total_gpus,
            per_workload,
            corners: stats.corners_simulated,
            corners_shared: stats.corners_shared,
        })
    }
}

/// What one candidate's run found.
pub struct CandidateResult {
    pub gpus: u32,
    /// Per workload: probes served, and each cell's search.
    pub per_workload: Vec<(u32, Vec<search::SearchResult>)>,
    /// Grid corners it simulated, and those another candidate had (run-dependent: which
    /// candidate simulates a shared corner depends on the order they ran in).
    pub corners: u64,
    pub corners_shared: u64,
}

/// The metric columns a cell's result fills (after `<workload>.<cell>.`).
pub const CELL_COLUMNS: [&str; 6] = [
    "best_req_per_s",
    "tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "ttft_ms",
    "tpot_ms",
    "probes",
];

impl Batch for Study {
    fn name(&self) -> &str {
        &self.name
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn param_keys(&self) -> Vec<String> {
        PARAM_KEYS.iter().map(|k| k.to_string()).collect()
    }

    fn points(&self) -> &[Point] {
        &self.points
    }

    fn run_point(&self, point: &Point) -> Result<PointRow, InputError> {
        let t0 = std::time::Instant::now();
        let c = &self.candidates[point.index];
        let r = self.run_candidate(c, &|_, _| {})?;
        let cells = self.cells();
        let mut metrics = Vec::new();
        let num = |x: f64| format!("{x}");
        for (w, (served, results)) in r.per_workload.iter().enumerate() {
            let wl = &self.workloads[w].name;
            for (slo, res) in cells.iter().zip(results) {
                let prefix = format!("{wl}.{}", Study::cell_name(slo));
                let cells: [String; 6] = match (&res.best, res.best_rate_per_s) {
                    (Some(m), Some(rate)) => {
                        // The best probe's TTFT and TPOT at the study's percentile.
                        let p = res.best_probe.as_ref().expect("a best rate has its probe");
                        [
                            num(rate),
                            num(m.tokens_per_s_per_gpu),
                            num(if m.tpot_ms.mean > 0.0 {
                                1e3 / m.tpot_ms.mean
                            } else {
                                0.0
                            }),
                            num(p.ttft_ms),
                            num(p.tpot_ms),
                            res.probes.len().to_string(),
                        ]
                    }
                    _ => [
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        res.probes.len().to_string(),
                    ],
                };
                for (k, v) in CELL_COLUMNS.iter().zip(cells) {
                    metrics.push((format!("{prefix}.{k}"), v));
                }
            }
            metrics.push((format!("{wl}.probes_served"), served.to_string()));
        }
        // Simulated here or taken from another candidate: which one simulates a shared
        // corner depends on the order candidates run in, the sum does not.
        metrics.push(("corners".into(), (r.corners + r.corners_shared).to_string()));
        Ok(PointRow {
            seed: self.seed.to_string(),
            scenario: format!("{}-{}", self.name, point.index),
            level: self.level.clone(),
            metrics,
            resolve: std::time::Duration::ZERO,
            simulate: t0.elapsed(),
        })
    }
}

fn is_column_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
