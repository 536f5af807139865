//! Scenario files: TOML as written -> a validated, resolved [`Scenario`].
//!
//! Invariant: this is the only module that reads scenario and fabric files, and everything
//! it hands on is valid (positive rates, a connected fabric, in-range indices, integral
//! units). Every error names the file, the key and what is allowed.
//!
//! Two stages: the text is parsed into a TOML table (syntax errors carry a line); a
//! `fabric.file` is expanded (an embedded fabric or a path) with the scenario's own
//! `[fabric]` keys merged over it; the table is deserialized into the `raw` structs (type
//! and unknown-key errors carry the key path and the file that holds the key); then
//! `resolve` checks values and builds the fabric and the traffic.

mod afd;
pub mod memory;
mod serving;
pub use serving::check_fits;
mod fabric;
mod moe;
mod raw;

pub use fabric::{EMBEDDED_FABRICS, FabricFile, ResolvedFabric, embedded as embedded_fabric};
pub use raw::{ScenarioFile, TrafficFile};

use crate::engine::{Bandwidth, Dur, SimRng, Time};
use crate::error::{InputError, one_line};
use crate::input::parse_table;
use crate::net::{Buffers, CongestionControl, MessageSpec, NetParams};
use crate::topology::{Fabric, NodeId, NodeKind};
use std::path::{Path, PathBuf};

/// The embedded default scenario: `afdsim run` with no file runs this.
pub const DEFAULT_SCENARIO: &str = include_str!("../../workloads/scenarios/default.toml");
pub const DEFAULT_SCENARIO_ORIGIN: &str = "<embedded default: workloads/scenarios/default.toml>";

/// Eight GPUs on one switch, an all-to-all with a closed form (validation and examples).
pub const STAR_SCENARIO: &str = include_str!("../../workloads/scenarios/star-8gpu-all-to-all.toml");
pub const STAR_SCENARIO_ORIGIN: &str = "workloads/scenarios/star-8gpu-all-to-all.toml";

/// The seed used when neither the command line nor the file gives one.
pub const DEFAULT_SEED: u64 = 1;

pub use crate::net::Level;

/// A resolved scenario: what the simulation runs. Built only by this module.
#[derive(Clone, Debug)]
pub struct Scenario {
    name: String,
    origin: String,
    seed: u64,
    level: Level,
    fabric_name: String,
    fabric: Fabric,
    net: NetParams,
    /// Shared with the workload a network study runs ([`Scenario::traffic_workload`]).
    messages: std::sync::Arc<Vec<MessageSpec>>,
    /// `[[traffic]]` entries run as kernel calls (`kernel = ...`), in traffic order.
    kernels: Vec<crate::comm::Call>,
    study: Study,
}

/// What a scenario studies: exactly one of these.
// One per scenario, held for the whole run: the unboxed variants cost nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Study {
    /// The `[[traffic]]` messages alone.
    Network,
    /// One or more AFD decode steps (`[afd]`), with `[[traffic]]` as background messages.
    Afd(crate::afd::AfdSpec),
    /// A request stream served by a deployment (`[serving]`); it has no `[[traffic]]`.
    Serving(crate::serving::ServingSpec),
}

impl Study {
    pub fn afd(&self) -> Option<&crate::afd::AfdSpec> {
        match self {
            Study::Afd(a) => Some(a),
            _ => None,
        }
    }

    pub fn serving(&self) -> Option<&crate::serving::ServingSpec> {
        match self {
            Study::Serving(s) => Some(s),
            _ => None,
        }
    }
}

/// Read access to a resolved scenario. Its fields are private: a scenario is only built by
/// resolving input ([`Scenario::load`], [`Scenario::parse`]) and only changed through checked
/// methods ([`Scenario::with_level`]), so every `Scenario` a caller holds is valid.
impl Scenario {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Where it came from (a path, or the embedded default).
    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn level(&self) -> Level {
        self.level
    }
    /// The fabric's name (from its file).
    pub fn fabric_name(&self) -> &str {
        &self.fabric_name
    }
    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }
    /// The network parameters every level reads (wires, routing, seed) and the packet
    /// level's own (buffers, congestion control, transport).
    pub fn net(&self) -> &NetParams {
        &self.net
    }
    /// The `[[traffic]]` messages (an AFD study's background).
    pub fn messages(&self) -> &[MessageSpec] {
        &self.messages
    }
    pub fn study(&self) -> &Study {
        &self.study
    }
    /// The `[[traffic]]` entries run as kernel calls of a communication library.
    pub fn kernels(&self) -> &[crate::comm::Call] {
        &self.kernels
    }
    /// What a network study runs: the `[[traffic]]` messages, each kernel call's as its
    /// library's tasks (see [`crate::comm::traffic_workload`]).
    pub fn traffic_workload(&self) -> crate::net::Workload {
        if self.kernels.is_empty() {
            // Independent messages: the scenario's own list, not a copy.
            return crate::net::Workload::from_shared(self.messages.clone());
        }
        crate::comm::traffic_workload(&self.fabric, &self.net, &self.messages, &self.kernels)
    }
    /// The AFD deployment, for an `[afd]` study.
    pub fn afd(&self) -> Option<&crate::afd::AfdSpec> {
        self.study.afd()
    }
    /// The serving deployment and requests, for a `[serving]` study.
    pub fn serving(&self) -> Option<&crate::serving::ServingSpec> {
        self.study.serving()
    }
}

