//! `GET /api/v1/pool`: the explorer's pool panel, read from the node's Stratum server
//! ([`crate::api::NodeApi::stratum`]) through its public API only — the per-worker
//! statistics, and in pool mode the share log's current window, carried balances and the
//! audit records of the last blocks the pool found. The figures are computed as
//! `getpoolinfo` and `getstratuminfo` compute theirs, so the page and the RPC agree.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, MethodRouter};
use axum::Json;
use lode_chain::{Hash256, PubkeyHash};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::app::App;
use super::rest::{ErrorBody, RestError};
use crate::stratum::pool::FoundBlock;

/// Recent pool blocks listed with their payouts.
pub const RECENT_BLOCKS: usize = 10;
/// Workers listed at most (the Stratum statistics keep more; the panel is for people).
pub const MAX_WORKERS: usize = 200;
/// Payees listed at most per block and in the window.
pub const MAX_PAYEES: usize = 200;
/// The hash-rate window of a worker, seconds (as `getstratuminfo`'s `hashrate_15m`).
const HASHRATE_SECS: u64 = 900;

/// The routes of this module: (path, handler).
pub fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![("/api/v1/pool", get(pool))]
}

/// The OpenAPI part of these routes (merged into the REST document).
#[derive(OpenApi)]
#[openapi(paths(pool))]
pub struct PoolDoc;

/// One miner (payout address) in the current PPLNS window.
#[derive(Serialize, ToSchema)]
pub struct WindowMiner {
    /// Its payout address.
    pub address: String,
    /// Its part of the window, 0–1.
    pub window_fraction: f64,
    /// What it would be paid if the pool found the next block now, base units.
    pub estimated_payout: u64,
}

/// One Stratum worker (`ADDRESS.rig`).
#[derive(Serialize, ToSchema)]
pub struct PoolWorker {
    /// Its name as it authorised.
    pub worker: String,
    /// Hashes per second over the last 15 minutes, from its accepted shares.
    pub hashrate: f64,
    /// Accepted shares.
    pub accepted: u64,
    /// Refused shares (all reasons).
    pub rejected: u64,
    /// Unix seconds of its last accepted share (0: none).
    pub last_share: u64,
    /// Best share difficulty it achieved.
    pub best_share: f64,
    /// Blocks it found.
    pub blocks: u64,
}

/// One payee of a pool block.
#[derive(Serialize, ToSchema)]
pub struct Payee {
    /// Address.
    pub address: String,
    /// Base units.
    pub amount: u64,
}

/// A block the pool found, with what its coinbase paid.
#[derive(Serialize, ToSchema)]
pub struct PoolBlock {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Unix seconds when found.
    pub time: u64,
    /// Subsidy + fees, base units.
    pub reward: u64,
    /// The pool's fee, base units.
    pub fee: u64,
    /// Shares in its window.
    pub window_shares: usize,
    /// The coinbase outputs.
    pub payouts: Vec<Payee>,
}

