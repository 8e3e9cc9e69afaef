//! The chain task: the one writer of the chain state.
//!
//! It runs on its own OS thread (sled and validation block; they must not stall the tokio
//! workers or the swarm) and serves requests from a bounded channel in arrival order, so
//! blocks submitted in order are connected in order. Nothing outside this module touches
//! the task: writers and readers go through a [`ChainHandle`]'s typed methods, and readers
//! see a [`ChainView`] that cannot change anything.
//!
//! The task's state sits behind a reader-writer lock ([`Shared`]): the writer thread takes
//! the exclusive side for each request it serves, and reads take the shared side on
//! tokio's blocking pool, so a read never waits in the queue behind block connects and
//! never occupies the writer thread (ADR 0021). Only this thread ever takes the exclusive
//! side: there is still one writer.
//!
//! What the task owns: the [`ChainState`] (sled), the transaction sink (the mempool, behind
//! the [`TxSink`] seam), the built-in wallet and the embedded miner. What it publishes:
//! the tip on a `watch` after every change, chain events on a `broadcast`, accepted txids for
//! the event stream, and on the one announce channel ([`announce`]) everything peers should
//! hear from us. It never blocks on the network.
//!
//! Requests are served in groups, and replies to writes and announcements leave only once
//! the group's writes are on disk ([`durable`], ADR 0011): one sync per group.

pub mod announce;
mod durable;
mod handle;
mod precheck;
mod request;
mod sink;
mod trim;
mod verdict;
mod view;

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use lode_chain::error::ChainError;
use lode_chain::{Block, ChainEvent, ChainState, Hash256, PubkeyHash, Transaction};
use tokio::sync::{broadcast, mpsc, watch};

pub use announce::Announcement;
pub use handle::{ChainHandle, GossipSubmission, MAX_CONCURRENT_READS, MAX_DEFERRED_BLOCKS};
pub use lode_chain::HeadersVerdict;
pub use precheck::Prechecker;
pub use request::{BlockMark, BlockMarkError, GenerateError};
pub use sink::{MempoolSink, TipCheck, TxSink};
pub use verdict::{BlockVerdict, Origin, TipInfo, TxVerdict};
pub use view::{ChainView, MinerStatus};
// The wallet's summary, as the chain task answers it.
pub use crate::wallet::WalletInfo;

use crate::metrics::Metrics;
use crate::miner::{MiningConfig, MiningMonitor, NodeMiner};
use crate::wallet::{NodeWallet, SentPayment, WalletActionError};
use durable::{Halt, MempoolFiles, Outbox, GROUP_MAX};
use request::{ChainRequest, WalletCommand};

/// The chain task's state as shared with readers: the writer thread holds the exclusive
/// side while it serves a request; [`ChainHandle::read`] takes the shared side. (std's lock
/// on Linux lets a waiting writer in before new readers, so a read flood cannot hold
/// block connects off.)
type Shared = RwLock<ChainTask>;

/// Capacity of the chain task's queue: enough for a burst of gossip and sync work; when it
/// is full, gossip blocks wait for room or are left for sync to fetch (never dropped
/// silently: [`ChainHandle::submit_gossip_block`]) and peers' requests get a "busy" answer.
const CHAIN_QUEUE: usize = 256;

/// The chain task's own configuration.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Bytes of UTXO-set and index writes kept in memory before one atomic flush to the store
    /// (`--dbcache`); 0 writes every block through. See ADR 0006 for what is durable when.
    pub cache_bytes: usize,
    /// Sync stored blocks and journalled transactions before acknowledging them (ADR 0011).
    /// Off only to measure what it costs.
    pub durable_acks: bool,
    /// Seconds between snapshots of the mempool (`mempool.dat`); it is also saved at
    /// shutdown and by `savemempool`.
    pub mempool_save_secs: u64,
    /// Seconds between re-announcements of the wallet's own unconfirmed transactions.
    pub rebroadcast_secs: u64,
}

impl Default for ChainConfig {
    fn default() -> ChainConfig {
        ChainConfig {
            cache_bytes: lode_chain::store::DEFAULT_CACHE_BYTES,
            durable_acks: true,
            mempool_save_secs: 15 * 60,
            rebroadcast_secs: 10 * 60,
        }
    }
}

/// What the chain task is started with.
pub struct ChainSetup {
    /// Its configuration.
    pub config: ChainConfig,
    /// The opened chain.
    pub chain: ChainState,
    /// Where transactions go (the node's mempool).
    pub sink: Box<dyn TxSink>,
    /// The built-in wallet, if any.
    pub wallet: Option<NodeWallet>,
    /// How to mine.
    pub mining: MiningConfig,
    /// Block validation times and chain figures.
    pub metrics: Option<Arc<Metrics>>,
    /// Our mined blocks' fate and the hash-rate history (the task writes the ledger).
    pub monitor: Arc<MiningMonitor>,
    /// Where the mempool is saved (`mempool.dat` and its journal); `None`: not saved.
    pub mempool_dir: Option<PathBuf>,
}

