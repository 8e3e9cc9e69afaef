//! Placeholder until the difficulty algorithms land: Fixed uses the pow limit, every other
//! algorithm repeats the parent's bits.

use crate::error::ConsensusError;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::{ChainParams, DifficultyAlgorithm};

/// The bits the block after `parent` must carry.
pub fn next_bits(
    params: &ChainParams,
    parent_height: Height,
    parent: &BlockHeader,
    _ancestor: &dyn Fn(Height) -> Option<BlockHeader>,
) -> Result<u32, ConsensusError> {
    match params.difficulty {
        DifficultyAlgorithm::Fixed => Ok(params.pow_limit_bits),
        DifficultyAlgorithm::Asert { .. } | DifficultyAlgorithm::Bitcoin => Ok(if parent_height == Height::GENESIS {
            params.genesis_bits
        } else {
            parent.bits
        }),
    }
}
