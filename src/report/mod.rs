//! Results: metrics from a run, the `--json` object, the human table, and `--out` files.
//!
//! Invariant: output is a pure function of the run (no wall-clock time, no host names, no
//! hash-map iteration order), so the same scenario and seed give byte-identical output.

pub mod fabric;
pub mod figures;
pub mod plot;
pub mod trace;

use crate::config::Scenario;
use crate::engine::{Dur, Time};
use crate::net::NetRun;
use crate::stats::Sorted;
use crate::topology::{LinkClass, NodeKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// Min, mean, percentiles and max of a set of durations, in microseconds: exact,
/// nearest-rank ([`crate::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarizes picosecond values; all zero for an empty set.
    pub fn of_ps(values: impl IntoIterator<Item = u64>) -> Summary {
        let Some(v) = Sorted::new(values) else {
            return Summary::default();
        };
        let us = |ps: u64| ps as f64 / 1e6;
        Summary {
            min: us(v.min()),
            mean: v.mean() / 1e6,
            p50: us(v.percentile(50.0)),
            p99: us(v.percentile(99.0)),
            max: us(v.max()),
        }
    }
}

/// Mean and max of link utilization (busy time / makespan) over the links of one class
/// that carried traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Utilization {
    pub links: u64,
    pub mean: f64,
    pub max: f64,
}

/// Metrics of a packet-level run.
#[derive(Clone, Debug, Serialize)]
pub struct PacketMetrics {
    /// From the earliest message start to the last message completion.
    pub makespan_us: f64,
    pub messages: u64,
    /// Messages that never completed: they lost a packet in a lossy fabric without
    /// retransmission (`nic.retransmission = "none"`).
    pub messages_lost: u64,
    pub bytes_delivered: u64,
    pub bytes_dropped: u64,
    /// Per completed message: completion time minus start time.
    pub message_time_us: Summary,
    /// Mean over GPUs that receive anything: payload bytes received / makespan, 1e9 B/s.
    pub rx_gbytes_per_s_per_gpu: f64,
    /// By link class (nvlink, pcie, access, fabric); classes without traffic are absent.
    pub link_utilization: BTreeMap<&'static str, Utilization>,
    /// Largest egress queue seen anywhere, bytes waiting (not the packet on the wire).
    pub peak_queue_bytes: u64,
    /// PFC pause frames sent by scale-out switches.
    pub pfc_pauses: u64,
    /// Total time links were paused by PFC, summed over links.
    pub pfc_paused_us: f64,
    /// Credit stalls into NICs and NVSwitch chips (hop-by-hop flow control).
    pub credit_pauses: u64,
    pub ecn_marks: u64,
    pub cnps: u64,
    pub drops: u64,
    /// Go-back-N loss recovery (lossy fabrics): payload bytes sent again, bytes discarded
    /// at receivers (out of sequence), NAKs, retransmission timeouts, and messages lost
    /// to a QP out of retries (`retry_cnt`).
    pub bytes_retransmitted: u64,
    pub bytes_discarded: u64,
    pub naks: u64,
    pub timeouts: u64,
    pub qp_errors: u64,
    /// PXN: the most bytes a relay GPU held for relaying (0 without PXN).
    pub relay_peak_bytes: u64,
    pub lossless_overflow_bytes: u64,
    pub packets: u64,
    pub packet_hops: u64,
    pub events: u64,
}

