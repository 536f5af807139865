//! `afdsim sweep` and `afdsim merge` as a user meets them: sharding, resume after SIGKILL,
//! byte-identical merges whatever --jobs or shards, clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rstest::{Context, rstest};

fn afdsim(args: &[&str]) -> Output {
    afdsim_env(args, &[])
}

fn afdsim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_afdsim"));
    c.args(args);
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the afdsim binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "afdsim failed: {}", stderr(&o));
    o
}

/// A fresh folder per test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("afdsim-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A sweep with an inline base: `gpus` GPUs, all-to-all of `bytes`, and the given axes.
fn sweep_file(dir: &Path, gpus: u32, bytes: u64, axes: &str) -> PathBuf {
    let text = format!(
        r#"name = "t"
{axes}
[base]
name = "tiny-star"
[base.fabric]
nodes = {gpus}
gpus_per_node = 1
[base.fabric.nic]
rate_gbps = 100
latency_ns = 500
[base.fabric.scale_out]
topology = "single-switch"
[[base.traffic]]
pattern = "all-to-all"
bytes = {bytes}
start_jitter_ns = 2000
"#
    );
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// 12 points of a few milliseconds: 3 rates x 2 sizes x 2 seeds (the jitter uses the seed).
const AXES: &str = r#"
[[axis]]
key = "fabric.nic.rate_gbps"
log = { from = 100, to = 400, count = 3 }
[[axis]]
key = "traffic[0].bytes"
values = [4096, 16384]
[[axis]]
key = "seed"
values = [1, 2]
"#;

fn merged(dirs: &[&Path], out: &Path) -> Vec<u8> {
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(|d| s(d)));
    args.extend(["--out", s(out)]);
    ok(afdsim(&args));
    std::fs::read(out).unwrap()
}

#[test]
fn shards_and_jobs_merge_to_the_same_bytes_as_one_run() {
    let t = temp_dir("shards");
    let sweep = sweep_file(&t, 4, 8192, AXES);
    let whole = t.join("whole");
    ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&whole),
        "--jobs",
        "1",
    ]));
    let reference = merged(&[&whole], &t.join("whole.csv"));
    let text = String::from_utf8(reference.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13, "{text}");
    assert!(
        lines[0].starts_with(
            "point,index,fabric.nic.rate_gbps,traffic[0].bytes,seed,scenario,level,afdsim_version,"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(",makespan_us,") && lines[0].contains(",message_time_us.p99,"));
    // Sweep order: first axis outermost; the version is in every row.
    assert!(
        lines[1].contains(",0,100,4096,1,tiny-star,packet,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[12].contains(",11,400,16384,2,tiny-star,packet,"),
        "{}",
        lines[12]
    );
    assert!(lines[1].contains(env!("CARGO_PKG_VERSION")));

    // More threads: the same bytes.
    let jobs2 = t.join("jobs2");
    ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&jobs2),
        "--jobs",
        "2",
    ]));
    assert_eq!(merged(&[&jobs2], &t.join("jobs2.csv")), reference);

    // N = 1, 2, 3 shards, each in its own folder, and all shards into one folder.
    for n in 1..=3 {
        let shared = t.join(format!("shared-{n}"));
        let mut dirs = Vec::new();
        for i in 0..n {
            let d = t.join(format!("shard-{i}-of-{n}"));
            let shard = format!("{i}/{n}");
            ok(afdsim(&[
                "sweep",
                s(&sweep),
                "--out",
                s(&d),
                "--shard",
                &shard,
            ]));
            ok(afdsim(&[
                "sweep",
                s(&sweep),
                "--out",
                s(&shared),
                "--shard",
                &shard,
            ]));
            let files = std::fs::read_dir(d.join("points")).unwrap().count();
            assert_eq!(files, (12 + n - 1 - i) / n, "shard {shard}");
            dirs.push(d);
        }
        let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        assert_eq!(
            merged(&refs, &t.join(format!("m{n}.csv"))),
            reference,
            "N = {n}"
        );
        assert_eq!(
            merged(&[&shared], &t.join(format!("s{n}.csv"))),
            reference,
            "N = {n}, one folder"
        );
    }
}

