//! The store's write-back cache: every reader sees the connected state before it is flushed,
//! a cached chain ends in exactly the state of a write-through one, reorganisations reach
//! past the last flush, and the budget and interval trigger flushes.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{key, Harness, NOW};
use lode_chain::build::{key_hash, pay, spend};
use lode_chain::store::AddrEvent;
use lode_chain::utxo::UtxoView;
use lode_chain::{Amount, Block, Hash256, Height, OutPoint};

/// Everything a reader can ask the store about a set of addresses and txids.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: Hash256,
    utxos: HashMap<OutPoint, lode_chain::utxo::UtxoEntry>,
    addr: Vec<Vec<AddrEvent>>,
    txs: Vec<Option<lode_chain::store::TxLocation>>,
}

fn snapshot(h: &Harness, txids: &[Hash256]) -> Snapshot {
    let store = h.state.store();
    Snapshot {
        tip: store.tip().expect("tip").expect("some tip"),
        utxos: store.utxo_iter().map(|r| r.expect("utxo")).collect(),
        addr: (1..=3)
            .map(|k| store.address_events(&key_hash(&key(k))).expect("addr"))
            .collect(),
        txs: txids.iter().map(|t| store.tx_location(t).expect("txloc")).collect(),
    }
}

/// Mines `n` blocks on the tip; from height 11 on, each also spends the coinbase that just
/// matured (so blocks create and destroy outputs and touch every index). Returns the blocks.
fn grow(h: &mut Harness, n: usize, tag: u64) -> Vec<Block> {
    let mut out = Vec::new();
    for _ in 0..n {
        let height = h.state.height().0;
        let mut txs = Vec::new();
        let mut fees = Amount::ZERO;
        if height >= 11 {
            let src = h
                .state
                .block(&h.state.hash_at(Height(height - 10)).expect("hash"))
                .expect("read")
                .expect("body");
            let op = OutPoint {
                txid: src.transactions[0].txid(),
                index: 0,
            };
            if h.state.utxo(&op).expect("read").is_some() {
                let v = src.transactions[0].outputs[0].value.0;
                txs.push(spend(
                    &[op],
                    vec![
                        pay(key_hash(&key(2)), Amount(v / 2)),
                        pay(key_hash(&key(3)), Amount(v / 2 - 100)),
                    ],
                    &h.miner_key,
                    &h.genesis(),
                ));
                fees = Amount(100 + v % 2);
            }
        }
        let b = h.block_on(h.state.tip_hash(), txs, fees, 0, tag);
        let status = h.state.accept_block(Arc::new(b.clone())).expect("accept").status;
        assert_eq!(status, lode_chain::AcceptStatus::Connected);
        out.push(b);
    }
    out
}

fn txids(blocks: &[Block]) -> Vec<Hash256> {
    blocks.iter().flat_map(|b| b.txids()).collect()
}

#[test]
fn readers_see_cached_state_same_as_write_through() {
    let mut cached = Harness::new();
    let blocks = grow(&mut cached, 16, 0);
    let stats = cached.state.cache_stats();
    assert!(
        stats.blocks >= 16 && stats.entries > 0,
        "nothing flushed yet: {stats:?}"
    );

    let mut direct = Harness::new();
    direct.state.set_cache_budget(0);
    for b in &blocks {
        direct.state.accept_block(Arc::new(b.clone())).expect("accept");
    }
    assert_eq!(direct.state.cache_stats().entries, 0);

    let ids = txids(&blocks);
    let seen = snapshot(&cached, &ids);
    assert_eq!(seen, snapshot(&direct, &ids));
    assert!(seen.txs.iter().all(Option::is_some));
    assert!(!seen.addr[1].is_empty(), "key 2 received outputs");
    // A spent output is gone for UTXO lookups through the store, as the mempool sees it.
    let spent = blocks[15].transactions[1].inputs[0].prev_out;
    assert_eq!(cached.state.store().utxo(&spent).expect("read"), None);
    assert_eq!(
        cached.state.store().utxo_count().expect("count"),
        direct.state.store().utxo_count().expect("count")
    );
    assert_eq!(
        cached.state.verify().expect("verify"),
        direct.state.verify().expect("verify")
    );

    // Flushed, the same state is in sled.
    cached.state.flush().expect("flush");
    assert_eq!(cached.state.cache_stats().entries, 0);
    assert_eq!(snapshot(&cached, &ids), seen);
}

