//! Every command of README.md works as written (issue 13: the README's `plot` command
//! exited 2). The test reads README.md's ```sh blocks and runs each `afdsim` command in
//! README order, as a shell would split it, in a temporary folder that links the
//! repository's input folders (so the commands' relative paths resolve and their outputs,
//! `out/bw`, `results/`, `step.json`, land in the temporary folder), and requires exit 0.
//!
//! A command is run unless [`SKIPPED`] names it, with the reason: a new README command is
//! run by default, and one the test cannot run must be listed here on purpose.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Which commands are not run, and why.
enum Skip {
    /// Every command of this program.
    Program(&'static str, &'static str),
    /// This exact command (its words joined by single spaces, comments removed).
    Command(&'static str, &'static str),
}

const SKIPPED: &[Skip] = &[
    Skip::Program(
        "cargo",
        "builds, tests or benchmarks the whole project (minutes); CI runs these itself",
    ),
    Skip::Program(
        "sbatch",
        "needs a Slurm cluster; tests/slurm.rs runs the same sweep as a job array",
    ),
    Skip::Command(
        "afdsim run workloads/scenarios/serving-pd-afd-64.toml",
        "10,000 requests on 64 GPUs: 5-10 s alone on 2 cores, far more beside other jobs; \
         tests/serving.rs covers the scenario",
    ),
    Skip::Command(
        "afdsim slo-search workloads/scenarios/serving-{aggregated,pd,pd-afd}-64.toml",
        "three searches, about 50 s together on 2 cores (and brace expansion, which this \
         test's splitting does not do); tests/serving.rs searches two scenarios side by side",
    ),
    Skip::Command(
        "afdsim explore workloads/studies/dsv32-afd.toml --out out/dsv32-afd",
        "30 candidate deployments x 3 workloads x 6 SLO cells: tens of minutes on 2 cores; \
         tests/explore.rs runs a small study through the same command",
    ),
    Skip::Command(
        "afdsim run workloads/scenarios/serving-kv-pressure.toml",
        "about 25 s on 2 cores; tests/serving.rs covers the scenario",
    ),
    Skip::Command(
        "afdsim validate",
        "every validation case: about 25 s on 2 cores, and exit 1 while the known gaps stand \
         (as the README says); tests/validation.rs runs the cases",
    ),
    Skip::Command(
        "afdsim compute layer-check --table h100-sxm --layers DIR/layers.csv",
        "DIR is a placeholder for a profiler run's output folder (made on a GPU); \
         tests/compute_profiler.rs runs layer-check on such a file",
    ),
];

/// Files the README's examples name as placeholders for the user's own, made in the
/// temporary folder so those commands run as written.
fn placeholders(dir: &Path, repo: &Path) {
    // "a scenario file": any scenario does.
    std::fs::copy(
        repo.join("workloads/scenarios/star-8gpu-all-to-all.toml"),
        dir.join("my-scenario.toml"),
    )
    .unwrap();
    // Compute queries: the table's columns (docs/compute.md).
    std::fs::write(
        dir.join("queries.csv"),
        "op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max\n\
         gemm,bf16,128,7168,2048,,,,,,,\n",
    )
    .unwrap();
}

/// The repository folders a README command may read through a relative path.
const LINKED: &[&str] = &["workloads", "fabrics", "validation", "examples"];

/// Longest a command may run before the test calls it a hang.
const LIMIT: Duration = Duration::from_secs(120);

/// The commands of README.md's ```sh blocks, in order: continuation lines joined, comments
/// removed, one entry per command line that is not blank.
fn sh_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let words = words(&pending);
                if !words.is_empty() {
                    out.push(words.join(" "));
                }
                pending.clear();
            }
        }
    }
    out
}

/// Splits a command line as sh does for the plain commands a README shows: words
/// separated by blanks, '...' and "..." quoting, `#` starting a comment at the start of a
/// word. Shell syntax it does not do (expansions, pipes, redirections) is reported, never
/// passed on as literal text. Words keep their quotes (so `join(" ")` is the command as
/// written, minus comments); [`unquote`] removes them.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None if c == '#' && word.is_empty() => break,
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                word.push(c);
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in README command: {line}");
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A word as the program receives it: quotes removed.
fn unquote(word: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in word.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => out.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {
                assert!(
                    !"{}*?$|;&<>`\\".contains(c),
                    "README word `{word}` uses shell syntax this test does not do (`{c}`): \
                     quote it, or skip the command in tests/readme.rs with the reason"
                );
                out.push(c);
            }
        }
    }
    out
}

fn skip_reason(command: &str) -> Option<&'static str> {
    let program = command.split(' ').next().unwrap_or("");
    SKIPPED.iter().find_map(|s| match *s {
        Skip::Program(p, why) if p == program => Some(why),
        Skip::Command(c, why) if c == command => Some(why),
        _ => None,
    })
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("afdsim-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn readme_commands_run_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let commands = sh_commands(&readme);
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("afdsim plot out/bw.csv")),
        "README.md's command blocks were not found: {commands:?}"
    );
    let dir = temp_dir();
    for name in LINKED {
        std::os::unix::fs::symlink(repo.join(name), dir.join(name)).unwrap();
    }
    placeholders(&dir, repo);

    let mut ran = 0;
    for command in &commands {
        if let Some(why) = skip_reason(command) {
            eprintln!("skipped: {command}\n    ({why})");
            continue;
        }
        let words: Vec<String> = words(command).iter().map(|w| unquote(w)).collect();
        assert_eq!(
            words[0], "afdsim",
            "README command `{command}` is not an afdsim command: run it here, or skip it \
             in tests/readme.rs with the reason"
        );
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_afdsim"));
        cmd.args(&words[1..])
            .current_dir(&dir)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .env_remove("SLURM_ARRAY_TASK_MIN");
        let o = common::output_within(cmd, LIMIT)
            .unwrap_or_else(|| panic!("README command `{command}` still running after {LIMIT:?}"));
        assert!(
            o.status.success(),
            "README command `{command}` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("ok ({:.1} s): {command}", started.elapsed().as_secs_f64());
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} README commands ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn commands_are_split_as_sh_does() {
    let md = "text\n```sh\nafdsim a 'x[0]=1' \\\n    --b \"c d\"   # note\n\n```\n\
              ```toml\nx = 1\n```\n```sh\ncargo test # all\n```\n";
    assert_eq!(
        sh_commands(md),
        ["afdsim a 'x[0]=1' --b \"c d\"", "cargo test"]
    );
    let w: Vec<String> = words("afdsim a 'x[0]=1' --b \"c d\"")
        .iter()
        .map(|w| unquote(w))
        .collect();
    assert_eq!(w, ["afdsim", "a", "x[0]=1", "--b", "c d"]);
    assert_eq!(
        skip_reason("afdsim validate").is_some(),
        skip_reason("afdsim validate --json --filter incast").is_none()
    );
}
