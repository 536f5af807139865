//! The SLO search: the highest Poisson arrival rate at which a deployment meets TTFT and
//! TPOT limits at a percentile, by bracketing then bisection.
//!
//! - Bracket: probe the traffic's own rate; while it meets the limits double it, while it
//!   does not halve it, until the two sides of the limit are found.
//! - Bisect on the geometric mean until the bracket is within `tolerance` (relative) or
//!   the probes run out.
//!
//! Every probe serves the same number of requests with the same seed (only the arrival
//! times scale), and reuses the iteration times simulated by earlier probes. Feasibility is
//! assumed to fall monotonically with the rate; the answer is the highest rate that met
//! the limits among the probes, whatever order they came in.
//!
//! Invariant: the probe sequence is a pure function of the scenario, the limits and the
//! options.

use serde::Serialize;

use super::traffic::Request;
use super::{ProbeEnd, Progress, Server, ServingMetrics, Slo, at_percentile, meets};
use crate::compute::QueryError;
use crate::error::InputError;

/// Why a search stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("an iteration time cannot be computed: {0}")]
    Compute(#[from] QueryError),
}

/// One probe of the search.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub rate_per_s: f64,
    pub met: bool,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub tokens_per_s_per_gpu: f64,
    /// Sequences preempted (`admission = "grow"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<u64>,
    /// Requests finished when the probe was stopped for certainly missing the limits
    /// (`Options::stop_early`); then `ttft_ms` and `tpot_ms` are lower bounds of the whole
    /// run's percentiles and `tokens_per_s_per_gpu` the rate so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after: Option<u64>,
    /// The deployment fell behind the offered rate (`Options::keep_up`): missed whatever
    /// the percentiles.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub falls_behind: bool,
}

/// What the search found.
#[derive(Clone, Debug, Serialize)]
pub struct SearchResult {
    pub slo: Slo,
    pub probes: Vec<Probe>,
    /// The highest rate that met the limits, with its metrics (their `rate_per_s` is that
    /// rate); `None` if even the lowest rate probed did not.
    pub best_rate_per_s: Option<f64>,
    pub best: Option<ServingMetrics>,
    /// The lowest rate that missed them (the bracket's upper side), if one was probed.
    pub failed_rate_per_s: Option<f64>,
    /// The probe at the best rate (from another cell's search under [`search_cells`]).
    #[serde(skip)]
    pub best_probe: Option<Probe>,
}

/// Search options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub max_probes: u32,
    /// Stop when failed / best - 1 is at most this.
    pub tolerance: f64,
    /// Stop a probe's run as soon as it certainly misses the limits (enough requests
    /// over a limit already that the percentile is over it, whatever the rest do). The
    /// verdicts, and so the probes and the answer, are the same either way; only a missed
    /// probe's figures become bounds.
    pub stop_early: bool,
    /// A probe meets the limits only if the deployment keeps up with it: requests finished
    /// per second over the steady window at least this fraction of the offered rate
    /// (0: not checked). A short probe at a rate the deployment cannot sustain can still
    /// meet a loose TTFT limit (its whole arrival window may be shorter than the limit).
    pub keep_up: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_probes: 12,
            tolerance: 0.05,
            stop_early: true,
            keep_up: 0.0,
        }
    }
}

/// Where a search stands, for a progress display: the probe under way and its run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchProgress {
    /// The probe's number, from 1, and its rate.
    pub probe: u32,
    pub rate_per_s: f64,
    pub run: Progress,
}

/// Runs the search on `server`. `requests_at(rate)` draws the request stream at a rate.
pub fn search(
    server: &mut Server,
    slo: Slo,
    opts: Options,
    start_rate: f64,
    requests_at: impl FnMut(f64) -> Result<Vec<Request>, InputError>,
    on_probe: impl FnMut(&Probe),
) -> Result<SearchResult, SearchError> {
    search_observed(
        server,
        slo,
        opts,
        start_rate,
        requests_at,
        on_probe,
        &|_| {},
    )
}

/// [`search`], telling `progress` how each probe's run advances (from the search's thread
/// and the threads that simulate corners); the result is the same with any `progress`.
pub fn search_observed(
    server: &mut Server,
    slo: Slo,
    opts: Options,
    start_rate: f64,
    mut requests_at: impl FnMut(f64) -> Result<Vec<Request>, InputError>,
    on_probe: impl FnMut(&Probe),
    progress: &(dyn Fn(SearchProgress) + Sync),
) -> Result<SearchResult, SearchError> {
    let mut probe_at = |rate: f64, probe: u32| {
        let reqs = requests_at(rate)?;
        run_probe(server, &reqs, &slo, &opts, probe, rate, progress)
    };
    bracket(slo, opts, start_rate, &mut probe_at, on_probe)
}

