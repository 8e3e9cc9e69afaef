//! The multi-host harness: real `lode node` processes, each in its own network namespace
//! ("machine") of a [`Lab`], the links between them shaped like a WAN.
//!
//! The test process reaches every node's RPC over the lab's control cable from the root
//! namespace, which no shaping or partition touches. Each [`Net`] holds a lab slot (see
//! [`lode_node::netlab::slot`]), so tests running at once get their own names and subnet, and
//! a crashed test's leftovers are removed by the next user of its slot. Where namespaces
//! cannot be made (not root, no `ip`), [`Net::new`] prints `SKIP: <reason>` and returns
//! `None`, unless `LODE_REQUIRE_NETNS=1`, where it panics instead.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lode_node::client::http::RpcClient;
use lode_node::netlab::lab::probe;
use lode_node::netlab::slot::Slot;
use lode_node::netlab::{Lab, LabSpec, LinkShape, WanProfile};
use serde_json::Value;

use crate::lode_bin;

/// Every node's libp2p port (each host has its own address).
pub const P2P_PORT: u16 = 4001;
/// Every node's RPC port.
pub const RPC_PORT: u16 = 8332;
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);

/// One node process and its files.
#[derive(Debug)]
pub struct NodeProc {
    child: Option<Child>,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its network (`regtest`, `devnet`).
    pub network: String,
    /// The bootstrap node it was given, if any.
    pub bootstrap: Option<usize>,
}

/// A lab with nodes. Dropping it kills the nodes and removes the lab.
pub struct Net {
    // Field order: nodes die before the lab goes, the lab before the slot is released.
    nodes: Vec<Option<NodeProc>>,
    lab: Lab,
    _slot: Slot,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

/// Why this process cannot run labs, if it cannot; honours `LODE_REQUIRE_NETNS`.
///
/// # Panics
/// When labs cannot run and `LODE_REQUIRE_NETNS=1`.
pub fn skip_reason() -> Option<String> {
    let reason = probe().err()?.to_string();
    assert!(
        std::env::var("LODE_REQUIRE_NETNS").ok().as_deref() != Some("1"),
        "LODE_REQUIRE_NETNS=1 but network namespaces are unavailable: {reason}"
    );
    eprintln!("SKIP: {reason}");
    Some(reason)
}

impl Net {
    /// A lab of `hosts` hosts shaped by `profile` (no nodes yet), or `None` after printing
    /// `SKIP: <reason>` where namespaces are unavailable.
    ///
    /// # Panics
    /// When the lab cannot be built although namespaces work.
    pub fn new(hosts: usize, profile: &WanProfile) -> Option<Net> {
        skip_reason().is_none().then_some(())?;
        let slot = Slot::acquire().expect("lab slot");
        let mut lab = Lab::create(LabSpec {
            prefix: format!("lode-t{}", slot.n),
            subnet: [10, 78, slot.n],
            hosts,
            lode_bin: lode_bin(),
            seed: 7,
        })
        .expect("build the lab");
        lab.shape(&profile.shapes(hosts)).expect("shape the links");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Some(Net {
            nodes: (0..hosts).map(|_| None).collect(),
            lab,
            _slot: slot,
            dir: tempfile::tempdir().expect("tempdir"),
            rt,
        })
    }

