//! Communication kernels: what a library's dispatch, combine or all-to-all kernel adds to the
//! bytes it moves.
//!
//! A [`Library`] is a preset (`workloads/comm/*.toml`, each parameter with its source) or a
//! user's file. [`kernel::launch`] turns one kernel call, a list of logical transfers
//! (source GPU, destination GPU, bytes; a GPU to itself is a local copy), into tasks of a
//! [`crate::net::Workload`]:
//! - per GPU, a start delay (launch and start barrier) before its first byte;
//! - each transfer a message, its rate shared with the other messages of its source GPU
//!   under the library's copy-rate limit (SM-driven NVLink stores, or a transport's
//!   per-GPU RDMA rate);
//! - a local copy as an HBM copy beside the compute stream;
//! - per GPU, an end delay (completion flag and the receiver's polling, and for a combine
//!   the top-k reduction of what it received) after everything it sends and receives.
//!
//! The `ideal` library adds nothing: each transfer is a plain message, as before this layer
//! existed, and a run with it is byte-identical to one without.
//!
//! Invariant: a kernel never makes a transfer faster than the fabric carries it; every cost
//! it adds is a delay or a rate cap.

pub mod kernel;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

pub use kernel::{Kernel, Launched, Op, Transfer, launch};

use crate::engine::{Bandwidth, Dur, Time};
use crate::error::InputError;
use crate::net::{MessageSpec, NetParams, NetRun, Workload};
use crate::topology::Fabric;

/// One `[[traffic]]` entry run as a kernel call (`kernel = "..."`): its messages, a range of
/// the scenario's, and its local copies (`moe-dispatch` tokens for a GPU's own experts).
#[derive(Clone, Debug)]
pub struct Call {
    pub library: Arc<Library>,
    pub op: Op,
    pub messages: Range<usize>,
    pub local: Vec<Transfer>,
    pub start: Time,
}

/// The workload of a network study: `messages` in order, those of each call as its kernel.
/// Without calls (or with `ideal` ones and no local copies) it is
/// `Workload::from_messages(messages)`, task for task.
pub fn traffic_workload(
    fabric: &Fabric,
    params: &NetParams,
    messages: &[MessageSpec],
    calls: &[Call],
) -> Workload {
    let mut w = Workload::default();
    let mut next = 0;
    for c in calls {
        for m in &messages[next..c.messages.start] {
            w.message(m.clone(), &[]);
        }
        let transfers: Vec<Transfer> = messages[c.messages.clone()]
            .iter()
            .map(|m| Transfer {
                src: m.src,
                dst: m.dst,
                bytes: m.bytes,
            })
            .chain(c.local.iter().copied())
            .collect();
        let k = Kernel {
            library: &c.library,
            op: c.op,
            transfers: &transfers,
            start: c.start,
            // A network study has no compute for the kernel's SMs to slow.
            gpu_sms: 0,
        };
        launch(&mut w, fabric, params, k, &mut |_| Vec::new());
        next = c.messages.end;
    }
    for m in &messages[next..] {
        w.message(m.clone(), &[]);
    }
    w
}

/// The span of a run's tasks: the earliest start and the latest finish of any message or
/// delay (a kernel's time from its launch to its last flag).
pub fn span(run: &NetRun) -> Option<(Time, Time)> {
    let starts = run
        .messages
        .iter()
        .map(|m| m.start)
        .chain(run.computes.iter().filter_map(|c| c.start));
    let ends = run
        .messages
        .iter()
        .filter_map(|m| m.finish)
        .chain(run.computes.iter().filter_map(|c| c.finish));
    Some((starts.min()?, ends.max()?))
}

/// The shipped presets: (name, TOML text).
const PRESETS: [(&str, &str); 6] = [
    ("ideal", include_str!("../../workloads/comm/ideal.toml")),
    ("nccl", include_str!("../../workloads/comm/nccl.toml")),
    (
        "deepep-normal",
        include_str!("../../workloads/comm/deepep-normal.toml"),
    ),
    (
        "deepep-ll",
        include_str!("../../workloads/comm/deepep-ll.toml"),
    ),
    (
        "nvl-one-sided",
        include_str!("../../workloads/comm/nvl-one-sided.toml"),
    ),
    (
        "stepmesh",
        include_str!("../../workloads/comm/stepmesh.toml"),
    ),
];

