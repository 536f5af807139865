//! Request-level serving: a stream of requests served by an aggregated, P/D or AFD
//! deployment on a fabric, with TTFT/TPOT per request and the SLO search.
//!
//! - [`traffic`]: arrivals and lengths (presets, files, JSONL traces).
//! - [`sim`]: the request-level simulation (continuous batching, chunked prefill, KV-cache
//!   transfers over the online flow level).
//! - [`cost`]: iteration times interpolated between simulated iterations of the deployment
//!   (`afd::Deployment::decode_step` through the fabric at the scenario's level).
//! - [`search`]: the highest rate that meets TTFT and TPOT limits.
//!
//! Invariant: a serving run is a pure function of the scenario and its seed; wall-clock
//! figures (how long corner simulations took) go to the progress output, never the results.

pub mod cost;
pub mod points;
pub mod search;
pub mod sim;
pub mod traffic;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::afd;
use crate::compute::QueryError;
use crate::engine::{PS_PER_S, Time};
use crate::net::NetParams;
use crate::stats::Sorted;
use crate::topology::Fabric;
use cost::{CostStats, GridCost};
use points::FabricPoints;
use sim::{Layout, ServingRun};
use traffic::Traffic;

/// How prefill and decode share the GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// One expert-parallel pool, chunked prefill piggybacked on decode iterations.
    Aggregated,
    /// One AFD deployment (attention and FFN GPUs) doing both, chunked.
    AggregatedAfd,
    /// A prefill pool and an expert-parallel decode pool.
    Pd,
    /// A prefill pool and an AFD decode pool.
    PdAfd,
}

impl Deployment {
    pub fn as_str(self) -> &'static str {
        match self {
            Deployment::Aggregated => "aggregated",
            Deployment::AggregatedAfd => "aggregated-afd",
            Deployment::Pd => "pd",
            Deployment::PdAfd => "pd-afd",
        }
    }
}

/// TTFT and TPOT limits at a percentile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Slo {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub percentile: f64,
}

impl Slo {
    /// Checked limits; an error is `(key, message)`.
    pub fn new(ttft_ms: f64, tpot_ms: f64, percentile: f64) -> Result<Slo, (&'static str, String)> {
        for (k, v) in [("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)] {
            if !(v.is_finite() && v > 0.0 && v <= 1e7) {
                return Err((
                    k,
                    format!("{v} is not allowed: milliseconds > 0 and <= 1e7"),
                ));
            }
        }
        if !(percentile.is_finite() && percentile > 0.0 && percentile <= 100.0) {
            return Err((
                "percentile",
                format!("{percentile} is not allowed: > 0 and <= 100"),
            ));
        }
        Ok(Slo {
            ttft_ms,
            tpot_ms,
            percentile,
        })
    }
}

/// A resolved serving scenario (the `[serving]` table).
#[derive(Clone, Debug)]
pub struct ServingSpec {
    pub deployment: Deployment,
    pub layout: Layout,
    /// The decode pool (the whole pool when aggregated); each simulated iteration gives its
    /// step's shape (batch, context, prompt tokens).
    pub decode: afd::Deployment,
    /// The prefill pool (P/D): an expert-parallel deployment.
    pub prefill: Option<afd::Deployment>,
    pub traffic: Traffic,
    pub requests: u32,
    pub seed: u64,
    pub slo: Option<Slo>,
    /// Simulate every layer of an iteration instead of extrapolating.
    pub all_layers: bool,
    /// P/D: KV-cache transfers get the link capacity the pools' iterations leave
    /// (`sim::SimOptions`).
    pub kv_shares_fabric: bool,
    /// When requests take KV cache, and whether sequences are preempted.
    pub admission: sim::Admission,
    /// Every GPU of the deployment (prefill, attention, FFN).
    pub total_gpus: u32,
}

/// Percentiles and mean of a set of durations, in milliseconds: exact, nearest-rank
/// ([`crate::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Dist {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    /// Picosecond values summarized in ms; all zero for an empty set.
    pub fn of_ps(values: impl IntoIterator<Item = u64>) -> Dist {
        let Some(v) = Sorted::new(values) else {
            return Dist::default();
        };
        let ms = |ps: u64| ps as f64 / 1e9;
        Dist {
            mean: v.mean() / 1e9,
            p50: ms(v.percentile(50.0)),
            p90: ms(v.percentile(90.0)),
            p99: ms(v.percentile(99.0)),
            max: ms(v.max()),
        }
    }
}

