//! Pool mode: the durable share log, the PPLNS window behind each coinbase, carried
//! balances, and the audit record of every block the pool found.
//!
//! Everything lives in a sled database of the pool's own (`<data dir>/stratum-pool`), apart
//! from the chain store. A share is acknowledged to the miner only after the log holding it
//! is flushed to disk: one writer thread takes every share queued, writes them and flushes
//! once (group commit), then answers each, so a SIGKILL never loses an acknowledged share.

pub mod ledger;
pub mod payout;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bincode::{Decode, Encode};
use lode_chain::{Amount, Hash256, PubkeyHash, TxOut};
use tokio::sync::oneshot;

use self::payout::{payout, window, Payout, Rule, ScoredShare};
use super::config::PoolConfig;

/// Directory of the pool's database inside the data dir.
pub const POOL_DIR: &str = "stratum-pool";
/// Most shares one window walks (each is one audit line of a found block).
pub const MAX_WINDOW_SHARES: usize = 100_000;
/// Shares kept in the log; older ones are pruned after a found block.
pub const MAX_SHARES_KEPT: usize = 1_000_000;
/// Splits kept for templates still being mined (older templates' blocks are stale anyway).
const PENDING_SPLITS: usize = 16;
/// Shares waiting for the writer thread at most.
const WRITE_QUEUE: usize = 4_096;

/// Pool failures.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The database failed.
    #[error("pool database: {0}")]
    Db(#[from] sled::Error),
    /// A record did not decode.
    #[error("pool record {0} is corrupt")]
    Corrupt(String),
    /// No address to pay the fee and remainder to.
    #[error("the pool needs the node's wallet or --mining-address to pay its remainder")]
    NoNodePayout,
    /// The writer thread is gone.
    #[error("the share log writer stopped")]
    WriterStopped,
}

/// One accepted share, as logged.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct ShareRecord {
    /// The payout address's public-key hash.
    pub payee: [u8; 20],
    /// The worker name after the address (at most 64 bytes).
    pub worker: String,
    /// Share difficulty: 2^diff_log2.
    pub diff_log2: i32,
    /// Network difficulty when it was submitted.
    pub net_diff: f64,
    /// Unix seconds.
    pub time: u64,
    /// Height of the block it worked on.
    pub height: u32,
}

impl ShareRecord {
    /// Its share difficulty.
    pub fn share_diff(&self) -> f64 {
        2f64.powi(self.diff_log2)
    }

    /// As the window scores it.
    pub fn scored(&self) -> ScoredShare {
        ScoredShare {
            payee: PubkeyHash(self.payee),
            share_diff: self.share_diff(),
            net_diff: self.net_diff,
        }
    }
}

/// One share inside a found block's window.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct WindowEntry {
    /// Its sequence number in the log.
    pub seq: u64,
    /// The share.
    pub share: ShareRecord,
    /// The weight it counted for (units of 2^-32 difficulty at the block's network
    /// difficulty; the edge share only partly).
    pub counted: u128,
}

/// The audit record of a block the pool found.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct FoundBlock {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: [u8; 32],
    /// Unix seconds when found.
    pub time: u64,
    /// Subsidy + fees.
    pub reward: u64,
    /// The pool fee.
    pub fee: u64,
    /// The coinbase outputs (payee, value).
    pub outputs: Vec<([u8; 20], u64)>,
    /// Each payee's share of this block (before carries).
    pub shares: Vec<([u8; 20], u64)>,
    /// Balances carried after it.
    pub carried: Vec<([u8; 20], u64)>,
    /// The window, newest share first.
    pub window: Vec<WindowEntry>,
}

/// What a split needs to know of a template.
#[derive(Clone, Copy, Debug)]
pub struct TemplateFacts {
    /// The template's id.
    pub id: u64,
    /// Its height.
    pub height: u32,
    /// Subsidy + fees.
    pub reward: Amount,
    /// Its network difficulty.
    pub net_diff: f64,
    /// Where the fee and remainder go.
    pub node_payout: Option<PubkeyHash>,
}

struct PendingSplit {
    template: u64,
    height: u32,
    reward: Amount,
    payout: Payout,
    window: Vec<WindowEntry>,
}

struct Write {
    record: ShareRecord,
    done: oneshot::Sender<Result<u64, String>>,
}

/// The pool's state.
pub struct Pool {
    config: PoolConfig,
    db: sled::Db,
    shares: sled::Tree,
    carried: sled::Tree,
    blocks: sled::Tree,
    /// Balances carried after each found block (same key as `blocks`), small so the
    /// ledger can follow the chain without decoding windows.
    carried_after: sled::Tree,
    writer: std::sync::mpsc::SyncSender<Write>,
    pending: Mutex<VecDeque<PendingSplit>>,
    accepted: AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the writer after its last flush; joining it releases the
        // database's file lock before a reopen in the same process.
        let (dummy, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.writer, dummy));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The key of a found block: height (big-endian, so the tree is in height order) ‖ hash.