#[test]
fn slurm_array_variables_choose_the_shard_and_arrays_may_start_at_1() {
    let t = temp_dir("slurm-env");
    let sweep = sweep_file(&t, 4, 8192, AXES);
    let whole = t.join("whole");
    ok(afdsim(&["sweep", s(&sweep), "--out", s(&whole)]));
    let reference = merged(&[&whole], &t.join("whole.csv"));
    // --array=1-3: ids 1, 2, 3 with SLURM_ARRAY_TASK_MIN=1 are shards 0, 1, 2 of 3.
    let d = t.join("array");
    for id in ["1", "2", "3"] {
        let o = ok(afdsim_env(
            &["sweep", s(&sweep), "--out", s(&d)],
            &[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
            ],
        ));
        let shard = format!("shard {}/3: 4 points", id.parse::<u32>().unwrap() - 1);
        assert!(stderr(&o).contains(&shard), "{}", stderr(&o));
    }
    assert_eq!(merged(&[&d], &t.join("array.csv")), reference);
    // --shard wins over the environment.
    let o = ok(afdsim_env(
        &[
            "sweep",
            s(&sweep),
            "--out",
            s(&t.join("x")),
            "--shard",
            "0/4",
        ],
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    ));
    assert!(stderr(&o).contains("shard 0/4: 3 points"), "{}", stderr(&o));
}

