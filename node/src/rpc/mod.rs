//! The node's HTTP port: JSON-RPC 2.0 (`POST /rpc`), the public REST API (`/api/v1/…`,
//! with its OpenAPI document), server-sent events, Prometheus metrics and `/health`.
//! The contract is `docs/API.md`.
//!
//! Every request passes one gate ([`gate`]): the `Authorization` header is identified
//! ([`auth`]), the caller's token bucket is charged ([`limit`]) — a wrong token is logged
//! and charged to the client's address — and the `X-RateLimit-*` headers are added to
//! whatever the handler answers. Handlers reach the node only through [`NodeApi`]: reads
//! and wallet actions run as closures on the chain thread, network actions as commands to
//! the swarm's event loop. The server runs its own accept loop so that a client that is slow
//! to send its headers is cut off, and the number of connections is capped.

pub mod app;
pub mod auth;
pub mod config;
pub mod events;
pub mod jsonrpc;
pub mod limit;
pub mod methods;
pub mod rest;
pub mod sse;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::NodeApi;
pub use app::App;
use auth::{Authenticator, Principal};
pub use config::{RpcConfig, DEFAULT_RATE_LIMIT, DEFAULT_RPC_ADDR};
use jsonrpc::{RpcError, MAX_BATCH};
use limit::{Decision, RateLimits};

/// Most simultaneous HTTP connections.
const MAX_CONNECTIONS: usize = 512;
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and its body within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a handler may run (a large `generate`, `verifychain`).
const HANDLER_TIMEOUT: Duration = Duration::from_secs(300);
/// File in the data dir holding the URL of the RPC server.
pub use crate::common::defaults::RPC_URL_FILE;

/// A running RPC server.
pub struct RpcServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The accept loop.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `config.listen`, writes the cookie and `DATA_DIR/rpc_url`, and serves until
/// `shutdown` turns true.
pub async fn start(
    api: NodeApi,
    config: RpcConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<RpcServer, crate::NodeError> {
    let data_dir = api.data_dir().to_path_buf();
    let io_err = |path: &std::path::Path| {
        let shown = path.display().to_string();
        move |source| crate::NodeError::Io { path: shown, source }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| crate::NodeError::Listen {
            addr: config.listen.to_string(),
            reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("RPC port {} is already in use", config.listen.port())
            } else {
                e.to_string()
            },
        })?;
    let addr = listener.local_addr().map_err(io_err(&data_dir))?;
    if !addr.ip().is_loopback() && config.api_keys.is_empty() {
        tracing::warn!(%addr, "RPC listens beyond loopback with no API keys: public methods are open to the network, private ones need the cookie");
    }
    let token = auth::write_cookie(&data_dir).map_err(io_err(&data_dir.join(auth::COOKIE_FILE)))?;
    let url_file = data_dir.join(RPC_URL_FILE);
    // Atomically (temp file, rename): a client polling for it never reads half a URL.
    let tmp = url_file.with_extension("tmp");
    std::fs::write(&tmp, format!("http://{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, &url_file))
        .map_err(io_err(&url_file))?;

    let events = events::EventLog::start(&api, shutdown.clone());
    let app = Arc::new(App {
        auth: Authenticator::new(&token, config.api_keys.clone()),
        limits: RateLimits::new(config.rate_limit),
        events,
        shutdown: shutdown.clone(),
        api,
    });
    spawn_pruner(&app);
    let body_limit = body_limit(app.api.params().max_block_size);
    let timed = Router::new()
        .route("/rpc", post(rpc))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(rest::routes())
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            HANDLER_TIMEOUT,
        ));
    let router = timed
        .route("/api/v1/events", get(sse::stream))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app);
    let task = tokio::spawn(accept_loop(listener, router, shutdown));
    tracing::info!(%addr, "rpc server listening");
    Ok(RpcServer { addr, task })
}

/// Largest request body: room for a max-size block in hex, at least 4 MiB.
pub fn body_limit(max_block_size: usize) -> usize {
    (max_block_size.saturating_mul(2) + 64 * 1024).max(4 << 20)
}

fn spawn_pruner(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let Some(app) = weak.upgrade() else { break };
            if *app.shutdown.borrow() {
                break;
            }
            app.limits.prune();
        }
    });
}