/// The names of the shipped presets.
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// A communication library's kernel model. Every cost is per kernel call.
#[derive(Clone, Debug, PartialEq)]
pub struct Library {
    pub name: String,
    /// One line on what it is.
    pub about: String,
    /// Kernel launch on each GPU (host to GPU), before anything else.
    pub launch: Dur,
    /// Start barrier or handshake: a message leaves only after both its ends have paid
    /// launch + barrier (the receiver's buffer is ready).
    pub barrier: Dur,
    /// Completion signal after the last byte (a flag written over NVLink, an RDMA write
    /// with immediate), and the receiver's polling until it sees it.
    pub flag: Dur,
    pub poll: Dur,
    /// SMs the kernel occupies while it runs.
    pub sms: u32,
    /// When it holds them, taking them from the compute it overlaps.
    pub sm_hold: SmHoldMode,
    /// SM-driven NVLink copies, `None` where the fabric's rate is the only limit.
    pub nvlink: Option<NvlinkCopy>,
    /// A per-GPU cap on the payload rate of its scale-out (RDMA) sends, `None`: the NIC's.
    pub rdma_rate: Option<Bandwidth>,
    /// Payload rate of a local copy (HBM read + write) by the kernel, `None`: free.
    pub local_copy: Option<Bandwidth>,
    /// Combine only: rate at which a receiver reads the top-k copies it reduces, `None`:
    /// free.
    pub reduce: Option<Bandwidth>,
    /// How the kernels count a token's copies, where the library fixes it (the default of
    /// `[afd] dedup` under this library).
    pub copies: Option<Copies>,
}

/// When a library's kernel holds its SMs on a GPU.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SmHoldMode {
    /// From its launch to its completion (a persistent kernel that copies and waits).
    Call,
    /// Only while a sender issues its sends (launch + barrier) and while a combine's
    /// receiver reduces what it got; none while data is in flight or flags are awaited
    /// (DeepEP's low-latency kernels with a receive hook).
    Fixed,
}

/// How many copies of a token a library's dispatch sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Copies {
    /// One per destination GPU, whatever number of its experts there.
    PerGpu,
    /// One per (token, expert) pair.
    PerExpert,
}

/// SM-driven NVLink stores: a GPU's NVLink sends under one kernel move at most
/// `min(efficiency x the GPU's NVLink payload rate, send SMs x rate per SM)`.
#[derive(Clone, Debug, PartialEq)]
pub struct NvlinkCopy {
    /// Payload efficiency of SM-issued stores relative to the copy engine the fabric's
    /// NVLink packetization was calibrated on (SM stores carry 128 B per NVLink packet, a
    /// copy engine 256 B).
    pub efficiency: f64,
    /// SMs that issue the stores (a kernel's senders; the others receive or forward) and
    /// the store rate one SM sustains; `None` where no SM bound is known.
    pub sm_bound: Option<(u32, Bandwidth)>,
}

impl Library {
    /// Whether the library adds nothing to plain messages.
    pub fn is_ideal(&self) -> bool {
        self.launch == Dur::ZERO
            && self.barrier == Dur::ZERO
            && self.flag == Dur::ZERO
            && self.poll == Dur::ZERO
            && self.nvlink.is_none()
            && self.rdma_rate.is_none()
            && self.local_copy.is_none()
            && self.reduce.is_none()
    }

    /// The library given `sms` SMs: its sending SMs scale in proportion (at least one).
    pub fn with_sms(mut self, sms: u32) -> Library {
        if let Some((k, r)) = self.nvlink.as_ref().and_then(|n| n.sm_bound) {
            let k = if self.sms == 0 {
                k
            } else {
                ((k as u64 * sms as u64 + self.sms as u64 / 2) / self.sms as u64).max(1) as u32
            };
            self.nvlink.as_mut().expect("has nvlink").sm_bound = Some((k, r));
        }
        self.sms = sms;
        self
    }

