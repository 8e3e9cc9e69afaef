//! Network benchmarks, run on demand:
//! `cargo test -p lode-node --release --test bench_network -- --ignored --nocapture`.
//!
//! Propagation: time from "block submitted at the first node" to "tip at the last node", measured with
//! the tip watch channel (no polling interval in the figure), over 100 blocks, for 3 nodes
//! and 8 nodes in a line (the worst topology: every hop is a relay).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lode_chain::{ChainParams, ChainState};

async fn run(n: usize, blocks: usize) -> (Duration, Duration, Duration) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let peers = if i == 0 { vec![] } else { vec![addr(&nodes[i - 1])] };
        nodes.push(start(d.path(), peers).await);
    }
    for (i, node) in nodes.iter().enumerate() {
        let want = if i == 0 || i == n - 1 { 1 } else { 2 };
        wait_peers(node, want, Duration::from_secs(30)).await;
    }
    // Let the gossip meshes form (heartbeat 500 ms) and warm up.
    mine(&nodes[0], 5, 1).await;
    wait_tip(
        &nodes.iter().collect::<Vec<_>>(),
        nodes[0].tip().hash,
        Duration::from_secs(30),
    )
    .await;
    let first = &nodes[0];
    let last = &nodes[n - 1];
    let mut samples = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let block = block_on_tip(first, 1);
        let hash = block.hash();
        let mut tip = last.watch_tip();
        let started = Instant::now();
        first.submit_block(block).await.expect("submit");
        tokio::time::timeout(Duration::from_secs(30), tip.wait_for(|t| t.hash == hash))
            .await
            .expect("propagated in time")
            .expect("node running");
        samples.push(started.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    let max = samples[samples.len() - 1];
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
    (median, p99, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run on demand"]
async fn block_propagation_3_and_8_nodes() {
    for n in [3, 8] {
        let (median, p99, max) = run(n, 100).await;
        eprintln!("{n} nodes in a line, 100 blocks: median {median:?}, p99 {p99:?}, max {max:?}");
    }
}

/// Initial sync of 2,000 (coinbase-only) blocks from one peer, next to the chain crate's own
/// connect rate for the same blocks measured in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run on demand"]
async fn initial_sync_2000_blocks_vs_chain_connect_rate() {
    const N: usize = 2000;
    let params = ChainParams::regtest();
    let da = tempfile::tempdir().expect("tempdir");
    let db = tempfile::tempdir().expect("tempdir");
    let chain_dir = da.path().join(lode_node::node::CHAIN_DIR);
    let blocks = {
        let state = ChainState::open(&chain_dir, params.clone()).expect("open");
        let mut blocks = Vec::with_capacity(N);
        let (mut parent, mut height, mut time) = (state.tip_hash(), state.height(), state.tip_entry().header.time);
        for _ in 0..N {
            let b = block_on(&params, parent, height, time, 1);
            parent = b.hash();
            height = lode_chain::Height(height.0 + 1);
            time = b.header.time;
            blocks.push(Arc::new(b));
        }
        blocks
    };
    let connect_rate = {
        let mut state = ChainState::open(&chain_dir, params.clone()).expect("open");
        let started = Instant::now();
        for b in &blocks {
            state.accept_block(b.clone()).expect("accept");
        }
        state.flush().expect("flush");
        N as f64 / started.elapsed().as_secs_f64()
    };
    let a = start(da.path(), vec![]).await;
    assert_eq!(a.tip().height.0 as usize, N);
    let started = Instant::now();
    let b = start(db.path(), vec![addr(&a)]).await;
    let mut tip = b.watch_tip();
    let want = a.tip().hash;
    tokio::time::timeout(Duration::from_secs(120), tip.wait_for(|t| t.hash == want))
        .await
        .expect("synced in time")
        .expect("running");
    let sync_rate = N as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "initial sync of {N} blocks: {sync_rate:.0} blocks/s; chain connect rate {connect_rate:.0} blocks/s; ratio {:.0}%",
        100.0 * sync_rate / connect_rate
    );
    b.shutdown().await.expect("shutdown");
    a.shutdown().await.expect("shutdown");
}

/// Initial sync of blocks of 500 transactions each (`LODE_BENCH_TX_BLOCKS` blocks, default
/// 200) from one peer and from three, next to the chain's own connect rate (cold signature
/// cache) for the same blocks in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run on demand"]
async fn initial_sync_of_500_transaction_blocks_vs_chain_connect_rate() {
    use lode_chain::Block;

    const TXS: usize = 500;
    init_logs();
    let n: usize = std::env::var("LODE_BENCH_TX_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let params = ChainParams::regtest();
    let build_started = Instant::now();
    let blocks: Vec<Arc<Block>> = lode_chain::build::spend_chain(&params, n, TXS, &lode_chain::build::seeded_key(8))
        .into_iter()
        .map(Arc::new)
        .collect();
    eprintln!("built {n} blocks × {TXS} txs in {:?}", build_started.elapsed());

    let da = tempfile::tempdir().expect("tempdir");
    let chain_dir = da.path().join(lode_node::node::CHAIN_DIR);
    let (connect_bps, connect_tps) = {
        let mut state = ChainState::open(&chain_dir, params.clone()).expect("open");
        for b in &blocks[..12] {
            state.accept_block(b.clone()).expect("accept");
        }
        let started = Instant::now();
        for b in &blocks[12..] {
            state.accept_block(b.clone()).expect("accept");
        }
        state.flush().expect("flush");
        let s = started.elapsed().as_secs_f64();
        ((n + 1) as f64 / s, ((n + 1) * TXS) as f64 / s)
    };
    // Three serving nodes with the same chain (copies of the store, each its own node key).
    let extra: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    for d in &extra {
        copy_dir(&chain_dir, &d.path().join(lode_node::node::CHAIN_DIR));
    }
    let a = start(da.path(), vec![]).await;
    let mut servers = vec![addr(&a)];
    let mut others = Vec::new();
    for d in &extra {
        let node = start(d.path(), vec![]).await;
        servers.push(addr(&node));
        others.push(node);
    }
    let want = a.tip().hash;
    let total = blocks.len();
    for peers in [1usize, 3] {
        let db = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let b = start(db.path(), servers[..peers].to_vec()).await;
        let mut tip = b.watch_tip();
        tokio::time::timeout(Duration::from_secs(900), tip.wait_for(|t| t.hash == want))
            .await
            .expect("synced in time")
            .expect("running");
        let s = started.elapsed().as_secs_f64();
        let (sync_bps, sync_tps) = (total as f64 / s, ((n + 1) * TXS) as f64 / s);
        eprintln!(
            "initial sync of {total} blocks ({n} × {TXS} txs) from {peers} peer(s): {sync_bps:.0} blocks/s, \
             {sync_tps:.0} tx/s; chain connect {connect_bps:.0} blocks/s, {connect_tps:.0} tx/s; ratio {:.2}",
            sync_tps / connect_tps
        );
        b.shutdown().await.expect("shutdown");
    }
    for node in others {
        node.shutdown().await.expect("shutdown");
    }
    a.shutdown().await.expect("shutdown");
}

/// Copies a closed sled store (a plain directory tree).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