/// SIGKILL a sweep while it runs, run it again: the result equals an uninterrupted run,
/// nothing lost, nothing duplicated, and the rerun skipped the finished points.
#[test]
fn a_killed_sweep_resumes_to_the_uninterrupted_result() {
    let t = temp_dir("kill");
    // 16 points of ~12 ms each in a release build (32 GPUs, 256 KiB all-to-all): the kill
    // lands with over 100 ms to spare even when the polling thread is slow to wake.
    let axes = r#"
[[axis]]
key = "fabric.nic.rate_gbps"
values = [100, 200, 400, 800]
[[axis]]
key = "seed"
values = [1, 2, 3, 4]
"#;
    let sweep = sweep_file(&t, 32, 262_144, axes);
    let whole = t.join("whole");
    ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&whole),
        "--jobs",
        "2",
    ]));
    let reference = merged(&[&whole], &t.join("whole.csv"));

    let killed = t.join("killed");
    let points = killed.join("points");
    let mut child = Command::new(env!("CARGO_BIN_EXE_afdsim"))
        .args(["sweep", s(&sweep), "--out", s(&killed), "--jobs", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let finished = |p: &Path| {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished(&points) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = finished(&points);
    assert!(
        (3..16).contains(&done),
        "kill landed after {done} of 16 points; the test needs it midway"
    );
    // A partial merge names what is missing.
    let o = afdsim(&["merge", s(&killed), "--out", s(&t.join("partial.csv"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{} of 16 point(s) are not finished", 16 - done)),
        "{}",
        stderr(&o)
    );
    // What a power loss could leave: a renamed but empty file, and a stray temporary.
    let victim = std::fs::read_dir(&points)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    std::fs::write(&victim, "").unwrap();
    std::fs::write(points.join(".0123456789abcdef.csv.tmp-1"), "point,ind").unwrap();

    let o = ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&killed),
        "--jobs",
        "2",
    ]));
    let msg = stderr(&o);
    assert!(
        msg.contains(&format!(
            "{} already finished (1 unfinished files redone)",
            done - 1
        )),
        "{msg}"
    );
    assert_eq!(merged(&[&killed], &t.join("resumed.csv")), reference);
    // A third run has nothing to do.
    let o = ok(afdsim(&["sweep", s(&sweep), "--out", s(&killed)]));
    assert!(
        stderr(&o).contains("16 already finished, 0 to run"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn merge_names_missing_duplicated_and_foreign_points() {
    let t = temp_dir("merge");
    let sweep = sweep_file(&t, 4, 8192, AXES);
    let (a, b) = (t.join("a"), t.join("b"));
    ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&a),
        "--shard",
        "0/2",
    ]));
    ok(afdsim(&[
        "sweep",
        s(&sweep),
        "--out",
        s(&b),
        "--shard",
        "1/2",
    ]));
    let out = t.join("m.csv");

    let o = afdsim(&["merge", s(&a), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("6 of 12 point(s) are not finished"), "{e}");
    assert!(
        e.contains("point 1 (id ")
            && e.contains("fabric.nic.rate_gbps=100, traffic[0].bytes=4096, seed=2"),
        "{e}"
    );
    assert!(!out.exists(), "nothing is written on error");

    let o = ok(afdsim(&[
        "merge",
        s(&a),
        "--out",
        s(&out),
        "--allow-missing",
    ]));
    assert!(stderr(&o).contains("6 point(s) not finished, left out: 1 3 5 7 9 11"));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 7);

    // The same point finished in two folders.
    let f = std::fs::read_dir(a.join("points"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::copy(f.path(), b.join("points").join(f.file_name())).unwrap();
    let o = afdsim(&["merge", s(&a), s(&b), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("1 point(s) are finished in more than one folder: point "),
        "{e}"
    );
    std::fs::remove_file(b.join("points").join(f.file_name())).unwrap();
    ok(afdsim(&["merge", s(&a), s(&b), "--out", s(&out)]));

    // A folder of another sweep.
    let other = sweep_file(&t, 3, 8192, AXES);
    let c = t.join("c");
    ok(afdsim(&[
        "sweep",
        s(&other),
        "--out",
        s(&c),
        "--shard",
        "1/2",
    ]));
    let o = afdsim(&["merge", s(&a), s(&c), "--out", s(&out)]);
    assert!(
        stderr(&o).contains("is not the same sweep"),
        "{}",
        stderr(&o)
    );
    // Nor may a sweep resume into another sweep's folder.
    let o = afdsim(&["sweep", s(&other), "--out", s(&a)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds results of another sweep"),
        "{}",
        stderr(&o)
    );
}

/// Runs `args` and expects exit 2 with one line on stderr holding every one of `words`.
fn expect_one_line_error(args: &[&str], words: &[&str]) {
    let o = afdsim(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    for w in words {
        assert!(e.contains(w), "{args:?}: `{w}` not in: {e}");
    }
}

/// Bad input: exit 2, one line naming the file and the key. Each case is a sweep of `axes`
/// run as `afdsim sweep SWEEP --out OUT` followed by `flags`.
#[rstest]
#[case::unknown_key(
    "[[axis]]\nkey = \"fabric.link_rate_gbs\"\nvalues = [1]",
    &[],
    &["sweep.toml: axis[0].key: with fabric.link_rate_gbs = 1: unknown field `link_rate_gbs`"]
)]
#[case::empty_values(
    "[[axis]]\nkey = \"fabric.nodes\"\nvalues = []",
    &[],
    &["sweep.toml: axis[0].values: is empty"]
)]
#[case::typo_value(
    "[[axis]]\nkey = \"seed\"\nvalue = [1]",
    &[],
    &["sweep.toml: axis[0]", "unknown field `value`"]
)]
#[case::shard_out_of_range(AXES, &["--shard", "3/3"], &["--shard: shard index 3 is out of range"])]
#[case::shard_of_zero(AXES, &["--shard", "1/0"], &["--shard"])]
#[case::zero_jobs(AXES, &["--jobs", "0"], &["--jobs"])]
fn bad_sweeps_and_shards_are_clear_errors(
    #[context] ctx: Context,
    #[case] axes: &str,
    #[case] flags: &[&str],
    #[case] words: &[&str],
) {
    let t = temp_dir(&format!("errors-{}", ctx.description.unwrap()));
    let sweep = sweep_file(&t, 4, 8192, axes);
    let out = t.join("out");
    let mut args = vec!["sweep", s(&sweep), "--out", s(&out)];
    args.extend_from_slice(flags);
    expect_one_line_error(&args, words);
}

