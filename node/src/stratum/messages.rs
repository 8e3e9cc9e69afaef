//! Stratum v1 messages: one JSON object per line. Requests are parsed into a small typed
//! shape; replies and notifications are built here so every one has the same form.

use serde_json::{json, Value};

/// Stratum's error codes (public-pool, NOMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 20: anything else (malformed, bad ntime, bad version, unknown method).
    Other = 20,
    /// 21: stale share or job not found.
    Stale = 21,
    /// 22: duplicate share.
    Duplicate = 22,
    /// 23: share above the target.
    LowDifficulty = 23,
    /// 24: worker not authorized.
    Unauthorized = 24,
    /// 25: not subscribed.
    NotSubscribed = 25,
}

/// A request from a miner.
#[derive(Debug)]
pub struct Request {
    /// Echoed in the reply (miners reuse ids; never assumed unique).
    pub id: Value,
    /// The method.
    pub method: String,
    /// Its parameters.
    pub params: Vec<Value>,
}

/// Parses one line. `Err` carries a one-line reason.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .ok_or("no method")?
        .to_string();
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("params is not an array".into()),
    };
    Ok(Request {
        id: obj.get("id").cloned().unwrap_or(Value::Null),
        method,
        params,
    })
}

/// A successful reply.
pub fn reply(id: &Value, result: Value) -> String {
    json!({"id": id, "result": result, "error": null}).to_string()
}

/// An error reply: `[code, message, null]`.
pub fn error(id: &Value, code: ErrorCode, message: &str) -> String {
    json!({"id": id, "result": null, "error": [code as i64, message, null]}).to_string()
}

/// A refused share: `result: false` with the error (what cpuminer expects).
pub fn refused(id: &Value, code: ErrorCode, message: &str) -> String {
    json!({"id": id, "result": false, "error": [code as i64, message, null]}).to_string()
}

/// A notification.
pub fn notification(method: &str, params: Value) -> String {
    json!({"id": null, "method": method, "params": params}).to_string()
}

/// Parameter `i` as a string.
pub fn str_param<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, String> {
    params
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("param {i} ({name}) must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_replies_have_the_stratum_shape() {
        let r = parse_request(
            r#"{"id": 4, "method": "mining.submit", "params": ["u","1","00000000","6b0340a2","79c90b00"]}"#,
        )
        .expect("parses");
        assert_eq!(r.method, "mining.submit");
        assert_eq!(str_param(&r.params, 4, "nonce"), Ok("79c90b00"));
        let v: Value =
            serde_json::from_str(&refused(&r.id, ErrorCode::LowDifficulty, "Low difficulty share")).expect("json");
        assert_eq!(
            v,
            json!({"id": 4, "result": false, "error": [23, "Low difficulty share", null]})
        );
        assert!(parse_request("[1,2]").is_err());
        assert!(parse_request(r#"{"id":1,"method":"x","params":{}}"#).is_err());
    }
}
