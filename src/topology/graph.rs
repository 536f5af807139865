//! The fabric as a graph: nodes, unidirectional links, and every equal-cost next hop.
//!
//! Invariants (checked by [`Topology::new`]): node ids are dense with GPUs first; every link
//! joins two distinct existing nodes; GPUs never forward traffic for others; every GPU can
//! reach every other. Routes are shortest paths in hops; where several links lead equally
//! short, all are kept, in link order, for ECMP, spraying and adaptive routing to choose.

use crate::engine::{Bandwidth, Dur};
use std::collections::VecDeque;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Gpu,
    /// An RDMA NIC: forwards between its GPU (over PCIe) and its switch port.
    Nic,
    /// One NVSwitch chip of a scale-up domain.
    NvSwitch,
    /// A scale-out packet switch (leaf, spine, edge, aggregation, core).
    Switch,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Gpu => "gpu",
            NodeKind::Nic => "nic",
            NodeKind::NvSwitch => "nvswitch",
            NodeKind::Switch => "switch",
        }
    }
}

/// What a link is, for reports and for per-class parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkClass {
    /// GPU <-> NVSwitch.
    NvLink,
    /// GPU <-> its NIC.
    Pcie,
    /// NIC (or a GPU with an integrated NIC) <-> its first switch.
    Access,
    /// Switch <-> switch.
    Fabric,
}

impl LinkClass {
    pub const ALL: [LinkClass; 4] = [
        LinkClass::NvLink,
        LinkClass::Pcie,
        LinkClass::Access,
        LinkClass::Fabric,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LinkClass::NvLink => "nvlink",
            LinkClass::Pcie => "pcie",
            LinkClass::Access => "access",
            LinkClass::Fabric => "fabric",
        }
    }
}

