//! JSON routes behind the explorer's charts and panels (`GET /api/v1/mining…`,
//! `/api/v1/series/blocks`, `/api/v1/mempool/histogram`), part of the
//! public REST API and its OpenAPI document. Amounts are integers in base units, like the
//! rest of `/api/v1`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, MethodRouter};
use axum::Json;
use lode_chain::Height;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::app::App;
use super::rest::{ErrorBody, RestError, Q};
use super::views;
use crate::miner::history::{Range, RateSample};
use crate::miner::history::{COARSE_KEEP, FINE_KEEP};

/// Most blocks one series answer covers.
pub const MAX_SERIES_BLOCKS: u32 = 1000;
/// Fee-rate buckets of the mempool histogram: lower bounds, base units per byte.
pub const FEE_BUCKETS: [u64; 10] = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89];
/// Mempool entries the histogram looks at (the pool is bounded; this bounds the work).
const MAX_HISTOGRAM_ENTRIES: usize = 100_000;

/// The routes of this module: (path, handler).
pub fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![
        ("/api/v1/mining", get(mining)),
        ("/api/v1/mining/hashrate", get(hashrate)),
        ("/api/v1/series/blocks", get(block_series)),
        ("/api/v1/mempool/histogram", get(histogram)),
    ]
}

/// The OpenAPI part of these routes (merged into the REST document).
#[derive(OpenApi)]
#[openapi(paths(mining, hashrate, block_series, histogram))]
pub struct SeriesDoc;

fn internal(e: impl std::fmt::Display) -> RestError {
    RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// This node's mining: the miner now and what it has mined.
#[derive(Serialize, ToSchema)]
pub struct MiningInfo {
    /// True while the embedded miner runs.
    pub mining: bool,
    /// Its worker threads (0 when off).
    pub threads: usize,
    /// Hashes per second now, all threads (10-second window).
    pub hashrate: f64,
    /// Hashes per second now, per thread.
    pub per_thread: Vec<f64>,
    /// Blocks this node mined that the chain stored on a valid branch (since it started).
    pub blocks_found: u64,
    /// Of those, how many are off the best chain now.
    pub blocks_stale: u64,
    /// Coinbase value of our blocks on the best chain, base units.
    pub rewards: u64,
    /// Difficulty of the next block.
    pub difficulty: f64,
    /// Compact target of the next block, hex.
    pub bits: String,
}

/// This node's mining figures.
#[utoipa::path(get, path = "/api/v1/mining",
    responses((status = 200, body = MiningInfo), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn mining(State(app): State<Arc<App>>) -> Result<Json<MiningInfo>, RestError> {
    let figures = app.api.mining().figures();
    let (miner, bits, difficulty) = app
        .api
        .chain()
        .read(|v| {
            let chain = v.chain();
            let bits = chain.next_bits().unwrap_or(chain.tip_entry().header.bits);
            let miner = v.miner().map(|m| (m.threads, m.stats.snapshot()));
            (miner, bits, views::difficulty(bits))
        })
        .await?;
    Ok(Json(MiningInfo {
        mining: miner.is_some(),
        threads: miner.as_ref().map_or(0, |m| m.0),
        hashrate: miner.as_ref().map_or(0.0, |m| m.1.hash_rate),
        per_thread: miner.map(|m| m.1.per_thread).unwrap_or_default(),
        blocks_found: figures.blocks_found,
        blocks_stale: figures.blocks_stale,
        rewards: figures.rewards,
        difficulty,
        bits: format!("{bits:08x}"),
    }))
}

/// Which hash-rate history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HashrateQuery {
    /// `10m` (one sample a second, the default) or `24h` (one a minute).
    pub range: Option<String>,
}

/// The hash-rate history.
#[derive(Serialize, ToSchema)]
pub struct HashrateHistory {
    /// Seconds between samples.
    pub interval: u32,
    /// Samples, oldest first.
    pub samples: Vec<RateSample>,
}

/// This node's hash rate over time, per thread and in total.
#[utoipa::path(get, path = "/api/v1/mining/hashrate", params(HashrateQuery),
    responses((status = 200, body = HashrateHistory), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn hashrate(State(app): State<Arc<App>>, Q(q): Q<HashrateQuery>) -> Result<Json<HashrateHistory>, RestError> {
    let (range, interval) = match q.range.as_deref() {
        None | Some("10m") => (Range::Fine, 1),
        Some("24h") => (Range::Coarse, 60),
        Some(other) => {
            let shown: String = other.chars().take(16).collect();
            return Err(RestError::new(
                StatusCode::BAD_REQUEST,
                format!("range: {shown:?} is not 10m or 24h"),
            ));
        }
    };
    let samples = app.api.mining().history(range);
    debug_assert!(samples.len() <= FINE_KEEP.max(COARSE_KEEP));
    Ok(Json(HashrateHistory { interval, samples }))
}

/// How many blocks of the series.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Blocks, 1–1000, ending at the tip (default 100). Costs 1 + ⌈count/100⌉ rate-limit
    /// tokens.
    #[param(minimum = 1, maximum = 1000)]
    pub count: Option<u32>,
}

/// One best-chain block of the series.
#[derive(Serialize, ToSchema)]
pub struct SeriesBlock {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Timestamp (Unix seconds).
    pub time: u32,
    /// Seconds since its parent's timestamp (may be negative; 0 for genesis).
    pub interval: i64,
    /// Difficulty.
    pub difficulty: f64,
    /// Compact target, hex.
    pub bits: String,
    /// Transactions.
    pub ntx: usize,
    /// Bytes.
    pub size: usize,
    /// Coinbase value (subsidy + fees), base units.
    pub reward: u64,
}

/// The last blocks of the best chain, oldest first.
#[derive(Serialize, ToSchema)]
pub struct BlockSeries {
    /// The blocks.
    pub blocks: Vec<SeriesBlock>,
}

/// Block interval, difficulty, size and reward of the last blocks.
#[utoipa::path(get, path = "/api/v1/series/blocks", params(SeriesQuery),
    responses((status = 200, body = BlockSeries), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn block_series(State(app): State<Arc<App>>, Q(q): Q<SeriesQuery>) -> Result<Json<BlockSeries>, RestError> {
    let count = q.count.unwrap_or(100);
    if count == 0 || count > MAX_SERIES_BLOCKS {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            format!("count: must be 1..={MAX_SERIES_BLOCKS}"),
        ));
    }
    let blocks = app
        .api
        .chain()
        .read(move |v| -> Result<Vec<SeriesBlock>, RestError> {
            let chain = v.chain();
            let tip = chain.height().0;
            let first = tip.saturating_sub(count - 1);
            let mut out = Vec::with_capacity((tip - first + 1) as usize);
            let mut prev_time = None;
            if first > 0 {
                let tip_hash = chain.tip_hash();
                prev_time = chain.ancestor(&tip_hash, Height(first - 1)).map(|hd| hd.time);
            }
            for height in first..=tip {
                let hash = chain
                    .hash_at(Height(height))
                    .ok_or_else(|| internal("best chain changed"))?;
                let block = chain
                    .block(&hash)
                    .map_err(internal)?
                    .ok_or_else(|| internal("block body missing"))?;
                let time = block.header.time;
                out.push(SeriesBlock {
                    height,
                    hash: hash.to_hex(),
                    time,
                    interval: prev_time.map_or(0, |p| i64::from(time) - i64::from(p)),
                    difficulty: views::difficulty(block.header.bits),
                    bits: format!("{:08x}", block.header.bits),
                    ntx: block.transactions.len(),
                    size: block.size(),
                    reward: block.transactions.first().map_or(0, |cb| {
                        cb.outputs.iter().map(|o| o.value.0).fold(0, u64::saturating_add)
                    }),
                });
                prev_time = Some(time);
            }
            Ok(out)
        })
        .await??;
    Ok(Json(BlockSeries { blocks }))
}

