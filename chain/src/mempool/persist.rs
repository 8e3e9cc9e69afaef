//! The mempool on disk, as Bitcoin Core's `mempool.dat`: a snapshot written whole (through
//! [`crate::atomic_file`]) at clean shutdown, periodically and on request, plus a journal of
//! the transactions accepted from local clients since that snapshot, appended and synced
//! before their acceptance is acknowledged. At start both are read and every transaction is
//! offered to the pool again, so what no longer fits the chain is dropped with its reason.
//!
//! Snapshot (`mempool.dat`):
//!
//! ```text
//! magic "lodempl\0" | version u32 | genesis [32] | count u32 |
//! count × (entry time u64 | length u32 | canonical tx bytes) | sha256 of all before [32]
//! ```
//!
//! Journal (`mempool.journal`): `magic "lodemj2\0" | genesis [32]`, then records
//! `length u32 | first 4 bytes of sha256(entry time ‖ tx) | entry time u64 | tx bytes`. A
//! crash can tear only the last record; reading stops at the first record that does not
//! check out. A journal of the first format (`"lodemjl\0"`, records without the entry time)
//! is still read; its transactions count as entering at load.
//!
//! Restored transactions keep their saved entry time, so the pool's expiry counts from when
//! they first arrived ([`Mempool::accept_restored`]).
//!
//! Integers are little-endian. Every length is checked against the network's maximum
//! transaction size before anything is allocated.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Mempool, MempoolError, TxAccepted};
use crate::encoding;
use crate::hash::Hash256;
use crate::state::ChainState;
use crate::transaction::Transaction;

/// File name of the snapshot inside the data dir.
pub const SNAPSHOT_FILE: &str = "mempool.dat";
/// File name of the journal inside the data dir.
pub const JOURNAL_FILE: &str = "mempool.journal";
/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

const SNAPSHOT_MAGIC: &[u8; 8] = b"lodempl\0";
const JOURNAL_MAGIC: &[u8; 8] = b"lodemj2\0";
/// The first journal format: records without the entry time.
const JOURNAL_MAGIC_V1: &[u8; 8] = b"lodemjl\0";
const HEADER_LEN: usize = 8 + 4 + 32 + 4;
const JOURNAL_HEADER_LEN: usize = 8 + 32;
/// Smallest possible record: entry time and length, with an empty transaction.
const MIN_RECORD: usize = 8 + 4;

/// A transaction read back from the mempool files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedTx {
    /// The transaction.
    pub tx: Transaction,
    /// When it entered the pool (clock seconds); `None` in a first-format journal.
    pub entered: Option<u64>,
}

/// Why the mempool files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a mempool file of this format, or is damaged.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file belongs to another network.
    #[error("{path}: written for the network with genesis {found}, not this one")]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// The genesis hash it names.
        found: Hash256,
    },
}

impl PersistError {
    fn io(path: &Path, source: std::io::Error) -> PersistError {
        PersistError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> PersistError {
        PersistError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// True if the write failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            PersistError::Io { source, .. } => crate::error::is_disk_full(source),
            PersistError::Corrupt { .. } | PersistError::WrongNetwork { .. } => false,
        }
    }
}

