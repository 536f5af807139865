//! Results: metrics from a run, the `--json` object, the human table, and `--out` files.
//!
//! Invariant: output is a pure function of the run (no wall-clock time, no host names, no
//! hash-map iteration order), so the same scenario and seed give byte-identical output.

pub mod figures;
pub mod plot;

use crate::config::Scenario;
use crate::engine::Time;
use crate::packet::PacketRun;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// Min, mean, percentiles and max of a set of durations, in microseconds.
///
/// All exact: percentiles are nearest-rank over the sorted values. Every run holds its
/// per-message results in memory anyway, and sorting a million values takes milliseconds.
/// (hdrhistogram 7.6.0 was tried first; its `value_at_quantile(0.5)` of 1, 2, 3 us did
/// not return 2 us.)
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
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_unstable();
        let us = |ps: u64| ps as f64 / 1e6;
        let sum: u128 = v.iter().map(|&x| x as u128).sum();
        Summary {
            min: us(v[0]),
            mean: sum as f64 / v.len() as f64 / 1e6,
            p50: us(nearest_rank(&v, 0.50)),
            p99: us(nearest_rank(&v, 0.99)),
            max: us(v[v.len() - 1]),
        }
    }
}

/// The smallest value with at least `q` of the values at or below it.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Metrics of a packet-level run.
#[derive(Clone, Debug, Serialize)]
pub struct PacketMetrics {
    /// From the earliest message start to the last message completion.
    pub makespan_us: f64,
    pub messages: u64,
    pub bytes_delivered: u64,
    /// Per message: completion time minus start time.
    pub message_time_us: Summary,
    /// Mean over GPUs that receive anything: bytes received / makespan, in 1e9 B/s.
    pub rx_gbytes_per_s_per_gpu: f64,
    pub packets: u64,
    pub packet_hops: u64,
    pub events: u64,
    pub peak_pending_events: u64,
    /// Busy time / makespan over links that carried traffic.
    pub link_utilization_mean: f64,
    pub link_utilization_max: f64,
    /// Largest switch egress queue seen, bytes waiting (not counting the packet on the wire).
    pub peak_queue_bytes: u64,
}

impl PacketMetrics {
    pub fn of(scenario: &Scenario, run: &PacketRun) -> PacketMetrics {
        let first_start = run
            .messages
            .iter()
            .map(|m| m.start)
            .min()
            .unwrap_or(Time::ZERO);
        let last_finish = run
            .messages
            .iter()
            .map(|m| m.finish)
            .max()
            .unwrap_or(Time::ZERO);
        let makespan = last_finish.since(first_start);
        let mut rx = vec![0u64; scenario.topology.gpus() as usize];
        for m in &run.messages {
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
        let used: Vec<f64> = run
            .links
            .iter()
            .filter(|l| l.packets > 0)
            .map(|l| l.busy.as_ps() as f64 / makespan.as_ps().max(1) as f64)
            .collect();
        PacketMetrics {
            makespan_us: makespan.as_us_f64(),
            messages: run.messages.len() as u64,
            bytes_delivered: run.bytes_delivered,
            message_time_us: Summary::of_ps(
                run.messages.iter().map(|m| m.finish.since(m.start).as_ps()),
            ),
            rx_gbytes_per_s_per_gpu,
            packets: run.packets,
            packet_hops: run.packet_hops,
            events: run.queue.processed,
            peak_pending_events: run.queue.peak_pending,
            link_utilization_mean: if used.is_empty() {
                0.0
            } else {
                used.iter().sum::<f64>() / used.len() as f64
            },
            link_utilization_max: used.iter().copied().fold(0.0, f64::max),
            peak_queue_bytes: run
                .links
                .iter()
                .map(|l| l.peak_queue_bytes)
                .max()
                .unwrap_or(0),
        }
    }

    /// Rows of the human-readable table: (metric, value, unit).
    fn rows(&self) -> Vec<(&'static str, String, &'static str)> {
        let s = &self.message_time_us;
        vec![
            ("makespan", format!("{:.3}", self.makespan_us), "us"),
            ("messages", self.messages.to_string(), ""),
            ("bytes delivered", self.bytes_delivered.to_string(), "B"),
            ("message time min", format!("{:.3}", s.min), "us"),
            ("message time mean", format!("{:.3}", s.mean), "us"),
            ("message time p50", format!("{:.3}", s.p50), "us"),
            ("message time p99", format!("{:.3}", s.p99), "us"),
            ("message time max", format!("{:.3}", s.max), "us"),
            (
                "rx per GPU",
                format!("{:.2}", self.rx_gbytes_per_s_per_gpu),
                "GB/s",
            ),
            (
                "link utilization mean",
                format!("{:.3}", self.link_utilization_mean),
                "",
            ),
            (
                "link utilization max",
                format!("{:.3}", self.link_utilization_max),
                "",
            ),
            ("peak switch queue", self.peak_queue_bytes.to_string(), "B"),
            ("packets", self.packets.to_string(), ""),
            ("packet hops", self.packet_hops.to_string(), ""),
            ("events", self.events.to_string(), ""),
        ]
    }
}

/// The object `afdsim run --json` prints.
#[derive(Serialize)]
pub struct RunOutput<'a> {
    pub scenario: &'a str,
    pub seed: u64,
    pub level: &'static str,
    pub metrics: &'a PacketMetrics,
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
        let rows = self.metrics.rows();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (name, value, unit) in rows {
            writeln!(w, "  {name:<width$}  {value:>14} {unit}")?;
        }
        Ok(())
    }
}

/// Writes `metrics.json`, `messages.csv` and `links.csv` into `dir` (created if needed).
pub fn write_out_dir(
    dir: &Path,
    out: &RunOutput,
    scenario: &Scenario,
    run: &PacketRun,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("metrics.json"), out.to_json() + "\n")?;

    let mut w = csv::Writer::from_path(dir.join("messages.csv"))?;
    w.write_record(["src", "dst", "bytes", "start_us", "finish_us", "time_us"])?;
    for m in &run.messages {
        w.write_record([
            m.src.0.to_string(),
            m.dst.0.to_string(),
            m.bytes.to_string(),
            format!("{:.6}", m.start.as_us_f64()),
            format!("{:.6}", m.finish.as_us_f64()),
            format!("{:.6}", m.finish.since(m.start).as_us_f64()),
        ])?;
    }
    w.flush()?;

    let mut w = csv::Writer::from_path(dir.join("links.csv"))?;
    w.write_record([
        "link",
        "from",
        "to",
        "rate_gbps",
        "wire_bytes",
        "packets",
        "busy_us",
        "peak_queue_bytes",
    ])?;
    for (i, (l, s)) in scenario.topology.links().iter().zip(&run.links).enumerate() {
        w.write_record([
            i.to_string(),
            l.from.0.to_string(),
            l.to.0.to_string(),
            format!("{}", l.rate.gbps_f64()),
            s.wire_bytes.to_string(),
            s.packets.to_string(),
            format!("{:.6}", s.busy.as_us_f64()),
            s.peak_queue_bytes.to_string(),
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