impl PacketMetrics {
    pub fn of(scenario: &Scenario, run: &NetRun) -> PacketMetrics {
        let topo = &scenario.fabric().topology;
        let first_start = run
            .messages
            .iter()
            .map(|m| m.start)
            .min()
            .unwrap_or(Time::ZERO);
        let last_finish = run
            .messages
            .iter()
            .filter_map(|m| m.finish)
            .max()
            .unwrap_or(first_start);
        let makespan = last_finish.since(first_start);
        let mut rx = vec![0u64; topo.gpus() as usize];
        for m in run.messages.iter().filter(|m| m.finish.is_some()) {
            rx[m.dst.0 as usize] += m.bytes;
        }
        let receivers: Vec<u64> = rx.into_iter().filter(|&b| b > 0).collect();
        let rx_gbytes_per_s_per_gpu = if receivers.is_empty() || makespan.as_ps() == 0 {
            0.0
        } else {
            receivers.iter().sum::<u64>() as f64
                / receivers.len() as f64
                / makespan.as_secs_f64()
                / 1e9
        };
        let mut link_utilization = BTreeMap::new();
        for class in LinkClass::ALL {
            let used: Vec<f64> = topo
                .links()
                .iter()
                .zip(&run.links)
                .filter(|(l, s)| l.class == class && s.wire_bytes > 0)
                .map(|(_, s)| s.busy.as_ps() as f64 / makespan.as_ps().max(1) as f64)
                .collect();
            if !used.is_empty() {
                link_utilization.insert(
                    class.as_str(),
                    Utilization {
                        links: used.len() as u64,
                        mean: used.iter().sum::<f64>() / used.len() as f64,
                        max: used.iter().copied().fold(0.0, f64::max),
                    },
                );
            }
        }
        let into_switch = |i: usize| topo.kind(topo.links()[i].to) == NodeKind::Switch;
        let (mut pfc_pauses, mut pfc_paused, mut credit_pauses) = (0, Dur::ZERO, 0);
        for (i, s) in run.links.iter().enumerate() {
            if into_switch(i) {
                pfc_pauses += s.pause_frames;
                pfc_paused += s.paused;
            } else {
                credit_pauses += s.pause_frames;
            }
        }
        PacketMetrics {
            makespan_us: makespan.as_us_f64(),
            messages: run.messages.len() as u64,
            messages_lost: run.messages.iter().filter(|m| m.finish.is_none()).count() as u64,
            bytes_delivered: run.bytes_delivered,
            bytes_dropped: run.bytes_dropped,
            message_time_us: Summary::of_ps(
                run.messages
                    .iter()
                    .filter_map(|m| m.finish.map(|f| f.since(m.start).as_ps())),
            ),
            rx_gbytes_per_s_per_gpu,
            link_utilization,
            peak_queue_bytes: run
                .links
                .iter()
                .map(|l| l.peak_queue_bytes)
                .max()
                .unwrap_or(0),
            pfc_pauses,
            pfc_paused_us: pfc_paused.as_us_f64(),
            credit_pauses,
            ecn_marks: run.links.iter().map(|l| l.ecn_marks).sum(),
            cnps: run.cnps,
            drops: run.links.iter().map(|l| l.drops).sum(),
            bytes_retransmitted: run.recovery.bytes_retransmitted,
            bytes_discarded: run.recovery.bytes_discarded,
            naks: run.recovery.naks,
            timeouts: run.recovery.timeouts,
            qp_errors: run.recovery.qp_errors,
            relay_peak_bytes: run.relay_peak_bytes,
            lossless_overflow_bytes: run.lossless_overflow_bytes,
            packets: run.packets,
            packet_hops: run.packet_hops,
            events: run.queue.processed,
        }
    }

