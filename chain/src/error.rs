//! Error types of the chain crate: one enum per concern, variants a caller can act on.

use thiserror::Error;

use crate::amount::Amount;
use crate::hash::Hash256;

/// Bytes that failed to decode as a canonical value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// A violated consensus rule. One variant per rule, carrying the offending values.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    // --- context-free block rules ---
    #[error("block of {size} bytes exceeds the maximum of {max}")]
    BlockTooLarge { size: usize, max: usize },
    #[error("block has no transactions")]
    NoTransactions,
    #[error("first transaction is not a coinbase")]
    FirstTxNotCoinbase,
    #[error("transaction {index} is a second coinbase")]
    ExtraCoinbase { index: usize },
    #[error("merkle root {found} does not match the transactions ({expected})")]
    BadMerkleRoot { expected: Hash256, found: Hash256 },
    #[error("merkle tree repeats txid {0} (mutated block, CVE-2012-2459)")]
    MutatedMerkleTree(Hash256),
    #[error("duplicate transaction {0} in block")]
    DuplicateTx(Hash256),
    #[error("compact bits {bits:#010x} are negative, zero or overflow")]
    BadCompactBits { bits: u32 },
    #[error("target of bits {bits:#010x} is above the network's pow limit")]
    TargetAboveLimit { bits: u32 },
    #[error("block hash {hash} does not meet its target bits {bits:#010x}")]
    InsufficientProofOfWork { hash: Hash256, bits: u32 },

    // --- context-free transaction rules ---
    #[error("transaction has no inputs")]
    NoInputs,
    #[error("transaction has no outputs")]
    NoOutputs,
    #[error("transaction of {size} bytes exceeds the maximum of {max}")]
    TxTooLarge { size: usize, max: usize },
    #[error("output {index} value {value} exceeds the money supply {max}")]
    OutputTooLarge { index: usize, value: Amount, max: Amount },
    #[error("output total overflows or exceeds the money supply {max}")]
    OutputTotalTooLarge { max: Amount },
    #[error("transaction spends outpoint {txid}:{index} twice")]
    DuplicateInput { txid: Hash256, index: u32 },
    #[error("non-coinbase transaction has a null or coinbase input")]
    UnexpectedCoinbaseInput,
    #[error("coinbase must have exactly one null input, found {inputs} inputs")]
    BadCoinbaseShape { inputs: usize },
    #[error("coinbase message of {len} bytes exceeds {max}")]
    CoinbaseMessageTooLong { len: usize, max: usize },

    // --- contextual header rules ---
    #[error("parent block {0} is unknown")]
    UnknownParent(Hash256),
    #[error("parent block {0} is invalid")]
    InvalidParent(Hash256),
    #[error("header names parent {found}, but the header before it is {expected}")]
    BrokenLink { expected: Hash256, found: Hash256 },
    #[error("block {0} is known to be invalid")]
    KnownInvalid(Hash256),
    #[error("block height would pass {}", u32::MAX)]
    HeightOverflow,
    #[error("bits {found:#010x} differ from the expected difficulty {expected:#010x}")]
    BadDifficulty { expected: u32, found: u32 },
    #[error("time {time} is not after the median time past {median}")]
    TimeTooOld { time: u32, median: u32 },
    #[error("time {time} is more than {limit}s ahead of the node's clock {now}")]
    TimeTooNew { time: u32, now: u64, limit: u64 },
    #[error("block claims to be genesis but differs from the network's genesis")]
    WrongGenesis,
    #[error("ancestor at height {height} is unavailable")]
    MissingAncestor { height: u32 },

    // --- contextual transaction rules ---
    #[error("coinbase height {found} does not match block height {expected}")]
    BadCoinbaseHeight { expected: u32, found: u32 },
    #[error("input {txid}:{index} spends a missing or already spent output")]
    MissingOrSpentInput { txid: Hash256, index: u32 },
    #[error("output {txid}:{index} is spent twice in the block")]
    DoubleSpendInBlock { txid: Hash256, index: u32 },
    #[error("coinbase output {txid}:{index} is immature: height {height}, spendable at {mature_at}")]
    ImmatureCoinbase {
        txid: Hash256,
        index: u32,
        height: u32,
        mature_at: u32,
    },
    #[error("input {index} public key does not hash to the spent output's address")]
    PubkeyMismatch { index: usize },
    #[error("input {index} signature is invalid")]
    BadSignature { index: usize },
    #[error("inputs {inputs} are less than outputs {outputs}")]
    NegativeFee { inputs: Amount, outputs: Amount },
    #[error("input total overflows or exceeds the money supply")]
    InputTotalTooLarge,
    #[error("fee total overflows")]
    FeeOverflow,
    #[error("coinbase claims {claimed}, more than subsidy + fees {allowed}")]
    CoinbaseTooLarge { claimed: Amount, allowed: Amount },
}

/// Errors of the chain state: a broken rule, bad bytes, or trouble with the store.
#[derive(Debug, Error)]
pub enum ChainError {
    #[error("block {hash} is invalid: {rule}")]
    InvalidBlock { hash: Hash256, rule: ConsensusError },
    #[error("transaction {txid} is invalid: {rule}")]
    InvalidTx { txid: Hash256, rule: ConsensusError },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "data dir belongs to network {found_name:?} (genesis {found}), not {expected_name:?} (genesis {expected})"
    )]
    WrongNetwork {
        expected_name: String,
        expected: Hash256,
        found_name: String,
        found: Hash256,
    },
    #[error("data dir has storage format version {found}; this build reads version {expected}")]
    FormatVersion { found: u32, expected: u32 },
    #[error("unknown block {0}")]
    UnknownBlock(Hash256),
    #[error("chain verification failed at height {height}: {reason}")]
    VerifyFailed { height: u32, reason: String },
}

impl ChainError {
    /// The broken consensus rule, if this is one (callers penalise the sender).
    pub fn consensus_rule(&self) -> Option<&ConsensusError> {
        match self {
            ChainError::InvalidBlock { rule, .. } | ChainError::InvalidTx { rule, .. } => Some(rule),
            ChainError::Decode(_)
            | ChainError::Store(_)
            | ChainError::Corrupt(_)
            | ChainError::WrongNetwork { .. }
            | ChainError::FormatVersion { .. }
            | ChainError::UnknownBlock(_)
            | ChainError::VerifyFailed { .. } => None,
        }
    }
}
