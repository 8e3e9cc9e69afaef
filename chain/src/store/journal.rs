//! A large cache flush, written in bounded pieces and still all or nothing.
//!
//! sled keeps every node version a write creates until the write's epoch guard is dropped,
//! and one transaction (or one batch) holds one guard from start to end: a flush of 64 MiB of
//! cached writes as one transaction peaked at ≈ 1.6 GiB (ADR 0006, BENCHMARKS.md). A large
//! flush therefore goes through a write-ahead journal, a sled tree of its own:
//!
//! 1. the cache's writes (tree, key, new value or deletion) are written to the journal in
//!    chunks of bounded size, each one sled insert; then synced;
//! 2. one insert writes the *complete* marker (chunk count and bytes); then synced — from
//!    here on the flush has happened;
//! 3. the writes are applied to the real trees chunk by chunk (one sled batch per tree and
//!    chunk, so each holds a bounded guard); then synced;
//! 4. the marker is removed, then the chunks; then synced.
//!
//! Every write is the put or removal of a final value, so applying a chunk twice is the same
//! as applying it once. At open ([`recover`]) a journal with its marker is applied again in
//! full and cleared (the flush completes); chunks without a marker are discarded (the flush
//! never happened, the real trees were not touched, and open connects the stored blocks
//! after the previous flushed tip again). The tip (`meta`'s `tip` key) is one of the cached
//! writes, so it moves with the rest. See `docs/adr/0006-utxo-cache.md`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bincode::{Decode, Encode};
use sled::Batch;

use super::{entry_cost, Cache, Store, T, TREES};
use crate::encoding;
use crate::error::ChainError;

/// Flushes of more cached bytes than this go through the journal; smaller ones stay one
/// sled transaction (cheaper: no second copy of the writes, and its memory is small).
pub const DEFAULT_JOURNAL_ABOVE: usize = 4 << 20;

/// Cached bytes (the cache's own estimate, key + value + overhead per write) per journal
/// chunk and per applied chunk: what one sled insert or batch holds at a time. 16 KiB keeps
/// a chunk, and a journal node holding a few of them, under sled's blob threshold (a log
/// item over a quarter of its 512 KiB segment is written as a file of its own, and its page
/// cache counts such a page by the size of the pointer, so it does not evict it for size):
/// a 2,000-block sync at `--dbcache 64` peaked at 512–528 MiB with 1 MiB chunks, 437–445 MiB
/// with 64 KiB and 409–410 MiB with 16 KiB, and ran faster with each (BENCHMARKS.md, issue
/// 16 fifth pass).
pub const DEFAULT_CHUNK_BYTES: usize = 16 << 10;

/// Largest chunk size accepted: a chunk's encoding must decode at open
/// ([`encoding::MAX_DECODE_BYTES`]).
const MAX_CHUNK_BYTES: usize = 8 << 20;

/// Journal key of the marker that says every chunk is written.
const MARKER: &[u8] = b"complete";

/// Journal key of chunk `i`: a zero byte (below the marker's first byte) then `i` big-endian.
fn chunk_key(i: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[1..].copy_from_slice(&i.to_be_bytes());
    k
}

/// One journaled write.
#[derive(Encode, Decode)]
struct JournalOp {
    /// Index of the tree ([`T`] as a number).
    tree: u8,
    key: Vec<u8>,
    /// New value, or `None` to delete.
    value: Option<Vec<u8>>,
}

/// One write, borrowed: tree, key, new value or deletion.
type Op<'a> = (T, &'a [u8], Option<&'a [u8]>);

/// Where a large flush stops when a test asks it to (as if the process were killed there).
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlushStep {
    /// After this many journal chunks are written, before the marker.
    Journal,
    /// After the marker and this many chunks (or all, if fewer) applied to the real trees,
    /// before the journal is removed.
    Apply,
}

/// How flushes are split, and the fault-injection hook. Shared by clones of a store.
pub(super) struct FlushConfig {
    journal_above: AtomicUsize,
    chunk_bytes: AtomicUsize,
    /// `Some(step)` encoded as 1 + step; 0: no fault armed.
    fault_step: AtomicUsize,
    fault_after: AtomicU32,
    /// Set once a fault fired: the store takes no more writes, as a killed process would not.
    halted: AtomicBool,
}

impl Default for FlushConfig {
    fn default() -> FlushConfig {
        FlushConfig {
            journal_above: AtomicUsize::new(DEFAULT_JOURNAL_ABOVE),
            chunk_bytes: AtomicUsize::new(DEFAULT_CHUNK_BYTES),
            fault_step: AtomicUsize::new(0),
            fault_after: AtomicU32::new(0),
            halted: AtomicBool::new(false),
        }
    }
}