/// A Slurm array index past its count is an error naming the variable.
#[test]
fn a_slurm_task_id_out_of_range_is_an_error() {
    let t = temp_dir("errors-slurm");
    let good = sweep_file(&t, 4, 8192, AXES);
    let out = t.join("out");
    let o = afdsim_env(
        &["sweep", s(&good), "--out", s(&out)],
        &[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("SLURM_ARRAY_TASK_ID"), "{}", stderr(&o));
}

/// Merging a folder that holds no sweep names the missing sweep.json.
#[test]
fn merging_a_folder_without_a_sweep_is_a_clear_error() {
    let t = temp_dir("errors-merge");
    let out = t.join("out");
    expect_one_line_error(
        &["merge", s(&t.join("nowhere")), "--out", s(&out)],
        &["sweep.json"],
    );
}

#[test]
fn list_shows_the_points_of_a_shard() {
    let t = temp_dir("list");
    let sweep = sweep_file(&t, 4, 8192, AXES);
    let o = ok(afdsim(&["sweep", s(&sweep), "--list", "--shard", "1/5"]));
    let text = String::from_utf8(o.stdout).unwrap();
    let idx: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(idx, ["1", "6", "11"]);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("fabric.nic.rate_gbps=100 traffic[0].bytes=4096 seed=2")
    );
}

/// The sweep files shipped in workloads/sweeps are valid.
#[test]
fn shipped_sweep_files_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/sweeps");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        afdsim::sweep::Sweep::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert!(n >= 2);
}

