//! [`ChainHandle`]: the cloneable, typed way to the chain task. One method per request; the
//! request enum itself stays private to the chain task's module.
//!
//! A handle is *strong* (keeps the chain task alive: the node handle's and the network's) or
//! *weak* ([`ChainHandle::downgrade`]: the RPC server's, the miner bridge's, the tick's), so a
//! request in flight never keeps the chain task running past shutdown.

use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use lode_chain::header::BlockHeader;
use lode_chain::{Amount, Block, Hash256, Height, PubkeyHash, Transaction};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::request::{BlockMark, BlockMarkError, ChainRequest, GenerateError, WalletCommand};
use super::verdict::{BlockVerdict, Origin, TxVerdict};
use super::view::ChainView;
use super::Shared;
use crate::error::NodeError;
use crate::task_sender::TaskSender;
use crate::wallet::{SentPayment, WalletActionError, WalletInfo};
use lode_chain::HeadersVerdict;

/// Most reads running at once on tokio's blocking pool; more wait (asynchronously) for a
/// turn. Bounds the threads a read flood can occupy (the machine has few cores and the
/// chain writer must get CPU time), while reads still overlap each other (ADR 0021).
pub const MAX_CONCURRENT_READS: usize = 8;

/// A cloneable handle to the chain task.
#[derive(Clone)]
pub struct ChainHandle {
    tx: TaskSender<ChainRequest>,
    /// The chain task's state, read under the shared lock off the writer thread. Weak: only
    /// the writer thread owns it, so the store closes when the task ends.
    state: Weak<Shared>,
    /// Turns for reads on the blocking pool (shared by every clone).
    readers: Arc<tokio::sync::Semaphore>,
    /// Gossip blocks waiting for room in a full queue (shared by every clone).
    deferred: Arc<Deferred>,
}

/// Most gossip blocks waiting for room in a full chain queue; past this the sender is asked
/// for its tip instead and sync fetches the block (a block is never dropped silently).
pub const MAX_DEFERRED_BLOCKS: usize = 64;

/// Gossip blocks held back by a full queue, and where that is counted.
struct Deferred {
    waiting: std::sync::atomic::AtomicUsize,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// What became of a gossip block handed to [`ChainHandle::submit_gossip_block`].
pub enum GossipSubmission {
    /// Queued, or waiting for room (back-pressure): the verdict arrives on the receiver.
    Verdict(oneshot::Receiver<BlockVerdict>),
    /// The queue is full and too many blocks already wait: the caller must have the block
    /// fetched later (ask its sender for its tip; sync downloads it).
    FetchLater,
    /// The chain task has stopped.
    Stopped,
}

impl ChainHandle {
    pub(super) fn new(
        tx: mpsc::Sender<ChainRequest>,
        state: Weak<Shared>,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> ChainHandle {
        ChainHandle {
            tx: TaskSender::Strong(tx),
            state,
            readers: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_READS)),
            deferred: Arc::new(Deferred {
                waiting: std::sync::atomic::AtomicUsize::new(0),
                metrics,
            }),
        }
    }