/// One fee-rate bucket.
#[derive(Serialize, ToSchema)]
pub struct FeeBucket {
    /// Lowest fee rate of the bucket, base units per byte (inclusive).
    pub min_feerate: u64,
    /// Highest fee rate (exclusive; absent for the last bucket).
    pub max_feerate: Option<u64>,
    /// Transactions.
    pub count: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// The mempool by fee rate.
#[derive(Serialize, ToSchema)]
pub struct FeeHistogram {
    /// Transactions.
    pub count: usize,
    /// Bytes.
    pub bytes: usize,
    /// Buckets, lowest fee rate first (transactions below the first bound count in it).
    pub buckets: Vec<FeeBucket>,
}

/// The mempool's fee-rate histogram.
#[utoipa::path(get, path = "/api/v1/mempool/histogram",
    responses((status = 200, body = FeeHistogram), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn histogram(State(app): State<Arc<App>>) -> Result<Json<FeeHistogram>, RestError> {
    let hist = app
        .api
        .chain()
        .read(|v| {
            let mut buckets: Vec<FeeBucket> = FEE_BUCKETS
                .iter()
                .enumerate()
                .map(|(i, lo)| FeeBucket {
                    min_feerate: *lo,
                    max_feerate: FEE_BUCKETS.get(i + 1).copied(),
                    count: 0,
                    bytes: 0,
                })
                .collect();
            let (mut count, mut bytes) = (0, 0);
            if let Some(pool) = v.mempool() {
                for e in pool.iter().take(MAX_HISTOGRAM_ENTRIES) {
                    let size = e.size();
                    let rate = e.fee().0 / (size.max(1) as u64);
                    let i = FEE_BUCKETS.iter().rposition(|lo| rate >= *lo).unwrap_or(0);
                    if let Some(b) = buckets.get_mut(i) {
                        b.count += 1;
                        b.bytes += size;
                    }
                    count += 1;
                    bytes += size;
                }
            }
            FeeHistogram { count, bytes, buckets }
        })
        .await?;
    Ok(Json(hist))
}
