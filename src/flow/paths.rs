//! Routes of a fluid flow: which links a message uses, and in what shares.
//!
//! The same choices as the packet level, made once per message instead of once per packet:
//! at every node, over `Topology::next_hops(at, dst)` (the GPU's first hop included),
//! - under ECMP in the scale-out network, the one link `net::ecmp_pick(hash, at, n)`
//!   picks, with `hash = net::message_hash(seed, index)`: the packet level's path;
//! - on NVLink (always), and under spraying (and adaptive routing, which the flow level
//!   treats as spraying), an equal share of the flow on every equal-cost next link, as
//!   the packet level's round-robin over the links does on average.
//!
//! Under PXN (`Fabric::relay`) a route is two legs, source to relay GPU over NVLink and
//! relay to destination through the relay's NIC, as at the packet level.

use crate::engine::Dur;
use crate::net::{MessageSpec, NetParams, Routing, Wire, ecmp_pick, message_hash};
use crate::topology::{Fabric, LinkClass, LinkId, NodeId, NodeKind, Topology};

/// One message as a fluid flow: the share of its bytes on each link, its bytes on the
/// wire (payload plus one header per packet), and the fixed time it spends beyond the
/// fluid transfer (propagation, switch latency, store-and-forward of one packet per hop).
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// (link, fraction of the flow on it); fractions leaving each node sum to one.
    pub links: Vec<(LinkId, f64)>,
    pub wire_bytes: u64,
    /// Packets the message is cut into.
    pub packets: u64,
    pub tail: Dur,
}

/// The wire format a message uses at the packet level: NVLink packetization inside an
/// NVLink domain, the NIC's otherwise.
pub fn wire_of(fabric: &Fabric, params: &NetParams, m: &MessageSpec) -> Wire {
    if fabric.same_domain(m.src, m.dst) {
        params.nvlink_wire
    } else {
        params.nic_wire
    }
}

/// Whether the traffic from `at` is spread evenly over all of `hops` (else one is picked).
fn spreads(topo: &Topology, routing: Routing, hops: &[LinkId]) -> bool {
    topo.link(hops[0]).class == LinkClass::NvLink || routing != Routing::Ecmp
}

