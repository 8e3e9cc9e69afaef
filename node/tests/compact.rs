//! Compact block announcement end to end: real libp2p on 127.0.0.1, real sled, regtest.
//! A announces, B rebuilds; B's status polling is slowed so a block can only reach it
//! through the compact path under test, never through sync first.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, spend};
use lode_chain::{Amount, Block, ChainParams, Height, OutPoint, Transaction};
use lode_node::chain_task::{Origin, TxVerdict};
use lode_node::network::compact::{CompactBlock, CompactCounts, ShortIdKey};
use lode_node::network::gossip::TopicKind;
use lode_node::NodeHandle;

const T: Duration = Duration::from_secs(60);
const FEE: u64 = 10_000;

/// Two connected nodes and a key owning `coinbases` mature coinbase outputs.
struct Pair {
    a: NodeHandle,
    b: NodeHandle,
    key: ed25519_dalek::SigningKey,
    coins: Vec<Transaction>,
    params: ChainParams,
    _dirs: Vec<tempfile::TempDir>,
}

impl Pair {
    async fn new(coinbases: usize) -> Pair {
        init_logs();
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let slow = |c: &mut lode_node::NodeConfig| c.network.status_interval = Duration::from_secs(3600);
        let a = start_with(dirs[0].path(), slow).await;
        let a_addr = addr(&a);
        let b = start_with(dirs[1].path(), |c| {
            slow(c);
            c.network.peers = vec![a_addr];
        })
        .await;
        wait_peers(&a, 1, T).await;
        wait_peers(&b, 1, T).await;
        let mut pair = Pair {
            a,
            b,
            key: ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
            coins: Vec::new(),
            params: ChainParams::regtest(),
            _dirs: dirs,
        };
        for _ in 0..coinbases {
            let block = pair.block(Vec::new());
            pair.coins.push(block.transactions[0].clone());
            pair.a.submit_block(block).await.expect("submit");
        }
        // Regtest maturity is 10.
        mine(&pair.a, 11, 1).await;
        wait_tip(&[&pair.a, &pair.b], pair.a.tip().hash, T).await;
        pair
    }

    /// A block on A's tip with `txs`, its coinbase paying `key` the subsidy and fees.
    fn block(&self, txs: Vec<Transaction>) -> Block {
        let tip = self.a.tip();
        let h = Height(tip.height.0 + 1);
        let value = Amount(self.params.subsidy(h).0 + FEE * txs.len() as u64);
        let mut all = vec![coinbase(h, 0, b"compact test", vec![pay(key_hash(&self.key), value)])];
        all.extend(txs);
        let mut blk = assemble(tip.hash, tip.header.time + 1, self.params.pow_limit_bits, all);
        assert!(grind(&mut blk.header, &self.params.pow_limit()));
        blk
    }

    /// A payment spending coinbase `i` (not submitted anywhere).
    fn payment(&self, i: usize) -> Transaction {
        let coin = &self.coins[i];
        let value = Amount(coin.outputs[0].value.0 - FEE);
        spend(
            &[OutPoint {
                txid: coin.txid(),
                index: 0,
            }],
            vec![pay(lode_chain::PubkeyHash([i as u8; 20]), value)],
            &self.key,
            &self.params.genesis_hash(),
        )
    }

    /// Payments `range` submitted at A, and waited for in B's mempool.
    async fn relay(&self, range: std::ops::Range<usize>) -> Vec<Transaction> {
        let txs: Vec<Transaction> = range.map(|i| self.payment(i)).collect();
        for tx in &txs {
            let v = self.a.submit_tx(tx.clone()).await.expect("submit tx");
            assert!(matches!(v, TxVerdict::Accepted { .. }), "{v:?}");
        }
        let want: Vec<_> = txs.iter().map(Transaction::txid).collect();
        wait_for("the payments in B's mempool", T, || async {
            let have = self.b.mempool_txids().await.unwrap_or_default();
            want.iter().all(|t| have.contains(t))
        })
        .await;
        txs
    }

    async fn counts(node: &NodeHandle) -> CompactCounts {
        node.net().compact_counts().await.expect("counts")
    }

    async fn shutdown(self) {
        self.a.shutdown().await.expect("shutdown");
        self.b.shutdown().await.expect("shutdown");
    }
}

