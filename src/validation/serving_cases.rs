//! Serving cases: light load against unloaded iterations, Little's law, prefix reuse, a KV
//! transfer against the decode pool's iteration traffic.

use super::{Case, Check};
use crate::afd::StepShape;
use crate::config::Scenario;
use crate::engine::Time;
use crate::error::InputError;
use crate::net::MessageSpec;
use crate::serving::points::FabricPoints;
use crate::serving::sim::{Mode, ServingRun};
use crate::serving::{Server, ServingSpec};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "serving-light-load",
            run: light_load,
        },
        Case {
            name: "serving-littles-law",
            run: littles_law,
        },
        Case {
            name: "serving-prefix-reuse",
            run: prefix_reuse,
        },
        Case {
            name: "serving-kv-background",
            run: kv_background,
        },
    ]
}

const LIGHT: &str = include_str!("../../validation/serving-light-load.toml");
const LITTLE: &str = include_str!("../../validation/serving-littles-law.toml");
const PREFIX: &str = include_str!("../../validation/serving-prefix-reuse.toml");
const KV_BG: &str = include_str!("../../validation/serving-kv-background.toml");

fn spec(s: &Scenario) -> &ServingSpec {
    s.serving().expect("a [serving] scenario")
}

/// Serves a scenario's requests as `afdsim run` does.
fn serve(s: &Scenario) -> Result<ServingRun, InputError> {
    let spec = spec(s);
    let reqs = spec.traffic.requests(spec.requests, s.seed())?;
    crate::config::check_fits(s.origin(), spec, &reqs)?;
    let mut server = Server::new(spec, s.fabric(), s.net(), s.level());
    let out = server
        .serve(&reqs)
        .map_err(|e| InputError::new(s.origin(), "serving", e.to_string()))?;
    Ok(out.run)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (n, sum) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    sum / n as f64
}

fn light_load() -> Result<Vec<Check>, InputError> {
    let case = "serving-light-load";
    let s = Scenario::parse(LIGHT, "validation/serving-light-load.toml", None)?;
    let sp = spec(&s);
    let run = serve(&s)?;
    let bad = |e: crate::compute::QueryError| InputError::new(s.origin(), "serving", e.to_string());
    // Only requests alone in the system from arrival to finish count (Poisson gaps are
    // sometimes short even at this rate).
    let reqs = &run.requests;
    let alone: Vec<&crate::serving::sim::RequestResult> = (0..reqs.len())
        .filter(|&i| {
            (i == 0 || reqs[i - 1].finish <= reqs[i].arrival)
                && (i + 1 == reqs.len() || reqs[i].finish <= reqs[i + 1].arrival)
        })
        .map(|i| &reqs[i])
        .collect();
    let (input, output) = (run.requests[0].input as u64, run.requests[0].output as u64);
    let points = FabricPoints::new(sp, s.fabric(), s.net(), s.level());
    let whole = |pool: &crate::afd::Deployment, batch: u32, ctx: u64, tokens: u32| {
        let shape = StepShape {
            // One request: one GPU of each pool has work.
            active_attention_gpus: 1,
            batch_per_attention_gpu: batch,
            context: ctx,
            prefill_tokens: tokens,
            layers: pool.model.layers,
            ..StepShape::default()
        };
        points.step(pool, &shape).map(|d| d.as_secs_f64() * 1e3)
    };
    let prefill_ms = whole(sp.prefill.as_ref().expect("P/D"), 0, 1, input as u32).map_err(bad)?;
    // The KV cache of the prompt from the prefill GPU to the decode GPU each lone request
    // gets (the first of each pool: lowest index on ties), alone on the fabric.
    let Mode::Disaggregated { prefill_gpus } = &sp.layout.mode else {
        unreachable!("the case is P/D")
    };
    let kv = crate::flow::simulate(
        s.fabric(),
        s.net(),
        &[MessageSpec {
            src: prefill_gpus[0],
            dst: sp.layout.decode_gpus[0],
            bytes: input * sp.layout.kv_bytes_per_token,
            start: Time::ZERO,
        }],
        &mut |_| {},
    )
    .expect("the embedded case ends within the horizon");
    let kv_ms = kv.end.as_us_f64() / 1e3;
    // Decode steps run at contexts input + 1 .. input + output - 1; attention time is
    // linear in the context there, so their mean is the step at the middle context.
    let decode_ms = whole(&sp.decode, 1, input + output / 2, 0).map_err(bad)?;
    let ttft = mean(alone.iter().map(|r| r.ttft().as_secs_f64() * 1e3));
    let tpot = mean(
        alone
            .iter()
            .filter_map(|r| r.tpot())
            .map(|d| d.as_secs_f64() * 1e3),
    );
    Ok(vec![
        Check::at_least(
            case,
            "precondition: requests alone in the system",
            8.0,
            alone.len() as f64,
            "light load: most requests leave before the next arrives",
        ),
        Check::within(
            case,
            "ttft_ms",
            prefill_ms + kv_ms,
            ttft,
            2.0,
            "one whole-model prefill iteration of the prompt + the lone KV-cache transfer",
        ),
        Check::within(
            case,
            "tpot_ms",
            decode_ms,
            tpot,
            2.0,
            "the whole-model decode step of one sequence at the middle context",
        ),
    ])
}

