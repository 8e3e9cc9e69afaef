//! JSON-RPC 2.0 framing: request validation, batches, errors, and positional/named params.

use axum::http::StatusCode;
use lode_chain::Hash256;
use serde_json::{json, Map, Value};

/// Most calls in one batch.
pub const MAX_BATCH: usize = 100;

/// A JSON-RPC error, with the HTTP status it implies when it is the whole answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code (docs/API.md).
    pub code: i64,
    /// One-line message.
    pub message: String,
}

#[allow(missing_docs)]
impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
    pub fn parse(reason: impl std::fmt::Display) -> RpcError {
        RpcError::new(-32700, format!("parse error: {reason}"))
    }
    pub fn invalid_request(reason: &str) -> RpcError {
        RpcError::new(-32600, format!("invalid request: {reason}"))
    }
    pub fn method_not_found(method: &str) -> RpcError {
        let shown: String = method.chars().take(64).collect();
        RpcError::new(-32601, format!("method not found: {shown}"))
    }
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(-32602, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> RpcError {
        RpcError::new(-32603, format!("internal error: {message}"))
    }
    pub fn misc(message: impl Into<String>) -> RpcError {
        RpcError::new(-1, message)
    }
    pub fn not_found(message: impl Into<String>) -> RpcError {
        RpcError::new(-5, message)
    }
    pub fn unauthorized() -> RpcError {
        RpcError::new(
            -32001,
            "unauthorized: this method needs Authorization: Bearer <cookie or API key>",
        )
    }
    pub fn bad_token() -> RpcError {
        RpcError::new(-32001, "unauthorized: wrong or malformed token")
    }
    pub fn forbidden(scope: super::auth::Scope) -> RpcError {
        RpcError::new(-32002, format!("forbidden: the key lacks the {scope} scope"))
    }

    /// HTTP status when this error is the whole answer to a single request.
    pub fn http_status(&self) -> StatusCode {
        match self.code {
            -32001 => StatusCode::UNAUTHORIZED,
            -32002 => StatusCode::FORBIDDEN,
            _ => StatusCode::OK,
        }
    }

    /// The `error` member.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl From<crate::NodeError> for RpcError {
    fn from(e: crate::NodeError) -> RpcError {
        match e {
            crate::NodeError::Stopped => RpcError::misc("node is shutting down"),
            other => RpcError::internal(other),
        }
    }
}

/// A response object.
pub fn response(id: &Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
    }
}

/// A request body as parsed: one call object (not yet validated) or a batch of them.
#[derive(Debug)]
pub enum Body {
    /// A single request value.
    Single(Value),
    /// A batch: 1 to [`MAX_BATCH`] request values.
    Batch(Vec<Value>),
}

/// Parses a `POST /rpc` body: JSON (else a parse error), and a batch must hold 1 to
/// [`MAX_BATCH`] calls (else an invalid request). The server's only body parser; public so
/// the fuzz targets (`fuzz/`) run exactly this code.
pub fn parse_body(bytes: &[u8]) -> Result<Body, RpcError> {
    match serde_json::from_slice(bytes).map_err(RpcError::parse)? {
        Value::Array(items) if items.is_empty() => Err(RpcError::invalid_request("empty batch")),
        Value::Array(items) if items.len() > MAX_BATCH => {
            Err(RpcError::invalid_request("batch of more than 100 calls"))
        }
        Value::Array(items) => Ok(Body::Batch(items)),
        single => Ok(Body::Single(single)),
    }
}

/// One validated call.
#[derive(Debug)]
pub struct Call {
    /// `id` (absent for a notification: no response is sent).
    pub id: Option<Value>,
    /// Method name.
    pub method: String,
    /// Its params.
    pub params: Params,
}

/// Validates one request object. On error, returns the id to answer with.
pub fn parse_call(v: Value) -> Result<Call, (Value, RpcError)> {
    let Value::Object(mut obj) = v else {
        return Err((Value::Null, RpcError::invalid_request("expected an object")));
    };
    let id = obj.remove("id");
    let id_for_error = match &id {
        Some(i @ (Value::Null | Value::String(_) | Value::Number(_))) => i.clone(),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("id must be a string, number or null"),
            ))
        }
        None => Value::Null,
    };
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err((id_for_error, RpcError::invalid_request("jsonrpc must be \"2.0\"")));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err((id_for_error, RpcError::invalid_request("method must be a string"))),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Params::default(),
        Some(Value::Array(a)) => Params {
            positional: a,
            named: None,
        },
        Some(Value::Object(o)) => Params {
            positional: Vec::new(),
            named: Some(o),
        },
        Some(_) => {
            return Err((
                id_for_error,
                RpcError::invalid_request("params must be an array or an object"),
            ))
        }
    };
    Ok(Call { id, method, params })
}

