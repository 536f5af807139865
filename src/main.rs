// Minimal wiring for testing `afdsim compute` in the compute worktree; the real CLI lives in
// the main branch and replaces this file on merge.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "afdsim")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compute-time tables, layer breakdowns.
    #[command(subcommand)]
    Compute(afdsim::compute::cli::ComputeCommand),
}

fn main() {
    let cli = Cli::parse();
    let Cmd::Compute(c) = cli.cmd;
    if let Err(e) = afdsim::compute::cli::run_command(&c, &mut std::io::stdout()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
