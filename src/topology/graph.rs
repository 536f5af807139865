//! The fabric as a graph: nodes, unidirectional links, and every equal-cost next hop.
//!
//! Invariants (checked by [`Topology::new`]): node ids are dense with GPUs first; every link
//! joins two distinct existing nodes; GPUs never forward traffic for others; every GPU can
//! reach every other. Routes are shortest paths in hops; where several links lead equally
//! short, all are kept, in link order, for ECMP, spraying and adaptive routing to choose.

use crate::engine::{Bandwidth, Dur};
use rayon::prelude::*;
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
    /// Equal-cost next hops of (node, destination GPU), run-length encoded over destinations:
    /// a node's next hops stay the same over long runs of consecutive GPUs (a GPU's NVLinks
    /// toward its own server, its NIC toward every other; a leaf's uplinks toward every GPU
    /// it does not serve), so node `n` keeps runs `run_off[n]..run_off[n + 1]`: run `r`
    /// covers destinations `run_first[r]` up to the next run's first, with next hops
    /// `run_list[r]` ([`RunHops`]). A node's first run starts at GPU 0.
    /// A dense (node, GPU) table was 4 bytes per pair plus its lists (1.9 GB at 8,192 GPUs)
    /// and missed the caches on every hop.
    run_off: Vec<u32>,
    run_first: Vec<u32>,
    run_list: Vec<RunHops>,
    hop_links: Vec<LinkId>,
    /// Nodes with more than [`DENSE_RUNS`] runs (a spine of a rail-optimized fabric changes
    /// next hop with every GPU; an NVL72 switch chip has a link per GPU of its rack) look
    /// their run up directly instead of searching: `dense[dense_row[n]]` is `(base, span,
    /// at)`, and a destination `d` in `base..base + span` (from the node's second run to its
    /// last) has run `dense_run[at + d - base]`; below it the first run, above it the last.
    /// `NO_ROW` for the others.
    dense_row: Vec<u32>,
    dense: Vec<(u32, u32, u32)>,
    dense_run: Vec<u32>,
}

/// A run's next hops: `hop_links[off..][..len]`, and the first of them beside, so that a
/// hop with one next link (most hops) reads it here, one dependent load fewer.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RunHops {
    link: LinkId,
    off: u32,
    len: u32,
}

/// Runs above which a node's run is indexed per GPU rather than searched for. Chosen, not
/// tuned: it indexes rail spines (a run per GPU) and NVL72 switch chips (74 runs), and
/// leaves most fat-tree switches to the search (at 16 the 8,192-GPU HGX fat tree's table grew
/// from 3.5 to 45 MB of indexes for a few search steps saved).
const DENSE_RUNS: usize = 48;
const NO_ROW: u32 = u32::MAX;

/// A node's run of destinations with the same next hops, while the runs are built: the
/// first destination and the list (offset, length) in `hop_links`.
#[derive(Clone, Copy)]
struct Run {
    first: u32,
    off: u32,
    len: u32,
}

/// A new run looks for its list among this many of its node's latest runs before storing
/// it again (a leaf alternates between a port toward one GPU and its uplinks).
const REUSE_LISTS: usize = 4;

/// Destinations per chunk of the next-hop search (fixed, so that the table does not depend
/// on the thread count).
const BFS_CHUNK: usize = 64;

/// What a chunk of destinations found: for each destination in order and each node in
/// order, the node's next hops where they differ from its next hops to the previous
/// destination (every node at the chunk's first), as (destination, node, offset, length)
/// into `lists`; and the first pair of GPUs found unconnected, after which it stopped.
struct ChunkHops {
    changes: Vec<(u32, u32, u32, u32)>,
    lists: Vec<LinkId>,
    unreachable: Option<TopologyError>,
}