/// Writes the pool's transactions, parents first, to `path` atomically. Returns how many.
pub fn save(pool: &Mempool, genesis: &Hash256, path: &Path) -> Result<usize, PersistError> {
    let mut out = Vec::with_capacity(HEADER_LEN + pool.bytes() + pool.len() * MIN_RECORD + 32);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&genesis.0);
    let count = u32::try_from(pool.len()).map_err(|_| PersistError::corrupt(path, "too many transactions"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for entry in pool.iter() {
        let bytes = encoding::encode(entry.tx().as_ref());
        out.extend_from_slice(&entry.time().to_le_bytes());
        // A pool transaction is at most the max tx size, far below 4 GiB.
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    crate::atomic_file::write_atomic(path, &out).map_err(|e| PersistError::io(path, e))?;
    Ok(pool.len())
}

/// Reads a snapshot: its transactions in the order written (parents first). A missing file
/// is an empty pool.
pub fn load(path: &Path, genesis: &Hash256, max_tx_size: usize) -> Result<Vec<SavedTx>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PersistError::io(path, e)),
    };
    if bytes.len() < HEADER_LEN + 32 {
        return Err(PersistError::corrupt(path, format!("only {} bytes", bytes.len())));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(PersistError::corrupt(path, "checksum does not match the content"));
    }
    let mut r = Reader { bytes: body, at: 0 };
    if r.take(8) != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(PersistError::corrupt(path, "not a mempool snapshot (bad magic)"));
    }
    let version = r.u32().unwrap_or(0);
    if version != SNAPSHOT_VERSION {
        return Err(PersistError::corrupt(
            path,
            format!("format version {version}, this build reads {SNAPSHOT_VERSION}"),
        ));
    }
    check_genesis(path, r.take(32), genesis)?;
    let count = r.u32().unwrap_or(0) as usize;
    // Bound the allocation by what the file can hold, not by what it claims.
    if count > r.left() / MIN_RECORD {
        return Err(PersistError::corrupt(path, format!("claims {count} transactions")));
    }
    let mut txs = Vec::with_capacity(count);
    for i in 0..count {
        let short = || PersistError::corrupt(path, format!("transaction {i} is cut short"));
        let entered = r.u64().ok_or_else(short)?;
        let len = r.u32().ok_or_else(short)? as usize;
        if len > max_tx_size {
            return Err(PersistError::corrupt(
                path,
                format!("transaction {i} is {len} bytes, over the maximum {max_tx_size}"),
            ));
        }
        let tx_bytes = r.take(len).ok_or_else(short)?;
        let tx = encoding::decode::<Transaction>(tx_bytes, max_tx_size)
            .map_err(|e| PersistError::corrupt(path, format!("transaction {i} does not decode: {e}")))?;
        txs.push(SavedTx {
            tx,
            entered: Some(entered),
        });
    }
    if r.left() != 0 {
        return Err(PersistError::corrupt(path, "trailing bytes after the last transaction"));
    }
    Ok(txs)
}