async fn accept_loop(listener: tokio::net::TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::debug!(error = %e, "rpc accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "rpc connection refused: too many connections");
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(remote));
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(%remote, error = %e, "rpc connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    // In-flight requests get a moment; event streams end on the same signal.
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

/// Identifies the caller, charges its bucket, and labels the answer with the quota.
async fn gate(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = app
        .auth
        .identify(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    let decision = app.limits.check(&principal, remote.ip());
    let mut resp = match decision {
        Decision::Limited { retry_after, .. } => {
            app.api.metrics().rate_limited.inc();
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": format!("rate limit exceeded; retry after {retry_after} s")})),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        _ if principal == Principal::Invalid => {
            app.api.metrics().auth_failures.inc();
            tracing::warn!(client = %remote.ip(), path = %req.uri().path(), "rejected a request with a wrong token");
            let body = jsonrpc::response(&Value::Null, Err(RpcError::bad_token()));
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
        _ => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
    };
    let h = resp.headers_mut();
    match decision {
        Decision::Allowed {
            limit,
            remaining,
            reset,
        } => {
            h.insert("x-ratelimit-limit", HeaderValue::from(limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
            h.insert("x-ratelimit-reset", HeaderValue::from(reset));
        }
        Decision::Limited { limit, retry_after } => {
            h.insert("x-ratelimit-limit", HeaderValue::from(limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
            h.insert("x-ratelimit-reset", HeaderValue::from(retry_after));
        }
        Decision::Unlimited => {}
    }
    resp
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "no such route"}))).into_response()
}

/// `POST /rpc`: one call or a batch.
async fn rpc(State(app): State<Arc<App>>, Extension(principal): Extension<Principal>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            app.api.metrics().count_request("rpc", "-32700");
            return Json(jsonrpc::response(&Value::Null, Err(RpcError::parse(e)))).into_response();
        }
    };
    match value {
        Value::Array(items) => {
            let error = if items.is_empty() {
                Some("empty batch")
            } else if items.len() > MAX_BATCH {
                Some("batch of more than 100 calls")
            } else {
                None
            };
            if let Some(reason) = error {
                return Json(jsonrpc::response(&Value::Null, Err(RpcError::invalid_request(reason)))).into_response();
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let (Some(r), _) = one_call(&app, &principal, item).await {
                    out.push(r);
                }
            }
            if out.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                Json(Value::Array(out)).into_response()
            }
        }
        single => match one_call(&app, &principal, single).await {
            (Some(r), status) => (status, Json(r)).into_response(),
            (None, _) => StatusCode::NO_CONTENT.into_response(),
        },
    }
}

/// Runs one call; `None` for a notification (no `id`).
async fn one_call(app: &App, principal: &Principal, v: Value) -> (Option<Value>, StatusCode) {
    let call = match jsonrpc::parse_call(v) {
        Ok(c) => c,
        Err((id, e)) => {
            app.api.metrics().count_request("rpc", &e.code.to_string());
            return (Some(jsonrpc::response(&id, Err(e))), StatusCode::OK);
        }
    };
    let scope = methods::scope_of(&call.method);
    let result = match scope {
        None => Err(RpcError::method_not_found(&call.method)),
        Some(None) => methods::call(app, &call.method, &call.params).await,
        Some(Some(s)) if *principal == Principal::Anonymous => {
            tracing::debug!(method = %call.method, scope = %s, "private method without a token");
            Err(RpcError::unauthorized())
        }
        Some(Some(s)) if !principal.allows(s) => Err(RpcError::forbidden(s)),
        Some(Some(_)) => methods::call(app, &call.method, &call.params).await,
    };
    // Unknown names are not labels: a client must not grow the metric set.
    let label = if scope.is_some() {
        call.method.as_str()
    } else {
        "unknown"
    };
    let status = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code.to_string(),
    };
    app.api.metrics().count_request(label, &status);
    let http = result.as_ref().err().map_or(StatusCode::OK, RpcError::http_status);
    let id = call.id.clone();
    (id.map(|id| jsonrpc::response(&id, result)), http)
}

/// `GET /health`: 200 when the node is serving and not catching up, else 503 with why.
async fn health(State(app): State<Arc<App>>) -> Response {
    let progress = tokio::time::timeout(Duration::from_secs(5), app.api.net().progress()).await;
    let chain = tokio::time::timeout(Duration::from_secs(5), app.api.chain().read(|v| v.chain().height().0)).await;
    let tip = app.api.tip();
    let (ready, reason) = match (progress, chain) {
        (Ok(Ok(p)), Ok(Ok(_))) if p.target > p.height.max(tip.height.0) => {
            (false, Some(format!("syncing: height {} of {}", tip.height.0, p.target)))
        }
        (Ok(Ok(_)), Ok(Ok(_))) => (true, None),
        (_, Err(_)) | (_, Ok(Err(_))) => (false, Some("the chain task is not answering".to_string())),
        _ => (false, Some("the network task is not answering".to_string())),
    };
    let body = json!({
        "ready": ready,
        "reason": reason,
        "height": tip.height.0,
        "tip": tip.hash.to_hex(),
        "network": app.api.params().name,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: gauges refreshed, then the Prometheus text.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let m = app.api.metrics().clone();
    m.height.set(i64::from(app.api.tip().height.0));
    if let Some(s) = app.api.stratum() {
        crate::stratum::server::refresh_metrics(&m, s);
    }
    if let Ok(peers) = app.api.net().peers().await {
        m.peers.set(peers.len() as i64);
    }
    let snapshot = app
        .api
        .chain()
        .read(|v| {
            let pool = v.mempool().map(|p| (p.len(), p.bytes()));
            let miner = v.miner().map(|m| m.stats.snapshot());
            (pool, miner)
        })
        .await;
    if let Ok((pool, miner)) = snapshot {
        if let Some((n, bytes)) = pool {
            m.mempool_txs.set(n as i64);
            m.mempool_bytes.set(bytes as i64);
        }
        m.hash_rate.set(miner.as_ref().map_or(0.0, |s| s.hash_rate));
        m.blocks_found.set(miner.as_ref().map_or(0, |s| s.blocks_found as i64));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
