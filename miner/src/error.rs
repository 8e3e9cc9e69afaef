//! Errors of the miner.

use lode_chain::error::{ChainError, ConsensusError};
use lode_chain::Amount;
use thiserror::Error;

/// Why a template could not be built or a block not mined.
#[derive(Debug, Error)]
pub enum MinerError {
    #[error("the chain is at the maximum height")]
    HeightOverflow,
    #[error("selected fees overflow")]
    FeeOverflow,
    #[error("template fees {selected} differ from the validated fees {validated}")]
    FeeMismatch { selected: Amount, validated: Amount },
    #[error("template is invalid: {0}")]
    Chain(#[from] ChainError),
    #[error("cannot compute the next difficulty: {0}")]
    Difficulty(#[from] ConsensusError),
    #[error("the nonce search stopped before a block was found")]
    Stopped,
    #[error("cannot start a miner thread: {0}")]
    Spawn(String),
}
