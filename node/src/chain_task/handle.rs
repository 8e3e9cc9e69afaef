//! [`ChainHandle`]: the cloneable, typed way to the chain task. One method per request; the
//! request enum itself stays private to the chain task's module.
//!
//! A handle is *strong* (keeps the chain task alive: the node handle's and the network's) or
//! *weak* ([`ChainHandle::downgrade`]: the RPC server's, the miner bridge's, the tick's), so a
//! request in flight never keeps the chain task running past shutdown.

use std::sync::Arc;
use std::time::Duration;

use lode_chain::header::BlockHeader;
use lode_chain::{Amount, Block, Hash256, Height, PubkeyHash, Transaction};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::request::{BlockMark, BlockMarkError, ChainRequest, GenerateError, WalletCommand};
use super::verdict::{BlockVerdict, Origin, TxVerdict};
use super::view::ChainView;
use crate::error::NodeError;
use crate::task_sender::TaskSender;
use crate::wallet::{SentPayment, WalletActionError, WalletInfo};
use lode_chain::HeadersVerdict;

/// A cloneable handle to the chain task.
#[derive(Clone)]
pub struct ChainHandle {
    tx: TaskSender<ChainRequest>,
}

impl ChainHandle {
    pub(super) fn new(tx: mpsc::Sender<ChainRequest>) -> ChainHandle {
        ChainHandle {
            tx: TaskSender::Strong(tx),
        }
    }

    /// A handle that does not keep the chain task alive.
    pub fn downgrade(&self) -> ChainHandle {
        ChainHandle {
            tx: self.tx.downgrade(),
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

    /// Submits a block only if the chain task has room now (gossip: dropped when busy, sync
    /// repairs it); the verdict arrives on the receiver.
    pub fn try_submit_block(&self, block: Arc<Block>, origin: Origin) -> Option<oneshot::Receiver<BlockVerdict>> {
        self.try_ask(|reply| ChainRequest::SubmitBlock { block, origin, reply })
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

    /// Runs `f` on the chain thread with a read-only view of the chain, the mempool, the
    /// wallet and the miner at one moment, and returns what it returns.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl for<'a> FnOnce(&ChainView<'a>) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.ask(|reply| {
            ChainRequest::Read(Box::new(move |view: &ChainView<'_>| {
                let _ = reply.send(f(view));
            }))
        })
        .await
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