impl Scenario {
    /// Reads and resolves a scenario file. `seed` overrides the file's seed. Relative file
    /// names in it (`fabric.file`, `afd.model`, `afd.table`, `afd.ffn_table`,
    /// `afd.routing_file`, `serving.traffic`, the same under `[serving.decode]`) are taken
    /// relative to the scenario file's folder.
    pub fn load(path: &Path, seed: Option<u64>) -> Result<Scenario, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::for_path(path, "", format!("cannot read file: {e}")))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::parse_in(&text, &path.display().to_string(), &dir, seed)
    }

    /// The embedded default scenario.
    pub fn embedded_default(seed: Option<u64>) -> Scenario {
        Scenario::parse(DEFAULT_SCENARIO, DEFAULT_SCENARIO_ORIGIN, seed)
            .expect("the embedded default scenario is valid (checked by a test)")
    }

    /// Parses and resolves scenario text; `origin` names it in errors. Relative file
    /// names in it are taken from the current folder.
    pub fn parse(text: &str, origin: &str, seed: Option<u64>) -> Result<Scenario, InputError> {
        Scenario::parse_in(text, origin, Path::new(""), seed)
    }

    /// Parses scenario text whose relative file names are relative to `dir`.
    pub fn parse_in(
        text: &str,
        origin: &str,
        dir: &Path,
        seed: Option<u64>,
    ) -> Result<Scenario, InputError> {
        let table = parse_table(text, origin)?;
        Scenario::from_table(table, origin, dir, seed)
    }

    /// Resolves a scenario from its TOML table (as a sweep builds it, with overrides).
    pub fn from_table(
        mut table: toml::Table,
        origin: &str,
        dir: &Path,
        seed: Option<u64>,
    ) -> Result<Scenario, InputError> {
        let fabric_origin = expand_fabric_file(&mut table, origin, dir)?;
        check_finite(&table, "", origin, fabric_origin.as_ref())?;
        let raw: ScenarioFile =
            from_value(toml::Value::Table(table), origin, fabric_origin.as_ref())?;
        resolve(&raw, origin, dir, fabric_origin.as_ref(), seed, "level")
    }

    /// [`Scenario::load`] with the file's `level` replaced by `level` when given (as
    /// `afdsim run --level` asks); the level's input checks apply to the replacement.
    pub fn load_at_level(
        path: &Path,
        seed: Option<u64>,
        level: Option<Level>,
    ) -> Result<Scenario, InputError> {
        let Some(level) = level else {
            return Scenario::load(path, seed);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::for_path(path, "", format!("cannot read file: {e}")))?;
        let origin = path.display().to_string();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut table = parse_table(&text, &origin)?;
        table.insert("level".into(), toml::Value::String(level.as_str().into()));
        let fabric_origin = expand_fabric_file(&mut table, &origin, &dir)?;
        check_finite(&table, "", &origin, fabric_origin.as_ref())?;
        let raw: ScenarioFile =
            from_value(toml::Value::Table(table), &origin, fabric_origin.as_ref())?;
        resolve(&raw, &origin, &dir, fabric_origin.as_ref(), seed, "--level")
    }
}

/// Where a scenario's fabric keys came from, to blame the right file for an error.
struct FabricOrigin {
    file: String,
    /// The keys the scenario itself set under `[fabric]` (dotted, relative to `fabric`).
    scenario_keys: Vec<String>,
}

impl FabricOrigin {
    /// The file to name for an error at `key` (a full dotted key such as `fabric.nic.x`).
    fn file_for<'a>(&'a self, key: &str, scenario: &'a str) -> &'a str {
        match key.strip_prefix("fabric.") {
            Some(rest)
                if !self
                    .scenario_keys
                    .iter()
                    .any(|k| rest == k || rest.starts_with(&format!("{k}."))) =>
            {
                &self.file
            }
            _ => scenario,
        }
    }
}

/// Replaces `fabric.file = NAME|PATH` by that file's table with the scenario's own
/// `[fabric]` keys merged over it.
fn expand_fabric_file(
    table: &mut toml::Table,
    origin: &str,
    dir: &Path,
) -> Result<Option<FabricOrigin>, InputError> {
    let Some(toml::Value::Table(fab)) = table.get_mut("fabric") else {
        return Ok(None);
    };
    let Some(file) = fab.remove("file") else {
        return Ok(None);
    };
    let toml::Value::String(file) = file else {
        return Err(InputError::new(
            origin,
            "fabric.file",
            "must be a string: an embedded fabric name or a path",
        ));
    };
    let (text, shown) = match fabric::embedded(&file) {
        Some(t) => (
            t.to_string(),
            format!("<embedded fabric {file}: fabrics/{file}.toml>"),
        ),
        None => {
            let path: PathBuf = if Path::new(&file).is_absolute() {
                PathBuf::from(&file)
            } else {
                dir.join(&file)
            };
            let t = std::fs::read_to_string(&path).map_err(|e| {
                let names: Vec<&str> = EMBEDDED_FABRICS.iter().map(|(n, _)| *n).collect();
                InputError::new(
                    origin,
                    "fabric.file",
                    format!(
                        "`{file}` is neither an embedded fabric ({}) nor a readable file: {e}",
                        names.join(", ")
                    ),
                )
            })?;
            (t, path.display().to_string())
        }
    };
    let mut base = parse_table(&text, &shown)?;
    if base.contains_key("file") {
        return Err(InputError::new(
            shown,
            "file",
            "a fabric file cannot name another fabric file",
        ));
    }
    let mut scenario_keys = Vec::new();
    merge(&mut base, fab, "", &mut scenario_keys);
    *fab = base;
    Ok(Some(FabricOrigin {
        file: shown,
        scenario_keys,
    }))
}

/// Deep-merges `over` into `base`, recording the dotted keys it set.
fn merge(base: &mut toml::Table, over: &toml::Table, prefix: &str, keys: &mut Vec<String>) {
    for (k, v) in over {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &path, keys),
            _ => {
                base.insert(k.clone(), v.clone());
                keys.push(path);
            }
        }
    }
}

