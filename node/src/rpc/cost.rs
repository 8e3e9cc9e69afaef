//! What a request costs in rate-limit tokens: in proportion to the work it makes the node
//! do (ADR 0021). One token is a lookup answered from memory or one index read; decoding a
//! block, scanning an address's history or listing the mempool costs more, and a JSON-RPC
//! batch costs the sum of its calls. The gate charges a REST route's cost before the
//! handler runs ([`rest`]); the JSON-RPC transport charges a body's cost once it has parsed
//! it ([`rpc_call`]).
//!
//! The figures are deliberately coarse (a table, not a measurement): what matters is that
//! the expensive requests cannot be had at the price of cheap ones.

use serde_json::Value;

/// The cost of the cheapest request.
pub const BASE: u32 = 1;

/// Most tokens one request is charged (a bucket's burst must hold it).
pub const MAX_COST: u32 = 100;

/// A REST request's cost from its path and query (`None` query: the defaults).
pub fn rest(path: &str, query: Option<&str>) -> u32 {
    let param = |name: &str| -> Option<u32> {
        query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.parse::<u32>().ok()).flatten()
        })
    };
    let cost = match path {
        // Each block listed is read and decoded from the store.
        "/api/v1/blocks" => BASE + param("limit").unwrap_or(20).min(super::rest::MAX_PAGE).div_ceil(5),
        // Reads every index row of the address, then a page of its history.
        p if p.starts_with("/api/v1/address/") => {
            5 + param("limit").unwrap_or(25).min(super::rest::MAX_PAGE).div_ceil(10)
        }
        // One block decoded (and its transactions summarised).
        p if p.starts_with("/api/v1/block/") => 3,
        p if p.starts_with("/api/v1/tx/") => 2,
        // Header figures from the index.
        "/api/v1/series/blocks" => {
            BASE + param("count")
                .unwrap_or(100)
                .min(super::series::MAX_SERIES_BLOCKS)
                .div_ceil(100)
        }
        // A walk over the pool.
        "/api/v1/mempool" | "/api/v1/mempool/histogram" => 3,
        "/api/v1/search" => 2,
        // The pool's panel: capped lists of workers and payees.
        "/api/v1/pool" => 3,
        _ => BASE,
    };
    cost.min(MAX_COST)
}

/// A call's param by position or by name, as given.
fn param<'a>(params: Option<&'a Value>, i: usize, name: &str) -> Option<&'a Value> {
    match params? {
        Value::Array(a) => a.get(i),
        Value::Object(o) => o.get(name),
        _ => None,
    }
    .filter(|v| !v.is_null())
}

/// One JSON-RPC call's cost from its method and params (unknown methods cost [`BASE`]:
/// they are refused at once).
pub fn rpc_call(method: &str, params: Option<&Value>) -> u32 {
    let verbose = |i: usize, name: &str| -> u64 {
        match param(params, i, name) {
            Some(Value::Bool(b)) => u64::from(*b),
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        }
    };
    let cost = match method {
        // Verbosity 0: the bytes; 1: decoded with txids; 2: every transaction in full.
        "getblock" => match param(params, 1, "verbosity") {
            None => 4,
            Some(_) => [3, 4, 10][verbose(1, "verbosity").min(2) as usize],
        },
        "getrawtransaction" => 2 + 2 * verbose(1, "verbose").min(1) as u32,
        "getblockheader" | "getmempoolentry" | "sendrawtransaction" => 2,
        "getrawmempool" => {
            if verbose(0, "verbose") > 0 {
                20
            } else {
                5
            }
        }
        "getblockchaininfo" | "getmempoolinfo" | "getmininginfo" | "getpeerinfo" | "getnetworkinfo" => 2,
        "getpoolblock" | "getpoolinfo" | "getstratuminfo" => 2,
        // Each block built and connected by the chain task.
        "generate" | "generatetoaddress" => {
            let n = param(params, 0, "nblocks").and_then(Value::as_u64).unwrap_or(1);
            (2 + n.min(u64::from(MAX_COST))) as u32
        }
        "verifychain" => MAX_COST,
        "listtransactions" | "listunspent" | "getbalances" | "getwalletinfo" => 3,
        _ => BASE,
    };
    cost.clamp(BASE, MAX_COST)
}

/// A parsed JSON-RPC body's cost: one call's, or the sum of a batch's (malformed entries
/// cost [`BASE`]: they are answered with an error without work).
pub fn rpc_body(calls: &[Value]) -> u32 {
    calls
        .iter()
        .map(|v| {
            let method = v.get("method").and_then(Value::as_str).unwrap_or("");
            rpc_call(method, v.get("params"))
        })
        .fold(0u32, u32::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn costs_follow_the_work() {
        assert_eq!(rest("/api/v1/tip", None), 1);
        assert!(rest("/api/v1/blocks", Some("limit=100")) > rest("/api/v1/blocks", Some("limit=5")));
        // An over-large limit (refused by the handler anyway) costs no more than the cap.
        assert_eq!(
            rest("/api/v1/blocks", Some("limit=4000000000")),
            rest("/api/v1/blocks", Some("limit=100"))
        );
        assert!(rest("/api/v1/address/x", Some("limit=100")) > rest("/api/v1/address/x", Some("limit=1")));
        let getblock = |v: Value| rpc_body(&[json!({"method": "getblock", "params": ["00", v]})]);
        assert!(getblock(json!(2)) > getblock(json!(0)));
        assert!(getblock(json!(1)) > getblock(json!(0)));
        assert_eq!(getblock(json!(true)), getblock(json!(1)));
        let one = json!({"method": "getblockcount", "params": []});
        assert_eq!(rpc_body(std::slice::from_ref(&one)), 1);
        let batch: Vec<Value> = std::iter::repeat_n(one, 100).collect();
        assert_eq!(rpc_body(&batch), 100);
        let named = json!({"method": "getblock", "params": {"blockhash": "00", "verbosity": 2}});
        assert_eq!(rpc_body(&[named]), 10);
        assert_eq!(rpc_body(&[json!({"method": "verifychain"})]), MAX_COST);
        assert_eq!(rpc_body(&[json!("not a call")]), BASE);
    }
}
