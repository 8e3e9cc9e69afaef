//! The public REST API (`GET /api/v1/…`) for explorers and scripts, and its OpenAPI
//! document, generated from the handlers' annotations (`GET /api/v1/openapi.json`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use lode_chain::store::AddrKind;
use lode_chain::{Hash256, Height, PubkeyHash};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::app::App;
use super::jsonrpc::RpcError;
use super::methods::{chain as chain_methods, net};
use super::views::{BlockView, MempoolSummary, TxView};

/// Most items per page.
pub const MAX_PAGE: u32 = 100;
/// Most UTXOs listed for one address.
pub const MAX_UTXOS: usize = 500;

/// The REST routes of this module: (path, handler). The OpenAPI document must list exactly
/// the public routes (a unit test in `public` checks), so it cannot drift from the router.
pub fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![
        ("/api/v1/status", get(status)),
        ("/api/v1/tip", get(tip)),
        ("/api/v1/blocks", get(blocks)),
        ("/api/v1/block/{id}", get(block)),
        ("/api/v1/tx/{txid}", get(tx)),
        ("/api/v1/address/{address}", get(address)),
        ("/api/v1/mempool", get(mempool)),
        ("/api/v1/peers", get(peers)),
    ]
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lode REST API",
        description = "Public, read-only REST API of a Lode node. JSON-RPC: see docs/API.md."
    ),
    paths(status, tip, blocks, block, tx, address, mempool, peers)
)]
pub struct ApiDoc;

/// An error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// A REST failure: status and message.
pub struct RestError(StatusCode, String);

impl RestError {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> RestError {
        RestError(status, message.into())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<RpcError> for RestError {
    fn from(e: RpcError) -> RestError {
        let status = match e.code {
            -5 => StatusCode::NOT_FOUND,
            -8 | -22 | -32602 => StatusCode::BAD_REQUEST,
            -1 if e.message.contains("shutting down") => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        RestError(status, e.message)
    }
}

impl From<crate::NodeError> for RestError {
    fn from(e: crate::NodeError) -> RestError {
        RestError::from(RpcError::from(e))
    }
}

/// `Query` whose refusals are JSON errors (axum's own are plain text).
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| bad(e.body_text()))
    }
}

/// `Path` whose refusals are JSON errors.
pub struct P<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| bad(e.body_text()))
    }
}

fn bad(msg: impl Into<String>) -> RestError {
    RestError(StatusCode::BAD_REQUEST, msg.into())
}

fn parse_hash(s: &str, what: &str) -> Result<Hash256, RestError> {
    Hash256::from_hex(s).map_err(|e| bad(format!("{what}: not a hash ({e})")))
}

/// Node status.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// Network name.
    pub network: String,
    /// Genesis hash.
    pub genesis: String,
    /// Best height.
    pub height: u32,
    /// Best hash.
    pub tip: String,
    /// Connected peers.
    pub peers: usize,
    /// Mempool transactions.
    pub mempool_size: usize,
    /// Mempool bytes.
    pub mempool_bytes: usize,
    /// True while catching up with a peer.
    pub syncing: bool,
    /// Best height peers report.
    pub target_height: u32,
    /// True if the embedded miner runs.
    pub mining: bool,
    /// The miner's hash rate (nonces/s).
    pub hashrate: f64,
}

/// Node status.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status), (status = 429, body = ErrorBody)))]
async fn status(State(app): State<Arc<App>>) -> Result<Json<Status>, RestError> {
    let progress = app.api.net().progress().await?;
    let peers = app.api.net().peers().await?.len();
    let (pool, miner) = app
        .api
        .chain()
        .read(|v| {
            (
                v.mempool().map_or((0, 0), |m| (m.len(), m.bytes())),
                v.miner().map(|m| m.stats.snapshot().hash_rate),
            )
        })
        .await?;
    let tip = app.api.tip();
    Ok(Json(Status {
        network: app.api.params().name.clone(),
        genesis: app.api.genesis().to_hex(),
        height: tip.height.0,
        tip: tip.hash.to_hex(),
        peers,
        mempool_size: pool.0,
        mempool_bytes: pool.1,
        syncing: progress.target > tip.height.0,
        target_height: progress.target.max(tip.height.0),
        mining: miner.is_some(),
        hashrate: miner.unwrap_or(0.0),
    }))
}

/// The best block.
#[derive(Serialize, ToSchema)]
pub struct Tip {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Timestamp.
    pub time: u32,
    /// Compact target, hex.
    pub bits: String,
}

