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
    TooLarge { size: usize, max: usize },
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
    MissingOrSpent { txid: Hash256, index: u32 },
    /// Spends an output a mempool transaction already spends, and replacement is disabled.
    #[error("input {txid}:{index} is already spent by mempool transaction {spent_by}")]
    Conflict {
        txid: Hash256,
        index: u32,
        spent_by: Hash256,
    },
    /// Spends a coinbase output before it matured.
    #[error(
        "input {txid}:{index} spends a coinbase from height {height}, spendable at height {mature_at}, next block is {spend_height}"
    )]
    ImmatureCoinbase {
        txid: Hash256,
        index: u32,
        height: u32,
        mature_at: u32,
        spend_height: u32,
    },
    /// An input's public key does not hash to the address of the output it spends.
    #[error("input {index} public key does not match the spent output's address")]
    WrongKey { index: usize },
    /// An input's signature does not verify.
    #[error("input {index} signature is invalid")]
    InvalidSignature { index: usize },
    /// Outputs exceed inputs.
    #[error("outputs {outputs} exceed inputs {inputs}")]
    OutputsExceedInputs { inputs: Amount, outputs: Amount },
    /// Fee below the minimum relay fee rate for its size.
    #[error("fee {fee} units for {size} bytes is below the minimum relay fee {min_fee} units ({rate} per byte)")]
    FeeTooLow {
        fee: u64,
        size: usize,
        min_fee: u64,
        rate: u64,
    },
    /// Too many unconfirmed ancestors (counting itself).
    #[error("transaction would have {count} unconfirmed ancestors including itself, limit {max}")]
    TooManyAncestors { count: usize, max: usize },
    /// An unconfirmed ancestor would get too many descendants (counting itself).
    #[error("ancestor {ancestor} would have {count} descendants including itself, limit {max}")]
    TooManyDescendants {
        ancestor: Hash256,
        count: usize,
        max: usize,
    },
    /// The pool is full and this transaction's package pays the lowest rate in it.
    #[error("mempool full: fee {fee} units for {size} bytes pays less than the transactions kept")]
    PoolFull { fee: u64, size: usize },
    /// Replacement would evict too many transactions (BIP125 rule 5).
    #[error("replacement would evict {count} transactions, limit {max}")]
    RbfTooManyEvictions { count: usize, max: usize },
    /// Replacement spends an output of a transaction it would evict.
    #[error("replacement spends an output of {0}, which it would evict")]
    RbfSpendsEvicted(Hash256),
    /// Replacement adds an unconfirmed input its conflicts did not have (BIP125 rule 2).
    #[error("replacement adds unconfirmed input {txid}:{index} that no replaced transaction spent")]
    RbfNewUnconfirmedInput { txid: Hash256, index: u32 },
    /// Replacement's fee rate does not exceed that of a transaction it would evict.
    #[error(
        "replacement fee rate {fee}/{size} bytes is not above {replaced_fee}/{replaced_size} bytes of replaced transaction {replaced}"
    )]
    RbfFeeRateTooLow {
        fee: u64,
        size: usize,
        replaced: Hash256,
        replaced_fee: u64,
        replaced_size: usize,
    },
    /// Replacement's absolute fee does not exceed the fees of everything it evicts (rule 3).
    #[error("replacement fee {fee} units is not above the {replaced_fees} units paid by the {count} transactions it would evict")]
    RbfFeeTooLow { fee: u64, replaced_fees: u64, count: usize },
    /// Replacement's extra fee does not pay for its own bytes at the relay rate (rule 4).
    #[error("replacement adds {additional} units of fee, less than {required} units to relay its {size} bytes")]
    RbfRelayFeeNotPaid {
        additional: u64,
        required: u64,
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
