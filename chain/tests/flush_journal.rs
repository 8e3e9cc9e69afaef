//! Large cache flushes go through a write-ahead journal in bounded chunks (ADR 0006): the
//! result is the same as one transaction's, and a flush stopped after any chunk — while the
//! journal is written, or while it is applied — reopens to a consistent store at the old
//! flushed tip (journal incomplete) or the new one (journal complete).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{block_on_state, key, matured_spend, retry_lock, Harness};
use lode_chain::build::key_hash;
use lode_chain::store::{AddrEvent, FlushStep, IndexEntry, TxLocation, JOURNAL_FILE};
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

/// A flush stopped by the fault-injection hook, the store still open (and refusing writes).
struct Stopped {
    h: Harness,
    blocks: Vec<Block>,
    old_tip: Hash256,
    new_tip: Hash256,
    /// The store's contents with the stopped flush's blocks connected.
    reference: Snapshot,
}

/// Builds a chain, flushes it (the old tip), caches 10 more blocks (the new tip), and stops
/// the flush of those at `step` after `chunks` chunks.
fn stopped_flush(step: FlushStep, chunks: u32) -> Stopped {
    let mut h = Harness::new();
    tiny_chunks(&h);
    let mut blocks = grow(&mut h, 14);
    h.state.flush().expect("first flush");
    let old_tip = h.state.tip_hash();
    blocks.extend(grow(&mut h, 10));
    let new_tip = h.state.tip_hash();
    let reference = snapshot(&h, &blocks);
    h.state.store().halt_flush_after(step, chunks);
    let err = h.state.flush().expect_err("the flush stops at the fault");
    assert!(err.to_string().contains("fault-injection"), "{err}");
    assert!(h.state.store().journal_len() > 0, "journal left behind");
    Stopped {
        h,
        blocks,
        old_tip,
        new_tip,
        reference,
    }
}

/// The stopped flush of [`stopped_flush`], with the store dropped without another write and
/// reopened. Returns how many blocks the reopened chain connected again.
fn crash_and_reopen(step: FlushStep, chunks: u32) -> usize {
    let Stopped {
        mut h,
        blocks,
        new_tip,
        reference,
        ..
    } = stopped_flush(step, chunks);
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

/// The journal file's chunk payloads, in order (format in `store/journal.rs`: magic, then
/// records `kind u8 | length u32 BE | payload`, kind 0 a chunk, kind 1 the marker).
fn journal_chunks(bytes: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut at = 8;
    let mut chunks = Vec::new();
    while at + 5 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        if bytes[at] == 1 {
            return (chunks, true);
        }
        chunks.push(bytes[at + 5..at + 5 + len].to_vec());
        at += 5 + len;
    }
    (chunks, false)
}

fn journal_path(h: &Harness) -> std::path::PathBuf {
    h.dir.path().join(JOURNAL_FILE)
}

#[test]
fn a_journal_whose_marker_was_torn_is_a_flush_that_never_happened() {
    // Marker written, nothing applied: cut the file inside the marker, as a kill while it
    // was being written could leave it.
    let Stopped {
        mut h,
        blocks,
        old_tip,
        new_tip,
        reference,
    } = stopped_flush(FlushStep::Apply, 0);
    let path = journal_path(&h);
    let bytes = std::fs::read(&path).expect("journal file");
    assert!(journal_chunks(&bytes).1, "the marker is there");
    std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("cut");
    h.reopen();
    assert!(!path.exists(), "the torn journal is removed at open");
    // The flushed tip was the old one: the 10 blocks after it were connected again.
    assert_eq!(h.state.cache_stats().blocks, 10);
    assert_ne!(old_tip, new_tip);
    assert_eq!(h.state.tip_hash(), new_tip);
    assert_eq!(snapshot(&h, &blocks), reference);
    h.state.verify().expect("verify");
}

#[test]
fn a_journal_that_contradicts_its_marker_stops_the_open_and_is_kept() {
    let Stopped { mut h, .. } = stopped_flush(FlushStep::Apply, 0);
    let path = journal_path(&h);
    let mut bytes = std::fs::read(&path).expect("journal file");
    // A byte inside the first chunk's payload.
    bytes[8 + 5 + 2] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage");
    h.close();
    let err = h.open_again().expect_err("a damaged complete journal is not applied");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert_eq!(std::fs::read(&path).expect("kept for the operator"), bytes);
}

/// What an older build wrote in the `journal` tree for one chunk.
#[derive(bincode::Encode, bincode::Decode)]
struct LegacyOp {
    tree: u8,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

#[test]
fn a_journal_an_older_build_left_in_its_tree_is_completed_at_open() {
    let Stopped {
        mut h,
        blocks,
        new_tip,
        reference,
        ..
    } = stopped_flush(FlushStep::Apply, 0);
    let path = journal_path(&h);
    let (chunks, complete) = journal_chunks(&std::fs::read(&path).expect("journal file"));
    assert!(complete && !chunks.is_empty());
    // The same chunks as the older build's tree journal: chunk i at 0 ‖ i (BE), then the
    // marker `complete` → count u32 BE ‖ bytes u64 BE. Its chunks decode as the same ops.
    for c in &chunks {
        let ops: Vec<LegacyOp> = lode_chain::encoding::decode(c, usize::MAX).expect("ops");
        assert!(!ops.is_empty());
    }
    h.close();
    std::fs::remove_file(&path).expect("remove the file journal");
    let db = retry_lock(|| sled::open(h.dir.path())).expect("sled");
    let tree = db.open_tree("journal").expect("tree");
    let mut total = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        let mut k = [0u8; 5];
        k[1..].copy_from_slice(&(i as u32).to_be_bytes());
        tree.insert(k, c.as_slice()).expect("chunk");
        total += c.len() as u64;
    }
    let mut marker = (chunks.len() as u32).to_be_bytes().to_vec();
    marker.extend_from_slice(&total.to_be_bytes());
    tree.insert(b"complete", marker).expect("marker");
    db.flush().expect("sync");
    drop((tree, db));
    h.open_again().expect("reopen");
    assert_eq!(h.state.store().journal_len(), 0, "the tree journal is cleared");
    assert_eq!(
        h.state.cache_stats().blocks,
        0,
        "the flush completed: nothing connected again"
    );
    assert_eq!(h.state.tip_hash(), new_tip);
    assert_eq!(snapshot(&h, &blocks), reference);
    h.state.verify().expect("verify");
}