    /// The lab (partitions, cables, shapes).
    pub fn lab(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// Bytes all hosts received through their cables so far (kernel counters of the switch
    /// ports: everything on the wire, retransmissions and headers included, and the test's
    /// own RPC requests, which are small).
    pub fn bytes_received(&self) -> u64 {
        (1..=self.lab.hosts())
            .filter_map(|i| self.lab.cable_bytes(i).ok())
            .map(|(_, received)| received)
            .sum()
    }

    /// Reshapes every link.
    ///
    /// # Panics
    /// When shaping fails.
    pub fn reshape(&mut self, shapes: &[LinkShape]) {
        self.lab.shape(shapes).expect("reshape");
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Node `i`'s libp2p address with its peer id.
    pub fn p2p_addr(&self, i: usize) -> String {
        let id = lode_node::client::devnet::keys::ensure_node_key(&self.data_dir(i), u32::try_from(i).unwrap_or(0))
            .expect("node key");
        format!("/ip4/{}/tcp/{P2P_PORT}/p2p/{id}", self.lab.host_ip(i))
    }

    /// Starts node `i` on `network` (its key fixed by its number), bootstrapping from node
    /// `bootstrap` if given, and waits until its RPC answers.
    ///
    /// # Panics
    /// When it cannot start or its RPC does not come up within 60 s.
    pub fn start(&mut self, i: usize, network: &str, bootstrap: Option<usize>) {
        let data_dir = self.data_dir(i);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let _ = self.p2p_addr(i); // writes the key before the first start
        let log = self.dir.path().join(format!("node{i}.log"));
        self.nodes[i - 1] = Some(NodeProc {
            child: None,
            data_dir,
            log,
            network: network.to_string(),
            bootstrap,
        });
        self.spawn(i);
    }

    fn spawn(&mut self, i: usize) {
        let boot = self.node(i).bootstrap.map(|b| self.p2p_addr(b));
        let ip = self.lab.host_ip(i);
        let n = self.node(i);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("log");
        let mut cmd = self.lab.command_in(i, &lode_bin());
        cmd.args(["node", "--network", &n.network, "--no-mdns", "--rpc-rate-limit", "0"])
            .arg("--data-dir")
            .arg(&n.data_dir)
            .args(["--p2p-listen", &format!("/ip4/{ip}/tcp/{P2P_PORT}")])
            .args(["--rpc-listen", &format!("{ip}:{RPC_PORT}")])
            .env("RUST_LOG", "info,libp2p_kad=error,libp2p_gossipsub=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        if let Some(b) = boot {
            cmd.args(["--peer", &b]);
        }
        let child = cmd.spawn().expect("spawn lode node");
        self.nodes[i - 1].as_mut().expect("node").child = Some(child);
        self.wait(&format!("node {i}'s RPC"), Duration::from_secs(60), |net| {
            net.try_status(i).is_some()
        });
    }

    fn node(&self, i: usize) -> &NodeProc {
        self.nodes[i - 1].as_ref().expect("node started")
    }

    /// SIGKILLs node `i` (its data dir and key stay).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].as_mut().and_then(|n| n.child.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again with the same key, data dir and flags.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Node `i`'s RPC base URL.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{RPC_PORT}", self.lab.host_ip(i))
    }

    /// `GET /api/v1/status` of node `i`, if it answers.
    pub fn try_status(&self, i: usize) -> Option<Value> {
        self.get(i, "/api/v1/status")
    }

    /// `GET path` on node `i`'s REST API, if it answers 200.
    pub fn get(&self, i: usize, path: &str) -> Option<Value> {
        let client = RpcClient::new(&self.url(i), None);
        let fut = async { tokio::time::timeout(Duration::from_secs(5), client.get(path)).await };
        match self.rt.block_on(fut) {
            Ok(Ok((200, v))) => Some(v),
            _ => None,
        }
    }

    /// Node `i`'s tip: (height, hash).
    ///
    /// # Panics
    /// When it does not answer.
    pub fn tip(&self, i: usize) -> (u64, String) {
        let s = self.try_status(i).unwrap_or_else(|| panic!("node {i} does not answer"));
        let h = s["height"].as_u64().expect("height");
        let hash = s["tip"].as_str().expect("tip").to_string();
        (h, hash)
    }

    /// Peer ids node `i` is connected to (empty if it does not answer).
    pub fn peers(&self, i: usize) -> Vec<String> {
        self.get(i, "/api/v1/peers")
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect())
            })
            .unwrap_or_default()
    }

    /// Node `i`'s peer id.
    pub fn peer_id(&self, i: usize) -> String {
        self.p2p_addr(i).rsplit('/').next().unwrap_or_default().to_string()
    }

    /// A private JSON-RPC call on node `i` (cookie auth).
    ///
    /// # Panics
    /// When the call fails.
    pub fn rpc(&self, i: usize, method: &str, params: Value) -> Value {
        self.try_rpc(i, method, params)
            .unwrap_or_else(|e| panic!("node {i}: {method}: {e}"))
    }

    /// Like [`Net::rpc`], returning the error.
    pub fn try_rpc(&self, i: usize, method: &str, params: Value) -> Result<Value, String> {
        let cookie = self.node(i).data_dir.join(".cookie");
        let client = RpcClient::with_cookie(&self.url(i), &cookie).map_err(|e| e.to_string())?;
        let fut = async { tokio::time::timeout(Duration::from_secs(60), client.call(method, params)).await };
        match self.rt.block_on(fut) {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 60 s".into()),
        }
    }

    /// Pays a small amount (0.001 coins: Core's decimal coins, well above dust and far below
    /// one coinbase) from node `i`'s wallet to `address`; returns the txid (Core's answer).
    pub fn pay(&self, i: usize, address: &Value) -> Result<String, String> {
        let v = self.try_rpc(i, "sendtoaddress", serde_json::json!([address, 0.001]))?;
        v.as_str().map(str::to_string).ok_or_else(|| format!("no txid in {v}"))
    }

    /// Mines `n` blocks on node `i` (regtest `generate`); returns their hashes.
    pub fn mine(&self, i: usize, n: u64) -> Vec<String> {
        let v = self.rpc(i, "generate", serde_json::json!([n]));
        v.as_array()
            .map(|a| a.iter().filter_map(|h| h.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// Polls `cond` until it holds; panics naming `what` (with every node's log tail) after
    /// `timeout` scaled by `LODE_TIMEOUT_FACTOR` (default 1).
    pub fn wait(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Net) -> bool) -> Duration {
        let factor: f64 = std::env::var("LODE_TIMEOUT_FACTOR")
            .ok()
            .and_then(|f| f.parse().ok())
            .unwrap_or(1.0);
        let timeout = timeout.mul_f64(factor.max(1.0));
        let start = Instant::now();
        while !cond(self) {
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(POLL);
        }
        start.elapsed()
    }

    /// The last lines of every node's log.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (idx, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("--- node {} ({}) ---\n", idx + 1, n.log.display());
                for l in &lines[lines.len().saturating_sub(15)..] {
                    out += l;
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Node `i`'s whole log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.node(i).log).unwrap_or_default()
    }

    /// The test's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        for i in 1..=self.nodes.len() {
            if self.nodes[i - 1].is_some() {
                self.kill(i);
            }
        }
        self.lab.destroy();
    }
}