fn littles_law() -> Result<Vec<Check>, InputError> {
    let case = "serving-littles-law";
    let s = Scenario::parse(LITTLE, "validation/serving-littles-law.toml", None)?;
    let run = serve(&s)?;
    // The arrival rate the requests had: arrivals over the window they span (the configured
    // rate, less the Poisson sampling noise of a finite run).
    let reqs = &run.requests;
    let window = reqs[reqs.len() - 1].arrival.since(reqs[0].arrival);
    let rate = (reqs.len() - 1) as f64 / window.as_secs_f64();
    let latency = mean(run.requests.iter().map(|r| r.latency().as_secs_f64()));
    Ok(vec![Check::within(
        case,
        "mean_in_system",
        rate * latency,
        run.mean_in_system_arriving,
        3.0,
        "Little's law: arrival rate (arrivals over their window) x mean latency",
    )])
}

fn prefix_reuse() -> Result<Vec<Check>, InputError> {
    let case = "serving-prefix-reuse";
    let mut checks = Vec::new();
    let mut base: Option<(f64, f64)> = None;
    for reuse in [0.0, 0.5, 0.75] {
        let text = PREFIX.replace("prefix_reuse = 0.0", &format!("prefix_reuse = {reuse}"));
        let s = Scenario::parse(&text, "validation/serving-prefix-reuse.toml", None)?;
        let sp = spec(&s);
        let run = serve(&s)?;
        let busy = run.prefill.busy.as_secs_f64() * 1e3;
        let tokens = run.prefill_tokens as f64;
        // What the prefill pool should have spent: per request (each alone in the pool at
        // this load), one whole-model iteration of its uncached tokens after its cached
        // prefix, on one GPU.
        let points = FabricPoints::new(sp, s.fabric(), s.net(), s.level());
        let pool = sp.prefill.as_ref().expect("P/D");
        let r0 = &run.requests[0];
        let shape = StepShape {
            active_attention_gpus: 1,
            // No decode sequence reads it.
            context: 1,
            prefill_tokens: r0.input - r0.cached,
            prefill_prefix: r0.cached as u64,
            layers: pool.model.layers,
            ..StepShape::default()
        };
        let one = points
            .step(pool, &shape)
            .map_err(|e| InputError::new(s.origin(), "serving", e.to_string()))?;
        let expected = one.as_secs_f64() * 1e3 * run.requests.len() as f64;
        checks.push(Check::within(
            case,
            &format!("prefill busy ms, reuse {reuse}"),
            expected,
            busy,
            2.0,
            "requests x one whole-model iteration of the uncached tokens after the cached prefix",
        ));
        let Some((t0, b0)) = base else {
            base = Some((tokens, busy));
            continue;
        };
        let prompt: f64 = run.requests.iter().map(|r| r.input as f64).sum();
        checks.push(Check::within(
            case,
            &format!("prompt tokens prefilled, reuse {reuse}"),
            (1.0 - reuse) * t0,
            tokens,
            100.0 * 0.5 * run.requests.len() as f64 / prompt,
            "(1 - reuse) x the prompt tokens (each request's cached count rounds to a token)",
        ));
        // Prefill time falls with the cached tokens, but less than in proportion: the
        // uncached tokens attend to the cached prefix, and weight reads and transfers of an
        // iteration do not shrink with its tokens.
        checks.push(Check::at_least(
            case,
            &format!("prefill busy / no reuse, reuse {reuse}: at least 1 - reuse"),
            1.0 - reuse,
            busy / b0,
            "the uncached share of the prompt (skipped tokens cost nothing)",
        ));
        checks.push(Check::at_most(
            case,
            &format!("prefill busy / no reuse, reuse {reuse}: below 1"),
            1.0,
            busy / b0,
            "cached tokens are not prefilled again",
        ));
    }
    Ok(checks)
}