/// What a running chain task publishes.
pub struct ChainOutputs {
    /// The tip after every change.
    pub tip: watch::Receiver<TipInfo>,
    /// Chain events (connects, disconnects, reorgs).
    pub events: broadcast::Sender<ChainEvent>,
    /// What peers should hear from us (the network subscribes).
    pub announce: broadcast::Sender<Announcement>,
    /// Txids the mempool accepted (the RPC event stream); no receiver is fine.
    pub accepted_txs: broadcast::Sender<Hash256>,
    /// Why the node stopped accepting work (a write failed: disk full, I/O error), once it has.
    pub halted: watch::Receiver<Option<String>>,
}

/// A started chain task: the strong handle (the task stops when the last strong handle is
/// gone), its outputs, and its thread.
pub struct RunningChain {
    /// A strong handle.
    pub handle: ChainHandle,
    /// What it publishes.
    pub outputs: ChainOutputs,
    /// Its thread; joins once every strong handle is dropped and the store is flushed.
    pub thread: std::thread::JoinHandle<Result<(), ChainError>>,
    /// Verifies synced blocks' signatures ahead of their connect.
    pub prechecker: Prechecker,
}

/// The tip of `chain` as published.
pub fn tip_info(chain: &ChainState) -> TipInfo {
    let entry = chain.tip_entry();
    TipInfo {
        hash: chain.tip_hash(),
        height: chain.height(),
        work: entry.work(),
        header: entry.header,
        locator: chain.locator(),
    }
}

/// Starts the chain task on its own thread (and the embedded miner when `mining.enabled`).
pub fn spawn(setup: ChainSetup) -> Result<RunningChain, crate::NodeError> {
    setup.chain.set_cache_budget(setup.config.cache_bytes);
    let (tx, rx) = mpsc::channel(CHAIN_QUEUE);
    let prechecker = Prechecker::start(setup.chain.sig_cache().clone(), setup.chain.genesis_hash())?;
    let (tip_tx, tip_rx) = watch::channel(tip_info(&setup.chain));
    let (halt, halted) = Halt::channel();
    let outputs = ChainOutputs {
        tip: tip_rx,
        events: broadcast::channel(1024).0,
        announce: announce::channel(),
        accepted_txs: broadcast::channel(1024).0,
        halted,
    };
    let mut sink = setup.sink;
    let files = match &setup.mempool_dir {
        Some(dir) => Some(
            MempoolFiles::open_and_restore(dir, &setup.chain, sink.as_mut())
                .map_err(|e| crate::NodeError::Task(format!("cannot restore the mempool: {e}")))?,
        ),
        None => None,
    };
    let mut handle = None;
    let shared = Arc::new_cyclic(|state| {
        let strong = ChainHandle::new(tx, state.clone(), setup.metrics.clone());
        let me = strong.downgrade();
        handle = Some(strong);
        RwLock::new(ChainTask {
            chain: setup.chain,
            txs: sink,
            tip: tip_tx,
            events: outputs.events.clone(),
            announce: outputs.announce.clone(),
            accepted_txs: outputs.accepted_txs.clone(),
            wallet: setup.wallet,
            miner: None,
            mining_address: setup.mining.address,
            metrics: setup.metrics,
            monitor: setup.monitor,
            me,
            config: setup.config,
            outbox: Outbox::default(),
            files,
            halt,
            ticks: 0,
            trimmer: trim::Trimmer::default(),
        })
    });
    let Some(handle) = handle else {
        return Err(crate::NodeError::Task("the chain handle was not built".into()));
    };
    {
        let mut task = write(&shared);
        task.adopt_own_pool_txs();
        task.resubmit_wallet_pending();
        if setup.mining.enabled {
            task.start_miner(setup.mining.threads)?;
        }
    }
    let thread = std::thread::Builder::new()
        .name("lode-chain".into())
        .spawn(move || ChainTask::run(shared, rx))
        .map_err(|e| crate::NodeError::Task(format!("cannot spawn the chain thread: {e}")))?;
    Ok(RunningChain {
        handle,
        outputs,
        thread,
        prechecker,
    })
}

/// The chain task. See the module doc.
struct ChainTask {
    chain: ChainState,
    txs: Box<dyn TxSink>,
    tip: watch::Sender<TipInfo>,
    events: broadcast::Sender<ChainEvent>,
    announce: broadcast::Sender<Announcement>,
    accepted_txs: broadcast::Sender<Hash256>,
    wallet: Option<NodeWallet>,
    miner: Option<NodeMiner>,
    mining_address: Option<PubkeyHash>,
    metrics: Option<Arc<Metrics>>,
    monitor: Arc<MiningMonitor>,
    /// A weak handle to its own queue, for the miner's found blocks.
    me: ChainHandle,
    config: ChainConfig,
    /// Replies and announcements waiting for the group's writes to be durable.
    outbox: Outbox,
    /// The mempool's snapshot and journal, if it is saved.
    files: Option<MempoolFiles>,
    /// Set once a write failed: no more work is accepted.
    halt: Halt,
    /// Ticks seen (seconds, roughly).
    ticks: u64,
    /// Gives freed memory back to the OS between groups (see `trim.rs`).
    trimmer: trim::Trimmer,
}

