use afdsim::afd::StepShape;
use afdsim::config::Scenario;
use afdsim::engine::SimRng;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let s = Scenario::load_at_level(Path::new(&args[1]), None, None).unwrap();
    let spec = s.serving().unwrap();
    let pool = &spec.decode;
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    let shape = StepShape {
        active_attention_gpus: num(2) as u32,
        batch_per_attention_gpu: num(3) as u32,
        context: num(4),
        contexts: Vec::new(),
        prefill_tokens: num(5) as u32,
        prefill_prefix: 0,
        layers: num(6),
    };
    let mut rng = SimRng::stream(spec.seed, afdsim::engine::stream::SERVING);
    let step = pool
        .decode_step(s.fabric(), s.net(), &shape, &mut rng)
        .unwrap();
    let t0 = Instant::now();
    let (r, st) = afdsim::flow::simulate_workload_with_stats(
        s.fabric(),
        s.net(),
        &step.workload,
        &mut |_| {},
    )
    .unwrap();
    let end = r
        .messages
        .iter()
        .filter_map(|m| m.finish)
        .chain(r.computes.iter().filter_map(|c| c.finish))
        .max()
        .unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for t in r
        .messages
        .iter()
        .flat_map(|m| [Some(m.start), m.finish])
        .chain(r.computes.iter().flat_map(|c| [c.start, c.finish]))
    {
        h = (h ^ t.map_or(u64::MAX, |t| t.as_ps())).wrapping_mul(0x100_0000_01b3);
    }
    println!(
        "{:.3} s  msgs {}  end {:.3} us  upd {} refilled {} links {} changed {} hash {h:016x}",
        t0.elapsed().as_secs_f64(),
        step.workload.messages.len(),
        end.as_us_f64(),
        st.updates,
        st.flows_refilled,
        st.links_visited,
        st.stale_events
    );
}
