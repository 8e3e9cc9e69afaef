//! Asking one node how it is: readiness, tip, peers, mempool, hash rate, wallet — through
//! its HTTP port (docs/API.md), every call bounded by a short timeout.

use std::time::Duration;

use serde_json::{json, Value};

use super::file::DevnetNode;
use crate::client::{ClientError, RpcClient};

/// Longest wait for one node's answers before calling it unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node said about its state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    /// `GET /health` answered 200.
    pub ready: bool,
    /// Why not ready (the 503 reason, or the connection error).
    pub reason: Option<String>,
    /// Best height.
    pub height: u64,
    /// Best block hash (display hex).
    pub tip: String,
    /// Peer ids of connected peers.
    pub peers: Vec<String>,
    /// Median round trip to its peers as libp2p ping measured it (ms), if any was measured.
    pub ping_ms: Option<f64>,
    /// Transactions in the mempool.
    pub mempool: u64,
    /// Hashes per second of its own miner.
    pub hashps: f64,
    /// Its wallet's first address (needs the cookie).
    pub address: Option<String>,
    /// Its wallet's spendable balance, base units (needs the cookie).
    pub balance: Option<u64>,
}

/// A public client of `node` (no token).
pub fn public_client(node: &DevnetNode) -> RpcClient {
    RpcClient::new(&node.rpc, None)
}

/// A client of `node` with its current cookie, if the cookie can be read.
pub fn admin_client(node: &DevnetNode) -> Result<RpcClient, ClientError> {
    RpcClient::with_cookie(&node.rpc, &node.cookie)
}

/// Readiness and tip: what start-up waits on. Unreachable nodes come back not ready.
pub async fn readiness(node: &DevnetNode) -> Probe {
    let client = public_client(node);
    let work = async {
        let (status, body) = client.get("/health").await?;
        let info = client.call("getblockchaininfo", json!([])).await?;
        let peers = client.call("getpeerinfo", json!([])).await?;
        Ok::<_, ClientError>((status, body, info, peers))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, work).await {
        Ok(Ok((status, body, info, peers))) => Probe {
            ready: status == 200,
            reason: (status != 200).then(|| {
                body.get("reason")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("health {status}"), str::to_string)
            }),
            height: info.get("blocks").and_then(Value::as_u64).unwrap_or(0),
            tip: str_field(&info, "bestblockhash"),
            peers: peer_ids(&peers),
            ping_ms: median_ping(&peers),
            ..Probe::default()
        },
        Ok(Err(e)) => down(e.to_string()),
        Err(_) => down(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// Everything the status table and line show. Wallet fields stay empty without a cookie.
pub async fn full(node: &DevnetNode) -> Probe {
    let mut probe = readiness(node).await;
    if probe.reason.as_deref().is_some_and(|r| r.starts_with("down: ")) {
        return probe;
    }
    let client = public_client(node);
    let public = async {
        let mempool = client.call("getmempoolinfo", json!([])).await?;
        let mining = client.call("getmininginfo", json!([])).await?;
        Ok::<_, ClientError>((mempool, mining))
    };
    if let Ok(Ok((mempool, mining))) = tokio::time::timeout(PROBE_TIMEOUT, public).await {
        probe.mempool = mempool.get("size").and_then(Value::as_u64).unwrap_or(0);
        probe.hashps = mining.get("hashespersec").and_then(Value::as_f64).unwrap_or(0.0);
    }
    if let Ok(admin) = admin_client(node) {
        if let Ok(Ok(w)) = tokio::time::timeout(PROBE_TIMEOUT, admin.call("getwalletinfo", json!([]))).await {
            probe.address = w.get("lode_first_address").and_then(Value::as_str).map(str::to_string);
            // Core's `balance`: the spendable coins, decimal.
            probe.balance = w
                .get("balance")
                .and_then(|b| crate::common::coins::from_json(b).ok())
                .map(|a| a.0);
        }
    }
    probe
}

fn down(reason: String) -> Probe {
    Probe {
        reason: Some(format!("down: {reason}")),
        ..Probe::default()
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The median of `getpeerinfo`'s measured `ping_ms` over the peers that have one.
fn median_ping(peers: &Value) -> Option<f64> {
    let mut pings: Vec<f64> = peers
        .as_array()?
        .iter()
        .filter_map(|p| p.get("ping_ms").and_then(Value::as_f64))
        .collect();
    if pings.is_empty() {
        return None;
    }
    pings.sort_by(f64::total_cmp);
    pings.get(pings.len() / 2).copied()
}

fn peer_ids(peers: &Value) -> Vec<String> {
    let mut ids: Vec<String> = peers
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

impl Probe {
    /// Whether the node could not be reached at all.
    pub fn is_down(&self) -> bool {
        self.reason.as_deref().is_some_and(|r| r.starts_with("down: "))
    }
}
