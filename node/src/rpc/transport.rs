//! The JSON-RPC endpoints: `POST /rpc` (Lode's), and Bitcoin Core's `POST /` and
//! `POST /wallet/<name>` (the built-in wallet answers to its name, [`WALLET_NAME`], and to
//! the empty name). One call or a batch; each call answered in its own JSON-RPC version
//! ([`jsonrpc::Version`]): a single legacy call's error sets the HTTP status as in Core's
//! `JSONErrorReply`, a single 2.0 call is 200 unless credentials are missing (401/403), a
//! batch is 200.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::app::App;
use super::auth::{Principal, Scope};
use super::jsonrpc::{self, RpcError, Version};
use super::limit::Decision;
use super::{cost, methods};

pub use super::methods::wallet::WALLET_NAME;

/// `POST /rpc` and `POST /`.
pub async fn rpc(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    serve(&app, &principal, remote.ip(), None, &body).await
}

/// `POST /wallet/<name>`: wallet methods act on the named wallet.
pub async fn wallet_rpc(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    serve(&app, &principal, remote.ip(), Some(&name), &body).await
}

/// Charges what a parsed body costs beyond the base the gate took: one call's cost, or a
/// batch's sum (ADR 0021). `Some(429 answer)` when the caller's bucket cannot pay.
fn charge(app: &App, principal: &Principal, ip: IpAddr, calls: &[serde_json::Value]) -> Option<Response> {
    // A signed request is charged by its key's own quota, one per request (the gate).
    if matches!(principal, Principal::Signed { .. }) {
        return None;
    }
    let extra = cost::rpc_body(calls).saturating_sub(cost::BASE);
    if extra == 0 {
        return None;
    }
    match app.limits.check_n(principal, ip, extra) {
        Decision::Limited { retry_after, .. } => {
            app.api.metrics().rate_limited.inc();
            app.api.metrics().count_refusal("rate_limited");
            let body = serde_json::json!({
                "error": format!("rate limit exceeded: this request costs {} tokens; retry after {retry_after} s", extra + cost::BASE)
            });
            let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Some(r)
        }
        Decision::Allowed { .. } | Decision::Unlimited => None,
    }
}

async fn serve(app: &App, principal: &Principal, ip: IpAddr, wallet: Option<&str>, body: &[u8]) -> Response {
    let parsed = jsonrpc::parse_body(body);
    let calls = match &parsed {
        Ok(jsonrpc::Body::Single(single)) => std::slice::from_ref(single),
        Ok(jsonrpc::Body::Batch(items)) => items.as_slice(),
        Err(_) => &[],
    };
    if let Some(refused) = charge(app, principal, ip, calls) {
        return refused;
    }
    let items = match parsed {
        Ok(jsonrpc::Body::Single(single)) => {
            return match one_call(app, principal, wallet, single).await {
                (Some(r), status) => (status, Json(r)).into_response(),
                (None, _) => StatusCode::NO_CONTENT.into_response(),
            };
        }
        Ok(jsonrpc::Body::Batch(items)) => items,
        Err(e) if e.code == -32700 => {
            // As Core: a body that is not JSON gets a legacy error reply with status 500.
            app.api.metrics().count_request("rpc", "-32700");
            let status = e.legacy_status();
            return (
                status,
                Json(jsonrpc::response_as(Version::Legacy, &Value::Null, Err(e))),
            )
                .into_response();
        }
        // An empty or over-long batch.
        Err(e) => return Json(jsonrpc::response(&Value::Null, Err(e))).into_response(),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let (Some(r), _) = one_call(app, principal, wallet, item).await {
            out.push(r);
        }
    }
    if out.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(Value::Array(out)).into_response()
    }
}

/// True if `name` (from `/wallet/<name>`) is the built-in wallet.
fn is_our_wallet(name: &str) -> bool {
    name.is_empty() || name == WALLET_NAME
}

/// Runs one call; `None` for a 2.0 notification (no `id`).
async fn one_call(app: &App, principal: &Principal, wallet: Option<&str>, v: Value) -> (Option<Value>, StatusCode) {
    let call = match jsonrpc::parse_call(v.clone()) {
        Ok(c) => c,
        Err((id, e)) => {
            app.api.metrics().count_request("rpc", &e.code.to_string());
            let version = jsonrpc::version_of(&v);
            let status = match version {
                Version::Legacy => e.legacy_status(),
                Version::V2 => StatusCode::OK,
            };
            return (Some(jsonrpc::response_as(version, &id, Err(e))), status);
        }
    };
    let scope = methods::scope_of(&call.method);
    let result = match scope {
        None => Err(RpcError::method_not_found(&call.method)),
        Some(Some(s)) if *principal == Principal::Anonymous => {
            tracing::debug!(method = %call.method, scope = %s, "private method without a credential");
            app.api.metrics().count_refusal("no_credential");
            Err(RpcError::unauthorized())
        }
        Some(Some(s)) if !principal.allows(s) => {
            app.api.metrics().count_refusal("missing_scope");
            Err(RpcError::forbidden(s))
        }
        Some(Some(Scope::Wallet)) if wallet.is_some_and(|w| !is_our_wallet(w)) => Err(RpcError::new(
            -18,
            format!("requested wallet does not exist or is not loaded (this node's wallet is {WALLET_NAME:?})"),
        )),
        Some(_) => methods::call(app, &call.method, &call.params).await,
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
    let http = match (&result, call.version) {
        (Ok(_), _) => StatusCode::OK,
        (Err(e), Version::Legacy) => e.legacy_status(),
        (Err(e), Version::V2) => e.http_status(),
    };
    let version = call.version;
    (call.id.map(|id| jsonrpc::response_as(version, &id, result)), http)
}
