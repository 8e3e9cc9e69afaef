//! Stratum and pool monitoring: `getstratuminfo`, `getpoolinfo`, `getpoolblock`
//! (docs/STRATUM.md). Public reads, like `getmininginfo`.

use serde_json::{json, Value};

use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};
use crate::stratum::pool::FoundBlock;
use crate::stratum::Shared;

/// Workers listed at most in `getstratuminfo`.
const MAX_LISTED_WORKERS: usize = 1_000;

fn stratum(app: &App) -> Result<std::sync::Arc<Shared>, RpcError> {
    app.api
        .stratum()
        .cloned()
        .ok_or_else(|| RpcError::new(-32601, "the Stratum server is off (start the node with --stratum ADDR)"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn address(app: &App, pkh: [u8; 20]) -> String {
    lode_chain::PubkeyHash(pkh)
        .to_address(&app.api.params().hrp)
        .unwrap_or_else(|_| hex::encode(pkh))
}

/// `getstratuminfo`: connections, shares by outcome, blocks, and per-worker figures.
pub(crate) async fn getstratuminfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let s = stratum(app)?;
    let (accepted, rejected, blocks, blocks_rejected) = s.stats.totals();
    let t = now();
    let workers = s.stats.workers();
    let total: f64 = workers.iter().map(|(_, w)| w.hashrate(t, 900)).sum();
    let listed: Vec<Value> = workers
        .iter()
        .take(MAX_LISTED_WORKERS)
        .map(|(name, w)| {
            json!({
                "worker": name,
                "hashrate_1m": w.hashrate(t, 60),
                "hashrate_15m": w.hashrate(t, 900),
                "hashrate_1h": w.hashrate(t, 3600),
                "accepted": w.accepted,
                "rejected": w.rejected_by_reason().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "last_share": w.last_share,
                "best_share": w.best_share,
                "blocks": w.blocks,
            })
        })
        .collect();
    let tmpl = s.templates.borrow().clone();
    Ok(json!({
        "mode": if s.pool.is_some() { "pool" } else { "solo" },
        "listen": s.config.listen.to_string(),
        "connections": s.connections(),
        "banned": s.banned_count(),
        "accepted": accepted,
        "rejected": rejected.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "blocks_found": blocks,
        "blocks_refused": blocks_rejected,
        "hashrate_15m": total,
        "height": tmpl.as_ref().map(|t| t.height.0),
        "network_difficulty": tmpl.as_ref().map(|t| t.net_diff),
        "workers": listed,
    }))
}

/// Where a found block stands on the active chain: `orphaned` (not on it: its payouts and
/// carried balances do not count), `immature` (its coinbase is not spendable yet) or
/// `mature`; and its confirmations (0 when orphaned).
async fn block_status(app: &App, blocks: Vec<(u32, [u8; 32])>) -> Result<Vec<(&'static str, u32)>, RpcError> {
    app.api
        .chain()
        .read(move |v| {
            let chain = v.chain();
            let tip = chain.height().0;
            let maturity = chain.params().coinbase_maturity;
            blocks
                .iter()
                .map(|(h, hash)| {
                    if chain.hash_at(lode_chain::Height(*h)) != Some(lode_chain::Hash256(*hash)) {
                        return ("orphaned", 0);
                    }
                    let confirmations = tip.saturating_sub(*h).saturating_add(1);
                    // Spendable in block h + maturity, i.e. once the tip is one below it.
                    let mature = tip.saturating_add(1) >= h.saturating_add(maturity);
                    (if mature { "mature" } else { "immature" }, confirmations)
                })
                .collect()
        })
        .await
        .map_err(RpcError::internal)
}

fn block_json(app: &App, b: &FoundBlock) -> Value {
    let pairs = |v: &[([u8; 20], u64)]| -> Vec<Value> {
        v.iter()
            .map(|(p, a)| json!({"address": address(app, *p), "amount": a}))
            .collect()
    };
    json!({
        "height": b.height,
        "hash": lode_chain::Hash256(b.hash).to_hex(),
        "time": b.time,
        "reward": b.reward,
        "fee": b.fee,
        "outputs": pairs(&b.outputs),
        "shares": pairs(&b.shares),
        "carried": pairs(&b.carried),
        "window": b.window.iter().map(|e| json!({
            "seq": e.seq,
            "address": address(app, e.share.payee),
            "worker": e.share.worker,
            "share_difficulty": e.share.share_diff(),
            "network_difficulty": e.share.net_diff,
            "time": e.share.time,
            "height": e.share.height,
            "counted": e.counted.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// `getpoolinfo`: the pool's settings, log, carried balances and each miner's part of the
/// current window with its estimated payout of the next block.
pub(crate) async fn getpoolinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let s = stratum(app)?;
    let pool = s
        .pool
        .clone()
        .ok_or_else(|| RpcError::new(-32601, "the Stratum server runs in solo mode (start it with --pool)"))?;
    let tmpl = s.templates.borrow().clone();
    let (net_diff, reward) = tmpl.as_ref().map_or((1.0, 0), |t| (t.net_diff, t.reward.0));
    let hrp = app.api.params().hrp.clone();
    let recent_pool = pool.clone();
    let recent = tokio::task::spawn_blocking(move || recent_pool.blocks(10))
        .await
        .map_err(RpcError::internal)?
        .map_err(RpcError::internal)?;
    let statuses = block_status(app, recent.iter().map(|b| (b.height, b.hash)).collect()).await?;
    let recent_blocks: Vec<Value> = recent
        .iter()
        .zip(statuses)
        .map(|(b, (status, confirmations))| {
            json!({"height": b.height, "hash": lode_chain::Hash256(b.hash).to_hex(), "status": status, "confirmations": confirmations})
        })
        .collect();
    let value = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let weights = pool.window_weights(net_diff).map_err(|e| e.to_string())?;
        let total: u128 = weights.values().sum();
        let fee = u128::from(reward) * u128::from(pool.config().fee_bps) / 10_000;
        let mut miners: Vec<Value> = weights
            .iter()
            .map(|(pkh, w)| {
                let est = (*w * (u128::from(reward) - fee)).checked_div(total).unwrap_or(0) as u64;
                json!({
                    "address": pkh.to_address(&hrp).unwrap_or_default(),
                    "window_fraction": *w as f64 / total.max(1) as f64,
                    "estimated_payout": est,
                })
            })
            .collect();
        miners.sort_by(|a, b| a["address"].as_str().cmp(&b["address"].as_str()));
        let carried = pool.carried().map_err(|e| e.to_string())?;
        let c = pool.config();
        Ok(json!({
            "window": c.window,
            "fee_bps": c.fee_bps,
            "min_payout": c.min_payout.0,
            "max_outputs": c.max_outputs,
            "shares_logged": pool.share_count(),
            "shares_accepted": pool.accepted(),
            "blocks_found": pool.blocks_found(),
            "window_units": total.to_string(),
            // How full the window is (1.0: as many shares as the window pays for).
            "window_filled": total as f64 / (c.window * net_diff * 4_294_967_296.0),
            "miners": miners,
            "carried": carried.iter().map(|(k, v)| json!({"address": k.to_address(&hrp).unwrap_or_default(), "amount": v.0})).collect::<Vec<_>>(),
            "recent_blocks": recent_blocks,
        }))
    })
    .await
    .map_err(RpcError::internal)?
    .map_err(RpcError::internal)?;
    Ok(value)
}

/// `getpoolblock HASH`: the audit record of a block the pool found: its window share by
/// share, each payee's part, the outputs and what carried over.
pub(crate) async fn getpoolblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["blockhash"])?;
    let hash = lode_chain::Hash256::from_hex(p.str(0, "blockhash")?)
        .map_err(|e| RpcError::new(-8, format!("param blockhash: {e}")))?;
    let s = stratum(app)?;
    let pool = s
        .pool
        .clone()
        .ok_or_else(|| RpcError::new(-32601, "the Stratum server runs in solo mode (start it with --pool)"))?;
    let found = tokio::task::spawn_blocking(move || pool.block(&hash))
        .await
        .map_err(RpcError::internal)?
        .map_err(RpcError::internal)?
        .ok_or_else(|| RpcError::new(-5, "not a block this pool found"))?;
    let (status, confirmations) = block_status(app, vec![(found.height, found.hash)])
        .await?
        .first()
        .copied()
        .unwrap_or(("orphaned", 0));
    let mut v = block_json(app, &found);
    v["status"] = json!(status);
    v["confirmations"] = json!(confirmations);
    Ok(v)
}

/// `stratumreconnect [host, port, wait]`: sends `client.reconnect` to every connected
/// miner and closes their connections: with no parameters they come back to this server
/// (before maintenance, or to rebalance); with a host and port they move there after
/// `wait` seconds. Returns how many connections were asked.
pub(crate) async fn stratumreconnect(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["host", "port", "wait"])?;
    let s = stratum(app)?;
    let to = match p.opt_str(0, "host")? {
        Some(host) => {
            if host.is_empty() || host.len() > 255 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(RpcError::invalid_params(
                    "param host: a host name or IP address of 1 to 255 characters",
                ));
            }
            let port = p.u64(1, "port")?;
            let port = u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| RpcError::invalid_params(format!("param port: {port} is not a TCP port")))?;
            let wait = p.opt_u64(2, "wait")?.unwrap_or(0);
            if wait > crate::common::stratum::MAX_RECONNECT_WAIT {
                return Err(RpcError::invalid_params(format!(
                    "param wait: at most {} seconds",
                    crate::common::stratum::MAX_RECONNECT_WAIT
                )));
            }
            Some((host.to_string(), port, wait as u32))
        }
        None => None,
    };
    Ok(json!({ "asked": s.reconnect_all(to) }))
}
