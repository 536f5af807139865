//! Request-level serving: the speed of its parts and of issue 7's speed scenario.
//!
//! - **engine**: the request-level simulation alone (closed-form iteration times): requests
//!   and iterations per wall second, on a P/D layout of 64 GPUs (KV transfers through the
//!   online flow level).
//! - **corner**: one iteration simulated through the fabric (P/D + AFD decode pool of
//!   `serving-pd-afd-64.toml`, 16 attention GPUs with 64 sequences at 4K): extrapolated from
//!   4 and 8 MoE layers against every layer.
//! - **scenario**: `workloads/scenarios/serving-pd-afd-64.toml` (10,000 chat requests, flow
//!   level): wall time, corners simulated and the share of wall time they took (goal: under
//!   60 s). `AFDSIM_BENCH_SEARCH=1` also runs an 8-probe SLO search on it (goal: 10 probes
//!   under 10 minutes).
//!
//! Run: `cargo bench --bench serving`. Wall times on a shared machine are noisy: compare
//! ratios measured in the same session.

use std::path::Path;
use std::time::Instant;

use afdsim::afd::StepShape;
use afdsim::compute::QueryError;
use afdsim::config::Scenario;
use afdsim::engine::{Dur, SimRng, Time};
use afdsim::serving::points::FabricPoints;
use afdsim::serving::sim::{Layout, Mode, StepCost, simulate};
use afdsim::serving::traffic::Request;
use afdsim::serving::{Server, search};
use afdsim::topology::NodeId;

/// Iteration times in closed form: the engine's own cost, without fabric simulations.
struct Closed;

impl StepCost for Closed {
    fn decode(&mut self, gpus: u32, batch: u32, ctx: u64) -> Result<Dur, QueryError> {
        Ok(Dur::from_us(
            30_000 + 20 * gpus as u64 + 40 * batch as u64 + ctx / 100,
        ))
    }
    fn prefill(&mut self, gpus: u32, tokens: u32, prefix: u64) -> Result<Dur, QueryError> {
        Ok(Dur::from_us(
            20_000 + 50 * gpus as u64 + 12 * tokens as u64 + prefix / 50,
        ))
    }
    fn mixed(&mut self, g: u32, b: u32, c: u64, t: u32, p: u64) -> Result<Dur, QueryError> {
        Ok(self.decode(g, b, c)? + self.prefill(g, t, p)?)
    }
}

fn engine(s: &Scenario) {
    let layout = Layout {
        mode: Mode::Disaggregated {
            prefill_gpus: (48..64).map(NodeId).collect(),
        },
        decode_gpus: (0..16).map(NodeId).collect(),
        kv_capacity_tokens: 1_000_000,
        max_batch: 256,
        chunk_tokens: 8192,
        kv_bytes_per_token: 43_188,
    };
    let mut rng = SimRng::new(1);
    let mut t = 0.0;
    let n = 100_000u32;
    let reqs: Vec<Request> = (0..n)
        .map(|id| {
            t += -(1.0 - rng.unit_f64()).ln() / 40.0;
            Request {
                id,
                arrival: Time::from_ps((t * 1e12) as u64),
                input: 64 + rng.below(2000) as u32,
                output: 1 + rng.below(600) as u32,
                cached: 0,
            }
        })
        .collect();
    let t0 = Instant::now();
    let run = simulate(s.fabric(), s.net(), &layout, &reqs, &mut Closed).expect("runs");
    let wall = t0.elapsed().as_secs_f64();
    let iterations = run.decode.iterations + run.prefill.iterations;
    println!(
        "engine: {n} requests, {iterations} iterations, {} KV transfers in {wall:.3} s: \
         {:.0} requests/s, {:.0} iterations/s",
        run.kv.messages.len(),
        n as f64 / wall,
        iterations as f64 / wall
    );
}

fn corner(s: &Scenario) {
    let spec = s.serving().expect("serving");
    let pool = &spec.decode;
    let shape = StepShape {
        active_attention_gpus: pool.attention_gpus.len() as u32,
        batch_per_attention_gpu: 64,
        context: 4096,
        contexts: Vec::new(),
        prefill_tokens: 0,
        prefill_prefix: 0,
        layers: pool.model.layers,
    };
    let points = FabricPoints::new(spec, s.fabric(), s.net(), s.level());
    let t0 = Instant::now();
    let fast = points.time_of(pool, &shape).expect("times");
    let t_fast = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let whole = points.step(pool, &shape).expect("times");
    let t_whole = t0.elapsed().as_secs_f64();
    println!(
        "corner: extrapolated {:.3} ms in {t_fast:.3} s; every layer {:.3} ms in {t_whole:.3} s \
         ({:+.3} %, {:.1}x faster)",
        fast.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3,
        (fast.as_secs_f64() / whole.as_secs_f64() - 1.0) * 100.0,
        t_whole / t_fast
    );
}

fn scenario(s: &Scenario) {
    let spec = s.serving().expect("serving");
    let reqs = spec
        .traffic
        .requests(spec.requests, s.seed())
        .expect("draws");
    let t0 = Instant::now();
    let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
    let out = server.serve(&reqs).expect("serves");
    let wall = t0.elapsed().as_secs_f64();
    let st = server.cost_stats();
    println!(
        "scenario {}: {} requests in {wall:.2} s wall ({} corners simulated in {:.2} s, {} \
         iteration times asked); TTFT p90 {:.1} ms, TPOT p90 {:.2} ms",
        s.name(),
        reqs.len(),
        st.corners_simulated,
        st.corner_wall_s,
        st.queries,
        out.metrics.ttft_ms.p90,
        out.metrics.tpot_ms.p90
    );
    if std::env::var_os("AFDSIM_BENCH_SEARCH").is_none() {
        return;
    }
    let slo = spec.slo.expect("the scenario sets limits");
    let t0 = Instant::now();
    let r = search::search(
        &mut server,
        slo,
        search::Options {
            max_probes: 8,
            tolerance: 0.05,
            stop_early: true,
            keep_up: 0.0,
        },
        spec.traffic.rate().expect("Poisson"),
        |rate| {
            spec.traffic
                .with_rate(rate)?
                .requests(spec.requests, s.seed())
        },
        |_| {},
    )
    .expect("searches");
    println!(
        "search: {} probes in {:.1} s wall (after the run above), best {:?} req/s",
        r.probes.len(),
        t0.elapsed().as_secs_f64(),
        r.best_rate_per_s
    );
}

fn main() {
    let s = Scenario::load(
        Path::new("workloads/scenarios/serving-pd-afd-64.toml"),
        None,
    )
    .expect("the scenario resolves");
    engine(&s);
    corner(&s);
    scenario(&s);
}
