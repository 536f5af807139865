//! The afdsim command line: a thin shell over the library.
//!
//! Exit status: 0 success, 1 a validation regression, 2 bad input or usage, 3 the
//! simulation deadlocked (a cycle of PFC or credit pauses).

mod cli;

use clap::{Parser, Subcommand};
use cli::fabric::FabricCommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "afdsim",
    version,
    about = "Network-fabric simulator for Attention-FFN-disaggregated MoE serving"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario (the embedded default when no file is given).
    Run {
        /// Scenario file (TOML); see README.md for the format.
        scenario: Option<PathBuf>,
        /// Seed of the run's random numbers (overrides the file's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON object {scenario, seed, level, metrics} and nothing else on stdout.
        #[arg(long)]
        json: bool,
        /// Also write metrics.json, messages.csv and links.csv into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write a Chrome trace (open in Perfetto): a compute track per GPU, transfers as
        /// async slices.
        #[arg(long, value_name = "FILE.json")]
        trace: Option<PathBuf>,
        /// Simulation level (overrides the file's `level`).
        #[arg(long, value_parser = ["packet", "flow", "analytical"])]
        level: Option<String>,
        /// Threads of the packet level (at most one per NVLink domain): the fabric's
        /// domains and switches spread over them; results are identical for any number.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: u32,
    },
    /// Measured compute-time tables: queries, layer breakdowns, accuracy.
    #[command(subcommand)]
    Compute(cli::compute::ComputeArgs),
    /// Inspect fabric files.
    Fabric {
        #[command(subcommand)]
        command: FabricCommand,
    },
    /// Run every validation case and print the comparison table.
    Validate {
        /// Print a JSON array of rows instead of the table.
        #[arg(long)]
        json: bool,
        /// Only the cases whose name contains TEXT.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
    },
    /// Run a sweep's points in parallel into an output folder (resumable; shardable).
    Sweep(cli::sweep::SweepArgs),
    /// Merge sweep output folders (shards) into one CSV, checking that no point is missing.
    Merge(cli::sweep::MergeArgs),
    /// Plot two columns of a result table as SVG.
    Plot(cli::sweep::PlotArgs),
    /// Draw the standard figures of a merged sweep as SVG files.
    Report(cli::sweep::ReportArgs),
    /// Find the highest request rate that meets TTFT and TPOT limits, for one serving
    /// scenario or several (a deployment comparison table).
    SloSearch(cli::slo_search::SloSearchArgs),
    /// Explore a design space: every candidate deployment of a study file under every
    /// workload and SLO cell (resumable, shardable like a sweep), then the study's report.
    Explore(cli::explore::ExploreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            json,
            out,
            level,
            trace,
            threads,
        } => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if threads as usize > cores {
                // The same answer, but every window waits for a thread without a core.
                eprintln!(
                    "warning: --threads {threads} on {cores} cores: the packet level's threads \
                     wait for each other at every time window, so more threads than cores \
                     run slower (the results are the same)"
                );
            }
            afdsim::set_packet_threads(threads as usize);
            cli::run::run(scenario, seed, json, out, level.as_deref(), trace)
        }
        Command::Validate { json, filter } => cli::validate::run(json, filter.as_deref()),
        Command::Compute(c) => {
            cli::compute::run(c, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Fabric {
            command:
                FabricCommand::Show {
                    fabric,
                    nodes,
                    json,
                },
        } => cli::fabric::show(&fabric, nodes, json),
        Command::Sweep(args) => cli::sweep::run_sweep(&args),
        Command::Merge(args) => cli::sweep::run_merge(&args),
        Command::Plot(args) => cli::sweep::run_plot(&args),
        Command::Report(args) => cli::sweep::run_report(&args),
        Command::SloSearch(args) => cli::slo_search::run(&args),
        Command::Explore(args) => cli::explore::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