/// Starts node 1, then nodes 2..=n each knowing only node 1 (Kademlia does the rest).
pub fn start_from_one_bootstrap(net: &mut Net, n: usize) {
    net.start(1, "regtest", None);
    for i in 2..=n {
        net.start(i, "regtest", Some(1));
    }
}

/// Waits until every node of `nodes` is connected to every other.
pub fn wait_full_mesh(net: &Net, nodes: &[usize], timeout: Duration) -> Duration {
    let ids: Vec<(usize, String)> = nodes.iter().map(|&i| (i, net.peer_id(i))).collect();
    net.wait("every node connected to every other", timeout, |net| {
        nodes.iter().all(|&i| {
            let peers: HashSet<String> = net.peers(i).into_iter().collect();
            ids.iter().all(|(j, id)| *j == i || peers.contains(id))
        })
    })
}

/// Waits until every node of `nodes` reports `hash` as its tip.
pub fn wait_same_tip(net: &Net, nodes: &[usize], hash: &str, timeout: Duration) {
    net.wait(&format!("nodes {nodes:?} on tip {hash}"), timeout, |net| {
        nodes
            .iter()
            .all(|&i| net.try_status(i).is_some_and(|s| s["tip"] == hash))
    });
}

/// The `p` quantile (0..=1) of sorted durations (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Mines `blocks` blocks round-robin and returns, per block and receiving node, the time
/// from `generate` returning to the node reporting the block as its tip.
pub fn measure_propagation(net: &Net, nodes: &[usize], blocks: usize, timeout: Duration) -> Vec<Duration> {
    let mut arrivals = Vec::new();
    for b in 0..blocks {
        let miner = nodes[b % nodes.len()];
        let hash = net.mine(miner, 1).pop().expect("a block");
        let start = Instant::now();
        let mut pending: Vec<usize> = nodes.iter().copied().filter(|&i| i != miner).collect();
        while !pending.is_empty() {
            assert!(
                start.elapsed() < timeout,
                "block {hash} did not reach nodes {pending:?} within {timeout:?}\n{}",
                net.log_tails()
            );
            pending.retain(|&i| {
                let arrived = net.try_status(i).is_some_and(|s| s["tip"] == hash.as_str());
                if arrived {
                    arrivals.push(start.elapsed());
                }
                !arrived
            });
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    arrivals.sort();
    arrivals
}

/// Sends up to `n` small payments from node `i`'s wallet to itself; returns how many the
/// node accepted (it stops at the first refusal: out of mature coins).
pub fn fill_mempool(net: &Net, i: usize, n: usize) -> usize {
    let to = net.rpc(i, "getnewaddress", serde_json::json!([]));
    let mut sent = 0;
    for _ in 0..n {
        if net.pay(i, &to).is_err() {
            break;
        }
        sent += 1;
    }
    sent
}
