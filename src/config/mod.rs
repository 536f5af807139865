//! Scenario files: TOML as written -> a validated, resolved [`Scenario`].
//!
//! Invariant: this is the only module that reads scenario files, and everything it hands on
//! is valid (positive rates, routes between all GPUs, in-range indices, integral units).
//! Every error names the file, the key and what is allowed.

mod raw;

pub use raw::{FabricFile, ScenarioFile, TrafficFile};

use crate::engine::{Bandwidth, Dur, SimRng, Time};
use crate::error::InputError;
use crate::packet::{MessageSpec, PacketParams};
use crate::topology::{NodeId, Topology};
use std::path::Path;

/// The embedded default scenario: `afdsim run` with no file runs this.
pub const DEFAULT_SCENARIO: &str = include_str!("../../workloads/scenarios/default.toml");
pub const DEFAULT_SCENARIO_ORIGIN: &str = "<embedded default: workloads/scenarios/default.toml>";

/// The seed used when neither the command line nor the file gives one.
pub const DEFAULT_SEED: u64 = 1;

/// Random streams drawn from the run's seed, one per purpose, so that a draw added to one
/// purpose never shifts the others.
const STREAM_TRAFFIC: u64 = 1;

/// Simulation fidelity.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    Packet,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Packet => "packet",
        }
    }
}

/// A resolved scenario: what the simulation runs. Built only by [`Scenario::parse`].
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    /// Where it came from (a path, or the embedded default).
    pub origin: String,
    pub seed: u64,
    pub level: Level,
    pub topology: Topology,
    pub packet: PacketParams,
    pub messages: Vec<MessageSpec>,
}

impl Scenario {
    /// Reads and resolves a scenario file. `seed` overrides the file's seed.
    pub fn load(path: &Path, seed: Option<u64>) -> Result<Scenario, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::for_path(path, "", format!("cannot read file: {e}")))?;
        Scenario::parse(&text, &path.display().to_string(), seed)
    }

    /// The embedded default scenario.
    pub fn embedded_default(seed: Option<u64>) -> Scenario {
        Scenario::parse(DEFAULT_SCENARIO, DEFAULT_SCENARIO_ORIGIN, seed)
            .expect("the embedded default scenario is valid (checked by a test)")
    }

    /// Parses and resolves scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, seed: Option<u64>) -> Result<Scenario, InputError> {
        let raw: ScenarioFile = parse_toml(text, origin)?;
        resolve(&raw, origin, seed)
    }
}