fn block_key(height: u32, hash: &Hash256) -> Vec<u8> {
    let mut key = height.to_be_bytes().to_vec();
    key.extend_from_slice(&hash.0);
    key
}

fn carried_pairs(m: &BTreeMap<PubkeyHash, Amount>) -> Vec<([u8; 20], u64)> {
    m.iter().map(|(k, v)| (k.0, v.0)).collect()
}

fn bin<T: Encode>(v: &T) -> Vec<u8> {
    lode_chain::encoding::encode(v)
}

fn unbin<T: Decode<()>>(bytes: &[u8], what: &str) -> Result<T, PoolError> {
    lode_chain::encoding::decode(bytes, 64 * 1024 * 1024).map_err(|e| PoolError::Corrupt(format!("{what}: {e}")))
}

impl Pool {
    /// Opens (or creates) the pool database in `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path, config: PoolConfig) -> Result<Pool, PoolError> {
        // Sled's page cache defaults to 1 GiB and keeps what is written until it fills; the
        // share log is append-mostly and read back in windows, so the chain store's cap will do.
        let db = sled::Config::new()
            .path(data_dir.join(POOL_DIR))
            .cache_capacity(lode_chain::store::SLED_PAGE_CACHE_BYTES)
            .open()?;
        let shares = db.open_tree("shares")?;
        let next = match shares.last()? {
            Some((k, _)) => {
                u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| PoolError::Corrupt("share key".into()))?,
                ) + 1
            }
            None => 0,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Write>(WRITE_QUEUE);
        let writer_db = db.clone();
        let writer_tree = shares.clone();
        let thread = std::thread::Builder::new()
            .name("stratum-share-log".into())
            .spawn(move || write_loop(&writer_db, &writer_tree, &rx, next))
            .map_err(|e| PoolError::Corrupt(format!("cannot start the writer: {e}")))?;
        Ok(Pool {
            config,
            carried: db.open_tree("carried")?,
            blocks: db.open_tree("blocks")?,
            carried_after: db.open_tree("carried_after")?,
            shares,
            db,
            writer: tx,
            pending: Mutex::new(VecDeque::new()),
            accepted: AtomicU64::new(0),
            thread: Some(thread),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Logs a share and waits until it is on disk; returns its sequence number.
    pub async fn record(&self, record: ShareRecord) -> Result<u64, PoolError> {
        let (done, rx) = oneshot::channel();
        let writer = self.writer.clone();
        // A full queue waits on a blocking thread rather than stalling the runtime.
        tokio::task::spawn_blocking(move || writer.send(Write { record, done }))
            .await
            .map_err(|_| PoolError::WriterStopped)?
            .map_err(|_| PoolError::WriterStopped)?;
        let seq = rx
            .await
            .map_err(|_| PoolError::WriterStopped)?
            .map_err(PoolError::Corrupt)?;
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Shares accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Shares in the log.
    pub fn share_count(&self) -> usize {
        self.shares.len()
    }

    /// The window as it stands for a block at network difficulty `reference`, newest share
    /// first.
    pub fn current_window(&self, reference: f64) -> Result<Vec<WindowEntry>, PoolError> {
        let mut left = payout::window_units(self.config.window, reference);
        let mut out = Vec::new();
        for item in self.shares.iter().rev() {
            if left == 0 || out.len() >= MAX_WINDOW_SHARES {
                break;
            }
            let (k, v) = item?;
            let seq = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| PoolError::Corrupt("share key".into()))?,
            );
            let share: ShareRecord = unbin(&v, "share")?;
            let counted = payout::weight(share.share_diff(), share.net_diff, reference).min(left);
            left -= counted;
            out.push(WindowEntry { seq, share, counted });
        }
        Ok(out)
    }

    /// Balances carried over, by payee.
    pub fn carried(&self) -> Result<BTreeMap<PubkeyHash, Amount>, PoolError> {
        let mut out = BTreeMap::new();
        for item in self.carried.iter() {
            let (k, v) = item?;
            let k: [u8; 20] = k
                .as_ref()
                .try_into()
                .map_err(|_| PoolError::Corrupt("carried key".into()))?;
            out.insert(PubkeyHash(k), Amount(unbin::<u64>(&v, "carried")?));
        }
        Ok(out)
    }

    fn rule(&self) -> Rule {
        Rule {
            fee_bps: self.config.fee_bps,
            min_payout: self.config.min_payout,
            max_outputs: self.config.max_outputs.max(1),
        }
    }

    /// The coinbase outputs for a template (`template` its id): the window's split at
    /// network difficulty `net_diff` of `reward` plus the balances `carried` on the
    /// template's parent ([`Pool::ledger_head`]), the remainder to `node` (kept, so a block
    /// found on it can be committed and audited).
    pub fn split_for(&self, t: TemplateFacts, carried: &BTreeMap<PubkeyHash, Amount>) -> Result<Vec<TxOut>, PoolError> {
        let node = t.node_payout.ok_or(PoolError::NoNodePayout)?;
        let entries = self.current_window(t.net_diff)?;
        let weights = window(entries.iter().map(|e| e.share.scored()), self.config.window, t.net_diff);
        let p = payout(t.reward, &weights, carried, self.rule(), node);
        let outputs = p.outputs.clone();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= PENDING_SPLITS {
            pending.pop_front();
        }
        pending.push_back(PendingSplit {
            template: t.id,
            height: t.height,
            reward: t.reward,
            payout: p,
            window: entries,
        });
        Ok(outputs)
    }

    /// A block on `template` was found: its window and the balances carried after it go
    /// into the audit log, flushed before returning. Called *before* the block is
    /// submitted (a refused one is then forgotten, [`Pool::forget_block`]), so the ledger
    /// never sees the block on the chain without its record; the carried balances in force
    /// follow the chain ([`Pool::ledger_head`]), not this call.
    pub fn commit_block(&self, template: u64, hash: Hash256, now: u64) -> Result<Option<FoundBlock>, PoolError> {
        let split = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.iter().position(|p| p.template == template) {
                Some(i) => pending.remove(i),
                None => None,
            }
        };
        let Some(split) = split else {
            return Ok(None);
        };
        let record = FoundBlock {
            height: split.height,
            hash: hash.0,
            time: now,
            reward: split.reward.0,
            fee: split.payout.fee.0,
            outputs: split
                .payout
                .outputs
                .iter()
                .map(|o| (o.pubkey_hash.0, o.value.0))
                .collect(),
            shares: carried_pairs(&split.payout.shares),
            carried: carried_pairs(&split.payout.carried),
            window: split.window,
        };
        let key = block_key(split.height, &hash);
        self.carried_after.insert(key.clone(), bin(&record.carried))?;
        self.blocks.insert(key, bin(&record))?;
        self.prune()?;
        self.db.flush()?;
        Ok(Some(record))
    }

    fn prune(&self) -> Result<(), PoolError> {
        let excess = self.shares.len().saturating_sub(MAX_SHARES_KEPT);
        for item in self.shares.iter().take(excess) {
            let (k, _) = item?;
            self.shares.remove(k)?;
        }
        Ok(())
    }

    /// Blocks found, newest first (at most `max`).
    pub fn blocks(&self, max: usize) -> Result<Vec<FoundBlock>, PoolError> {
        self.blocks
            .iter()
            .rev()
            .take(max)
            .map(|i| unbin(&i?.1, "block"))
            .collect()
    }

    /// The audit record of the found block `hash`.
    pub fn block(&self, hash: &Hash256) -> Result<Option<FoundBlock>, PoolError> {
        for item in self.blocks.iter().rev() {
            let (k, v) = item?;
            if k.len() == 36 && k[4..] == hash.0 {
                return Ok(Some(unbin(&v, "block")?));
            }
        }
        Ok(None)
    }

    /// Number of blocks found.
    pub fn blocks_found(&self) -> usize {
        self.blocks.len()
    }

    /// Each payee's part of the current window (units), for estimated payouts.
    pub fn window_weights(&self, reference: f64) -> Result<HashMap<PubkeyHash, u128>, PoolError> {
        let mut out = HashMap::new();
        for e in self.current_window(reference)? {
            *out.entry(PubkeyHash(e.share.payee)).or_insert(0) += e.counted;
        }
        Ok(out)
    }
}

