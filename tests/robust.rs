//! Every input ends in a result or a clear error (issue 13): generated scenarios with values
//! across and beyond the allowed ranges (rates, sizes, counts, latencies, buffers, packet
//! sizes, contexts, batches) run through the CLI at all three levels. Each must exit 0, or
//! exit 2 with one `error: FILE: ...` line, within a time limit: never a panic (101), an
//! abort (134), a signal or a hang.
//!
//! Values are drawn from lists that straddle each key's bounds (just inside, on, just
//! outside, absurd, nan/inf) rather than uniformly, since the failures live at the edges.
//! Valid draws are kept small enough to finish in seconds: the packet level only sees
//! messages up to 256 KiB (at a 64 B MTU over 64 GPUs that is 16 M packets; 4 MiB there was
//! 264 M packets, minutes of honest work that this test first reported as a hang), and the memory check is given a 2 GB budget (`AFDSIM_MEMORY_LIMIT_BYTES`), so a
//! draw that would hold more is refused instead of run.

mod common;

use proptest::prelude::*;
use std::process::Command;
use std::time::Duration;

/// The longest a generated case may take (the bar for a hang is 60 s; on a loaded
/// 2-core machine a valid case takes well under 5 s).
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Runs `afdsim run FILE --level LEVEL`, killing it past [`CASE_LIMIT`].
fn run_case(text: &str, level: &str, case: &str) -> Result<(), TestCaseError> {
    let path = common::temp_file("robust", &format!("{case}.toml"), text);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_afdsim"));
    cmd.args(["run", path.to_str().unwrap(), "--level", level, "--json"])
        .env("AFDSIM_MEMORY_LIMIT_BYTES", "2000000000")
        .env("RUST_BACKTRACE", "0");
    let Some(out) = common::output_within(cmd, CASE_LIMIT) else {
        return Err(TestCaseError::fail(format!(
            "hung past {CASE_LIMIT:?} at level {level}:\n{text}"
        )));
    };
    let status = out.status;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("progress:"))
        .collect();
    match status.code() {
        Some(0) => {
            if std::env::var_os("ROBUST_SHOW").is_some() {
                eprintln!("ok {level}");
            }
            Ok(())
        }
        Some(2) => {
            if std::env::var_os("ROBUST_SHOW").is_some() {
                eprintln!("e2 {level} {}", lines.first().unwrap_or(&""));
            }
            prop_assert!(
                lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains(": "),
                "exit 2 without one `error: FILE: KEY: ...` line at level {level}: {err}\n{text}"
            );
            prop_assert!(
                !err.contains("panicked") && !err.contains("memory allocation"),
                "{err}"
            );
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "exit {other:?} (101 = panic, None = signal/abort) at level {level}: {err}\n{text}"
        ))),
    }
}

/// One of `values`, as written into TOML: one of the first `valid` (allowed values) nine
/// times in ten, else any, so that about a third of the cases draw a scenario valid in
/// every key and run, and the rest probe one or two edges each.
fn pick_in(values: &'static [&'static str], valid: usize) -> impl Strategy<Value = &'static str> {
    prop_oneof![
        9 => prop::sample::select(&values[..valid]),
        1 => prop::sample::select(values),
    ]
}

/// [`pick_in`] for the lists below: each starts with its valid values, up to `|`.
fn pick(values: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    let valid = values
        .iter()
        .position(|&v| v == "|")
        .expect("a `|` separator");
    let values: &'static [&'static str] = Box::leak(
        values
            .iter()
            .copied()
            .filter(|&v| v != "|")
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    pick_in(values, valid)
}

