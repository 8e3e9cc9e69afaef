//! Public chain, transaction and mempool methods.

use std::sync::Arc;

use lode_chain::{ChainParams, Hash256, Height, Transaction};
use serde_json::{json, Value};

use crate::chain_task::{Origin, TxVerdict};
use crate::common::coins;
use crate::rpc::app::App;
use crate::rpc::core_views::{self, Place};
use crate::rpc::jsonrpc::{to_json, Params, RpcError};
use crate::rpc::views::{self, BlockView, MempoolSummary, TxView};

/// Largest hex string accepted for a raw transaction or block: twice the byte limit.
fn check_hex_len(hex: &str, max_bytes: usize, what: &str) -> Result<Vec<u8>, RpcError> {
    if hex.len() > max_bytes.saturating_mul(2) {
        return Err(RpcError::new(
            -22,
            format!(
                "{what} decode failed: {} hex digits exceed the {max_bytes}-byte limit",
                hex.len()
            ),
        ));
    }
    hex::decode(hex).map_err(|e| RpcError::new(-22, format!("{what} decode failed: not hex ({e})")))
}

pub(crate) async fn getblockchaininfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let progress = app.api.net().progress().await?;
    let v = app
        .api
        .chain()
        .read(move |v| {
            let chain = v.chain();
            let entry = chain.tip_entry();
            let tip = chain.tip_hash();
            json!({
                "chain": chain.params().name,
                "blocks": chain.height().0,
                "headers": progress.target.max(chain.height().0),
                "bestblockhash": tip.to_hex(),
                "bits": format!("{:08x}", entry.header.bits),
                "difficulty": views::difficulty(entry.header.bits),
                "time": entry.header.time,
                "mediantime": chain.tip_median_time_past(),
                "chainwork": hex::encode(entry.chain_work),
                "genesis": chain.genesis_hash().to_hex(),
                "verificationprogress": if progress.target > chain.height().0 {
                    f64::from(chain.height().0) / f64::from(progress.target.max(1))
                } else {
                    1.0
                },
                "initialblockdownload": progress.target > chain.height().0,
                "size_on_disk": chain.store().size_on_disk().unwrap_or(0),
                "pruned": false,
                "warnings": "",
            })
        })
        .await?;
    Ok(v)
}

pub(crate) async fn getbestblockhash(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    Ok(json!(app.api.tip().hash.to_hex()))
}

pub(crate) async fn getblockcount(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    Ok(json!(app.api.tip().height.0))
}

pub(crate) async fn getblockhash(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["height"])?;
    let height = p.height(0, "height")?;
    let hash = app.api.chain().hash_at(Height(height)).await?;
    hash.map(|h| json!(h.to_hex()))
        .ok_or_else(|| RpcError::new(-8, format!("block height {height} out of range")))
}

/// The index entry of a block we know, or "block not found".
fn indexed(chain: &lode_chain::ChainState, hash: &Hash256) -> Result<lode_chain::store::IndexEntry, RpcError> {
    chain
        .entry(hash)
        .copied()
        .ok_or_else(|| RpcError::not_found("block not found"))
}

/// A block's view (`verbose_txs`: transaction objects instead of txids), or its hex.
pub(crate) async fn block_lookup(app: &App, hash: Hash256, verbosity: u64) -> Result<Value, RpcError> {
    app.api
        .chain()
        .read(move |v| -> Result<Value, RpcError> {
            let chain = v.chain();
            let entry = indexed(chain, &hash)?;
            let block = chain
                .block(&hash)
                .map_err(RpcError::internal)?
                .ok_or_else(|| RpcError::not_found("block not found (header only)"))?;
            if verbosity == 0 {
                return Ok(json!(hex::encode(block.to_bytes())));
            }
            let view: BlockView = views::block_view(chain, &hash, &entry, &block, verbosity >= 2);
            to_json(&view)
        })
        .await?
}