/// Deserializes TOML, reporting the key path and line of the first problem.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, InputError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| InputError::new(origin, line_of(text, e.span()), one_line(e.message())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = if path == "." { String::new() } else { path };
        let at = line_of(text, inner.span());
        let key = match (key.is_empty(), at.is_empty()) {
            (true, _) => at,
            (false, true) => key,
            (false, false) => format!("{key} ({at})"),
        };
        InputError::new(origin, key, one_line(inner.message()))
    })
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) if s.start <= text.len() => {
            format!("line {}", text[..s.start].matches('\n').count() + 1)
        }
        _ => String::new(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Resolution helpers that carry the origin so every error names the file.
struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> InputError {
        InputError::new(self.origin, key, msg)
    }

    /// A rate in Gb/s: finite, positive, at most 100 Tb/s.
    fn rate(&self, key: &str, gbps: f64) -> Result<Bandwidth, InputError> {
        if !(gbps.is_finite() && gbps > 0.0 && gbps <= 100_000.0) {
            return Err(self.err(
                key,
                format!("{gbps} is not allowed: a rate in Gb/s must be > 0 and <= 100000"),
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

fn resolve(raw: &ScenarioFile, origin: &str, seed: Option<u64>) -> Result<Scenario, InputError> {
    let cx = Ctx { origin };
    if raw.name.trim().is_empty() {
        return Err(cx.err("name", "must not be empty"));
    }
    let seed = seed.or(raw.seed).unwrap_or(DEFAULT_SEED);
    let level = match raw.level.as_deref() {
        None | Some("packet") => Level::Packet,
        Some(other) => {
            return Err(cx.err(
                "level",
                format!(
                    "`{other}` is not a level; allowed: packet (flow and analytical come later)"
                ),
            ));
        }
    };

    let f = &raw.fabric;
    if f.kind != "star" {
        return Err(cx.err(
            "fabric.kind",
            format!("`{}` is not a fabric kind; allowed: star", f.kind),
        ));
    }
    let gpus = cx.int_in("fabric.gpus", f.gpus, 2, 65_536)? as u32;
    let rate = cx.rate("fabric.link_rate_gbps", f.link_rate_gbps)?;
    let latency = cx.dur_ns("fabric.link_latency_ns", f.link_latency_ns)?;
    let switch_latency = cx.dur_ns(
        "fabric.switch_latency_ns",
        f.switch_latency_ns.unwrap_or(0.0),
    )?;
    let mtu_bytes = cx.int_in("fabric.mtu_bytes", f.mtu_bytes.unwrap_or(4096), 64, 65_536)? as u32;
    let header_bytes =
        cx.int_in("fabric.header_bytes", f.header_bytes.unwrap_or(64), 0, 4096)? as u32;
    let topology = Topology::star(gpus, rate, latency);

    if raw.traffic.is_empty() {
        return Err(cx.err("traffic", "at least one [[traffic]] entry is required"));
    }
    let mut rng = SimRng::stream(seed, STREAM_TRAFFIC);
    let mut messages = Vec::new();
    for (i, t) in raw.traffic.iter().enumerate() {
        resolve_traffic(
            &cx,
            &format!("traffic[{i}]"),
            t,
            gpus,
            &mut rng,
            &mut messages,
        )?;
    }

    Ok(Scenario {
        name: raw.name.clone(),
        origin: origin.to_string(),
        seed,
        level,
        topology,
        packet: PacketParams {
            mtu_bytes,
            header_bytes,
            switch_latency,
        },
        messages,
    })
}

/// The keys of a traffic entry other than `pattern`, `bytes` and the start times, with
/// whether they are set, so a pattern can reject the ones it does not use.
fn set_keys(t: &TrafficFile) -> [(&'static str, bool); 5] {
    [
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
    rng: &mut SimRng,
    out: &mut Vec<MessageSpec>,
) -> Result<(), InputError> {
    let key = |k: &str| format!("{at}.{k}");
    let bytes = cx.int_in(&key("bytes"), t.bytes, 1, 1 << 40)? as u64;
    let start = Time::ZERO + cx.dur_ns(&key("start_ns"), t.start_ns.unwrap_or(0.0))?;
    let jitter = cx.dur_ns(&key("start_jitter_ns"), t.start_jitter_ns.unwrap_or(0.0))?;
    let gpu = |k: &str, v: i64| -> Result<NodeId, InputError> {
        Ok(NodeId(cx.int_in(&key(k), v, 0, gpus as i64 - 1)? as u32))
    };
    let required = |k: &str, v: Option<i64>| -> Result<i64, InputError> {
        v.ok_or_else(|| cx.err(key(k), format!("required for pattern `{}`", t.pattern)))
    };
    let uses: &[&str] = match t.pattern.as_str() {
        "message" => &["src", "dst"],
        "all-to-all" => &[],
        "incast" => &["senders", "receiver"],
        "permutation" => &["shift"],
        other => {
            return Err(cx.err(
                key("pattern"),
                format!(
                    "`{other}` is not a pattern; allowed: message, all-to-all, incast, permutation"
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
    match t.pattern.as_str() {
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
    for (src, dst) in pairs {
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
    Ok(())
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
        assert!(!s.messages.is_empty());
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

    /// Each bad input gives an error naming the key; checked through one helper.
    #[test]
    fn bad_inputs_name_their_key() {
        let base = r#"
name = "t"
[fabric]
kind = "star"
gpus = 4
link_rate_gbps = 400
link_latency_ns = 100
[[traffic]]
pattern = "all-to-all"
bytes = 4096
"#;
        let check = |from: &str, to: &str, key: &str, words: &str| {
            let text = base.replacen(from, to, 1);
            assert_ne!(text, base, "replacement {from:?} did not apply");
            let e = Scenario::parse(&text, "f.toml", None).unwrap_err();
            assert_eq!(e.file, "f.toml");
            assert!(e.key.contains(key), "key {:?} lacks {key:?} ({e})", e.key);
            assert!(
                e.message.contains(words),
                "message {:?} lacks {words:?}",
                e.message
            );
        };
        check(
            "link_rate_gbps = 400",
            "link_rate_gbps = 0",
            "fabric.link_rate_gbps",
            "> 0",
        );
        check(
            "link_rate_gbps = 400",
            "link_rate_gbps = -5",
            "fabric.link_rate_gbps",
            "> 0",
        );
        check("gpus = 4", "gpus = 1", "fabric.gpus", "between 2");
        check(
            "kind = \"star\"",
            "kind = \"ring\"",
            "fabric.kind",
            "allowed: star",
        );
        check(
            "gpus = 4",
            "gpus = 4\nbogus = 1",
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
        check("gpus = 4", "gpus = \"four\"", "fabric.gpus", "invalid type");
        check("name = \"t\"", "name = ", "line 2", "");
    }
}