/// What a serving run measured (the `metrics` of `afdsim run --json` on a serving scenario).
#[derive(Clone, Debug, Serialize)]
pub struct ServingMetrics {
    pub deployment: &'static str,
    pub requests: u64,
    /// The offered Poisson rate (none for a trace).
    pub rate_per_s: Option<f64>,
    /// First arrival to last finish.
    pub duration_s: f64,
    /// Requests per second over the whole run: all of them over `duration_s`. The drain
    /// after the last arrival (the longest requests finishing alone) counts, so at a rate
    /// the deployment sustains this is well below it; see `throughput_steady_req_per_s`.
    pub throughput_req_per_s: f64,
    /// Requests finished per second over the steady window ([`steady_window`]: the second
    /// half of the arrival window, warm-up and drain left out); 0 with fewer than two
    /// arrival times. Equals the arrival rate when the deployment keeps up.
    pub throughput_steady_req_per_s: f64,
    /// The steady window's length.
    pub steady_window_s: f64,
    /// Output tokens per second over the whole run (first arrival to last finish).
    pub output_tokens_per_s: f64,
    /// Output tokens per second while requests arrive (the steady state, without the drain
    /// after the last arrival), per GPU, every GPU of the deployment counted.
    pub tokens_per_s_per_gpu: f64,
    pub gpus: u32,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub latency_ms: Dist,
    /// Requests meeting both limits (when the scenario sets them), per second.
    pub goodput_req_per_s: Option<f64>,
    /// Whether the limits hold at their percentile.
    pub slo_met: Option<bool>,
    pub slo: Option<Slo>,
    /// Time-average of the requests in the system while requests arrive (first to last
    /// arrival), and arrival rate x mean latency: Little's law says they agree in a steady
    /// state.
    pub mean_in_system: f64,
    pub littles_law_product: Option<f64>,
    pub decode_iterations: u64,
    pub mean_decode_batch: f64,
    pub decode_busy_fraction: f64,
    pub prefill_iterations: u64,
    pub prefill_busy_fraction: f64,
    pub prefill_tokens: u64,
    pub cached_tokens: u64,
    pub kv_capacity_tokens_per_gpu: u64,
    pub kv_transfer_ms: Dist,
    pub kv_bytes: u64,
    /// Iteration times asked for, and distinct iterations simulated through the fabric.
    pub iteration_queries: u64,
    pub iterations_simulated: u64,
    /// `admission = "grow"` only: sequences preempted, and prompt tokens prefilled again
    /// because of it (absent under "reserve", which never preempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recomputed_tokens: Option<u64>,
}

impl ServingMetrics {
    pub fn of(spec: &ServingSpec, run: &ServingRun) -> ServingMetrics {
        let reqs = &run.requests;
        let first = reqs.first().map_or(Time::ZERO, |r| r.arrival);
        let span_s = run.end.since(first).as_ps() as f64 / PS_PER_S as f64;
        let per_s = |x: f64| if span_s > 0.0 { x / span_s } else { 0.0 };
        let out_tokens: u64 = reqs.iter().map(|r| r.output as u64).sum();
        let latency = Dist::of_ps(reqs.iter().map(|r| r.latency().as_ps()));
        let tpots: Vec<u64> = reqs
            .iter()
            .filter_map(|r| r.tpot())
            .map(|d| d.as_ps())
            .collect();
        let ttft = Dist::of_ps(reqs.iter().map(|r| r.ttft().as_ps()));
        let tpot = Dist::of_ps(tpots.iter().copied());
        let (goodput, slo_met) = match &spec.slo {
            None => (None, None),
            Some(slo) => {
                let good = reqs
                    .iter()
                    .filter(|r| {
                        r.ttft().as_ps() as f64 <= slo.ttft_ms * 1e9
                            && r.tpot()
                                .is_none_or(|t| t.as_ps() as f64 <= slo.tpot_ms * 1e9)
                    })
                    .count();
                (Some(per_s(good as f64)), Some(meets(slo, run)))
            }
        };
        let rate = spec.traffic.rate();
        let grow = matches!(spec.admission, sim::Admission::Grow { .. });
        let (steady_window_s, steady_rate) = steady_throughput(reqs).unwrap_or((0.0, 0.0));
        let busy = |d: crate::engine::Dur| {
            if span_s > 0.0 {
                d.as_ps() as f64 / PS_PER_S as f64 / span_s
            } else {
                0.0
            }
        };
        ServingMetrics {
            deployment: spec.deployment.as_str(),
            requests: reqs.len() as u64,
            rate_per_s: rate,
            duration_s: span_s,
            throughput_req_per_s: per_s(reqs.len() as f64),
            throughput_steady_req_per_s: steady_rate,
            steady_window_s,
            output_tokens_per_s: per_s(out_tokens as f64),
            tokens_per_s_per_gpu: run.window_tokens_per_s / spec.total_gpus as f64,
            gpus: spec.total_gpus,
            ttft_ms: ttft,
            tpot_ms: tpot,
            latency_ms: latency,
            goodput_req_per_s: goodput,
            slo_met,
            slo: spec.slo,
            mean_in_system: run.mean_in_system_arriving,
            littles_law_product: rate.map(|r| r * latency.mean / 1e3),
            decode_iterations: run.decode.iterations,
            mean_decode_batch: if run.decode.iterations > 0 {
                run.decode.load_sum as f64 / run.decode.iterations as f64
            } else {
                0.0
            },
            decode_busy_fraction: busy(run.decode.busy),
            prefill_iterations: run.prefill.iterations,
            prefill_busy_fraction: busy(run.prefill.busy),
            prefill_tokens: run.prefill_tokens,
            cached_tokens: run.cached_tokens,
            kv_capacity_tokens_per_gpu: spec.layout.kv_capacity_tokens,
            kv_transfer_ms: Dist::of_ps(
                reqs.iter()
                    .filter_map(|r| r.kv_transfer)
                    .map(|(s, f)| f.since(s).as_ps()),
            ),
            kv_bytes: run.kv.bytes_delivered,
            iteration_queries: 0,
            iterations_simulated: 0,
            preemptions: grow.then_some(run.preemptions),
            recomputed_tokens: grow.then_some(run.recomputed_tokens),
        }
    }
}

