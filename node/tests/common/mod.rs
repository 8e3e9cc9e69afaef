//! Harness for end-to-end node tests: in-process regtest nodes on 127.0.0.1 with OS-chosen
//! ports, real sled in temp dirs, blocks built on a node's tip, and polling with deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use lode_chain::build::{assemble, coinbase, grind, pay};
use lode_chain::{Block, ChainParams, Hash256, Height, PubkeyHash};
use lode_node::network::gossip::TopicKind;
use lode_node::{NodeConfig, NodeHandle};

/// Starts a regtest node in `dir` dialling `peers`.
pub async fn start(dir: &Path, peers: Vec<Multiaddr>) -> NodeHandle {
    let mut config = NodeConfig::local(ChainParams::regtest(), dir.to_path_buf());
    config.network.peers = peers;
    lode_node::start(config).await.expect("node starts")
}

/// Starts a regtest node with a config tweak.
pub async fn start_with(dir: &Path, tweak: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let mut config = NodeConfig::local(ChainParams::regtest(), dir.to_path_buf());
    tweak(&mut config);
    lode_node::start(config).await.expect("node starts")
}

/// The address to dial `node` at.
pub fn addr(node: &NodeHandle) -> Multiaddr {
    node.p2p_addrs().into_iter().next().expect("listening")
}

/// A valid block on `node`'s tip; `tag` makes blocks of different branches differ.
pub fn block_on_tip(node: &NodeHandle, tag: u64) -> Block {
    let tip = node.tip();
    block_on(node.params(), tip.hash, tip.height, tip.header.time, tag)
}

/// A valid regtest block on `parent` (at `height`, with time `time`).
pub fn block_on(params: &ChainParams, parent: Hash256, height: Height, time: u32, tag: u64) -> Block {
    let h = Height(height.0 + 1);
    let cb = coinbase(h, tag, b"node test", vec![pay(PubkeyHash([7; 20]), params.subsidy(h))]);
    let mut block = assemble(parent, time + 1, params.pow_limit_bits, vec![cb]);
    assert!(grind(&mut block.header, &params.pow_limit()));
    block
}

/// Mines `n` blocks at `node`, one after the other, each submitted through the handle.
pub async fn mine(node: &NodeHandle, n: usize, tag: u64) {
    for _ in 0..n {
        let block = block_on_tip(node, tag);
        let verdict = node.submit_block(block).await.expect("submit");
        assert!(
            matches!(
                verdict,
                lode_node::chain_task::BlockVerdict::Accepted(lode_chain::AcceptStatus::Connected)
            ),
            "{verdict:?}"
        );
    }
}

/// Polls `cond` every 20 ms until it holds, panicking with `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node's tip is `hash`.
pub async fn wait_tip(nodes: &[&NodeHandle], hash: Hash256, timeout: Duration) {
    wait_for("all nodes at the same tip", timeout, || async {
        nodes.iter().all(|n| n.tip().hash == hash)
    })
    .await;
}

/// Waits until `node` has at least `n` ready peers.
pub async fn wait_peers(node: &NodeHandle, n: usize, timeout: Duration) {
    wait_for(&format!("{n} peers"), timeout, || async {
        node.peers().await.map(|p| p.len() >= n).unwrap_or(false)
    })
    .await;
}

/// A hostile peer dialling `target`: one of our nodes that may publish messages larger than
/// the network allows (raw bytes through [`publish_until_sent`]).
pub async fn hostile(dir: &Path, target: &NodeHandle) -> NodeHandle {
    let target = addr(target);
    start_with(dir, |c: &mut NodeConfig| {
        c.network.peers = vec![target];
        c.network.gossip_max_transmit_override = Some(8 << 20);
    })
    .await
}

/// Publishes raw bytes from `node`, retrying for a minute until a peer has subscribed.
pub async fn publish_until_sent(node: &NodeHandle, topic: TopicKind, bytes: Vec<u8>) {
    wait_for("a subscribed peer to publish to", Duration::from_secs(60), || {
        let bytes = bytes.clone();
        async move { matches!(node.publish_raw(topic, bytes).await, Ok(Ok(()))) }
    })
    .await;
}

/// Publishes `bytes(k)` from `from` (k = 0, 1, …: a new message each time) until `at` has
/// banned `from`, a new copy every 3 s, for a minute.
pub async fn publish_until_banned(from: &NodeHandle, at: &NodeHandle, topic: TopicKind, bytes: impl Fn(u8) -> Vec<u8>) {
    let id = from.peer_id();
    let deadline = Instant::now() + Duration::from_secs(60);
    for k in 0u8.. {
        publish_until_sent(from, topic, bytes(k)).await;
        let next = Instant::now() + Duration::from_secs(3);
        while Instant::now() < next {
            if at.is_banned(id).await.unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(Instant::now() < deadline, "timed out after 60s publishing until banned");
    }
}

/// Median and max of durations.
pub fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let median = v.get(v.len() / 2).copied().unwrap_or_default();
    let max = v.last().copied().unwrap_or_default();
    (median, max)
}

/// Installs a test log subscriber (RUST_LOG controls it) once.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
