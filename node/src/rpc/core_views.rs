//! Transactions and blocks in Bitcoin Core's JSON-RPC shapes (`getrawtransaction` verbose,
//! `getblock` verbosity 2): amounts in decimal coins, the address under `scriptPubKey`,
//! `vsize`. Lode's own extras are prefixed `lode_`. The REST API keeps [`super::views`]
//! (integer base units, as esplora).

use lode_chain::transaction::Unlock;
use lode_chain::{ChainParams, Hash256, Height, Transaction};
use serde_json::{json, Value};

use crate::common::coins;

/// Where a transaction is: its block, that block's height and time.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    /// Block hash.
    pub block: Hash256,
    /// Its height.
    pub height: Height,
    /// Its header time.
    pub time: u32,
}

/// A transaction as Core's `getrawtransaction` verbose answers it. `fee` when known
/// (mempool), `place` when mined on the best chain.
pub fn tx(params: &ChainParams, tx: &Transaction, place: Option<Place>, tip: Height, fee: Option<u64>) -> Value {
    let bytes = lode_chain::encoding::encode(tx);
    let txid = tx.txid().to_hex();
    let vin: Vec<Value> = tx
        .inputs
        .iter()
        .map(|i| match &i.unlock {
            // Core's `coinbase` is the coinbase input's data, hex; Lode's is its encoded
            // CoinbaseData (height, extra nonce, message).
            Unlock::Coinbase(c) => json!({
                "coinbase": hex::encode(lode_chain::encoding::encode(c)),
                "lode_height": c.height.0,
            }),
            Unlock::Key(k) => json!({
                "txid": i.prev_out.txid.to_hex(),
                "vout": i.prev_out.index,
                "lode_pubkey": hex::encode(k.pubkey),
            }),
        })
        .collect();
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, o)| {
            let address = o
                .pubkey_hash
                .to_address(&params.hrp)
                .unwrap_or_else(|_| o.pubkey_hash.to_hex());
            json!({
                "value": coins::to_json(o.value.0),
                "n": n,
                // Lode has no scripts: an output names a public-key hash.
                "scriptPubKey": {"hex": o.pubkey_hash.to_hex(), "address": address, "type": "lode_pubkeyhash"},
            })
        })
        .collect();
    let mut v = json!({
        "txid": txid,
        "hash": txid,
        "version": tx.version,
        "size": bytes.len(),
        "vsize": bytes.len(),
        "locktime": tx.lock_time,
        "vin": vin,
        "vout": vout,
        "hex": hex::encode(&bytes),
    });
    if let Some(fee) = fee {
        v["fee"] = coins::to_json(fee);
    }
    if let Some(p) = place {
        v["blockhash"] = json!(p.block.to_hex());
        v["confirmations"] = json!(tip.0.saturating_sub(p.height.0) + 1);
        v["time"] = json!(p.time);
        v["blocktime"] = json!(p.time);
    }
    v
}
