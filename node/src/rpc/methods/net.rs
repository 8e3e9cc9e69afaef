//! Network and node methods: `getnetworkinfo`, `getpeerinfo` (public); `addnode`,
//! `disconnectnode`, `setban`, `listbanned`, `verifychain`, `stop` (scope `admin`).

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use serde_json::{json, Value};

use crate::error::NodeError;
use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};

/// Longest ban the RPC sets: a year.
const MAX_BAN_SECS: u64 = 365 * 24 * 3600;

fn peer_param(p: &Params, i: usize, name: &str) -> Result<PeerId, RpcError> {
    let s = p.str(i, name)?;
    s.parse::<PeerId>()
        .map_err(|e| RpcError::new(-8, format!("param {name}: not a peer id ({e})")))
}

/// The version as Core's integer (`0.1.2` → `102`: major·10000 + minor·100 + patch).
fn version_number() -> u64 {
    env!("CARGO_PKG_VERSION")
        .split('.')
        .take(3)
        .map(|part| part.parse::<u64>().unwrap_or(0))
        .fold(0, |acc, n| acc * 100 + n)
}

pub(crate) async fn getnetworkinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let peers = app.api.net().peer_info().await?;
    let inbound = peers.iter().filter(|p| p.inbound).count();
    let relay = app.api.params().min_relay_fee_rate;
    Ok(json!({
        "version": version_number(),
        "subversion": format!("/lode:{}/", env!("CARGO_PKG_VERSION")),
        "networkactive": true,
        "connections": peers.len(),
        "connections_in": inbound,
        "connections_out": peers.len() - inbound,
        "relayfee": crate::common::coins::rate_to_json(relay),
        "warnings": "",
        "lode_version": env!("CARGO_PKG_VERSION"),
        "lode_network": app.api.params().name,
        "lode_peerid": app.api.peer_id().to_string(),
        "lode_p2p_addrs": app.api.p2p_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "lode_uptime": app.api.uptime().as_secs(),
    }))
}

pub(crate) async fn uptime(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    Ok(json!(app.api.uptime().as_secs()))
}

/// Peers as JSON objects (also the REST `/api/v1/peers` body).
pub(crate) async fn peers_json(app: &App) -> Result<Vec<Value>, RpcError> {
    let peers = app.api.net().peer_info().await?;
    Ok(peers
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id.to_string(),
                "addr": p.addr.to_string(),
                "inbound": p.inbound,
                "height": p.height,
                "ping_ms": p.ping.map(|d| d.as_secs_f64() * 1000.0),
            })
        })
        .collect())
}

pub(crate) async fn getpeerinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    Ok(json!(peers_json(app).await?))
}

pub(crate) async fn addnode(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["multiaddr", "command"])?;
    let raw = p.str(0, "multiaddr")?;
    let addr: Multiaddr = raw
        .parse()
        .map_err(|e| RpcError::new(-8, format!("param multiaddr: {raw:?} is not a multiaddr ({e})")))?;
    let net = app.api.net();
    let result = match p.str(1, "command")? {
        "add" => net.add_peer(addr).await,
        "remove" => net.remove_peer(addr).await,
        "onetry" => net.dial(addr).await,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(RpcError::new(
                -8,
                format!("param command: {shown:?} is not add, remove or onetry"),
            ));
        }
    };
    match result {
        Ok(()) => Ok(Value::Null),
        Err(NodeError::Network(e)) => Err(RpcError::new(-23, e)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn disconnectnode(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["peer_id"])?;
    let peer = peer_param(p, 0, "peer_id")?;
    if app.api.net().disconnect(peer).await? {
        Ok(Value::Null)
    } else {
        Err(RpcError::new(-29, "node not found in connected nodes"))
    }
}

pub(crate) async fn setban(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["peer_id", "command", "bantime"])?;
    let peer = peer_param(p, 0, "peer_id")?;
    let secs = p.opt_u64(2, "bantime")?.unwrap_or(3600);
    if secs == 0 || secs > MAX_BAN_SECS {
        return Err(RpcError::new(
            -8,
            format!("param bantime: must be 1..={MAX_BAN_SECS} seconds"),
        ));
    }
    let duration = match p.str(1, "command")? {
        "add" => Some(Duration::from_secs(secs)),
        "remove" => None,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(RpcError::new(
                -8,
                format!("param command: {shown:?} is not add or remove"),
            ));
        }
    };
    let removing = duration.is_none();
    let changed = app.api.net().ban(peer, duration).await?;
    if removing && !changed {
        return Err(RpcError::new(-30, "unban failed: peer was not banned"));
    }
    Ok(Value::Null)
}

pub(crate) async fn listbanned(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let bans = app.api.net().list_banned().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(json!(bans
        .into_iter()
        .map(|(peer, left)| json!({"peer_id": peer.to_string(), "banned_until": now + left}))
        .collect::<Vec<_>>()))
}

pub(crate) async fn verifychain(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let report = app.api.chain().read(|v| v.chain().verify()).await?;
    match report {
        Ok(r) => Ok(json!({"ok": true, "height": app.api.tip().height.0, "blocks": r.blocks,
                           "transactions": r.transactions, "utxos": r.utxos})),
        Err(e) => Ok(json!({"ok": false, "error": e.to_string()})),
    }
}

pub(crate) async fn stop(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    tracing::info!("stop requested through the RPC");
    app.api.request_stop();
    Ok(json!("Lode node stopping"))
}
