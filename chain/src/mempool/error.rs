//! Why the mempool refused a transaction: one variant per reason, carrying the numbers. The
//! RPC returns the `Display` text verbatim, so messages are lower-case and self-contained.

use thiserror::Error;

use crate::amount::Amount;
use crate::error::{ChainError, ConsensusError};
use crate::hash::Hash256;

/// A refused transaction.
#[derive(Debug, Error)]
pub enum MempoolError {
    /// Coinbases exist only inside blocks.
    #[error("coinbase transactions are only valid in a block")]
    Coinbase,
    /// Larger than the network's transaction size limit.
    #[error("transaction of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The network's limit.
        max: usize,
    },
    /// Breaks a context-free consensus rule (shape, value ranges, duplicate inputs).
    #[error("transaction breaks a consensus rule: {0}")]
    Consensus(ConsensusError),
    /// Already in the mempool.
    #[error("transaction {0} is already in the mempool")]
    AlreadyInPool(Hash256),
    /// Already waiting in the orphan pool for a parent.
    #[error("transaction {0} is already waiting for its parents")]
    AlreadyOrphan(Hash256),
    /// Already in the best chain.
    #[error("transaction {0} is already confirmed")]
    AlreadyConfirmed(Hash256),
    /// An input names an output that does not exist or is already spent in the best chain
    /// (its transaction is known, so this is not an orphan).
    #[error("input {txid}:{index} is missing or already spent")]
    MissingOrSpent {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
    },
    /// Spends an output a mempool transaction already spends, and replacement is disabled.
    #[error("input {txid}:{index} is already spent by mempool transaction {spent_by}")]
    Conflict {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
        /// The mempool transaction that spends it.
        spent_by: Hash256,
    },
    /// Spends a coinbase output before it matured.
    #[error(
        "input {txid}:{index} spends a coinbase from height {height}, spendable at height {mature_at}, next block is {spend_height}"
    )]
    ImmatureCoinbase {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
        /// Height of the coinbase that made the output.
        height: u32,
        /// First height at which the output may be spent.
        mature_at: u32,
        /// Height of the next block, where it would be mined.
        spend_height: u32,
    },
    /// An input's public key does not hash to the address of the output it spends.
    #[error("input {index} public key does not match the spent output's address")]
    WrongKey {
        /// Position of the input.
        index: usize,
    },
    /// An input's signature does not verify.
    #[error("input {index} signature is invalid")]
    InvalidSignature {
        /// Position of the input.
        index: usize,
    },
    /// Outputs exceed inputs.
    #[error("outputs {outputs} exceed inputs {inputs}")]
    OutputsExceedInputs {
        /// Total of the inputs.
        inputs: Amount,
        /// Total of the outputs.
        outputs: Amount,
    },
    /// Fee below the minimum relay fee rate for its size.
    #[error("fee {fee} units for {size} bytes is below the minimum relay fee {min_fee} units ({rate} per byte)")]
    FeeTooLow {
        /// Fee paid, base units.
        fee: u64,
        /// Encoded size in bytes.
        size: usize,
        /// Fee the relay rate asks for this size, base units.
        min_fee: u64,
        /// The minimum relay fee rate, base units per byte.
        rate: u64,
    },
    /// Too many unconfirmed ancestors (counting itself).
    #[error("transaction would have {count} unconfirmed ancestors including itself, limit {max}")]
    TooManyAncestors {
        /// Unconfirmed ancestors it would have, itself included.
        count: usize,
        /// The policy limit.
        max: usize,
    },
    /// An unconfirmed ancestor would get too many descendants (counting itself).
    #[error("ancestor {ancestor} would have {count} descendants including itself, limit {max}")]
    TooManyDescendants {
        /// The ancestor that would have too many.
        ancestor: Hash256,
        /// Descendants it would have, itself included.
        count: usize,
        /// The policy limit.
        max: usize,
    },
    /// The pool is full and this transaction's package pays the lowest rate in it.
    #[error("mempool full: fee {fee} units for {size} bytes pays less than the transactions kept")]
    PoolFull {
        /// Fee of its package, base units.
        fee: u64,
        /// Size of its package in bytes.
        size: usize,
    },
    /// Read back from disk after it had been in the pool longer than the expiry allows.
    #[error("transaction entered the mempool {age} s ago, past the expiry of {max} s")]
    Expired {
        /// Seconds since it first entered the pool.
        age: u64,
        /// The policy's expiry in seconds.
        max: u64,
    },
    /// Replacement would evict too many transactions (BIP125 rule 5).
    #[error("replacement would evict {count} transactions, limit {max}")]
    RbfTooManyEvictions {
        /// Transactions it would evict.
        count: usize,
        /// The policy limit.
        max: usize,
    },
    /// Replacement spends an output of a transaction it would evict.
    #[error("replacement spends an output of {0}, which it would evict")]
    RbfSpendsEvicted(Hash256),
    /// Replacement adds an unconfirmed input its conflicts did not have (BIP125 rule 2).
    #[error("replacement adds unconfirmed input {txid}:{index} that no replaced transaction spent")]
    RbfNewUnconfirmedInput {
        /// Txid of the transaction whose output is spent.
        txid: Hash256,
        /// Index of the spent output in that transaction.
        index: u32,
    },
    /// Replacement's fee rate does not exceed that of a transaction it would evict.
    #[error(
        "replacement fee rate {fee}/{size} bytes is not above {replaced_fee}/{replaced_size} bytes of replaced transaction {replaced}"
    )]
    RbfFeeRateTooLow {
        /// The replacement's fee, base units.
        fee: u64,
        /// The replacement's size in bytes.
        size: usize,
        /// The evicted transaction that pays a rate at least as high.
        replaced: Hash256,
        /// Its fee, base units.
        replaced_fee: u64,
        /// Its size in bytes.
        replaced_size: usize,
    },
    /// Replacement's absolute fee does not exceed the fees of everything it evicts (rule 3).
    #[error("replacement fee {fee} units is not above the {replaced_fees} units paid by the {count} transactions it would evict")]
    RbfFeeTooLow {
        /// The replacement's fee, base units.
        fee: u64,
        /// Fees of everything it would evict, base units.
        replaced_fees: u64,
        /// Transactions it would evict.
        count: usize,
    },
    /// Replacement's extra fee does not pay for its own bytes at the relay rate (rule 4).
    #[error("replacement adds {additional} units of fee, less than {required} units to relay its {size} bytes")]
    RbfRelayFeeNotPaid {
        /// Fee it adds over what it evicts, base units.
        additional: u64,
        /// Fee its own bytes cost at the relay rate, base units.
        required: u64,
        /// Its size in bytes.
        size: usize,
    },
    /// The chain state could not be read.
    #[error("chain state error: {0}")]
    Chain(#[from] ChainError),
}

