//! The chain task: the one writer of the chain state.
//!
//! It runs on its own OS thread (sled and validation block; they must not stall the tokio
//! workers or the swarm) and serves [`ChainCommand`]s from a bounded channel in arrival
//! order, so blocks submitted in order are connected in order. Every command carries a
//! oneshot reply; the caller never waits on a lock. After every block it publishes the new
//! [`TipInfo`] on a watch channel and the chain's events on a broadcast channel, so readers
//! (network, progress, tests, later RPC and wallet) see the tip without asking.
//!
//! Transactions go through the [`TxSink`] seam: the node uses [`MempoolSink`] (the chain
//! crate's mempool: keeps, orders, replaces and re-admits transactions on reorgs, fed every
//! chain event); [`TipCheck`] validates against the tip and keeps nothing.

use std::sync::Arc;

use lode_chain::error::{ChainError, ConsensusError};
use lode_chain::header::BlockHeader;
use lode_chain::mempool::{Mempool, TxAccepted};
use lode_chain::pow::ChainWork;
use lode_chain::validation::spend::verify_tx_signatures;
use lode_chain::validation::{check_transaction, check_tx_inputs};
use lode_chain::{AcceptStatus, Block, ChainEvent, ChainState, Hash256, Height, Transaction};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// The best chain's tip as seen by everyone but the chain task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipInfo {
    /// Tip hash.
    pub hash: Hash256,
    /// Tip height.
    pub height: Height,
    /// Cumulative work of the best chain.
    pub work: ChainWork,
    /// Tip header (its time and bits are what a block builder needs).
    pub header: BlockHeader,
    /// Block locator of the best chain (for headers-first sync).
    pub locator: Vec<Hash256>,
}

/// What the chain made of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Stored (see the status: connected, side branch, known, orphan, or found invalid
    /// while connecting).
    Accepted(AcceptStatus),
    /// Refused before storage: the sender broke this rule.
    Rejected(ConsensusError),
    /// Local trouble (storage); says nothing about the sender.
    Failed(String),
}

impl BlockVerdict {
    /// The broken rule, if the block was invalid either way.
    pub fn broken_rule(&self) -> Option<&ConsensusError> {
        match self {
            BlockVerdict::Rejected(rule) | BlockVerdict::Accepted(AcceptStatus::Invalid { rule }) => Some(rule),
            BlockVerdict::Accepted(_) | BlockVerdict::Failed(_) => None,
        }
    }
}

/// What the transaction sink made of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxVerdict {
    /// Valid against the tip: relay it.
    Accepted {
        /// Its txid.
        txid: Hash256,
    },
    /// Invalid whatever the chain: the sender broke a consensus rule (penalised).
    Rejected {
        /// Its txid.
        txid: Hash256,
        /// The broken rule.
        reason: String,
    },
    /// Not relayed, but not the sender's fault (unknown inputs, already known, busy).
    Ignored {
        /// Its txid.
        txid: Hash256,
        /// Why.
        reason: String,
    },
}

/// What checking a batch of headers found (the chain's type, under the name the node uses).
pub use lode_chain::HeadersVerdict;