fn check_genesis(path: &Path, bytes: Option<&[u8]>, genesis: &Hash256) -> Result<(), PersistError> {
    let found = bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Hash256)
        .ok_or_else(|| PersistError::corrupt(path, "header is cut short"))?;
    if found != *genesis {
        return Err(PersistError::WrongNetwork {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// The append-only journal of locally accepted transactions since the last snapshot.
pub struct TxJournal {
    path: PathBuf,
    file: File,
    len: u64,
    /// Appended since the last sync.
    dirty: bool,
    genesis: Hash256,
}

/// The check of a journal record: the first 4 bytes of sha256(entry time ‖ tx).
fn record_check(time: &[u8], tx: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(time);
    h.update(tx);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl TxJournal {
    /// Opens the journal at `path` for appending, creating it (with its header) if absent.
    /// Call [`read_journal`] first: this does not read it.
    pub fn open(path: &Path, genesis: &Hash256) -> Result<TxJournal, PersistError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| PersistError::io(path, e))?;
        let len = file.metadata().map_err(|e| PersistError::io(path, e))?.len();
        let mut journal = TxJournal {
            path: path.to_path_buf(),
            file,
            len,
            dirty: false,
            genesis: *genesis,
        };
        if len == 0 {
            journal.clear()?;
        }
        Ok(journal)
    }

    /// Appends `tx`, which entered the pool at `entered` (not yet synced: see
    /// [`TxJournal::sync`]).
    pub fn append(&mut self, tx: &Transaction, entered: u64) -> Result<(), PersistError> {
        let bytes = encoding::encode(tx);
        let mut record = Vec::with_capacity(16 + bytes.len());
        let time = entered.to_le_bytes();
        record.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        record.extend_from_slice(&record_check(&time, &bytes));
        record.extend_from_slice(&time);
        record.extend_from_slice(&bytes);
        self.file
            .write_all(&record)
            .map_err(|e| PersistError::io(&self.path, e))?;
        self.len += record.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended record durable (one fsync for any number of them).
    pub fn sync(&mut self) -> Result<(), PersistError> {
        if self.dirty {
            self.file.sync_data().map_err(|e| PersistError::io(&self.path, e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// True if records were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Bytes in the journal (header included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len <= JOURNAL_HEADER_LEN as u64
    }

    /// Drops every record (after a snapshot that holds them was written), leaving the
    /// header of this build's format (a first-format journal is rewritten in it).
    pub fn clear(&mut self) -> Result<(), PersistError> {
        let mut header = Vec::with_capacity(JOURNAL_HEADER_LEN);
        header.extend_from_slice(JOURNAL_MAGIC);
        header.extend_from_slice(&self.genesis.0);
        // Appending: the header lands at offset 0 of the emptied file.
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(&header))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| PersistError::io(&self.path, e))?;
        self.len = JOURNAL_HEADER_LEN as u64;
        self.dirty = false;
        Ok(())
    }
}

/// Reads the journal's records in order, stopping (with a warning) at the first that does
/// not check out: only the last one can be torn by a crash. A missing file is empty.
pub fn read_journal(path: &Path, genesis: &Hash256, max_tx_size: usize) -> Result<Vec<SavedTx>, PersistError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(|e| PersistError::io(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PersistError::io(path, e)),
    };
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader { bytes: &bytes, at: 0 };
    let timed = match r.take(8) {
        Some(m) if m == JOURNAL_MAGIC.as_slice() => true,
        Some(m) if m == JOURNAL_MAGIC_V1.as_slice() => false,
        _ => return Err(PersistError::corrupt(path, "not a mempool journal (bad magic)")),
    };
    check_genesis(path, r.take(32), genesis)?;
    let mut txs = Vec::new();
    while r.left() > 0 {
        let at = r.at;
        let record = (|| {
            let len = r.u32()? as usize;
            if len > max_tx_size {
                return None;
            }
            let check = r.take(4)?;
            let time: &[u8] = if timed { r.take(8)? } else { &[] };
            let tx_bytes = r.take(len)?;
            // The first format checked the transaction alone (`time` is empty there).
            if check != record_check(time, tx_bytes) {
                return None;
            }
            let entered = <[u8; 8]>::try_from(time).ok().map(u64::from_le_bytes);
            let tx = encoding::decode::<Transaction>(tx_bytes, max_tx_size).ok()?;
            Some(SavedTx { tx, entered })
        })();
        match record {
            Some(tx) => txs.push(tx),
            None => {
                tracing::warn!(path = %path.display(), offset = at, "mempool journal ends in a torn record; ignoring the rest");
                break;
            }
        }
    }
    Ok(txs)
}

/// What offering saved transactions to the pool again gave.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Back in the pool (or already there).
    pub restored: Vec<Hash256>,
    /// Not taken, each with the reason (confirmed meanwhile, conflicts, policy, …).
    pub dropped: Vec<(Hash256, String)>,
}

/// Offers `txs` (parents first) to `pool` against `chain`, each with its saved entry time,
/// logging each one dropped.
pub fn restore(pool: &mut Mempool, chain: &ChainState, txs: Vec<SavedTx>) -> RestoreReport {
    let mut report = RestoreReport::default();
    let mut seen = std::collections::HashSet::new();
    for SavedTx { tx, entered } in txs {
        let txid = tx.txid();
        // The journal may repeat what the snapshot holds.
        if !seen.insert(txid) {
            continue;
        }
        let tx = Arc::new(tx);
        let verdict = match entered {
            Some(t) => pool.accept_restored(tx, chain, t),
            None => pool.accept(tx, chain),
        };
        match verdict {
            Ok(TxAccepted::Added { .. }) | Err(MempoolError::AlreadyInPool(_)) => report.restored.push(txid),
            Ok(TxAccepted::Orphan { .. }) => {
                let reason = "its parents are neither in the chain nor in the pool".to_string();
                tracing::info!(%txid, %reason, "saved mempool transaction not restored");
                report.dropped.push((txid, reason));
            }
            Err(e) => {
                tracing::info!(%txid, reason = %e, "saved mempool transaction not restored");
                report.dropped.push((txid, e.to_string()));
            }
        }
    }
    report
}
