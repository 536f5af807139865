//! Fabric files (`fabrics/*.toml`): as written, and resolved into a [`FabricSpec`] plus the
//! packet-level parameters of switches, NICs and NVLink.

use super::Ctx;
use crate::engine::{Bandwidth, Dur};
use crate::error::InputError;
use crate::net::{
    Buffers, DcqcnParams, EcnParams, GoBackN, PfcParams, Routing, SwitchParams, Transport, Wire,
};
use crate::topology::{FabricSpec, NicSpec, NvlinkSpec, ScaleOutKind, ScaleOutSpec};
use serde::Deserialize;

/// ECN marking when `congestion_control = "dcqcn"` and the switches set no thresholds:
/// the DCQCN paper's switch settings (Zhu et al., "Congestion Control for Large-Scale RDMA
/// Deployments", SIGCOMM 2015: Kmin = 5 KB, Kmax = 200 KB, Pmax = 1 %, on its 40 Gb/s
/// testbed), as bytes. DCQCN cuts its rate only on a CNP, and CNPs answer only marks:
/// without thresholds it would run at line rate while the file says DCQCN. The paper
/// chose them for 40 Gb/s; faster links may want higher ones (`docs/packet.md`, ECN).
pub const DCQCN_DEFAULT_ECN: EcnParams = EcnParams {
    kmin_bytes: 5_000,
    kmax_bytes: 200_000,
    pmax: 0.01,
};