/// Requests to the chain task. Each carries its reply channel.
pub enum ChainCommand {
    /// Validate and store a block.
    SubmitBlock {
        /// The block.
        block: Arc<Block>,
        /// The verdict.
        reply: oneshot::Sender<BlockVerdict>,
    },
    /// Validate and store blocks in order (sync), one verdict each.
    SubmitBlocks {
        /// The blocks, parents first.
        blocks: Vec<Arc<Block>>,
        /// The verdicts, in the same order.
        reply: oneshot::Sender<Vec<BlockVerdict>>,
    },
    /// Validate a transaction (see [`TxSink`]).
    SubmitTx {
        /// The transaction.
        tx: Transaction,
        /// The verdict.
        reply: oneshot::Sender<TxVerdict>,
    },
    /// Check a batch of headers received during sync.
    CheckHeaders {
        /// Headers, parents first.
        headers: Vec<BlockHeader>,
        /// The verdict.
        reply: oneshot::Sender<HeadersVerdict>,
    },
    /// Serve a peer: best-chain headers after the locator.
    HeadersAfter {
        /// The peer's locator.
        locator: Vec<Hash256>,
        /// At most this many.
        max: usize,
        /// The headers.
        reply: oneshot::Sender<Vec<BlockHeader>>,
    },
    /// Serve a peer: stored blocks' canonical bytes, `None` for unknown ones, stopping once
    /// `budget` bytes are collected (the caller asks again for the rest).
    BlockBytes {
        /// Hashes wanted.
        hashes: Vec<Hash256>,
        /// Byte budget of the answer.
        budget: usize,
        /// One entry per hash served, in order.
        reply: oneshot::Sender<Vec<Option<Vec<u8>>>>,
    },
    /// Transactions held by the sink (the mempool).
    MempoolTxids {
        /// Their txids.
        reply: oneshot::Sender<Vec<Hash256>>,
    },
    /// Timer: lets the miner refresh its template for more fees.
    Tick,
    /// The built-in wallet's balance and addresses (`None` without a wallet).
    WalletInfo {
        /// The answer.
        reply: oneshot::Sender<Option<WalletInfo>>,
    },
    /// Best-chain hash at a height.
    HashAt {
        /// The height.
        height: Height,
        /// The hash, if the chain is that long.
        reply: oneshot::Sender<Option<Hash256>>,
    },
    /// Runs a closure on the chain thread with the whole task: how the RPC reads the chain,
    /// the mempool and the wallet, and acts on them (a payment is built, admitted and
    /// reserved in one step, with no other command in between). The closure replies
    /// through a channel it captured; it must not block on anything but the chain.
    Run(Box<dyn FnOnce(&mut ChainTask) + Send>),
}

/// What the built-in wallet holds.
#[derive(Clone, Debug)]
pub struct WalletInfo {
    /// Balances (spendable, immature with maturity heights, reserved, pending).
    pub balance: lode_wallet::tracker::Balance,
    /// Receive addresses issued so far.
    pub addresses: Vec<String>,
    /// The wallet's first receive address (watched from the start).
    pub first_address: Option<String>,
    /// Confirmed history: (txid, height, net amount in base units).
    pub history: Vec<(Hash256, Option<Height>, i128)>,
}

/// The seam where the mempool plugs in: the chain task hands it every transaction and
/// every chain event, with the chain state for context.
pub trait TxSink: Send {
    /// Judges (and, for a mempool, keeps) a transaction.
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict;
    /// Sees every best-chain change (a mempool evicts mined and re-admits reorged txs).
    fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent);
    /// Transactions held (none for a sink that keeps nothing).
    fn txids(&self) -> Vec<Hash256>;
    /// Transactions that entered the pool without being submitted (returned from
    /// disconnected blocks, orphans whose parents arrived): peers have not seen them from
    /// us, so they are announced. Drained by the chain task after every command.
    fn take_relay(&mut self) -> Vec<Arc<Transaction>>;
    /// The pool, if this sink keeps one (the miner takes its transactions from it).
    fn mempool(&self) -> Option<&Mempool> {
        None
    }
}

/// The mempool as the transaction sink: what it accepts is relayed; what breaks consensus
/// is penalised; policy refusals, conflicts and orphans are neither (they depend on what
/// this node has seen).
pub struct MempoolSink {
    pool: Mempool,
    relay: Vec<Hash256>,
}

impl MempoolSink {
    /// An empty pool with the network's default policy.
    pub fn new(params: &lode_chain::ChainParams) -> MempoolSink {
        MempoolSink {
            pool: Mempool::new(params, lode_chain::state::system_clock()),
            relay: Vec::new(),
        }
    }
}

