//! `afdsim fabric …`: what a fabric resolves to.

use afdsim::error::InputError;
use clap::Subcommand;
use std::io::Write;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FabricCommand {
    /// Print what a fabric resolves to: counts of GPUs, switches and links, bisection.
    Show {
        /// An embedded fabric (hgx-h100, hgx-h200, hgx-h800, gb200-nvl72) or a file.
        fabric: String,
        /// Override the file's node count.
        #[arg(long)]
        nodes: Option<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn show(fabric: &str, nodes: Option<u32>, json: bool) -> Result<ExitCode, InputError> {
    let (rf, built, cc) = afdsim::config::load_fabric(fabric, nodes)?;
    let summary = afdsim::report::fabric::summarize(&rf, &built, cc);
    let mut stdout = std::io::stdout().lock();
    let _ = if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        )
    } else {
        summary.write_human(&mut stdout)
    };
    Ok(ExitCode::SUCCESS)
}
