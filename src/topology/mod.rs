//! GPUs, switches and links, and the routes between GPUs. Shared by every simulation level.
//!
//! Invariants (checked by [`Topology::new`]): every link joins two distinct existing nodes
//! and has a positive rate; node ids are dense indices; GPUs are numbered 0..gpus in node
//! order; every GPU can reach every other (a disconnected fabric is an input error, reported
//! by the caller against the file and key that built it).

use crate::engine::{Bandwidth, Dur};
use std::collections::VecDeque;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Gpu,
    Switch,
}

/// One direction of a cable: `from` serializes onto it, `to` receives after `latency`.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub from: NodeId,
    pub to: NodeId,
    pub rate: Bandwidth,
    pub latency: Dur,
}

#[derive(Debug)]
pub enum TopologyError {
    DanglingLink { link: usize },
    SelfLink { link: usize },
    Unreachable { from_gpu: u32, to_gpu: u32 },
}

#[derive(Clone, Debug)]
pub struct Topology {
    kinds: Vec<NodeKind>,
    gpus: u32,
    links: Vec<Link>,
    /// Links leaving each node.
    out_links: Vec<Vec<LinkId>>,
    /// `next_hop[node * gpus + dst_gpu]`: the link a packet at `node` bound for `dst_gpu`
    /// takes next (the lowest-numbered link on a shortest path). `None` at the destination.
    next_hop: Vec<Option<LinkId>>,
    /// Hop counts of the shortest path between GPU pairs, `hops[src * gpus + dst]`.
    hops: Vec<u32>,
}

impl Topology {
    /// Builds a topology from `gpus` GPUs (nodes 0..gpus), `switches` switches after them,
    /// and the given links; computes shortest-path routes between every pair of GPUs.
    pub fn new(gpus: u32, switches: u32, links: Vec<Link>) -> Result<Topology, TopologyError> {
        let n = (gpus + switches) as usize;
        let mut kinds = vec![NodeKind::Gpu; gpus as usize];
        kinds.extend(std::iter::repeat_n(NodeKind::Switch, switches as usize));
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

        // One reverse BFS per destination GPU gives every node's distance to it; the next hop
        // is then any out-link that decreases the distance. GPUs do not forward traffic for
        // other GPUs (they are end hosts here), so BFS does not expand through them.
        let g = gpus as usize;
        let mut next_hop = vec![None; n * g];
        let mut hops = vec![0u32; g * g];
        let mut dist = vec![u32::MAX; n];
        let mut frontier = VecDeque::new();
        for dst in 0..g {
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
            for u in 0..n {
                if u == dst || dist[u] == u32::MAX {
                    continue;
                }
                next_hop[u * g + dst] = out_links[u]
                    .iter()
                    .copied()
                    .find(|&LinkId(li)| dist[links[li as usize].to.0 as usize] == dist[u] - 1);
            }
            for src in 0..g {
                if src != dst && dist[src] == u32::MAX {
                    return Err(TopologyError::Unreachable {
                        from_gpu: src as u32,
                        to_gpu: dst as u32,
                    });
                }
                hops[src * g + dst] = dist[src];
            }
        }
        Ok(Topology {
            kinds,
            gpus,
            links,
            out_links,
            next_hop,
            hops,
        })
    }

    /// `gpus` GPUs, each with a full-duplex link of `rate` and `latency` to one switch.
    pub fn star(gpus: u32, rate: Bandwidth, latency: Dur) -> Topology {
        let sw = NodeId(gpus);
        let mut links = Vec::with_capacity(2 * gpus as usize);
        for g in 0..gpus {
            links.push(Link {
                from: NodeId(g),
                to: sw,
                rate,
                latency,
            });
            links.push(Link {
                from: sw,
                to: NodeId(g),
                rate,
                latency,
            });
        }
        Topology::new(gpus, 1, links).expect("a star is connected by construction")
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
    pub fn links(&self) -> &[Link] {
        &self.links
    }
    pub fn link(&self, l: LinkId) -> &Link {
        &self.links[l.0 as usize]
    }
    pub fn out_links(&self, n: NodeId) -> &[LinkId] {
        &self.out_links[n.0 as usize]
    }
    /// The next link from `at` toward GPU `dst`; `None` when `at` is `dst`.
    pub fn next_hop(&self, at: NodeId, dst: NodeId) -> Option<LinkId> {
        self.next_hop[at.0 as usize * self.gpus as usize + dst.0 as usize]
    }
    /// Links on the shortest path between two GPUs.
    pub fn hops(&self, src: NodeId, dst: NodeId) -> u32 {
        self.hops[src.0 as usize * self.gpus as usize + dst.0 as usize]
    }
    /// The links of the route from `src` to `dst`, in order.
    pub fn route(&self, src: NodeId, dst: NodeId) -> Vec<LinkId> {
        let mut at = src;
        let mut path = Vec::new();
        while let Some(l) = self.next_hop(at, dst) {
            path.push(l);
            at = self.link(l).to;
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbps(g: u64) -> Bandwidth {
        Bandwidth::from_gbps(g).unwrap()
    }

    #[test]
    fn star_routes_through_the_switch() {
        let t = Topology::star(4, gbps(400), Dur::from_ns(100));
        assert_eq!(t.nodes(), 5);
        assert_eq!(t.links().len(), 8);
        for s in 0..4 {
            for d in 0..4 {
                let (s, d) = (NodeId(s), NodeId(d));
                let route = t.route(s, d);
                assert_eq!(route.len() as u32, t.hops(s, d));
                if s == d {
                    assert!(route.is_empty());
                } else {
                    assert_eq!(route.len(), 2);
                    assert_eq!(t.link(route[0]).from, s);
                    assert_eq!(t.link(route[1]).to, d);
                }
            }
        }
    }

    #[test]
    fn gpus_do_not_forward() {
        // 0 - 1 - 2 as a chain of GPUs: 0 cannot reach 2 because GPU 1 is not a switch.
        let l = |a, b| Link {
            from: NodeId(a),
            to: NodeId(b),
            rate: gbps(1),
            latency: Dur::ZERO,
        };
        let r = Topology::new(3, 0, vec![l(0, 1), l(1, 0), l(1, 2), l(2, 1)]);
        assert!(matches!(r, Err(TopologyError::Unreachable { .. })));
    }

    #[test]
    fn dangling_and_self_links_are_rejected() {
        let l = |a, b| Link {
            from: NodeId(a),
            to: NodeId(b),
            rate: gbps(1),
            latency: Dur::ZERO,
        };
        assert!(matches!(
            Topology::new(2, 0, vec![l(0, 5)]),
            Err(TopologyError::DanglingLink { link: 0 })
        ));
        assert!(matches!(
            Topology::new(2, 1, vec![l(2, 2)]),
            Err(TopologyError::SelfLink { link: 0 })
        ));
    }
}
