//! The requests the chain task serves, each with its reply channel. Private to the chain
//! task's module: everyone else asks through [`ChainHandle`](super::ChainHandle)'s typed
//! methods.
//!
//! Writes change the chain, the mempool, the wallet or the miner. The reads here serve
//! peers (headers, block bytes); every other read goes through the shared lock instead
//! ([`ChainHandle::read`](super::ChainHandle::read), ADR 0021).

use std::sync::Arc;
use std::time::Duration;

use lode_chain::header::BlockHeader;
use lode_chain::{Amount, Block, Hash256, PubkeyHash, Transaction};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use super::verdict::{BlockVerdict, Origin, TxVerdict};
use crate::error::NodeError;
use crate::wallet::{SentPayment, WalletActionError};
use lode_chain::HeadersVerdict;

/// Why `generate` stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// No address given, none configured, and no wallet to issue one.
    #[error("no address to pay: {0}")]
    NoPayout(#[from] WalletActionError),
    /// A template could not be built or mined.
    #[error("cannot build a block: {0}")]
    Template(String),
    /// The chain refused a block it had just built (should not happen).
    #[error("generated block refused: {0}")]
    Refused(String),
    /// The transactions asked for do not make a valid block (`generateblock`).
    #[error("TestBlockValidity failed: {0}")]
    Invalid(String),
}

/// The operator's word on a block (`invalidateblock`, `reconsiderblock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockMark {
    /// Mark it (and its descendants) invalid; the best chain moves off it.
    Invalidate,
    /// Clear the marks of it, its descendants and its ancestors.
    Reconsider,
}

/// Why the operator's word on a block was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BlockMarkError {
    /// No block with this hash is indexed.
    #[error("Block not found")]
    NotFound,
    /// Not for this block (genesis).
    #[error("{0}")]
    NotAllowed(String),
    /// The store failed, or the node stopped accepting work.
    #[error("{0}")]
    Failed(String),
}

/// Requests to the chain task.
pub(super) enum ChainRequest {
    // ---- writes ----
    /// Validate and store a block; a local one stored on a valid branch is announced.
    SubmitBlock {
        block: Arc<Block>,
        origin: Origin,
        reply: oneshot::Sender<BlockVerdict>,
    },
    /// A block this node mined: submitted as a local block and followed by the mining
    /// ledger (found, stale, reward).
    SubmitMined {
        block: Arc<Block>,
        reward: Amount,
        reply: oneshot::Sender<BlockVerdict>,
    },
    /// Validate and store blocks fetched by sync, in order, one verdict each (stops at the
    /// first invalid one: the rest descend from it).
    SubmitBlocks {
        blocks: Vec<Arc<Block>>,
        reply: oneshot::Sender<Vec<BlockVerdict>>,
    },
    /// Judge (and keep) a transaction; a local one accepted is announced.
    SubmitTx {
        tx: Transaction,
        origin: Origin,
        reply: oneshot::Sender<TxVerdict>,
    },
    /// A sync round ended on this block: announce it if it is still the tip, so peers that
    /// only talk to us learn of the branch at once.
    AnnounceTip { block: Arc<Block> },
    /// An action of the built-in wallet.
    Wallet(WalletCommand),
    /// Start (`Some(threads)`, restarting a running miner) or stop (`None`) the embedded miner.
    SetMiner {
        threads: Option<usize>,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// Mine `n` blocks on the chain thread (fixed-difficulty networks), each connected and
    /// announced before the next is built.
    Generate {
        n: u64,
        address: Option<PubkeyHash>,
        reply: oneshot::Sender<Result<Vec<Hash256>, GenerateError>>,
    },
    /// Mine one block on the chain thread with exactly `txs` (fixed-difficulty networks);
    /// stored and announced if `submit`. Replies with the block.
    GenerateBlock {
        address: PubkeyHash,
        txs: Vec<Transaction>,
        submit: bool,
        reply: oneshot::Sender<Result<Block, GenerateError>>,
    },
    /// The operator's word on a block.
    MarkBlock {
        hash: Hash256,
        mark: BlockMark,
        reply: oneshot::Sender<Result<(), BlockMarkError>>,
    },
    /// Write the mempool snapshot now (`savemempool`): how many transactions, or why not.
    SaveMempool(oneshot::Sender<Result<usize, String>>),
    /// Timer: the miner's template refresh for fees, the wallet's unlock expiry.
    Tick,

    // ---- reads ----
    /// Check a batch of headers received during sync.
    CheckHeaders {
        headers: Vec<BlockHeader>,
        reply: oneshot::Sender<HeadersVerdict>,
    },
    /// Serve a peer: best-chain headers after the locator.
    HeadersAfter {
        locator: Vec<Hash256>,
        max: usize,
        reply: oneshot::Sender<Vec<BlockHeader>>,
    },
    /// Serve a peer: stored blocks' canonical bytes, `None` for unknown ones, stopping once
    /// `budget` bytes are collected (the caller asks again for the rest).
    BlockBytes {
        hashes: Vec<Hash256>,
        budget: usize,
        reply: oneshot::Sender<Vec<Option<Vec<u8>>>>,
    },
}

/// Actions of the built-in wallet.
pub(super) enum WalletCommand {
    /// Issue (and watch) a fresh receive address.
    NewAddress(oneshot::Sender<Result<String, WalletActionError>>),
    /// Build, admit and reserve a payment, with nothing in between.
    Send {
        to: String,
        amount: Amount,
        /// Units per byte; `None`: the mempool's estimate.
        fee_rate: Option<u64>,
        reply: oneshot::Sender<Result<SentPayment, WalletActionError>>,
    },
    /// Unlock for a time.
    Unlock {
        passphrase: Zeroizing<String>,
        timeout: Duration,
        reply: oneshot::Sender<Result<(), WalletActionError>>,
    },
    /// Forget the unlocked keys.
    Lock(oneshot::Sender<Result<(), WalletActionError>>),
    /// Encrypt with a passphrase (the wallet is then locked).
    Encrypt {
        passphrase: Zeroizing<String>,
        reply: oneshot::Sender<Result<(), WalletActionError>>,
    },
    /// The mnemonic and account (needs the wallet unlocked).
    Mnemonic(oneshot::Sender<Result<(Zeroizing<String>, u32), WalletActionError>>),
}
