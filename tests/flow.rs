//! The flow and analytical levels as a user meets them: level selection, bad input, the
//! result shape, determinism, and agreement with the packet level's closed forms.

use afdsim::config::{Level, Scenario};
use std::process::Command;

const BASE: &str = r#"
name = "t"
level = "LEVEL"
[fabric]
nodes = 4
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 100
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 100
[[traffic]]
pattern = "all-to-all"
bytes = 65536
"#;

fn parse(level: &str, from: &str, to: &str) -> Result<Scenario, afdsim::error::InputError> {
    let text = BASE.replace("LEVEL", level);
    let changed = text.replacen(from, to, 1);
    assert!(from.is_empty() || changed != text, "{from:?} did not apply");
    Scenario::parse(&changed, "f.toml", None)
}

#[test]
fn levels_parse_and_unknown_levels_are_rejected() {
    for (name, level) in [
        ("packet", Level::Packet),
        ("flow", Level::Flow),
        ("analytical", Level::Analytical),
    ] {
        assert_eq!(parse(name, "", "").unwrap().level(), level);
    }
    let e = parse("fluid", "", "").unwrap_err();
    assert_eq!(e.key, "level");
    assert!(e.message.contains("packet, flow, analytical"), "{e}");
}

/// A packet-level feature at the flow or analytical level is an error naming its key and
/// saying what to do, never silently ignored; at the packet level it is accepted.
#[test]
fn packet_only_features_are_rejected_at_flow_level() {
    let cases = [
        (
            "latency_ns = 100\n[[",
            "latency_ns = 100\nbuffer_kib = 1024\npfc_xoff_kib = 512\npfc_xon_kib = 256\n[[",
            "fabric.switch.pfc_xoff_kib",
        ),
        (
            "latency_ns = 100\n[[",
            "latency_ns = 100\nmode = \"lossy\"\nbuffer_kib = 64\n[[",
            "fabric.switch.mode",
        ),
        (
            "latency_ns = 100\n[[",
            "latency_ns = 100\necn_kmin_kib = 100\necn_kmax_kib = 400\n[[",
            "fabric.switch.ecn_kmin_kib",
        ),
        (
            "latency_ns = 100\n[fabric.scale",
            "latency_ns = 100\ncongestion_control = \"dcqcn\"\n[fabric.scale",
            "fabric.nic.congestion_control",
        ),
    ];
    for (from, to, key) in cases {
        assert!(parse("packet", from, to).is_ok(), "{key} at packet level");
        for level in ["flow", "analytical"] {
            let e = parse(level, from, to).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert_eq!(e.file, "f.toml");
            assert!(e.message.contains("packet-level feature"), "{e}");
            assert!(e.message.contains("level = \"packet\""), "{e}");
            assert!(e.message.contains(level), "{e}");
        }
        // The same check when the level comes from the command line.
        let s = parse("packet", from, to).unwrap();
        let e = s.with_level(Level::Flow).unwrap_err();
        assert_eq!(e.key, key);
        assert!(e.message.contains("--level"), "{e}");
    }
}

#[test]
fn flow_run_has_the_packet_run_shape_and_is_deterministic() {
    let s = parse("flow", "", "").unwrap();
    let a = afdsim::run(&s, &mut |_| {}).unwrap();
    let b = afdsim::run(&s, &mut |_| {}).unwrap();
    let out = a.output(&s);
    assert_eq!(out.level, "flow");
    assert_eq!(out.to_json(), b.output(&s).to_json());
    assert_eq!(a.metrics.messages, 12);
    assert_eq!(a.metrics.packets, 0, "the flow level never makes packets");
    assert!(a.run.messages.iter().all(|m| m.finish.is_some()));
    // Every access link carries three messages of 16 packets' worth of wire bytes, and the
    // report counts it as used by its bytes.
    let used = a.run.links.iter().filter(|l| l.wire_bytes > 0).count();
    assert_eq!(used, 8);
    for l in a.run.links.iter().filter(|l| l.wire_bytes > 0) {
        assert_eq!(l.wire_bytes, 3 * (65536 + 16 * 64));
        assert_eq!(l.packets, 0, "no packets per link either");
    }
    let u = &a.metrics.link_utilization["access"];
    assert!(u.max > 0.9 && u.max <= 1.0, "{u:?}");
}

/// The closed forms the packet level meets to the picosecond hold at the flow and
/// analytical levels too (to a picosecond of rounding the fluid finish up).
#[test]
fn closed_forms_hold_at_every_level() {
    let files = [
        include_str!("../validation/closed-form-single-flow.toml"),
        include_str!("../validation/closed-form-incast.toml"),
        afdsim::config::STAR_SCENARIO,
    ];
    for text in files {
        let s = Scenario::parse(text, "closed-form", None).unwrap();
        let packet = afdsim::run(&s, &mut |_| {}).unwrap().run.end;
        for level in [Level::Flow, Level::Analytical] {
            let s = s.clone().with_level(level).unwrap();
            let end = afdsim::run(&s, &mut |_| {}).unwrap().run.end;
            let diff = end.as_ps().abs_diff(packet.as_ps());
            assert!(
                diff <= 1,
                "{} at {level:?}: {end} vs packet {packet}",
                s.name()
            );
        }
    }
}