    /// The start cost on one GPU: launch + barrier.
    pub fn start_cost(&self) -> Dur {
        self.launch + self.barrier
    }

    /// The end cost on one GPU, before any reduction: flag + poll.
    pub fn end_cost(&self) -> Dur {
        self.flag + self.poll
    }

    /// The preset `name`, or the library file `name` (absolute, or relative to `dir`) when
    /// it is not one. `origin`/`key` name where it was asked for, in errors.
    pub fn load(name: &str, dir: &Path, origin: &str, key: &str) -> Result<Library, InputError> {
        if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) {
            return Library::parse(text, &format!("workloads/comm/{name}.toml"));
        }
        let path = if Path::new(name).is_absolute() {
            Path::new(name).to_path_buf()
        } else {
            dir.join(name)
        };
        if !name.ends_with(".toml") || !path.is_file() {
            return Err(InputError::new(
                origin,
                key,
                format!(
                    "`{name}` is neither a communication library ({}) nor a .toml library file",
                    preset_names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            InputError::new(origin, key, format!("cannot read {}: {e}", path.display()))
        })?;
        Library::parse(&text, &path.display().to_string())
    }

    /// A library from its TOML text; errors name `origin` and the key.
    pub fn parse(text: &str, origin: &str) -> Result<Library, InputError> {
        let raw: RawLibrary = crate::input::parse_toml(text, origin)?;
        let err = |k: &str, m: String| InputError::new(origin, k, m);
        let us = |k: &str, v: Option<f64>| -> Result<Dur, InputError> {
            let v = v.unwrap_or(0.0);
            if !(v.is_finite() && (0.0..=10_000.0).contains(&v)) {
                return Err(err(
                    k,
                    format!("{v} is not allowed: microseconds in 0..=10000"),
                ));
            }
            Ok(Dur::from_ps((v * 1e6).round() as u64))
        };
        let gbytes = |k: &str, v: f64| -> Result<Bandwidth, InputError> {
            if !(v.is_finite() && (0.001..=100_000.0).contains(&v)) {
                return Err(err(
                    k,
                    format!("{v} is not allowed: GB/s in 0.001..=100000"),
                ));
            }
            Bandwidth::from_bps((v * 8e9).round() as u64)
                .ok_or_else(|| err(k, "rounds to zero".into()))
        };
        let f = raw.fixed.unwrap_or_default();
        let sms = raw.sms.unwrap_or(0);
        if sms > 1024 {
            return Err(err("sms", format!("{sms} is not allowed: at most 1024")));
        }
        let nvlink = match raw.nvlink {
            None => None,
            Some(n) => {
                if !(n.efficiency.is_finite() && n.efficiency > 0.0 && n.efficiency <= 1.0) {
                    return Err(err(
                        "nvlink.efficiency",
                        format!("{} is not allowed: a fraction in (0, 1]", n.efficiency),
                    ));
                }
                let sm_bound = match (n.send_sms, n.gbytes_per_s_per_sm) {
                    (None, None) => None,
                    (Some(k), Some(r)) => {
                        if k == 0 || (sms > 0 && k > sms) {
                            return Err(err(
                                "nvlink.send_sms",
                                format!("{k} is not allowed: at least 1 and at most `sms` ({sms})"),
                            ));
                        }
                        Some((k, gbytes("nvlink.gbytes_per_s_per_sm", r)?))
                    }
                    (Some(_), None) => {
                        return Err(err(
                            "nvlink.gbytes_per_s_per_sm",
                            "required with nvlink.send_sms".into(),
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(err(
                            "nvlink.send_sms",
                            "required with nvlink.gbytes_per_s_per_sm".into(),
                        ));
                    }
                };
                Some(NvlinkCopy {
                    efficiency: n.efficiency,
                    sm_bound,
                })
            }
        };
        let rdma_rate = match raw.rdma.and_then(|r| r.gbit_per_s_per_gpu) {
            None => None,
            Some(g) => Some(gbytes("rdma.gbit_per_s_per_gpu", g / 8.0)?),
        };
        let hbm = raw.hbm.unwrap_or_default();
        let copies = match raw.copies.as_deref() {
            None => None,
            Some("gpu") => Some(Copies::PerGpu),
            Some("expert") => Some(Copies::PerExpert),
            Some(other) => {
                return Err(err(
                    "copies",
                    format!("`{other}` is not allowed: gpu or expert"),
                ));
            }
        };
        let sm_hold = match raw.sm_hold.as_deref().unwrap_or("call") {
            "call" => SmHoldMode::Call,
            "fixed" => SmHoldMode::Fixed,
            other => {
                return Err(err(
                    "sm_hold",
                    format!("`{other}` is not allowed: call or fixed"),
                ));
            }
        };
        Ok(Library {
            copies,
            sm_hold,
            name: raw.name,
            about: raw.about.unwrap_or_default(),
            launch: us("fixed.launch_us", f.launch_us)?,
            barrier: us("fixed.barrier_us", f.barrier_us)?,
            flag: us("fixed.flag_us", f.flag_us)?,
            poll: us("fixed.poll_us", f.poll_us)?,
            sms,
            nvlink,
            rdma_rate,
            local_copy: hbm
                .local_copy_gbytes_per_s
                .map(|v| gbytes("hbm.local_copy_gbytes_per_s", v))
                .transpose()?,
            reduce: hbm
                .reduce_gbytes_per_s
                .map(|v| gbytes("hbm.reduce_gbytes_per_s", v))
                .transpose()?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    name: String,
    about: Option<String>,
    copies: Option<String>,
    sms: Option<u32>,
    sm_hold: Option<String>,
    fixed: Option<RawFixed>,
    nvlink: Option<RawNvlink>,
    rdma: Option<RawRdma>,
    hbm: Option<RawHbm>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFixed {
    launch_us: Option<f64>,
    barrier_us: Option<f64>,
    flag_us: Option<f64>,
    poll_us: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNvlink {
    efficiency: f64,
    send_sms: Option<u32>,
    gbytes_per_s_per_sm: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRdma {
    gbit_per_s_per_gpu: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHbm {
    local_copy_gbytes_per_s: Option<f64>,
    reduce_gbytes_per_s: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_only_ideal_is_ideal() {
        for name in preset_names() {
            let lib = Library::load(name, Path::new("."), "test", "comm").unwrap();
            assert_eq!(lib.name, name);
            assert_eq!(lib.is_ideal(), name == "ideal", "{name}");
        }
    }

    const PAIR: &str = "name = \"pair\"\n[fabric]\nfile = \"hgx-h100\"\n[fabric.scale_out]\n\
        topology = \"none\"\n[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 67108864\n";

    fn scenario(extra: &str) -> crate::config::Scenario {
        let text = PAIR.replace(
            "pattern = \"message\"",
            &format!("pattern = \"message\"\n{extra}"),
        );
        crate::config::Scenario::parse(&text, "test.toml", None).unwrap()
    }

    #[test]
    fn ideal_calls_build_the_plain_workload_and_run() {
        let plain = scenario("");
        let ideal = scenario("kernel = \"ideal\"");
        let (a, b) = (plain.traffic_workload(), ideal.traffic_workload());
        assert_eq!(a.messages, b.messages);
        assert!(b.computes.is_empty() && b.limiters().is_empty() && !b.has_dependencies());
        for level in crate::net::Level::ALL {
            let ra = crate::levels::simulate(level, plain.fabric(), plain.net(), &a, &mut |_| {});
            let rb = crate::levels::simulate(level, ideal.fabric(), ideal.net(), &b, &mut |_| {});
            assert_eq!(ra.unwrap().messages, rb.unwrap().messages, "{level:?}");
        }
    }

    /// Two messages from one GPU under one limiter of 100 GB/s: together they move at that
    /// rate at every level (the fabric alone would carry them at ~396 GB/s).
    #[test]
    fn a_shared_limiter_caps_every_level() {
        let s = scenario("");
        let spec = s.messages()[0].clone();
        let mut w = Workload::default();
        let k = w.limiter(Bandwidth::from_bps(800_000_000_000).unwrap());
        for dst in [1, 2] {
            let mut m = spec.clone();
            m.dst = crate::topology::NodeId(dst);
            let crate::net::TaskRef::Message(i) = w.message(m, &[]) else {
                unreachable!()
            };
            w.limit(i, k);
        }
        let at_limit = 2.0 * spec.bytes as f64 / 100e9;
        for level in crate::net::Level::ALL {
            let r = crate::levels::simulate(level, s.fabric(), s.net(), &w, &mut |_| {}).unwrap();
            let end = r.messages.iter().filter_map(|m| m.finish).max().unwrap();
            let t = end.since(Time::ZERO).as_secs_f64();
            assert!(
                (t - at_limit).abs() / at_limit < 0.01,
                "{level:?}: {t} s, the limiter alone gives {at_limit} s"
            );
        }
    }

    const MOE: &str = "name = \"moe\"\n[fabric]\nfile = \"hgx-h800\"\nnodes = 2\n[[traffic]]\n\
        pattern = \"moe-dispatch\"\nkernel = \"deepep-ll\"\ndirection = \"dispatch\"\n\
        router = \"balanced\"\ntokens_per_gpu = 16\nexperts = 32\ntop_k = 4\nhidden = 64\n\
        dtype = \"bf16\"\ndedup = \"expert\"\n";

    #[test]
    fn combine_is_the_reverse_matrix_and_balanced_is_even() {
        let parse = |t: &str| crate::config::Scenario::parse(t, "moe.toml", None).unwrap();
        let d = parse(MOE);
        let c = parse(&MOE.replace("direction = \"dispatch\"", "direction = \"combine\""));
        let pairs = |s: &crate::config::Scenario, rev: bool| {
            let mut v: Vec<_> = s
                .messages()
                .iter()
                .map(|m| {
                    if rev {
                        (m.dst, m.src, m.bytes)
                    } else {
                        (m.src, m.dst, m.bytes)
                    }
                })
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(pairs(&d, false), pairs(&c, true));
        // Balanced: every GPU receives (and holds locally) the same token copies.
        let mut into = std::collections::BTreeMap::new();
        for m in d.messages() {
            *into.entry(m.dst).or_insert(0u64) += m.bytes;
        }
        for l in &d.kernels()[0].local {
            *into.entry(l.dst).or_insert(0u64) += l.bytes;
        }
        let total = 16 * 16 * 4 * 64 * 2;
        assert_eq!(into.len(), 16);
        assert!(into.values().all(|&b| b == total / 16), "{into:?}");
        // The combine's receivers reduce: it takes longer than the dispatch.
        let time = |s: &crate::config::Scenario| {
            let o = crate::run(s, &mut |_| {}).unwrap();
            let (a, b) = span(&o.run).unwrap();
            b.since(a)
        };
        assert!(time(&c) > time(&d));
    }

    #[test]
    fn bad_libraries_are_refused_with_the_key() {
        let e = Library::load("nope", Path::new("."), "s.toml", "afd.comm").unwrap_err();
        assert!(e.to_string().contains("afd.comm") && e.to_string().contains("deepep-ll"));
        let bad =
            "name = \"x\"\n[nvlink]\nefficiency = 1.5\nsend_sms = 4\ngbytes_per_s_per_sm = 10\n";
        let e = Library::parse(bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("nvlink.efficiency"), "{e}");
        let bad = "name = \"x\"\n[fixed]\nlaunch_us = -1\n";
        let e = Library::parse(bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("fixed.launch_us"), "{e}");
        let bad = "name = \"x\"\nlaunch_us = 1\n";
        assert!(Library::parse(bad, "x.toml").is_err());
        let bad = "name = \"x\"\nsm_hold = \"always\"\n";
        let e = Library::parse(bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("sm_hold") && e.contains("call or fixed"), "{e}");
    }
}