pub(crate) async fn getblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["blockhash", "verbosity"])?;
    let hash = p.hash(0, "blockhash")?;
    let verbosity = match p.opt_bool(1, "verbosity") {
        Ok(b) => u64::from(b.unwrap_or(true)),
        Err(_) => p.u64(1, "verbosity")?,
    };
    if verbosity > 2 {
        return Err(RpcError::new(-8, "param verbosity: must be 0, 1 or 2"));
    }
    if verbosity < 2 {
        let mut v = block_lookup(app, hash, verbosity).await?;
        add_version_hex(&mut v);
        return Ok(v);
    }
    app.api
        .chain()
        .read(move |v| -> Result<Value, RpcError> {
            let chain = v.chain();
            let entry = indexed(chain, &hash)?;
            let block = chain
                .block(&hash)
                .map_err(RpcError::internal)?
                .ok_or_else(|| RpcError::not_found("block not found (header only)"))?;
            let view: BlockView = views::block_view(chain, &hash, &entry, &block, false);
            let mut out = to_json(&view)?;
            let place = (view.header.confirmations > 0).then_some(Place {
                block: hash,
                height: entry.height,
                time: entry.header.time,
            });
            out["tx"] = block
                .transactions
                .iter()
                .map(|t| core_views::tx(chain.params(), t, place, chain.height(), None))
                .collect();
            add_version_hex(&mut out);
            Ok(out)
        })
        .await?
}

/// Core's `versionHex` beside `version`.
fn add_version_hex(v: &mut Value) {
    if let Some(version) = v.get("version").and_then(Value::as_u64) {
        v["versionHex"] = json!(format!("{version:08x}"));
    }
}

pub(crate) async fn getblockheader(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["blockhash", "verbose"])?;
    let hash = p.hash(0, "blockhash")?;
    let verbose = p.opt_bool(1, "verbose")?.unwrap_or(true);
    app.api
        .chain()
        .read(move |v| -> Result<Value, RpcError> {
            let chain = v.chain();
            let entry = indexed(chain, &hash)?;
            if !verbose {
                return Ok(json!(hex::encode(entry.header.to_bytes())));
            }
            let mut v = to_json(&views::header_view(chain, &hash, &entry))?;
            v["nTx"] = json!(chain.block(&hash).ok().flatten().map_or(0, |b| b.transactions.len()));
            add_version_hex(&mut v);
            Ok(v)
        })
        .await?
}

/// A transaction from the mempool or the chain's tx index.
pub(crate) async fn tx_lookup(app: &App, txid: Hash256) -> Result<TxView, RpcError> {
    app.api
        .chain()
        .read(move |v| -> Result<TxView, RpcError> {
            let chain = v.chain();
            let params = chain.params();
            if let Some(e) = v.mempool().and_then(|m| m.get(&txid)) {
                return Ok(views::tx_view(params, e.tx(), None, chain.height(), Some(e.fee().0)));
            }
            let (tx, loc, _) = confirmed_tx(chain, &txid)?;
            Ok(views::tx_view(
                params,
                &tx,
                Some((loc.block, loc.height)),
                chain.height(),
                None,
            ))
        })
        .await?
}

/// A confirmed transaction found through the tx index: the transaction, where it is, and its
/// block's time (the one lookup the REST tx view and `getrawtransaction` share).
fn confirmed_tx(
    chain: &lode_chain::ChainState,
    txid: &Hash256,
) -> Result<(Transaction, lode_chain::store::TxLocation, u32), RpcError> {
    let loc = chain
        .store()
        .tx_location(txid)
        .map_err(RpcError::internal)?
        .ok_or_else(|| RpcError::not_found("no such mempool or blockchain transaction"))?;
    let block = chain
        .block(&loc.block)
        .map_err(RpcError::internal)?
        .ok_or_else(|| RpcError::internal("indexed block missing"))?;
    let tx = block
        .transactions
        .get(loc.position as usize)
        .ok_or_else(|| RpcError::internal("tx index points past the block"))?
        .clone();
    Ok((tx, loc, block.header.time))
}

pub(crate) async fn getrawtransaction(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["txid", "verbose", "blockhash"])?;
    let txid = p.hash(0, "txid")?;
    // Core's verbosity: a boolean or 0/1 (2 adds prevout data Lode does not keep here).
    let verbose = match p.opt_bool(1, "verbose") {
        Ok(b) => b.unwrap_or(false),
        Err(_) => p.u64(1, "verbose")? > 0,
    };
    app.api
        .chain()
        .read(move |v| -> Result<Value, RpcError> {
            let chain = v.chain();
            let params = chain.params();
            let (tx, place, fee) = if let Some(e) = v.mempool().and_then(|m| m.get(&txid)) {
                (e.tx().as_ref().clone(), None, Some(e.fee().0))
            } else {
                let (tx, loc, time) = confirmed_tx(chain, &txid)?;
                let place = Place {
                    block: loc.block,
                    height: loc.height,
                    time,
                };
                (tx, Some(place), None)
            };
            if !verbose {
                return Ok(json!(hex::encode(lode_chain::encoding::encode(&tx))));
            }
            Ok(core_views::tx(params, &tx, place, chain.height(), fee))
        })
        .await?
}

