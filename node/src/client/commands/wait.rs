//! `send --wait`: poll the wallet's view of a transaction (`gettransaction`) until it has
//! the confirmations asked for, reporting a transaction that leaves both the mempool and
//! the chain (checked with `getrawtransaction` while it is unconfirmed).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::output::Status;
use super::{CommandError, Node};

/// JSON-RPC code for "not found" (docs/API.md).
const NOT_FOUND: i64 = -5;

/// How long and how often to wait.
#[derive(Clone, Copy, Debug)]
pub struct WaitOptions {
    /// Confirmations wanted (at least 1).
    pub confirmations: u32,
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between polls.
    pub poll: Duration,
}

/// Waits until `txid` has the confirmations asked for and returns the wallet's last view
/// of it (Core's `gettransaction`: `{txid, amount, fee?, confirmations, blockheight?, blockhash?, …}`).
pub async fn until_confirmed(
    node: &Node,
    txid: &str,
    opts: WaitOptions,
    status: &mut Status,
) -> Result<Value, CommandError> {
    let wanted = opts.confirmations.max(1);
    let started = Instant::now();
    loop {
        let seen = match node.call("gettransaction", json!([txid])).await {
            Ok(v) => v,
            Err(CommandError::Refused { code: NOT_FOUND, .. }) => return Err(CommandError::Dropped(txid.into())),
            Err(e) => return Err(e),
        };
        let confirmations = seen.get("confirmations").and_then(Value::as_i64).unwrap_or(0);
        if confirmations >= i64::from(wanted) {
            status.finish();
            return Ok(seen);
        }
        if confirmations < 0 || (confirmations == 0 && !known_to_node(node, txid).await?) {
            status.finish();
            return Err(CommandError::Dropped(txid.into()));
        }
        let waited = started.elapsed();
        status.update(&format!("waiting for {txid}: {confirmations}/{wanted} confirmations"));
        if waited >= opts.timeout {
            status.finish();
            return Err(CommandError::WaitTimeout {
                txid: txid.into(),
                confirmations,
                wanted,
                waited_secs: waited.as_secs(),
            });
        }
        tokio::time::sleep(opts.poll.min(opts.timeout.saturating_sub(waited))).await;
    }
}

/// Whether the node has the transaction in its mempool or its chain.
async fn known_to_node(node: &Node, txid: &str) -> Result<bool, CommandError> {
    match node.call("getrawtransaction", json!([txid, true])).await {
        Ok(_) => Ok(true),
        Err(CommandError::Refused { code: NOT_FOUND, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
