//! What a run will hold in memory, estimated before it is allocated, and a check that
//! refuses a run that cannot fit with an [`InputError`] rather than an allocation abort.
//!
//! The state that grows with a scenario: per-message state at every level (the message
//! list, the level's own records, the results: a few hundred bytes per message, 67 M
//! messages for an all-to-all on 8,192 GPUs), the links' state (about 450 bytes a link at
//! the packet level) and the next-hop table (`topology::Topology`: runs of destinations
//! with the same next hops, under 1 KB per GPU on every fabric kind; it was 4 bytes per
//! fabric node and GPU, 44 GB for 8,192 HGX nodes, before it was run-length encoded).
//! Everything else (queues, packets in flight under PFC or credits) was small beside these
//! on every run measured.

use super::TrafficFile;
use crate::error::InputError;
use crate::net::Level;
use crate::topology::{FabricSpec, GraphSize};

/// The environment variable that replaces the memory this machine has available (bytes).
pub const LIMIT_ENV: &str = "AFDSIM_MEMORY_LIMIT_BYTES";

/// The process before any scenario state: the binary, embedded tables, allocator.
const BASE_BYTES: u64 = 8_000_000;
/// The next-hop table per GPU: its runs (12 bytes each), their link lists and the per-GPU
/// index of the nodes with many runs. Measured (`afdsim fabric show`, 2026-12-03): 430 B per
/// GPU on HGX with a fat tree (8,192 GPUs, 17.7 runs per GPU), 1,074 B on the rail-optimized
/// leaf/spine (1,024 GPUs, 46.8 runs: a rail's leaf alternates between a port toward one GPU
/// and its uplinks, and its spines are indexed per GPU), 868 B on 8 NVL72 racks (576 GPUs),
/// 670 B on 114 racks with a fat tree (8,208 GPUs); 1,536 leaves 1.4x room over the largest.
const ROUTING_BYTES_PER_GPU: u64 = 1_536;
/// Per fabric node: its links' lists, its runs' offset and, while the table is built, its
/// growing run list and distance.
const ROUTING_BYTES_PER_NODE: u64 = 128;
/// Per fabric link: the packet level's link state (a sender line and a receiver line of 64
/// bytes each, the rest, counters and source groups, beside: about 310 bytes)
/// and the flow level's (capacity, sums, its list and rate multiset), with their vectors.
/// Measured as the slope of peak RSS over links of the one-message runs below: 464 B.
const BYTES_PER_LINK: u64 = 480;
/// Per message, by level: the scenario's list (24 B), the level's own state (the packet
/// level's 48-byte message state, one packet each in flight at 1 B per pair; the flow
/// level's per-flow and per-route-link entries, 20 bytes a link; the analytical level's
/// flows) and the results (40 B), at the peak.
const PACKET_BYTES_PER_MESSAGE: u64 = 400;
/// Per message and packet-level thread beyond the first: each thread holds every message's
/// receiver state (16 B), the sender state (32 B) of the range of messages its sources send
/// (only its share where messages are listed by source; all of them at worst) and task
/// counters. Measured 32 B (`hgx128-a2a`, 1,047,552 messages: 155 MB peak on one thread,
/// 188 MB on two, 2026-12-04; 75 B before the sender and receiver were split).
const PACKET_BYTES_PER_MESSAGE_PER_THREAD: u64 = 64;
const FLOW_BYTES_PER_MESSAGE: u64 = 360;
const ANALYTICAL_BYTES_PER_MESSAGE: u64 = 300;

/// The bytes a run will hold at its peak, by part. Conservative: it over-estimates the peak
/// resident set by at most about 1.4x on the runs it was fitted on.
///
/// Fitted on 2026-12-04 on peak RSS (`/usr/bin/time`, release build) of all-to-alls of 1 B
/// per pair on the `hgx-h100` fabric (rail-optimized leaf/spine) with 8, 16, 32, 64 and 128
/// nodes of 8 GPUs, at the packet, flow and analytical levels, and the same fabrics with
/// one message for the fabric alone (8.4 / 9.7 / 12.3 / 17.1 / 26.9 MB; 2,688 to 43,008
/// links). Per message, beyond the one-message run: packet 496 / 428 / 356 / 341 / 292 B
/// (64 to 1,024 GPUs; the small runs carry fixed costs), flow 176 / 234 / 221 / 300 / 300 B,
/// analytical 121 / 200 / 234 / 254 / 263 B. Estimate over measured peak: packet 1.01-1.34,
/// flow 1.14-1.36, analytical 1.13-1.18, one message 1.06-1.08. Out of the fit: the
/// 8,192-GPU all-to-all of 4 KiB per pair at the flow level (HGX with a fat tree, 67.1 M
/// flows, 360,448 links) peaked at 19.9 GB against 24.4 GB estimated (1.22x); 2,048 GPUs
/// of the same, 1.29 GB. The packet level holds less at larger messages, where PFC and
/// credits bound the packets in flight (`hgx128-a2a` at 256 KiB per pair: 173 MB against
/// 326 MB at 1 B), so the 1 B runs are its worst case.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub base_bytes: u64,
    /// The next-hop table (run-length encoded: linear in GPUs and nodes).
    pub routing_bytes: u64,
    /// The links' state.
    pub links_bytes: u64,
    /// Per-message state at the run's level.
    pub messages_bytes: u64,
}

