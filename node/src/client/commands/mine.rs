//! `lode mine`: start and stop the node's embedded miner, or `generate` blocks on regtest.

use clap::Subcommand;
use serde_json::{json, Value};

use super::output::plain;
use super::{input, str_field, ClientArgs, CommandError, Node, Report};

/// `lode mine [TARGET] COMMAND`.
#[derive(Debug, clap::Args)]
pub struct MineArgs {
    /// Node and output flags.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: MineCommand,
}

/// The mining subcommands.
#[derive(Debug, Subcommand)]
pub enum MineCommand {
    /// Start the embedded miner.
    Start {
        /// Miner threads (default: the node's current setting).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
    },
    /// Stop the embedded miner.
    Stop,
    /// Mine N blocks at once (regtest only).
    Generate {
        /// How many blocks.
        #[arg(value_parser = clap::value_parser!(u32).range(1..=10_000))]
        n: u32,
        /// Pay the coinbases to this address instead of the node's wallet.
        #[arg(long, value_name = "ADDRESS")]
        address: Option<String>,
    },
}

/// Runs `lode mine`.
pub fn run(args: MineArgs) -> Result<(), CommandError> {
    let command = args.command;
    super::run(&args.client, move |node| async move { execute(&node, command).await })
}

/// Runs one mining command against `node`.
pub async fn execute(node: &Node, command: MineCommand) -> Result<Report, CommandError> {
    match command {
        MineCommand::Start { threads } => {
            let params = match threads {
                Some(t) => json!([true, t]),
                None => json!([true]),
            };
            let v = node.call("setgenerate", params).await?;
            let text = match v.get("threads").and_then(Value::as_u64) {
                Some(1) => "mining started (1 thread)".to_string(),
                Some(n) => format!("mining started ({n} threads)"),
                None => "mining started".to_string(),
            };
            Ok(Report::new(v, text))
        }
        MineCommand::Stop => {
            let v = node.call("setgenerate", json!([false])).await?;
            Ok(Report::new(v, "mining stopped".into()))
        }
        MineCommand::Generate { n, address } => {
            let params = match address {
                Some(a) => {
                    input::address_syntax(&a)?;
                    let info = node.call("getblockchaininfo", json!([])).await?;
                    input::address_for(&a, str_field("getblockchaininfo", &info, "chain")?)?;
                    json!([n, a])
                }
                None => json!([n]),
            };
            let v = node.call("generate", params).await?;
            let hashes = v.as_array().ok_or_else(|| CommandError::Malformed {
                method: "generate".into(),
                reason: "not a list of hashes".into(),
            })?;
            let text = hashes.iter().map(plain).collect::<Vec<_>>().join("\n");
            Ok(Report::new(Value::Array(hashes.clone()), text))
        }
    }
}