/// The best block.
#[utoipa::path(get, path = "/api/v1/tip", responses((status = 200, body = Tip), (status = 429, body = ErrorBody)))]
async fn tip(State(app): State<Arc<App>>) -> Json<Tip> {
    let t = app.api.tip();
    Json(Tip {
        height: t.height.0,
        hash: t.hash.to_hex(),
        time: t.header.time,
        bits: format!("{:08x}", t.header.bits),
    })
}

/// Paging of `/api/v1/blocks`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// Highest height listed (default: the tip). The cursor: pass a page's `next` to get
    /// the page after it.
    pub from: Option<u32>,
    /// Blocks per page, 1–100 (default 20). Costs 1 + ⌈limit/5⌉ rate-limit tokens.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One block in a list.
#[derive(Serialize, ToSchema)]
pub struct BlockSummary {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Timestamp.
    pub time: u32,
    /// Transactions.
    pub ntx: usize,
    /// Bytes.
    pub size: usize,
}

/// A page of blocks, newest first.
#[derive(Serialize, ToSchema)]
pub struct BlocksPage {
    /// The blocks.
    pub blocks: Vec<BlockSummary>,
    /// `from` of the next page, if any.
    pub next: Option<u32>,
}

/// Best-chain blocks, newest first, paged.
#[utoipa::path(get, path = "/api/v1/blocks", params(BlocksQuery),
    responses((status = 200, body = BlocksPage), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn blocks(State(app): State<Arc<App>>, Q(q): Q<BlocksQuery>) -> Result<Json<BlocksPage>, RestError> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad(format!("limit: must be 1..={MAX_PAGE}")));
    }
    let page = app
        .api
        .chain()
        .read(move |v| -> Result<BlocksPage, RestError> {
            let chain = v.chain();
            let top = q.from.unwrap_or(chain.height().0);
            if top > chain.height().0 {
                return Err(bad(format!("from: height {top} is above the tip {}", chain.height().0)));
            }
            let mut out = Vec::new();
            let mut h = i64::from(top);
            while h >= 0 && out.len() < limit as usize {
                let height = Height(h as u32);
                let hash = chain
                    .hash_at(height)
                    .ok_or_else(|| RestError(StatusCode::INTERNAL_SERVER_ERROR, "best chain changed".into()))?;
                let block = chain
                    .block(&hash)
                    .map_err(|e| RestError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                    .ok_or_else(|| RestError(StatusCode::INTERNAL_SERVER_ERROR, "block body missing".into()))?;
                out.push(BlockSummary {
                    height: height.0,
                    hash: hash.to_hex(),
                    time: block.header.time,
                    ntx: block.transactions.len(),
                    size: block.size(),
                });
                h -= 1;
            }
            Ok(BlocksPage {
                blocks: out,
                next: (h >= 0).then_some(h as u32),
            })
        })
        .await??;
    Ok(Json(page))
}

/// A block by hash or height.
#[utoipa::path(get, path = "/api/v1/block/{id}",
    params(("id" = String, Path, description = "Block hash (64 hex digits) or height")),
    responses((status = 200, body = BlockView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn block(State(app): State<Arc<App>>, P(id): P<String>) -> Result<Json<Value>, RestError> {
    let hash = if id.len() <= 10 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        let height: u32 = id.parse().map_err(|_| bad("id: height out of range"))?;
        app.api
            .chain()
            .hash_at(Height(height))
            .await?
            .ok_or_else(|| RestError(StatusCode::NOT_FOUND, format!("no block at height {height}")))?
    } else {
        parse_hash(&id, "id")?
    };
    Ok(Json(chain_methods::block_lookup(&app, hash, 1).await?))
}

/// A transaction (mempool or chain).
#[utoipa::path(get, path = "/api/v1/tx/{txid}",
    params(("txid" = String, Path, description = "Txid, 64 hex digits")),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn tx(State(app): State<Arc<App>>, P(txid): P<String>) -> Result<Json<TxView>, RestError> {
    let txid = parse_hash(&txid, "txid")?;
    Ok(Json(chain_methods::tx_lookup(&app, txid).await?))
}

/// Paging of an address's history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page, from 0 (newest first).
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 25). Costs 5 + ⌈limit/10⌉ rate-limit tokens.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// An unspent output of an address.
#[derive(Serialize, ToSchema)]
pub struct AddressUtxo {
    /// Txid.
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Value.
    pub value: u64,
    /// Height of its block.
    pub height: u32,
}

/// One transaction's effect on an address.
#[derive(Serialize, ToSchema)]
pub struct AddressTx {
    /// Txid.
    pub txid: String,
    /// Height.
    pub height: u32,
    /// Net change in base units.
    pub delta: i128,
}