impl TxSink for MempoolSink {
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict {
        let txid = tx.txid();
        match self.pool.accept(Arc::new(tx), chain) {
            Ok(TxAccepted::Added { orphans_added, .. }) => {
                self.relay.extend(orphans_added);
                TxVerdict::Accepted { txid }
            }
            Ok(TxAccepted::Orphan { missing, .. }) => TxVerdict::Ignored {
                txid,
                reason: format!("waits for {} unknown parent(s)", missing.len()),
            },
            Err(e) if e.breaks_consensus() => TxVerdict::Rejected {
                txid,
                reason: e.to_string(),
            },
            Err(e) => TxVerdict::Ignored {
                txid,
                reason: e.to_string(),
            },
        }
    }

    fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent) {
        let update = self.pool.apply(event, chain);
        self.relay
            .extend(update.returned.iter().chain(&update.orphans_added).copied());
        if !update.dropped.is_empty() {
            tracing::debug!(
                dropped = update.dropped.len(),
                "mempool dropped transactions after a reorg"
            );
        }
    }

    fn txids(&self) -> Vec<Hash256> {
        self.pool.txids()
    }

    fn mempool(&self) -> Option<&Mempool> {
        Some(&self.pool)
    }

    fn take_relay(&mut self) -> Vec<Arc<Transaction>> {
        // Only what is still in the pool (a later event may have confirmed or dropped it).
        std::mem::take(&mut self.relay)
            .iter()
            .filter_map(|txid| self.pool.get(txid).map(|e| e.tx().clone()))
            .collect()
    }
}

/// A sink that keeps nothing: full validation against the tip only (for embedders and
/// tests that want no pool).
#[derive(Debug, Default)]
pub struct TipCheck;

impl TxSink for TipCheck {
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict {
        let txid = tx.txid();
        let params = chain.params();
        if let Err(rule) = check_transaction(&tx, params) {
            return TxVerdict::Rejected {
                txid,
                reason: rule.to_string(),
            };
        }
        if tx.is_coinbase() {
            return TxVerdict::Rejected {
                txid,
                reason: ConsensusError::UnexpectedCoinbaseInput.to_string(),
            };
        }
        let spend_height = Height(chain.height().0.saturating_add(1));
        let genesis = chain.genesis_hash();
        let inputs = match check_tx_inputs(&tx, txid, chain.store(), spend_height, params, &genesis) {
            Ok(i) => i,
            // Unknown inputs may be a parent we have not seen yet: not the sender's fault.
            Err(ChainError::InvalidTx {
                rule: ConsensusError::MissingOrSpentInput { .. },
                ..
            }) => {
                return TxVerdict::Ignored {
                    txid,
                    reason: "spends an unknown or spent output".into(),
                }
            }
            Err(e) => return tx_error(txid, e),
        };
        match verify_tx_signatures(txid, &inputs.signatures) {
            Ok(()) => TxVerdict::Accepted { txid },
            Err(e) => tx_error(txid, e),
        }
    }

    fn on_chain_event(&mut self, _chain: &ChainState, _event: &ChainEvent) {}

    fn txids(&self) -> Vec<Hash256> {
        Vec::new()
    }

    fn take_relay(&mut self) -> Vec<Arc<Transaction>> {
        Vec::new()
    }
}

fn tx_error(txid: Hash256, e: ChainError) -> TxVerdict {
    match e.consensus_rule() {
        Some(rule) => TxVerdict::Rejected {
            txid,
            reason: rule.to_string(),
        },
        None => TxVerdict::Ignored {
            txid,
            reason: e.to_string(),
        },
    }
}