#[test]
fn cli_level_flag_overrides_the_file_and_is_checked() {
    let bin = env!("CARGO_BIN_EXE_afdsim");
    let o = Command::new(bin)
        .args(["run", "--json", "--level", "flow"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["level"], "flow");
    let o = Command::new(bin)
        .args(["run", "--level", "fluid"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // A PFC scenario run at --level flow: exit 2 with the key named.
    let dir = std::env::temp_dir().join(format!("afdsim-flow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("pfc.toml");
    let text = BASE.replace("LEVEL", "packet").replacen(
        "latency_ns = 100\n[[",
        "latency_ns = 100\nbuffer_kib = 1024\npfc_xoff_kib = 512\npfc_xon_kib = 256\n[[",
        1,
    );
    std::fs::write(&p, text).unwrap();
    let o = Command::new(bin)
        .args(["run", p.to_str().unwrap(), "--level", "flow"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fabric.switch.pfc_xoff_kib"), "{err}");
}

/// Two messages into one receiver, the second starting when the first is a quarter done:
/// the first runs alone at the link rate, then both share the receiver link, then the
/// second runs alone. Checked against that arithmetic, done here independently.
#[test]
fn staggered_flows_follow_the_fluid_closed_form() {
    let text = r#"
name = "staggered"
level = "flow"
[fabric]
nodes = 3
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 1000
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 300
[[traffic]]
pattern = "message"
src = 1
dst = 0
bytes = 4194304
[[traffic]]
pattern = "message"
src = 2
dst = 0
bytes = 4194304
start_ns = 20970
"#;
    let s = Scenario::parse(text, "staggered.toml", None).unwrap();
    let r = afdsim::run(&s, &mut |_| {}).unwrap().run;
    // Wire bytes: 1024 packets of 4096 + 64 B; 400 Gb/s = 0.05 B/ps.
    let wire = 1024.0 * 4160.0;
    let c = 0.05;
    let t1 = 20_970_000.0; // ps
    let left_a = wire - c * t1;
    let a_done = t1 + left_a / (c / 2.0);
    let b_left = wire - (c / 2.0) * (a_done - t1);
    let b_done = a_done + b_left / c;
    // Tail: two 1 us links, 300 ns of switch, one 83.2 ns packet of store-and-forward.
    let tail = 2_000_000.0 + 300_000.0 + 83_200.0;
    let got_a = r.messages[0].finish.unwrap().as_ps() as f64;
    let got_b = r.messages[1].finish.unwrap().as_ps() as f64;
    assert!(
        (got_a - (a_done + tail)).abs() <= 2.0,
        "{got_a} vs {}",
        a_done + tail
    );
    assert!(
        (got_b - (b_done + tail)).abs() <= 2.0,
        "{got_b} vs {}",
        b_done + tail
    );
}

/// `--level packet` on a file written for the flow level that studies PFC: the packet
/// level runs it (the override applies before the level's checks).
#[test]
fn level_override_applies_before_the_checks() {
    let dir = std::env::temp_dir().join(format!("afdsim-flow-ovr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("pfc-flow.toml");
    let text = BASE.replace("LEVEL", "flow").replacen(
        "latency_ns = 100\n[[",
        "latency_ns = 100\nbuffer_kib = 1024\npfc_xoff_kib = 512\npfc_xon_kib = 256\n[[",
        1,
    );
    std::fs::write(&p, text).unwrap();
    assert!(Scenario::load(&p, None).is_err());
    let s = Scenario::load_at_level(&p, None, Some(Level::Packet)).unwrap();
    assert_eq!(s.level(), Level::Packet);
    let e = Scenario::load_at_level(&p, None, Some(Level::Analytical)).unwrap_err();
    assert!(e.message.contains("--level"), "{e}");
}

/// Messages ready from the start begin at their own start times, whatever their order in the
/// scenario: the flow level takes them in (time, message) order beside its event queue. A
/// late permutation listed first, a jittered all-to-all, an early message listed last.
#[test]
fn ready_messages_start_at_their_times_in_any_order() {
    let head = BASE.replace("LEVEL", "flow");
    let head = &head[..head.find("[[traffic]]").expect("BASE has traffic")];
    let text = format!(
        "{head}[[traffic]]\npattern = \"permutation\"\nbytes = 65536\nstart_ns = 3000\n\
         [[traffic]]\npattern = \"all-to-all\"\nbytes = 65536\nstart_jitter_ns = 2000\n\
         [[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 3\nbytes = 4096\nstart_ns = 500\n"
    );
    let s = Scenario::parse(&text, "f.toml", Some(7)).unwrap();
    let specs = s.messages();
    assert!(
        specs.windows(2).any(|w| w[0].start > w[1].start),
        "starts out of message order"
    );
    let r = afdsim::flow::simulate(s.fabric(), s.net(), specs, &mut |_| {}).unwrap();
    for (m, spec) in r.messages.iter().zip(specs) {
        assert_eq!(m.start, spec.start, "{:?}", (spec.src, spec.dst));
        assert!(m.finish.is_some_and(|f| f > m.start));
    }
}
