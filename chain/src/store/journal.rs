//! A large cache flush, written in bounded pieces and still all or nothing.
//!
//! sled keeps every node version a write creates until the write's epoch guard is dropped,
//! and one transaction (or one batch) holds one guard from start to end: a flush of 64 MiB of
//! cached writes as one transaction peaked at ≈ 1.6 GiB (ADR 0006, BENCHMARKS.md). A large
//! flush therefore goes through a write-ahead journal, a plain file in the store's directory
//! ([`JOURNAL_FILE`]), and is applied to sled in bounded pieces:
//!
//! 1. sled is synced (the blocks the flush connects are stored in it before the journal that
//!    names them exists: the file is outside sled's ordered log); the cache's writes (tree,
//!    key, new value or deletion) are appended to the file in chunks of bounded size; then
//!    the file is synced;
//! 2. the *complete* marker (chunk count, bytes, and the SHA-256 of every chunk) is appended;
//!    then the file and its directory are synced — from here on the flush has happened;
//! 3. the writes are applied to the real trees chunk by chunk (one sled batch per tree and
//!    chunk, so each holds a bounded guard); then sled is synced;
//! 4. the file is removed and the directory synced, before any later write can reach sled.
//!
//! Every write is the put or removal of a final value, so applying a chunk twice is the same
//! as applying it once. At open ([`recover`]) a journal with its marker is checked against
//! the marker, applied again in full and removed (the flush completes); a journal that ends
//! before a marker is removed (the flush never happened, the real trees were not touched, and
//! open connects the stored blocks after the previous flushed tip again). The tip (`meta`'s
//! `tip` key) is one of the cached writes, so it moves with the rest.
//!
//! The journal was a sled tree until issue 16's sixth pass: writing it through sled put a
//! second copy of every large flush in sled's page cache, log buffers and node garbage. A
//! journal left in that tree by an older build is still completed or discarded at open
//! ([`recover`]). See `docs/adr/0006-utxo-cache.md`.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};
use sled::Batch;

use super::{entry_cost, Cache, Store, T, TREES};
use crate::atomic_file::sync_dir;
use crate::encoding;
use crate::error::ChainError;

/// Flushes of more cached bytes than this go through the journal; smaller ones stay one
/// sled transaction (cheaper: no second copy of the writes, and its memory is small).
pub const DEFAULT_JOURNAL_ABOVE: usize = 4 << 20;

/// Cached bytes (the cache's own estimate, key + value + overhead per write) per journal
/// chunk and per applied chunk: what one sled batch holds at a time. 16 KiB was measured
/// best while the journal was a sled tree (a chunk, and a journal node holding a few of them,
/// stayed under sled's blob threshold; a 2,000-block sync at `--dbcache 64` peaked at
/// 512–528 MiB with 1 MiB chunks, 437–445 MiB with 64 KiB and 409–410 MiB with 16 KiB), and
/// bounds what each applied batch holds of sled's epoch (BENCHMARKS.md, issue 16).
pub const DEFAULT_CHUNK_BYTES: usize = 16 << 10;

/// Largest chunk size accepted: a chunk's encoding must decode at open
/// ([`encoding::MAX_DECODE_BYTES`]).
const MAX_CHUNK_BYTES: usize = 8 << 20;

/// File name of the journal, inside the store's directory (sled ignores files it did not
/// name).
pub const JOURNAL_FILE: &str = "flush.journal";

/// First bytes of a journal file.
const MAGIC: &[u8; 8] = b"lodefj1\0";

/// Record kinds: `kind u8 | length u32 BE | payload`.
const CHUNK: u8 = 0;
const MARKER: u8 = 1;

/// Marker payload: chunk count u32 BE, chunk bytes u64 BE, SHA-256 of the chunks in order.
const MARKER_LEN: usize = 4 + 8 + 32;