impl FlushConfig {
    pub(super) fn journal_above(&self) -> usize {
        self.journal_above.load(Ordering::Relaxed)
    }

    pub(super) fn set(&self, journal_above: usize, chunk_bytes: usize) {
        self.journal_above.store(journal_above, Ordering::Relaxed);
        self.chunk_bytes
            .store(chunk_bytes.clamp(1, MAX_CHUNK_BYTES), Ordering::Relaxed);
    }

    pub(super) fn arm(&self, step: FlushStep, chunks: u32) {
        self.fault_after.store(chunks, Ordering::Relaxed);
        self.fault_step.store(1 + step as usize, Ordering::Relaxed);
    }

    /// An error if a fault fired: nothing more may be written.
    pub(super) fn writable(&self) -> Result<(), ChainError> {
        if self.halted.load(Ordering::Relaxed) {
            return Err(halted());
        }
        Ok(())
    }

    /// Fires the armed fault if the flush is at `step` with `done` chunks done.
    fn checkpoint(&self, step: FlushStep, done: u32) -> Result<(), ChainError> {
        if self.fault_step.load(Ordering::Relaxed) == 1 + step as usize
            && done >= self.fault_after.load(Ordering::Relaxed)
        {
            self.halted.store(true, Ordering::Relaxed);
            return Err(halted());
        }
        Ok(())
    }
}

fn halted() -> ChainError {
    ChainError::NotAllowed("the store was halted by a fault-injection hook (tests only)".into())
}

/// Calls `f` with the cache's writes in chunks of about `chunk_bytes` (the cache's own
/// estimate). Each key appears once in the cache, so chunks may be applied in any order.
fn for_each_chunk<'a>(
    cache: &'a Cache,
    chunk_bytes: usize,
    mut f: impl FnMut(&[Op<'a>]) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    let mut ops: Vec<Op<'a>> = Vec::new();
    let mut bytes = 0;
    for (t, writes) in T::ALL.iter().zip(cache.trees.iter()) {
        for (k, v) in writes.iter() {
            bytes += entry_cost(k, v);
            ops.push((*t, k.as_slice(), v.as_deref()));
            if bytes >= chunk_bytes {
                f(&ops)?;
                ops.clear();
                bytes = 0;
            }
        }
    }
    if !ops.is_empty() {
        f(&ops)?;
    }
    Ok(())
}

/// Lets sled's epoch collector free the node versions a large write replaced.
///
/// sled 0.34 defers freeing every replaced tree node to crossbeam-epoch's global collector,
/// which frees at most 8 bags of 64 deferred frees per collection, and collects only on
/// every 128th pin of a thread. One sled batch or transaction of `n` writes pins once but
/// defers more than `n` frees, so after large writes the garbage outgrows the collection
/// (heaptrack: 144 + 112 MB of replaced nodes alive at a 64 MiB flush's peak even in 1 MiB
/// chunks, ADR 0006). Each pin-and-flush here hands this thread's deferred frees to the
/// collector and runs one collection; the count covers `writes` writes' garbage with room.
/// Called after each journaled chunk, after every other cache flush and after the genesis
/// write (so the blocks after them do not pay for that garbage in their first reads: the
/// per-transaction connect bench, BENCHMARKS.md), but not after each one-block commit at
/// `--dbcache 0`, where it measured no lower, and once 10–20 MiB higher, than without.
pub(super) fn release_garbage(writes: usize) {
    for _ in 0..writes / 128 + 8 {
        crossbeam_epoch::pin().flush();
    }
}

/// Applies `ops` to the real trees: one sled batch per tree touched, so each holds sled's
/// epoch for one bounded piece only.
fn apply<'a>(store: &Store, ops: impl IntoIterator<Item = Op<'a>>) -> Result<(), ChainError> {
    let mut batches: [Option<Batch>; TREES] = Default::default();
    for (t, k, v) in ops {
        let batch = batches[t as usize].get_or_insert_with(Batch::default);
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    for (t, batch) in batches.into_iter().enumerate() {
        if let Some(batch) = batch {
            store.trees[t].apply_batch(batch)?;
        }
    }
    Ok(())
}

/// Writes the whole cache to sled through the journal (module doc). The caller holds the
/// cache's write lock throughout, so no reader sees the real trees half written, and keeps
/// the cache until this returns.
pub(super) fn flush(store: &Store, cache: &Cache) -> Result<(), ChainError> {
    let cfg = &store.flush_cfg;
    let chunk_bytes = cfg.chunk_bytes.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    // A journal left by a failed attempt in this process must finish before a new one
    // replaces it: the real trees may be partly written from it.
    recover(store)?;
    let mut chunks: u32 = 0;
    let mut bytes: u64 = 0;
    for_each_chunk(cache, chunk_bytes, |ops| {
        let owned: Vec<JournalOp> = ops
            .iter()
            .map(|(t, k, v)| JournalOp {
                tree: *t as u8,
                key: k.to_vec(),
                value: v.map(<[u8]>::to_vec),
            })
            .collect();
        let encoded = encoding::encode(&owned);
        bytes += encoded.len() as u64;
        store.journal.insert(chunk_key(chunks), encoded)?;
        release_garbage(1);
        chunks += 1;
        cfg.checkpoint(FlushStep::Journal, chunks)
    })?;
    // Every chunk is on disk before the marker can be.
    store.db.flush()?;
    let mut marker = [0u8; 12];
    marker[..4].copy_from_slice(&chunks.to_be_bytes());
    marker[4..].copy_from_slice(&bytes.to_be_bytes());
    store.journal.insert(MARKER, &marker)?;
    store.db.flush()?;
    cfg.checkpoint(FlushStep::Apply, 0)?;
    let mut applied: u32 = 0;
    for_each_chunk(cache, chunk_bytes, |ops| {
        apply(store, ops.iter().copied())?;
        release_garbage(ops.len());
        applied += 1;
        cfg.checkpoint(FlushStep::Apply, applied)
    })?;
    // A fault armed for more chunks than there are stops here, everything applied.
    cfg.checkpoint(FlushStep::Apply, u32::MAX)?;
    store.db.flush()?;
    clear(store)?;
    tracing::debug!(
        chunks,
        journal_bytes = bytes,
        ms = started.elapsed().as_millis() as u64,
        "cache flushed through the journal"
    );
    Ok(())
}

/// Removes the marker, then the chunks, then syncs: a kill in between leaves chunks
/// without a marker, which open discards (the real trees already hold them, synced).
/// Synced before returning, so no later write can reach disk while the journal still
/// reads as complete.
fn clear(store: &Store) -> Result<(), ChainError> {
    store.journal.remove(MARKER)?;
    store.journal.clear()?;
    store.db.flush()?;
    Ok(())
}

/// What [`recover`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Recovered {
    /// No journal.
    Nothing,
    /// A complete journal: applied again in full.
    Completed { chunks: u32 },
    /// Chunks without the marker: discarded.
    Discarded { chunks: usize },
}

