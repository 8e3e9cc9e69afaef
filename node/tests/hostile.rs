//! Hostile peers: a test peer of our own — a node started with testing overrides that
//! connects over real libp2p on 127.0.0.1 and then misbehaves (publishes raw gossip it never
//! checked, lies in its sync answers). One test per attack; each asserts what the target
//! node does and that the honest network keeps going.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lode_chain::build::{assemble, coinbase, grind, pay, spend};
use lode_chain::{Amount, Block, ChainParams, Hash256, Height, OutPoint, PubkeyHash};
use lode_node::network::gossip::TopicKind;
use lode_node::{NodeConfig, NodeHandle};

const T: Duration = Duration::from_secs(60);

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += if meta.is_dir() {
                dir_size(&entry.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

async fn side_headers(node: &NodeHandle) -> usize {
    node.chain()
        .read(|v| v.chain().side_header_count())
        .await
        .expect("read")
}

/// A side block at height 1 on genesis with ≈2 KB of junk (a spend of an output that does
/// not exist, with 60 outputs: only connecting it would tell).
fn junk_on_genesis(params: &ChainParams, tag: u64) -> Block {
    let genesis = params.genesis_block();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let to = PubkeyHash([9; 20]);
    let junk = spend(
        &[OutPoint {
            txid: Hash256::sha256d(&tag.to_le_bytes()),
            index: 0,
        }],
        (0..60).map(|i| pay(to, Amount(1 + i))).collect(),
        &key,
        &genesis.hash(),
    );
    let cb = coinbase(Height(1), tag, b"junk", vec![pay(to, params.subsidy(Height(1)))]);
    let mut block = assemble(
        genesis.hash(),
        genesis.header.time + 1,
        params.pow_limit_bits,
        vec![cb, junk],
    );
    assert!(grind(&mut block.header, &params.pow_limit()));
    block
}

/// Junk side blocks in the flood test.
const FLOOD: u64 = 1_000;
/// What that flood may add to the target's data dir (stated in BENCHMARKS.md).
const FLOOD_BOUND: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_branch_flood_from_genesis_is_neither_stored_nor_relayed() {
    init_logs();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let b = start(dirs[1].path(), vec![addr(&a)]).await;
    let h = hostile(dirs[2].path(), &a).await;
    wait_peers(&a, 2, T).await;
    mine(&a, 20, 1).await;
    wait_tip(&[&b, &h], a.tip().hash, T).await;
    let tip = a.tip();
    // Let sled's background flush settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = dir_size(dirs[0].path());

    let params = ChainParams::regtest();
    let flood: Vec<Block> = (0..FLOOD).map(|t| junk_on_genesis(&params, t)).collect();
    let junk_bytes: usize = flood.iter().map(Block::size).sum();
    // In batches the chain task's queue holds, each batch judged before the next.
    for (i, chunk) in flood.chunks(50).enumerate() {
        for block in chunk {
            publish_until_sent(&h, TopicKind::Blocks, block.to_bytes()).await;
        }
        let want = (i + 1) * chunk.len();
        wait_for(&format!("{want} side headers judged"), T, || async {
            side_headers(&a).await >= want
        })
        .await;
    }
    assert_eq!(side_headers(&a).await, FLOOD as usize, "each junk block judged once");
    assert_eq!(a.tip().hash, tip.hash);
    for block in flood.iter().step_by(97) {
        let stored = a
            .chain()
            .read({
                let hash = block.hash();
                move |v| v.chain().entry(&hash).is_some()
            })
            .await
            .expect("read");
        assert!(!stored, "junk block {} indexed", block.hash());
    }

    // The honest network keeps going, and B never heard of the junk (not relayed).
    mine(&a, 2, 1).await;
    wait_tip(&[&b], a.tip().hash, T).await;
    assert_eq!(side_headers(&b).await, 0, "the junk was relayed to B");
    let b_tip = b.tip().hash;
    for n in [a, h] {
        n.shutdown().await.expect("shutdown");
    }
    b.shutdown().await.expect("shutdown");
    let grown = dir_size(dirs[0].path()).saturating_sub(before);
    eprintln!(
        "{FLOOD} junk side blocks ({junk_bytes} bytes) grew the target's data dir by {grown} bytes (tip {b_tip})"
    );
    assert!(grown < FLOOD_BOUND, "data dir grew by {grown} bytes");
}

/// A tampered copy of `block`: the same header over another body (a second coinbase-like
/// transaction appended), so its merkle root no longer matches.
fn tampered(block: &Block) -> Block {
    let mut t = block.clone();
    let mut extra = t.transactions[0].clone();
    extra.outputs[0].value = Amount(1);
    t.transactions.push(extra);
    assert_eq!(t.hash(), block.hash(), "same header, same hash");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_body_relayed_first_does_not_silence_the_honest_block() {
    init_logs();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    // No periodic status polls: only gossip can deliver the block in time.
    let quiet = |c: &mut NodeConfig| c.network.status_interval = Duration::from_secs(3600);
    let a = start_with(dirs[0].path(), quiet).await;
    let a_addr = addr(&a);
    let b = start_with(dirs[1].path(), |c| {
        quiet(c);
        c.network.peers = vec![a_addr];
    })
    .await;
    let b_addr = addr(&b);
    let c = start_with(dirs[2].path(), |c| {
        quiet(c);
        c.network.peers = vec![b_addr.clone()];
    })
    .await;
    let c_addr = addr(&c);
    let h = start_with(dirs[3].path(), |cfg| {
        quiet(cfg);
        cfg.network.peers = vec![b_addr, c_addr];
        cfg.network.gossip_max_transmit_override = Some(8 << 20);
    })
    .await;
    wait_peers(&b, 3, T).await;
    wait_peers(&c, 2, T).await;
    mine(&a, 3, 1).await;
    wait_tip(&[&b, &c, &h], a.tip().hash, T).await;

    // The hostile peer relays the next block's real header with a tampered body first.
    let honest = block_on_tip(&a, 5);
    publish_until_sent(&h, TopicKind::Blocks, tampered(&honest).to_bytes()).await;
    for n in [&b, &c] {
        let id = h.peer_id();
        wait_for("the tampering peer to be banned", T, || async {
            n.is_banned(id).await.unwrap_or(false)
        })
        .await;
    }
    // The honest block still reaches every node, by gossip alone.
    let verdict = a.submit_block(honest.clone()).await.expect("submit");
    assert!(verdict.is_stored_valid(), "{verdict:?}");
    wait_tip(&[&a, &b, &c], honest.hash(), T).await;
    for n in [a, b, c, h] {
        n.shutdown().await.expect("shutdown");
    }
}

/// A node with an RPC port (for `/health`).
async fn with_rpc(dir: &Path, peers: Vec<libp2p::Multiaddr>) -> NodeHandle {
    start_with(dir, |c| {
        c.network.peers = peers;
        c.rpc = Some(lode_node::rpc::RpcConfig::local("127.0.0.1:0".parse().expect("addr")));
    })
    .await
}

async fn health(node: &NodeHandle) -> u16 {
    let addr = node.rpc_addr().expect("rpc");
    reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("GET /health")
        .status()
        .as_u16()
}

/// A liar claiming height 1,000,000: it answers status, and headers/blocks requests never
/// (`silent`) or with errors.
async fn liar(dir: &Path, silent: bool) -> (NodeHandle, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let serve = lode_node::network::HostileServe {
        claim_height: 1_000_000,
        silent,
        requests: requests.clone(),
    };
    let node = start_with(dir, |c| c.network.hostile_serve = Some(serve)).await;
    (node, requests)
}

async fn fake_height_claim(silent: bool) {
    init_logs();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let a = start(dirs[0].path(), vec![]).await;
    mine(&a, 30, 1).await;
    let (l, requests) = liar(dirs[1].path(), silent).await;
    // A fresh node that hears of the liar first, then of the honest peer.
    let f = with_rpc(dirs[2].path(), vec![addr(&l), addr(&a)]).await;
    wait_peers(&f, 2, T).await;
    // It syncs from the honest peer, and its progress (what /health, `syncing` and
    // `initialblockdownload` read) never takes the liar's claim as the target.
    let target = a.tip().hash;
    wait_for("the fresh node to sync from the honest peer", T, || async {
        let p = f.progress().await.expect("progress");
        assert!(p.target <= 30, "target {} follows an unproven claim", p.target);
        f.tip().hash == target
    })
    .await;
    assert_eq!(health(&f).await, 200, "synced with the honest peer: ready");
    let progress = f.progress().await.expect("progress");
    assert!(progress.target <= 30, "target {} is the liar's claim", progress.target);
    // And it keeps following the honest chain while the liar keeps lying.
    mine(&a, 2, 1).await;
    wait_tip(&[&f], a.tip().hash, T).await;
    for _ in 0..10 {
        assert_eq!(health(&f).await, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Requests to the liar back off: a handful over these seconds, not thousands.
    let asked = requests.load(Ordering::Relaxed);
    eprintln!("the liar (silent: {silent}) was asked {asked} times");
    assert!(asked >= 1, "the liar was never asked: the test proves nothing");
    assert!(asked <= 10, "the liar was asked {asked} times");
    for n in [a, l, f] {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_claiming_a_great_height_neither_stalls_sync_nor_readiness() {
    fake_height_claim(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erroring_peer_claiming_a_great_height_is_backed_off() {
    fake_height_claim(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_flood_cannot_keep_the_node_from_a_configured_peer() {
    init_logs();
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    // Six connections in all, of which three (at most half) are kept for peers it dials.
    let a = start_with(dirs[0].path(), |c| c.network.max_connections = 6).await;
    let mut flood = Vec::new();
    // As many inbound connections as there are slots in all.
    for d in &dirs[1..7] {
        flood.push(start(d.path(), vec![addr(&a)]).await);
    }
    wait_peers(&a, 3, T).await;
    // The inbound flood holds every inbound slot; now a configured peer is added.
    let p = start(dirs[7].path(), vec![]).await;
    mine(&p, 3, 7).await;
    a.net().add_peer(addr(&p)).await.expect("add peer");
    wait_for("the configured peer to connect", T, || async {
        a.peers().await.unwrap_or_default().contains(&p.peer_id())
    })
    .await;
    // And the node follows it.
    wait_tip(&[&a], p.tip().hash, T).await;
    let n = a.peers().await.expect("peers").len();
    assert!(n <= 6, "{n} peers past the limit");
    for n in flood {
        n.shutdown().await.expect("shutdown");
    }
    for n in [a, p] {
        n.shutdown().await.expect("shutdown");
    }
}