/// A probe's run, as the searches keep it: the whole run's percentiles and metrics, or the
/// bounds it had when it was stopped for certainly missing the limits it ran under.
#[derive(Clone, Debug)]
enum Outcome {
    Whole {
        ttft_ms: f64,
        tpot_ms: f64,
        /// Steady throughput below `Options::keep_up` of the rate.
        falls_behind: bool,
        metrics: Box<ServingMetrics>,
    },
    Stopped {
        ttft_ms: f64,
        tpot_ms: f64,
        tokens_per_s_per_gpu: f64,
        requests_done: u64,
    },
}

impl Outcome {
    /// Whether the run meets `slo` (`None`: a stopped run whose bounds cannot tell).
    fn verdict(&self, slo: &Slo) -> Option<bool> {
        match *self {
            Outcome::Whole {
                ttft_ms,
                tpot_ms,
                falls_behind,
                ..
            } => Some(!falls_behind && ttft_ms <= slo.ttft_ms && tpot_ms <= slo.tpot_ms),
            // Lower bounds: over a limit, the whole run is over it too.
            Outcome::Stopped {
                ttft_ms, tpot_ms, ..
            } => (ttft_ms > slo.ttft_ms || tpot_ms > slo.tpot_ms).then_some(false),
        }
    }

    fn probe(&self, rate_per_s: f64, slo: &Slo) -> Probe {
        let met = self
            .verdict(slo)
            .expect("a probe's outcome decides its limits");
        match self {
            Outcome::Whole {
                ttft_ms,
                tpot_ms,
                falls_behind,
                metrics,
            } => Probe {
                rate_per_s,
                met,
                ttft_ms: *ttft_ms,
                tpot_ms: *tpot_ms,
                tokens_per_s_per_gpu: metrics.tokens_per_s_per_gpu,
                preemptions: metrics.preemptions,
                stopped_after: None,
                falls_behind: *falls_behind,
            },
            Outcome::Stopped {
                ttft_ms,
                tpot_ms,
                tokens_per_s_per_gpu,
                requests_done,
            } => Probe {
                rate_per_s,
                met,
                ttft_ms: *ttft_ms,
                tpot_ms: *tpot_ms,
                tokens_per_s_per_gpu: *tokens_per_s_per_gpu,
                preemptions: None,
                stopped_after: Some(*requests_done),
                falls_behind: false,
            },
        }
    }
}

/// Serves `reqs` as probe number `probe` at `rate` under `slo`'s percentile (stopped once
/// it certainly misses `slo` when `stop_early`).
fn run_probe(
    server: &mut Server,
    reqs: &[Request],
    slo: &Slo,
    opts: &Options,
    probe: u32,
    rate: f64,
    progress: &(dyn Fn(SearchProgress) + Sync),
) -> Result<Outcome, SearchError> {
    let observe = |run: Progress| {
        progress(SearchProgress {
            probe,
            rate_per_s: rate,
            run,
        })
    };
    let end = if opts.stop_early {
        server.probe_observed(reqs, slo, &observe)?
    } else {
        ProbeEnd::Finished(Box::new(server.serve_observed(reqs, &observe)?))
    };
    Ok(match end {
        ProbeEnd::Finished(out) => {
            let (ttft_ms, tpot_ms) = at_percentile(&out.run, slo.percentile);
            debug_assert_eq!(
                ttft_ms <= slo.ttft_ms && tpot_ms <= slo.tpot_ms,
                meets(slo, &out.run)
            );
            Outcome::Whole {
                ttft_ms,
                tpot_ms,
                falls_behind: out.metrics.throughput_steady_req_per_s < opts.keep_up * rate,
                metrics: Box::new(out.metrics),
            }
        }
        ProbeEnd::Missed {
            miss,
            tokens_per_s_per_gpu,
        } => Outcome::Stopped {
            ttft_ms: miss.ttft_ms,
            tpot_ms: miss.tpot_ms,
            tokens_per_s_per_gpu,
            requests_done: miss.requests_done,
        },
    })
}