/// The route of message number `index`.
pub fn route(fabric: &Fabric, params: &NetParams, index: u32, m: &MessageSpec) -> Route {
    let topo = &fabric.topology;
    let hash = message_hash(params.seed, index);
    let wire = wire_of(fabric, params, m);
    let mtu = wire.mtu_bytes as u64;
    let packets = m.bytes.div_ceil(mtu);
    let wire_bytes = m.bytes + packets * wire.header_bytes as u64;
    let last_wire = m.bytes - (packets - 1) * mtu + wire.header_bytes as u64;

    let legs = match fabric.relay(m.src, m.dst) {
        Some(r) => vec![(m.src, r), (r, m.dst)],
        None => vec![(m.src, m.dst)],
    };
    // Shares, level by level: every node at one level is equally far from `dst` (routes are
    // shortest paths), so a level's links never reappear later.
    let mut links = Vec::new();
    for &(src, dst) in &legs {
        let mut level: Vec<(NodeId, f64)> = vec![(src, 1.0)];
        let mut next: Vec<(NodeId, f64)> = Vec::new();
        while !level.is_empty() {
            next.clear();
            for &(at, w) in &level {
                let hops = topo.next_hops(at, dst);
                if hops.is_empty() {
                    continue; // at == dst
                }
                if spreads(topo, params.routing, hops) {
                    let share = w / hops.len() as f64;
                    for &l in hops {
                        links.push((l, share));
                        next.push((topo.link(l).to, share));
                    }
                } else {
                    let l = hops[ecmp_pick(hash, at, hops.len())];
                    links.push((l, w));
                    next.push((topo.link(l).to, w));
                }
            }
            // Merge the shares that reach the same node (sorted: deterministic).
            next.sort_by_key(|&(n, _)| n);
            next.dedup_by(|b, a| {
                if a.0 == b.0 {
                    a.1 += b.1;
                    true
                } else {
                    false
                }
            });
            std::mem::swap(&mut level, &mut next);
        }
    }

    // The fixed part of the completion time along one of the paths (for ECMP the path;
    // spread paths are equally long): propagation and switch latency per hop, plus the
    // pipeline fill of store-and-forward. A packet train through hops of packet times
    // t_1..t_H finishes sum(t_h) + (P - 1) * max(t_h) after it starts, and the fluid
    // transfer accounts for P * max(t_h) of that: the rest is sum(t_h) - max(t_h).
    let mut tail = Dur::ZERO;
    let mut fill = Dur::ZERO;
    let mut slowest = Dur::ZERO;
    for &(src, dst) in &legs {
        let mut at = src;
        loop {
            let hops = topo.next_hops(at, dst);
            if hops.is_empty() {
                break;
            }
            let l = if spreads(topo, params.routing, hops) {
                hops[0]
            } else {
                hops[ecmp_pick(hash, at, hops.len())]
            };
            let link = topo.link(l);
            tail += link.latency;
            if topo.kind(link.to) == NodeKind::Switch {
                tail += params.switch.latency;
            }
            let t = link.rate.serialize(last_wire);
            fill += t;
            slowest = slowest.max(t);
            at = link.to;
        }
    }
    Route {
        links,
        wire_bytes,
        packets,
        tail: tail + (fill - slowest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scenario;

    fn scenario(extra_fabric: &str, traffic: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 4\n{extra_fabric}\n{traffic}"
        );
        Scenario::parse(&text, "t.toml", Some(3)).unwrap()
    }

    #[test]
    fn nvlink_is_split_evenly_over_every_link() {
        let s = scenario(
            "",
            "[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 4096",
        );
        let r = route(s.fabric(), s.net(), 0, &s.messages()[0]);
        // 18 links up to 4 chips and 18 down to the destination, 1/18 each.
        assert_eq!(r.links.len(), 36);
        for &(_, w) in &r.links {
            assert!((w - 1.0 / 18.0).abs() < 1e-12);
        }
        assert_eq!(r.wire_bytes, 4096 + 554);
    }

    /// Inside an NVLink domain every route spreads over all 18 of its source's links and
    /// gathers over all 18 of its destination's, so the allocator keeps one up-link (the 18
    /// are twins) and one down-link per group of switch chips whose shares agree to the bit:
    /// HGX (chips with 5, 4, 4, 5 of a GPU's links) 1 + 2, NVL72 (18 chips, one link each)
    /// 1 + 1 (docs/flow.md, "Twin links keep one").
    #[test]
    fn an_nvlink_route_keeps_one_entry_per_twin_group() {
        for (file, gpus, kept) in [("hgx-h100", 8u32, 3usize), ("gb200-nvl72", 72, 2)] {
            let s = Scenario::parse(
                &format!(
                    "name = \"t\"\n[fabric]\nfile = \"{file}\"\nnodes = 1\n\
                     [[traffic]]\npattern = \"all-to-all\"\nbytes = 4096"
                ),
                "t.toml",
                None,
            )
            .unwrap();
            let caps = vec![1.0; s.fabric().topology.links().len()];
            let mut a = crate::flow::maxmin::Allocator::new(caps);
            for (i, m) in s.messages().iter().enumerate() {
                let r = route(s.fabric(), s.net(), i as u32, m);
                assert_eq!(r.links.len(), 36);
                a.register(r.links.iter().map(|&(l, w)| (l.0, w)));
            }
            assert_eq!(s.messages().len() as u32, gpus * (gpus - 1));
            for f in 0..s.messages().len() as u32 {
                assert_eq!(a.working_entries(f), kept, "{file}: flow {f}");
            }
        }
    }

    #[test]
    fn ecmp_takes_exactly_one_path_and_matches_the_packet_hash() {
        let s = scenario(
            "",
            "[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 8192",
        );
        let r = route(s.fabric(), s.net(), 0, &s.messages()[0]);
        assert!(r.links.iter().all(|&(_, w)| w == 1.0));
        // GPU -> NIC -> leaf -> spine -> leaf -> NIC -> GPU.
        assert_eq!(r.links.len(), 6);
        let t = &s.fabric().topology;
        let hash = message_hash(s.net().seed, 0);
        let mut at = NodeId(0);
        for &(l, _) in &r.links {
            let hops = t.next_hops(at, NodeId(9));
            assert_eq!(l, hops[ecmp_pick(hash, at, hops.len())]);
            at = t.link(l).to;
        }
        assert_eq!(r.wire_bytes, 8192 + 2 * 64);
    }

    #[test]
    fn pxn_routes_over_nvlink_to_the_relay_then_its_rail() {
        let s = scenario(
            "[fabric.routing]\npxn = true",
            "[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 8192",
        );
        let r = route(s.fabric(), s.net(), 0, &s.messages()[0]);
        let t = &s.fabric().topology;
        // 18 + 18 NVLinks to GPU 1 (1/18 each), then GPU 1 -> NIC -> leaf -> NIC -> GPU 9.
        let class = |c| {
            r.links
                .iter()
                .filter(|&&(l, _)| t.link(l).class == c)
                .count()
        };
        assert_eq!(class(LinkClass::NvLink), 36);
        assert_eq!(class(LinkClass::Fabric), 0, "no spine");
        assert_eq!(class(LinkClass::Pcie) + class(LinkClass::Access), 4);
        assert!(r.links.iter().any(|&(l, _)| t.link(l).from == NodeId(1)));
        // The tail covers both legs: longer than the relay's own same-rail route.
        let direct = MessageSpec {
            src: NodeId(1),
            ..s.messages()[0].clone()
        };
        assert!(r.tail > route(s.fabric(), s.net(), 0, &direct).tail);
    }

    #[test]
    fn spraying_conserves_the_flow_at_every_node() {
        let s = scenario(
            "[fabric.routing]\npolicy = \"spray\"",
            "[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 8192",
        );
        let r = route(s.fabric(), s.net(), 0, &s.messages()[0]);
        assert!(r.links.len() > 6, "spread over the spines");
        // Flow conservation: what enters a switch leaves it; six hops carry 1 each.
        let t = &s.fabric().topology;
        let mut net = std::collections::BTreeMap::new();
        for &(l, w) in &r.links {
            *net.entry(t.link(l).from.0).or_insert(0.0) += w;
            *net.entry(t.link(l).to.0).or_insert(0.0) -= w;
        }
        for (node, w) in net {
            let expect = match node {
                0 => 1.0,
                9 => -1.0,
                _ => 0.0,
            };
            assert!((w - expect).abs() < 1e-12, "node {node}: net {w}");
        }
        let total: f64 = r.links.iter().map(|&(_, w)| w).sum();
        assert!((total - 6.0).abs() < 1e-12);
    }
}