pub(crate) async fn sendrawtransaction(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["hexstring"])?;
    let tx = decode_raw_tx(p.str(0, "hexstring")?, app.api.params())?;
    let txid = tx.txid();
    app.api
        .chain()
        .read(move |v| -> Result<(), RpcError> {
            if v.chain()
                .store()
                .tx_location(&txid)
                .map_err(RpcError::internal)?
                .is_some()
            {
                return Err(RpcError::new(-27, "transaction already in block chain"));
            }
            Ok(())
        })
        .await??;
    // Accepted (or already in the mempool: the same answer, idempotent), it is journalled
    // before the answer and announced by the chain task.
    match app.api.chain().submit_tx(tx, Origin::Local).await? {
        TxVerdict::Accepted { txid } => Ok(json!(txid.to_hex())),
        TxVerdict::Ignored { reason, .. } if reason.contains("unknown parent") => {
            Err(RpcError::new(-25, format!("missing inputs: {reason}")))
        }
        TxVerdict::Rejected { reason, .. } | TxVerdict::Ignored { reason, .. } => Err(RpcError::new(-26, reason)),
    }
}

pub(crate) async fn getrawmempool(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["verbose", "mempool_sequence"])?;
    let verbose = p.opt_bool(0, "verbose")?.unwrap_or(false);
    // Core's mempool sequence numbers belong to its ZMQ notifications, which Lode has not.
    if p.opt_bool(1, "mempool_sequence")? == Some(true) {
        return Err(RpcError::new(
            -8,
            "mempool_sequence is not supported (Lode has no mempool sequence)",
        ));
    }
    app.api
        .chain()
        .read(move |v| {
            let Some(pool) = v.mempool() else {
                return if verbose { json!({}) } else { json!([]) };
            };
            let entries = pool.by_ancestor_fee_rate();
            if !verbose {
                return json!(entries.iter().map(|e| e.txid().to_hex()).collect::<Vec<_>>());
            }
            let mut map = serde_json::Map::new();
            for e in entries {
                map.insert(e.txid().to_hex(), mempool_entry_json(e));
            }
            Value::Object(map)
        })
        .await
        .map_err(Into::into)
}

/// A pool entry as Core's `getmempoolentry` / `getrawmempool true` answer it.
fn mempool_entry_json(e: &lode_chain::mempool::MempoolEntry) -> Value {
    let anc = e.ancestor_stats();
    let desc = e.descendant_stats();
    json!({
        "vsize": e.size(),
        "time": e.time(),
        "height": e.height().0,
        "descendantcount": desc.count,
        "descendantsize": desc.size,
        "ancestorcount": anc.count,
        "ancestorsize": anc.size,
        "fees": {
            "base": coins::to_json(e.fee().0),
            "modified": coins::to_json(e.fee().0),
            "ancestor": coins::to_json(anc.fee),
            "descendant": coins::to_json(desc.fee),
        },
        "depends": e.parents().iter().map(Hash256::to_hex).collect::<Vec<_>>(),
        "spentby": e.children().iter().map(Hash256::to_hex).collect::<Vec<_>>(),
        // Lode's mempool replaces by fee whatever the transaction signals (full RBF).
        "bip125-replaceable": true,
    })
}

pub(crate) async fn getmempoolentry(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["txid"])?;
    let txid = p.hash(0, "txid")?;
    app.api
        .chain()
        .read(move |v| {
            v.mempool()
                .and_then(|m| m.get(&txid))
                .map(mempool_entry_json)
                .ok_or_else(|| RpcError::not_found("transaction not in mempool"))
        })
        .await?
}