const NODES: &[&str] = &["1", "2", "3", "8", "|", "-1", "0", "100000", "4294967296"];
const GPUS_PER_NODE: &[&str] = &["1", "2", "8", "|", "0", "1000"];
const RATES_GBPS: &[&str] = &[
    "0.001", "0.5", "100", "400", "100000", "|", "-1", "0", "1e-9", "0.0009", "1e6", "nan", "inf",
];
const LATENCIES_NS: &[&str] = &["0", "1", "1000", "1e9", "|", "-1", "1.1e9", "nan", "-inf"];
const MTUS: &[&str] = &["64", "4096", "65536", "|", "0", "63", "65537"];
const HEADERS: &[&str] = &["0", "64", "|", "-1", "100000"];
/// Valid packet-level sizes stay small (see the module doc); the rest straddle the bounds.
const BYTES_PACKET: &[&str] = &[
    "1",
    "4096",
    "65537",
    "4194304",
    "|",
    "-1",
    "0",
    "1099511627777",
    "9223372036854775807",
];
const BYTES_ANY: &[&str] = &[
    "1",
    "4096",
    "4194304",
    "1099511627776",
    "|",
    "-1",
    "0",
    "1099511627777",
];
const STARTS_NS: &[&str] = &["0", "1e9", "|", "-5", "2e9", "nan"];
const SWITCHES: &[&str] = &[
    "",
    "mode = \"lossless\"",
    "mode = \"lossless\"\nbuffer_kib = 1024\npfc_xoff_kib = 64\npfc_xon_kib = 32",
    "mode = \"lossy\"\nbuffer_kib = 64",
    "ecn_kmin_kib = 5\necn_kmax_kib = 200\necn_pmax = 0.01",
    "|",
    "mode = \"lossless\"\nbuffer_kib = 1",
    "mode = \"lossless\"\nbuffer_kib = 1e9\npfc_xoff_kib = 64\npfc_xon_kib = 32",
    "mode = \"lossless\"\nbuffer_kib = 512\npfc_xoff_kib = 64\npfc_xon_kib = 128",
    "mode = \"lossy\"",
    "mode = \"lossy\"\nbuffer_kib = 0",
    "mode = \"lossy\"\nbuffer_kib = 9",
    "mode = \"lossy\"\nbuffer_kib = -3",
    "mode = \"bogus\"",
    "ecn_kmin_kib = 5\necn_kmax_kib = 1\necn_pmax = 0.01",
    "ecn_kmin_kib = 5\necn_kmax_kib = 200\necn_pmax = 2",
];
/// The flow and analytical levels take no switch buffer keys (an error naming the key):
/// mostly none, sometimes one.
const SWITCHES_FLUID: &[&str] = &[
    "",
    "|",
    "mode = \"lossless\"",
    "mode = \"lossy\"\nbuffer_kib = 64",
];
const CONGESTION: &[&str] = &[
    "",
    "congestion_control = \"dcqcn\"",
    "|",
    "congestion_control = \"x\"",
];
const PATTERNS: &[&str] = &[
    "pattern = \"all-to-all\"",
    "pattern = \"message\"\nsrc = 0\ndst = 1",
    "pattern = \"incast\"\nsenders = [1]\nreceiver = 0",
    "pattern = \"permutation\"",
    "|",
    "pattern = \"message\"\nsrc = 0\ndst = 0",
    "pattern = \"message\"\nsrc = 0\ndst = 99999",
    "pattern = \"gossip\"",
    "pattern = \"incast\"\nsenders = 3\nreceiver = 0",
];