fn kv_background() -> Result<Vec<Check>, InputError> {
    use crate::engine::{Dur, PS_PER_S};
    use crate::serving::sim::SimOptions;
    use crate::serving::traffic::Request;
    let case = "serving-kv-background";
    let s = Scenario::parse(KV_BG, "validation/serving-kv-background.toml", None)?;
    let sp = spec(&s);
    let bad = |e: crate::compute::QueryError| InputError::new(s.origin(), "serving", e.to_string());
    // The background: the traffic's requests (fixed lengths), all at time 0; then the probe.
    let n = sp.requests - 1;
    let mut reqs = sp.traffic.requests(n, s.seed())?;
    for r in &mut reqs {
        r.arrival = Time::ZERO;
    }
    reqs.push(Request {
        id: n,
        arrival: Time::from_ps(PS_PER_S * 3 / 10),
        input: 4096,
        output: 2,
        cached: 0,
    });
    crate::config::check_fits(s.origin(), sp, &reqs)?;
    let mut server = Server::new(sp, s.fabric(), s.net(), s.level());
    let mut serve = |on: bool| {
        let options = SimOptions {
            kv_shares_fabric: on,
        };
        server
            .serve_with(&reqs, options)
            .map(|o| o.run)
            .map_err(bad)
    };
    let (on, off) = (serve(true)?, serve(false)?);
    let probe = |run: &ServingRun| {
        let (ks, kf) = run.requests[n as usize].kv_transfer.expect("P/D");
        (ks, kf, kf.since(ks).as_secs_f64() * 1e3)
    };
    let (ks, kf, on_ms) = probe(&on);
    let off_ms = probe(&off).2;
    // The decode pool's operating point during the transfer: every background request
    // decoding (one GPU, batch n), at the context they have reached by mid-transfer.
    let bg = &on.requests[..n as usize];
    let steady = bg
        .iter()
        .filter(|r| r.first_token <= ks && r.finish >= kf)
        .count();
    let b0 = &bg[0];
    let tpot = b0.tpot().expect("long outputs").as_ps();
    let mid = ks + Dur::from_ps(kf.since(ks).as_ps() / 2);
    let ctx = (b0.input + 1) as u64 + mid.since(b0.first_token).as_ps() / tpot;
    let points = FabricPoints::new(sp, s.fabric(), s.net(), s.level());
    let shape = StepShape {
        active_attention_gpus: 1,
        batch_per_attention_gpu: n,
        context: ctx,
        layers: sp.decode.model.layers,
        ..StepShape::default()
    };
    let it = points.step_run(&sp.decode, &shape).map_err(bad)?;
    // The probe's route: from the first prefill GPU (all backlogs are empty when it
    // arrives: lowest index) to the decode pool's one GPU; flows are numbered in start
    // order, and the background's n started before it.
    let Mode::Disaggregated { prefill_gpus } = &sp.layout.mode else {
        unreachable!("the case is P/D")
    };
    let m = MessageSpec {
        src: prefill_gpus[0],
        dst: sp.layout.decode_gpus[0],
        bytes: 4096 * sp.layout.kv_bytes_per_token,
        start: Time::ZERO,
    };
    let route = crate::flow::paths::route(s.fabric(), s.net(), n, &m);
    let links = s.fabric().topology.links();
    let span = it.time.as_ps() as f64;
    let util = |l: u32| {
        let c = links[l as usize].rate.bps() as f64 / 8.0 / PS_PER_S as f64;
        let b = it
            .links
            .iter()
            .find(|&&(x, _)| x == l)
            .map_or(0.0, |&(_, b)| b);
        (c, b / (c * span))
    };
    let (mut alone, mut shared, mut u_max) = (f64::INFINITY, f64::INFINITY, 0.0f64);
    for &(l, w) in &route.links {
        let (c, u) = util(l.0);
        alone = alone.min(c / w);
        shared = shared.min(c * (1.0 - u) / w);
        u_max = u_max.max(u);
    }
    let wire = route.wire_bytes as f64;
    let tail = route.tail.as_ps() as f64;
    let ms = |ps: f64| ps / 1e9;
    Ok(vec![
        Check::at_least(
            case,
            "precondition: background requests decoding through the transfer",
            n as f64,
            steady as f64,
            "the decode pool iterates over its whole batch while the probe's KV cache moves",
        ),
        Check::at_least(
            case,
            "precondition: iteration utilisation of the busiest link on the route",
            0.1,
            u_max,
            "the probe's route carries the iterations' traffic (the case tests something)",
        ),
        Check::at_most(
            case,
            "precondition: iteration utilisation of the busiest link on the route (below the floor)",
            1.0 - crate::flow::online::MIN_SHARE,
            u_max,
            "the closed form holds above the floor",
        ),
        Check::within(
            case,
            "kv_transfer_ms, kv_shares_fabric = true",
            ms(wire / shared + tail),
            on_ms,
            1.0,
            "wire bytes / min over the route (C x (1 - u) / share) + tail, u from a whole-model \
             decode iteration",
        ),
        Check::within(
            case,
            "kv_transfer_ms, kv_shares_fabric = false",
            ms(wire / alone + tail),
            off_ms,
            0.01,
            "wire bytes / min over the route (C / share) + tail: the lone transfer",
        ),
    ])
}