impl ServingMetrics {
    /// The same metrics for requests drawn at `rate_per_s` instead of the scenario's rate
    /// (an SLO search's probes scale the arrival times): the offered rate and Little's
    /// product follow the rate actually served.
    pub fn at_rate(mut self, rate_per_s: f64) -> ServingMetrics {
        self.rate_per_s = Some(rate_per_s);
        self.littles_law_product = Some(rate_per_s * self.latency_ms.mean / 1e3);
        self
    }
}

/// The steady window of a run's requests (in arrival order): from halfway between the
/// first and the last arrival to the last arrival, open at its start; `None` when they
/// coincide.
///
/// Why: the run starts empty, so requests finish more slowly than they arrive until the
/// system holds its steady number (rate x mean latency), about one latency after the
/// first arrival; after the last arrival only the drain is left (the longest requests
/// finishing alone). Finishes over the second half of the arrival window leave both out,
/// and count the arrival rate within the statistical noise whenever the deployment keeps
/// up and latencies are well under half the window (a run too short for that measures
/// nothing steady). Finishes over the whole arrival window would be low by about mean
/// latency / window (a quarter for 2,000 chat requests at 40/s on serving-pd-afd-64: 13 s of
/// mean latency, 50 s of arrivals).
pub fn steady_window(reqs: &[sim::RequestResult]) -> Option<(Time, Time)> {
    let (first, last) = (reqs.first()?.arrival, reqs.last()?.arrival);
    let half = crate::engine::Dur::from_ps(last.since(first).as_ps() / 2);
    let from = first + half;
    (from < last).then_some((from, last))
}

/// The steady window's length in seconds, and the requests that finished in it (after its
/// start, up to and including its end) per second; `None` without a window.
pub fn steady_throughput(reqs: &[sim::RequestResult]) -> Option<(f64, f64)> {
    let (from, to) = steady_window(reqs)?;
    let s = to.since(from).as_ps() as f64 / PS_PER_S as f64;
    let done = reqs
        .iter()
        .filter(|r| r.finish > from && r.finish <= to)
        .count();
    Some((s, done as f64 / s))
}

/// TTFT and TPOT at a percentile, in ms (0 where no request has one).
pub fn at_percentile(run: &ServingRun, pct: f64) -> (f64, f64) {
    let ttft = Sorted::new(run.requests.iter().map(|r| r.ttft().as_ps()));
    let tpot = Sorted::new(
        run.requests
            .iter()
            .filter_map(|r| r.tpot())
            .map(|d| d.as_ps()),
    );
    let ms = |v: Option<Sorted>| v.map_or(0.0, |v| v.percentile(pct) as f64 / 1e9);
    (ms(ttft), ms(tpot))
}

/// Whether TTFT and TPOT at the limits' percentile are within them.
pub fn meets(slo: &Slo, run: &ServingRun) -> bool {
    let (ttft, tpot) = at_percentile(run, slo.percentile);
    ttft <= slo.ttft_ms && tpot <= slo.tpot_ms
}

