//! Topology builders: scale-up domains (NVLink), NICs, and scale-out networks.
//!
//! A fabric is `nodes` identical nodes (an HGX server, an NVL72 rack, or a lone GPU) of
//! `gpus_per_node` GPUs, each node one NVLink domain when it has one, joined by one
//! scale-out network. Node ids: GPUs first (node-major), then NICs, then NVSwitch chips,
//! then scale-out switches (leaves before spines; edge, aggregation, core for fat trees).

use super::graph::{Link, LinkClass, NodeId, NodeKind, Topology, TopologyError};
use crate::engine::{Bandwidth, Dur};

/// An NVLink scale-up domain: every GPU of a node spreads `links_per_gpu` links over
/// `switch_chips` NVSwitch chips (link i goes to chip i mod chips).
#[derive(Clone, Debug, PartialEq)]
pub struct NvlinkSpec {
    pub links_per_gpu: u32,
    pub switch_chips: u32,
    pub link_rate: Bandwidth,
    pub latency: Dur,
}

/// The NICs of each GPU. Without `pcie`, the NIC is integrated: the GPU itself has the
/// access link (no PCIe hop).
#[derive(Clone, Debug, PartialEq)]
pub struct NicSpec {
    pub per_gpu: u32,
    pub rate: Bandwidth,
    pub latency: Dur,
    pub pcie: Option<(Bandwidth, Dur)>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScaleOutKind {
    /// No scale-out network: one node only.
    None,
    /// Every NIC on one switch.
    SingleSwitch,
    /// Two tiers; NICs fill leaves in order.
    LeafSpine,
    /// Two tiers; NIC r of every node goes to a leaf of rail r.
    RailLeafSpine,
    /// Three-tier k-ary fat tree (k pods; k/2 edge and k/2 aggregation switches per pod;
    /// (k/2)^2 core switches; k/2 hosts per edge switch).
    FatTree,
}

impl ScaleOutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleOutKind::None => "none",
            ScaleOutKind::SingleSwitch => "single-switch",
            ScaleOutKind::LeafSpine => "leaf-spine",
            ScaleOutKind::RailLeafSpine => "rail-leaf-spine",
            ScaleOutKind::FatTree => "fat-tree",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScaleOutSpec {
    pub kind: ScaleOutKind,
    /// Ports per switch.
    pub radix: u32,
    /// Leaf downlinks : uplinks (1.0 = non-blocking).
    pub oversubscription: f64,
    pub link_rate: Bandwidth,
    pub latency: Dur,
    /// Fat-tree arity; 0 = the smallest even k that holds every NIC.
    pub fat_tree_k: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FabricSpec {
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub nvlink: Option<NvlinkSpec>,
    pub nic: Option<NicSpec>,
    pub scale_out: ScaleOutSpec,
    /// PXN (NCCL's "PCI x NVLink"): on a rail-optimized fabric, a GPU's traffic to another
    /// node's GPU on a different rail first crosses NVLink to the GPU of its own node on the
    /// destination's rail, which sends it through its own NIC: the transfer stays on one
    /// rail ([`Fabric::relay`]).
    pub pxn: bool,
}

/// Why a fabric cannot be built; `key` names the fabric key at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildError {
    pub key: &'static str,
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> BuildError {
    BuildError {
        key,
        message: message.into(),
    }
}

/// A built fabric: the graph plus what a user wants to see of it.
#[derive(Clone, Debug)]
pub struct Fabric {
    pub spec: FabricSpec,
    pub topology: Topology,
    /// NVLink domain of each GPU (its node index); `None` without NVLink.
    domain_of_gpu: Vec<Option<u32>>,
    /// Scale-out tiers, bottom up: (name, switches, capacity up from the tier below, bit/s).
    pub tiers: Vec<Tier>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    pub name: &'static str,
    pub switches: u32,
    /// Total rate of the links that enter this tier from below (one direction), bit/s.
    pub capacity_from_below_bps: u128,
}

impl Fabric {
    /// A fabric from a hand-built graph (library users, tests): every GPU its own node, no
    /// NVLink domain, no scale-out tiers to report.
    pub fn from_topology(topology: Topology) -> Fabric {
        let gpus = topology.gpus();
        Fabric {
            spec: FabricSpec {
                nodes: gpus,
                gpus_per_node: 1,
                nvlink: None,
                nic: None,
                scale_out: ScaleOutSpec {
                    kind: ScaleOutKind::None,
                    radix: 0,
                    oversubscription: 1.0,
                    link_rate: topology
                        .links()
                        .first()
                        .map_or(Bandwidth::from_gbps(1).expect("nonzero"), |l| l.rate),
                    latency: Dur::ZERO,
                    fat_tree_k: 0,
                },
                pxn: false,
            },
            domain_of_gpu: vec![None; gpus as usize],
            tiers: Vec::new(),
            topology,
        }
    }

    /// The GPU that relays a transfer from `src` to `dst` under PXN: the GPU of `src`'s
    /// node with `dst`'s index in its node (so on `dst`'s rail), when that is neither `src`
    /// nor in `dst`'s NVLink domain. `None` without PXN or when the route is direct. Every
    /// level routes such a transfer `src` -> relay over NVLink, then relay -> `dst` over
    /// the relay's NIC.
    pub fn relay(&self, src: NodeId, dst: NodeId) -> Option<NodeId> {
        if !self.spec.pxn || self.same_domain(src, dst) {
            return None;
        }
        let per_node = self.spec.gpus_per_node;
        let relay = NodeId(src.0 - src.0 % per_node + dst.0 % per_node);
        (relay != src).then_some(relay)
    }

    /// Whether two GPUs share an NVLink domain.
    pub fn same_domain(&self, a: NodeId, b: NodeId) -> bool {
        match (
            self.domain_of_gpu[a.0 as usize],
            self.domain_of_gpu[b.0 as usize],
        ) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// Bisection bandwidth of the scale-out network, bit/s one direction: half the smallest
    /// tier capacity (for these symmetric Clos networks, the worst even cut crosses half of
    /// each tier's links).
    pub fn scale_out_bisection_bps(&self) -> u128 {
        self.tiers
            .iter()
            .map(|t| t.capacity_from_below_bps)
            .min()
            .unwrap_or(0)
            / 2
    }

    /// NVLink bandwidth per GPU, one direction, bit/s (0 without NVLink).
    pub fn nvlink_per_gpu_bps(&self) -> u128 {
        self.spec
            .nvlink
            .as_ref()
            .map_or(0, |n| n.links_per_gpu as u128 * n.link_rate.bps() as u128)
    }
}

struct Builder {
    kinds: Vec<NodeKind>,
    links: Vec<Link>,
    /// Only count links (for [`size`]): a 65,536-GPU fabric has millions of them.
    count_only: bool,
    link_count: u64,
}

impl Builder {
    fn add(&mut self, kind: NodeKind, count: u32) -> u32 {
        let first = self.kinds.len() as u32;
        self.kinds.extend(std::iter::repeat_n(kind, count as usize));
        first
    }
    fn cable(&mut self, a: u32, b: u32, rate: Bandwidth, latency: Dur, class: LinkClass) {
        self.link_count += 2;
        if self.count_only {
            return;
        }
        for (from, to) in [(a, b), (b, a)] {
            self.links.push(Link {
                from: NodeId(from),
                to: NodeId(to),
                rate,
                latency,
                class,
            });
        }
    }
}

/// Nodes (GPUs, NICs, NVSwitch chips, switches) and unidirectional links of a fabric.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GraphSize {
    pub gpus: u64,
    pub nodes: u64,
    pub links: u64,
}

/// The size of the fabric `spec` describes, without building it: no links are stored and
/// no routes computed, so it costs a byte per node. The memory check
/// (`crate::config::memory`) needs it before [`build`] allocates a next-hop table of nodes x GPUs.
pub fn size(spec: &FabricSpec) -> Result<GraphSize, BuildError> {
    let (b, _, _) = graph(spec, true)?;
    Ok(GraphSize {
        gpus: spec.nodes as u64 * spec.gpus_per_node as u64,
        nodes: b.kinds.len() as u64,
        links: b.link_count,
    })
}

/// Builds the fabric that `spec` describes.
pub fn build(spec: &FabricSpec) -> Result<Fabric, BuildError> {
    let (b, domain_of_gpu, tiers) = graph(spec, false)?;
    let topology = Topology::new(b.kinds, b.links).map_err(|e| match e {
        TopologyError::Unreachable { .. } => err("scale_out.topology", e.to_string()),
        other => err("", format!("internal topology error: {other}")),
    })?;
    Ok(Fabric {
        spec: spec.clone(),
        topology,
        domain_of_gpu,
        tiers,
    })
}

/// The nodes and links of the fabric (links only counted with `count_only`), each GPU's
/// NVLink domain, and the scale-out tiers.
#[allow(clippy::type_complexity)]
fn graph(
    spec: &FabricSpec,
    count_only: bool,
) -> Result<(Builder, Vec<Option<u32>>, Vec<Tier>), BuildError> {
    let gpus = spec
        .nodes
        .checked_mul(spec.gpus_per_node)
        .filter(|&g| (2..=65_536).contains(&g))
        .ok_or_else(|| err("nodes", "nodes x gpus_per_node must be between 2 and 65536"))?;
    if spec.pxn && (spec.scale_out.kind != ScaleOutKind::RailLeafSpine || spec.nvlink.is_none()) {
        return Err(err(
            "routing.pxn",
            "PXN relays over NVLink onto the destination's rail: it needs [nvlink] and \
             scale_out.topology = \"rail-leaf-spine\"",
        ));
    }
    let mut b = Builder {
        kinds: Vec::new(),
        links: Vec::new(),
        count_only,
        link_count: 0,
    };
    b.add(NodeKind::Gpu, gpus);

    // NICs: the node that owns each access port, in (node, gpu, nic) order.
    let mut ports: Vec<u32> = Vec::new();
    let so = &spec.scale_out;
    if so.kind != ScaleOutKind::None {
        let nic = spec
            .nic
            .as_ref()
            .ok_or_else(|| err("nic", "a scale-out network needs a [nic] table"))?;
        let nics = gpus * nic.per_gpu;
        match nic.pcie {
            Some((rate, latency)) => {
                let first = b.add(NodeKind::Nic, nics);
                for g in 0..gpus {
                    for j in 0..nic.per_gpu {
                        let n = first + g * nic.per_gpu + j;
                        b.cable(g, n, rate, latency, LinkClass::Pcie);
                        ports.push(n);
                    }
                }
            }
            None => {
                if nic.per_gpu != 1 {
                    return Err(err(
                        "nic.per_gpu",
                        "more than one NIC per GPU needs nic.pcie_gbps (a NIC node per NIC)",
                    ));
                }
                ports.extend(0..gpus);
            }
        }
    }

    let mut domain_of_gpu = vec![None; gpus as usize];
    if let Some(nv) = &spec.nvlink {
        let first = b.add(NodeKind::NvSwitch, spec.nodes * nv.switch_chips);
        for node in 0..spec.nodes {
            for i in 0..spec.gpus_per_node {
                let g = node * spec.gpus_per_node + i;
                domain_of_gpu[g as usize] = Some(node);
                for l in 0..nv.links_per_gpu {
                    let chip = first + node * nv.switch_chips + l % nv.switch_chips;
                    b.cable(g, chip, nv.link_rate, nv.latency, LinkClass::NvLink);
                }
            }
        }
    }

    let tiers = match so.kind {
        ScaleOutKind::None => {
            if spec.nodes != 1 {
                return Err(err(
                    "scale_out.topology",
                    "`none` joins nothing: more than one node needs a scale-out network",
                ));
            }
            Vec::new()
        }
        ScaleOutKind::SingleSwitch => {
            let nic = spec.nic.as_ref().expect("checked above");
            if ports.len() as u32 > so.radix {
                return Err(err(
                    "scale_out.radix",
                    format!(
                        "{} NIC ports do not fit one switch of radix {}",
                        ports.len(),
                        so.radix
                    ),
                ));
            }
            let sw = b.add(NodeKind::Switch, 1);
            for &p in &ports {
                b.cable(p, sw, nic.rate, nic.latency, LinkClass::Access);
            }
            vec![Tier {
                name: "switch",
                switches: 1,
                capacity_from_below_bps: ports.len() as u128 * nic.rate.bps() as u128,
            }]
        }
        ScaleOutKind::LeafSpine | ScaleOutKind::RailLeafSpine => two_tier(&mut b, spec, &ports)?,
        ScaleOutKind::FatTree => fat_tree(&mut b, spec, &ports)?,
    };

    Ok((b, domain_of_gpu, tiers))
}

fn two_tier(b: &mut Builder, spec: &FabricSpec, ports: &[u32]) -> Result<Vec<Tier>, BuildError> {
    let so = &spec.scale_out;
    let nic = spec.nic.as_ref().expect("checked by caller");
    let rails = if so.kind == ScaleOutKind::RailLeafSpine {
        spec.gpus_per_node * nic.per_gpu
    } else {
        1
    };
    // Downlinks per leaf for the oversubscription: down / up = o, down + up <= radix.
    let max_down = ((so.radix as f64 * so.oversubscription / (1.0 + so.oversubscription)).floor()
        as u32)
        .max(1);
    let per_rail = ports.len() as u32 / rails;
    // One leaf per rail (or several for a large rail). Rails share a leaf only where there
    // are more rails than a spine has ports (NVL72 racks: 72 rails).
    let (rails_per_leaf, leaves_per_rail) = if per_rail <= max_down {
        let r = rails.div_ceil(so.radix).max(1);
        if r * per_rail > max_down {
            return Err(err(
                "scale_out.radix",
                format!(
                    "{rails} rails need {r} rails per leaf, {} downlinks, more than the {max_down} a leaf of radix {} has: use topology = \"fat-tree\"",
                    r * per_rail,
                    so.radix
                ),
            ));
        }
        (r, 1)
    } else {
        (1, per_rail.div_ceil(max_down))
    };
    let leaves = rails.div_ceil(rails_per_leaf) * leaves_per_rail;
    let down = (per_rail * rails_per_leaf).min(per_rail.div_ceil(leaves_per_rail) * rails_per_leaf);
    let up = ((down as f64 / so.oversubscription).ceil() as u32).max(1);
    if up + down > so.radix {
        return Err(err(
            "scale_out.radix",
            format!(
                "a leaf needs {down} down + {up} up ports, more than radix {}",
                so.radix
            ),
        ));
    }
    let first_leaf = b.add(NodeKind::Switch, leaves);
    let per_leaf = per_rail.div_ceil(leaves_per_rail);
    for (i, &p) in ports.iter().enumerate() {
        let i = i as u32;
        // Ports come in node-major (node, rail) order when rail-optimized.
        let (rail, idx) = if rails > 1 {
            (i % rails, i / rails)
        } else {
            (0, i)
        };
        let leaf = first_leaf + (rail / rails_per_leaf) * leaves_per_rail + idx / per_leaf;
        b.cable(p, leaf, nic.rate, nic.latency, LinkClass::Access);
    }
    let mut tiers = vec![Tier {
        name: "leaf",
        switches: leaves,
        capacity_from_below_bps: ports.len() as u128 * nic.rate.bps() as u128,
    }];
    if leaves > 1 {
        // One uplink from every leaf to each of `up` spines.
        if leaves > so.radix {
            return Err(err(
                "scale_out.radix",
                format!(
                    "{leaves} leaves exceed a spine's radix {}: use topology = \"fat-tree\"",
                    so.radix
                ),
            ));
        }
        let first_spine = b.add(NodeKind::Switch, up);
        for l in 0..leaves {
            for s in 0..up {
                b.cable(
                    first_leaf + l,
                    first_spine + s,
                    so.link_rate,
                    so.latency,
                    LinkClass::Fabric,
                );
            }
        }
        tiers.push(Tier {
            name: "spine",
            switches: up,
            capacity_from_below_bps: (leaves * up) as u128 * so.link_rate.bps() as u128,
        });
    }
    Ok(tiers)
}

fn fat_tree(b: &mut Builder, spec: &FabricSpec, ports: &[u32]) -> Result<Vec<Tier>, BuildError> {
    let so = &spec.scale_out;
    let nic = spec.nic.as_ref().expect("checked by caller");
    let hosts = ports.len() as u32;
    let k = if so.fat_tree_k == 0 {
        let mut k = 2;
        while k * k * k / 4 < hosts {
            k += 2;
        }
        k
    } else {
        so.fat_tree_k
    };
    if k % 2 != 0 || !(2..=128).contains(&k) {
        return Err(err(
            "scale_out.fat_tree_k",
            format!("{k} is not allowed: an even number 2..=128"),
        ));
    }
    if k * k * k / 4 < hosts {
        return Err(err(
            "scale_out.fat_tree_k",
            format!(
                "a k = {k} fat tree holds {} hosts, fewer than {hosts} NICs",
                k * k * k / 4
            ),
        ));
    }
    let h = k / 2;
    let edges = b.add(NodeKind::Switch, k * h);
    let aggs = b.add(NodeKind::Switch, k * h);
    let cores = b.add(NodeKind::Switch, h * h);
    for (i, &p) in ports.iter().enumerate() {
        b.cable(
            p,
            edges + i as u32 / h,
            nic.rate,
            nic.latency,
            LinkClass::Access,
        );
    }
    for pod in 0..k {
        for e in 0..h {
            for a in 0..h {
                b.cable(
                    edges + pod * h + e,
                    aggs + pod * h + a,
                    so.link_rate,
                    so.latency,
                    LinkClass::Fabric,
                );
            }
        }
        for a in 0..h {
            for c in 0..h {
                b.cable(
                    aggs + pod * h + a,
                    cores + a * h + c,
                    so.link_rate,
                    so.latency,
                    LinkClass::Fabric,
                );
            }
        }
    }
    let fabric_bps = so.link_rate.bps() as u128;
    Ok(vec![
        Tier {
            name: "edge",
            switches: k * h,
            capacity_from_below_bps: hosts as u128 * nic.rate.bps() as u128,
        },
        Tier {
            name: "aggregation",
            switches: k * h,
            capacity_from_below_bps: (k * h * h) as u128 * fabric_bps,
        },
        Tier {
            name: "core",
            switches: h * h,
            capacity_from_below_bps: (k * h * h) as u128 * fabric_bps,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbps(g: u64) -> Bandwidth {
        Bandwidth::from_gbps(g).unwrap()
    }

    fn nic(pcie: bool) -> NicSpec {
        NicSpec {
            per_gpu: 1,
            rate: gbps(400),
            latency: Dur::from_ns(500),
            pcie: pcie.then(|| (gbps(504), Dur::from_ns(100))),
        }
    }

    fn scale_out(kind: ScaleOutKind) -> ScaleOutSpec {
        ScaleOutSpec {
            kind,
            radix: 64,
            oversubscription: 1.0,
            link_rate: gbps(400),
            latency: Dur::from_ns(500),
            fat_tree_k: 0,
        }
    }

    fn hgx(nodes: u32, kind: ScaleOutKind) -> FabricSpec {
        FabricSpec {
            nodes,
            gpus_per_node: 8,
            nvlink: Some(NvlinkSpec {
                links_per_gpu: 18,
                switch_chips: 4,
                link_rate: gbps(200),
                latency: Dur::from_ns(300),
            }),
            nic: Some(nic(true)),
            scale_out: scale_out(kind),
            pxn: false,
        }
    }

    #[test]
    fn hgx_node_counts() {
        let f = build(&hgx(4, ScaleOutKind::RailLeafSpine)).unwrap();
        let t = &f.topology;
        assert_eq!(t.gpus(), 32);
        assert_eq!(t.count(NodeKind::Nic), 32);
        assert_eq!(t.count(NodeKind::NvSwitch), 16);
        // 8 rails x 1 leaf (4 downlinks each) + 4 spines.
        assert_eq!(t.count(NodeKind::Switch), 8 + 4);
        // Intra-node traffic stays on NVLink: GPU -> chip -> GPU, over 18 parallel links.
        assert_eq!(t.hops(NodeId(0), NodeId(1)), 2);
        assert_eq!(t.next_hops(NodeId(0), NodeId(1)).len(), 18);
        assert!(f.same_domain(NodeId(0), NodeId(7)) && !f.same_domain(NodeId(0), NodeId(8)));
        // Same rail, other node: GPU -> NIC -> leaf -> NIC -> GPU.
        assert_eq!(t.hops(NodeId(0), NodeId(8)), 4);
        // Other rail, other node: up to a spine and back.
        assert_eq!(t.hops(NodeId(0), NodeId(9)), 6);
        assert_eq!(f.nvlink_per_gpu_bps(), 18 * 200_000_000_000);
        assert_eq!(f.scale_out_bisection_bps(), 32 * 400_000_000_000 / 2);
    }

    #[test]
    fn size_counts_what_build_builds() {
        for kind in [
            ScaleOutKind::RailLeafSpine,
            ScaleOutKind::LeafSpine,
            ScaleOutKind::FatTree,
        ] {
            for nodes in [2, 4, 16] {
                let spec = hgx(nodes, kind);
                let t = build(&spec).unwrap().topology;
                let s = size(&spec).unwrap();
                assert_eq!(s.gpus, t.gpus() as u64, "{kind:?} {nodes}");
                assert_eq!(s.nodes, t.nodes() as u64, "{kind:?} {nodes}");
                assert_eq!(s.links, t.links().len() as u64, "{kind:?} {nodes}");
            }
        }
        // Errors are the builder's, with its key.
        assert_eq!(
            size(&hgx(0, ScaleOutKind::LeafSpine)).unwrap_err().key,
            "nodes"
        );
    }

    #[test]
    fn fat_tree_k8_holds_128_hosts() {
        let spec = FabricSpec {
            nodes: 128,
            gpus_per_node: 1,
            nvlink: None,
            nic: Some(nic(false)),
            scale_out: scale_out(ScaleOutKind::FatTree),
            pxn: false,
        };
        let f = build(&spec).unwrap();
        assert_eq!(f.topology.count(NodeKind::Switch), 32 + 32 + 16);
        // Hosts under different pods: host - edge - agg - core - agg - edge - host.
        assert_eq!(f.topology.hops(NodeId(0), NodeId(127)), 6);
        // Four uplinks from an edge switch are equal-cost.
        let edge = f
            .topology
            .link(f.topology.first_route(NodeId(0), NodeId(127))[0])
            .to;
        assert_eq!(f.topology.next_hops(edge, NodeId(127)).len(), 4);
        assert_eq!(f.scale_out_bisection_bps(), 64 * 400_000_000_000);
    }

    #[test]
    fn oversubscription_halves_the_spine_tier() {
        let mut spec = FabricSpec {
            nodes: 64,
            gpus_per_node: 1,
            nvlink: None,
            nic: Some(nic(false)),
            scale_out: scale_out(ScaleOutKind::LeafSpine),
            pxn: false,
        };
        spec.scale_out.radix = 48;
        spec.scale_out.oversubscription = 2.0;
        let f = build(&spec).unwrap();
        // 32 down + 16 up per leaf: 2 leaves, 16 spines; 2 x 16 uplinks.
        assert_eq!(f.tiers[1].capacity_from_below_bps, 32 * 400_000_000_000);
        assert_eq!(f.scale_out_bisection_bps(), 16 * 400_000_000_000);
    }

    #[test]
    fn errors_name_their_key() {
        let mut spec = hgx(2, ScaleOutKind::None);
        assert_eq!(build(&spec).unwrap_err().key, "scale_out.topology");
        spec.scale_out.kind = ScaleOutKind::SingleSwitch;
        spec.scale_out.radix = 8;
        assert_eq!(build(&spec).unwrap_err().key, "scale_out.radix");
        spec.nic = None;
        assert_eq!(build(&spec).unwrap_err().key, "nic");
        let mut spec = hgx(2, ScaleOutKind::LeafSpine);
        spec.pxn = true;
        assert_eq!(build(&spec).unwrap_err().key, "routing.pxn");
    }

    #[test]
    fn pxn_relays_through_the_gpu_on_the_destination_rail() {
        let mut spec = hgx(4, ScaleOutKind::RailLeafSpine);
        assert_eq!(build(&spec).unwrap().relay(NodeId(0), NodeId(9)), None);
        spec.pxn = true;
        let f = build(&spec).unwrap();
        // GPU 0 (node 0, rail 0) to GPU 9 (node 1, rail 1): through GPU 1 (node 0, rail 1).
        assert_eq!(f.relay(NodeId(0), NodeId(9)), Some(NodeId(1)));
        assert_eq!(f.relay(NodeId(19), NodeId(4)), Some(NodeId(20)));
        // Same rail, or same node: direct.
        assert_eq!(f.relay(NodeId(0), NodeId(8)), None);
        assert_eq!(f.relay(NodeId(0), NodeId(3)), None);
        // The relay reaches the destination on its rail alone: NIC, leaf, NIC.
        assert_eq!(f.topology.hops(NodeId(1), NodeId(9)), 4);
    }
}
