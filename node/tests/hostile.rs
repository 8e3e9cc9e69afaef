//! Hostile peers: a test peer of our own — a node started with testing overrides that
//! connects over real libp2p on 127.0.0.1 and then misbehaves (publishes raw gossip it never
//! checked, lies in its sync answers). One test per attack; each asserts what the target
//! node does and that the honest network keeps going.

mod common;

use std::path::Path;
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

/// A hostile peer dialling `target`: it may publish messages larger than the network allows.
async fn hostile(dir: &Path, target: &NodeHandle) -> NodeHandle {
    let target = addr(target);
    start_with(dir, |c: &mut NodeConfig| {
        c.network.peers = vec![target];
        c.network.gossip_max_transmit_override = Some(8 << 20);
    })
    .await
}

/// Publishes raw bytes from `node`, retrying until a peer has subscribed.
async fn publish_until_sent(node: &NodeHandle, topic: TopicKind, bytes: Vec<u8>) {
    wait_for("a subscribed peer to publish to", T, || {
        let bytes = bytes.clone();
        async move { matches!(node.publish_raw(topic, bytes).await, Ok(Ok(()))) }
    })
    .await;
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
