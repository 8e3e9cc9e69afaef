//! The node's HTTP port: JSON-RPC (`POST /rpc`, and Bitcoin Core's `POST /` and
//! `POST /wallet/<name>`: [`transport`]), the public REST API (`/api/v1/…`, with its
//! OpenAPI document), server-sent events, Prometheus metrics and `/health`.
//! The contract is `docs/API.md`.
//!
//! Every request passes one gate ([`gate`]): the `Authorization` header is identified
//! ([`auth`]), the caller's token bucket is charged ([`limit`]) — a wrong token is logged
//! and charged to the client's address — and so is the caller's bucket for the REST route
//! (JSON-RPC calls are charged per method by [`transport`]), and the `X-RateLimit-*` and
//! `X-RateLimit-Route-*` headers are added to whatever the handler answers; a request costs
//! tokens in proportion to its work ([`cost`]). Handlers reach the node only through
//! [`NodeApi`]: reads run off the chain thread under the shared side of the chain state's
//! lock, wallet actions as requests to the chain task, network actions as commands to the
//! swarm's event loop. The server runs its own accept loop so that a client that is slow to
//! send its headers is cut off, and connections are capped in total and per address, with
//! slots kept for callers with a credential ([`caps`], ADR 0021).

pub mod app;
pub mod auth;
pub mod caps;
pub mod config;
pub mod core_views;
pub mod cost;
pub mod events;
pub mod explorer;
pub mod jsonrpc;
pub mod limit;
pub mod methods;
pub mod pool;
pub mod public;
pub mod rest;
pub mod search;
pub mod series;
pub mod signed;
pub mod sse;
pub mod transport;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::NodeApi;
pub use app::App;
use auth::{Authenticator, Principal};
pub use config::{RpcConfig, DEFAULT_RATE_LIMIT, DEFAULT_RPC_ADDR};
use jsonrpc::RpcError;
use limit::{Decision, RateLimits};

/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// ... on a reserved connection (one that must authenticate): a client holding reserved
/// slots idle gives them back soon.
const RESERVED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
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

    let signed = signed::SignedKeys::load(&data_dir).map_err(|e| crate::NodeError::Config(e.to_string()))?;
    let events = events::EventLog::start(&api, shutdown.clone());
    let app = Arc::new(App {
        auth: Authenticator::new(&token, config.api_keys.clone(), config.rpc_auth.clone()),
        limits: RateLimits::new(config.rate_limit),
        signed,
        events,
        streams: caps::Caps::new(caps::PUBLIC_STREAMS, caps::PUBLIC_STREAMS_PER_ADDR),
        shutdown: shutdown.clone(),
        api,
    });
    spawn_pruner(&app);
    let body_limit = body_limit(app.api.params().max_block_size);
    let timed = Router::new()
        .route("/rpc", post(transport::rpc))
        .route("/", post(transport::rpc))
        .route("/wallet/", post(transport::rpc))
        .route("/wallet/{name}", post(transport::wallet_rpc))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(public::routes())
        .merge(explorer::routes())
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            HANDLER_TIMEOUT,
        ));
    let router = timed
        .route("/api/v1/events", get(sse::stream))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), gate));
    let metrics = app.api.metrics().clone();
    let router = router.with_state(app);
    let task = tokio::spawn(accept_loop(listener, router, metrics, shutdown));
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

