//! Error types of the chain crate: one enum per concern, variants a caller can act on.

use thiserror::Error;

use crate::amount::Amount;
use crate::hash::Hash256;

/// Bytes that failed to decode as a canonical value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than the value may have.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    /// Bytes that are not a valid encoding of the value.
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// A violated consensus rule. One variant per rule, carrying the offending values.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    // --- context-free block rules ---
    /// The encoded block exceeds the network's size limit.
    #[error("block of {size} bytes exceeds the maximum of {max}")]
    BlockTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A block without even a coinbase.
    #[error("block has no transactions")]
    NoTransactions,
    /// The block's first transaction is not its coinbase.
    #[error("first transaction is not a coinbase")]
    FirstTxNotCoinbase,
    /// A coinbase after the first transaction.
    #[error("transaction {index} is a second coinbase")]
    ExtraCoinbase {
        /// Position of the extra coinbase in the block.
        index: usize,
    },
    /// The header's merkle root does not commit to the block's transactions.
    #[error("merkle root {found} does not match the transactions ({expected})")]
    BadMerkleRoot {
        /// Root computed from the transactions.
        expected: Hash256,
        /// Root in the header.
        found: Hash256,
    },
    /// Duplicated txids that give the same merkle root as another block (CVE-2012-2459).
    #[error("merkle tree repeats txid {0} (mutated block, CVE-2012-2459)")]
    MutatedMerkleTree(Hash256),
    /// The same transaction twice in one block.
    #[error("duplicate transaction {0} in block")]
    DuplicateTx(Hash256),
    /// Compact bits that encode no valid positive target.
    #[error("compact bits {bits:#010x} are negative, zero or overflow")]
    BadCompactBits {
        /// The compact bits.
        bits: u32,
    },
    /// A target easier than the network's pow limit.
    #[error("target of bits {bits:#010x} is above the network's pow limit")]
    TargetAboveLimit {
        /// The compact bits.
        bits: u32,
    },
    /// The block hash does not meet the target its bits state.
    #[error("block hash {hash} does not meet its target bits {bits:#010x}")]
    InsufficientProofOfWork {
        /// The block hash.
        hash: Hash256,
        /// The compact bits.
        bits: u32,
    },

    // --- context-free transaction rules ---
    /// A transaction with no inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// A transaction with no outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// The encoded transaction exceeds the network's size limit.
    #[error("transaction of {size} bytes exceeds the maximum of {max}")]
    TxTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// One output is worth more than the money supply.
    #[error("output {index} value {value} exceeds the money supply {max}")]
    OutputTooLarge {
        /// Position of the output.
        index: usize,
        /// Its value.
        value: Amount,
        /// The money supply.
        max: Amount,
    },
    /// The outputs together overflow or exceed the money supply.
    #[error("output total overflows or exceeds the money supply {max}")]
    OutputTotalTooLarge {
        /// The money supply.
        max: Amount,
    },
    /// One transaction spends the same outpoint twice.
    #[error("transaction spends outpoint {txid}:{index} twice")]
    DuplicateInput {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
    },
    /// A null (coinbase) input outside a coinbase.
    #[error("non-coinbase transaction has a null or coinbase input")]
    UnexpectedCoinbaseInput,
    /// A coinbase without exactly one null input.
    #[error("coinbase must have exactly one null input, found {inputs} inputs")]
    BadCoinbaseShape {
        /// Number of inputs the coinbase has.
        inputs: usize,
    },
    /// The coinbase's free-text message is too long.
    #[error("coinbase message of {len} bytes exceeds {max}")]
    CoinbaseMessageTooLong {
        /// Message length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    // --- contextual header rules ---
    /// The block's parent is not known.
    #[error("parent block {0} is unknown")]
    UnknownParent(Hash256),
    /// The block's parent is known to be invalid.
    #[error("parent block {0} is invalid")]
    InvalidParent(Hash256),
    /// A header in a batch does not build on the header before it.
    #[error("header names parent {found}, but the header before it is {expected}")]
    BrokenLink {
        /// Hash of the header before it.
        expected: Hash256,
        /// The parent hash it names.
        found: Hash256,
    },
    /// The block itself is already known to be invalid.
    #[error("block {0} is known to be invalid")]
    KnownInvalid(Hash256),
    /// The block would sit past the largest height there can be.
    #[error("block height would pass {}", u32::MAX)]
    HeightOverflow,
    /// The first block of a 2016-block retarget period is dated too far before its parent
    /// (BIP 94's time-warp guard).
    #[error(
        "time {time} of the first block of a retarget period is more than {max_back} s before its parent's {parent}"
    )]
    TimeWarp {
        /// The header's time.
        time: u32,
        /// The parent's time.
        parent: u32,
        /// How far back it may go.
        max_back: u32,
    },
    /// Bits other than the difficulty algorithm demands.
    #[error("bits {found:#010x} differ from the expected difficulty {expected:#010x}")]
    BadDifficulty {
        /// Bits the difficulty algorithm demands.
        expected: u32,
        /// Bits in the header.
        found: u32,
    },
    /// Time not after the median of the previous 11 blocks.
    #[error("time {time} is not after the median time past {median}")]
    TimeTooOld {
        /// The header's time.
        time: u32,
        /// Median time past of the previous 11 blocks.
        median: u32,
    },
    /// Time too far ahead of the node's clock (may be valid later).
    #[error("time {time} is more than {limit}s ahead of the node's clock {now}")]
    TimeTooNew {
        /// The header's time.
        time: u32,
        /// The node's clock, seconds since the Unix epoch.
        now: u64,
        /// Seconds a time may run ahead of the clock.
        limit: u64,
    },
    /// A block at height 0 that is not the network's genesis.
    #[error("block claims to be genesis but differs from the network's genesis")]
    WrongGenesis,
    /// An ancestor a rule needs is not available.
    #[error("ancestor at height {height} is unavailable")]
    MissingAncestor {
        /// Height of the missing ancestor.
        height: u32,
    },

    // --- contextual transaction rules ---
    /// The coinbase commits to another height than the block's.
    #[error("coinbase height {found} does not match block height {expected}")]
    BadCoinbaseHeight {
        /// The block's height.
        expected: u32,
        /// Height in the coinbase.
        found: u32,
    },
    /// An input spends an output that does not exist or is spent.
    #[error("input {txid}:{index} spends a missing or already spent output")]
    MissingOrSpentInput {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
    },
    /// Two transactions of one block spend the same output.
    #[error("output {txid}:{index} is spent twice in the block")]
    DoubleSpendInBlock {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
    },
    /// An input spends a coinbase output before it matured.
    #[error("coinbase output {txid}:{index} is immature: height {height}, spendable at {mature_at}")]
    ImmatureCoinbase {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
        /// Height of the coinbase that made the output.
        height: u32,
        /// First height at which the output may be spent.
        mature_at: u32,
    },
    /// An input's public key does not hash to the spent output's address.
    #[error("input {index} public key does not hash to the spent output's address")]
    PubkeyMismatch {
        /// Position of the input.
        index: usize,
    },
    /// An input's signature does not verify.
    #[error("input {index} signature is invalid")]
    BadSignature {
        /// Position of the input.
        index: usize,
    },
    /// Outputs worth more than the inputs.
    #[error("inputs {inputs} are less than outputs {outputs}")]
    NegativeFee {
        /// Total of the inputs.
        inputs: Amount,
        /// Total of the outputs.
        outputs: Amount,
    },
    /// The inputs together overflow or exceed the money supply.
    #[error("input total overflows or exceeds the money supply")]
    InputTotalTooLarge,
    /// The block's fees together overflow.
    #[error("fee total overflows")]
    FeeOverflow,
    /// The coinbase pays more than the subsidy plus the fees.
    #[error("coinbase claims {claimed}, more than subsidy + fees {allowed}")]
    CoinbaseTooLarge {
        /// Total the coinbase pays.
        claimed: Amount,
        /// Subsidy plus fees.
        allowed: Amount,
    },
}

