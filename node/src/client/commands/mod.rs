//! The client commands `lode wallet|mine|chain`: each picks a node ([`target`]), makes
//! JSON-RPC calls through [`RpcClient`], and hands a [`Report`] to [`output`], which alone
//! writes to stdout (human text, or the raw JSON result with `--json`).
//!
//! | module | what |
//! |---|---|
//! | [`target`] | `--devnet NAME`, `--node URL --cookie PATH`, `--data-dir DIR`, defaults |
//! | [`wallet`] | `address`, `balance`, `history`, `send`, `mnemonic` |
//! | [`wait`] | `send --wait`: polling a transaction until it has N confirmations |
//! | [`mine`] | `start`, `stop`, `generate` |
//! | [`chain`] | `info`, `block`, `tx`, `mempool`, `peers`, `verify` |
//! | [`input`] | local checks of amounts, addresses, hashes and heights |
//! | [`output`] | the [`Report`] type, number formatting, aligned tables, printing |

pub mod apikey;
pub mod chain;
pub mod input;
pub mod mine;
pub mod miner;
pub mod output;
pub mod target;
pub mod wait;
pub mod wallet;

use std::future::Future;

use serde_json::Value;

use crate::client::devnet_file::DevnetFileError;
use crate::client::{ClientError, RpcClient};
pub use output::Report;
use target::{Env, TargetArgs, TargetError};

/// Flags every client command takes (before or after its subcommand).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientArgs {
    /// Which node to talk to.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the node's raw JSON result (one JSON document) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Sign every request with this API key file (`ID:SECRET`, from `lode api-key create
    /// --out`) instead of the cookie.
    #[arg(long, value_name = "PATH", global = true)]
    pub key_file: Option<std::path::PathBuf>,
}

/// Why a client command failed. Every message is one line naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No node could be picked.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The node could not be reached, or the cookie could not be read.
    #[error(transparent)]
    Client(ClientError),
    /// The node refused a call.
    #[error("{method}: {message} (code {code})")]
    Refused {
        /// The JSON-RPC method.
        method: String,
        /// Its error code (docs/API.md).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// A command-line argument was malformed.
    #[error("invalid {what} {input:?}: {reason}")]
    BadInput {
        /// What the argument is (`amount`, `address`, `block hash or height` …).
        what: &'static str,
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// The node's answer lacks a field the API promises.
    #[error("unexpected answer from the node to {method}: {reason}")]
    Malformed {
        /// The JSON-RPC method.
        method: String,
        /// What was missing or wrong.
        reason: String,
    },
    /// `send --wait` gave up.
    #[error("gave up waiting after {waited_secs} s (--timeout): transaction {txid} has {confirmations} of {wanted} confirmations and may still confirm")]
    WaitTimeout {
        /// The transaction.
        txid: String,
        /// Confirmations seen last.
        confirmations: i64,
        /// Confirmations asked for.
        wanted: u32,
        /// How long we waited.
        waited_secs: u64,
    },
    /// The transaction waited for left the mempool without entering the chain.
    #[error("transaction {0} dropped out: it is neither in the mempool nor in the chain")]
    Dropped(String),
    /// The command printed its result, which is a failure (e.g. `chain verify` found a
    /// problem).
    #[error("{0}")]
    Failed(String),
    /// `lode miner` failed (a bad URL, the server refused us, I/O).
    #[error("lode miner: {0}")]
    Miner(String),
    /// The tokio runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<DevnetFileError> for CommandError {
    fn from(e: DevnetFileError) -> Self {
        CommandError::Target(TargetError::DevnetFile(e))
    }
}

/// A connection to the chosen node, with the method name kept for error messages.
#[derive(Clone, Debug)]
pub struct Node {
    client: RpcClient,
    network: Option<String>,
}

impl Node {
    /// A node reached through `client`; `network` when already known (devnet file).
    pub fn new(client: RpcClient, network: Option<String>) -> Node {
        Node { client, network }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// The network named by the devnet file, if any.
    pub fn known_network(&self) -> Option<&str> {
        self.network.as_deref()
    }

    /// Calls `method`; a JSON-RPC error becomes [`CommandError::Refused`] naming it.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CommandError> {
        tracing::debug!(method, url = self.client.url(), "rpc call");
        self.client.call(method, params).await.map_err(|e| match e {
            ClientError::Rpc { code, message } => CommandError::Refused {
                method: method.to_string(),
                code,
                message,
            },
            other => CommandError::Client(other),
        })
    }
}

/// Resolves the target, builds a small single-threaded runtime and runs `body` on it,
/// then prints its report.
pub fn run<F, Fut>(args: &ClientArgs, body: F) -> Result<(), CommandError>
where
    F: FnOnce(Node) -> Fut,
    Fut: Future<Output = Result<Report, CommandError>>,
{
    let target = args.target.resolve(&Env::current())?;
    // A signing key replaces the cookie (which another machine does not have).
    let client = match &args.key_file {
        Some(k) => RpcClient::new(&target.url, None).signing_with(k),
        None => target.client(),
    }
    .map_err(CommandError::Client)?;
    let node = Node::new(client, target.network);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let report = runtime.block_on(body(node))?;
    output::emit(&report, args.json);
    match report.failure {
        Some(msg) => Err(CommandError::Failed(msg)),
        None => Ok(()),
    }
}

/// A required field of a result, or [`CommandError::Malformed`].
pub(crate) fn field<'a>(method: &str, value: &'a Value, name: &str) -> Result<&'a Value, CommandError> {
    value.get(name).ok_or_else(|| CommandError::Malformed {
        method: method.to_string(),
        reason: format!("no field {name:?}"),
    })
}

/// A required unsigned integer field.
/// A decimal-coin amount field of a JSON-RPC answer (Core's shape) in base units.
pub(crate) fn units_field(method: &str, value: &Value, name: &str) -> Result<u64, CommandError> {
    let v = field(method, value, name)?;
    crate::common::coins::from_json(v)
        .map(|a| a.0)
        .map_err(|e| CommandError::Malformed {
            method: method.to_string(),
            reason: format!("{name:?}: {e}"),
        })
}

/// A signed decimal-coin amount (absent or malformed: `None`) in base units.
pub(crate) fn signed_units(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| crate::common::coins::signed_from_json(v).ok())
}

pub(crate) fn u64_field(method: &str, value: &Value, name: &str) -> Result<u64, CommandError> {
    field(method, value, name)?
        .as_u64()
        .ok_or_else(|| CommandError::Malformed {
            method: method.to_string(),
            reason: format!("{name:?} is not an unsigned integer"),
        })
}

/// A required string field.
pub(crate) fn str_field<'a>(method: &str, value: &'a Value, name: &str) -> Result<&'a str, CommandError> {
    field(method, value, name)?
        .as_str()
        .ok_or_else(|| CommandError::Malformed {
            method: method.to_string(),
            reason: format!("{name:?} is not a string"),
        })
}