/// Where a serving run stands, for a progress display. Nothing in the results reads it: a
/// run gives the same results whatever is done with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Requests finished, of the run's.
    pub requests_done: u64,
    pub requests: u64,
    /// Grid corners (simulated iterations) that the query being answered still lacked,
    /// and how many of them are done; both 0 while no corner is being simulated.
    pub corners_done: u64,
    pub corners_needed: u64,
    /// Corners simulated since the server was made (every probe of a search).
    pub corners_simulated: u64,
}

/// Collects a run's progress from the simulating thread (requests) and the corner threads
/// (corners) into [`Progress`] snapshots for one callback: atomics, since corners finish
/// on several threads at once.
struct ProgressSink<'a> {
    on: &'a (dyn Fn(Progress) + Sync),
    requests: u64,
    requests_done: AtomicU64,
    corners_done: AtomicU64,
    corners_needed: AtomicU64,
    corners_simulated: AtomicU64,
}

impl<'a> ProgressSink<'a> {
    fn new(on: &'a (dyn Fn(Progress) + Sync), requests: u64, corners_before: u64) -> Self {
        ProgressSink {
            on,
            requests,
            requests_done: AtomicU64::new(0),
            corners_done: AtomicU64::new(0),
            corners_needed: AtomicU64::new(0),
            corners_simulated: AtomicU64::new(corners_before),
        }
    }

    fn requests_done(&self, n: u64) {
        self.requests_done.store(n, Ordering::Relaxed);
        self.report();
    }

    /// `done` of `needed` corners of a batch: (0, n) as it starts, then once per corner
    /// finished (in any order of `done`, from any thread), then (0, 0) once it is over.
    fn corners(&self, done: u64, needed: u64) {
        if done == 0 {
            self.corners_done.store(0, Ordering::Relaxed);
            self.corners_needed.store(needed, Ordering::Relaxed);
        } else {
            self.corners_done.fetch_max(done, Ordering::Relaxed);
            self.corners_simulated.fetch_add(1, Ordering::Relaxed);
        }
        self.report();
    }

    fn report(&self) {
        (self.on)(Progress {
            requests_done: self.requests_done.load(Ordering::Relaxed),
            requests: self.requests,
            corners_done: self.corners_done.load(Ordering::Relaxed),
            corners_needed: self.corners_needed.load(Ordering::Relaxed),
            corners_simulated: self.corners_simulated.load(Ordering::Relaxed),
        });
    }
}

/// A deployment ready to serve request streams; iteration times simulated for one run are
/// kept for the next (an SLO search's probes share them).
pub struct Server<'a> {
    pub spec: &'a ServingSpec,
    fabric: &'a Fabric,
    params: &'a NetParams,
    cost: GridCost<FabricPoints<'a>>,
}

/// One serving run's results.
pub struct ServingOutcome {
    pub run: ServingRun,
    pub metrics: ServingMetrics,
}

/// How a probe's run ended ([`Server::probe_observed`]).
pub enum ProbeEnd {
    Finished(Box<ServingOutcome>),
    /// Stopped once it certainly missed the limits.
    Missed {
        miss: sim::EarlyMiss,
        /// The output tokens made so far per second, per GPU of the deployment.
        tokens_per_s_per_gpu: f64,
    },
}