    /// Rows of the human-readable table: (metric, value, unit).
    fn rows(&self) -> Vec<(String, String, &'static str)> {
        let s = &self.message_time_us;
        let mut rows = vec![
            ("makespan".into(), format!("{:.3}", self.makespan_us), "us"),
            ("messages".into(), self.messages.to_string(), ""),
            (
                "bytes delivered".into(),
                self.bytes_delivered.to_string(),
                "B",
            ),
            ("message time min".into(), format!("{:.3}", s.min), "us"),
            ("message time mean".into(), format!("{:.3}", s.mean), "us"),
            ("message time p50".into(), format!("{:.3}", s.p50), "us"),
            ("message time p99".into(), format!("{:.3}", s.p99), "us"),
            ("message time max".into(), format!("{:.3}", s.max), "us"),
            (
                "rx per GPU".into(),
                format!("{:.2}", self.rx_gbytes_per_s_per_gpu),
                "GB/s",
            ),
        ];
        for (class, u) in &self.link_utilization {
            rows.push((
                format!("{class} utilization mean/max"),
                format!("{:.3} / {:.3}", u.mean, u.max),
                "",
            ));
        }
        rows.extend([
            ("peak queue".into(), self.peak_queue_bytes.to_string(), "B"),
            ("PFC pauses".into(), self.pfc_pauses.to_string(), ""),
            (
                "PFC paused time".into(),
                format!("{:.3}", self.pfc_paused_us),
                "us",
            ),
            ("credit stalls".into(), self.credit_pauses.to_string(), ""),
            (
                "ECN marks / CNPs".into(),
                format!("{} / {}", self.ecn_marks, self.cnps),
                "",
            ),
            (
                "drops / lost messages".into(),
                format!("{} / {}", self.drops, self.messages_lost),
                "",
            ),
            (
                "resent / discarded, NAKs / timeouts / QP errors".into(),
                format!(
                    "{} B / {} B, {} / {} / {}",
                    self.bytes_retransmitted,
                    self.bytes_discarded,
                    self.naks,
                    self.timeouts,
                    self.qp_errors
                ),
                "",
            ),
            ("packets".into(), self.packets.to_string(), ""),
            ("packet hops".into(), self.packet_hops.to_string(), ""),
            ("events".into(), self.events.to_string(), ""),
        ]);
        if self.relay_peak_bytes > 0 {
            rows.push((
                "PXN relay buffer peak".into(),
                self.relay_peak_bytes.to_string(),
                "B",
            ));
        }
        rows
    }
}

/// The `metrics` of `afdsim run --json`: the network's, or an AFD step's with the network's
/// under `network`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Metrics<'a> {
    Network(&'a PacketMetrics),
    Afd(AfdRunMetrics<'a>),
    Serving(ServingRunMetrics<'a>),
}

/// A serving run: its metrics, and the network metrics of its KV-cache transfers.
#[derive(Serialize)]
pub struct ServingRunMetrics<'a> {
    #[serde(flatten)]
    pub serving: &'a crate::serving::ServingMetrics,
    pub kv_network: &'a PacketMetrics,
}

#[derive(Serialize)]
pub struct AfdRunMetrics<'a> {
    #[serde(flatten)]
    pub afd: &'a crate::afd::AfdMetrics,
    pub network: &'a PacketMetrics,
}

/// The object `afdsim run --json` prints.
#[derive(Serialize)]
pub struct RunOutput<'a> {
    pub scenario: &'a str,
    pub seed: u64,
    pub level: &'static str,
    pub metrics: Metrics<'a>,
}

