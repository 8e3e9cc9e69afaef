//! Hostile peers, part two: blocks that break a consensus rule (bad merkle root, a mutated
//! merkle tree, value overflow, an equal-work branch ending in an invalid block), bans by
//! address, the per-address cap, the inbound flood while a configured peer reconnects, and a
//! 2 MB block relayed over real libp2p. The hostile peer is one of our own nodes started
//! with testing overrides (raw gossip, a scripted sync chain), connected over real libp2p on
//! 127.0.0.1. Each test asserts what the target does and that the honest network keeps going.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lode_chain::build::{assemble, coinbase, empty_chain, grind, key_hash, pay, seeded_key, spend};
use lode_chain::{Amount, Block, ChainParams, Hash256, Height, OutPoint, Transaction};
use lode_node::network::gossip::TopicKind;
use lode_node::NodeHandle;

const T: Duration = Duration::from_secs(60);

async fn stored(node: &NodeHandle, hash: Hash256) -> bool {
    node.chain()
        .read(move |v| v.chain().entry(&hash).is_some())
        .await
        .expect("read")
}

async fn wait_banned(node: &NodeHandle, who: &NodeHandle) {
    let id = who.peer_id();
    wait_for("the hostile peer to be banned", T, || async {
        node.is_banned(id).await.unwrap_or(false)
    })
    .await;
}

/// An honest pair: B dials A. Returns (A, B) once B follows A's tip of `chain` blocks paying
/// to the test key.
async fn honest_pair(dirs: &[tempfile::TempDir], chain: &[Block]) -> (NodeHandle, NodeHandle) {
    let a = start(dirs[0].path(), vec![]).await;
    for block in chain {
        let v = a.submit_block(block.clone()).await.expect("submit");
        assert!(v.is_stored_valid(), "{v:?}");
    }
    let b = start(dirs[1].path(), vec![addr(&a)]).await;
    wait_tip(&[&b], a.tip().hash, T).await;
    (a, b)
}

/// `n` blocks from genesis whose coinbases pay the test key (seeded key 1).
fn funded_chain(params: &ChainParams, n: u32) -> Vec<Block> {
    empty_chain(params, n, key_hash(&seeded_key(1)))
}

/// The coinbase output of `block`.
fn coinbase_out(block: &Block) -> OutPoint {
    OutPoint {
        txid: block.transactions[0].txid(),
        index: 0,
    }
}

/// A block on `parent` (at height `height`) with these transactions after a coinbase.
fn block_with(params: &ChainParams, parent: &Block, height: u32, txs: Vec<Transaction>, tag: u64) -> Block {
    let cb = coinbase(
        Height(height),
        tag,
        b"hostile test",
        vec![pay(key_hash(&seeded_key(2)), params.subsidy(Height(height)))],
    );
    let mut all = vec![cb];
    all.extend(txs);
    let mut b = assemble(parent.hash(), parent.header.time + 1, params.pow_limit_bits, all);
    assert!(grind(&mut b.header, &params.pow_limit()));
    b
}

/// The honest network keeps going: A mines, B follows.
/// Honest A and B (B dialling A) at the tip of a funded chain of `blocks` blocks, and a
/// hostile H dialling A, all at that tip.
struct Scene {
    _dirs: Vec<tempfile::TempDir>,
    params: ChainParams,
    chain: Vec<Block>,
    a: NodeHandle,
    b: NodeHandle,
    h: NodeHandle,
    tip: Hash256,
}

async fn scene(blocks: u32) -> Scene {
    init_logs();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let params = ChainParams::regtest();
    let chain = funded_chain(&params, blocks);
    let (a, b) = honest_pair(&dirs, &chain).await;
    let h = hostile(dirs[2].path(), &a).await;
    wait_tip(&[&h], a.tip().hash, T).await;
    let tip = a.tip().hash;
    Scene {
        _dirs: dirs,
        params,
        chain,
        a,
        b,
        h,
        tip,
    }
}