impl<'a> Server<'a> {
    pub fn new(
        spec: &'a ServingSpec,
        fabric: &'a Fabric,
        params: &'a NetParams,
        level: crate::net::Level,
    ) -> Server<'a> {
        let points = FabricPoints::new(spec, fabric, params, level);
        let max_ctx = 1 << 22;
        let pools = (
            spec.decode.attention_gpus.len() as u32,
            spec.prefill
                .as_ref()
                .map_or(0, |p| p.attention_gpus.len() as u32),
        );
        let cost = GridCost::new(
            points,
            pools,
            spec.layout.max_batch,
            spec.layout.chunk_tokens,
            (max_ctx, max_ctx),
            &attention_kinks(&spec.decode.model),
        );
        Server {
            spec,
            fabric,
            params,
            cost,
        }
    }

    /// Serves `requests` (checked to fit by the caller).
    pub fn serve(&mut self, requests: &[traffic::Request]) -> Result<ServingOutcome, QueryError> {
        self.serve_observed(requests, &|_| {})
    }

    /// [`Self::serve`], telling `progress` how the run advances (requests finished, corners
    /// simulated). `progress` is called from the simulating thread and from the threads
    /// that simulate corners; the results are the same with any `progress`.
    pub fn serve_observed(
        &mut self,
        requests: &[traffic::Request],
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ServingOutcome, QueryError> {
        let options = sim::SimOptions {
            kv_shares_fabric: self.spec.kv_shares_fabric,
        };
        self.serve_with_observed(requests, options, progress)
    }

    /// [`Self::serve`] with options other than the scenario's (the iterations simulated so
    /// far are reused either way).
    pub fn serve_with(
        &mut self,
        requests: &[traffic::Request],
        options: sim::SimOptions,
    ) -> Result<ServingOutcome, QueryError> {
        self.serve_with_observed(requests, options, &|_| {})
    }

    fn serve_with_observed(
        &mut self,
        requests: &[traffic::Request],
        options: sim::SimOptions,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ServingOutcome, QueryError> {
        match self.run_observed(requests, options, None, progress)? {
            ProbeEnd::Finished(out) => Ok(*out),
            ProbeEnd::Missed { .. } => unreachable!("a run without limits is never stopped"),
        }
    }

    /// Serves `requests` as an SLO search's probe: the run stops as soon as it certainly
    /// misses `slo` ([`sim::simulate_until`]); a run that is not stopped is the one
    /// [`Self::serve_observed`] gives.
    pub fn probe_observed(
        &mut self,
        requests: &[traffic::Request],
        slo: &Slo,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ProbeEnd, QueryError> {
        let options = sim::SimOptions {
            kv_shares_fabric: self.spec.kv_shares_fabric,
        };
        let rule = sim::MissRule {
            ttft_ms: slo.ttft_ms,
            tpot_ms: slo.tpot_ms,
            percentile: slo.percentile,
        };
        self.run_observed(requests, options, Some(rule), progress)
    }

    fn run_observed(
        &mut self,
        requests: &[traffic::Request],
        options: sim::SimOptions,
        stop: Option<sim::MissRule>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ProbeEnd, QueryError> {
        let before = self.cost.stats;
        let sink = ProgressSink::new(progress, requests.len() as u64, before.corners_simulated);
        let corners = |done: u64, needed: u64| sink.corners(done, needed);
        let end = sim::simulate_until(
            self.fabric,
            self.params,
            &self.spec.layout,
            requests,
            &mut cost::Observed::new(&mut self.cost, &corners),
            options,
            self.spec.admission,
            stop,
            &mut |n| sink.requests_done(n),
        )?;
        Ok(match end {
            sim::RunEnd::Finished(run) => {
                let run = *run;
                let mut metrics = ServingMetrics::of(self.spec, &run);
                metrics.iteration_queries = self.cost.stats.queries - before.queries;
                metrics.iterations_simulated =
                    self.cost.stats.corners_simulated - before.corners_simulated;
                ProbeEnd::Finished(Box::new(ServingOutcome { run, metrics }))
            }
            sim::RunEnd::Missed(miss) => ProbeEnd::Missed {
                miss,
                tokens_per_s_per_gpu: miss.tokens_per_s / self.spec.total_gpus as f64,
            },
        })
    }

    /// Shares grid corners with the other servers given `shared`: a corner one of them
    /// simulated for the same pool is taken, not simulated again. `context` must tell the
    /// fabrics and network parameters apart (equal only for the same fabric file and node
    /// count); the level, seed, extrapolation and each pool's
    /// [`crate::afd::Deployment::fingerprint`] are added here.
    pub fn share_corners(&mut self, shared: std::sync::Arc<cost::SharedCorners>, context: &str) {
        use std::hash::{Hash, Hasher};
        let key = |pool: Option<&crate::afd::Deployment>| {
            let mut h = std::hash::DefaultHasher::new();
            (
                context,
                format!("{:?}", self.params),
                self.cost.sim.level_name(),
                self.spec.seed,
                self.spec.all_layers,
                pool.map(|d| d.fingerprint()),
            )
                .hash(&mut h);
            h.finish()
        };
        let keys = [
            key(Some(&self.spec.decode)),
            key(self.spec.prefill.as_ref()),
        ];
        self.cost.share(shared, keys);
    }

    pub fn cost_stats(&self) -> CostStats {
        self.cost.stats
    }
}

/// Contexts at which a model's attention changes regime: DSA's top-k (its indexer starts
/// above it), a sliding window's width.
fn attention_kinks(model: &crate::compute::Model) -> Vec<u64> {
    use crate::compute::{Attention, Gqa, Mla};
    match &model.attention {
        Attention::Mla(Mla {
            sparse: Some(s), ..
        }) => vec![s.topk],
        Attention::Gqa(Gqa {
            sliding: Some((w, _)),
            ..
        }) => vec![*w],
        _ => Vec::new(),
    }
}