/// The next hops of every node toward each destination GPU of `dsts`: a reverse BFS from
/// the destination gives every node's distance to it (GPUs are end hosts: the search does
/// not expand through them), and a node's next hops are its out-links that decrease the
/// distance.
fn bfs_chunk(
    kinds: &[NodeKind],
    links: &[Link],
    in_links: &[Vec<LinkId>],
    out_links: &[Vec<LinkId>],
    dsts: std::ops::Range<usize>,
) -> ChunkHops {
    let n = kinds.len();
    let gpus = kinds.iter().take_while(|k| **k == NodeKind::Gpu).count();
    let mut out = ChunkHops {
        changes: Vec::new(),
        lists: Vec::new(),
        unreachable: None,
    };
    // Each node's latest list in `out.lists` (offset, length).
    let mut latest: Vec<Option<(u32, u32)>> = vec![None; n];
    let mut hops: Vec<LinkId> = Vec::new();
    let mut dist = vec![u32::MAX; n];
    let mut frontier = VecDeque::new();
    for dst in dsts {
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
            out.unreachable = Some(TopologyError::Unreachable {
                from_gpu: src as u32,
                to_gpu: dst as u32,
            });
            return out;
        }
        for (u, last) in latest.iter_mut().enumerate() {
            hops.clear();
            let du = dist[u];
            if u != dst && du != u32::MAX {
                hops.extend(
                    out_links[u]
                        .iter()
                        .copied()
                        .filter(|&LinkId(li)| dist[links[li as usize].to.0 as usize] == du - 1),
                );
            }
            if last.is_some_and(|(o, l)| out.lists[o as usize..(o + l) as usize] == hops[..]) {
                continue;
            }
            let entry = (out.lists.len() as u32, hops.len() as u32);
            out.lists.extend_from_slice(&hops);
            out.changes.push((dst as u32, u as u32, entry.0, entry.1));
            *last = Some(entry);
        }
    }
    out
}

impl Topology {
    /// Builds a topology from node kinds (GPUs first) and links, and computes all
    /// shortest-path next hops between GPUs.
    pub fn new(kinds: Vec<NodeKind>, links: Vec<Link>) -> Result<Topology, TopologyError> {
        Topology::with_chunks(kinds, links, BFS_CHUNK)
    }