/// The honest pair keeps going after the attack; then every node stops.
async fn finish(a: NodeHandle, b: NodeHandle, h: NodeHandle) {
    keeps_going(&a, &b).await;
    for n in [a, b, h] {
        n.shutdown().await.expect("shutdown");
    }
}

async fn keeps_going(a: &NodeHandle, b: &NodeHandle) {
    mine(a, 2, 99).await;
    wait_tip(&[b], a.tip().hash, T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_a_bad_merkle_root_is_refused_unstored_and_its_sender_banned() {
    let Scene {
        _dirs,
        params,
        a,
        b,
        h,
        tip,
        ..
    } = scene(3).await;

    // A header committing to a root no body has, with valid proof of work.
    let mut bad = block_on_tip(&a, 5);
    bad.header.merkle_root = Hash256([0xab; 32]);
    assert!(grind(&mut bad.header, &params.pow_limit()));
    publish_until_sent(&h, TopicKind::Blocks, bad.to_bytes()).await;
    wait_banned(&a, &h).await;
    assert_eq!(a.tip().hash, tip, "the bad block moved the tip");
    assert!(!stored(&a, bad.hash()).await, "the bad block was stored");
    assert!(!stored(&b, bad.hash()).await, "the bad block was relayed");
    finish(a, b, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutated_block_does_not_poison_the_honest_block_with_the_same_hash() {
    let Scene {
        _dirs,
        params,
        chain,
        a,
        b,
        h,
        tip,
    } = scene(12).await;

    // Three transactions (coinbase, t1, t2): the tree pairs t2 with itself. Repeating t2
    // gives the same root and so the same header hash (CVE-2012-2459).
    let key = seeded_key(1);
    let genesis = params.genesis_hash();
    let to = key_hash(&seeded_key(3));
    let t1 = spend(
        &[coinbase_out(&chain[0])],
        vec![pay(to, Amount::coins(49))],
        &key,
        &genesis,
    );
    let t2 = spend(
        &[coinbase_out(&chain[1])],
        vec![pay(to, Amount::coins(49))],
        &key,
        &genesis,
    );
    let honest = block_with(&params, &chain[11], 13, vec![t1, t2.clone()], 1);
    let mut mutated = honest.clone();
    mutated.transactions.push(t2);
    assert_eq!(mutated.hash(), honest.hash(), "same header");
    assert_ne!(mutated.to_bytes(), honest.to_bytes());

    publish_until_sent(&h, TopicKind::Blocks, mutated.to_bytes()).await;
    wait_banned(&a, &h).await;
    assert_eq!(a.tip().hash, tip, "the mutated block moved the tip");
    // The honest block with that hash still gets in, by gossip from B.
    let v = b.submit_block(honest.clone()).await.expect("submit");
    assert!(v.is_stored_valid(), "{v:?}");
    wait_tip(&[&a], honest.hash(), T).await;
    finish(a, b, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_outputs_overflow_is_refused_before_it_is_stored() {
    let Scene {
        _dirs,
        params,
        chain,
        a,
        b,
        h,
        tip,
    } = scene(12).await;

    // CVE-2010-5139: two outputs of 2^63 each, whose sum wraps to zero in 64 bits and so
    // would pass "outputs ≤ inputs" with wrapping arithmetic.
    let to = key_hash(&seeded_key(3));
    let half = Amount(1u64 << 63);
    let overflow = spend(
        &[coinbase_out(&chain[0])],
        vec![pay(to, half), pay(to, half)],
        &seeded_key(1),
        &params.genesis_hash(),
    );
    let bad = block_with(&params, &chain[11], 13, vec![overflow], 1);
    publish_until_sent(&h, TopicKind::Blocks, bad.to_bytes()).await;
    wait_banned(&a, &h).await;
    assert_eq!(a.tip().hash, tip, "the overflowing block moved the tip");
    assert!(!stored(&a, bad.hash()).await, "the overflowing block was stored");
    finish(a, b, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_work_branch_ending_in_an_invalid_block_leaves_the_first_seen_tip() {
    init_logs();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let params = ChainParams::regtest();
    let chain = funded_chain(&params, 14);
    let (a, b) = honest_pair(&dirs, &chain).await;
    let first_seen = a.tip().hash;

    // Y13, Y14 fork after block 12: as much work as A's chain. Y15 makes the branch heavier
    // but spends the test key's coinbase with the wrong key: only connecting it tells.
    let y13 = block_with(&params, &chain[11], 13, vec![], 0x13);
    let y14 = block_with(&params, &y13, 14, vec![], 0x14);
    let theft = spend(
        &[coinbase_out(&chain[0])],
        vec![pay(key_hash(&seeded_key(9)), Amount::coins(1))],
        &seeded_key(9),
        &params.genesis_hash(),
    );
    let y15 = block_with(&params, &y14, 15, vec![theft], 0x15);
    let mut script: Vec<Block> = chain[..12].to_vec();
    script.extend([y13.clone(), y14.clone(), y15.clone()]);
    let target = addr(&a);
    let h = start_with(dirs[2].path(), |c| {
        c.network.peers = vec![target];
        c.network.scripted_chain = Some(Arc::new(script));
    })
    .await;
    // A fetches the heavier branch, fails at Y15, and bans the peer that served it.
    wait_banned(&a, &h).await;
    wait_for("A to have judged Y14", T, || async { stored(&a, y14.hash()).await }).await;
    assert_eq!(
        a.tip().hash,
        first_seen,
        "the equal-work branch left by the invalid block took the tip from the one seen first"
    );
    keeps_going(&a, &b).await;
    assert!(a.tip().height.0 > 15);
    for n in [a, b, h] {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_returning_with_a_fresh_id_from_the_same_address_is_refused() {
    init_logs();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    // B is A's configured (outbound) peer; the address rules apply to inbound connections.
    let b = start(dirs[1].path(), vec![]).await;
    let b_addr = addr(&b);
    // Loopback is exempt by default (devnets share 127.0.0.1); here it stands for one
    // remote address.
    let a = start_with(dirs[0].path(), |c| {
        c.network.peers = vec![b_addr];
        c.network.loopback_exempt = false;
    })
    .await;
    wait_peers(&a, 1, T).await;
    let h = hostile(dirs[2].path(), &a).await;
    wait_peers(&a, 2, T).await;
    publish_until_sent(&h, TopicKind::Blocks, b"not a block".to_vec()).await;
    wait_banned(&a, &h).await;
    h.shutdown().await.expect("shutdown");

    // The same attacker with a fresh key, from the same address.
    let before = a.net().gate_stats().await.expect("stats").refused_banned;
    let h2 = hostile(dirs[3].path(), &a).await;
    assert_ne!(h2.peer_id(), a.peer_id());
    wait_for("the fresh id to be refused by address", T, || async {
        a.net().gate_stats().await.expect("stats").refused_banned > before
    })
    .await;
    assert!(
        !a.peers().await.expect("peers").contains(&h2.peer_id()),
        "a fresh id from a banned address got in"
    );
    // The configured peer, reached outbound, is untouched and the chain moves on.
    mine(&a, 2, 1).await;
    wait_tip(&[&b], a.tip().hash, T).await;
    for n in [a, b, h2] {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_no_more_inbound_slots_than_its_cap() {
    init_logs();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let a = start_with(dirs[0].path(), |c| {
        c.network.loopback_exempt = false;
        c.network.inbound_per_address = 2;
    })
    .await;
    let mut others = Vec::new();
    for d in &dirs[1..] {
        others.push(start(d.path(), vec![addr(&a)]).await);
    }
    wait_peers(&a, 2, T).await;
    wait_for("a connection refused for its address", T, || async {
        a.net().gate_stats().await.expect("stats").refused_address_full > 0
    })
    .await;
    let n = a.peers().await.expect("peers").len();
    assert_eq!(n, 2, "{n} peers from one address");
    for n in others {
        n.shutdown().await.expect("shutdown");
    }
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_peer_reconnects_through_an_inbound_flood() {
    init_logs();
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let p = start(dirs[1].path(), vec![]).await;
    let p_addr = addr(&p);
    let p_listen = p.listen_addrs()[0].clone();
    // Four connections, two of which are kept for peers A dials.
    let a = start_with(dirs[0].path(), |c| {
        c.network.max_connections = 4;
        c.network.peers = vec![p_addr];
    })
    .await;
    wait_for("the configured peer", T, || async {
        a.peers().await.unwrap_or_default().contains(&p.peer_id())
    })
    .await;
    // The configured peer drops; an inbound flood takes every inbound slot meanwhile.
    p.shutdown().await.expect("shutdown");
    let mut flood = Vec::new();
    for d in &dirs[2..] {
        flood.push(start(d.path(), vec![addr(&a)]).await);
    }
    wait_peers(&a, 2, T).await;
    // It comes back on the same address (same key, same data dir) and gets in.
    let p = start_with(dirs[1].path(), |c| c.network.listen = vec![p_listen]).await;
    mine(&p, 3, 7).await;
    wait_for("the configured peer to reconnect", T, || async {
        a.peers().await.unwrap_or_default().contains(&p.peer_id())
    })
    .await;
    wait_tip(&[&a], p.tip().hash, T).await;
    let n = a.peers().await.expect("peers").len();
    assert!(n <= 4, "{n} peers past the limit");
    for n in flood {
        n.shutdown().await.expect("shutdown");
    }
    for n in [a, p] {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2mb_block_is_relayed_and_the_connection_kept() {
    init_logs();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let params = ChainParams::regtest();
    let chain = funded_chain(&params, 12);
    // No periodic status polls: gossip alone must carry the block.
    let a = start_with(dirs[0].path(), |c| {
        c.network.status_interval = Duration::from_secs(3600)
    })
    .await;
    for block in &chain {
        assert!(a.submit_block(block.clone()).await.expect("submit").is_stored_valid());
    }
    let a_addr = addr(&a);
    let b = start_with(dirs[1].path(), |c| {
        c.network.peers = vec![a_addr];
        c.network.status_interval = Duration::from_secs(3600);
    })
    .await;
    wait_tip(&[&b], a.tip().hash, T).await;

    // One coinbase split in 20, then 19 transactions of ~100 KB each.
    let key = seeded_key(1);
    let genesis = params.genesis_hash();
    let me = key_hash(&key);
    let split = spend(
        &[coinbase_out(&chain[0])],
        (0..20).map(|_| pay(me, Amount::coins(2))).collect(),
        &key,
        &genesis,
    );
    let mut txs = vec![split.clone()];
    for i in 0..19u32 {
        let mut outputs = Vec::new();
        let mut tx = spend(
            &[OutPoint {
                txid: split.txid(),
                index: i,
            }],
            outputs.clone(),
            &key,
            &genesis,
        );
        while lode_chain::encoding::encode(&tx).len() + 4_000 < params.max_tx_size {
            outputs.extend((0..100).map(|_| pay(me, Amount(1_000))));
            tx = spend(
                &[OutPoint {
                    txid: split.txid(),
                    index: i,
                }],
                outputs.clone(),
                &key,
                &genesis,
            );
        }
        txs.push(tx);
    }
    let big = block_with(&params, &chain[11], 13, txs, 1);
    let size = big.size();
    assert!(size > 1_800_000 && size <= params.max_block_size, "{size} bytes");
    assert!(a.submit_block(big.clone()).await.expect("submit").is_stored_valid());
    wait_tip(&[&b], big.hash(), T).await;
    assert!(
        b.peers().await.expect("peers").contains(&a.peer_id()),
        "connection lost"
    );
    assert!(!b.is_banned(a.peer_id()).await.expect("banned"));
    for n in [a, b] {
        n.shutdown().await.expect("shutdown");
    }
}