fn write_loop(db: &sled::Db, tree: &sled::Tree, rx: &std::sync::mpsc::Receiver<Write>, mut next: u64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1_024 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut seqs = Vec::with_capacity(batch.len());
        let mut failed = None;
        for w in &batch {
            match tree.insert(next.to_be_bytes(), bin(&w.record)) {
                Ok(_) => seqs.push(next),
                Err(e) => failed = Some(e.to_string()),
            }
            next += 1;
        }
        if failed.is_none() {
            if let Err(e) = db.flush() {
                failed = Some(e.to_string());
            }
        }
        for (i, w) in batch.into_iter().enumerate() {
            let r = match &failed {
                Some(e) => Err(e.clone()),
                None => Ok(seqs[i]),
            };
            let _ = w.done.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_and_carries_survive_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let rec = |p: u8, log2: i32| ShareRecord {
            payee: [p; 20],
            worker: "w".into(),
            diff_log2: log2,
            net_diff: 4.0,
            time: 1,
            height: 1,
        };
        {
            let pool = Pool::open(dir.path(), PoolConfig::default()).expect("open");
            assert_eq!(pool.record(rec(1, 1)).await.expect("logged"), 0);
            assert_eq!(pool.record(rec(2, 2)).await.expect("logged"), 1);
        }
        let pool = Pool::open(dir.path(), PoolConfig::default()).expect("reopen");
        assert_eq!(pool.share_count(), 2);
        assert_eq!(pool.record(rec(3, 0)).await.expect("logged"), 2);
        let w = pool.current_window(4.0).expect("window");
        // Newest first: (1 + 4 + 2) / 4 = 1.75 < window 2.
        assert_eq!(w.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 1, 0]);
    }
}