/// The pool panel; every field but `running` and `mode` is absent (null) without a pool.
#[derive(Serialize, ToSchema, Default)]
pub struct PoolPanel {
    /// True when this node runs a Stratum pool (`--stratum ADDR --pool`).
    pub running: bool,
    /// `pool`, `solo`, or null without a Stratum server.
    pub mode: Option<String>,
    /// Open Stratum connections.
    pub connections: Option<usize>,
    /// Hashes per second of all workers over 15 minutes.
    pub hashrate: Option<f64>,
    /// The window, in network-difficulty units.
    pub window: Option<f64>,
    /// How full the window is (1.0: as many shares as it pays for).
    pub window_filled: Option<f64>,
    /// Pool fee, basis points.
    pub fee_bps: Option<u32>,
    /// Smallest payout; smaller balances carry over, base units.
    pub min_payout: Option<u64>,
    /// Shares accepted since the node started.
    pub shares_accepted: Option<u64>,
    /// Shares in the log.
    pub shares_logged: Option<usize>,
    /// Blocks the pool found (all time).
    pub blocks_found: Option<usize>,
    /// The next block's reward the estimates split, base units.
    pub next_reward: Option<u64>,
    /// Miners of the current window, by address.
    pub miners: Vec<WindowMiner>,
    /// Workers by name.
    pub workers: Vec<PoolWorker>,
    /// Balances carried to a later block, base units.
    pub carried: Vec<Payee>,
    /// The last blocks the pool found, newest first.
    pub recent_blocks: Vec<PoolBlock>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn address(hrp: &str, pkh: [u8; 20]) -> String {
    PubkeyHash(pkh).to_address(hrp).unwrap_or_else(|_| hex::encode(pkh))
}

fn block_view(hrp: &str, b: &FoundBlock) -> PoolBlock {
    PoolBlock {
        height: b.height,
        hash: Hash256(b.hash).to_hex(),
        time: b.time,
        reward: b.reward,
        fee: b.fee,
        window_shares: b.window.len(),
        payouts: b
            .outputs
            .iter()
            .take(MAX_PAYEES)
            .map(|(p, a)| Payee {
                address: address(hrp, *p),
                amount: *a,
            })
            .collect(),
    }
}

/// The pool panel: miners, their hash rates and shares, the window and the payouts of
/// recent pool blocks (`running` false and nothing else on a node without a pool).
#[utoipa::path(get, path = "/api/v1/pool",
    responses((status = 200, body = PoolPanel), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn pool(State(app): State<Arc<App>>) -> Result<Json<PoolPanel>, RestError> {
    let Some(s) = app.api.stratum().cloned() else {
        return Ok(Json(PoolPanel::default()));
    };
    let t = now();
    let workers = s.stats.workers();
    let hashrate = workers.iter().map(|(_, w)| w.hashrate(t, HASHRATE_SECS)).sum();
    let mut panel = PoolPanel {
        running: s.pool.is_some(),
        mode: Some(if s.pool.is_some() { "pool" } else { "solo" }.to_string()),
        connections: Some(s.connections()),
        hashrate: Some(hashrate),
        workers: workers
            .iter()
            .take(MAX_WORKERS)
            .map(|(name, w)| PoolWorker {
                worker: name.clone(),
                hashrate: w.hashrate(t, HASHRATE_SECS),
                accepted: w.accepted,
                rejected: w.rejected.iter().fold(0, |a, b| a.saturating_add(*b)),
                last_share: w.last_share,
                best_share: w.best_share,
                blocks: w.blocks,
            })
            .collect(),
        ..PoolPanel::default()
    };
    let Some(pool) = s.pool.clone() else {
        return Ok(Json(panel));
    };
    let (net_diff, reward) = s
        .templates
        .borrow()
        .as_ref()
        .map_or((1.0, 0), |t| (t.net_diff, t.reward.0));
    let hrp = app.api.params().hrp.clone();
    let internal = |e: String| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    // The share log is sled: read it off the async threads.
    let panel = tokio::task::spawn_blocking(move || -> Result<PoolPanel, String> {
        let weights = pool.window_weights(net_diff).map_err(|e| e.to_string())?;
        let total: u128 = weights.values().sum();
        let fee = u128::from(reward) * u128::from(pool.config().fee_bps) / 10_000;
        let mut miners: Vec<WindowMiner> = weights
            .iter()
            .map(|(pkh, w)| WindowMiner {
                address: address(&hrp, pkh.0),
                window_fraction: *w as f64 / total.max(1) as f64,
                estimated_payout: (*w * u128::from(reward).saturating_sub(fee))
                    .checked_div(total)
                    .unwrap_or(0) as u64,
            })
            .collect();
        miners.sort_by(|a, b| a.address.cmp(&b.address));
        miners.truncate(MAX_PAYEES);
        let c = pool.config();
        panel.miners = miners;
        panel.window = Some(c.window);
        panel.window_filled = Some(total as f64 / (c.window * net_diff * 4_294_967_296.0));
        panel.fee_bps = Some(c.fee_bps);
        panel.min_payout = Some(c.min_payout.0);
        panel.shares_accepted = Some(pool.accepted());
        panel.shares_logged = Some(pool.share_count());
        panel.blocks_found = Some(pool.blocks_found());
        panel.next_reward = Some(reward);
        panel.carried = pool
            .carried()
            .map_err(|e| e.to_string())?
            .iter()
            .take(MAX_PAYEES)
            .map(|(k, v)| Payee {
                address: address(&hrp, k.0),
                amount: v.0,
            })
            .collect();
        panel.recent_blocks = pool
            .blocks(RECENT_BLOCKS)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|b| block_view(&hrp, b))
            .collect();
        Ok(panel)
    })
    .await
    .map_err(|e| internal(e.to_string()))?
    .map_err(internal)?;
    Ok(Json(panel))
}