/// Rejects `nan` and infinities anywhere in a scenario (its fabric file merged in), naming
/// the key and the file that holds it. TOML allows them; no key of a scenario means them,
/// and a range check such as `!(v > 0.0)` written the other way round would let NaN
/// through. `path` is the dotted path of `table` (empty at the top).
fn check_finite(
    table: &toml::Table,
    path: &str,
    origin: &str,
    fabric: Option<&FabricOrigin>,
) -> Result<(), InputError> {
    fn walk(
        v: &toml::Value,
        path: &str,
        origin: &str,
        fabric: Option<&FabricOrigin>,
    ) -> Result<(), InputError> {
        match v {
            toml::Value::Float(f) if !f.is_finite() => {
                let file = fabric.map_or(origin, |fo| fo.file_for(path, origin));
                Err(InputError::new(
                    file,
                    path,
                    format!("{f} is not allowed: numbers must be finite"),
                ))
            }
            toml::Value::Table(t) => check_finite(t, path, origin, fabric),
            toml::Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| walk(v, &format!("{path}[{i}]"), origin, fabric)),
            _ => Ok(()),
        }
    }
    for (k, v) in table {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        walk(v, &p, origin, fabric)?;
    }
    Ok(())
}

/// Deserializes a TOML value, naming the key path of the first problem and the file
/// that holds the key.
fn from_value<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    origin: &str,
    fabric: Option<&FabricOrigin>,
) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { path };
        let file = fabric.map_or(origin, |f| f.file_for(&key, origin));
        InputError::new(file, key.clone(), one_line(e.into_inner().message()))
    })
}

/// Resolution helpers that carry the origin so every error names the file.
struct Ctx<'a> {
    origin: &'a str,
    /// The scenario's folder: relative file names in it (fabric, model, compute table,
    /// traffic and routing files) are taken from here, whatever the working directory.
    dir: &'a Path,
}

impl Ctx<'_> {
    /// A file named in the scenario: absolute, or relative to its folder.
    fn path(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> InputError {
        InputError::new(self.origin, key, msg)
    }

    /// A rate in Gb/s: finite, at least 1 Mb/s (below any link a GPU fabric has, and low
    /// enough that one packet's time is exact: see `Time::HORIZON`), at most 100 Tb/s.
    fn rate(&self, key: &str, gbps: f64) -> Result<Bandwidth, InputError> {
        if !(gbps.is_finite() && (0.001..=100_000.0).contains(&gbps)) {
            return Err(self.err(
                key,
                format!("{gbps} is not allowed: a rate in Gb/s must be >= 0.001 and <= 100000"),
            ));
        }
        Bandwidth::from_bps((gbps * 1e9).round() as u64)
            .ok_or_else(|| self.err(key, "rate rounds to zero bit/s"))
    }

    /// A duration in ns: finite, >= 0, at most one second.
    fn dur_ns(&self, key: &str, ns: f64) -> Result<Dur, InputError> {
        if !(ns.is_finite() && (0.0..=1e9).contains(&ns)) {
            return Err(self.err(
                key,
                format!("{ns} is not allowed: a duration in ns must be >= 0 and <= 1e9"),
            ));
        }
        Ok(Dur::from_ps((ns * 1e3).round() as u64))
    }

    fn int_in(&self, key: &str, v: i64, lo: i64, hi: i64) -> Result<i64, InputError> {
        if v < lo || v > hi {
            return Err(self.err(
                key,
                format!("{v} is not allowed: must be between {lo} and {hi}"),
            ));
        }
        Ok(v)
    }
}