impl RunOutput<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metrics serialize")
    }

    pub fn write_human(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "scenario {}  level {}  seed {}",
            self.scenario, self.level, self.seed
        )?;
        let mut rows = Vec::new();
        let network = match &self.metrics {
            Metrics::Network(n) => n,
            Metrics::Afd(a) => {
                let m = a.afd;
                rows.extend([
                    (
                        format!("TPOT mean / p99 over {} step(s)", m.steps),
                        format!("{:.3} / {:.3}", m.tpot_ms, m.tpot_p99_ms),
                        "ms",
                    ),
                    ("tokens/s".into(), format!("{:.0}", m.tokens_per_s), ""),
                    (
                        "tokens/s per GPU".into(),
                        format!("{:.1}", m.tokens_per_s_per_gpu),
                        "",
                    ),
                    (
                        "GPUs attention / FFN, micro-batches".into(),
                        format!("{} / {}, {}", m.attention_gpus, m.ffn_gpus, m.micro_batches),
                        "",
                    ),
                    (
                        "busy attention / FFN".into(),
                        format!(
                            "{:.3} / {:.3}",
                            m.attention_busy_fraction, m.ffn_busy_fraction
                        ),
                        "",
                    ),
                    (
                        "FFN load imbalance".into(),
                        format!("{:.3}", m.ffn_load_imbalance),
                        "",
                    ),
                    (
                        "mean attention / FFN kernel".into(),
                        format!("{:.1} / {:.1}", m.attention_us, m.ffn_us),
                        "us",
                    ),
                    (
                        "mean dispatch / combine".into(),
                        format!("{:.1} / {:.1}", m.dispatch_us, m.combine_us),
                        "us",
                    ),
                    ("communication library".into(), m.comm.clone(), ""),
                    (
                        "dispatch fixed / wire / queueing".into(),
                        format!(
                            "{:.1} / {:.1} / {:.1}",
                            m.dispatch_fixed_us, m.dispatch_wire_us, m.dispatch_queue_us
                        ),
                        "us",
                    ),
                    (
                        "combine fixed / wire / queueing".into(),
                        format!(
                            "{:.1} / {:.1} / {:.1}",
                            m.combine_fixed_us, m.combine_wire_us, m.combine_queue_us
                        ),
                        "us",
                    ),
                    (
                        "compute lost to communication kernels' SMs".into(),
                        format!("{:.1}", 100.0 * m.sm_contention_fraction),
                        "% of GPU time",
                    ),
                    (
                        "communication exposed (on the critical path)".into(),
                        format!("{:.1}", 100.0 * m.comm_time_fraction_exposed),
                        "% of step",
                    ),
                    (
                        "communication hidden by overlap".into(),
                        format!("{:.1}", 100.0 * m.comm_hidden_fraction),
                        "% of transfer time",
                    ),
                ]);
                a.network
            }
            Metrics::Serving(sv) => {
                rows.extend(serving_rows(sv.serving));
                sv.kv_network
            }
        };
        // A serving run's network rows describe its KV transfers: none when aggregated.
        if network.messages > 0 || !matches!(self.metrics, Metrics::Serving(_)) {
            rows.extend(network.rows());
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (name, value, unit) in rows {
            writeln!(w, "  {name:<width$}  {value:>20} {unit}")?;
        }
        Ok(())
    }
}

/// The human table's lines of a serving run.
fn serving_rows(m: &crate::serving::ServingMetrics) -> Vec<(String, String, &'static str)> {
    let d = |x: &crate::serving::Dist| format!("{:.1} / {:.1} / {:.1}", x.p50, x.p90, x.p99);
    let mut rows = vec![
        (
            "deployment, GPUs".to_string(),
            format!("{}, {}", m.deployment, m.gpus),
            "",
        ),
        (
            "requests, offered rate".into(),
            match m.rate_per_s {
                Some(r) => format!("{}, {r:.3}", m.requests),
                None => format!("{}, trace", m.requests),
            },
            "req/s",
        ),
        (
            "throughput, whole run (first arrival to last finish)".into(),
            format!("{:.3}", m.throughput_req_per_s),
            "req/s",
        ),
        (
            format!(
                "throughput, steady (2nd half of the arrivals, {:.1} s)",
                m.steady_window_s
            ),
            format!("{:.3}", m.throughput_steady_req_per_s),
            "req/s",
        ),
        (
            "output tokens/s, per GPU".into(),
            format!(
                "{:.0}, {:.1}",
                m.output_tokens_per_s, m.tokens_per_s_per_gpu
            ),
            "",
        ),
        ("TTFT p50 / p90 / p99".into(), d(&m.ttft_ms), "ms"),
        ("TPOT p50 / p90 / p99".into(), d(&m.tpot_ms), "ms"),
        ("latency p50 / p90 / p99".into(), d(&m.latency_ms), "ms"),
    ];
    if let (Some(slo), Some(met), Some(good)) = (&m.slo, m.slo_met, m.goodput_req_per_s) {
        rows.push((
            format!(
                "SLO p{} TTFT <= {} ms, TPOT <= {} ms",
                slo.percentile, slo.ttft_ms, slo.tpot_ms
            ),
            format!("{}, goodput {good:.3}", if met { "met" } else { "missed" }),
            "req/s",
        ));
    }
    rows.extend([
        (
            "decode iterations, mean batch".into(),
            format!("{}, {:.1}", m.decode_iterations, m.mean_decode_batch),
            "",
        ),
        (
            "busy decode / prefill pool".into(),
            format!(
                "{:.3} / {:.3}",
                m.decode_busy_fraction, m.prefill_busy_fraction
            ),
            "",
        ),
        (
            "prompt tokens prefilled / cached".into(),
            format!("{} / {}", m.prefill_tokens, m.cached_tokens),
            "",
        ),
        (
            "KV cache per GPU".into(),
            format!("{}", m.kv_capacity_tokens_per_gpu),
            "tokens",
        ),
    ]);
    if let (Some(n), Some(tokens)) = (m.preemptions, m.recomputed_tokens) {
        rows.push((
            "preemptions, tokens recomputed".into(),
            format!("{n}, {tokens}"),
            "",
        ));
    }
    rows.extend([
        (
            "KV transfer mean / p99".into(),
            format!("{:.3} / {:.3}", m.kv_transfer_ms.mean, m.kv_transfer_ms.p99),
            "ms",
        ),
        (
            "iterations simulated / asked".into(),
            format!("{} / {}", m.iterations_simulated, m.iteration_queries),
            "",
        ),
    ]);
    rows
}