/// The search proper: brackets then bisects, asking `probe_at(rate, probe number)` for each
/// probe's outcome (which must decide `slo`).
fn bracket(
    slo: Slo,
    opts: Options,
    start_rate: f64,
    probe_at: &mut dyn FnMut(f64, u32) -> Result<Outcome, SearchError>,
    mut on_probe: impl FnMut(&Probe),
) -> Result<SearchResult, SearchError> {
    let mut probes = Vec::new();
    let mut best: Option<(f64, ServingMetrics)> = None;
    let mut best_probe = None;
    let mut failed: Option<f64> = None;
    let mut rate = start_rate;
    for n in 1..=opts.max_probes {
        let outcome = probe_at(rate, n)?;
        let probe = outcome.probe(rate, &slo);
        let met = probe.met;
        on_probe(&probe);
        if met {
            let Outcome::Whole { metrics, .. } = outcome else {
                unreachable!("a probe that met the limits ran to the end");
            };
            if best.as_ref().is_none_or(|(r, _)| rate > *r) {
                // The metrics of the requests served, drawn at this probe's rate (the
                // scenario's own rate is only where the search started).
                best = Some((rate, metrics.at_rate(rate)));
                best_probe = Some(probe.clone());
            }
        } else if failed.is_none_or(|f| rate < f) {
            failed = Some(rate);
        }
        probes.push(probe);
        rate = match (&best, failed) {
            (Some((lo, _)), Some(hi)) => {
                if hi / lo - 1.0 <= opts.tolerance {
                    break;
                }
                (lo * hi).sqrt()
            }
            (Some((lo, _)), None) => lo * 2.0,
            (None, Some(hi)) => hi / 2.0,
            (None, None) => unreachable!("a probe either met the limits or not"),
        };
    }
    Ok(SearchResult {
        slo,
        probes,
        best_rate_per_s: best.as_ref().map(|b| b.0),
        best: best.map(|b| b.1),
        failed_rate_per_s: failed,
        best_probe,
    })
}

/// A search under each of `cells` (limits at one percentile) on one server, the cells in
/// order, sharing probes: a rate probed already is not served again when its outcome decides
/// the cell (a whole run decides every cell; a run stopped for missing one cell's limits
/// decides each cell its bounds are over). Each cell's probes and verdicts are the ones
/// [`search`] gives for it alone (`tests/serving.rs`); its answer is the highest rate that
/// met its limits among all the probes served, its own search's or another cell's (at
/// least its own search's answer, and never below a stricter cell's). The probes served,
/// `served`, are fewer than the searches' together. `progress` hears the probes served,
/// numbered across cells.
#[allow(clippy::too_many_arguments)]
pub fn search_cells(
    server: &mut Server,
    cells: &[Slo],
    opts: Options,
    start_rate: f64,
    mut requests_at: impl FnMut(f64) -> Result<Vec<Request>, InputError>,
    progress: &(dyn Fn(SearchProgress) + Sync),
    served: &mut u32,
) -> Result<Vec<SearchResult>, SearchError> {
    assert!(
        cells.windows(2).all(|w| w[0].percentile == w[1].percentile),
        "the cells share a percentile"
    );
    // Rate (bits) -> outcome; the probes are a function of the verdicts, so equal rates
    // recur across cells exactly.
    let mut seen: std::collections::HashMap<u64, Outcome> = std::collections::HashMap::new();
    let mut results = Vec::with_capacity(cells.len());
    for slo in cells {
        let mut probe_at = |rate: f64, _n: u32| -> Result<Outcome, SearchError> {
            if let Some(o) = seen.get(&rate.to_bits())
                && o.verdict(slo).is_some()
            {
                return Ok(o.clone());
            }
            *served += 1;
            let reqs = requests_at(rate)?;
            let o = run_probe(server, &reqs, slo, &opts, *served, rate, progress)?;
            seen.insert(rate.to_bits(), o.clone());
            Ok(o)
        };
        results.push(bracket(*slo, opts, start_rate, &mut probe_at, |_| {})?);
    }
    // A rate another cell's search served whole and that meets this cell's limits is an
    // answer too: each cell takes the highest such rate (so a looser cell never reports
    // less than a stricter one). The maximum over rates does not depend on the map's order.
    for (slo, r) in cells.iter().zip(results.iter_mut()) {
        let better = seen
            .iter()
            .filter(|(_, o)| o.verdict(slo) == Some(true))
            .map(|(bits, o)| (f64::from_bits(*bits), o))
            .filter(|(rate, _)| r.best_rate_per_s.is_none_or(|b| *rate > b))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((rate, o @ Outcome::Whole { metrics, .. })) = better {
            r.best_rate_per_s = Some(rate);
            r.best = Some((**metrics).clone().at_rate(rate));
            r.best_probe = Some(o.probe(rate, slo));
        }
    }
    Ok(results)
}