fn delta(after: CompactCounts, before: CompactCounts) -> CompactCounts {
    CompactCounts {
        received: after.received - before.received,
        rebuilt_from_mempool: after.rebuilt_from_mempool - before.rebuilt_from_mempool,
        txn_requests: after.txn_requests - before.txn_requests,
        txs_fetched: after.txs_fetched - before.txs_fetched,
        full_fallbacks: after.full_fallbacks - before.full_fallbacks,
        full_gossip_received: after.full_gossip_received - before.full_gossip_received,
        announced: after.announced - before.announced,
        announced_bytes: after.announced_bytes - before.announced_bytes,
        announced_block_bytes: after.announced_block_bytes - before.announced_block_bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_known_transactions_crosses_without_any_full_block_or_request() {
    let p = Pair::new(6).await;
    let txs = p.relay(0..6).await;
    let (a0, b0) = (Pair::counts(&p.a).await, Pair::counts(&p.b).await);
    let block = p.block(txs);
    let hash = block.hash();
    p.a.submit_block(block).await.expect("submit");
    wait_tip(&[&p.b], hash, T).await;

    let (a1, b1) = (Pair::counts(&p.a).await, Pair::counts(&p.b).await);
    let (sent, got) = (delta(a1, a0), delta(b1, b0));
    assert_eq!(sent.announced, 1, "{sent:?}");
    assert_eq!(got.received, 1, "{got:?}");
    assert_eq!(got.rebuilt_from_mempool, 1, "{got:?}");
    assert_eq!(
        (got.txn_requests, got.full_fallbacks, got.full_gossip_received),
        (0, 0, 0),
        "no transaction, block or full gossip fetched: {got:?}"
    );
    assert!(
        sent.announced_bytes * 3 < sent.announced_block_bytes,
        "the compact block is a fraction of the block: {sent:?}"
    );
    wait_for("B's mempool emptied by the block", T, || async {
        p.b.mempool_txids().await.map(|v| v.is_empty()).unwrap_or(false)
    })
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_transactions_are_fetched_with_getblocktxn() {
    let p = Pair::new(5).await;
    let mut txs = p.relay(0..3).await;
    // Two payments nobody has seen: only in the block.
    txs.push(p.payment(3));
    txs.push(p.payment(4));
    let b0 = Pair::counts(&p.b).await;
    let block = p.block(txs);
    let hash = block.hash();
    p.a.submit_block(block).await.expect("submit");
    wait_tip(&[&p.b], hash, T).await;

    let got = delta(Pair::counts(&p.b).await, b0);
    assert_eq!(got.received, 1, "{got:?}");
    assert_eq!(got.rebuilt_from_mempool, 0, "{got:?}");
    assert_eq!((got.txn_requests, got.txs_fetched), (1, 2), "{got:?}");
    assert_eq!((got.full_fallbacks, got.full_gossip_received), (0, 0), "{got:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merkle_mismatch_or_a_short_id_collision_falls_back_to_the_full_block() {
    let p = Pair::new(7).await;
    let relayed = p.relay(0..7).await;

    // A stores the block as a peer's (so announces nothing); the compact block the test
    // publishes from A names relayed[3] (in B's mempool, not in the block) in slot 2.
    let block = p.block(relayed[..3].to_vec());
    let hash = block.hash();
    let stored = p.a.chain().submit_block(Arc::new(block.clone()), Origin::Peer).await;
    assert!(stored.expect("submit").is_stored_valid());
    let mut compact = CompactBlock::from_block(&block, 7);
    compact.short_ids[1] = ShortIdKey::new(&compact.header, compact.nonce).short_id(&relayed[3].txid());
    let b0 = Pair::counts(&p.b).await;
    publish_until_sent(&p.a, TopicKind::Compact, compact.to_bytes()).await;
    wait_tip(&[&p.b], hash, T).await;
    let got = delta(Pair::counts(&p.b).await, b0);
    assert_eq!(
        (got.received, got.full_fallbacks, got.txn_requests),
        (1, 1, 0),
        "{got:?}"
    );

    // Next, a compact block listing one short id twice: only the full block can tell.
    let block = p.block(relayed[3..7].to_vec());
    let hash = block.hash();
    let stored = p.a.chain().submit_block(Arc::new(block.clone()), Origin::Peer).await;
    assert!(stored.expect("submit").is_stored_valid());
    let mut compact = CompactBlock::from_block(&block, 8);
    compact.short_ids[1] = compact.short_ids[0];
    let b0 = Pair::counts(&p.b).await;
    publish_until_sent(&p.a, TopicKind::Compact, compact.to_bytes()).await;
    wait_tip(&[&p.b], hash, T).await;
    let got = delta(Pair::counts(&p.b).await, b0);
    assert_eq!((got.received, got.full_fallbacks), (1, 1), "{got:?}");

    // Neither is A's fault: still connected, not banned.
    assert!(!p.b.is_banned(p.a.peer_id()).await.expect("ask"));
    assert!(p.b.peers().await.expect("peers").contains(&p.a.peer_id()));
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_compact_block_gets_its_sender_banned() {
    let p = Pair::new(0).await;
    // A valid header whose compact block does not prefill the coinbase.
    let mut compact = CompactBlock::from_block(&p.block(Vec::new()), 1);
    compact.prefilled.clear();
    publish_until_sent(&p.a, TopicKind::Compact, compact.to_bytes()).await;
    let a_id = p.a.peer_id();
    wait_for("A banned by B", T, || async {
        p.b.is_banned(a_id).await.unwrap_or(false)
    })
    .await;
    p.shutdown().await;
}

/// Publishes raw bytes from `node`, retrying until a peer has subscribed.
async fn publish_until_sent(node: &NodeHandle, topic: TopicKind, bytes: Vec<u8>) {
    wait_for("a subscribed peer to publish to", T, || {
        let bytes = bytes.clone();
        async move { matches!(node.publish_raw(topic, bytes).await, Ok(Ok(()))) }
    })
    .await;
}