/// Channels the chain task publishes on.
pub struct ChainOutputs {
    /// The tip after every change.
    pub tip: watch::Sender<TipInfo>,
    /// Chain events (connects, disconnects, reorgs).
    pub events: broadcast::Sender<ChainEvent>,
    /// Transactions to announce (see [`TxSink::take_relay`]). A broadcast, not an mpsc:
    /// the chain task never blocks on the network (which itself waits on the chain task).
    pub relay_txs: broadcast::Sender<Arc<Transaction>>,
    /// Txids the sink accepted (RPC event stream); no receiver is fine.
    pub accepted_txs: broadcast::Sender<Hash256>,
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

/// The chain task: owns the chain state, the transaction sink, and (optionally) the
/// built-in wallet's view and the miner's template feed.
pub struct ChainTask {
    chain: ChainState,
    txs: Box<dyn TxSink>,
    out: ChainOutputs,
    wallet: Option<crate::mining::NodeWallet>,
    miner: Option<crate::mining::NodeMiner>,
    mining_address: Option<lode_chain::PubkeyHash>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ChainTask {
    /// A task over an opened chain.
    pub fn new(chain: ChainState, txs: Box<dyn TxSink>, out: ChainOutputs) -> ChainTask {
        ChainTask {
            chain,
            txs,
            out,
            wallet: None,
            miner: None,
            mining_address: None,
            metrics: None,
        }
    }

    /// Where a miner started later (RPC `setgenerate`) pays instead of a fresh wallet address.
    pub fn with_mining_address(mut self, pkh: Option<lode_chain::PubkeyHash>) -> ChainTask {
        self.mining_address = pkh;
        self
    }

    /// Records block validation times and chain figures.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> ChainTask {
        self.metrics = Some(metrics);
        self
    }

    /// The mempool, if the transaction sink keeps one.
    pub fn mempool(&self) -> Option<&Mempool> {
        self.txs.mempool()
    }

    /// The built-in wallet.
    pub fn wallet(&self) -> Option<&crate::mining::NodeWallet> {
        self.wallet.as_ref()
    }

    /// The built-in wallet, to act on.
    pub fn wallet_mut(&mut self) -> Option<&mut crate::mining::NodeWallet> {
        self.wallet.as_mut()
    }

    /// Takes the wallet out (to use it beside the chain); give it back with
    /// [`ChainTask::put_wallet`] before the closure returns.
    pub fn take_wallet(&mut self) -> Option<crate::mining::NodeWallet> {
        self.wallet.take()
    }

    /// Puts the wallet back.
    pub fn put_wallet(&mut self, wallet: crate::mining::NodeWallet) {
        self.wallet = Some(wallet);
    }

    /// The embedded miner, if mining.
    pub fn miner(&self) -> Option<&crate::mining::NodeMiner> {
        self.miner.as_ref()
    }

    /// Installs or removes (stops) the embedded miner. A new miner gets a template at once.
    pub fn set_miner(&mut self, miner: Option<crate::mining::NodeMiner>) {
        self.miner = miner;
    }

    /// The configured coinbase address, if any.
    pub fn mining_address(&self) -> Option<lode_chain::PubkeyHash> {
        self.mining_address
    }

    /// Judges (and keeps) a transaction, as if it had arrived from a peer.
    pub fn submit_tx(&mut self, tx: Transaction) -> TxVerdict {
        let verdict = self.txs.submit(&self.chain, tx);
        if let TxVerdict::Accepted { txid } = &verdict {
            let _ = self.out.accepted_txs.send(*txid);
        }
        verdict
    }

    /// Validates and stores a block, feeding every consumer its events, and publishes the
    /// new tip.
    pub fn submit_block(&mut self, block: Arc<Block>) -> BlockVerdict {
        let v = self.accept(block);
        self.publish_tip();
        v
    }

    /// Keeps the built-in wallet's view current.
    pub fn with_wallet(mut self, wallet: crate::mining::NodeWallet) -> ChainTask {
        self.wallet = Some(wallet);
        self
    }

    /// Feeds the embedded miner templates.
    pub fn with_miner(mut self, miner: crate::mining::NodeMiner) -> ChainTask {
        self.miner = Some(miner);
        self
    }

    /// The chain (for start-up work before the task runs).
    pub fn chain(&self) -> &ChainState {
        &self.chain
    }

    /// Serves commands until every sender is gone, then flushes the store. Blocking: run it
    /// on its own thread. Commands already queued are finished first, so a block being
    /// written at shutdown is written whole.
    pub fn run(mut self, mut rx: mpsc::Receiver<ChainCommand>) -> Result<(), ChainError> {
        while let Some(cmd) = rx.blocking_recv() {
            self.handle(cmd);
        }
        self.chain.flush()?;
        tracing::debug!(height = self.chain.height().0, "chain task stopped, store flushed");
        Ok(())
    }

