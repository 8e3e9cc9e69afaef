//! Errors of the miner.

use lode_chain::error::{ChainError, ConsensusError};
use lode_chain::Amount;
use thiserror::Error;

/// Why a template could not be built or a block not mined.
#[derive(Debug, Error)]
pub enum MinerError {
    /// The tip is at the largest height there can be.
    #[error("the chain is at the maximum height")]
    HeightOverflow,
    /// The selected transactions' fees overflow.
    #[error("selected fees overflow")]
    FeeOverflow,
    /// The template's fees differ from what the chain validated (a bug).
    #[error("template fees {selected} differ from the validated fees {validated}")]
    FeeMismatch {
        /// Fees of the selected transactions.
        selected: Amount,
        /// Fees the chain computed.
        validated: Amount,
    },
    /// The chain refused the template.
    #[error("template is invalid: {0}")]
    Chain(#[from] ChainError),
    /// The next block's bits could not be computed.
    #[error("cannot compute the next difficulty: {0}")]
    Difficulty(#[from] ConsensusError),
    /// The search was stopped before a block was found.
    #[error("the nonce search stopped before a block was found")]
    Stopped,
    /// A worker thread could not be started.
    #[error("cannot start a miner thread: {0}")]
    Spawn(String),
}
