//! Large cache flushes go through a write-ahead journal in bounded chunks (ADR 0006): the
//! result is the same as one transaction's, and a flush stopped after any chunk — while the
//! journal is written, or while it is applied — reopens to a consistent store at the old
//! flushed tip (journal incomplete) or the new one (journal complete).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{block_on_state, key, matured_spend, Harness};
use lode_chain::build::key_hash;
use lode_chain::store::{AddrEvent, FlushStep, IndexEntry, TxLocation};
use lode_chain::utxo::UtxoEntry;
use lode_chain::{Block, Hash256, Height, OutPoint};

/// Everything readable from the store about the blocks given, in a comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: Hash256,
    best: Vec<Hash256>,
    index: BTreeMap<Hash256, IndexEntry>,
    utxos: BTreeMap<OutPoint, UtxoEntry>,
    addr: Vec<Vec<AddrEvent>>,
    txs: Vec<Option<TxLocation>>,
    undo: Vec<Vec<(OutPoint, UtxoEntry)>>,
}

fn snapshot(h: &Harness, blocks: &[Block]) -> Snapshot {
    let store = h.state.store();
    let best = store.load_best_chain().expect("best chain");
    Snapshot {
        tip: store.tip().expect("tip").expect("some tip"),
        index: store.load_index().expect("index").into_iter().collect(),
        utxos: store.utxo_iter().map(|r| r.expect("utxo")).collect(),
        addr: (1..=3)
            .map(|k| store.address_events(&key_hash(&key(k))).expect("addr"))
            .collect(),
        txs: blocks
            .iter()
            .flat_map(|b| b.txids())
            .map(|t| store.tx_location(&t).expect("txloc"))
            .collect(),
        undo: best[1..].iter().map(|b| store.undo(b).expect("undo")).collect(),
        best,
    }
}

/// Mines `n` blocks on the tip, each (from height 11) spending the coinbase that matured,
/// so the cache holds insertions and deletions in every tree.
fn grow(h: &mut Harness, n: usize) -> Vec<Block> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (txs, fees) = matured_spend(&h.state);
        let b = block_on_state(&h.state, h.state.tip_hash(), txs, fees, 0);
        h.state.accept_block(Arc::new(b.clone())).expect("accept");
        out.push(b);
    }
    out
}

/// Every flush goes through the journal, in chunks of a few writes each.
fn tiny_chunks(h: &Harness) {
    h.state.store().set_flush_chunking(0, 400);
}

#[test]
fn a_journaled_flush_leaves_what_one_transaction_leaves() {
    let mut journaled = Harness::new();
    tiny_chunks(&journaled);
    let mut blocks = grow(&mut journaled, 14);
    journaled.state.flush().expect("first flush");
    blocks.extend(grow(&mut journaled, 16));
    // A short reorganisation in the cache: removals of best-chain, undo and index rows.
    let fork = journaled.state.hash_at(Height(27)).expect("fork");
    let mut parent = fork;
    for tag in 1..=4 {
        let b = block_on_state(&journaled.state, parent, vec![], 0, tag);
        parent = b.hash();
        journaled.state.accept_block(Arc::new(b.clone())).expect("side block");
        blocks.push(b);
    }
    assert_eq!(journaled.state.tip_hash(), parent, "the side branch won");
    let pending = journaled.state.cache_stats();
    assert!(pending.entries > 100, "a flush of many chunks: {pending:?}");
    journaled.state.flush().expect("journaled flush");
    assert_eq!(journaled.state.cache_stats().entries, 0);
    assert_eq!(journaled.state.store().journal_len(), 0, "journal removed");

    let mut single = Harness::new();
    single.state.store().set_flush_chunking(usize::MAX, 400);
    for (i, b) in blocks.iter().enumerate() {
        single.state.accept_block(Arc::new(b.clone())).expect("accept");
        if i == 13 {
            single.state.flush().expect("first flush");
        }
    }
    single.state.flush().expect("one-transaction flush");

    // Read back from sled alone (the caches are empty), and again after reopening.
    let seen = snapshot(&journaled, &blocks);
    assert_eq!(seen, snapshot(&single, &blocks));
    assert!(seen.txs.iter().any(Option::is_none), "disconnected txs are gone");
    assert!(!seen.addr[1].is_empty(), "key 2 received outputs");
    journaled.reopen();
    single.reopen();
    assert_eq!(journaled.state.cache_stats().blocks, 0, "nothing to connect again");
    assert_eq!(snapshot(&journaled, &blocks), snapshot(&single, &blocks));
    journaled.state.verify().expect("verify");
}

/// Builds a chain, flushes it (the old tip), caches 10 more blocks (the new tip), and stops
/// the flush of those at `step` after `chunks` chunks; then drops the store without another
/// write and reopens it. Returns how many blocks the reopened chain connected again.
fn crash_and_reopen(step: FlushStep, chunks: u32) -> usize {
    let mut h = Harness::new();
    tiny_chunks(&h);
    let mut blocks = grow(&mut h, 14);
    h.state.flush().expect("first flush");
    blocks.extend(grow(&mut h, 10));
    let new_tip = h.state.tip_hash();
    let reference = snapshot(&h, &blocks);
    h.state.store().halt_flush_after(step, chunks);
    let err = h.state.flush().expect_err("the flush stops at the fault");
    assert!(err.to_string().contains("fault-injection"), "{err}");
    assert!(h.state.store().journal_len() > 0, "journal left behind");
    // Dropping the state tries to flush; the halted store refuses, as a dead process would.
    h.reopen();
    assert_eq!(
        h.state.store().journal_len(),
        0,
        "journal completed or discarded at open"
    );
    assert_eq!(h.state.tip_hash(), new_tip, "{step:?} after {chunks}: tip");
    assert_eq!(snapshot(&h, &blocks), reference, "{step:?} after {chunks}: state");
    let report = h.state.verify().expect("verify after reopen");
    assert_eq!(report.blocks, 25);
    // Blocks the reopened chain had to connect again: the flushed tip was the old one if
    // all 10 are, the new one if none are.
    h.state.cache_stats().blocks as usize
}

#[test]
fn a_flush_stopped_while_writing_the_journal_reopens_at_the_old_tip() {
    for chunks in [1, 2, 7] {
        assert_eq!(
            crash_and_reopen(FlushStep::Journal, chunks),
            10,
            "journal stopped after {chunks} chunks: the 10 cached blocks are connected again"
        );
    }
}

#[test]
fn a_flush_stopped_while_applying_the_journal_completes_at_open() {
    // 0: marker written, nothing applied; u32::MAX: everything applied, journal not removed.
    for chunks in [0, 1, 5, u32::MAX] {
        assert_eq!(
            crash_and_reopen(FlushStep::Apply, chunks),
            0,
            "applying stopped after {chunks} chunks: open finishes the flush"
        );
    }
}