impl MempoolError {
    /// True if the transaction can never be valid (a consensus rule is broken, whatever the
    /// chain): the network layer penalises the sender. False for policy refusals and for
    /// refusals that depend on what this node has seen (conflicts, missing inputs, fees).
    pub fn breaks_consensus(&self) -> bool {
        match self {
            MempoolError::Coinbase
            | MempoolError::Consensus(_)
            | MempoolError::WrongKey { .. }
            | MempoolError::InvalidSignature { .. }
            | MempoolError::OutputsExceedInputs { .. } => true,
            MempoolError::TooLarge { .. }
            | MempoolError::AlreadyInPool(_)
            | MempoolError::AlreadyOrphan(_)
            | MempoolError::AlreadyConfirmed(_)
            | MempoolError::MissingOrSpent { .. }
            | MempoolError::Conflict { .. }
            | MempoolError::ImmatureCoinbase { .. }
            | MempoolError::FeeTooLow { .. }
            | MempoolError::TooManyAncestors { .. }
            | MempoolError::TooManyDescendants { .. }
            | MempoolError::PoolFull { .. }
            | MempoolError::Expired { .. }
            | MempoolError::RbfTooManyEvictions { .. }
            | MempoolError::RbfSpendsEvicted(_)
            | MempoolError::RbfNewUnconfirmedInput { .. }
            | MempoolError::RbfFeeRateTooLow { .. }
            | MempoolError::RbfFeeTooLow { .. }
            | MempoolError::RbfRelayFeeNotPaid { .. }
            | MempoolError::Chain(_) => false,
        }
    }
}