/// A page of an address's history.
#[derive(Serialize, ToSchema)]
pub struct AddressHistory {
    /// Transactions, newest first.
    pub items: Vec<AddressTx>,
    /// This page.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
    /// Transactions in total.
    pub total: usize,
}

/// An address's balance, coins and history (confirmed).
#[derive(Serialize, ToSchema)]
pub struct AddressInfo {
    /// The address.
    pub address: String,
    /// Confirmed balance.
    pub balance: u64,
    /// Total received.
    pub received: u64,
    /// Total spent.
    pub sent: u64,
    /// Unspent outputs (at most 500, oldest first).
    pub utxos: Vec<AddressUtxo>,
    /// Number of unspent outputs.
    pub utxo_count: usize,
    /// History page.
    pub history: AddressHistory,
}

/// An address's balance, UTXOs and paged history.
#[utoipa::path(get, path = "/api/v1/address/{address}",
    params(("address" = String, Path, description = "bech32m address of this network"), PageQuery),
    responses((status = 200, body = AddressInfo), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn address(
    State(app): State<Arc<App>>,
    P(address): P<String>,
    Q(q): Q<PageQuery>,
) -> Result<Json<AddressInfo>, RestError> {
    let pkh = PubkeyHash::from_address(&address, &app.api.params().hrp).map_err(|e| bad(format!("address: {e}")))?;
    let limit = q.limit.unwrap_or(25);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad(format!("limit: must be 1..={MAX_PAGE}")));
    }
    let page = q.page.unwrap_or(0);
    let events = app
        .api
        .chain()
        .read(move |v| v.chain().store().address_events(&pkh))
        .await?
        .map_err(|e| RestError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (mut received, mut sent) = (0u64, 0u64);
    let spent: HashSet<_> = events
        .iter()
        .filter(|e| e.kind == AddrKind::Spent)
        .map(|e| e.record.outpoint)
        .collect();
    let mut per_tx: BTreeMap<(u32, Hash256), i128> = BTreeMap::new();
    let mut utxos = Vec::new();
    for e in &events {
        let v = e.record.value.0;
        let delta = per_tx.entry((e.height.0, e.txid)).or_insert(0);
        match e.kind {
            AddrKind::Received => {
                received = received.saturating_add(v);
                *delta += i128::from(v);
                if !spent.contains(&e.record.outpoint) {
                    utxos.push(AddressUtxo {
                        txid: e.record.outpoint.txid.to_hex(),
                        vout: e.record.outpoint.index,
                        value: v,
                        height: e.height.0,
                    });
                }
            }
            AddrKind::Spent => {
                sent = sent.saturating_add(v);
                *delta -= i128::from(v);
            }
        }
    }
    let total = per_tx.len();
    let items = per_tx
        .iter()
        .rev()
        .skip((page as usize).saturating_mul(limit as usize))
        .take(limit as usize)
        .map(|((h, txid), d)| AddressTx {
            txid: txid.to_hex(),
            height: *h,
            delta: *d,
        })
        .collect();
    let utxo_count = utxos.len();
    utxos.truncate(MAX_UTXOS);
    Ok(Json(AddressInfo {
        address,
        balance: received.saturating_sub(sent),
        received,
        sent,
        utxos,
        utxo_count,
        history: AddressHistory {
            items,
            page,
            limit,
            total,
        },
    }))
}

/// Mempool summary.
#[utoipa::path(get, path = "/api/v1/mempool", responses((status = 200, body = MempoolSummary), (status = 429, body = ErrorBody)))]
async fn mempool(State(app): State<Arc<App>>) -> Result<Json<MempoolSummary>, RestError> {
    Ok(Json(chain_methods::mempool_summary(&app, MAX_PAGE as usize).await?))
}

/// A connected peer.
#[derive(Serialize, ToSchema)]
pub struct Peer {
    /// Peer id.
    pub id: String,
    /// Remote multiaddr.
    pub addr: String,
    /// True if it dialled us.
    pub inbound: bool,
    /// Best height it told us of (null until its status arrives).
    pub height: Option<u32>,
    /// Last ping round trip, milliseconds (null until measured).
    pub ping_ms: Option<f64>,
}

/// Connected peers.
#[utoipa::path(get, path = "/api/v1/peers", responses((status = 200, body = Vec<Peer>), (status = 429, body = ErrorBody)))]
async fn peers(State(app): State<Arc<App>>) -> Result<Json<Vec<Value>>, RestError> {
    Ok(Json(net::peers_json(&app).await?))
}