fn resolve(
    raw: &ScenarioFile,
    origin: &str,
    dir: &Path,
    fabric_origin: Option<&FabricOrigin>,
    seed: Option<u64>,
    level_chosen_by: &str,
) -> Result<Scenario, InputError> {
    let cx = Ctx { origin, dir };
    if raw.name.trim().is_empty() {
        return Err(cx.err("name", "must not be empty"));
    }
    let seed = seed.or(raw.seed).unwrap_or(DEFAULT_SEED);
    let level = match raw.level.as_deref() {
        None => Level::Packet,
        Some(name) => Level::parse(name).ok_or_else(|| {
            cx.err(
                "level",
                format!("`{name}` is not a level; allowed: packet, flow, analytical"),
            )
        })?,
    };

    // The memory a run will hold is checked before the routing tables are built (they alone
    // can need tens of GB): see `crate::config::memory`.
    let (rf, built, congestion_control) =
        resolve_fabric(&raw.fabric, origin, fabric_origin, &|spec| {
            memory::check(origin, spec, &raw.traffic, level)
        })?;
    let largest_packet = [rf.nic_wire, rf.nvlink_wire]
        .iter()
        .map(|w| (w.mtu_bytes + w.header_bytes) as u64)
        .max()
        .expect("two");

    if raw.traffic.is_empty() && raw.afd.is_none() && raw.serving.is_none() {
        return Err(cx.err(
            "traffic",
            "at least one [[traffic]] entry (or an [afd] or [serving] table) is required",
        ));
    }
    let serving_alone = || {
        cx.err(
            "serving",
            "a [serving] scenario has no [afd] table and no [[traffic]]: its decode pool is \
             [serving.decode] and its messages come from the requests",
        )
    };
    if raw.serving.is_some() && (raw.afd.is_some() || !raw.traffic.is_empty()) {
        return Err(serving_alone());
    }
    let gpus = built.topology.gpus();
    let mut rng = SimRng::stream(seed, crate::engine::stream::TRAFFIC);
    let mut messages = Vec::new();
    let mut kernels = Vec::new();
    for (i, t) in raw.traffic.iter().enumerate() {
        let at = format!("traffic[{i}]");
        let first = messages.len();
        let local = resolve_traffic(
            &cx,
            &at,
            t,
            gpus,
            built.spec.gpus_per_node,
            &mut rng,
            &mut messages,
        )?;
        if t.kernel.is_none() && t.kernel_sms.is_some() {
            return Err(cx.err(format!("{at}.kernel_sms"), "only used with `kernel`"));
        }
        if let Some(name) = &t.kernel {
            if t.start_jitter_ns.is_some_and(|j| j > 0.0) {
                return Err(cx.err(
                    format!("{at}.start_jitter_ns"),
                    "not allowed with `kernel`: a kernel call starts on every GPU at once",
                ));
            }
            if raw.afd.is_some() {
                return Err(cx.err(
                    format!("{at}.kernel"),
                    "not used in an [afd] study ([[traffic]] there is background load): \
                     choose the AFD transfers' library with [afd] comm",
                ));
            }
            let mut library =
                crate::comm::Library::load(name, dir, origin, &format!("{at}.kernel"))?;
            if let Some(n) = t.kernel_sms {
                let n = cx.int_in(&format!("{at}.kernel_sms"), n, 1, 1024)? as u32;
                library = library.with_sms(n);
            }
            let op = match t.direction.as_deref() {
                Some("combine") => crate::comm::Op::Combine,
                _ => crate::comm::Op::Dispatch,
            };
            kernels.push(crate::comm::Call {
                library: std::sync::Arc::new(library),
                op,
                messages: first..messages.len(),
                local,
                start: Time::ZERO
                    + cx.dur_ns(&format!("{at}.start_ns"), t.start_ns.unwrap_or(0.0))?,
            });
        }
    }

    let scenario = Scenario {
        name: raw.name.clone(),
        origin: origin.to_string(),
        seed,
        level,
        fabric_name: rf.name.clone(),
        fabric: built,
        net: NetParams {
            nic_wire: rf.nic_wire,
            nvlink_wire: rf.nvlink_wire,
            switch: rf.switch,
            routing: rf.routing,
            congestion_control,
            transport: rf.transport,
            // Four of the largest packets: enough to keep a link busy across a credit
            // round trip of a few hundred ns at NVLink and PCIe rates.
            credit_bytes: 4 * largest_packet,
            pxn_fifo_bytes: rf.pxn_fifo_bytes,
            seed,
        },
        messages: std::sync::Arc::new({
            messages.shrink_to_fit();
            messages
        }),
        kernels,
        study: match (&raw.afd, &raw.serving) {
            (None, None) => Study::Network,
            (Some(a), None) => Study::Afd(afd::resolve(&cx, a, gpus, seed)?),
            (None, Some(sv)) => Study::Serving(serving::resolve(&cx, sv, gpus, seed)?),
            (Some(_), Some(_)) => return Err(serving_alone()),
        },
    };
    check_level(&scenario, level_chosen_by)?;
    Ok(scenario)
}

impl Scenario {
    /// The same scenario at another level (as `afdsim run --level` asks), checked as if
    /// the file had said so.
    pub fn with_level(mut self, level: Level) -> Result<Scenario, InputError> {
        self.level = level;
        check_level(&self, "--level")?;
        Ok(self)
    }
}

/// Rejects scenario features that only exist at the packet level when the scenario runs at
/// the flow or analytical level: those levels have no queues, buffers, pauses, marks or
/// rate control, and ignoring the keys would answer a different question silently.
/// `chosen_by` names where the level came from (`level` or `--level`).
fn check_level(s: &Scenario, chosen_by: &str) -> Result<(), InputError> {
    if s.level == Level::Analytical && s.serving().is_some() {
        return Err(InputError::new(
            s.origin.clone(),
            "serving",
            format!(
                "serving iterations are graphs of dependent kernels and transfers; the \
                 analytical level (chosen by `{chosen_by}`) times independent messages only: \
                 run it at level = \"flow\" or \"packet\""
            ),
        ));
    }
    if s.level == Level::Analytical && s.afd().is_some() {
        return Err(InputError::new(
            s.origin.clone(),
            "afd",
            format!(
                "an AFD decode step is a graph of dependent kernels and transfers; the \
                 analytical level (chosen by `{chosen_by}`) times independent messages only: \
                 run it at level = \"flow\" or \"packet\""
            ),
        ));
    }
    if s.level == Level::Packet {
        return Ok(());
    }
    let sw = &s.net.switch;
    let found = if matches!(sw.buffers, Buffers::Lossy { .. }) {
        Some((
            "fabric.switch.mode",
            "dropping at a full buffer (mode = \"lossy\")",
        ))
    } else if matches!(sw.buffers, Buffers::Lossless { .. }) {
        Some(("fabric.switch.pfc_xoff_kib", "PFC on finite switch buffers"))
    } else if matches!(s.net.congestion_control, CongestionControl::Dcqcn(_)) {
        // Before ECN: DCQCN brings default marking thresholds (`fabric::DCQCN_DEFAULT_ECN`)
        // the file may not name.
        Some(("fabric.nic.congestion_control", "DCQCN rate control"))
    } else if sw.ecn.is_some() {
        Some(("fabric.switch.ecn_kmin_kib", "ECN marking"))
    } else if s.net.pxn_fifo_bytes.is_some() {
        Some(("fabric.routing.pxn_fifo_kib", "a bounded PXN relay buffer"))
    } else {
        None
    };
    match found {
        None => Ok(()),
        Some((key, what)) => Err(InputError::new(
            s.origin.clone(),
            key,
            format!(
                "{what} is a packet-level feature; the {lvl} level (chosen by `{chosen_by}`) \
                 has no packets or queues to apply it to: run with level = \"packet\" to study \
                 it, or remove the key to get the {lvl} level's answer without it",
                lvl = s.level.as_str()
            ),
        )),
    }
}