pub(crate) async fn getmempoolinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let m = mempool_summary(app, 0).await?;
    Ok(json!({
        "loaded": true,
        "size": m.size,
        "bytes": m.bytes,
        "total_fee": coins::to_json(m.total_fee),
        "maxmempool": m.maxmempool,
        "mempoolminfee": coins::rate_to_json(m.minrelaytxfee),
        "minrelaytxfee": coins::rate_to_json(m.minrelaytxfee),
        "fullrbf": true,
        "lode_feerate_estimate": coins::rate_to_json(m.feerate_estimate),
    }))
}

/// Mempool figures and, when `list > 0`, up to `list` txids by fee rate.
pub(crate) async fn mempool_summary(app: &App, list: usize) -> Result<MempoolSummary, RpcError> {
    let floor = app.api.params().min_relay_fee_rate;
    app.api
        .chain()
        .read(move |v| match v.mempool() {
            Some(pool) => MempoolSummary {
                size: pool.len(),
                bytes: pool.bytes(),
                total_fee: pool.total_fees().0,
                minrelaytxfee: pool.policy().min_relay_fee_rate,
                feerate_estimate: pool.fee_rate_estimate(),
                maxmempool: pool.policy().max_bytes,
                txids: (list > 0).then(|| {
                    pool.by_ancestor_fee_rate()
                        .iter()
                        .take(list)
                        .map(|e| e.txid().to_hex())
                        .collect()
                }),
            },
            None => MempoolSummary {
                size: 0,
                bytes: 0,
                total_fee: 0,
                minrelaytxfee: floor,
                feerate_estimate: floor,
                maxmempool: 0,
                txids: (list > 0).then(Vec::new),
            },
        })
        .await
        .map_err(Into::into)
}

/// Most blocks `estimatesmartfee` looks ahead (Core's limit).
const MAX_CONF_TARGET: u64 = 1008;

pub(crate) async fn estimatesmartfee(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["conf_target", "estimate_mode"])?;
    let target = p.u64(0, "conf_target")?;
    if !(1..=MAX_CONF_TARGET).contains(&target) {
        return Err(RpcError::new(
            -8,
            format!("Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}"),
        ));
    }
    match p.opt_str(1, "estimate_mode")? {
        None => {}
        Some(m) if ["unset", "economical", "conservative"].contains(&m.to_ascii_lowercase().as_str()) => {}
        Some(_) => {
            return Err(RpcError::new(
                -8,
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ))
        }
    }
    // One estimate for every target: the pool's fee rate for the next block.
    let rate = fee_estimate(app).await?;
    Ok(json!({"feerate": coins::rate_to_json(rate), "blocks": target}))
}

pub(crate) async fn estimatefee(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let rate = fee_estimate(app).await?;
    Ok(json!({ "feerate": rate }))
}

/// The node's fee rate estimate in units/byte, never below the minimum relay fee rate.
pub(crate) async fn fee_estimate(app: &App) -> Result<u64, RpcError> {
    let floor = app.api.params().min_relay_fee_rate;
    let rate = app
        .api
        .chain()
        .read(move |v| v.mempool().map_or(floor, |m| m.fee_rate_estimate()))
        .await?;
    Ok(rate.max(floor))
}

/// Decodes a hex block with the size checked first.
pub(crate) fn decode_block(app: &App, hex: &str) -> Result<Arc<lode_chain::Block>, RpcError> {
    decode_raw_block(hex, app.api.params()).map(Arc::new)
}

/// Decodes `sendrawtransaction`'s hex: at most twice the max transaction size in digits
/// (checked before decoding), then the canonical encoding. Public so the fuzz targets
/// (`fuzz/`) run exactly this code.
pub fn decode_raw_tx(hex: &str, params: &ChainParams) -> Result<Transaction, RpcError> {
    let max = params.max_tx_size;
    let bytes = check_hex_len(hex, max, "TX")?;
    lode_chain::encoding::decode(&bytes, max).map_err(|e| RpcError::new(-22, format!("TX decode failed: {e}")))
}

/// Decodes `submitblock`'s hex, bounded like [`decode_raw_tx`] by the max block size.
pub fn decode_raw_block(hex: &str, params: &ChainParams) -> Result<lode_chain::Block, RpcError> {
    let max = params.max_block_size;
    let bytes = check_hex_len(hex, max, "block")?;
    lode_chain::Block::from_bytes(&bytes, max).map_err(|e| RpcError::new(-22, format!("block decode failed: {e}")))
}
