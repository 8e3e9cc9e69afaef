//! The devnet page `lode devnet up` serves (its URL is printed under the node table): the
//! whole devnet in one picture — nodes and their links, heights, tips, miners, a block tree
//! of the last heights showing which node sits on which tip, the partition's groups, a log
//! of reorganisations — and buttons (mine N blocks on regtest, start/stop a node's miner,
//! send from one node's wallet to another).
//!
//! Live, not polled: the supervisor follows every node's event stream ([`super::follow`]):
//! a node's tip or reorg event refreshes the view at once and a reorg is logged from the
//! event itself (so one that starts and ends between two reads is still seen); the page
//! gets each new view pushed on `/api/events` (server-sent events). The nodes' slower
//! figures (hash rate, balances, peers) are read every [`POLL`].
//!
//! The supervisor reaches the nodes only over their HTTP port, like every client: public
//! reads, and for the buttons the node's cookie, which stays here — the page talks only to
//! this server, on 127.0.0.1, and never sees a token. Actions are accepted only as JSON from
//! this origin (a page elsewhere can neither send `application/json` cross-origin without a
//! preflight we never answer, nor pass the Host and Origin checks).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::error::DevnetError;
use super::file::{DevnetFile, DevnetNode};
use super::follow::{self, NodeEvent};
use super::probe::{self, admin_client, public_client, PROBE_TIMEOUT};
use crate::common::web;

/// How often the nodes are asked for their state when none of them announced anything
/// (tips and reorgs refresh at once).
pub const POLL: Duration = Duration::from_secs(5);
/// Events arriving within this of each other cost one refresh.
const SETTLE: Duration = Duration::from_millis(100);
/// Blocks per node kept for the tree.
const TREE_DEPTH: u32 = 24;
/// Reorganisations kept in the log.
const MAX_REORGS: usize = 50;
/// Most blocks one "mine" click asks for.
const MAX_MINE: u64 = 100;

/// A node as the page draws it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeView {
    /// `node0`, …
    pub name: String,
    /// Its RPC URL (its own explorer is at `/` there).
    pub rpc: String,
    /// Whether it answered.
    pub up: bool,
    /// Best height.
    pub height: u64,
    /// Best hash.
    pub tip: String,
    /// Whether its miner runs.
    pub mining: bool,
    /// Its miner's hash rate.
    pub hashrate: f64,
    /// Names of the devnet nodes it is connected to.
    pub peers: Vec<String>,
    /// Its wallet's address and spendable balance (base units), read with its cookie.
    pub address: Option<String>,
    /// Spendable balance, base units.
    pub balance: Option<u64>,
    /// Its last best-chain blocks, (height, hash), oldest first.
    pub blocks: Vec<(u64, String)>,
}

/// One reorganisation seen by a node.
#[derive(Clone, Debug, Serialize)]
pub struct ReorgEntry {
    /// Unix time it was seen.
    pub time: u64,
    /// The node.
    pub node: String,
    /// Blocks it replaced.
    pub depth: u64,
    /// Old tip (height, hash).
    pub old: (u64, String),
    /// New tip (height, hash).
    pub new: (u64, String),
}

/// What the page shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DevnetView {
    /// Network name.
    pub network: String,
    /// The nodes, in order.
    pub nodes: Vec<NodeView>,
    /// The partition's groups, if the devnet is partitioned.
    pub groups: Option<Vec<Vec<String>>>,
    /// Reorganisations, newest first.
    pub reorgs: VecDeque<ReorgEntry>,
}

struct Shared {
    file: DevnetFile,
    dir: PathBuf,
    addr: SocketAddr,
    view: Mutex<DevnetView>,
    /// A node announced something: refresh now.
    wake: Notify,
    /// Bumped whenever the view changed (the page's stream waits on it).
    version: watch::Sender<u64>,
    /// Per node: its event stream is open (else reorgs are inferred from two reads).
    streaming: Vec<Arc<AtomicBool>>,
}