#[test]
fn reorg_deeper_than_the_cache_reads_undo_from_sled() {
    let mut h = Harness::new();
    // Heights 1..=14 written through to sled, 15..=18 only in the cache.
    h.state.set_cache_budget(0);
    let main = grow(&mut h, 14, 0);
    h.state.set_cache_budget(lode_chain::store::DEFAULT_CACHE_BYTES);
    let main_tail = grow(&mut h, 4, 0);
    assert_eq!(h.state.cache_stats().blocks, 4);

    // A heavier branch from height 8: disconnects 4 cached blocks and 6 flushed ones.
    let fork = h.state.hash_at(Height(8)).expect("fork");
    let mut reference = Harness::new();
    reference.state.set_cache_budget(0);
    for b in &main[..8] {
        reference.state.accept_block(Arc::new(b.clone())).expect("accept");
    }
    let branch = grow(&mut reference, 12, 7);
    assert_eq!(reference.state.hash_at(Height(8)), Some(fork));
    let mut events = Vec::new();
    for b in &branch {
        events.extend(h.state.accept_block(Arc::new(b.clone())).expect("accept").events);
    }
    assert_eq!(h.state.tip_hash(), reference.state.tip_hash());
    let disconnected: usize = events
        .iter()
        .map(|e| match e {
            lode_chain::ChainEvent::Reorg { disconnected, .. } => disconnected.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(disconnected, 10);
    let mut ids = txids(&main);
    ids.extend(txids(&main_tail));
    ids.extend(txids(&branch));
    assert_eq!(snapshot(&h, &ids), snapshot(&reference, &ids));
    h.state.verify().expect("verify after deep reorg");

    // And back again by reopening: the flushed state is the same.
    h.reopen();
    assert_eq!(snapshot(&h, &ids), snapshot(&reference, &ids));
    h.state.verify().expect("verify after reopen");
}

#[test]
fn budget_and_interval_trigger_flushes() {
    let mut h = Harness::new();
    // Any block passes a one-byte budget: flushed after every block.
    h.state.set_cache_budget(1);
    grow(&mut h, 3, 0);
    assert_eq!(h.state.cache_stats().entries, 0);

    h.state.set_cache_budget(lode_chain::store::DEFAULT_CACHE_BYTES);
    h.state.set_flush_interval(30);
    grow(&mut h, 2, 0);
    assert!(h.state.cache_stats().entries > 0);
    assert!(!h.state.flush_if_due(NOW + 29).expect("not due"));
    assert!(h.state.cache_stats().entries > 0);
    assert!(h.state.flush_if_due(NOW + 30).expect("due"));
    assert_eq!(h.state.cache_stats().entries, 0);
    // Nothing pending: nothing to do, even when due.
    assert!(!h.state.flush_if_due(NOW + 100).expect("empty"));
}

#[test]
fn dropping_the_state_flushes_and_reopens_at_the_tip() {
    let mut h = Harness::new();
    grow(&mut h, 14, 0);
    let tip = h.state.tip_hash();
    assert!(h.state.cache_stats().entries > 0);
    h.reopen();
    assert_eq!(h.state.tip_hash(), tip);
    assert_eq!(h.state.cache_stats().entries, 0);
    h.state.verify().expect("verify");
}

#[test]
fn accepting_a_block_flushes_once_the_interval_has_passed() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut h = Harness::new();
    let now = Arc::new(AtomicU64::new(NOW));
    let clock_now = now.clone();
    let clock: lode_chain::state::Clock = Arc::new(move || clock_now.load(Ordering::Relaxed));
    // Reopen on the same directory with the controllable clock (one sled open per path).
    let placeholder = tempfile::tempdir().expect("tempdir");
    let other = lode_chain::ChainState::open_with_clock(placeholder.path(), h.params.clone(), clock.clone())
        .expect("open placeholder");
    drop(std::mem::replace(&mut h.state, other));
    h.state = lode_chain::ChainState::open_with_clock(h.dir.path(), h.params.clone(), clock).expect("reopen");
    h.state.set_flush_interval(60);

    grow(&mut h, 3, 0);
    assert!(h.state.cache_stats().blocks >= 3, "within the interval: cached");
    now.store(NOW + 59, Ordering::Relaxed);
    grow(&mut h, 1, 0);
    assert!(h.state.cache_stats().entries > 0);
    now.store(NOW + 60, Ordering::Relaxed);
    grow(&mut h, 1, 0);
    assert_eq!(h.state.cache_stats().entries, 0, "the block after the interval flushed");
}