impl MemoryEstimate {
    pub fn total_bytes(&self) -> u64 {
        self.base_bytes
            .saturating_add(self.routing_bytes)
            .saturating_add(self.links_bytes)
            .saturating_add(self.messages_bytes)
    }
}

/// The bytes a run on a fabric of `size` with `messages` messages holds at `level`, the
/// packet level on `threads` threads.
pub fn estimate(size: &GraphSize, messages: u64, level: Level, threads: u64) -> MemoryEstimate {
    let per_message = match level {
        Level::Packet => PACKET_BYTES_PER_MESSAGE.saturating_add(
            threads
                .saturating_sub(1)
                .saturating_mul(PACKET_BYTES_PER_MESSAGE_PER_THREAD),
        ),
        Level::Flow => FLOW_BYTES_PER_MESSAGE,
        Level::Analytical => ANALYTICAL_BYTES_PER_MESSAGE,
    };
    MemoryEstimate {
        base_bytes: BASE_BYTES,
        routing_bytes: size
            .gpus
            .saturating_mul(ROUTING_BYTES_PER_GPU)
            .saturating_add(size.nodes.saturating_mul(ROUTING_BYTES_PER_NODE)),
        links_bytes: size.links.saturating_mul(BYTES_PER_LINK),
        messages_bytes: messages.saturating_mul(per_message),
    }
}

/// The messages each `[[traffic]]` entry makes on `gpus` GPUs, counted from the entry as
/// written (before any is generated). `moe-dispatch` gives an upper bound (a source sends
/// at most one message to each other GPU, and at most one per token and choice); an entry
/// config will reject counts 0.
pub fn traffic_messages(traffic: &[TrafficFile], gpus: u64) -> Vec<u64> {
    let others = gpus.saturating_sub(1);
    traffic
        .iter()
        .map(|t| match t.pattern.as_str() {
            "message" => 1,
            "all-to-all" => gpus.saturating_mul(others),
            "incast" => t.senders.as_ref().map_or(0, |s| s.len() as u64),
            "permutation" => gpus,
            "matrix" => t.matrix_bytes.as_ref().map_or(0, |rows| {
                rows.iter()
                    .map(|r| r.iter().filter(|&&b| b != 0).count() as u64)
                    .sum()
            }),
            "moe-dispatch" => {
                let choices =
                    t.tokens_per_gpu
                        .unwrap_or(0)
                        .max(0)
                        .saturating_mul(t.top_k.unwrap_or(0).max(0)) as u64;
                gpus.saturating_mul(others.min(choices))
            }
            _ => 0,
        })
        .collect()
}

/// The bytes this process may still allocate: `AFDSIM_MEMORY_LIMIT_BYTES` when set, else
/// `MemAvailable` from `/proc/meminfo`, lowered to the room left under a cgroup v2 limit;
/// `None` when neither can be read (the check is then skipped).
fn available_bytes(origin: &str) -> Result<Option<(u64, &'static str)>, InputError> {
    if let Ok(v) = std::env::var(LIMIT_ENV) {
        return match v.trim().parse::<u64>() {
            Ok(b) => Ok(Some((b, LIMIT_ENV))),
            Err(_) => Err(InputError::new(
                origin,
                "",
                format!("{LIMIT_ENV}=`{v}` is not a number of bytes"),
            )),
        };
    }
    let Some(mut avail) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_available_bytes(&t))
    else {
        return Ok(None);
    };
    let mut what = "MemAvailable in /proc/meminfo";
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
    if let (Some(max), Some(cur)) = (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) && max.saturating_sub(cur) < avail
    {
        avail = max.saturating_sub(cur);
        what = "the cgroup's memory.max less memory.current";
    }
    Ok(Some((avail, what)))
}