impl Shared {
    fn changed(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// A running devnet page.
pub struct Dashboard {
    /// Its URL.
    pub url: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves the page on 127.0.0.1:`port` (or any free port if that one is taken) until the
/// returned [`Dashboard`] is dropped.
pub async fn start(file: DevnetFile, dir: PathBuf, port: u16) -> Result<Dashboard, DevnetError> {
    let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| DevnetError::io(std::path::Path::new("devnet page port"), e))?,
    };
    let addr = listener
        .local_addr()
        .map_err(|e| DevnetError::io(std::path::Path::new("devnet page port"), e))?;
    let streaming: Vec<Arc<AtomicBool>> = file.nodes.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
    let shared = Arc::new(Shared {
        view: Mutex::new(DevnetView {
            network: file.network.clone(),
            ..DevnetView::default()
        }),
        file,
        dir,
        addr,
        wake: Notify::new(),
        version: watch::channel(0).0,
        streaming,
    });
    let mut tasks = vec![tokio::spawn(poll(shared.clone()))];
    for (node, live) in shared.file.nodes.iter().zip(&shared.streaming) {
        let weak = Arc::downgrade(&shared);
        let name = node.name.clone();
        tasks.push(tokio::spawn(follow::follow(node.clone(), live.clone(), move |ev| {
            if let Some(shared) = weak.upgrade() {
                on_node_event(&shared, &name, ev);
            }
        })));
    }
    let router = Router::new()
        .route("/", get(|| async { web::page(web::DEVNET_HTML) }))
        .route(
            "/assets/{name}",
            get(|UrlPath(name): UrlPath<String>| async move { web::asset(web::DEVNET, &name) }),
        )
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/action", post(action))
        .layer(DefaultBodyLimit::max(4096))
        .with_state(shared);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "devnet page stopped");
        }
    });
    tasks.push(server);
    Ok(Dashboard {
        url: format!("http://{addr}/"),
        tasks,
    })
}

fn lock(m: &Mutex<DevnetView>) -> std::sync::MutexGuard<'_, DevnetView> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn poll(shared: Arc<Shared>) {
    let names: HashMap<String, String> = shared
        .file
        .nodes
        .iter()
        .filter_map(|n| n.peer_id().map(|id| (id.to_string(), n.name.clone())))
        .collect();
    loop {
        let views = join_all(shared.file.nodes.iter().map(|n| node_view(n, &names))).await;
        let groups = super::partition::read_partition(&shared.dir)
            .ok()
            .flatten()
            .map(|p| p.groups);
        {
            let mut view = lock(&shared.view);
            let now = unix_now();
            // A node whose stream is open reports its reorgs itself; for one whose stream
            // is down, compare two reads.
            let seen: Vec<ReorgEntry> = view
                .nodes
                .iter()
                .zip(&views)
                .zip(&shared.streaming)
                .filter(|(_, live)| !live.load(Ordering::Relaxed))
                .filter_map(|((old, new), _)| reorg_between(old, new, now))
                .collect();
            for r in seen {
                view.reorgs.push_front(r);
            }
            view.reorgs.truncate(MAX_REORGS);
            let differs = view.nodes.len() != views.len()
                || view.groups != groups
                || serde_json::to_value(&view.nodes).ok() != serde_json::to_value(&views).ok();
            view.nodes = views;
            view.groups = groups;
            drop(view);
            if differs {
                shared.changed();
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shared.wake.notified() => tokio::time::sleep(SETTLE).await,
        }
    }
}