/// Longest record read back: a chunk's encoding, whose ops are each at most one cached
/// write (a block body at most) past the chunk size.
const MAX_RECORD: usize = encoding::MAX_DECODE_BYTES;

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
/// estimate), tree by tree and in key order within each tree. Each key appears once in the
/// cache, so chunks may be applied in any order; key order is for sled: the hashed trees'
/// writes (the tx index's keys are random) in map order would touch a random leaf per write,
/// pulling nearly every page of the tree into memory many times over, where in key order each
/// leaf is read once and gets all its writes together.
fn for_each_chunk<'a>(
    cache: &'a Cache,
    chunk_bytes: usize,
    mut f: impl FnMut(&[Op<'a>]) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    let mut ops: Vec<Op<'a>> = Vec::new();
    let mut bytes = 0;
    for (t, writes) in T::ALL.iter().zip(cache.trees.iter()) {
        // 16 bytes per write of one tree at a time (ordered trees come sorted already).
        let mut rows: Vec<_> = writes.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in rows {
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

fn io(e: std::io::Error) -> ChainError {
    ChainError::Store(sled::Error::Io(e))
}

/// Path of the journal of the store at `dir`.
fn journal_path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL_FILE)
}

fn write_record(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), ChainError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| ChainError::NotAllowed(format!("journal record of {} bytes", payload.len())))?;
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header).map_err(io)?;
    w.write_all(payload).map_err(io)
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
    // What sled already holds (the bodies and index entries of the blocks this flush
    // connects) is on disk before a journal that names them can be: sled's own log keeps
    // its writes in order, but the journal file is outside it.
    store.db.flush()?;
    let path = journal_path(&store.path);
    let mut file = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io)?);
    file.write_all(MAGIC).map_err(io)?;
    let mut chunks: u32 = 0;
    let mut bytes: u64 = 0;
    let mut hash = Sha256::new();
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
        hash.update(&encoded);
        write_record(&mut file, CHUNK, &encoded)?;
        chunks += 1;
        cfg.checkpoint(FlushStep::Journal, chunks)
    })?;
    // Every chunk is on disk before the marker can be.
    let mut file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_data().map_err(io)?;
    let mut marker = [0u8; MARKER_LEN];
    marker[..4].copy_from_slice(&chunks.to_be_bytes());
    marker[4..12].copy_from_slice(&bytes.to_be_bytes());
    marker[12..].copy_from_slice(&hash.finalize());
    write_record(&mut file, MARKER, &marker)?;
    file.sync_data().map_err(io)?;
    // The file's name is durable before sled holds any write the journal does not.
    sync_dir(&store.path).map_err(io)?;
    drop(file);
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
    remove(&path, &store.path)?;
    tracing::debug!(
        chunks,
        journal_bytes = bytes,
        ms = started.elapsed().as_millis() as u64,
        "cache flushed through the journal"
    );
    Ok(())
}

/// Removes the journal file and syncs its directory, so no later write can reach disk while
/// the journal could still be read as complete.
fn remove(path: &Path, dir: &Path) -> Result<(), ChainError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(dir).map_err(io),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Bytes in the journal file plus entries in the legacy journal tree (0 when there is no
/// journal of either kind).
pub(super) fn journal_bytes(store: &Store) -> u64 {
    let legacy = store.legacy_journal.len() as u64;
    std::fs::metadata(journal_path(&store.path)).map_or(0, |m| m.len()) + legacy
}

/// What [`recover`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Recovered {
    /// No journal.
    Nothing,
    /// A complete journal: applied again in full.
    Completed { chunks: u32 },
    /// A journal without its marker: discarded.
    Discarded { chunks: usize },
}

/// One record read back from a journal file.
enum Record {
    Chunk,
    Marker([u8; MARKER_LEN]),
    /// The file ends here, or in a record cut short or not of this format: where a flush
    /// that did not complete stopped writing.
    End,
}

/// Reads the next record into `buf` (a chunk's payload) and says what it was.
fn read_record(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<Record, ChainError> {
    let mut header = [0u8; 5];
    if !read_full(r, &mut header)? {
        return Ok(Record::End);
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    match header[0] {
        CHUNK if len <= MAX_RECORD => {
            buf.clear();
            buf.resize(len, 0);
            Ok(if read_full(r, buf)? { Record::Chunk } else { Record::End })
        }
        MARKER if len == MARKER_LEN => {
            let mut marker = [0u8; MARKER_LEN];
            Ok(if read_full(r, &mut marker)? {
                Record::Marker(marker)
            } else {
                Record::End
            })
        }
        _ => Ok(Record::End),
    }
}

/// Fills `buf`; `false` if the input ended first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, ChainError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io(e)),
    }
}

/// A journal file, opened.
enum Opened {
    /// No file.
    Absent,
    /// A file shorter than the magic: a flush killed as it created it.
    Stub,
    /// Positioned at the first record.
    Records(BufReader<File>),
}

/// Opens the journal at `path` past its magic.
fn open_journal(path: &Path) -> Result<Opened, ChainError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Opened::Absent),
        Err(e) => return Err(io(e)),
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if !read_full(&mut r, &mut magic)? {
        return Ok(Opened::Stub);
    }
    if &magic != MAGIC {
        return Err(ChainError::Corrupt(format!(
            "flush journal {}: not a journal of this format (magic {:02x?})",
            path.display(),
            magic
        )));
    }
    Ok(Opened::Records(r))
}