/// `plot` and `report` from a merged sweep: SVG files with labelled axes; figures whose
/// columns are missing are named as skipped; plotting errors are one clear line.
#[test]
fn plot_and_report_draw_labelled_svgs() {
    let t = temp_dir("plot");
    let axes = r#"
[[axis]]
key = "fabric.nic.rate_gbps"
values = [100, 200, 400]
[[axis]]
key = "fabric.nodes"
values = [2, 4]
"#;
    let sweep = sweep_file(&t, 4, 8192, axes);
    let out = t.join("out");
    ok(afdsim(&["sweep", s(&sweep), "--out", s(&out)]));
    let csv = t.join("r.csv");
    merged(&[&out], &csv);

    let svg = t.join("p.svg");
    let args = [
        "plot",
        s(&csv),
        "--x",
        "fabric.nic.rate_gbps",
        "--y",
        "makespan_us",
        "--series",
        "fabric.nodes",
        "--log-x",
        "--out",
        s(&svg),
    ];
    ok(afdsim(&args));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    for label in [
        "fabric NIC rate (Gb/s)",
        "makespan (µs)",
        "nodes = 2",
        "nodes = 4",
    ] {
        assert!(text.contains(label), "`{label}` not in the SVG");
    }
    ok(afdsim(&args));
    assert_eq!(
        std::fs::read_to_string(&svg).unwrap(),
        text,
        "same table, same SVG"
    );

    // Without --series, two rows share each x: the error says which column differs.
    let o = afdsim(&[
        "plot",
        s(&csv),
        "--x",
        "fabric.nic.rate_gbps",
        "--y",
        "makespan_us",
        "--out",
        s(&svg),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("they differ in: fabric.nodes"),
        "{}",
        stderr(&o)
    );
    let o = afdsim(&[
        "plot",
        s(&csv),
        "--x",
        "nope",
        "--y",
        "makespan_us",
        "--out",
        s(&svg),
    ]);
    assert!(stderr(&o).contains("no column `nope`"), "{}", stderr(&o));

    let figs = t.join("figs");
    let o = ok(afdsim(&["report", s(&csv), "--out", s(&figs)]));
    let e = stderr(&o);
    assert!(figs.join("bandwidth-makespan.svg").exists(), "{e}");
    assert!(figs.join("bandwidth-message-p99.svg").exists(), "{e}");
    assert!(
        e.contains("skipped bandwidth-tpot.svg: needs columns the table lacks (y: tpot_ms)"),
        "{e}"
    );
    assert!(e.contains("skipped exposed-comm-micro-batches.svg"), "{e}");
}

/// Runs afdsim and fails the test if it has not exited after `limit` (a hang is a bug: the
/// child is killed so the test run goes on).
fn afdsim_within(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_afdsim"));
    cmd.args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN");
    common::output_within(cmd, limit)
        .unwrap_or_else(|| panic!("afdsim {args:?} still running after {limit:?}: a hang"))
}

/// Non-finite cells (`inf`, `-inf`, `NaN`, in x or y) are an error naming the file, the
/// column and the line; values near ±f64::MAX, and log axes over hundreds of decades, are
/// drawn or refused in well under the limit, never a spin (issue 13: `inf` and ±1e308 hung
/// `plot` at 100 % CPU).
#[test]
fn plot_refuses_non_finite_values_and_never_hangs() {
    let t = temp_dir("nonfinite");
    let limit = Duration::from_secs(30);
    let svg = t.join("p.svg");
    let write = |name: &str, text: &str| {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    for (x, y, col, line, cell) in [
        ("1\n2", "2\ninf", "y", 3, "inf"),
        ("1\n2", "-inf\n2", "y", 2, "-inf"),
        ("1\n2", "NaN\n3", "y", 2, "NaN"),
        ("1\ninf", "2\n3", "x", 3, "inf"),
        ("nan\n2", "2\n3", "x", 2, "nan"),
    ] {
        let rows: String = x
            .lines()
            .zip(y.lines())
            .map(|(a, b)| format!("{a},{b}\n"))
            .collect();
        let csv = write("bad.csv", &format!("x,y\n{rows}"));
        let o = afdsim_within(
            &["plot", s(&csv), "--x", "x", "--y", "y", "--out", s(&svg)],
            limit,
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{x:?} {y:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        for w in [
            "bad.csv",
            &format!("`{col}`"),
            &format!("line {line}"),
            &format!("`{cell}`"),
            "finite",
        ] {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    }
    // Ranges at the ends of f64: drawn (scaled by a power of ten the label names).
    for (rows, log_y) in [
        ("1,1e308\n2,-1e308\n", false),
        ("1,1.7e308\n2,1.79e308\n", false),
        ("1,-1e308\n2,-1e308\n", false),
        ("1,1e-310\n2,3e-310\n", false),
        ("1,1e300\n2,1e301\n", true),
        ("1,1e-300\n2,1e-290\n", true),
        ("1,1e308\n2,1e308\n", true),
        ("1,1\n2,1.0000000000000002\n", false),
    ] {
        let csv = write("edge.csv", &format!("x,y\n{rows}"));
        let mut args = vec!["plot", s(&csv), "--x", "x", "--y", "y", "--out", s(&svg)];
        if log_y {
            args.push("--log-y");
        }
        let o = afdsim_within(&args, limit);
        assert!(o.status.success(), "{rows:?}: {}", stderr(&o));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{rows:?}");
    }
    // More decades than a log axis can hold: refused with the span named.
    let csv = write("wide.csv", "x,y\n1,1e-320\n2,1e300\n");
    let o = afdsim_within(
        &[
            "plot",
            s(&csv),
            "--x",
            "x",
            "--y",
            "y",
            "--log-y",
            "--out",
            s(&svg),
        ],
        limit,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("decades"), "{}", stderr(&o));
    // A value <= 0 on a log axis names its line.
    let csv = write("zero.csv", "x,y\n1,5\n2,0\n");
    let o = afdsim_within(
        &[
            "plot",
            s(&csv),
            "--x",
            "x",
            "--y",
            "y",
            "--log-y",
            "--out",
            s(&svg),
        ],
        limit,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    for w in ["zero.csv", "--log-y", "`y`", "line 3", "> 0"] {
        assert!(stderr(&o).contains(w), "`{w}` not in: {}", stderr(&o));
    }

    // `report` draws through the same path: an infinite makespan skips that figure with
    // the line named, and the other figure is drawn.
    let csv = write(
        "merged.csv",
        "point,index,fabric.nic.rate_gbps,seed,scenario,level,afdsim_version,makespan_us,message_time_us.p99\n\
         a,0,100,1,s,packet,v,10,4\n\
         b,1,200,1,s,packet,v,inf,2\n",
    );
    let figs = t.join("figs");
    let o = afdsim_within(&["report", s(&csv), "--out", s(&figs)], limit);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(figs.join("bandwidth-message-p99.svg").exists(), "{e}");
    assert!(!figs.join("bandwidth-makespan.svg").exists(), "{e}");
    assert!(
        e.contains("skipped bandwidth-makespan.svg") && e.contains("line 3 (point b)"),
        "{e}"
    );
}

/// `--jobs` beyond the stated maximum is refused (issue 13: `--jobs 100000` started
/// thousands of threads); within it, the threads are capped at the points to run.
#[test]
fn sweep_jobs_are_bounded() {
    let t = temp_dir("jobs");
    let sweep = sweep_file(&t, 4, 8192, AXES);
    let out = t.join("out");
    let o = afdsim_within(
        &["sweep", s(&sweep), "--out", s(&out), "--jobs", "100000"],
        Duration::from_secs(30),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    assert!(e.contains("--jobs") && e.contains("1 to 1024"), "{e}");
    let o = ok(afdsim_within(
        &["sweep", s(&sweep), "--out", s(&out), "--jobs", "1000"],
        Duration::from_secs(30),
    ));
    let e = stderr(&o);
    assert!(e.contains("12 to run on 12 thread(s)"), "{e}");
}

/// A figure's title uses the readable labels of its axes, and a subtitle names the fixed
/// overrides that change its meaning (a swept key with one value; a `--where` choice).
#[test]
fn figures_name_their_fixed_overrides() {
    let t = temp_dir("subtitle");
    let axes = r#"
[[axis]]
key = "fabric.nic.rate_gbps"
values = [100, 200, 400]
[[axis]]
key = "fabric.nic.latency_ns"
values = [700]
[[axis]]
key = "traffic[0].bytes"
values = [8192, 16384]
"#;
    let sweep = sweep_file(&t, 4, 8192, axes);
    let out = t.join("out");
    ok(afdsim(&["sweep", s(&sweep), "--out", s(&out)]));
    let csv = t.join("r.csv");
    merged(&[&out], &csv);
    let svg = t.join("p.svg");
    ok(afdsim(&[
        "plot",
        s(&csv),
        "--x",
        "fabric.nic.rate_gbps",
        "--y",
        "makespan_us",
        "--where",
        "traffic[0].bytes=16384",
        "--out",
        s(&svg),
    ]));
    let text = std::fs::read_to_string(&svg).unwrap();
    for w in [
        "makespan vs fabric NIC rate",
        "fabric.nic.latency_ns = 700",
        "traffic[0].bytes = 16384",
    ] {
        assert!(text.contains(w), "`{w}` not in the SVG");
    }
    assert!(
        !text.contains("makespan_us vs"),
        "raw column names in the title"
    );
    let figs = t.join("figs");
    ok(afdsim(&["report", s(&csv), "--out", s(&figs)]));
    let text = std::fs::read_to_string(figs.join("bandwidth-makespan.svg")).unwrap();
    assert!(text.contains("Makespan vs link bandwidth"));
    assert!(
        text.contains("fabric.nic.latency_ns = 700"),
        "the fixed override is not in the report figure"
    );
}