/// Resolves and builds a fabric table, naming the file that holds each bad key.
fn resolve_fabric(
    f: &FabricFile,
    origin: &str,
    fabric_origin: Option<&FabricOrigin>,
    before_build: &dyn Fn(&crate::topology::FabricSpec) -> Result<(), InputError>,
) -> Result<(ResolvedFabric, Fabric, CongestionControl), InputError> {
    // Fabric keys name no files (`fabric.file` was expanded before).
    let cx = Ctx {
        origin,
        dir: Path::new(""),
    };
    let file_for = |key: &str| -> String {
        fabric_origin.map_or(origin.to_string(), |f| f.file_for(key, origin).to_string())
    };
    let blame = |mut e: InputError| {
        e.file = file_for(&e.key);
        e
    };
    let mut rf = fabric::resolve(&cx, f).map_err(blame)?;
    before_build(&rf.spec)?;
    let built = crate::topology::build(&rf.spec).map_err(|e| {
        let key = if e.key.is_empty() {
            "fabric".to_string()
        } else {
            format!("fabric.{}", e.key)
        };
        InputError::new(file_for(&key), key, e.message)
    })?;
    check_headroom(&rf, &built).map_err(blame)?;
    let cc_name = f.nic.as_ref().and_then(|n| n.congestion_control.as_deref());
    if cc_name != Some("dcqcn") && f.nic.as_ref().is_some_and(|n| n.dcqcn.is_some()) {
        let key = "fabric.nic.dcqcn";
        return Err(InputError::new(
            file_for(key),
            key,
            "DCQCN parameters need congestion_control = \"dcqcn\"",
        ));
    }
    let congestion_control = match cc_name {
        None | Some("none") => CongestionControl::None,
        Some("dcqcn") => {
            let line = rf
                .spec
                .nic
                .as_ref()
                .map(|n| n.rate)
                .expect("a [nic] table was read");
            let d = f.nic.as_ref().and_then(|n| n.dcqcn.as_ref());
            // DCQCN reacts only to marks: switches without thresholds mark as the paper's.
            rf.switch.ecn.get_or_insert(fabric::DCQCN_DEFAULT_ECN);
            CongestionControl::Dcqcn(fabric::resolve_dcqcn(&cx, d, line).map_err(blame)?)
        }
        Some(other) => {
            let key = "fabric.nic.congestion_control";
            return Err(InputError::new(
                file_for(key),
                key,
                format!("`{other}` is not a congestion control; allowed: none, dcqcn"),
            ));
        }
    };
    Ok((rf, built, congestion_control))
}

/// Loads a fabric alone (for `afdsim fabric show`): an embedded name or a path, with
/// `nodes` overriding the file's node count.
pub fn load_fabric(
    file: &str,
    nodes: Option<u32>,
) -> Result<(ResolvedFabric, Fabric, CongestionControl), InputError> {
    let origin = "<command line>";
    let mut fab = toml::Table::new();
    fab.insert("file".into(), toml::Value::String(file.to_string()));
    if let Some(n) = nodes {
        fab.insert("nodes".into(), toml::Value::Integer(n as i64));
    }
    let mut table = toml::Table::new();
    table.insert("fabric".into(), toml::Value::Table(fab));
    let fabric_origin = expand_fabric_file(&mut table, origin, Path::new(""))?;
    check_finite(&table, "", origin, fabric_origin.as_ref())?;
    let value = table.remove("fabric").expect("inserted above");
    // Key paths from here on are relative to the fabric table: prefix them.
    let f: FabricFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = format!("fabric.{}", e.path());
        let file = fabric_origin
            .as_ref()
            .map_or(origin, |f| f.file_for(&key, origin))
            .to_string();
        InputError::new(file, key, one_line(e.into_inner().message()))
    })?;
    // `fabric show` builds the routes too: the same check, with no messages.
    resolve_fabric(&f, origin, fabric_origin.as_ref(), &|spec| {
        memory::check(origin, spec, &[], Level::Flow)
    })
}

/// In lossless mode with a finite per-ingress buffer, XOFF plus the headroom the worst
/// link needs must fit: after XOFF, bytes keep arriving for a pause round trip
/// (2 x latency x rate) plus a packet being sent and a packet being received.
fn check_headroom(rf: &ResolvedFabric, fabric: &Fabric) -> Result<(), InputError> {
    let Buffers::Lossless {
        pfc,
        ingress_bytes: Some(buffer),
    } = rf.switch.buffers
    else {
        return Ok(());
    };
    let packet = (rf.nic_wire.mtu_bytes + rf.nic_wire.header_bytes) as u64;
    let t = &fabric.topology;
    let headroom = t
        .links()
        .iter()
        .filter(|l| t.kind(l.to) == NodeKind::Switch)
        .map(|l| {
            let flight = (2 * l.latency.as_ps() as u128 * l.rate.bps() as u128)
                .div_ceil(8 * crate::engine::PS_PER_S as u128) as u64;
            flight + 2 * packet
        })
        .max()
        .unwrap_or(0);
    if pfc.xoff_bytes + headroom > buffer {
        return Err(InputError::new(
            "",
            "fabric.switch.buffer_kib",
            format!(
                "{} KiB cannot hold XOFF ({} B) plus the headroom the links need ({headroom} B): \
                 at least {} KiB, or a lower pfc_xoff_kib",
                buffer as f64 / 1024.0,
                pfc.xoff_bytes,
                (pfc.xoff_bytes + headroom).div_ceil(1024)
            ),
        ));
    }
    Ok(())
}