/// Finishes or discards a journal left by a flush that was interrupted (module doc).
pub(super) fn recover(store: &Store) -> Result<Recovered, ChainError> {
    if !store.legacy_journal.is_empty() {
        return recover_legacy(store);
    }
    let path = journal_path(&store.path);
    let corrupt = |why: String| ChainError::Corrupt(format!("flush journal {}: {why}", path.display()));
    let mut r = match open_journal(&path)? {
        Opened::Absent => return Ok(Recovered::Nothing),
        Opened::Stub => {
            remove(&path, &store.path)?;
            tracing::warn!("discarded the journal of a cache flush that did not complete");
            return Ok(Recovered::Discarded { chunks: 0 });
        }
        Opened::Records(r) => r,
    };
    // Check the whole journal against its marker before writing anything from it.
    let mut buf = Vec::new();
    let mut chunks: u32 = 0;
    let mut bytes: u64 = 0;
    let mut hash = Sha256::new();
    let marker = loop {
        match read_record(&mut r, &mut buf)? {
            Record::Chunk => {
                chunks = chunks.saturating_add(1);
                bytes += buf.len() as u64;
                hash.update(&buf);
            }
            Record::Marker(m) => break Some(m),
            Record::End => break None,
        }
    };
    let Some(marker) = marker else {
        remove(&path, &store.path)?;
        tracing::warn!(chunks, "discarded the journal of a cache flush that did not complete");
        return Ok(Recovered::Discarded {
            chunks: chunks as usize,
        });
    };
    let want_chunks = u32::from_be_bytes([marker[0], marker[1], marker[2], marker[3]]);
    let mut want_bytes = [0u8; 8];
    want_bytes.copy_from_slice(&marker[4..12]);
    let want_bytes = u64::from_be_bytes(want_bytes);
    if (chunks, bytes) != (want_chunks, want_bytes) {
        return Err(corrupt(format!(
            "{chunks} chunks of {bytes} bytes, the marker says {want_chunks} of {want_bytes}"
        )));
    }
    if hash.finalize().as_slice() != &marker[12..] {
        return Err(corrupt("the chunks do not hash to the marker's SHA-256".into()));
    }
    let Opened::Records(mut r) = open_journal(&path)? else {
        return Err(corrupt("vanished while being applied".into()));
    };
    for i in 0..chunks {
        if !matches!(read_record(&mut r, &mut buf)?, Record::Chunk) {
            return Err(corrupt(format!("chunk {i} of {chunks} changed while being applied")));
        }
        apply_encoded(store, &buf, |why| corrupt(format!("chunk {i}: {why}")))?;
    }
    store.db.flush()?;
    remove(&path, &store.path)?;
    tracing::info!(chunks, "completed an interrupted cache flush from its journal");
    Ok(Recovered::Completed { chunks })
}

/// Decodes one chunk and applies it; `corrupt` turns why it does not decode into the error.
fn apply_encoded(store: &Store, chunk: &[u8], corrupt: impl Fn(String) -> ChainError) -> Result<(), ChainError> {
    let ops: Vec<JournalOp> =
        encoding::decode(chunk, encoding::MAX_DECODE_BYTES).map_err(|e| corrupt(e.to_string()))?;
    let mut borrowed = Vec::with_capacity(ops.len());
    for op in &ops {
        let t = T::ALL
            .get(usize::from(op.tree))
            .ok_or_else(|| corrupt(format!("names tree {}", op.tree)))?;
        borrowed.push((*t, op.key.as_slice(), op.value.as_deref()));
    }
    apply(store, borrowed)?;
    release_garbage(ops.len());
    Ok(())
}

/// Legacy journal (a sled tree, until issue 16's sixth pass): key of the marker, and key of
/// chunk `i` (a zero byte, then `i` big-endian).
const LEGACY_MARKER: &[u8] = b"complete";

fn legacy_chunk_key(i: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[1..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Completes or discards a journal an older build left in the `journal` tree: with its
/// marker (chunk count u32 BE, bytes u64 BE) it is applied in full, without it discarded.
fn recover_legacy(store: &Store) -> Result<Recovered, ChainError> {
    let journal = &store.legacy_journal;
    let clear = || -> Result<(), ChainError> {
        journal.remove(LEGACY_MARKER)?;
        journal.clear()?;
        store.db.flush()?;
        Ok(())
    };
    let Some(marker) = journal.get(LEGACY_MARKER)? else {
        let chunks = journal.len();
        clear()?;
        tracing::warn!(chunks, "discarded the journal of a cache flush that did not complete");
        return Ok(Recovered::Discarded { chunks });
    };
    let corrupt = |why: String| ChainError::Corrupt(format!("flush journal (tree): {why}"));
    let marker: [u8; 12] = marker
        .as_ref()
        .try_into()
        .map_err(|_| corrupt(format!("marker is {} bytes, not 12", marker.len())))?;
    let chunks = u32::from_be_bytes([marker[0], marker[1], marker[2], marker[3]]);
    let mut expected = [0u8; 8];
    expected.copy_from_slice(&marker[4..]);
    let expected = u64::from_be_bytes(expected);
    let chunk = |i: u32| {
        journal
            .get(legacy_chunk_key(i))?
            .ok_or_else(|| corrupt(format!("chunk {i} of {chunks} is missing")))
    };
    let mut bytes: u64 = 0;
    for i in 0..chunks {
        bytes += chunk(i)?.len() as u64;
    }
    if bytes != expected {
        return Err(corrupt(format!(
            "chunks hold {bytes} bytes, the marker says {expected}"
        )));
    }
    for i in 0..chunks {
        apply_encoded(store, &chunk(i)?, |why| corrupt(format!("chunk {i}: {why}")))?;
    }
    store.db.flush()?;
    clear()?;
    tracing::info!(chunks, "completed an interrupted cache flush from its journal");
    Ok(Recovered::Completed { chunks })
}