/// A call's params, by position or by name.
#[derive(Debug, Default)]
pub struct Params {
    positional: Vec<Value>,
    named: Option<Map<String, Value>>,
}

impl Params {
    /// Positional params, for tests.
    pub fn from_positional(v: Vec<Value>) -> Params {
        Params {
            positional: v,
            named: None,
        }
    }

    /// Refuses more params than the method takes, or unknown names.
    pub fn expect_at_most(&self, names: &[&str]) -> Result<(), RpcError> {
        if self.positional.len() > names.len() {
            return Err(RpcError::invalid_params(format!(
                "too many params: takes at most {} ({})",
                names.len(),
                names.join(", ")
            )));
        }
        if let Some(named) = &self.named {
            if let Some(k) = named.keys().find(|k| !names.contains(&k.as_str())) {
                let shown: String = k.chars().take(64).collect();
                return Err(RpcError::invalid_params(format!("unknown param {shown:?}")));
            }
        }
        Ok(())
    }

    fn get(&self, i: usize, name: &str) -> Option<&Value> {
        let v = match &self.named {
            Some(m) => m.get(name),
            None => self.positional.get(i),
        };
        v.filter(|v| !v.is_null())
    }

    fn missing(name: &str) -> RpcError {
        RpcError::invalid_params(format!("missing param {name}"))
    }

    /// A required string.
    pub fn str(&self, i: usize, name: &str) -> Result<&str, RpcError> {
        match self.get(i, name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(RpcError::invalid_params(format!("param {name} must be a string"))),
            None => Err(Self::missing(name)),
        }
    }

    /// An optional string.
    pub fn opt_str(&self, i: usize, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(i, name) {
            None => Ok(None),
            Some(_) => self.str(i, name).map(Some),
        }
    }

    /// A required non-negative integer.
    pub fn u64(&self, i: usize, name: &str) -> Result<u64, RpcError> {
        match self.get(i, name) {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| RpcError::invalid_params(format!("param {name} must be a non-negative integer"))),
            Some(_) => Err(RpcError::invalid_params(format!(
                "param {name} must be a non-negative integer"
            ))),
            None => Err(Self::missing(name)),
        }
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&self, i: usize, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(i, name) {
            None => Ok(None),
            Some(_) => self.u64(i, name).map(Some),
        }
    }

    /// An optional boolean (numbers 0/1 accepted, as Bitcoin Core's verbosity).
    pub fn opt_bool(&self, i: usize, name: &str) -> Result<Option<bool>, RpcError> {
        match self.get(i, name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(_) => Err(RpcError::invalid_params(format!("param {name} must be a boolean"))),
        }
    }

    /// A required block or transaction hash (64 hex digits, display order).
    pub fn hash(&self, i: usize, name: &str) -> Result<Hash256, RpcError> {
        let s = self.str(i, name)?;
        Hash256::from_hex(s).map_err(|e| RpcError::new(-8, format!("param {name}: not a hash ({e})")))
    }

    /// A height that fits in 32 bits.
    pub fn height(&self, i: usize, name: &str) -> Result<u32, RpcError> {
        let h = self.u64(i, name)?;
        u32::try_from(h).map_err(|_| RpcError::new(-8, format!("param {name}: height {h} out of range")))
    }
}

/// Serializes a view (never fails for our plain structs).
pub fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(RpcError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_and_params_name_what_is_wrong() {
        let ok = parse_call(json!({"jsonrpc": "2.0", "id": 7, "method": "getblockhash", "params": [3]})).expect("ok");
        assert_eq!(ok.params.height(0, "height"), Ok(3));
        let named =
            parse_call(json!({"jsonrpc": "2.0", "id": "a", "method": "m", "params": {"height": "x"}})).expect("ok");
        let e = named.params.height(0, "height").expect_err("string");
        assert_eq!(e.code, -32602);
        assert!(e.message.contains("height"));
        for bad in [
            json!([1]),
            json!({"id": 1, "method": "m"}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "m", "params": 5}),
            json!({"jsonrpc": "2.0", "id": [1], "method": "m"}),
        ] {
            let (_, e) = parse_call(bad.clone()).expect_err("invalid");
            assert_eq!(e.code, -32600, "{bad}");
        }
        let p = Params::from_positional(vec![json!(1), json!(2)]);
        assert_eq!(p.expect_at_most(&["a"]).map_err(|e| e.code), Err(-32602));
        let p = Params::from_positional(vec![json!(u64::MAX)]);
        assert_eq!(p.height(0, "height").map_err(|e| e.code), Err(-8));
        assert_eq!(p.hash(0, "blockhash").map_err(|e| e.code), Err(-32602));
    }
}