/// A node announced a tip or a reorg (or its stream reopened): log the reorg now, and
/// refresh the view.
fn on_node_event(shared: &Shared, node: &str, ev: NodeEvent) {
    if let NodeEvent::Reorg { depth, old, new } = ev {
        let mut view = lock(&shared.view);
        view.reorgs.push_front(ReorgEntry {
            time: unix_now(),
            node: node.to_string(),
            depth,
            old,
            new,
        });
        view.reorgs.truncate(MAX_REORGS);
        drop(view);
        shared.changed();
    }
    shared.wake.notify_one();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A reorganisation: the old tip's height is still covered by the new blocks, with another
/// hash there.
fn reorg_between(old: &NodeView, new: &NodeView, now: u64) -> Option<ReorgEntry> {
    if !old.up || !new.up || old.tip.is_empty() || old.tip == new.tip {
        return None;
    }
    let now_at: HashMap<u64, &String> = new.blocks.iter().map(|(h, b)| (*h, b)).collect();
    let replaced = old
        .blocks
        .iter()
        .filter(|(h, b)| now_at.get(h).is_some_and(|nb| *nb != b))
        .count() as u64;
    let old_gone = now_at.get(&old.height).is_some_and(|b| **b != old.tip) || new.height < old.height;
    (old_gone && replaced > 0).then(|| ReorgEntry {
        time: now,
        node: new.name.clone(),
        depth: replaced,
        old: (old.height, old.tip.clone()),
        new: (new.height, new.tip.clone()),
    })
}

async fn node_view(node: &DevnetNode, names: &HashMap<String, String>) -> NodeView {
    let mut v = NodeView {
        name: node.name.clone(),
        rpc: node.rpc.clone(),
        ..NodeView::default()
    };
    let client = public_client(node);
    let reads = async {
        let (_, status) = client.get("/api/v1/status").await?;
        let (_, peers) = client.get("/api/v1/peers").await?;
        let (_, series) = client.get(&format!("/api/v1/series/blocks?count={TREE_DEPTH}")).await?;
        Ok::<_, crate::client::ClientError>((status, peers, series))
    };
    let Ok(Ok((status, peers, series))) = tokio::time::timeout(PROBE_TIMEOUT, reads).await else {
        return v;
    };
    v.up = status.get("height").is_some();
    v.height = status.get("height").and_then(Value::as_u64).unwrap_or(0);
    v.tip = status
        .get("tip")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    v.mining = status.get("mining").and_then(Value::as_bool).unwrap_or(false);
    v.hashrate = status.get("hashrate").and_then(Value::as_f64).unwrap_or(0.0);
    let mut linked: Vec<String> = peers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("id").and_then(Value::as_str))
        .filter_map(|id| names.get(id).cloned())
        .collect();
    linked.sort();
    linked.dedup();
    v.peers = linked;
    v.blocks = series
        .get("blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b.get("height")?.as_u64()?, b.get("hash")?.as_str()?.to_string())))
        .collect();
    let full = probe::full(node).await;
    v.address = full.address;
    v.balance = full.balance;
    v
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    let view = lock(&shared.view).clone();
    let mut r = Json(view).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// The view, pushed: a `state` event with the whole view now and after every change.
async fn events(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let rx = shared.version.subscribe();
    let weak = Arc::downgrade(&shared);
    drop(shared);
    let stream = futures::stream::unfold((rx, weak, true), |(mut rx, weak, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        rx.borrow_and_update();
        let shared = weak.upgrade()?;
        let data = serde_json::to_string(&*lock(&shared.view)).unwrap_or_default();
        drop(shared);
        Some((
            Ok::<Event, Infallible>(Event::default().event("state").data(data)),
            (rx, weak, false),
        ))
    });
    let mut r = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// A button's request.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// Mine `n` blocks on `node` now (regtest's `generate`).
    Mine {
        /// The node.
        node: String,
        /// Blocks, 1–100.
        n: u64,
    },
    /// Start or stop `node`'s miner (one thread).
    Miner {
        /// The node.
        node: String,
        /// Start (true) or stop.
        on: bool,
    },
    /// Pay `amount` coins from `from`'s wallet to `to`'s.
    Send {
        /// Paying node.
        from: String,
        /// Paid node.
        to: String,
        /// Decimal coins.
        amount: String,
    },
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

/// Only JSON from this page: same Host, same Origin (when the browser sends one).
fn same_origin(headers: &HeaderMap, addr: SocketAddr) -> bool {
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == addr.to_string());
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .is_none_or(|o| o == format!("http://{addr}"));
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    host_ok && origin_ok && json
}

async fn action(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !same_origin(&headers, shared.addr) {
        return refuse(
            StatusCode::FORBIDDEN,
            "actions are taken only from the devnet page itself",
        );
    }
    let action: Action = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not an action: {e}")),
    };
    let node = |name: &str| shared.file.node(name).cloned();
    let result = match action {
        Action::Mine { node: name, n } => {
            let Some(target) = node(&name) else {
                return refuse(StatusCode::BAD_REQUEST, format!("no node {name:?}"));
            };
            if n == 0 || n > MAX_MINE {
                return refuse(StatusCode::BAD_REQUEST, format!("n: must be 1..={MAX_MINE}"));
            }
            call(&target, "generate", json!([n])).await
        }
        Action::Miner { node: name, on } => {
            let Some(target) = node(&name) else {
                return refuse(StatusCode::BAD_REQUEST, format!("no node {name:?}"));
            };
            let params = if on { json!([true, 1]) } else { json!([false]) };
            call(&target, "setgenerate", params).await
        }
        Action::Send { from, to, amount } => {
            let (Some(payer), Some(payee)) = (node(&from), node(&to)) else {
                return refuse(StatusCode::BAD_REQUEST, format!("no node {from:?} or {to:?}"));
            };
            let units = match crate::client::commands::input::amount(&amount) {
                Ok(a) => a.units(),
                Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let address = lock(&shared.view)
                .nodes
                .iter()
                .find(|n| n.name == payee.name)
                .and_then(|n| n.address.clone());
            let Some(address) = address else {
                return refuse(StatusCode::CONFLICT, format!("{to}'s wallet address is not known yet"));
            };
            call(
                &payer,
                "sendtoaddress",
                json!([address, crate::common::coins::to_json(units)]),
            )
            .await
        }
    };
    match result {
        Ok(v) => Json(json!({"ok": true, "result": v})).into_response(),
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e),
    }
}

/// One authenticated call; the cookie is read here and never leaves this process.
async fn call(node: &DevnetNode, method: &str, params: Value) -> Result<Value, String> {
    let client = admin_client(node).map_err(|e| format!("{}: {e}", node.name))?;
    tokio::time::timeout(Duration::from_secs(60), client.call(method, params))
        .await
        .map_err(|_| format!("{}: {method} took longer than 60 s", node.name))?
        .map_err(|e| format!("{}: {e}", node.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(height: u64, blocks: &[(u64, &str)]) -> NodeView {
        NodeView {
            name: "node2".into(),
            up: true,
            height,
            tip: blocks.last().map(|b| b.1.to_string()).unwrap_or_default(),
            blocks: blocks.iter().map(|(h, b)| (*h, b.to_string())).collect(),
            ..NodeView::default()
        }
    }

    #[test]
    fn a_replaced_tip_is_a_reorg_and_growth_is_not() {
        let old = view(3, &[(1, "a"), (2, "b"), (3, "c")]);
        assert!(reorg_between(&old, &view(4, &[(1, "a"), (2, "b"), (3, "c"), (4, "d")]), 0).is_none());
        let r = reorg_between(&old, &view(4, &[(1, "a"), (2, "x"), (3, "y"), (4, "z")]), 7).expect("reorg");
        assert_eq!((r.depth, r.old.0, r.new.0, r.time), (2, 3, 4, 7));
    }

    #[tokio::test]
    async fn a_node_s_reorg_event_is_logged_at_once_and_pushed_to_the_page() {
        let shared = Shared {
            file: DevnetFile::default(),
            dir: PathBuf::new(),
            addr: "127.0.0.1:1".parse().expect("addr"),
            view: Mutex::new(DevnetView::default()),
            wake: Notify::new(),
            version: watch::channel(0).0,
            streaming: Vec::new(),
        };
        let mut page = shared.version.subscribe();
        // A reorg that began and ended between two reads: only the node's event tells.
        on_node_event(
            &shared,
            "node1",
            NodeEvent::Reorg {
                depth: 2,
                old: (12, "c".into()),
                new: (13, "z".into()),
            },
        );
        let view = lock(&shared.view).clone();
        assert_eq!(view.reorgs.len(), 1);
        let r = &view.reorgs[0];
        assert_eq!((r.node.as_str(), r.depth, r.old.0, r.new.0), ("node1", 2, 12, 13));
        assert!(page.has_changed().expect("open"), "the page's stream is woken");
        // And the view is refreshed right away.
        tokio::time::timeout(Duration::from_secs(1), shared.wake.notified())
            .await
            .expect("a refresh is asked for");
        // A tip only asks for a refresh; it logs nothing.
        page.borrow_and_update();
        on_node_event(&shared, "node1", NodeEvent::Tip);
        assert_eq!(lock(&shared.view).reorgs.len(), 1);
        assert!(!page.has_changed().expect("open"));
    }

    #[test]
    fn actions_need_json_from_this_origin() {
        let addr: SocketAddr = "127.0.0.1:18446".parse().expect("addr");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:18446".parse().expect("v"));
        h.insert(header::CONTENT_TYPE, "application/json".parse().expect("v"));
        assert!(same_origin(&h, addr));
        h.insert(header::ORIGIN, "http://evil.example".parse().expect("v"));
        assert!(!same_origin(&h, addr));
        h.insert(header::ORIGIN, "http://127.0.0.1:18446".parse().expect("v"));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().expect("v"));
        assert!(!same_origin(&h, addr));
        h.insert(header::CONTENT_TYPE, "application/json".parse().expect("v"));
        h.insert(header::HOST, "rebound.example:18446".parse().expect("v"));
        assert!(!same_origin(&h, addr));
    }
}
