//! Deployment comparison: the SLO search (`serving::search`) over several serving scenarios,
//! as typed rows an embedding caller or the CLI formats. It sits above `config` and
//! `serving`: it takes resolved scenarios and builds each one's server.
//!
//! Invariant: the rows are a pure function of the scenarios, the limits and the options;
//! the observer only watches.

use crate::config::Scenario;
use crate::error::InputError;
use crate::serving::search::{Options, Probe, SearchProgress, SearchResult, search_observed};
use crate::serving::{Server, Slo};

/// The limits a comparison applies to every scenario; a `None` takes the scenario's own
/// (`serving.ttft_ms`, `serving.tpot_ms`, `serving.percentile`; the percentile is 90 when
/// the scenario has none either).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub percentile: Option<f64>,
}

/// What one scenario's search is run on, known before its first probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    pub scenario: String,
    pub deployment: &'static str,
    pub gpus: u32,
    pub seed: u64,
    pub level: &'static str,
    pub slo: Slo,
    /// Requests served by each probe.
    pub requests: u32,
}

/// One scenario of a comparison: its setup and what its search found.
#[derive(Clone, Debug)]
pub struct ComparisonRow {
    pub setup: Setup,
    pub result: SearchResult,
}

/// Which limit kept a rate from being met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Ttft,
    Tpot,
    Both,
}

impl ComparisonRow {
    /// The highest rate that met the limits.
    pub fn best_rate_per_s(&self) -> Option<f64> {
        self.result.best_rate_per_s
    }

    /// The probe at the best rate (its TTFT and TPOT at the limits' percentile).
    pub fn best_probe(&self) -> Option<&Probe> {
        let best = self.result.best_rate_per_s;
        self.result
            .probes
            .iter()
            .find(|p| p.met && Some(p.rate_per_s) == best)
    }

    /// Output tokens per second per GPU at the best rate.
    pub fn tokens_per_s_per_gpu(&self) -> Option<f64> {
        self.result.best.as_ref().map(|b| b.tokens_per_s_per_gpu)
    }

    /// The limit the lowest missed rate (the bracket's upper side) went past; `None` if
    /// every probe met the limits.
    pub fn binding(&self) -> Option<Binding> {
        let failed = self.result.failed_rate_per_s?;
        let p = self
            .result
            .probes
            .iter()
            .find(|p| !p.met && p.rate_per_s == failed)?;
        let slo = &self.result.slo;
        match (p.ttft_ms > slo.ttft_ms, p.tpot_ms > slo.tpot_ms) {
            (true, true) => Some(Binding::Both),
            (true, false) => Some(Binding::Ttft),
            (false, true) => Some(Binding::Tpot),
            (false, false) => None,
        }
    }
}

/// A deployment comparison: one row per scenario, in the order given.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub rows: Vec<ComparisonRow>,
}

/// Why a comparison stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A limit of [`Limits`] (or the scenario's, where it gave none) is not allowed; `key`
    /// is `ttft_ms`, `tpot_ms` or `percentile`.
    #[error("{key}: {message}")]
    Limit { key: &'static str, message: String },
    /// A scenario that cannot be searched, or whose search failed, naming its file.
    #[error("{0}")]
    Input(#[from] InputError),
}

/// What a comparison tells as it goes (for a display; nothing in the results reads it).
/// `progress` is called from the search's thread and from the threads that simulate
/// corners.
pub trait Observer: Sync {
    /// A scenario's search starts.
    fn start(&self, _setup: &Setup) {}
    /// Probe `n` (from 1) of the current scenario finished.
    fn probe(&self, _n: u32, _probe: &Probe) {}
    /// How the current probe's run advances.
    fn progress(&self, _p: SearchProgress) {}
    /// A scenario's search finished; `stats` counts its iteration times.
    fn done(&self, _setup: &Setup, _stats: &crate::serving::cost::CostStats) {}
}

/// An [`Observer`] that tells nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// Searches each serving scenario for the highest rate that meets the limits.
/// `requests` overrides each scenario's `serving.requests`. A scenario without a
/// `[serving]` table, without limits, or with a trace (no rate to scale) is an error naming
/// its file, before any search starts.
///
/// The searches run side by side, each on a thread of its own (their corners share the
/// rayon pool): on two cores a short search fills the core a long one leaves idle between
/// its corners. The observer hears what one search after another would tell, in the same
/// order: the first scenario as it goes, each later one's setup, probes and end once the
/// ones before it are told (their progress within a probe is not told). The rows are those
/// of searches one after another (each is a pure function of its scenario).
pub fn compare(
    scenarios: impl IntoIterator<Item = Scenario>,
    limits: Limits,
    opts: Options,
    requests: Option<u32>,
    observer: &dyn Observer,
) -> Result<Comparison, CompareError> {
    let scenarios: Vec<Scenario> = scenarios.into_iter().collect();
    let planned = scenarios
        .iter()
        .map(|s| plan(s, limits, requests))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|threads| {
        let mut plans = planned.into_iter();
        let Some(first) = plans.next() else {
            return Ok(Comparison::default());
        };
        let later: Vec<_> = plans
            .map(|p| {
                threads.spawn(move || {
                    let told = Recorder::default();
                    (search_one(p, opts, &told), told)
                })
            })
            .collect();
        let mut rows = vec![search_one(first, opts, observer)];
        for h in later {
            let (row, told) = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            if rows.iter().all(Result::is_ok) {
                told.replay(observer);
            }
            rows.push(row);
        }
        Ok(Comparison {
            rows: rows.into_iter().collect::<Result<_, _>>()?,
        })
    })
}