/// Writes `metrics.json`, `messages.csv` and `links.csv` into `dir` (created if needed).
pub fn write_out_dir(
    dir: &Path,
    out: &RunOutput,
    scenario: &Scenario,
    run: &NetRun,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("metrics.json"), out.to_json() + "\n")?;

    let mut w = csv::Writer::from_path(dir.join("messages.csv"))?;
    w.write_record(["src", "dst", "bytes", "start_us", "finish_us", "time_us"])?;
    for m in &run.messages {
        let (finish, time) = match m.finish {
            Some(f) => (
                format!("{:.6}", f.as_us_f64()),
                format!("{:.6}", f.since(m.start).as_us_f64()),
            ),
            // Lost (a packet was dropped): empty cells, never a made-up time.
            None => (String::new(), String::new()),
        };
        w.write_record([
            m.src.0.to_string(),
            m.dst.0.to_string(),
            m.bytes.to_string(),
            format!("{:.6}", m.start.as_us_f64()),
            finish,
            time,
        ])?;
    }
    w.flush()?;

    let mut w = csv::Writer::from_path(dir.join("links.csv"))?;
    w.write_record([
        "link",
        "class",
        "from",
        "to",
        "rate_gbps",
        "wire_bytes",
        "packets",
        "busy_us",
        "peak_queue_bytes",
        "peak_held_bytes",
        "pause_frames",
        "paused_us",
        "ecn_marks",
        "drops",
    ])?;
    let topo = &scenario.fabric().topology;
    for (i, (l, s)) in topo.links().iter().zip(&run.links).enumerate() {
        w.write_record([
            i.to_string(),
            l.class.as_str().to_string(),
            format!("{}{}", topo.kind(l.from).as_str(), l.from.0),
            format!("{}{}", topo.kind(l.to).as_str(), l.to.0),
            format!("{}", l.rate.gbps_f64()),
            s.wire_bytes.to_string(),
            s.packets.to_string(),
            format!("{:.6}", s.busy.as_us_f64()),
            s.peak_queue_bytes.to_string(),
            s.peak_held_bytes.to_string(),
            s.pause_frames.to_string(),
            format!("{:.6}", s.paused.as_us_f64()),
            s.ecn_marks.to_string(),
            s.drops.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_exact_at_the_extremes() {
        let s = Summary::of_ps([1_000_000, 2_000_000, 3_000_000]);
        assert_eq!((s.min, s.mean, s.max), (1.0, 2.0, 3.0));
        assert_eq!(s.p50, 2.0);
        let s = Summary::of_ps((1..=100).map(|i| i * 1_000_000));
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert_eq!(Summary::of_ps([]), Summary::default());
    }
}