/// Fabric files compiled into the binary, by the name a scenario uses in `fabric.file`.
pub const EMBEDDED_FABRICS: &[(&str, &str)] = &[
    ("hgx-h100", include_str!("../../fabrics/hgx-h100.toml")),
    ("hgx-h200", include_str!("../../fabrics/hgx-h200.toml")),
    ("hgx-h800", include_str!("../../fabrics/hgx-h800.toml")),
    (
        "gb200-nvl72",
        include_str!("../../fabrics/gb200-nvl72.toml"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricFile {
    /// In a scenario: an embedded fabric name or a path; the other keys override it.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Nodes (servers or racks) joined by the scale-out network; default 1.
    #[serde(default)]
    pub nodes: Option<i64>,
    pub gpus_per_node: i64,
    #[serde(default)]
    pub nvlink: Option<NvlinkFile>,
    #[serde(default)]
    pub nic: Option<NicFile>,
    #[serde(default)]
    pub scale_out: Option<ScaleOutFile>,
    #[serde(default)]
    pub switch: Option<SwitchFile>,
    #[serde(default)]
    pub routing: Option<RoutingFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvlinkFile {
    pub links_per_gpu: i64,
    pub switch_chips: i64,
    /// Per link, per direction.
    pub link_rate_gbps: f64,
    /// GPU to NVSwitch, one way.
    pub latency_ns: f64,
    /// Packetization of NVLink transfers: payload per packet and the overhead bytes that
    /// together give the achievable fraction of the line rate.
    #[serde(default)]
    pub mtu_bytes: Option<i64>,
    #[serde(default)]
    pub header_bytes: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicFile {
    #[serde(default)]
    pub per_gpu: Option<i64>,
    pub rate_gbps: f64,
    /// NIC to its switch, one way (NIC pipeline + cable).
    pub latency_ns: f64,
    /// GPU-to-NIC PCIe rate; absent: the NIC is integrated and there is no PCIe hop.
    #[serde(default)]
    pub pcie_gbps: Option<f64>,
    #[serde(default)]
    pub pcie_latency_ns: Option<f64>,
    #[serde(default)]
    pub mtu_bytes: Option<i64>,
    #[serde(default)]
    pub header_bytes: Option<i64>,
    /// none (PFC only) or dcqcn.
    #[serde(default)]
    pub congestion_control: Option<String>,
    /// DCQCN parameters; each key absent keeps the default (`DcqcnParams::for_line_rate`).
    #[serde(default)]
    pub dcqcn: Option<DcqcnFile>,
    /// Loss recovery through lossy switches: go-back-n (default) or none.
    #[serde(default)]
    pub retransmission: Option<String>,
    /// Go-back-N retransmission timeout (the QP's local ACK timeout); default 67108.864.
    #[serde(default)]
    pub rto_us: Option<f64>,
    /// Go-back-N: least time between two NAKs for the same expected PSN; default 500.
    #[serde(default)]
    pub nak_interval_us: Option<f64>,
    /// Go-back-N: the QP's retry count, 0..=7 (timeouts in a row without progress before
    /// the QP fails and its message is lost); default unlimited.
    #[serde(default)]
    pub retry_cnt: Option<i64>,
}

/// Resolves the NIC's loss recovery (`net::Transport`).
fn resolve_transport(cx: &Ctx, n: Option<&NicFile>) -> Result<Transport, InputError> {
    let key = |k: &str| format!("fabric.nic.{k}");
    let (kind, rto, nak, retry) = match n {
        None => (None, None, None, None),
        Some(n) => (
            n.retransmission.as_deref(),
            n.rto_us,
            n.nak_interval_us,
            n.retry_cnt,
        ),
    };
    match kind {
        None | Some("go-back-n") => {
            let mut g = GoBackN::default();
            if let Some(t) = rto {
                g.rto = cx.dur_ns(&key("rto_us"), t * 1e3)?;
                if g.rto == Dur::ZERO {
                    return Err(cx.err(key("rto_us"), "must be > 0"));
                }
            }
            if let Some(t) = nak {
                g.nak_interval = cx.dur_ns(&key("nak_interval_us"), t * 1e3)?;
            }
            if let Some(r) = retry {
                if !(0..=7).contains(&r) {
                    return Err(cx.err(
                        key("retry_cnt"),
                        format!("{r} is not a retry count: 0 to 7 (InfiniBand's 3-bit field)"),
                    ));
                }
                g.retry_cnt = Some(r as u32);
            }
            Ok(Transport::GoBackN(g))
        }
        Some("none") => {
            if rto.is_some() || nak.is_some() || retry.is_some() {
                let k = if rto.is_some() {
                    "rto_us"
                } else if nak.is_some() {
                    "nak_interval_us"
                } else {
                    "retry_cnt"
                };
                return Err(cx.err(key(k), "needs retransmission = \"go-back-n\""));
            }
            Ok(Transport::Unreliable)
        }
        Some(other) => Err(cx.err(
            key("retransmission"),
            format!("`{other}` is not a retransmission scheme; allowed: go-back-n, none"),
        )),
    }
}

/// DCQCN reaction- and notification-point parameters (see `net::DcqcnParams`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcqcnFile {
    #[serde(default)]
    pub g: Option<f64>,
    #[serde(default)]
    pub timer_us: Option<f64>,
    #[serde(default)]
    pub byte_counter_kib: Option<f64>,
    #[serde(default)]
    pub fast_recovery_steps: Option<i64>,
    #[serde(default)]
    pub rate_ai_mbps: Option<f64>,
    #[serde(default)]
    pub rate_hai_mbps: Option<f64>,
    #[serde(default)]
    pub min_rate_mbps: Option<f64>,
    #[serde(default)]
    pub cnp_interval_us: Option<f64>,
}

/// Resolves DCQCN parameters: the defaults for `line`, with each given key overriding.
pub(super) fn resolve_dcqcn(
    cx: &Ctx,
    d: Option<&DcqcnFile>,
    line: Bandwidth,
) -> Result<DcqcnParams, InputError> {
    let mut p = DcqcnParams::for_line_rate(line);
    let Some(d) = d else { return Ok(p) };
    let key = |k: &str| format!("fabric.nic.dcqcn.{k}");
    if let Some(g) = d.g {
        if !(g.is_finite() && g > 0.0 && g < 1.0) {
            return Err(cx.err(key("g"), format!("{g} is not allowed: 0 < g < 1")));
        }
        p.g = g;
    }
    if let Some(t) = d.timer_us {
        p.timer = cx.dur_ns(&key("timer_us"), t * 1e3)?;
        if p.timer == Dur::ZERO {
            return Err(cx.err(key("timer_us"), "must be > 0"));
        }
    }
    if let Some(b) = d.byte_counter_kib {
        p.byte_counter_bytes = kib(cx, &key("byte_counter_kib"), b)?;
    }
    if let Some(f) = d.fast_recovery_steps {
        p.fast_recovery_steps = cx.int_in(&key("fast_recovery_steps"), f, 0, 1000)? as u32;
    }
    if let Some(r) = d.rate_ai_mbps {
        p.rate_ai = cx.rate(&key("rate_ai_mbps"), r / 1e3)?;
    }
    if let Some(r) = d.rate_hai_mbps {
        p.rate_hai = cx.rate(&key("rate_hai_mbps"), r / 1e3)?;
    }
    if let Some(r) = d.min_rate_mbps {
        p.min_rate = cx.rate(&key("min_rate_mbps"), r / 1e3)?;
    }
    if let Some(t) = d.cnp_interval_us {
        p.cnp_interval = cx.dur_ns(&key("cnp_interval_us"), t * 1e3)?;
    }
    Ok(p)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleOutFile {
    /// none, single-switch, leaf-spine, rail-leaf-spine, fat-tree.
    pub topology: String,
    #[serde(default)]
    pub radix: Option<i64>,
    #[serde(default)]
    pub oversubscription: Option<f64>,
    /// Switch-to-switch links; default: the NIC rate.
    #[serde(default)]
    pub link_rate_gbps: Option<f64>,
    #[serde(default)]
    pub latency_ns: Option<f64>,
    #[serde(default)]
    pub fat_tree_k: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchFile {
    #[serde(default)]
    pub latency_ns: Option<f64>,
    /// Egress buffer per port; absent: unbounded.
    #[serde(default)]
    pub buffer_kib: Option<f64>,
    /// lossless (PFC) or lossy (drop at a full buffer).
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub pfc_xoff_kib: Option<f64>,
    #[serde(default)]
    pub pfc_xon_kib: Option<f64>,
    #[serde(default)]
    pub ecn_kmin_kib: Option<f64>,
    #[serde(default)]
    pub ecn_kmax_kib: Option<f64>,
    #[serde(default)]
    pub ecn_pmax: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// ecmp (per-flow hash), spray (random per packet), spray-rr (per-flow round-robin per
    /// packet), adaptive (least-occupied egress).
    #[serde(default)]
    pub policy: Option<String>,
    /// NCCL's PXN on rail-optimized fabrics (`topology::FabricSpec::pxn`); default false.
    #[serde(default)]
    pub pxn: Option<bool>,
    /// PXN: bytes a relay GPU may hold for relaying (`NetParams::pxn_fifo_bytes`), KiB;
    /// default unbounded.
    #[serde(default)]
    pub pxn_fifo_kib: Option<f64>,
}

/// A resolved fabric: the topology spec and the packet-level parameters.
#[derive(Clone, Debug)]
pub struct ResolvedFabric {
    pub name: String,
    pub spec: FabricSpec,
    pub nic_wire: Wire,
    pub nvlink_wire: Wire,
    pub switch: SwitchParams,
    pub routing: Routing,
    pub transport: Transport,
    pub pxn_fifo_bytes: Option<u64>,
}

/// Looks up an embedded fabric by name.
pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED_FABRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

pub(super) fn resolve(cx: &Ctx, f: &FabricFile) -> Result<ResolvedFabric, InputError> {
    let key = |k: &str| format!("fabric.{k}");
    let nodes = cx.int_in(&key("nodes"), f.nodes.unwrap_or(1), 1, 65_536)? as u32;
    let gpus_per_node = cx.int_in(&key("gpus_per_node"), f.gpus_per_node, 1, 1024)? as u32;

    let mut nvlink_wire = Wire {
        mtu_bytes: 4096,
        header_bytes: 0,
    };
    let nvlink = match &f.nvlink {
        None => None,
        Some(n) => {
            nvlink_wire = wire(cx, "fabric.nvlink", n.mtu_bytes, n.header_bytes, 0)?;
            Some(NvlinkSpec {
                links_per_gpu: cx.int_in(&key("nvlink.links_per_gpu"), n.links_per_gpu, 1, 64)?
                    as u32,
                switch_chips: cx.int_in(&key("nvlink.switch_chips"), n.switch_chips, 1, 64)? as u32,
                link_rate: cx.rate(&key("nvlink.link_rate_gbps"), n.link_rate_gbps)?,
                latency: cx.dur_ns(&key("nvlink.latency_ns"), n.latency_ns)?,
            })
        }
    };

    let mut nic_wire = Wire {
        mtu_bytes: 4096,
        header_bytes: 64,
    };
    let nic = match &f.nic {
        None => None,
        Some(n) => {
            nic_wire = wire(cx, "fabric.nic", n.mtu_bytes, n.header_bytes, 64)?;
            let pcie = match n.pcie_gbps {
                None => {
                    if n.pcie_latency_ns.is_some() {
                        return Err(cx.err(
                            key("nic.pcie_latency_ns"),
                            "needs nic.pcie_gbps (without it the NIC is integrated)",
                        ));
                    }
                    None
                }
                Some(g) => Some((
                    cx.rate(&key("nic.pcie_gbps"), g)?,
                    cx.dur_ns(
                        &key("nic.pcie_latency_ns"),
                        n.pcie_latency_ns.unwrap_or(0.0),
                    )?,
                )),
            };
            Some(NicSpec {
                per_gpu: cx.int_in(&key("nic.per_gpu"), n.per_gpu.unwrap_or(1), 1, 16)? as u32,
                rate: cx.rate(&key("nic.rate_gbps"), n.rate_gbps)?,
                latency: cx.dur_ns(&key("nic.latency_ns"), n.latency_ns)?,
                pcie,
            })
        }
    };

    let scale_out = match &f.scale_out {
        None => ScaleOutSpec {
            kind: ScaleOutKind::None,
            radix: 64,
            oversubscription: 1.0,
            link_rate: Bandwidth::from_gbps(400).expect("nonzero"),
            latency: Dur::ZERO,
            fat_tree_k: 0,
        },
        Some(s) => {
            let kind = match s.topology.as_str() {
                "none" => ScaleOutKind::None,
                "single-switch" => ScaleOutKind::SingleSwitch,
                "leaf-spine" => ScaleOutKind::LeafSpine,
                "rail-leaf-spine" => ScaleOutKind::RailLeafSpine,
                "fat-tree" => ScaleOutKind::FatTree,
                other => {
                    return Err(cx.err(
                        key("scale_out.topology"),
                        format!(
                            "`{other}` is not a topology; allowed: none, single-switch, leaf-spine, rail-leaf-spine, fat-tree"
                        ),
                    ));
                }
            };
            let o = s.oversubscription.unwrap_or(1.0);
            if !(o.is_finite() && (1.0..=16.0).contains(&o)) {
                return Err(cx.err(
                    key("scale_out.oversubscription"),
                    format!("{o} is not allowed: downlinks per uplink, 1.0 ..= 16.0"),
                ));
            }
            let nic_rate = nic.as_ref().map(|n| n.rate);
            let link_rate = match (s.link_rate_gbps, nic_rate) {
                (Some(g), _) => cx.rate(&key("scale_out.link_rate_gbps"), g)?,
                (None, Some(r)) => r,
                (None, None) => {
                    return Err(cx.err(key("nic"), "a scale-out network needs a [nic] table"));
                }
            };
            ScaleOutSpec {
                kind,
                radix: cx.int_in(&key("scale_out.radix"), s.radix.unwrap_or(64), 2, 1024)? as u32,
                oversubscription: o,
                link_rate,
                latency: cx.dur_ns(&key("scale_out.latency_ns"), s.latency_ns.unwrap_or(0.0))?,
                fat_tree_k: cx.int_in(
                    &key("scale_out.fat_tree_k"),
                    s.fat_tree_k.unwrap_or(0),
                    0,
                    128,
                )? as u32,
            }
        }
    };

    let switch = resolve_switch(cx, f.switch.as_ref(), &nic_wire)?;
    let routing = match f.routing.as_ref().and_then(|r| r.policy.as_deref()) {
        None | Some("ecmp") => Routing::Ecmp,
        Some("spray") => Routing::Spray,
        Some("spray-rr") => Routing::SprayRoundRobin,
        Some("adaptive") => Routing::Adaptive,
        Some(other) => {
            return Err(cx.err(
                key("routing.policy"),
                format!("`{other}` is not a policy; allowed: ecmp, spray, spray-rr, adaptive"),
            ));
        }
    };
    let pxn = f.routing.as_ref().and_then(|r| r.pxn).unwrap_or(false);
    let pxn_fifo_bytes = match f.routing.as_ref().and_then(|r| r.pxn_fifo_kib) {
        None => None,
        Some(v) => {
            let k = key("routing.pxn_fifo_kib");
            if !pxn {
                return Err(cx.err(k, "needs pxn = true"));
            }
            let b = kib(cx, &k, v)?;
            // A relay must hold at least one packet of each of two senders, or a source
            // could wait on space that no packet in flight will ever free.
            let least = 2 * (nic_wire.mtu_bytes + nic_wire.header_bytes) as u64;
            if b < least {
                return Err(cx.err(
                    k,
                    format!(
                        "{v} KiB is less than two NIC packets ({} KiB); allowed: >= {}",
                        least as f64 / 1024.0,
                        least as f64 / 1024.0
                    ),
                ));
            }
            Some(b)
        }
    };
    Ok(ResolvedFabric {
        name: f.name.clone().unwrap_or_else(|| "fabric".to_string()),
        spec: FabricSpec {
            nodes,
            gpus_per_node,
            nvlink,
            nic,
            scale_out,
            pxn,
        },
        nic_wire,
        nvlink_wire,
        switch,
        routing,
        transport: resolve_transport(cx, f.nic.as_ref())?,
        pxn_fifo_bytes,
    })
}

fn wire(
    cx: &Ctx,
    at: &str,
    mtu: Option<i64>,
    header: Option<i64>,
    default_header: i64,
) -> Result<Wire, InputError> {
    Ok(Wire {
        mtu_bytes: cx.int_in(&format!("{at}.mtu_bytes"), mtu.unwrap_or(4096), 64, 65_536)? as u32,
        header_bytes: cx.int_in(
            &format!("{at}.header_bytes"),
            header.unwrap_or(default_header),
            0,
            4096,
        )? as u32,
    })
}

fn kib(cx: &Ctx, key: &str, v: f64) -> Result<u64, InputError> {
    if !(v.is_finite() && v > 0.0 && v <= 1024.0 * 1024.0) {
        return Err(cx.err(
            key,
            format!("{v} is not allowed: KiB must be > 0 and <= 1048576"),
        ));
    }
    Ok((v * 1024.0).round() as u64)
}

fn resolve_switch(
    cx: &Ctx,
    s: Option<&SwitchFile>,
    nic_wire: &Wire,
) -> Result<SwitchParams, InputError> {
    let default = SwitchFile {
        latency_ns: None,
        buffer_kib: None,
        mode: None,
        pfc_xoff_kib: None,
        pfc_xon_kib: None,
        ecn_kmin_kib: None,
        ecn_kmax_kib: None,
        ecn_pmax: None,
    };
    let s = s.unwrap_or(&default);
    let latency = cx.dur_ns("fabric.switch.latency_ns", s.latency_ns.unwrap_or(0.0))?;
    let packet_bytes = (nic_wire.mtu_bytes + nic_wire.header_bytes) as u64;
    let buffer_bytes = match s.buffer_kib {
        None => None,
        Some(v) => {
            let b = kib(cx, "fabric.switch.buffer_kib", v)?;
            if b < packet_bytes {
                return Err(cx.err(
                    "fabric.switch.buffer_kib",
                    format!("{v} KiB is smaller than one packet ({packet_bytes} B)"),
                ));
            }
            Some(b)
        }
    };
    let lossless = match s.mode.as_deref() {
        None | Some("lossless") => true,
        Some("lossy") => false,
        Some(other) => {
            return Err(cx.err(
                "fabric.switch.mode",
                format!("`{other}` is not a mode; allowed: lossless, lossy"),
            ));
        }
    };
    // A check across keys names the key that was set (the one a scenario's override
    // adds, say), so that the file holding it is the one blamed.
    let pfc = match (s.pfc_xoff_kib, s.pfc_xon_kib) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(cx.err(
                "fabric.switch.pfc_xoff_kib",
                "needs pfc_xon_kib too: PFC needs both pfc_xoff_kib and pfc_xon_kib",
            ));
        }
        (None, Some(_)) => {
            return Err(cx.err(
                "fabric.switch.pfc_xon_kib",
                "needs pfc_xoff_kib too: PFC needs both pfc_xoff_kib and pfc_xon_kib",
            ));
        }
        (Some(off), Some(on)) => {
            if !lossless {
                return Err(cx.err(
                    "fabric.switch.mode",
                    "PFC thresholds need mode = \"lossless\"",
                ));
            }
            let xoff = kib(cx, "fabric.switch.pfc_xoff_kib", off)?;
            let xon = kib(cx, "fabric.switch.pfc_xon_kib", on)?;
            if xon >= xoff {
                return Err(cx.err(
                    "fabric.switch.pfc_xon_kib",
                    format!("{on} KiB must be below pfc_xoff_kib ({off} KiB)"),
                ));
            }
            Some(PfcParams {
                xoff_bytes: xoff,
                xon_bytes: xon,
            })
        }
    };
    if !lossless && buffer_bytes.is_none() {
        return Err(cx.err(
            "fabric.switch.mode",
            "mode = \"lossy\" drops at a full buffer and needs a finite buffer_kib",
        ));
    }
    if lossless && buffer_bytes.is_some() && pfc.is_none() {
        return Err(cx.err(
            "fabric.switch.buffer_kib",
            "a finite buffer in lossless mode needs PFC thresholds (pfc_xoff_kib, pfc_xon_kib)",
        ));
    }
    if let (Some(p), Some(b)) = (&pfc, buffer_bytes)
        && p.xoff_bytes >= b
    {
        return Err(cx.err(
            "fabric.switch.pfc_xoff_kib",
            format!(
                "XOFF ({} B) must be below buffer_kib ({b} B), leaving headroom",
                p.xoff_bytes
            ),
        ));
    }
    let ecn = match (s.ecn_kmin_kib, s.ecn_kmax_kib) {
        (None, None) => {
            if s.ecn_pmax.is_some() {
                return Err(cx.err(
                    "fabric.switch.ecn_pmax",
                    "needs ecn_kmin_kib and ecn_kmax_kib",
                ));
            }
            None
        }
        (Some(_), None) => {
            return Err(cx.err(
                "fabric.switch.ecn_kmin_kib",
                "needs ecn_kmax_kib too: ECN needs both ecn_kmin_kib and ecn_kmax_kib",
            ));
        }
        (None, Some(_)) => {
            return Err(cx.err(
                "fabric.switch.ecn_kmax_kib",
                "needs ecn_kmin_kib too: ECN needs both ecn_kmin_kib and ecn_kmax_kib",
            ));
        }
        (Some(lo), Some(hi)) => {
            let kmin = kib(cx, "fabric.switch.ecn_kmin_kib", lo)?;
            let kmax = kib(cx, "fabric.switch.ecn_kmax_kib", hi)?;
            if kmax < kmin {
                return Err(cx.err(
                    "fabric.switch.ecn_kmax_kib",
                    format!("{hi} KiB must be at least ecn_kmin_kib ({lo} KiB)"),
                ));
            }
            let pmax = s.ecn_pmax.unwrap_or(0.2);
            if !(pmax.is_finite() && pmax > 0.0 && pmax <= 1.0) {
                return Err(cx.err(
                    "fabric.switch.ecn_pmax",
                    format!("{pmax} is not allowed: 0 < pmax <= 1"),
                ));
            }
            Some(EcnParams {
                kmin_bytes: kmin,
                kmax_bytes: kmax,
                pmax,
            })
        }
    };
    Ok(SwitchParams {
        latency,
        buffers: match (lossless, pfc) {
            (true, None) => Buffers::Unbounded,
            (true, Some(pfc)) => Buffers::Lossless {
                pfc,
                ingress_bytes: buffer_bytes,
            },
            (false, _) => Buffers::Lossy {
                egress_bytes: buffer_bytes.expect("checked above"),
            },
        },
        ecn,
    })
}