/// The keys of a traffic entry other than `pattern`, `bytes` and the start times, with
/// whether they are set, so a pattern can reject the ones it does not use.
fn set_keys(t: &TrafficFile) -> [(&'static str, bool); 17] {
    [
        ("direction", t.direction.is_some()),
        ("router", t.router.is_some()),
        ("tokens_per_gpu", t.tokens_per_gpu.is_some()),
        ("experts", t.experts.is_some()),
        ("top_k", t.top_k.is_some()),
        ("hidden", t.hidden.is_some()),
        ("dtype", t.dtype.is_some()),
        ("dedup", t.dedup.is_some()),
        ("node_groups", t.node_groups.is_some()),
        ("metadata_bytes", t.metadata_bytes.is_some()),
        ("bytes", t.bytes.is_some()),
        ("matrix_bytes", t.matrix_bytes.is_some()),
        ("src", t.src.is_some()),
        ("dst", t.dst.is_some()),
        ("senders", t.senders.is_some()),
        ("receiver", t.receiver.is_some()),
        ("shift", t.shift.is_some()),
    ]
}

fn resolve_traffic(
    cx: &Ctx,
    at: &str,
    t: &TrafficFile,
    gpus: u32,
    gpus_per_node: u32,
    rng: &mut SimRng,
    out: &mut Vec<MessageSpec>,
) -> Result<Vec<crate::comm::Transfer>, InputError> {
    let key = |k: &str| format!("{at}.{k}");
    let mut local = Vec::new();
    let bytes = match (t.pattern.as_str(), t.bytes) {
        ("matrix" | "moe-dispatch", _) => 0,
        (_, Some(b)) => cx.int_in(&key("bytes"), b, 1, 1 << 40)? as u64,
        (_, None) => {
            return Err(cx.err(
                key("bytes"),
                format!("required for pattern `{}`", t.pattern),
            ));
        }
    };
    let start = Time::ZERO + cx.dur_ns(&key("start_ns"), t.start_ns.unwrap_or(0.0))?;
    let jitter = cx.dur_ns(&key("start_jitter_ns"), t.start_jitter_ns.unwrap_or(0.0))?;
    let gpu = |k: &str, v: i64| -> Result<NodeId, InputError> {
        Ok(NodeId(cx.int_in(&key(k), v, 0, gpus as i64 - 1)? as u32))
    };
    let required = |k: &str, v: Option<i64>| -> Result<i64, InputError> {
        v.ok_or_else(|| cx.err(key(k), format!("required for pattern `{}`", t.pattern)))
    };
    let uses: &[&str] = match t.pattern.as_str() {
        "message" => &["bytes", "src", "dst"],
        "all-to-all" => &["bytes"],
        "incast" => &["bytes", "senders", "receiver"],
        "permutation" => &["bytes", "shift"],
        "matrix" => &["matrix_bytes"],
        "moe-dispatch" => &[
            "tokens_per_gpu",
            "experts",
            "top_k",
            "hidden",
            "dtype",
            "dedup",
            "node_groups",
            "metadata_bytes",
            "direction",
            "router",
        ],
        other => {
            return Err(cx.err(
                key("pattern"),
                format!(
                    "`{other}` is not a pattern; allowed: message, all-to-all, incast, permutation, matrix, moe-dispatch"
                ),
            ));
        }
    };
    for (k, set) in set_keys(t) {
        if set && !uses.contains(&k) {
            return Err(cx.err(
                key(k),
                format!(
                    "not used by pattern `{}` (it uses: {})",
                    t.pattern,
                    uses.join(", ")
                ),
            ));
        }
    }

    let mut pairs: Vec<(NodeId, NodeId)> = Vec::new();
    // Per-pair sizes where a pattern has them (matrix); else every pair sends `bytes`.
    let mut sizes: Vec<u64> = Vec::new();
    match t.pattern.as_str() {
        "moe-dispatch" => {
            for (s, d, b) in moe::dispatch(cx, at, t, gpus, gpus_per_node, rng)? {
                if s == d {
                    local.push(crate::comm::Transfer {
                        src: NodeId(s),
                        dst: NodeId(d),
                        bytes: b,
                    });
                    continue;
                }
                pairs.push((NodeId(s), NodeId(d)));
                sizes.push(b);
            }
        }
        "matrix" => {
            let rows = t
                .matrix_bytes
                .as_ref()
                .ok_or_else(|| cx.err(key("matrix_bytes"), "required for pattern `matrix`"))?;
            if rows.len() != gpus as usize {
                return Err(cx.err(
                    key("matrix_bytes"),
                    format!(
                        "has {} rows; the fabric has {gpus} GPUs (one row each)",
                        rows.len()
                    ),
                ));
            }
            for (i, row) in rows.iter().enumerate() {
                let at = key(&format!("matrix_bytes[{i}]"));
                if row.len() != gpus as usize {
                    return Err(cx.err(
                        &at,
                        format!("has {} entries; the fabric has {gpus} GPUs", row.len()),
                    ));
                }
                for (j, &b) in row.iter().enumerate() {
                    let at = format!("{at}[{j}]");
                    let b = cx.int_in(&at, b, 0, 1 << 40)? as u64;
                    if i == j && b > 0 {
                        return Err(cx.err(
                            at,
                            "a GPU sends nothing to itself over the fabric: must be 0",
                        ));
                    }
                    if b > 0 {
                        pairs.push((NodeId(i as u32), NodeId(j as u32)));
                        sizes.push(b);
                    }
                }
            }
        }
        "message" => {
            let s = gpu("src", required("src", t.src)?)?;
            let d = gpu("dst", required("dst", t.dst)?)?;
            if s == d {
                return Err(cx.err(key("dst"), "must differ from src"));
            }
            pairs.push((s, d));
        }
        "all-to-all" => {
            // GPU i sends to i+1, i+2, ... in that order: with round-robin NICs every packet
            // slot is then a permutation, the contention-free schedule.
            for s in 0..gpus {
                for k in 1..gpus {
                    pairs.push((NodeId(s), NodeId((s + k) % gpus)));
                }
            }
        }
        "incast" => {
            let r = gpu("receiver", required("receiver", t.receiver)?)?;
            let senders = t
                .senders
                .as_ref()
                .ok_or_else(|| cx.err(key("senders"), "required for pattern `incast`"))?;
            if senders.is_empty() {
                return Err(cx.err(key("senders"), "must list at least one GPU"));
            }
            for (j, &s) in senders.iter().enumerate() {
                let s = gpu(&format!("senders[{j}]"), s)?;
                if s == r {
                    return Err(cx.err(key(&format!("senders[{j}]")), "must differ from receiver"));
                }
                pairs.push((s, r));
            }
        }
        "permutation" => {
            let target: Vec<u32> = match t.shift {
                Some(shift) => {
                    let s = cx.int_in(&key("shift"), shift, 1, gpus as i64 - 1)? as u32;
                    (0..gpus).map(|i| (i + s) % gpus).collect()
                }
                None => random_derangement(gpus, rng),
            };
            pairs.extend((0..gpus).map(|i| (NodeId(i), NodeId(target[i as usize]))));
        }
        _ => unreachable!("pattern checked above"),
    }
    for (k, (src, dst)) in pairs.into_iter().enumerate() {
        let bytes = sizes.get(k).copied().unwrap_or(bytes);
        let j = if jitter == Dur::ZERO {
            Dur::ZERO
        } else {
            Dur::from_ps(rng.below(jitter.as_ps() + 1))
        };
        out.push(MessageSpec {
            src,
            dst,
            bytes,
            start: start + j,
        });
    }
    Ok(local)
}

/// A uniformly random cyclic permutation (Sattolo's algorithm): no GPU maps to itself.
fn random_derangement(n: u32, rng: &mut SimRng) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n).collect();
    for i in (1..n as usize).rev() {
        let j = rng.below(i as u64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_resolves() {
        let s = Scenario::embedded_default(None);
        assert!(s.afd().is_some(), "the default is an AFD decode step");
        let star = Scenario::parse(STAR_SCENARIO, STAR_SCENARIO_ORIGIN, None).unwrap();
        assert_eq!(star.messages.len(), 56);
    }

    #[test]
    fn derangement_has_no_fixed_point() {
        let mut rng = SimRng::new(3);
        for n in 2..40 {
            let p = random_derangement(n, &mut rng);
            let mut sorted = p.clone();
            sorted.sort();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            assert!(p.iter().enumerate().all(|(i, &v)| i as u32 != v));
        }
    }

    const BASE: &str = r#"
name = "t"
[fabric]
nodes = 4
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 100
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 100
[[traffic]]
pattern = "all-to-all"
bytes = 4096
"#;

    /// Replaces `from` by `to` in BASE (which must apply) and expects an error in `file`
    /// naming `key` with `words` in its message.
    fn check_err(base: &str, from: &str, to: &str, file: &str, key: &str, words: &str) {
        let text = base.replacen(from, to, 1);
        assert_ne!(text, base, "replacement {from:?} did not apply");
        let Err(e) = Scenario::parse(&text, "f.toml", None) else {
            panic!("{from:?} -> {to:?} was accepted");
        };
        assert!(
            e.file.contains(file),
            "file {:?} is not {file:?} ({e})",
            e.file
        );
        assert!(e.key.contains(key), "key {:?} lacks {key:?} ({e})", e.key);
        assert!(
            e.message.contains(words),
            "message {:?} lacks {words:?}",
            e.message
        );
    }

    /// Each bad input gives an error naming the file and the key.
    #[test]
    fn bad_inputs_name_their_key() {
        let check = |from: &str, to: &str, key: &str, words: &str| {
            check_err(BASE, from, to, "f.toml", key, words)
        };
        check(
            "rate_gbps = 400",
            "rate_gbps = 0",
            "fabric.nic.rate_gbps",
            ">= 0.001",
        );
        // Below 1 Mb/s (a typo for Gb/s): refused, so a packet's time is exact.
        check(
            "rate_gbps = 400",
            "rate_gbps = 1e-9",
            "fabric.nic.rate_gbps",
            ">= 0.001",
        );
        check(
            "rate_gbps = 400",
            "rate_gbps = -5",
            "fabric.nic.rate_gbps",
            ">= 0.001",
        );
        check("nodes = 4", "nodes = 1", "fabric.nodes", "between 2");
        let a2a = "pattern = \"all-to-all\"";
        check(
            a2a,
            "pattern = \"all-to-all\"\nkernel = \"nope\"",
            "traffic[0].kernel",
            "deepep-ll",
        );
        check(
            a2a,
            "pattern = \"all-to-all\"\nkernel_sms = 8",
            "traffic[0].kernel_sms",
            "with `kernel`",
        );
        check(
            a2a,
            "pattern = \"all-to-all\"\nkernel = \"nccl\"\nkernel_sms = 0",
            "traffic[0].kernel_sms",
            "between 1",
        );
        check(
            a2a,
            "pattern = \"all-to-all\"\nkernel = \"nccl\"\nstart_jitter_ns = 5",
            "traffic[0].start_jitter_ns",
            "not allowed with `kernel`",
        );
        check(
            a2a,
            "pattern = \"all-to-all\"\ndirection = \"combine\"",
            "traffic[0].direction",
            "not used by pattern",
        );
        check(
            "\"single-switch\"",
            "\"ring\"",
            "fabric.scale_out.topology",
            "allowed",
        );
        check(
            "gpus_per_node = 1",
            "gpus_per_node = 1\nbogus = 1",
            "fabric",
            "unknown field `bogus`",
        );
        check("bytes = 4096", "bytes = 0", "traffic[0].bytes", "between 1");
        check(
            "\"all-to-all\"",
            "\"incast\"",
            "traffic[0].receiver",
            "required",
        );
        check(
            "bytes = 4096",
            "bytes = 4096\nsrc = 1",
            "traffic[0].src",
            "not used",
        );
        check(
            "nodes = 4",
            "nodes = \"four\"",
            "fabric.nodes",
            "invalid type",
        );
        check("name = \"t\"", "name = ", "line 2", "");
        check(
            "\"single-switch\"",
            "\"none\"",
            "fabric.scale_out.topology",
            "more than one node",
        );
        check(
            "latency_ns = 100\n[[",
            "latency_ns = 100\nbuffer_kib = 2\npfc_xoff_kib = 1\npfc_xon_kib = 0.5\n[[",
            "fabric.switch.buffer_kib",
            "smaller than one packet",
        );
        check(
            "latency_ns = 100\n[[",
            "latency_ns = 100\npfc_xoff_kib = 100\npfc_xon_kib = 200\n[[",
            "fabric.switch.pfc_xon_kib",
            "below pfc_xoff_kib",
        );
        check(
            "latency_ns = 100\n[[",
            "latency_ns = 100\nbuffer_kib = 64\npfc_xoff_kib = 60\npfc_xon_kib = 30\n[[",
            "fabric.switch.buffer_kib",
            "headroom",
        );
        check(
            "latency_ns = 100\n[[",
            "latency_ns = 100\nbuffer_kib = 64\n[[",
            "fabric.switch.buffer_kib",
            "needs PFC",
        );
        check(
            "latency_ns = 100\n[[",
            "latency_ns = 100\nmode = \"lossy\"\n[[",
            "fabric.switch.mode",
            "finite buffer_kib",
        );
        check(
            "latency_ns = 100\n[fabric.scale",
            "latency_ns = 100\ncongestion_control = \"tcp\"\n[fabric.scale",
            "fabric.nic.congestion_control",
            "allowed: none, dcqcn",
        );
        check(
            "[fabric]\n",
            "[fabric]\nfile = \"no-such-fabric\"\n",
            "fabric.file",
            "neither an embedded fabric",
        );
    }

    /// Keys from an embedded fabric file are blamed on that file; overrides on the scenario.
    #[test]
    fn fabric_file_errors_name_the_file_that_holds_the_key() {
        let base = "name = \"t\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n[[traffic]]\npattern = \"all-to-all\"\nbytes = 4096\n";
        let s = Scenario::parse(base, "f.toml", None).unwrap();
        assert_eq!(s.fabric.topology.gpus(), 16);
        check_err(
            base,
            "nodes = 2",
            "nodes = 2\n[fabric.nic]\nrate_gbps = 0",
            "f.toml",
            "fabric.nic.rate_gbps",
            ">= 0.001",
        );
        check_err(
            base,
            "nodes = 2",
            "nodes = 2\n[fabric.scale_out]\nradix = 4",
            "f.toml",
            "fabric.scale_out.radix",
            "radix",
        );
        check_err(
            base,
            "nodes = 2",
            "nodes = 100000",
            "f.toml",
            "fabric.nodes",
            "between 1",
        );
        // Half a PFC pair set by the scenario: the half it set, in the scenario.
        check_err(
            base,
            "nodes = 2",
            "nodes = 2\n[fabric.switch]\npfc_xoff_kib = 10",
            "f.toml",
            "fabric.switch.pfc_xoff_kib",
            "both",
        );
        // A key the scenario did not set is blamed on the fabric file.
        let dir = std::env::temp_dir().join(format!("afdsim-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fabric = "nodes = 4\ngpus_per_node = 1\n[nic]\nrate_gbps = 400\nlatency_ns = 100\n\
                      [scale_out]\ntopology = \"single-switch\"\n[switch]\nmode = \"lossy\"\n";
        std::fs::write(dir.join("lossy.toml"), fabric).unwrap();
        let text = "name = \"t\"\n[fabric]\nfile = \"lossy.toml\"\nnodes = 2\n[[traffic]]\n\
                    pattern = \"all-to-all\"\nbytes = 4096\n";
        let e = Scenario::parse_in(text, "f.toml", &dir, None).unwrap_err();
        assert_eq!(e.file, dir.join("lossy.toml").display().to_string(), "{e}");
        assert_eq!(e.key, "fabric.switch.mode", "{e}");
        // The scenario setting the mode: the scenario.
        let text = text.replace("nodes = 2", "nodes = 2\n[fabric.switch]\nmode = \"lossy\"");
        let e = Scenario::parse_in(&text, "f.toml", &dir, None).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.key.as_str()),
            ("f.toml", "fabric.switch.mode")
        );
    }

    #[test]
    fn matrix_traffic_sends_each_nonzero_entry() {
        let text = BASE.replace(
            "pattern = \"all-to-all\"\nbytes = 4096",
            "pattern = \"matrix\"\nmatrix_bytes = [[0,7,0,0],[0,0,0,0],[9,0,0,0],[0,0,3,0]]",
        );
        let s = Scenario::parse(&text, "f.toml", None).unwrap();
        let got: Vec<(u32, u32, u64)> = s
            .messages
            .iter()
            .map(|m| (m.src.0, m.dst.0, m.bytes))
            .collect();
        assert_eq!(got, [(0, 1, 7), (2, 0, 9), (3, 2, 3)]);
    }

    #[test]
    fn every_embedded_fabric_builds() {
        for (name, _) in EMBEDDED_FABRICS {
            let (_, f, _) = load_fabric(name, Some(2)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(f.topology.gpus() >= 16, "{name}");
        }
    }
}