#[allow(clippy::too_many_arguments)]
fn network_scenario(
    nodes: &str,
    gpn: &str,
    rate: &str,
    latency: &str,
    mtu: &str,
    header: &str,
    switch: &str,
    cc: &str,
    pattern: &str,
    bytes: &str,
    start: &str,
) -> String {
    format!(
        "name = \"robust\"\n\
         [fabric]\nname = \"gen\"\nnodes = {nodes}\ngpus_per_node = {gpn}\n\
         [fabric.nic]\nrate_gbps = {rate}\nlatency_ns = {latency}\nmtu_bytes = {mtu}\n\
         header_bytes = {header}\n{cc}\n\
         [fabric.scale_out]\ntopology = \"single-switch\"\n\
         [fabric.switch]\nlatency_ns = 300\n{switch}\n\
         [[traffic]]\n{pattern}\nbytes = {bytes}\nstart_ns = {start}\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(1),
        .. ProptestConfig::default()
    })]

    /// Network scenarios at the packet level, sizes kept to what finishes in seconds.
    #[test]
    fn packet_level_ends_cleanly(
        nodes in pick(NODES), gpn in pick(GPUS_PER_NODE), rate in pick(RATES_GBPS),
        latency in pick(LATENCIES_NS), mtu in pick(MTUS), header in pick(HEADERS),
        switch in pick(SWITCHES), cc in pick(CONGESTION), pattern in pick(PATTERNS),
        bytes in pick(BYTES_PACKET), start in pick(STARTS_NS),
    ) {
        // The packet level at a valid 1 Mb/s moves 4 MiB in 34 simulated seconds, but an
        // all-to-all over 8 x 1000 GPUs is 64 M messages: the memory budget refuses it.
        let text = network_scenario(
            nodes, gpn, rate, latency, mtu, header, switch, cc, pattern, bytes, start,
        );
        run_case(&text, "packet", "packet")?;
    }

    /// The same scenarios, every size, at the flow and analytical levels.
    #[test]
    fn flow_and_analytical_levels_end_cleanly(
        nodes in pick(NODES), gpn in pick(GPUS_PER_NODE), rate in pick(RATES_GBPS),
        latency in pick(LATENCIES_NS), mtu in pick(MTUS), header in pick(HEADERS),
        switch in pick(SWITCHES_FLUID), cc in pick(CONGESTION), pattern in pick(PATTERNS),
        bytes in pick(BYTES_ANY), start in pick(STARTS_NS),
    ) {
        let text = network_scenario(
            nodes, gpn, rate, latency, mtu, header, switch, cc, pattern, bytes, start,
        );
        run_case(&text, "flow", "flow")?;
        run_case(&text, "analytical", "analytical")?;
    }
}

const ATTENTION_GPUS: &[&str] = &["1", "8", "|", "-1", "0", "16", "24", "100"];
const FFN_GPUS: &[&str] = &["16", "|", "0", "1", "8", "17", "100"];
const MICRO_BATCHES: &[&str] = &["1", "3", "|", "0", "64", "100000"];
const BATCHES: &[&str] = &["3", "7", "128", "|", "-1", "0", "1", "4096", "1000000"];
const CONTEXTS: &[&str] = &[
    "1",
    "4096",
    "131072",
    "|",
    "-1",
    "0",
    "1000000000",
    "4294967295",
];
const LAYERS: &[&str] = &["1", "2", "|", "-1", "0", "100000"];
const AFD_RATES: &[&str] = &["0.001", "1", "400", "|", "nan", "0"];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(1),
        .. ProptestConfig::default()
    })]

    /// AFD decode steps on 3 HGX H100 servers (24 GPUs) with the pools, batches, contexts
    /// and layer counts across their bounds, at the flow level (the level the default runs
    /// at) and, where it is valid, at the analytical level (an error naming the level).
    #[test]
    fn afd_steps_end_cleanly(
        attention in pick(ATTENTION_GPUS), ffn in pick(FFN_GPUS), mb in pick(MICRO_BATCHES),
        batch in pick(BATCHES), context in pick(CONTEXTS), layers in pick(LAYERS),
        rate in pick(AFD_RATES),
    ) {
        let text = format!(
            "name = \"robust-afd\"\nlevel = \"flow\"\n\
             [fabric]\nfile = \"hgx-h100\"\nnodes = 3\n\
             [fabric.nic]\nrate_gbps = {rate}\n\
             [afd]\nmodel = \"deepseek-v3.2\"\ntable = \"h100-sxm\"\n\
             attention_gpus = {attention}\nffn_gpus = {ffn}\nmicro_batches = {mb}\n\
             batch_per_attention_gpu = {batch}\ncontext = {context}\nlayers = {layers}\n"
        );
        run_case(&text, "flow", "afd")?;
        run_case(&text, "analytical", "afd-analytical")?;
    }
}