impl ChainTask {
    /// Serves requests until every strong handle is gone, then flushes the store. Requests
    /// already queued are finished first, so a block being written at shutdown is written
    /// whole.
    fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<ChainRequest>) -> Result<(), ChainError> {
        {
            let mut task = write(&shared);
            task.refresh_miner();
            task.commit();
        }
        while let Some(request) = rx.blocking_recv() {
            // A group: this request and whatever else is queued, committed together. The
            // lock is taken per request, so readers get in between two of them.
            write(&shared).serve(request);
            for _ in 1..GROUP_MAX {
                match rx.try_recv() {
                    Ok(request) => write(&shared).serve(request),
                    Err(_) => break,
                }
            }
            let mut task = write(&shared);
            task.refresh_miner();
            // Returned from disconnected blocks (or unlocked orphans): journalled too, so a
            // payment acknowledged before a reorg took its block away survives a crash after.
            for tx in task.txs.take_relay() {
                task.journal(&tx);
                task.announce(Announcement::Tx(tx));
            }
            task.commit();
            task.trimmer.maybe_trim();
            if task.halt.reason().is_some() && task.miner.is_some() {
                // Its blocks would be refused: stop burning the CPU.
                task.stop_miner();
            }
        }
        let mut task = write(&shared);
        // Stop the workers before the store closes (their bridge then ends too).
        task.stop_miner();
        let _ = task.save_mempool();
        task.commit();
        task.chain.flush()?;
        tracing::debug!(height = task.chain.height().0, "chain task stopped, store flushed");
        Ok(())
    }

    fn refresh_miner(&mut self) {
        if let (Some(miner), Some(pool)) = (self.miner.as_mut(), self.txs.mempool()) {
            miner.update(&self.chain, pool);
        }
    }

    /// Queues an announcement: it goes out once the group's writes are durable.
    fn announce(&mut self, what: Announcement) {
        self.outbox.announce(what);
    }

    /// The group commit: syncs what the group wrote (stored blocks, the mempool journal),
    /// then releases its replies and announcements. A failed sync halts the node and
    /// discards them: nothing is acknowledged that might not be on disk.
    fn commit(&mut self) {
        let mut failure = None;
        if std::mem::take(&mut self.outbox.store_dirty) && self.config.durable_acks {
            if let Err(e) = self.chain.sync_stored() {
                failure = Some(disk_failure("cannot sync the chain store", e.is_disk_full(), &e));
            }
        }
        if let (Some(files), None, true) = (self.files.as_mut(), &failure, self.config.durable_acks) {
            if let Err(e) = files.commit(self.txs.as_ref()) {
                failure = Some(disk_failure("cannot sync the mempool journal", e.is_disk_full(), &e));
            }
        }
        // A write of this group failed before the commit (a journal append, a block, the
        // wallet file): nothing of the group may be acknowledged.
        if std::mem::take(&mut self.outbox.failed) && failure.is_none() {
            self.outbox.discard();
            return;
        }
        match failure {
            None => self.outbox.release(&self.announce),
            Some(reason) => {
                self.outbox.discard();
                self.halt.halt(reason);
            }
        }
    }

    /// A wallet file that could not be written for lack of space halts the node like any
    /// other failed write.
    fn wallet_failed(&mut self, e: &WalletActionError) {
        if let WalletActionError::Wallet(lode_wallet::WalletError::Io { source, .. }) = e {
            if lode_chain::error::is_disk_full(source) {
                self.fail_write(disk_failure("cannot write the wallet file", true, e));
            }
        }
    }

    /// A write failed: the node halts, and the current group is not acknowledged.
    fn fail_write(&mut self, reason: String) {
        self.outbox.failed = true;
        self.halt.halt(reason);
    }

    /// Writes `mempool.dat` (and empties the journal). Returns how many transactions.
    fn save_mempool(&mut self) -> Result<usize, String> {
        if self.files.is_none() {
            return Err("this node does not save its mempool".into());
        }
        // The snapshot leaves out what blocks confirmed, and empties the journal: those
        // blocks go to disk first, or a crash could lose a block and, with it, the only
        // record of a payment it confirmed.
        if self.outbox.store_dirty && self.config.durable_acks {
            if let Err(e) = self.chain.sync_stored() {
                let reason = disk_failure("cannot sync the chain store", e.is_disk_full(), &e);
                self.fail_write(reason.clone());
                return Err(reason);
            }
            self.outbox.store_dirty = false;
        }
        let Some(files) = self.files.as_mut() else {
            return Err("this node does not save its mempool".into());
        };
        match files.save(self.txs.as_ref()) {
            Ok(n) => {
                tracing::debug!(transactions = n, "mempool saved");
                Ok(n)
            }
            Err(e) => {
                if e.is_disk_full() {
                    self.fail_write(disk_failure("cannot save the mempool", true, &e));
                } else {
                    tracing::warn!(error = %e, "cannot save the mempool");
                }
                Err(e.to_string())
            }
        }
    }

    /// The wallet takes back the mempool's transactions that spend its coins but that it
    /// let go of (see [`NodeWallet::adopt`]); parents before children, so a child spending
    /// an adopted parent's change is seen as the wallet's too.
    fn adopt_own_pool_txs(&mut self) {
        let (Some(wallet), Some(pool)) = (self.wallet.as_mut(), self.txs.mempool()) else {
            return;
        };
        let mut left: Vec<Arc<lode_chain::Transaction>> = pool.iter().map(|e| e.tx().clone()).collect();
        loop {
            let before = left.len();
            left.retain(|tx| match wallet.adopt(tx) {
                Ok(adopted) => !adopted,
                Err(e) => {
                    tracing::error!(txid = %tx.txid(), error = %e, "cannot take a mempool transaction back into the wallet");
                    true
                }
            });
            if left.len() == before {
                break;
            }
        }
    }

    /// Hands the wallet's own unconfirmed transactions to the mempool again (at start and
    /// on the rebroadcast timer): those already there are announced again, the others
    /// submitted (and announced if accepted). One the chain refuses for good is released.
    fn resubmit_wallet_pending(&mut self) {
        let Some(pending) = self.wallet.as_ref().map(NodeWallet::pending_txs) else {
            return;
        };
        for tx in pending {
            let txid = tx.txid();
            if self.txs.mempool().is_some_and(|m| m.contains(&txid)) {
                self.announce(Announcement::Tx(Arc::new(tx)));
                continue;
            }
            match self.submit_tx(tx, Origin::Local) {
                TxVerdict::Accepted { .. } => {}
                TxVerdict::Rejected { reason, .. } => {
                    if let Some(w) = self.wallet.as_mut() {
                        if let Err(e) = w.release(&txid, format!("refused by the node: {reason}")) {
                            tracing::error!(%txid, error = %e, "cannot record a released wallet transaction");
                        }
                    }
                }
                // Policy (a conflicting pool transaction, fees): the chain decides later.
                TxVerdict::Ignored { reason, .. } => {
                    tracing::debug!(%txid, %reason, "pending wallet transaction not in the mempool yet")
                }
            }
        }
    }

    pub(super) fn view(&self) -> ChainView<'_> {
        ChainView {
            chain: &self.chain,
            mempool: self.txs.mempool(),
            wallet: self.wallet.as_ref(),
            miner: self.miner.as_ref(),
            mining_address: self.mining_address,
        }
    }

    fn serve(&mut self, request: ChainRequest) {
        // A dropped reply receiver only means the asker went away: nothing to do.
        let halted = self
            .halt
            .reason()
            .map(|r| format!("the node has stopped accepting work: {r}"));
        match request {
            ChainRequest::SubmitBlock { block, origin, reply } => {
                let verdict = match &halted {
                    Some(r) => BlockVerdict::Failed(r.clone()),
                    None => self.submit_block(block, origin),
                };
                self.outbox.reply(move || {
                    let _ = reply.send(verdict);
                });
            }
            ChainRequest::SubmitMined { block, reward, reply } => {
                let verdict = match &halted {
                    Some(r) => BlockVerdict::Failed(r.clone()),
                    None => self.submit_mined(block, reward),
                };
                let _ = reply.send(verdict);
            }
            ChainRequest::SubmitBlocks { blocks, reply } => {
                if let Some(r) = halted {
                    let _ = reply.send(vec![BlockVerdict::Failed(r); blocks.len().min(1)]);
                    return;
                }
                let mut verdicts = Vec::with_capacity(blocks.len());
                for block in blocks {
                    // Sync asked for these (their header chain had more work): stored.
                    let v = self.accept(block, true);
                    let stop = v.broken_rule().is_some();
                    verdicts.push(v);
                    // The rest descend from an invalid block: not worth validating.
                    if stop {
                        break;
                    }
                }
                self.publish_tip();
                self.outbox.reply(move || {
                    let _ = reply.send(verdicts);
                });
            }
            ChainRequest::SubmitTx { tx, origin, reply } => {
                let verdict = match halted {
                    Some(reason) => TxVerdict::Ignored {
                        txid: tx.txid(),
                        reason,
                    },
                    None => self.submit_tx(tx, origin),
                };
                self.outbox.reply(move || {
                    let _ = reply.send(verdict);
                });
            }
            ChainRequest::AnnounceTip { block } => {
                if block.hash() == self.chain.tip_hash() {
                    self.announce(Announcement::Block(block));
                }
            }
            ChainRequest::Wallet(command) => self.wallet_command(command, halted),
            ChainRequest::SetMiner { threads, reply } => {
                let result = match threads {
                    Some(n) => self.start_miner(n),
                    None => {
                        self.stop_miner();
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            ChainRequest::Generate { n, address, reply } => {
                let result = match halted {
                    Some(r) => Err(GenerateError::Refused(r)),
                    None => self.generate(n, address),
                };
                self.outbox.reply(move || {
                    let _ = reply.send(result);
                });
            }
            ChainRequest::GenerateBlock {
                address,
                txs,
                submit,
                reply,
            } => {
                let result = match halted {
                    Some(r) => Err(GenerateError::Refused(r)),
                    None => self.generate_block(address, txs, submit),
                };
                self.outbox.reply(move || {
                    let _ = reply.send(result);
                });
            }
            ChainRequest::MarkBlock { hash, mark, reply } => {
                let result = match halted {
                    Some(r) => Err(BlockMarkError::Failed(r)),
                    None => self.mark_block(hash, mark),
                };
                self.outbox.reply(move || {
                    let _ = reply.send(result);
                });
            }
            ChainRequest::SaveMempool(reply) => {
                let _ = reply.send(self.save_mempool());
            }
            ChainRequest::Tick => {
                self.ticks += 1;
                if self.files.is_some() && self.ticks.is_multiple_of(self.config.mempool_save_secs.max(1)) {
                    let _ = self.save_mempool();
                }
                if self.ticks.is_multiple_of(self.config.rebroadcast_secs.max(1)) {
                    self.resubmit_wallet_pending();
                }
                if let Some(w) = self.wallet.as_mut() {
                    w.wallet.expire();
                }
                // The cache's interval flush, also when no block arrives to trigger it.
                if let Err(e) = self.chain.flush_if_due(self.chain.now()) {
                    tracing::error!(error = %e, "cannot flush the chain's cache to the store");
                }
            }
            ChainRequest::CheckHeaders { headers, reply } => {
                // Headers-first: the chain's own header-chain rules, before any body is asked for.
                let _ = reply.send(self.chain.check_header_batch(&headers));
            }
            ChainRequest::HeadersAfter { locator, max, reply } => {
                let _ = reply.send(self.chain.headers_after(&locator, max, None));
            }
            ChainRequest::BlockBytes { hashes, budget, reply } => {
                let _ = reply.send(self.block_bytes(hashes, budget));
            }
        }
    }

    /// Validates and stores a block, publishes the new tip, and announces a local block
    /// stored on a valid branch.
    fn submit_block(&mut self, block: Arc<Block>, origin: Origin) -> BlockVerdict {
        // A peer's gossip was not asked for: stored only if its branch beats the tip.
        let verdict = self.accept(block.clone(), origin == Origin::Local);
        self.publish_tip();
        if origin == Origin::Local && verdict.is_stored_valid() {
            self.announce(Announcement::Block(block));
        } else if verdict.is_stored_valid() {
            self.announce_connected_orphans(&block);
        }
        verdict
    }

    /// A peer's block connected held orphans after it (they came first, out of order): gossip
    /// forwards the peer's block, but those orphans were reported as ignored and forwarded
    /// by nobody, so peers that only hear of blocks through us would stop one short. The new
    /// tip is announced (to them an orphan at worst, which starts their sync).
    fn announce_connected_orphans(&mut self, block: &Block) {
        let tip = self.chain.tip_hash();
        let hash = block.hash();
        if tip == hash || !self.chain.is_on_best_chain(&hash) {
            return;
        }
        match self.chain.block(&tip) {
            Ok(Some(tip_block)) => {
                tracing::debug!(%tip, after = %hash, "announcing orphans connected after a peer's block");
                self.announce(Announcement::Block(Arc::new(tip_block)));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%tip, error = %e, "cannot read the new tip to announce it"),
        }
    }

    /// A block this node mined: submitted as a local block, and followed by the ledger
    /// (found once stored on a valid branch; stale while off the best chain).
    fn submit_mined(&mut self, block: Arc<Block>, reward: lode_chain::Amount) -> BlockVerdict {
        let hash = block.hash();
        self.monitor.expect(hash, reward.0);
        let verdict = self.submit_block(block, Origin::Local);
        self.monitor.settle(&hash, verdict.is_stored_valid());
        verdict
    }

    /// Judges (and keeps) a transaction; announces a local one that was accepted.
    fn submit_tx(&mut self, tx: lode_chain::Transaction, origin: Origin) -> TxVerdict {
        // A local client's transaction already in the pool (a peer relayed it first, or the
        // client sends it again): the same answer as a first acceptance, and journalled now,
        // since a peer's transaction is otherwise only in the next snapshot.
        if origin == Origin::Local {
            let txid = tx.txid();
            if self.txs.mempool().is_some_and(|m| m.contains(&txid)) {
                let tx = Arc::new(tx);
                self.journal(&tx);
                self.announce(Announcement::Tx(tx));
                return TxVerdict::Accepted { txid };
            }
        }
        // Only a local transaction is announced, so only its copy is kept.
        let local = (origin == Origin::Local).then(|| Arc::new(tx.clone()));
        // A payment of this wallet's that it let go of, relayed by a peer or sent again by
        // a client (see `NodeWallet::adopt`); the wallet's own sends are reserved already.
        let own = self
            .wallet
            .as_ref()
            .is_some_and(|w| w.spends_unreserved_own(&tx))
            .then(|| tx.clone());
        let verdict = self.txs.submit(&self.chain, tx);
        if let TxVerdict::Accepted { txid } = &verdict {
            let _ = self.accepted_txs.send(*txid);
            if let (Some(tx), Some(w)) = (own, self.wallet.as_mut()) {
                if let Err(e) = w.adopt(&tx) {
                    tracing::error!(%txid, error = %e, "cannot take a mempool transaction back into the wallet");
                }
            }
            if let Some(tx) = local {
                // Acknowledged only once journalled and synced (at the group commit).
                self.journal(&tx);
                self.announce(Announcement::Tx(tx));
            }
        }
        verdict
    }

    /// Appends a pool transaction to the mempool journal (synced at the group commit); a
    /// failed append halts the node.
    fn journal(&mut self, tx: &lode_chain::Transaction) {
        let Some(files) = self.files.as_mut() else { return };
        let txid = tx.txid();
        let entered = self
            .txs
            .mempool()
            .and_then(|m| m.get(&txid))
            .map_or_else(|| self.chain.now(), |e| e.time());
        if let Err(e) = files.journal(tx, entered) {
            let reason = disk_failure("cannot journal a transaction", e.is_disk_full(), &e);
            self.fail_write(reason);
        }
    }

    fn block_bytes(&self, hashes: Vec<Hash256>, budget: usize) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(hashes.len());
        let mut used = 0usize;
        for h in hashes {
            let bytes = match self.chain.store().block_bytes(&h) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(block = %h, error = %e, "cannot read block to serve");
                    None
                }
            };
            let len = bytes.as_ref().map_or(0, Vec::len);
            // Always serve at least one block, so a max-size block is never stuck.
            if !out.is_empty() && used + len > budget {
                break;
            }
            used += len;
            out.push(bytes);
        }
        out
    }

    fn wallet_command(&mut self, command: WalletCommand, halted: Option<String>) {
        match command {
            WalletCommand::NewAddress(reply) => {
                let r = self.wallet_mut().and_then(|w| Ok(w.new_address()?));
                if let Err(e) = &r {
                    self.wallet_failed(e);
                }
                let _ = reply.send(r);
            }
            WalletCommand::Send {
                to,
                amount,
                fee_rate,
                reply,
            } => {
                let result = match halted {
                    Some(r) => Err(WalletActionError::Refused(r)),
                    None => self.wallet_send(&to, amount, fee_rate),
                };
                // The txid leaves once the transaction is journalled and synced.
                self.outbox.reply(move || {
                    let _ = reply.send(result);
                });
            }
            WalletCommand::Unlock {
                passphrase,
                timeout,
                reply,
            } => {
                let r = self
                    .wallet_mut()
                    .and_then(|w| Ok(w.wallet.unlock(&passphrase, Some(timeout))?));
                let _ = reply.send(r);
            }
            WalletCommand::Lock(reply) => {
                let r = self.wallet_mut().map(|w| w.wallet.lock());
                let _ = reply.send(r);
            }
            WalletCommand::Encrypt { passphrase, reply } => {
                let r = self.wallet_mut().and_then(|w| {
                    w.wallet.encrypt(&passphrase, lode_wallet::KdfParams::default())?;
                    tracing::info!("wallet encrypted; it is locked until walletpassphrase");
                    Ok(())
                });
                let _ = reply.send(r);
            }
            WalletCommand::Mnemonic(reply) => {
                let r = self.wallet_mut().and_then(|w| {
                    let words = w.wallet.mnemonic()?;
                    Ok((words, w.wallet.account()))
                });
                let _ = reply.send(r);
            }
        }
    }

    fn wallet_mut(&mut self) -> Result<&mut NodeWallet, WalletActionError> {
        self.wallet.as_mut().ok_or(WalletActionError::NoWallet)
    }

    /// Builds, admits and reserves a payment in one step, with no other request in between.
    fn wallet_send(
        &mut self,
        to: &str,
        amount: lode_chain::Amount,
        fee_rate: Option<u64>,
    ) -> Result<SentPayment, WalletActionError> {
        let floor = self.chain.params().min_relay_fee_rate;
        let estimate = self.txs.mempool().map_or(floor, |m| m.fee_rate_estimate());
        let fee_rate = fee_rate.unwrap_or(estimate.max(floor));
        // Building takes a change address, written to the wallet file.
        let payment = match self.wallet_mut()?.build_payment(to, amount, fee_rate) {
            Ok(p) => p,
            Err(e) => {
                let e = WalletActionError::from(e);
                self.wallet_failed(&e);
                return Err(e);
            }
        };
        let size = lode_chain::encoding::encode(&payment.tx).len();
        // In the wallet file before the mempool sees it: a txid is never returned for a
        // payment a crash could forget.
        if let Err(e) = self.wallet_mut()?.record_sent(&payment.tx) {
            let e = WalletActionError::from(e);
            self.wallet_failed(&e);
            return Err(e);
        }
        match self.submit_tx(payment.tx.clone(), Origin::Local) {
            TxVerdict::Accepted { txid } => Ok(SentPayment {
                tx: payment.tx,
                txid,
                fee: payment.fee,
                size,
            }),
            TxVerdict::Rejected { reason, .. } | TxVerdict::Ignored { reason, .. } => {
                self.wallet_mut()?.unsend(&payment.txid)?;
                Err(WalletActionError::Refused(reason))
            }
        }
    }

    /// Starts (or restarts) the embedded miner. Its found blocks come back into this queue
    /// through a bridge thread, as local blocks.
    fn start_miner(&mut self, threads: usize) -> Result<(), crate::NodeError> {
        // Stop the old workers first: two miners would race on one tip.
        self.stop_miner();
        let hrp = self.chain.params().hrp.clone();
        let pay_to = match self.mining_address {
            Some(p) => p,
            None => self
                .wallet_mut()
                .and_then(|w| w.fresh_pkh(&hrp))
                .map_err(|e| crate::NodeError::Wallet(format!("no address to pay the coinbase to: {e}")))?,
        };
        let (found_tx, found_rx) = std::sync::mpsc::channel::<lode_miner::FoundBlock>();
        let miner = NodeMiner::start(threads, pay_to, found_tx)?;
        self.monitor.set_miner(Some(miner.stats()));
        self.miner = Some(miner);
        let chain = self.me.clone();
        std::thread::Builder::new()
            .name("lode-found".into())
            .spawn(move || {
                // Ends when the miner is dropped (its sender closes) or the chain task stops.
                while let Ok(found) = found_rx.recv() {
                    let hash = found.block.hash();
                    // The chain task's ledger follows it from here (found, stale, reward).
                    match chain.submit_mined_blocking(Arc::new(found.block), found.reward) {
                        Ok(v) => {
                            tracing::info!(block = %hash, reward = %found.reward, verdict = ?v, "mined a block");
                        }
                        Err(e) => {
                            tracing::warn!(block = %hash, error = %e, "mined block not submitted");
                            break;
                        }
                    }
                }
            })
            .map_err(|e| crate::NodeError::Task(format!("cannot spawn the miner bridge: {e}")))?;
        Ok(())
    }

    fn stop_miner(&mut self) {
        self.miner = None;
        self.monitor.set_miner(None);
    }

    /// Mines `n` blocks here, one after the other, each connected and announced.
    fn generate(&mut self, n: u64, address: Option<PubkeyHash>) -> Result<Vec<Hash256>, GenerateError> {
        let pay = match address.or(self.mining_address) {
            Some(a) => a,
            None => {
                let hrp = self.chain.params().hrp.clone();
                match self.wallet_mut().and_then(|w| w.fresh_pkh(&hrp)) {
                    Ok(pkh) => pkh,
                    Err(e) => {
                        self.wallet_failed(&e);
                        return Err(e.into());
                    }
                }
            }
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut out = Vec::new();
        for i in 0..n {
            let pool = self
                .txs
                .mempool()
                .ok_or_else(|| GenerateError::Template("no mempool".into()))?;
            let extra = rand::random::<u64>() ^ i;
            let template = lode_miner::template::build_template(&self.chain, pool, pay, self.chain.now(), extra)
                .map_err(|e| GenerateError::Template(e.to_string()))?;
            let block = lode_miner::worker::mine_blocking(&template, 1, &stop)
                .map_err(|e| GenerateError::Template(e.to_string()))?;
            let hash = block.hash();
            let reward = block.transactions.first().map_or(lode_chain::Amount::ZERO, |cb| {
                lode_chain::Amount(cb.outputs.iter().map(|o| o.value.0).fold(0, u64::saturating_add))
            });
            match self.submit_mined(Arc::new(block), reward) {
                BlockVerdict::Accepted(lode_chain::AcceptStatus::Connected) => out.push(hash),
                other => return Err(GenerateError::Refused(format!("{other:?}"))),
            }
            self.refresh_miner();
        }
        Ok(out)
    }

    /// Mines one block with exactly `txs` (Core's `generateblock`), submitted as our own
    /// mined block if `submit`.
    fn generate_block(&mut self, pay: PubkeyHash, txs: Vec<Transaction>, submit: bool) -> Result<Block, GenerateError> {
        let template =
            lode_miner::template::build_template_with(&self.chain, txs, pay, self.chain.now(), rand::random::<u64>())
                .map_err(|e| match e {
                lode_miner::MinerError::Chain(c) => GenerateError::Invalid(match c.consensus_rule() {
                    Some(rule) => rule.to_string(),
                    None => c.to_string(),
                }),
                other => GenerateError::Template(other.to_string()),
            })?;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let block = lode_miner::worker::mine_blocking(&template, 1, &stop)
            .map_err(|e| GenerateError::Template(e.to_string()))?;
        if submit {
            match self.submit_mined(Arc::new(block.clone()), template.reward) {
                BlockVerdict::Accepted(lode_chain::AcceptStatus::Connected) => {}
                other => return Err(GenerateError::Refused(format!("{other:?}"))),
            }
            self.refresh_miner();
        }
        Ok(block)
    }

    /// Applies the operator's word on a block and lets every follower see the best-chain
    /// changes it caused.
    fn mark_block(&mut self, hash: Hash256, mark: BlockMark) -> Result<(), BlockMarkError> {
        self.outbox.store_dirty = true;
        let result = match mark {
            BlockMark::Invalidate => self.chain.invalidate_block(&hash),
            BlockMark::Reconsider => self.chain.reconsider_block(&hash),
        };
        let events = result.map_err(|e| match e {
            ChainError::UnknownBlock(_) => BlockMarkError::NotFound,
            ChainError::NotAllowed(why) => BlockMarkError::NotAllowed(why),
            other => {
                tracing::error!(block = %hash, error = %other, "cannot apply the operator's mark");
                BlockMarkError::Failed(other.to_string())
            }
        })?;
        tracing::info!(block = %hash, ?mark, tip = %self.chain.tip_hash(), "operator marked a block");
        self.follow(&events);
        self.publish_tip();
        Ok(())
    }

    /// Lets the mempool, the wallet, the mining ledger and the event stream follow
    /// best-chain changes.
    fn follow(&mut self, events: &[ChainEvent]) {
        for event in events {
            if let ChainEvent::Reorg {
                fork_height,
                old_tip,
                new_tip,
                disconnected,
                connected,
            } = event
            {
                tracing::info!(
                    fork_height = fork_height.0,
                    disconnected = disconnected.len(),
                    connected = connected.len(),
                    %old_tip,
                    %new_tip,
                    "reorganised onto another branch"
                );
            }
            self.txs.on_chain_event(&self.chain, event);
            if let Some(w) = self.wallet.as_mut() {
                w.on_chain_event(&self.chain, event);
            }
            self.monitor.on_chain_event(event);
            // No subscribers is normal.
            let _ = self.events.send(event.clone());
        }
    }

    fn accept(&mut self, block: Arc<Block>, requested: bool) -> BlockVerdict {
        let started = std::time::Instant::now();
        // Whatever the verdict, sled may hold new writes (a stored block).
        self.outbox.store_dirty = true;
        let result = if requested {
            self.chain.accept_block(block)
        } else {
            self.chain.accept_unrequested_block(block)
        };
        if let Some(m) = &self.metrics {
            m.block_validation.observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(outcome) => {
                self.follow(&outcome.events);
                BlockVerdict::Accepted(outcome.status)
            }
            Err(e) => match e.consensus_rule() {
                Some(rule) => BlockVerdict::Rejected(rule.clone()),
                None => {
                    if e.is_disk_full() {
                        self.fail_write(disk_failure("cannot store a block", true, &e));
                    } else {
                        tracing::error!(error = %e, "chain store failed while accepting a block");
                    }
                    BlockVerdict::Failed(e.to_string())
                }
            },
        }
    }

    fn publish_tip(&self) {
        let tip = tip_info(&self.chain);
        self.tip.send_if_modified(|cur| {
            if cur.hash == tip.hash {
                false
            } else {
                *cur = tip;
                true
            }
        });
    }
}

/// The exclusive side of the state, for the writer thread only. A panic while it was held
/// (a bug) leaves the state as it was; the writer carries on rather than stopping the node.
fn write(shared: &Shared) -> RwLockWriteGuard<'_, ChainTask> {
    shared.write().unwrap_or_else(PoisonError::into_inner)
}

/// The one line a failed write is reported with.
fn disk_failure(what: &str, full: bool, e: &dyn std::fmt::Display) -> String {
    if full {
        format!("disk full: {what}: {e}")
    } else {
        format!("disk write failed: {what}: {e}")
    }
}
