//! API keys for signed requests (scope `admin`): `createapikey`, `listapikeys`,
//! `revokeapikey`. The running node uses a change at once; `lode api-key` calls these.

use serde_json::{json, Value};

use crate::rpc::app::App;
use crate::rpc::auth::Scope;
use crate::rpc::jsonrpc::{Params, RpcError};

/// Most requests per second a key may be given.
const MAX_RATE: u64 = 100_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn createapikey(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["scopes", "rate"])?;
    let scopes = Scope::parse_list(p.str(0, "scopes")?).map_err(|e| RpcError::new(-8, format!("param scopes: {e}")))?;
    let rate = match p.opt_u64(1, "rate")? {
        None => None,
        Some(r) if (1..=MAX_RATE).contains(&r) => Some(r as u32),
        Some(_) => {
            return Err(RpcError::new(
                -8,
                format!("param rate: 1..={MAX_RATE} requests per second"),
            ))
        }
    };
    let (id, secret) = app
        .signed
        .create(&scopes, rate, now())
        .map_err(|e| RpcError::new(-1, e.to_string()))?;
    // The id is logged; the secret never is.
    tracing::info!(key = %id, scopes = ?scopes, "API key created");
    Ok(
        json!({"key": id, "secret": secret, "scopes": scopes.iter().map(ToString::to_string).collect::<Vec<_>>(), "rate": rate}),
    )
}

pub(crate) fn listapikeys(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    serde_json::to_value(app.signed.list()).map_err(RpcError::internal)
}

pub(crate) fn revokeapikey(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["key"])?;
    let id = p.str(0, "key")?;
    match app.signed.revoke(id) {
        Ok(true) => {
            tracing::info!(key = %id, "API key revoked");
            Ok(Value::Null)
        }
        Ok(false) => {
            let shown: String = id.chars().take(64).collect();
            Err(RpcError::new(-8, format!("no API key {shown:?}")))
        }
        Err(e) => Err(RpcError::new(-1, e.to_string())),
    }
}
