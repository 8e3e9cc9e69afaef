//! Block propagation on loopback, run on demand:
//! `cargo test -p lode-node --release --test propagation -- --ignored --nocapture`.
//!
//! Time from "block submitted at the first node" to "tip at the last node", measured with
//! the tip watch channel (no polling interval in the figure), over 100 blocks, for 3 nodes
//! and 8 nodes in a line (the worst topology: every hop is a relay).

mod common;

use std::time::{Duration, Instant};

use common::*;

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
    wait_tip(&nodes.iter().collect::<Vec<_>>(), nodes[0].tip().hash, Duration::from_secs(30)).await;
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