/// Errors of the chain state: a broken rule, bad bytes, or trouble with the store.
#[derive(Debug, Error)]
pub enum ChainError {
    /// A block broke a consensus rule.
    #[error("block {hash} is invalid: {rule}")]
    InvalidBlock {
        /// The block's hash.
        hash: Hash256,
        /// The broken rule.
        rule: ConsensusError,
    },
    /// A transaction broke a consensus rule.
    #[error("transaction {txid} is invalid: {rule}")]
    InvalidTx {
        /// The transaction's txid.
        txid: Hash256,
        /// The broken rule.
        rule: ConsensusError,
    },
    /// Stored or received bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The sled store failed.
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
    /// The store holds data that contradicts itself.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// sled could not open the store at all (a damaged log, or sled panicked reading it).
    /// The store was left as it was.
    #[error("the chain store at {path} cannot be opened: {reason}")]
    Unopenable {
        /// The store's directory.
        path: String,
        /// sled's error or panic message.
        reason: String,
    },
    /// The data dir was made for another network.
    #[error(
        "data dir belongs to network {found_name:?} (genesis {found}), not {expected_name:?} (genesis {expected})"
    )]
    WrongNetwork {
        /// Name of the network this node runs.
        expected_name: String,
        /// Genesis hash of the network this node runs.
        expected: Hash256,
        /// Name of the network the data dir was made for.
        found_name: String,
        /// Genesis hash stored in the data dir.
        found: Hash256,
    },
    /// The data dir has a storage format this build does not read.
    #[error("data dir has storage format version {found}; this build reads version {expected}")]
    FormatVersion {
        /// Version stored in the data dir.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// No block with this hash is known.
    #[error("unknown block {0}")]
    UnknownBlock(Hash256),
    /// The operation is not allowed on this block (invalidating genesis).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// Re-verifying the stored chain found a fault.
    #[error("chain verification failed at height {height}: {reason}")]
    VerifyFailed {
        /// Height of the block where it failed.
        height: u32,
        /// What was wrong.
        reason: String,
    },
}

/// True if `e` says the disk (or the file system's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux; the kind covers the other platforms.
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28) | Some(122))
}

impl ChainError {
    /// True if the store failed because the disk is full: nothing is wrong with the data,
    /// but no more can be written until space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ChainError::Store(sled::Error::Io(e)) => is_disk_full(e),
            ChainError::Store(_)
            | ChainError::InvalidBlock { .. }
            | ChainError::InvalidTx { .. }
            | ChainError::Decode(_)
            | ChainError::Corrupt(_)
            | ChainError::Unopenable { .. }
            | ChainError::WrongNetwork { .. }
            | ChainError::FormatVersion { .. }
            | ChainError::UnknownBlock(_)
            | ChainError::NotAllowed(_)
            | ChainError::VerifyFailed { .. } => false,
        }
    }

    /// The broken consensus rule, if this is one (callers penalise the sender).
    pub fn consensus_rule(&self) -> Option<&ConsensusError> {
        match self {
            ChainError::InvalidBlock { rule, .. } | ChainError::InvalidTx { rule, .. } => Some(rule),
            ChainError::Decode(_)
            | ChainError::Store(_)
            | ChainError::Corrupt(_)
            | ChainError::Unopenable { .. }
            | ChainError::WrongNetwork { .. }
            | ChainError::FormatVersion { .. }
            | ChainError::UnknownBlock(_)
            | ChainError::NotAllowed(_)
            | ChainError::VerifyFailed { .. } => None,
        }
    }
}