/// Finishes or discards a journal left by a flush that was interrupted (module doc).
pub(super) fn recover(store: &Store) -> Result<Recovered, ChainError> {
    if store.journal.is_empty() {
        return Ok(Recovered::Nothing);
    }
    let Some(marker) = store.journal.get(MARKER)? else {
        let chunks = store.journal.len();
        clear(store)?;
        tracing::warn!(chunks, "discarded the journal of a cache flush that did not complete");
        return Ok(Recovered::Discarded { chunks });
    };
    let corrupt = |why: String| ChainError::Corrupt(format!("flush journal: {why}"));
    let marker: [u8; 12] = marker
        .as_ref()
        .try_into()
        .map_err(|_| corrupt(format!("marker is {} bytes, not 12", marker.len())))?;
    let chunks = u32::from_be_bytes([marker[0], marker[1], marker[2], marker[3]]);
    let mut expected = [0u8; 8];
    expected.copy_from_slice(&marker[4..]);
    let expected = u64::from_be_bytes(expected);
    // Check the whole journal before writing anything from it.
    let mut bytes: u64 = 0;
    for i in 0..chunks {
        let chunk = store
            .journal
            .get(chunk_key(i))?
            .ok_or_else(|| corrupt(format!("chunk {i} of {chunks} is missing")))?;
        bytes += chunk.len() as u64;
    }
    if bytes != expected {
        return Err(corrupt(format!(
            "chunks hold {bytes} bytes, the marker says {expected}"
        )));
    }
    for i in 0..chunks {
        let chunk = store
            .journal
            .get(chunk_key(i))?
            .ok_or_else(|| corrupt(format!("chunk {i} of {chunks} is missing")))?;
        let ops: Vec<JournalOp> =
            encoding::decode(&chunk, encoding::MAX_DECODE_BYTES).map_err(|e| corrupt(format!("chunk {i}: {e}")))?;
        let mut borrowed = Vec::with_capacity(ops.len());
        for op in &ops {
            let t = T::ALL
                .get(usize::from(op.tree))
                .ok_or_else(|| corrupt(format!("chunk {i} names tree {}", op.tree)))?;
            borrowed.push((*t, op.key.as_slice(), op.value.as_deref()));
        }
        apply(store, borrowed)?;
        release_garbage(ops.len());
    }
    store.db.flush()?;
    clear(store)?;
    tracing::info!(chunks, "completed an interrupted cache flush from its journal");
    Ok(Recovered::Completed { chunks })
}