    fn handle(&mut self, cmd: ChainCommand) {
        self.serve(cmd);
        if let (Some(miner), Some(pool)) = (self.miner.as_mut(), self.txs.mempool()) {
            miner.update(&self.chain, pool);
        }
        for tx in self.txs.take_relay() {
            // No receiver (network stopped) is fine.
            let _ = self.out.relay_txs.send(tx);
        }
    }

    fn serve(&mut self, cmd: ChainCommand) {
        // A dropped reply receiver only means the asker went away: nothing to do.
        match cmd {
            ChainCommand::SubmitBlock { block, reply } => {
                let verdict = self.accept(block);
                self.publish_tip();
                let _ = reply.send(verdict);
            }
            ChainCommand::SubmitBlocks { blocks, reply } => {
                let mut verdicts = Vec::with_capacity(blocks.len());
                for block in blocks {
                    let v = self.accept(block);
                    let stop = v.broken_rule().is_some();
                    verdicts.push(v);
                    // The rest descend from an invalid block: not worth validating.
                    if stop {
                        break;
                    }
                }
                self.publish_tip();
                let _ = reply.send(verdicts);
            }
            ChainCommand::SubmitTx { tx, reply } => {
                let _ = reply.send(self.submit_tx(tx));
            }
            ChainCommand::CheckHeaders { headers, reply } => {
                let _ = reply.send(self.check_headers(&headers));
            }
            ChainCommand::HeadersAfter { locator, max, reply } => {
                let _ = reply.send(self.chain.headers_after(&locator, max, None));
            }
            ChainCommand::BlockBytes { hashes, budget, reply } => {
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
                let _ = reply.send(out);
            }
            ChainCommand::MempoolTxids { reply } => {
                let _ = reply.send(self.txs.txids());
            }
            ChainCommand::Tick => {
                if let Some(w) = self.wallet.as_mut() {
                    w.wallet.expire();
                }
            }
            ChainCommand::WalletInfo { reply } => {
                let info = self.wallet.as_ref().map(|w| WalletInfo {
                    balance: w.tracker.balance(),
                    addresses: w.wallet.issued_addresses(),
                    first_address: w.wallet.receive_address(0),
                    history: w
                        .tracker
                        .history()
                        .iter()
                        .map(|h| (h.txid, h.height, h.net()))
                        .collect(),
                });
                let _ = reply.send(info);
            }
            ChainCommand::HashAt { height, reply } => {
                let _ = reply.send(self.chain.hash_at(height));
            }
            ChainCommand::Run(f) => f(self),
        }
    }

    fn accept(&mut self, block: Arc<Block>) -> BlockVerdict {
        let started = std::time::Instant::now();
        let result = self.chain.accept_block(block);
        if let Some(m) = &self.metrics {
            m.block_validation.observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(outcome) => {
                for event in &outcome.events {
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
                            "reorganised onto a branch with more work"
                        );
                    }
                    self.txs.on_chain_event(&self.chain, event);
                    if let Some(w) = self.wallet.as_mut() {
                        w.on_chain_event(&self.chain, event);
                    }
                    if let Some(m) = self.miner.as_ref() {
                        m.on_chain_event(event);
                    }
                    // No subscribers is normal.
                    let _ = self.out.events.send(event.clone());
                }
                BlockVerdict::Accepted(outcome.status)
            }
            Err(e) => match e.consensus_rule() {
                Some(rule) => BlockVerdict::Rejected(rule.clone()),
                None => {
                    tracing::error!(error = %e, "chain store failed while accepting a block");
                    BlockVerdict::Failed(e.to_string())
                }
            },
        }
    }

    fn publish_tip(&self) {
        let tip = tip_info(&self.chain);
        self.out.tip.send_if_modified(|cur| {
            if cur.hash == tip.hash {
                false
            } else {
                *cur = tip;
                true
            }
        });
    }

    /// Headers-first: the chain's check of a batch whose first parent we know, before any
    /// body is asked for.
    fn check_headers(&self, headers: &[BlockHeader]) -> HeadersVerdict {
        self.chain.check_header_batch(headers)
    }
}
