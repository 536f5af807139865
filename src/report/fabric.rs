//! `afdsim fabric show`: what a fabric file resolves to.

use crate::config::ResolvedFabric;
use crate::net::{Buffers, CongestionControl};
use crate::topology::{Fabric, LinkClass, NodeKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Serialize)]
pub struct LinkClassSummary {
    /// Unidirectional links.
    pub links: u64,
    pub rate_gbps: f64,
    pub latency_ns: f64,
}

#[derive(Serialize)]
pub struct FabricSummary {
    pub name: String,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub gpus: u64,
    pub nics: u64,
    pub nvswitch_chips: u64,
    pub switches: u64,
    /// Scale-out tiers bottom up: name -> switches.
    pub tiers: Vec<(String, u32)>,
    pub scale_out: &'static str,
    pub links: BTreeMap<&'static str, LinkClassSummary>,
    /// NVLink line rate per GPU, one direction, GB/s (1e9 B/s).
    pub nvlink_per_gpu_gbytes_per_s: f64,
    /// Scale-out bisection, one direction, GB/s.
    pub scale_out_bisection_gbytes_per_s: f64,
    pub routing: &'static str,
    /// NCCL's PXN: cross-rail traffic first moves over NVLink to the GPU on the destination's
    /// rail.
    pub pxn: bool,
    pub buffers: String,
    pub ecn: String,
    pub congestion_control: &'static str,
    /// Runs of destination GPUs with the same next hops, over all nodes, and the bytes the
    /// next-hop table holds (`topology::Topology`).
    pub next_hop_runs: u64,
    pub next_hop_table_bytes: u64,
}

pub fn summarize(rf: &ResolvedFabric, f: &Fabric, cc: CongestionControl) -> FabricSummary {
    let t = &f.topology;
    let mut links = BTreeMap::new();
    for class in LinkClass::ALL {
        let of: Vec<_> = t.links().iter().filter(|l| l.class == class).collect();
        if let Some(first) = of.first() {
            links.insert(
                class.as_str(),
                LinkClassSummary {
                    links: of.len() as u64,
                    rate_gbps: first.rate.gbps_f64(),
                    latency_ns: first.latency.as_ns_f64(),
                },
            );
        }
    }
    let sw = &rf.switch;
    FabricSummary {
        name: rf.name.clone(),
        nodes: rf.spec.nodes,
        gpus_per_node: rf.spec.gpus_per_node,
        gpus: t.gpus() as u64,
        nics: t.count(NodeKind::Nic) as u64,
        nvswitch_chips: t.count(NodeKind::NvSwitch) as u64,
        switches: t.count(NodeKind::Switch) as u64,
        tiers: f
            .tiers
            .iter()
            .map(|t| (t.name.to_string(), t.switches))
            .collect(),
        scale_out: rf.spec.scale_out.kind.as_str(),
        links,
        nvlink_per_gpu_gbytes_per_s: f.nvlink_per_gpu_bps() as f64 / 8e9,
        scale_out_bisection_gbytes_per_s: f.scale_out_bisection_bps() as f64 / 8e9,
        routing: rf.routing.as_str(),
        pxn: rf.spec.pxn,
        buffers: match sw.buffers {
            Buffers::Unbounded => "unbounded".to_string(),
            Buffers::Lossless { pfc, ingress_bytes } => format!(
                "lossless, PFC XOFF {} KiB / XON {} KiB, ingress buffer {}",
                pfc.xoff_bytes as f64 / 1024.0,
                pfc.xon_bytes as f64 / 1024.0,
                ingress_bytes.map_or("unbounded".to_string(), |b| format!(
                    "{} KiB",
                    b as f64 / 1024.0
                ))
            ),
            Buffers::Lossy { egress_bytes } => {
                format!(
                    "lossy, {} KiB per egress port",
                    egress_bytes as f64 / 1024.0
                )
            }
        },
        ecn: match &sw.ecn {
            None => "off".to_string(),
            Some(e) => format!(
                "Kmin {} KiB, Kmax {} KiB, Pmax {}",
                e.kmin_bytes as f64 / 1024.0,
                e.kmax_bytes as f64 / 1024.0,
                e.pmax
            ),
        },
        congestion_control: match cc {
            CongestionControl::None => "none",
            CongestionControl::Dcqcn(_) => "dcqcn",
        },
        next_hop_runs: t.next_hop_runs() as u64,
        next_hop_table_bytes: t.next_hop_table_bytes(),
    }
}

impl FabricSummary {
    pub fn write_human(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "fabric {}", self.name)?;
        writeln!(
            w,
            "  {} nodes x {} GPUs = {} GPUs; {} NICs; {} NVSwitch chips; {} switches",
            self.nodes,
            self.gpus_per_node,
            self.gpus,
            self.nics,
            self.nvswitch_chips,
            self.switches
        )?;
        let tiers: Vec<String> = self.tiers.iter().map(|(n, c)| format!("{c} {n}")).collect();
        writeln!(w, "  scale-out: {} ({})", self.scale_out, tiers.join(", "))?;
        for (class, l) in &self.links {
            writeln!(
                w,
                "  {class:<7} {:>6} links  {:>7} Gb/s  {:>6} ns",
                l.links, l.rate_gbps, l.latency_ns
            )?;
        }
        writeln!(
            w,
            "  NVLink per GPU: {:.1} GB/s per direction",
            self.nvlink_per_gpu_gbytes_per_s
        )?;
        writeln!(
            w,
            "  scale-out bisection: {:.1} GB/s per direction",
            self.scale_out_bisection_gbytes_per_s
        )?;
        writeln!(
            w,
            "  routing: {}{}",
            self.routing,
            if self.pxn {
                ", PXN (NVLink to the destination's rail first)"
            } else {
                ""
            }
        )?;
        writeln!(w, "  switch buffers: {}", self.buffers)?;
        writeln!(w, "  ECN: {}", self.ecn)?;
        writeln!(w, "  congestion control: {}", self.congestion_control)?;
        writeln!(
            w,
            "  next-hop table: {} runs, {:.1} MB",
            self.next_hop_runs,
            self.next_hop_table_bytes as f64 / 1e6
        )
    }
}