/// What a search tells, held until its turn to be told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Told>>);

enum Told {
    Start(Setup),
    Probe(u32, Probe),
    Done(Setup, crate::serving::cost::CostStats),
}

impl Recorder {
    fn push(&self, t: Told) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(t);
    }

    fn replay(self, observer: &dyn Observer) {
        for t in self.0.into_inner().unwrap_or_else(|e| e.into_inner()) {
            match t {
                Told::Start(s) => observer.start(&s),
                Told::Probe(n, p) => observer.probe(n, &p),
                Told::Done(s, stats) => observer.done(&s, &stats),
            }
        }
    }
}

impl Observer for Recorder {
    fn start(&self, setup: &Setup) {
        self.push(Told::Start(setup.clone()));
    }
    fn probe(&self, n: u32, probe: &Probe) {
        self.push(Told::Probe(n, probe.clone()));
    }
    fn done(&self, setup: &Setup, stats: &crate::serving::cost::CostStats) {
        self.push(Told::Done(setup.clone(), *stats));
    }
}

/// A scenario ready to search: its setup and where its search starts.
struct Plan<'s> {
    scenario: &'s Scenario,
    spec: &'s crate::serving::ServingSpec,
    origin: String,
    setup: Setup,
    start: f64,
}

fn plan(
    scenario: &Scenario,
    limits: Limits,
    requests: Option<u32>,
) -> Result<Plan<'_>, CompareError> {
    let origin = scenario.origin().to_string();
    let Some(spec) = &scenario.serving() else {
        return Err(InputError::new(
            origin,
            "serving",
            "slo-search needs a serving scenario (a [serving] table)",
        )
        .into());
    };
    let file = spec.slo;
    let slo = match (
        limits.ttft_ms.or(file.map(|s| s.ttft_ms)),
        limits.tpot_ms.or(file.map(|s| s.tpot_ms)),
    ) {
        (Some(ttft), Some(tpot)) => {
            let pct = limits
                .percentile
                .or(file.map(|s| s.percentile))
                .unwrap_or(90.0);
            Slo::new(ttft, tpot, pct)
                .map_err(|(key, message)| CompareError::Limit { key, message })?
        }
        _ => {
            return Err(InputError::new(
                origin,
                "serving.ttft_ms",
                "no limits: give --ttft-ms and --tpot-ms, or serving.ttft_ms and serving.tpot_ms",
            )
            .into());
        }
    };
    let Some(start) = spec.traffic.rate() else {
        return Err(InputError::new(
            origin,
            "serving.traffic",
            "a trace has no rate to search over: use a Poisson traffic",
        )
        .into());
    };
    let requests = requests.unwrap_or(spec.requests);
    let setup = Setup {
        scenario: scenario.name().to_string(),
        deployment: spec.deployment.as_str(),
        gpus: spec.total_gpus,
        seed: scenario.seed(),
        level: scenario.level().as_str(),
        slo,
        requests,
    };
    Ok(Plan {
        scenario,
        spec,
        origin,
        setup,
        start,
    })
}

fn search_one(
    plan: Plan,
    opts: Options,
    observer: &dyn Observer,
) -> Result<ComparisonRow, CompareError> {
    let Plan {
        scenario,
        spec,
        origin,
        setup,
        start,
    } = plan;
    let requests = setup.requests;
    let slo = setup.slo;
    observer.start(&setup);
    let mut server = Server::new(spec, scenario.fabric(), scenario.net(), scenario.level());
    let mut n = 0;
    let result = search_observed(
        &mut server,
        slo,
        opts,
        start,
        |rate| {
            let reqs = spec
                .traffic
                .with_rate(rate)?
                .requests(requests, scenario.seed())?;
            crate::config::check_fits(&origin, spec, &reqs)?;
            Ok(reqs)
        },
        |p| {
            n += 1;
            observer.probe(n, p);
        },
        &|p| observer.progress(p),
    )
    .map_err(|e| InputError::new(origin.clone(), "serving", e.to_string()))?;
    observer.done(&setup, &server.cost_stats());
    Ok(ComparisonRow { setup, result })
}