/// `MemAvailable` (kB in the file) in bytes.
fn meminfo_available_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Refuses a scenario whose run cannot fit in the memory available, before the fabric's
/// routes or the messages are built: an allocation failure is never the user's error
/// message. `origin` names the scenario file; `spec` is the resolved fabric, not yet built.
/// Without a readable figure for the memory available, or when the fabric is invalid
/// (the builder then reports it), it passes.
pub fn check(
    origin: &str,
    spec: &FabricSpec,
    traffic: &[TrafficFile],
    level: Level,
) -> Result<(), InputError> {
    let Ok(size) = crate::topology::size(spec) else {
        return Ok(());
    };
    let per_entry = traffic_messages(traffic, size.gpus);
    let messages: u64 = per_entry.iter().fold(0, |a, &m| a.saturating_add(m));
    // At most one packet-level thread per NVLink domain, and a domain holds a node or more.
    let threads = (crate::net::packet_threads() as u64).min(spec.nodes.max(1) as u64);
    let need = estimate(&size, messages, level, threads);
    let Some((have, source)) = available_bytes(origin)? else {
        return Ok(());
    };
    if need.total_bytes() <= have {
        return Ok(());
    }
    // Blame the larger part: the fabric's size, or the traffic entry with most messages.
    let biggest = per_entry
        .iter()
        .enumerate()
        .max_by_key(|&(i, &m)| (m, std::cmp::Reverse(i)))
        .map(|(i, &m)| (i, m));
    let key = match biggest {
        Some((i, _))
            if need.messages_bytes >= need.routing_bytes.saturating_add(need.links_bytes) =>
        {
            format!("traffic[{i}]")
        }
        _ => "fabric.nodes".to_string(),
    };
    let other_levels: Vec<&str> = Level::ALL
        .into_iter()
        .filter(|&l| l != level && estimate(&size, messages, l, threads).total_bytes() <= have)
        .map(Level::as_str)
        .collect();
    let packet_threads = level == Level::Packet && threads > 1;
    let level_hint = if packet_threads && estimate(&size, messages, level, 1).total_bytes() <= have
    {
        // Each thread holds every message's receiver state.
        format!(
            "run it on fewer threads (--threads 1 fits; each of {threads} holds the receiver state of every message); or "
        )
    } else if other_levels.is_empty() {
        String::new()
    } else {
        format!(
            "run at the {} level (--level {}), which needs less here; or ",
            other_levels.join(" or "),
            other_levels[0]
        )
    };
    Err(InputError::new(
        origin,
        key,
        format!(
            "this run needs about {} of memory ({} of routes and links for {} GPUs and {} fabric \
             nodes (fabric.nodes = {}), {} for {} messages at the {} level{}) but this machine has {} \
             available ({source}): {level_hint}use fewer nodes (routing grows with GPUs and \
             fabric nodes) or fewer messages (a pattern over fewer GPUs; message size adds little)",
            gb(need.total_bytes()),
            gb(need.routing_bytes.saturating_add(need.links_bytes)),
            size.gpus,
            size.nodes,
            spec.nodes,
            gb(need.messages_bytes),
            messages,
            level.as_str(),
            if packet_threads {
                format!(" on {threads} threads")
            } else {
                String::new()
            },
            gb(have),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(nodes: u64, gpus: u64) -> GraphSize {
        GraphSize {
            gpus,
            nodes,
            links: 0,
        }
    }

    #[test]
    fn estimate_grows_with_nodes_gpus_and_messages() {
        for level in Level::ALL {
            let e = |n, g, m| estimate(&size(n, g), m, level, 1).total_bytes();
            assert!(e(100, 64, 1000) < e(200, 64, 1000), "{level:?}");
            assert!(e(100, 64, 1000) < e(100, 128, 1000), "{level:?}");
            assert!(e(100, 64, 1000) < e(100, 64, 2000), "{level:?}");
            assert!(e(100, 64, 0) >= BASE_BYTES, "{level:?}");
        }
    }

    #[test]
    fn estimate_saturates_instead_of_overflowing() {
        let e = estimate(&size(u64::MAX, u64::MAX), u64::MAX, Level::Flow, 1);
        assert_eq!(e.total_bytes(), u64::MAX);
    }

    #[test]
    fn the_issue_runs_do_not_fit_a_workstation() {
        // 8,192 HGX nodes (65,536 GPUs, 168,960 fabric nodes), all-to-all: the 4.3 G
        // messages do not fit; the routes (44 GB when they were a nodes x GPUs table) do.
        let e = estimate(&size(168_960, 65_536), 65_536 * 65_535, Level::Flow, 1);
        assert!(e.routing_bytes < 200_000_000, "{}", e.routing_bytes);
        assert!(e.messages_bytes > 1_000_000_000_000);
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let t = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(meminfo_available_bytes(t), Some(22_000_000 * 1024));
        assert_eq!(meminfo_available_bytes("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn traffic_counts_follow_the_patterns() {
        let t: Vec<TrafficFile> = [
            "pattern = \"all-to-all\"\nbytes = 1",
            "pattern = \"message\"\nbytes = 1\nsrc = 0\ndst = 1",
            "pattern = \"incast\"\nbytes = 1\nsenders = [1, 2, 3]\nreceiver = 0",
            "pattern = \"permutation\"\nbytes = 1",
            "pattern = \"matrix\"\nmatrix_bytes = [[0, 5], [0, 0]]",
            "pattern = \"moe-dispatch\"\ntokens_per_gpu = 2\nexperts = 8\ntop_k = 1\nhidden = 8",
        ]
        .iter()
        .map(|s| toml::from_str(s).unwrap())
        .collect();
        assert_eq!(traffic_messages(&t, 8), vec![56, 1, 3, 8, 1, 16]);
    }
}