    /// [`Topology::new`], searching `chunk` destinations per parallel task (any chunk size
    /// gives the same table).
    fn with_chunks(
        kinds: Vec<NodeKind>,
        links: Vec<Link>,
        chunk: usize,
    ) -> Result<Topology, TopologyError> {
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
        // hops are the out-links that decrease the distance (`bfs_chunk`). Chunks of
        // destinations run in parallel; their changes are taken here in destination order,
        // so each node's runs grow at the end, the same table whatever the thread count.
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); n];
        let mut hop_links: Vec<LinkId> = Vec::new();
        let chunks: Vec<std::ops::Range<usize>> = (0..gpus)
            .step_by(chunk.max(1))
            .map(|d| d..(d + chunk.max(1)).min(gpus))
            .collect();
        let window = 4 * rayon::current_num_threads().max(1);
        for group in chunks.chunks(window) {
            let done: Vec<ChunkHops> = group
                .par_iter()
                .map(|r| bfs_chunk(&kinds, &links, &in_links, &out_links, r.clone()))
                .collect();
            for chunk in done {
                for &(dst, u, off, len) in &chunk.changes {
                    let hops = &chunk.lists[off as usize..(off + len) as usize];
                    let node_runs = &mut runs[u as usize];
                    let list = |r: &Run| &hop_links[r.off as usize..(r.off + r.len) as usize];
                    if node_runs.last().is_some_and(|r| list(r) == hops) {
                        continue;
                    }
                    let (off, len) = match node_runs
                        .iter()
                        .rev()
                        .take(REUSE_LISTS)
                        .find(|r| list(r) == hops)
                    {
                        Some(r) => (r.off, r.len),
                        None => {
                            hop_links.extend_from_slice(hops);
                            ((hop_links.len() - hops.len()) as u32, hops.len() as u32)
                        }
                    };
                    node_runs.push(Run {
                        first: dst,
                        off,
                        len,
                    });
                }
                if let Some(e) = chunk.unreachable {
                    return Err(e);
                }
            }
        }
        let total: usize = runs.iter().map(Vec::len).sum();
        let mut run_off = Vec::with_capacity(n + 1);
        let mut run_first = Vec::with_capacity(total);
        let mut run_list = Vec::with_capacity(total);
        run_off.push(0);
        for node_runs in runs {
            run_first.extend(node_runs.iter().map(|r| r.first));
            run_list.extend(node_runs.iter().map(|r| RunHops {
                link: if r.len > 0 {
                    hop_links[r.off as usize]
                } else {
                    LinkId(u32::MAX)
                },
                off: r.off,
                len: r.len,
            }));
            run_off.push(run_first.len() as u32);
        }
        hop_links.shrink_to_fit();
        let mut dense_row = vec![NO_ROW; n];
        let mut dense = Vec::new();
        let mut dense_run = Vec::new();
        for (u, row) in dense_row.iter_mut().enumerate() {
            let (lo, hi) = (run_off[u] as usize, run_off[u + 1] as usize);
            if hi - lo <= DENSE_RUNS {
                continue;
            }
            let (base, end) = (run_first[lo + 1], run_first[hi - 1]);
            *row = dense.len() as u32;
            dense.push((base, end - base, dense_run.len() as u32));
            for r in lo + 1..hi - 1 {
                dense_run.extend((run_first[r]..run_first[r + 1]).map(|_| r as u32));
            }
        }
        Ok(Topology {
            kinds,
            gpus: gpus as u32,
            links,
            out_links,
            run_off,
            run_first,
            run_list,
            hop_links,
            dense_row,
            dense,
            dense_run,
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
        let a = at.0 as usize;
        let row = self.dense_row[a];
        let (lo, hi) = (self.run_off[a] as usize, self.run_off[a + 1] as usize);
        let r = if row != NO_ROW {
            let (base, span, at) = self.dense[row as usize];
            match dst.0.checked_sub(base) {
                None => lo,
                Some(i) if i >= span => hi - 1,
                Some(i) => self.dense_run[(at + i) as usize] as usize,
            }
        } else {
            // The last run starting at or before `dst` (the first starts at GPU 0).
            lo + self.run_first[lo..hi].partition_point(|&f| f <= dst.0) - 1
        };
        let h = &self.run_list[r];
        if h.len == 1 {
            std::slice::from_ref(&h.link)
        } else {
            &self.hop_links[h.off as usize..(h.off + h.len) as usize]
        }
    }

    /// Runs of destinations with the same next hops, over all nodes (the next-hop table's
    /// size: `crate::config::memory`, `docs/performance.md`).
    pub fn next_hop_runs(&self) -> usize {
        self.run_first.len()
    }

    /// Bytes the next-hop table holds (runs, their lists, the per-node offsets).
    pub fn next_hop_table_bytes(&self) -> u64 {
        (self.run_off.len() * 8
            + self.run_first.len() * (4 + std::mem::size_of::<RunHops>())
            + self.hop_links.len() * 4
            + self.dense.len() * 12
            + self.dense_run.len() * 4) as u64
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

    /// Next hops by a plain BFS per destination over the links, with no encoding: what the
    /// run-length encoded table must return for every node and destination, in link order.
    fn reference_next_hops(t: &Topology, dst: u32) -> Vec<Vec<LinkId>> {
        let n = t.nodes();
        let mut dist = vec![u32::MAX; n];
        dist[dst as usize] = 0;
        let mut frontier = VecDeque::from([dst as usize]);
        while let Some(v) = frontier.pop_front() {
            if v != dst as usize && t.kind(NodeId(v as u32)) == NodeKind::Gpu {
                continue;
            }
            for l in t.links() {
                let u = l.from.0 as usize;
                if l.to.0 as usize == v && dist[u] == u32::MAX {
                    dist[u] = dist[v] + 1;
                    frontier.push_back(u);
                }
            }
        }
        (0..n)
            .map(|u| {
                if u == dst as usize || dist[u] == u32::MAX {
                    return Vec::new();
                }
                t.out_links(NodeId(u as u32))
                    .iter()
                    .copied()
                    .filter(|&l| dist[t.link(l).to.0 as usize] == dist[u] - 1)
                    .collect()
            })
            .collect()
    }

    /// The encoded next hops equal a plain BFS's on every shipped fabric kind and scale-out
    /// topology (NVLink domains, PXN, rails, oversubscription, fat trees, one switch), and
    /// the encoding never holds more runs than nodes x GPUs, and far fewer from 32 GPUs.
    #[test]
    fn encoded_next_hops_equal_a_plain_bfs() {
        let fabrics = [
            "file = \"hgx-h100\"\nnodes = 4",
            "file = \"hgx-h100\"\nnodes = 16",
            "file = \"hgx-h100\"\nnodes = 6\n[fabric.routing]\npxn = true",
            "file = \"hgx-h100\"\nnodes = 8\n[fabric.scale_out]\ntopology = \"fat-tree\"",
            "file = \"gb200-nvl72\"\nnodes = 2",
            "file = \"hgx-h100\"\nnodes = 4\n[fabric.scale_out]\ntopology = \"leaf-spine\"\nradix = 8\noversubscription = 3.0",
            "nodes = 128\ngpus_per_node = 1\n[fabric.nic]\nrate_gbps = 400\nlatency_ns = 1000\n[fabric.scale_out]\ntopology = \"fat-tree\"\nfat_tree_k = 8",
            "nodes = 8\ngpus_per_node = 1\n[fabric.nic]\nrate_gbps = 400\nlatency_ns = 1000\n[fabric.scale_out]\ntopology = \"single-switch\"\nradix = 16",
        ];
        for f in fabrics {
            let text = format!(
                "name = \"t\"\n[fabric]\n{f}\n[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 1\n"
            );
            let s = crate::config::Scenario::parse(&text, "t.toml", None)
                .unwrap_or_else(|e| panic!("{f}: {e}"));
            let t = &s.fabric().topology;
            for dst in 0..t.gpus() {
                let want = reference_next_hops(t, dst);
                for (u, w) in want.iter().enumerate() {
                    assert_eq!(
                        t.next_hops(NodeId(u as u32), NodeId(dst)),
                        w.as_slice(),
                        "{f}: node {u} to GPU {dst}"
                    );
                }
            }
            let (runs, pairs) = (t.next_hop_runs(), t.nodes() * t.gpus() as usize);
            assert!(runs <= pairs, "{f}: {runs} runs");
            if t.gpus() >= 32 {
                assert!(runs * 4 < pairs, "{f}: {runs} runs for {pairs} pairs");
            }
            // The per-GPU index serves the nodes with many runs (rail spines from 64 GPUs,
            // NVL72 switch chips), the search the others: both are checked above.
            if t.gpus() >= 128 && f.contains("hgx") || f.contains("nvl72") {
                assert!(!t.dense.is_empty(), "{f}: no node indexed per GPU");
            }
        }
    }

    /// Chunks of destinations are searched in parallel: the table is the same, to the
    /// offset, as one search over all destinations in order, on one thread and on three
    /// (40 HGX nodes: 320 GPUs, 5 chunks, more than one thread's window of 4).
    #[test]
    fn the_table_is_the_same_on_any_number_of_threads() {
        let text = "name = \"t\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 40\n[[traffic]]\n\
                    pattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 1\n";
        let s = crate::config::Scenario::parse(text, "t.toml", None).unwrap();
        let t = &s.fabric().topology;
        assert!(t.gpus() as usize > 4 * BFS_CHUNK);
        let build = |threads, chunk| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| Topology::with_chunks(t.kinds.clone(), t.links.clone(), chunk))
                .unwrap()
        };
        let (a, b) = (build(1, BFS_CHUNK), build(3, BFS_CHUNK));
        let whole = build(1, t.gpus() as usize);
        let table = |t: &Topology| {
            (
                t.run_off.clone(),
                t.run_first.clone(),
                t.run_list.clone(),
                t.hop_links.clone(),
                t.dense.clone(),
                t.dense_run.clone(),
            )
        };
        assert!(table(&a) == table(&whole), "chunked against one search");
        assert!(table(&b) == table(&whole), "on three threads");
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
