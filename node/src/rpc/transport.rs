//! The JSON-RPC endpoints: `POST /rpc` (Lode's), and Bitcoin Core's `POST /` and
//! `POST /wallet/<name>` (the built-in wallet answers to its name, [`WALLET_NAME`], and to
//! the empty name). One call or a batch; each call answered in its own JSON-RPC version
//! ([`jsonrpc::Version`]): a single legacy call's error sets the HTTP status as in Core's
//! `JSONErrorReply`, a single 2.0 call is 200 unless credentials are missing (401/403), a
//! batch is 200.
//!
//! Each call draws on the caller's quota for its JSON-RPC method ([`super::limit`]'s route
//! buckets, `rpc <method>`): a call over it is refused with `-32005` (HTTP 429 and
//! `Retry-After` for a single call), and the answer carries `X-RateLimit-Route-*` for the
//! call (for a batch, the call with the least left).

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

/// Who is calling: the credential and the client address (for the method quotas).
struct Caller<'a> {
    principal: &'a Principal,
    remote: SocketAddr,
}

/// `POST /rpc` and `POST /`.
pub async fn rpc(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let caller = Caller {
        principal: &principal,
        remote,
    };
    serve(&app, &caller, None, &body).await
}

/// `POST /wallet/<name>`: wallet methods act on the named wallet.
pub async fn wallet_rpc(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let caller = Caller {
        principal: &principal,
        remote,
    };
    serve(&app, &caller, Some(&name), &body).await
}

/// Labels an answer with a call's method quota (and `Retry-After` when it was over it).
fn with_quota(mut resp: Response, quota: Option<(String, Decision)>) -> Response {
    if let Some((route, decision)) = quota {
        let h = resp.headers_mut();
        super::limit::route_headers(h, &route, decision);
        if let Decision::Limited { retry_after, .. } = decision {
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
    }
    resp
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

async fn serve(app: &App, caller: &Caller<'_>, wallet: Option<&str>, body: &[u8]) -> Response {
    let parsed = jsonrpc::parse_body(body);
    let calls = match &parsed {
        Ok(jsonrpc::Body::Single(single)) => std::slice::from_ref(single),
        Ok(jsonrpc::Body::Batch(items)) => items.as_slice(),
        Err(_) => &[],
    };
    if let Some(refused) = charge(app, caller.principal, caller.remote.ip(), calls) {
        return refused;
    }
    let items = match parsed {
        Ok(jsonrpc::Body::Single(single)) => {
            let (reply, status, quota) = one_call(app, caller, wallet, single).await;
            let resp = match reply {
                Some(r) => (status, Json(r)).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            };
            return with_quota(resp, quota);
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
    let mut tightest: Option<(String, Decision)> = None;
    for item in items {
        let (reply, _, quota) = one_call(app, caller, wallet, item).await;
        if let Some(r) = reply {
            out.push(r);
        }
        if let Some(q) = quota {
            if tightest.as_ref().is_none_or(|t| left(t.1) > left(q.1)) {
                tightest = Some(q);
            }
        }
    }
    let resp = if out.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(Value::Array(out)).into_response()
    };
    // A batch is 200 whatever its calls' fates; the headers still say which quota ran low.
    with_quota(
        resp,
        tightest.map(|(r, d)| match d {
            Decision::Limited { limit, retry_after } => (
                r,
                Decision::Allowed {
                    limit,
                    remaining: 0,
                    reset: retry_after,
                },
            ),
            other => (r, other),
        }),
    )
}

/// Requests a decision leaves in its bucket.
fn left(d: Decision) -> u32 {
    match d {
        Decision::Allowed { remaining, .. } => remaining,
        Decision::Limited { .. } => 0,
        Decision::Unlimited => u32::MAX,
    }
}

/// True if `name` (from `/wallet/<name>`) is the built-in wallet.
fn is_our_wallet(name: &str) -> bool {
    name.is_empty() || name == WALLET_NAME
}

/// Runs one call; `None` for a 2.0 notification (no `id`). Also answers the call's method
/// quota (`None` for a call that did not parse).
async fn one_call(
    app: &App,
    caller: &Caller<'_>,
    wallet: Option<&str>,
    v: Value,
) -> (Option<Value>, StatusCode, Option<(String, Decision)>) {
    let principal = caller.principal;
    let call = match jsonrpc::parse_call(v.clone()) {
        Ok(c) => c,
        Err((id, e)) => {
            app.api.metrics().count_request("rpc", &e.code.to_string());
            let version = jsonrpc::version_of(&v);
            let status = match version {
                Version::Legacy => e.legacy_status(),
                Version::V2 => StatusCode::OK,
            };
            return (Some(jsonrpc::response_as(version, &id, Err(e))), status, None);
        }
    };
    let scope = methods::scope_of(&call.method);
    // Unknown names share one bucket (and one label): a client must not grow either map.
    let known = if scope.is_some() {
        call.method.as_str()
    } else {
        "unknown"
    };
    let route = format!("rpc {known}");
    let quota = app.limits.check_route(principal, caller.remote.ip(), &route);
    let result = match (quota, scope) {
        (Decision::Limited { retry_after, .. }, _) => {
            app.api.metrics().rate_limited.inc();
            app.api.metrics().count_refusal("route_rate_limited");
            Err(RpcError::new(
                -32005,
                format!("rate limit exceeded for {known}; retry after {retry_after} s"),
            ))
        }
        (_, None) => Err(RpcError::method_not_found(&call.method)),
        (_, Some(Some(s))) if *principal == Principal::Anonymous => {
            tracing::debug!(method = %call.method, scope = %s, "private method without a credential");
            app.api.metrics().count_refusal("no_credential");
            Err(RpcError::unauthorized())
        }
        (_, Some(Some(s))) if !principal.allows(s) => {
            app.api.metrics().count_refusal("missing_scope");
            Err(RpcError::forbidden(s))
        }
        (_, Some(Some(Scope::Wallet))) if wallet.is_some_and(|w| !is_our_wallet(w)) => Err(RpcError::new(
            -18,
            format!("requested wallet does not exist or is not loaded (this node's wallet is {WALLET_NAME:?})"),
        )),
        (_, Some(_)) => methods::call(app, &call.method, &call.params).await,
    };
    let label = known;
    let status = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code.to_string(),
    };
    app.api.metrics().count_request(label, &status);
    let http = match (&result, call.version) {
        (Err(e), _) if e.code == -32005 => StatusCode::TOO_MANY_REQUESTS,
        (Ok(_), _) => StatusCode::OK,
        (Err(e), Version::Legacy) => e.legacy_status(),
        (Err(e), Version::V2) => e.http_status(),
    };
    let version = call.version;
    let quota = (quota != Decision::Unlimited).then_some((route, quota));
    (
        call.id.map(|id| jsonrpc::response_as(version, &id, result)),
        http,
        quota,
    )
}