    /// A handle that does not keep the chain task alive.
    pub fn downgrade(&self) -> ChainHandle {
        ChainHandle {
            tx: self.tx.downgrade(),
            state: self.state.clone(),
            readers: self.readers.clone(),
            deferred: self.deferred.clone(),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<ChainRequest>> {
        self.tx.get()
    }

    /// Sends a request (waiting for room in the queue) and awaits its answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ChainRequest) -> Result<T, NodeError> {
        let tx = self.sender().ok_or(NodeError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| NodeError::Stopped)?;
        // Only the reply keeps us waiting, not the sender: shutdown is never held up.
        drop(tx);
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Sends a request only if the queue has room now; `None` when busy or stopped.
    fn try_ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ChainRequest) -> Option<oneshot::Receiver<T>> {
        let (reply, rx) = oneshot::channel();
        self.sender()?.try_send(make(reply)).ok()?;
        Some(rx)
    }

    /// From a thread outside the runtime (the miner bridge): sends and waits, blocking.
    fn ask_blocking<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ChainRequest) -> Result<T, NodeError> {
        let tx = self.sender().ok_or(NodeError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.blocking_send(make(reply)).map_err(|_| NodeError::Stopped)?;
        drop(tx);
        rx.blocking_recv().map_err(|_| NodeError::Stopped)
    }

    // ---- blocks and transactions ----

    /// Validates and stores a block. A local block stored on a valid branch is announced.
    pub async fn submit_block(&self, block: Arc<Block>, origin: Origin) -> Result<BlockVerdict, NodeError> {
        self.ask(|reply| ChainRequest::SubmitBlock { block, origin, reply })
            .await
    }

    /// [`ChainHandle::submit_block`] from a thread outside the tokio runtime.
    pub fn submit_block_blocking(&self, block: Arc<Block>, origin: Origin) -> Result<BlockVerdict, NodeError> {
        self.ask_blocking(|reply| ChainRequest::SubmitBlock { block, origin, reply })
    }

    /// Submits a block the embedded miner found (paying `reward`), from a plain thread; the
    /// mining ledger follows it.
    pub fn submit_mined_blocking(&self, block: Arc<Block>, reward: Amount) -> Result<BlockVerdict, NodeError> {
        self.ask_blocking(|reply| ChainRequest::SubmitMined { block, reward, reply })
    }

    /// Submits a block only if the chain task has room now (`None` when busy or stopped);
    /// the verdict arrives on the receiver. Gossip uses [`ChainHandle::submit_gossip_block`],
    /// which never drops a block silently.
    pub fn try_submit_block(&self, block: Arc<Block>, origin: Origin) -> Option<oneshot::Receiver<BlockVerdict>> {
        self.try_ask(|reply| ChainRequest::SubmitBlock { block, origin, reply })
    }

    /// Submits a peer's gossip block. When the queue is full the block is not dropped: up to
    /// [`MAX_DEFERRED_BLOCKS`] wait for room on their own tasks (back-pressure that never
    /// holds up the caller); past that the caller is told to have it fetched later. Both are
    /// logged and counted (`lode_chain_queue_full_blocks_total` by outcome).
    pub fn submit_gossip_block(&self, block: Arc<Block>) -> GossipSubmission {
        use std::sync::atomic::Ordering;
        let Some(tx) = self.sender() else {
            return GossipSubmission::Stopped;
        };
        let (reply, rx) = oneshot::channel();
        let request = ChainRequest::SubmitBlock {
            block,
            origin: Origin::Peer,
            reply,
        };
        let request = match tx.try_send(request) {
            Ok(()) => return GossipSubmission::Verdict(rx),
            Err(mpsc::error::TrySendError::Closed(_)) => return GossipSubmission::Stopped,
            Err(mpsc::error::TrySendError::Full(request)) => request,
        };
        drop(tx);
        let hash = match &request {
            ChainRequest::SubmitBlock { block, .. } => block.hash(),
            _ => Hash256::ZERO,
        };
        let count = |outcome: &str| {
            if let Some(m) = &self.deferred.metrics {
                m.count_queue_full(outcome);
            }
        };
        let waiting = self.deferred.waiting.fetch_add(1, Ordering::AcqRel);
        if waiting >= MAX_DEFERRED_BLOCKS {
            self.deferred.waiting.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(block = %hash, waiting, "chain queue full: gossip block left for sync to fetch");
            count("fetch_later");
            return GossipSubmission::FetchLater;
        }
        tracing::info!(block = %hash, "chain queue full: gossip block waits for room");
        count("deferred");
        // A weak handle: a waiting block never keeps the chain task alive past shutdown.
        let me = self.downgrade();
        tokio::spawn(async move {
            if let Some(tx) = me.sender() {
                // Waits for room; the verdict goes to the receiver as if queued at once.
                if tx.send(request).await.is_err() {
                    tracing::debug!(block = %hash, "chain task stopped before a deferred block was queued");
                }
            }
            me.deferred.waiting.fetch_sub(1, Ordering::AcqRel);
        });
        GossipSubmission::Verdict(rx)
    }

    /// Validates and stores blocks fetched by sync, parents first; one verdict each up to
    /// the first invalid one.
    pub async fn submit_blocks(&self, blocks: Vec<Arc<Block>>) -> Result<Vec<BlockVerdict>, NodeError> {
        self.ask(|reply| ChainRequest::SubmitBlocks { blocks, reply }).await
    }

    /// Judges a transaction. A local one accepted is announced.
    pub async fn submit_tx(&self, tx: Transaction, origin: Origin) -> Result<TxVerdict, NodeError> {
        self.ask(|reply| ChainRequest::SubmitTx { tx, origin, reply }).await
    }

    /// Submits a transaction only if the chain task has room now.
    pub fn try_submit_tx(&self, tx: Transaction, origin: Origin) -> Option<oneshot::Receiver<TxVerdict>> {
        self.try_ask(|reply| ChainRequest::SubmitTx { tx, origin, reply })
    }

    /// A sync round ended on `block`: announce it if it is still the tip (best effort).
    pub fn announce_tip(&self, block: Arc<Block>) {
        if let Some(tx) = self.sender() {
            let _ = tx.try_send(ChainRequest::AnnounceTip { block });
        }
    }

    // ---- sync ----

    /// Checks a batch of headers (linkage, proof of work, contextual rules) before any body
    /// is asked for.
    pub async fn check_headers(&self, headers: Vec<BlockHeader>) -> Result<HeadersVerdict, NodeError> {
        self.ask(|reply| ChainRequest::CheckHeaders { headers, reply }).await
    }

    /// Best-chain headers after `locator` (at most `max`), if the chain task has room now.
    pub fn try_headers_after(&self, locator: Vec<Hash256>, max: usize) -> Option<oneshot::Receiver<Vec<BlockHeader>>> {
        self.try_ask(|reply| ChainRequest::HeadersAfter { locator, max, reply })
    }

    /// Stored blocks' bytes (up to `budget` bytes, at least one block), if the chain task
    /// has room now.
    pub fn try_block_bytes(
        &self,
        hashes: Vec<Hash256>,
        budget: usize,
    ) -> Option<oneshot::Receiver<Vec<Option<Vec<u8>>>>> {
        self.try_ask(|reply| ChainRequest::BlockBytes { hashes, budget, reply })
    }

    // ---- reads ----

    /// Runs `f` with a read-only view of the chain, the mempool, the wallet and the miner at
    /// one moment, and returns what it returns. The read runs on tokio's blocking pool under
    /// the shared side of the chain state's lock, never on the chain-writer thread: the
    /// writer holds the exclusive side for each request it serves, so a read sees the state
    /// between two writes and never waits behind the queue (ADR 0021).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl for<'a> FnOnce(&ChainView<'a>) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        // A handle whose task has stopped (or is stopping) answers as the queue would.
        if self.sender().is_none() {
            return Err(NodeError::Stopped);
        }
        let _turn = self.readers.acquire().await.map_err(|_| NodeError::Stopped)?;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let shared = state.upgrade().ok_or(NodeError::Stopped)?;
            // A writer that panicked leaves the state as it was; reading it is still sound.
            let task = shared.read().unwrap_or_else(PoisonError::into_inner);
            Ok(f(&task.view()))
        })
        .await
        .map_err(|e| NodeError::Task(format!("a chain read failed: {e}")))?
    }

    /// Txids in the mempool.
    pub async fn mempool_txids(&self) -> Result<Vec<Hash256>, NodeError> {
        self.read(|v| v.mempool().map(|m| m.txids()).unwrap_or_default()).await
    }

    /// Best-chain hash at `height`.
    pub async fn hash_at(&self, height: Height) -> Result<Option<Hash256>, NodeError> {
        self.read(move |v| v.chain().hash_at(height)).await
    }

    /// The built-in wallet's balances, addresses and history (`None` without a wallet).
    pub async fn wallet_info(&self) -> Result<Option<WalletInfo>, NodeError> {
        self.read(|v| v.wallet().map(|w| w.info())).await
    }

    // ---- wallet ----

    async fn wallet<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, WalletActionError>>) -> WalletCommand,
    ) -> Result<Result<T, WalletActionError>, NodeError> {
        self.ask(|reply| ChainRequest::Wallet(make(reply))).await
    }

    /// Issues (and watches) a fresh receive address.
    pub async fn new_address(&self) -> Result<Result<String, WalletActionError>, NodeError> {
        self.wallet(WalletCommand::NewAddress).await
    }

    /// Pays `amount` to `to`: built, admitted to the mempool, reserved in the wallet and
    /// announced, with nothing in between. `fee_rate` in units/byte; `None`: the estimate.
    pub async fn send_to_address(
        &self,
        to: String,
        amount: Amount,
        fee_rate: Option<u64>,
    ) -> Result<Result<SentPayment, WalletActionError>, NodeError> {
        self.wallet(|reply| WalletCommand::Send {
            to,
            amount,
            fee_rate,
            reply,
        })
        .await
    }

    /// Unlocks the wallet for `timeout`.
    pub async fn wallet_unlock(
        &self,
        passphrase: Zeroizing<String>,
        timeout: Duration,
    ) -> Result<Result<(), WalletActionError>, NodeError> {
        self.wallet(|reply| WalletCommand::Unlock {
            passphrase,
            timeout,
            reply,
        })
        .await
    }

    /// Locks the wallet.
    pub async fn wallet_lock(&self) -> Result<Result<(), WalletActionError>, NodeError> {
        self.wallet(WalletCommand::Lock).await
    }

    /// Encrypts the wallet with `passphrase` (it is locked afterwards).
    pub async fn wallet_encrypt(
        &self,
        passphrase: Zeroizing<String>,
    ) -> Result<Result<(), WalletActionError>, NodeError> {
        self.wallet(|reply| WalletCommand::Encrypt { passphrase, reply }).await
    }

    /// The wallet's mnemonic and account (the wallet must be unlocked).
    pub async fn wallet_mnemonic(&self) -> Result<Result<(Zeroizing<String>, u32), WalletActionError>, NodeError> {
        self.wallet(WalletCommand::Mnemonic).await
    }

    // ---- mining ----

    /// Starts the embedded miner with `threads` workers (restarting a running one), paying
    /// the configured mining address or a fresh wallet address.
    pub async fn start_mining(&self, threads: usize) -> Result<(), NodeError> {
        self.ask(|reply| ChainRequest::SetMiner {
            threads: Some(threads),
            reply,
        })
        .await?
    }

    /// Stops the embedded miner (its threads are joined).
    pub async fn stop_mining(&self) -> Result<(), NodeError> {
        self.ask(|reply| ChainRequest::SetMiner { threads: None, reply })
            .await?
    }

    /// Mines `n` blocks at once on the chain thread (fixed-difficulty networks), paying
    /// `address`, the configured mining address or a fresh wallet address.
    pub async fn generate(
        &self,
        n: u64,
        address: Option<PubkeyHash>,
    ) -> Result<Result<Vec<Hash256>, GenerateError>, NodeError> {
        self.ask(|reply| ChainRequest::Generate { n, address, reply }).await
    }

    /// Mines one block with exactly `txs` paying `address` (Core's `generateblock`); stores
    /// and announces it if `submit`. Returns the block.
    pub async fn generate_block(
        &self,
        address: PubkeyHash,
        txs: Vec<Transaction>,
        submit: bool,
    ) -> Result<Result<Block, GenerateError>, NodeError> {
        self.ask(|reply| ChainRequest::GenerateBlock {
            address,
            txs,
            submit,
            reply,
        })
        .await
    }

    /// The operator's word on a block (`invalidateblock`, `reconsiderblock`): the chain
    /// task marks or clears it and moves the best chain to the most-work valid branch.
    pub async fn mark_block(&self, hash: Hash256, mark: BlockMark) -> Result<Result<(), BlockMarkError>, NodeError> {
        self.ask(|reply| ChainRequest::MarkBlock { hash, mark, reply }).await
    }

    /// Writes the mempool snapshot (`mempool.dat`) now; returns how many transactions it
    /// holds, or why it could not be written.
    pub async fn save_mempool(&self) -> Result<Result<usize, String>, NodeError> {
        self.ask(ChainRequest::SaveMempool).await
    }

    /// The one-second timer (best effort: skipped when the chain task is busy).
    pub fn tick(&self) -> bool {
        self.sender().is_some_and(|tx| {
            !matches!(
                tx.try_send(ChainRequest::Tick),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        })
    }
}