/// One direction of a cable: `from` serializes onto it, `to` receives after `latency`.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub from: NodeId,
    pub to: NodeId,
    pub rate: Bandwidth,
    pub latency: Dur,
    pub class: LinkClass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyError {
    GpusNotFirst,
    DanglingLink { link: usize },
    SelfLink { link: usize },
    Unreachable { from_gpu: u32, to_gpu: u32 },
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopologyError::GpusNotFirst => write!(f, "GPUs must be numbered before other nodes"),
            TopologyError::DanglingLink { link } => write!(f, "link {link} names a missing node"),
            TopologyError::SelfLink { link } => write!(f, "link {link} joins a node to itself"),
            TopologyError::Unreachable { from_gpu, to_gpu } => {
                write!(
                    f,
                    "the fabric is disconnected: GPU {from_gpu} has no route to GPU {to_gpu}"
                )
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Topology {
    kinds: Vec<NodeKind>,
    gpus: u32,
    links: Vec<Link>,
    out_links: Vec<Vec<LinkId>>,
    /// Equal-cost next hops of (node, destination GPU): `hop_links[hop_start[i]..hop_start[i+1]]`
    /// with `i = dst * nodes + node`. Destination-major, so each destination's BFS writes
    /// its entries in order and no nodes x GPUs distance table is held; the table is the
    /// run's largest fixed state (4 bytes per node and GPU, `crate::config::memory`).
    hop_start: Vec<u32>,
    hop_links: Vec<LinkId>,
}

impl Topology {
    /// Builds a topology from node kinds (GPUs first) and links, and computes all
    /// shortest-path next hops between GPUs.
    pub fn new(kinds: Vec<NodeKind>, links: Vec<Link>) -> Result<Topology, TopologyError> {
        let n = kinds.len();
        let gpus = kinds.iter().take_while(|k| **k == NodeKind::Gpu).count();
        if kinds[gpus..].contains(&NodeKind::Gpu) {
            return Err(TopologyError::GpusNotFirst);
        }
        let mut out_links = vec![Vec::new(); n];
        let mut in_links = vec![Vec::new(); n];
        for (i, l) in links.iter().enumerate() {
            if l.from.0 as usize >= n || l.to.0 as usize >= n {
                return Err(TopologyError::DanglingLink { link: i });
            }
            if l.from == l.to {
                return Err(TopologyError::SelfLink { link: i });
            }
            out_links[l.from.0 as usize].push(LinkId(i as u32));
            in_links[l.to.0 as usize].push(LinkId(i as u32));
        }

        // A reverse BFS per destination GPU gives every node's distance to it; a node's next
        // hops are the out-links that decrease the distance. GPUs are end hosts: BFS does not
        // expand through them.
        let mut hop_start = Vec::with_capacity(n * gpus + 1);
        let mut hop_links = Vec::new();
        let mut dist = vec![u32::MAX; n];
        let mut frontier = VecDeque::new();
        for dst in 0..gpus {
            dist.iter_mut().for_each(|d| *d = u32::MAX);
            dist[dst] = 0;
            frontier.clear();
            frontier.push_back(dst);
            while let Some(v) = frontier.pop_front() {
                if v != dst && kinds[v] == NodeKind::Gpu {
                    continue;
                }
                for &LinkId(li) in &in_links[v] {
                    let u = links[li as usize].from.0 as usize;
                    if dist[u] == u32::MAX {
                        dist[u] = dist[v] + 1;
                        frontier.push_back(u);
                    }
                }
            }
            if let Some(src) = (0..gpus).find(|&s| s != dst && dist[s] == u32::MAX) {
                return Err(TopologyError::Unreachable {
                    from_gpu: src as u32,
                    to_gpu: dst as u32,
                });
            }
            for u in 0..n {
                hop_start.push(hop_links.len() as u32);
                let du = dist[u];
                if u == dst || du == u32::MAX {
                    continue;
                }
                hop_links.extend(
                    out_links[u]
                        .iter()
                        .copied()
                        .filter(|&LinkId(li)| dist[links[li as usize].to.0 as usize] == du - 1),
                );
            }
        }
        hop_start.push(hop_links.len() as u32);
        hop_links.shrink_to_fit();
        Ok(Topology {
            kinds,
            gpus: gpus as u32,
            links,
            out_links,
            hop_start,
            hop_links,
        })
    }

    pub fn gpus(&self) -> u32 {
        self.gpus
    }
    pub fn nodes(&self) -> usize {
        self.kinds.len()
    }
    pub fn kind(&self, n: NodeId) -> NodeKind {
        self.kinds[n.0 as usize]
    }
    pub fn count(&self, kind: NodeKind) -> usize {
        self.kinds.iter().filter(|k| **k == kind).count()
    }
    pub fn links(&self) -> &[Link] {
        &self.links
    }
    pub fn link(&self, l: LinkId) -> &Link {
        &self.links[l.0 as usize]
    }
    pub fn out_links(&self, n: NodeId) -> &[LinkId] {
        &self.out_links[n.0 as usize]
    }
    /// All equal-cost next links from `at` toward GPU `dst`; empty when `at` is `dst`.
    #[inline]
    pub fn next_hops(&self, at: NodeId, dst: NodeId) -> &[LinkId] {
        let i = dst.0 as usize * self.kinds.len() + at.0 as usize;
        &self.hop_links[self.hop_start[i] as usize..self.hop_start[i + 1] as usize]
    }
    /// Links on a shortest path between two GPUs. Walked on demand (a few steps) rather
    /// than stored: a GPUs x GPUs table would be 17 GB at 65,536 GPUs.
    pub fn hops(&self, src: NodeId, dst: NodeId) -> u32 {
        let mut at = src;
        let mut n = 0;
        while let Some(&l) = self.next_hops(at, dst).first() {
            n += 1;
            at = self.link(l).to;
        }
        n
    }
    /// One route from `src` to `dst` (always the first equal-cost choice), in order.
    pub fn first_route(&self, src: NodeId, dst: NodeId) -> Vec<LinkId> {
        let mut at = src;
        let mut path = Vec::new();
        while let Some(&l) = self.next_hops(at, dst).first() {
            path.push(l);
            at = self.link(l).to;
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: u32, b: u32) -> Link {
        Link {
            from: NodeId(a),
            to: NodeId(b),
            rate: Bandwidth::from_gbps(1).unwrap(),
            latency: Dur::ZERO,
            class: LinkClass::Fabric,
        }
    }

    fn both(a: u32, b: u32) -> [Link; 2] {
        [link(a, b), link(b, a)]
    }

    #[test]
    fn gpus_do_not_forward() {
        // GPU 0 - GPU 1 - GPU 2 in a chain: 0 cannot reach 2 through GPU 1.
        let links = [both(0, 1), both(1, 2)].concat();
        let r = Topology::new(vec![NodeKind::Gpu; 3], links);
        assert!(matches!(r, Err(TopologyError::Unreachable { .. })), "{r:?}");
    }

    #[test]
    fn bad_links_are_rejected() {
        let k = vec![NodeKind::Gpu, NodeKind::Gpu, NodeKind::Switch];
        assert_eq!(
            Topology::new(k.clone(), vec![link(0, 5)]).unwrap_err(),
            TopologyError::DanglingLink { link: 0 }
        );
        assert_eq!(
            Topology::new(k, vec![link(2, 2)]).unwrap_err(),
            TopologyError::SelfLink { link: 0 }
        );
        let k = vec![NodeKind::Switch, NodeKind::Gpu];
        assert_eq!(
            Topology::new(k, vec![]).unwrap_err(),
            TopologyError::GpusNotFirst
        );
    }

    #[test]
    fn equal_cost_next_hops_are_all_kept() {
        // Two GPUs, two switches in parallel: both switches are next hops.
        let k = vec![
            NodeKind::Gpu,
            NodeKind::Gpu,
            NodeKind::Switch,
            NodeKind::Switch,
        ];
        let links = [both(0, 2), both(0, 3), both(1, 2), both(1, 3)].concat();
        let t = Topology::new(k, links).unwrap();
        assert_eq!(t.next_hops(NodeId(0), NodeId(1)).len(), 2);
        assert_eq!(t.next_hops(NodeId(2), NodeId(1)).len(), 1);
        assert!(t.next_hops(NodeId(1), NodeId(1)).is_empty());
        assert_eq!(t.hops(NodeId(0), NodeId(1)), 2);
        assert_eq!(t.first_route(NodeId(0), NodeId(1)).len(), 2);
    }
}