/// Accepts connections within the caps (ADR 0021): a public slot if the address and the
/// node have one free, else a reserved slot (served only with a credential), else the
/// connection is closed at once.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let public = caps::Caps::new(caps::PUBLIC_CONNECTIONS, caps::PUBLIC_CONNECTIONS_PER_ADDR);
    let reserved = caps::Caps::new_loopback_exempt(caps::RESERVED_CONNECTIONS, caps::RESERVED_CONNECTIONS_PER_ADDR);
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
        let (permit, class) = match public.try_take(remote.ip()) {
            Some(t) => (t, caps::ConnClass::Public),
            None => match reserved.try_take(remote.ip()) {
                Some(t) => (t, caps::ConnClass::Reserved),
                None => {
                    tracing::debug!(%remote, "rpc connection refused: too many connections");
                    metrics.count_refusal("connection_limit");
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(remote));
            req.extensions_mut().insert(class);
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let header_timeout = match class {
            caps::ConnClass::Public => HEADER_TIMEOUT,
            caps::ConnClass::Reserved => RESERVED_HEADER_TIMEOUT,
        };
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
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

/// Identifies the caller (its `Authorization`, or a signed request's `X-Lode-*` headers,
/// checked against the body), charges its bucket, and labels the answer with the quota.
async fn gate(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let mut principal = app
        .auth
        .identify(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    let (mut req, refusal) = if req.headers().contains_key(crate::common::signing::KEY_HEADER) {
        match check_signature(&app, req).await {
            (req, Ok(signer)) => {
                principal = Principal::Signed {
                    id: signer.id,
                    scopes: signer.scopes,
                };
                (req, None)
            }
            (req, Err(r)) => {
                principal = Principal::Invalid;
                (req, Some(r))
            }
        }
    } else {
        (req, None)
    };
    // What the request costs: a REST route by its work; a JSON-RPC body the base here and
    // the rest once the transport has parsed it.
    let cost = if req.method() == axum::http::Method::GET {
        cost::rest(req.uri().path(), req.uri().query())
    } else {
        cost::BASE
    };
    let decision = match &principal {
        Principal::Signed { id, .. } => match app.signed.charge(id) {
            Some(Ok((limit, remaining))) => Decision::Allowed {
                limit,
                remaining,
                // A key's quota refills at half its burst per second.
                reset: u64::from(limit.saturating_sub(remaining)).div_ceil(u64::from((limit / 2).max(1))),
            },
            Some(Err(retry_after)) => Decision::Limited {
                limit: app.signed.burst_of(id),
                retry_after,
            },
            None => app.limits.check_n(&principal, remote.ip(), cost),
        },
        _ => app.limits.check_n(&principal, remote.ip(), cost),
    };
    let reserved_only = req.extensions().get::<caps::ConnClass>() == Some(&caps::ConnClass::Reserved);
    // The route's own bucket (JSON-RPC calls are charged per method by the transport).
    let route = rest_route(&req);
    let route_decision = match (&route, &decision, &principal) {
        (_, _, Principal::Invalid) | (None, _, _) | (_, Decision::Limited { .. }, _) => Decision::Unlimited,
        _ if reserved_only && principal.bucket().is_none() => Decision::Unlimited,
        (Some(r), _, _) => app.limits.check_route(&principal, remote.ip(), r),
    };
    let limited = match (decision, route_decision) {
        (Decision::Limited { retry_after, .. }, _) => Some((retry_after, "rate_limited")),
        (_, Decision::Limited { retry_after, .. }) => Some((retry_after, "route_rate_limited")),
        _ => None,
    };
    let mut resp = match limited {
        // A connection on a reserved slot serves credentialed callers only.
        _ if reserved_only && principal.bucket().is_none() => {
            drain(req).await;
            app.api.metrics().count_refusal("connection_limit");
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "too many connections from this address or in total; public slots are full (credentialed callers are still served)"})),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            r
        }
        Some((retry_after, reason)) => {
            drain(req).await;
            app.api.metrics().rate_limited.inc();
            app.api.metrics().count_refusal(reason);
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": format!("rate limit exceeded; retry after {retry_after} s")})),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        None if principal == Principal::Invalid => {
            app.api.metrics().auth_failures.inc();
            let (status, error, reason) = match refusal {
                Some(signed::Refusal::Busy) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    RpcError::new(-32001, signed::Refusal::Busy.message()),
                    signed::Refusal::Busy.reason(),
                ),
                Some(r) => (StatusCode::UNAUTHORIZED, RpcError::new(-32001, r.message()), r.reason()),
                None => (StatusCode::UNAUTHORIZED, RpcError::bad_token(), "bad_credentials"),
            };
            app.api.metrics().count_refusal(reason);
            tracing::warn!(client = %remote.ip(), path = %req.uri().path(), reason, "rejected a request with wrong credentials");
            drain(req).await;
            let body = jsonrpc::response(&Value::Null, Err(error));
            let mut r = (status, Json(body)).into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"jsonrpc\""),
            );
            r
        }
        None => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
    };
    let h = resp.headers_mut();
    limit::rate_headers(h, "x-ratelimit", decision);
    if let Some(route) = route.filter(|_| route_decision != Decision::Unlimited) {
        limit::route_headers(h, &route, route_decision);
    }
    resp
}

/// The route a REST (non-JSON-RPC) request draws its route quota from: its method and
/// matched path pattern (a fixed set), `None` for the JSON-RPC endpoints, whose calls are
/// charged per JSON-RPC method ([`transport`]).
fn rest_route(req: &Request) -> Option<String> {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str());
    let json_rpc = matches!(path, "/rpc" | "/" | "/wallet/" | "/wallet/{name}");
    if req.method() == axum::http::Method::POST && json_rpc {
        return None;
    }
    Some(format!("{} {path}", req.method()))
}

/// Reads the body (within the body limit) to check a signed request, and puts it back.
async fn check_signature(app: &App, req: Request) -> (Request, Result<signed::Signer, signed::Refusal>) {
    use crate::common::signing::{KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    let (parts, body) = req.into_parts();
    let limit = body_limit(app.api.params().max_block_size);
    let bytes = axum::body::to_bytes(body, limit).await.unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default()
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (key, timestamp, signature) = (header(KEY_HEADER), header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
    let signed = signed::SignedRequest {
        key: &key,
        timestamp: &timestamp,
        signature: &signature,
        method: parts.method.as_str(),
        path,
        body: &bytes,
    };
    let verdict = app.signed.verify(&signed, now);
    (Request::from_parts(parts, Body::from(bytes)), verdict)
}

/// Reads a refused request's body to its end (up to [`DRAIN_LIMIT`]), so that the
/// connection stays usable: hyper closes a kept-alive connection whose last request body
/// was left unread, and a Core client keeps its connection across a 401.
async fn drain(req: Request) {
    let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT).await;
}

/// Most bytes of a refused request's body read to keep its connection (larger: closed).
const DRAIN_LIMIT: usize = 1 << 20;

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "no such route"}))).into_response()
}

/// `GET /health`: 200 when the node is serving and not catching up, else 503 with why.
async fn health(State(app): State<Arc<App>>) -> Response {
    let progress = tokio::time::timeout(Duration::from_secs(5), app.api.net().progress()).await;
    let chain = tokio::time::timeout(Duration::from_secs(5), app.api.chain().read(|v| v.chain().height().0)).await;
    let tip = app.api.tip();
    let (ready, reason) = match (progress, chain) {
        _ if app.api.halted().is_some() => (false, app.api.halted()),
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
        m.blocks_found.set(app.api.mining().figures().blocks_found as i64);
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
