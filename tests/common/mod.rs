//! Helpers the test crates share: run the binary, read its output, write inputs, the
//! embedded compute tables.
// Each test crate compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use afdsim::compute::ComputeTable;

/// The embedded H100 table, loaded once per test crate.
pub fn h100() -> &'static ComputeTable {
    static T: OnceLock<ComputeTable> = OnceLock::new();
    T.get_or_init(|| ComputeTable::embedded("h100-sxm").unwrap())
}

/// The embedded H200 table, loaded once per test crate.
pub fn h200() -> &'static ComputeTable {
    static T: OnceLock<ComputeTable> = OnceLock::new();
    T.get_or_init(|| ComputeTable::embedded("h200-sxm").unwrap())
}

/// Both embedded tables.
pub fn tables() -> [&'static ComputeTable; 2] {
    [h100(), h200()]
}

/// Runs the afdsim binary with `args`.
pub fn afdsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afdsim"))
        .args(args)
        .output()
        .expect("the afdsim binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Writes `text` to `name` in this test process's folder `afdsim-<suite>-<pid>`.
pub fn temp_file(suite: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("afdsim-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `cmd` (stdout and stderr piped), killing it past `limit`: `None` when it had to be
/// killed (a hang, for the tests that look for one), else its output.
pub fn output_within(mut cmd: std::process::Command, limit: std::time::Duration) -> Option<Output> {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command runs");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}
