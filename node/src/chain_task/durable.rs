//! What makes the chain task's acknowledgements durable (ADR 0011).
//!
//! The task serves requests in groups: everything queued when it wakes, up to
//! [`GROUP_MAX`]. Replies to writes and announcements are held in an [`Outbox`] until the
//! group's writes are on disk — stored blocks synced in sled, locally accepted transactions
//! synced in the mempool journal — then released together: one sync for the whole group
//! (a group commit). Peers, miners and clients therefore never hear of a block or a
//! transaction that a crash right after could forget.
//!
//! [`MempoolFiles`] is the mempool on disk: the snapshot (`mempool.dat`) and the journal.
//!
//! A write that fails because the disk is full halts the node: [`Halt`] records why, the
//! task refuses further work, `/health` reports it and the node shuts down cleanly.

use std::path::{Path, PathBuf};

use lode_chain::mempool::persist::{self, PersistError, SavedTx, TxJournal};
use lode_chain::{ChainState, Hash256, Transaction};
use tokio::sync::{broadcast, watch};

use super::announce::Announcement;
use super::sink::TxSink;

/// Most requests served before the group is committed: bounds how long the first reply of
/// a group waits for the others.
pub(super) const GROUP_MAX: usize = 64;

/// Journal size that triggers a fresh snapshot (which empties it), so replaying it at start
/// stays quick.
const JOURNAL_COMPACT_BYTES: u64 = 8 * 1024 * 1024;

/// Replies and announcements held until the group's writes are durable.
#[derive(Default)]
pub(super) struct Outbox {
    // Sync too: the task state is shared with readers (ADR 0021).
    replies: Vec<Box<dyn FnOnce() + Send + Sync>>,
    announcements: Vec<Announcement>,
    /// A block was stored (sled must be synced before the replies go).
    pub store_dirty: bool,
    /// A write of this group failed: its replies and announcements are discarded.
    pub failed: bool,
}

impl Outbox {
    /// Holds a reply until the commit.
    pub fn reply(&mut self, send: impl FnOnce() + Send + Sync + 'static) {
        self.replies.push(Box::new(send));
    }

    /// Holds an announcement until the commit.
    pub fn announce(&mut self, what: Announcement) {
        self.announcements.push(what);
    }

    /// Sends everything held. A receiver gone (network stopped, client left) is fine.
    pub fn release(&mut self, announce: &broadcast::Sender<Announcement>) {
        for send in self.replies.drain(..) {
            send();
        }
        for what in self.announcements.drain(..) {
            let _ = announce.send(what);
        }
    }

    /// Drops everything held: the writes they acknowledge did not reach the disk. Their
    /// askers see the chain task gone; peers hear nothing.
    pub fn discard(&mut self) {
        self.replies.clear();
        self.announcements.clear();
    }
}

/// Why the node stopped accepting work, published for `/health` and the node's owner.
pub struct Halt {
    reason: Option<String>,
    tx: watch::Sender<Option<String>>,
}

impl Halt {
    /// Not halted; returns the receiver the node watches.
    pub fn channel() -> (Halt, watch::Receiver<Option<String>>) {
        let (tx, rx) = watch::channel(None);
        (Halt { reason: None, tx }, rx)
    }

    /// The reason, if halted.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Halts (once): one line on the log, the reason published.
    pub fn halt(&mut self, reason: String) {
        if self.reason.is_some() {
            return;
        }
        tracing::error!(
            "{reason}; the node stops accepting work and shuts down (nothing acknowledged is lost; restart once fixed)"
        );
        self.reason = Some(reason.clone());
        let _ = self.tx.send(Some(reason));
    }
}

/// The mempool's files in the data dir.
pub struct MempoolFiles {
    snapshot: PathBuf,
    journal: TxJournal,
    genesis: Hash256,
}

impl MempoolFiles {
    /// Reads the snapshot and the journal in `dir`, offers their transactions to the pool
    /// again (what no longer fits is dropped and logged), then writes a fresh snapshot and
    /// empties the journal. A damaged file is moved aside (`*.damaged`) and reported.
    pub fn open_and_restore(
        dir: &Path,
        chain: &ChainState,
        sink: &mut dyn TxSink,
    ) -> Result<MempoolFiles, PersistError> {
        let genesis = chain.genesis_hash();
        let max = chain.params().max_tx_size;
        let snapshot = dir.join(persist::SNAPSHOT_FILE);
        let journal_path = dir.join(persist::JOURNAL_FILE);
        let mut txs = read_or_set_aside(&snapshot, persist::load(&snapshot, &genesis, max))?;
        txs.extend(read_or_set_aside(
            &journal_path,
            persist::read_journal(&journal_path, &genesis, max),
        )?);
        let saved = txs.len();
        let journal = TxJournal::open(&journal_path, &genesis)?;
        let mut files = MempoolFiles {
            snapshot,
            journal,
            genesis,
        };
        if let Some(pool) = sink.mempool_mut() {
            let report = persist::restore(pool, chain, txs);
            if saved > 0 {
                tracing::info!(
                    saved,
                    restored = report.restored.len(),
                    dropped = report.dropped.len(),
                    "mempool restored from disk"
                );
            }
        }
        files.save(sink)?;
        Ok(files)
    }

    /// Writes the snapshot of the pool and empties the journal. Returns how many
    /// transactions were written.
    pub fn save(&mut self, sink: &dyn TxSink) -> Result<usize, PersistError> {
        let Some(pool) = sink.mempool() else { return Ok(0) };
        let n = persist::save(pool, &self.genesis, &self.snapshot)?;
        // Only once the snapshot holding them is durable.
        self.journal.clear()?;
        Ok(n)
    }

    /// Appends a locally accepted transaction, which entered the pool at `entered`, to the
    /// journal (synced at the commit).
    pub fn journal(&mut self, tx: &Transaction, entered: u64) -> Result<(), PersistError> {
        self.journal.append(tx, entered)
    }

    /// Syncs the journal if anything was appended; compacts it when it has grown large.
    pub fn commit(&mut self, sink: &dyn TxSink) -> Result<(), PersistError> {
        self.journal.sync()?;
        if self.journal.len() > JOURNAL_COMPACT_BYTES {
            self.save(sink)?;
        }
        Ok(())
    }
}

fn read_or_set_aside(path: &Path, read: Result<Vec<SavedTx>, PersistError>) -> Result<Vec<SavedTx>, PersistError> {
    match read {
        Ok(txs) => Ok(txs),
        Err(e @ (PersistError::Corrupt { .. } | PersistError::WrongNetwork { .. })) => {
            // Never overwrite what we cannot read: keep it for whoever wants to look.
            let aside = path.with_extension(format!(
                "{}.damaged",
                path.extension().and_then(|x| x.to_str()).unwrap_or("")
            ));
            tracing::error!(error = %e, moved_to = %aside.display(), "cannot read the saved mempool; moved aside, starting with what else is saved");
            std::fs::rename(path, &aside).map_err(|source| PersistError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}
