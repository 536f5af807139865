//! `afdsim compute …`: the clap arguments of the compute reports, mapped one to one onto
//! [`afdsim::compute::command::ComputeCommand`], whose text is printed.

use std::io::Write;
use std::path::PathBuf;

use afdsim::compute::Scheme;
use afdsim::compute::command::{self, ComputeCommand, KernelChoice};
use afdsim::error::InputError;
use clap::{Subcommand, ValueEnum};

/// The decode-attention kernel, in the words of the scenario key `afd.attention_kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelArg {
    /// The `hbm_read` memory floor divided by --efficiency (FlashMLA-class kernels; `floor` is
    /// a deprecated alias).
    #[value(name = "flash-mla", alias = "floor")]
    FlashMla,
    /// The table's measured decode-attention kernel (unfused for MLA).
    Measured,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    Linear,
    LogLog,
    Secant,
    Midpoint,
}

impl From<SchemeArg> for Scheme {
    fn from(s: SchemeArg) -> Scheme {
        match s {
            SchemeArg::Linear => Scheme::Linear,
            SchemeArg::LogLog => Scheme::LogLog,
            SchemeArg::Secant => Scheme::Secant,
            SchemeArg::Midpoint => Scheme::Midpoint,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Subcommand)]
pub enum ComputeArgs {
    /// Predict the time of every operator in a CSV of queries.
    Query {
        /// Compute table: a CSV path, or an embedded name (h100-sxm, h200-sxm).
        #[arg(long)]
        table: String,
        /// Queries: the table's columns op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max
        /// (all in the header, unused sizes empty, extra columns kept). A malformed row is an
        /// error naming its line and column; a row beyond the table's range is marked
        /// `out-of-range` in the output.
        #[arg(long = "in")]
        input: PathBuf,
        /// Output CSV: each query row plus time_us and method.
        #[arg(long)]
        out: PathBuf,
    },
    /// Per-operator times of one layer (decode, optionally with a prefill chunk): attention side
    /// and FFN side.
    Layer {
        /// Embedded model name (deepseek-v3, deepseek-v3.2, kimi-k2, qwen3-235b-a22b,
        /// qwen3-30b-a3b, gpt-oss-120b).
        #[arg(
            long,
            conflicts_with = "model_file",
            required_unless_present = "model_file"
        )]
        model: Option<String>,
        /// A model TOML file instead of an embedded model.
        #[arg(long)]
        model_file: Option<PathBuf>,
        /// Compute table of the attention GPUs (path or embedded name).
        #[arg(long, default_value = "h100-sxm")]
        table: String,
        /// Compute table of the FFN GPUs (default: the same as --table).
        #[arg(long)]
        ffn_table: Option<String>,
        /// Decoding sequences in the micro-batch (one new token each; 0 with --prefill-tokens
        /// for a prefill-only iteration).
        #[arg(long)]
        tokens: u64,
        /// Cached context per decoding sequence.
        #[arg(long)]
        ctx: u64,
        /// New tokens of one prefill chunk run in the same iteration (0: decode only).
        #[arg(long, default_value_t = 0)]
        prefill_tokens: u64,
        /// Tokens of the chunk's sequence already cached (0 at the start of a prompt).
        #[arg(long, default_value_t = 0)]
        prefill_prefix: u64,
        /// Routed experts on one FFN GPU (default: 8, at most the model's experts).
        #[arg(long)]
        experts_per_gpu: Option<u64>,
        /// Tokens at each expert (default: tokens × top_k / routed experts, rounded up).
        #[arg(long)]
        tokens_per_expert: Option<u64>,
        /// Decode-attention kernel, as the scenario key `attention_kernel`: flash-mla (the HBM
        /// floor over --efficiency) or measured (the table's unfused kernel).
        #[arg(long, value_enum, default_value = "flash-mla")]
        kernel: KernelArg,
        /// Fraction of the memory floor's bandwidth the attention kernel reaches (flash-mla only).
        #[arg(long, default_value_t = 0.9)]
        efficiency: f64,
        /// Layer index (0-based) for the attention side; default: the first full-attention MoE
        /// layer.
        #[arg(long)]
        layer: Option<u64>,
    },
    /// Whole layers timed by the profiler (`profile.py --layers`) against the same layers
    /// assembled from a table: the glue model's check (goal: within 10 %).
    LayerCheck {
        /// Compute table to assemble from: a CSV path (the same GPU's profile), or an embedded
        /// name.
        #[arg(long)]
        table: String,
        /// The profiler's layers.csv.
        #[arg(long)]
        layers: PathBuf,
        /// Write every row (measured, assembled, table operators alone, errors) to this CSV.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Leave-one-out accuracy of the interpolation on a table.
    Loo {
        /// Compute table: a CSV path, or an embedded name.
        #[arg(long)]
        table: String,
        /// Write every left-out point (query, measured, predicted, method) to this CSV.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use one scheme for every op instead of each op's own (for comparisons).
        #[arg(long, value_enum)]
        scheme: Option<SchemeArg>,
    },
}

impl From<KernelArg> for KernelChoice {
    fn from(k: KernelArg) -> KernelChoice {
        match k {
            KernelArg::FlashMla => KernelChoice::FlashMla,
            KernelArg::Measured => KernelChoice::Measured,
        }
    }
}

impl From<ComputeArgs> for ComputeCommand {
    fn from(a: ComputeArgs) -> ComputeCommand {
        match a {
            ComputeArgs::Query { table, input, out } => ComputeCommand::Query { table, input, out },
            ComputeArgs::Layer {
                model,
                model_file,
                table,
                ffn_table,
                tokens,
                ctx,
                prefill_tokens,
                prefill_prefix,
                experts_per_gpu,
                tokens_per_expert,
                kernel,
                efficiency,
                layer,
            } => ComputeCommand::Layer {
                model,
                model_file,
                table,
                ffn_table,
                tokens,
                ctx,
                prefill_tokens,
                prefill_prefix,
                experts_per_gpu,
                tokens_per_expert,
                kernel: kernel.into(),
                efficiency,
                layer,
            },
            ComputeArgs::LayerCheck { table, layers, out } => {
                ComputeCommand::LayerCheck { table, layers, out }
            }
            ComputeArgs::Loo { table, out, scheme } => ComputeCommand::Loo {
                table,
                out,
                scheme: scheme.map(Scheme::from),
            },
        }
    }
}

/// Runs one `afdsim compute` command, printing its report to `out`.
pub fn run(args: ComputeArgs, out: &mut dyn Write) -> Result<(), InputError> {
    command::run_command(&args.into(), out)
}
