//! Proof of work: compact targets, the PoW check, chain work and difficulty algorithms.
//! Miner and validator share [`check_proof_of_work`].

pub mod asert;
pub mod compact;
pub mod next;
pub mod retarget;
pub mod work;

pub use asert::{asert_next_bits, asert_next_target};
pub use compact::{decode_compact, encode_compact, encode_compact_signed, target_from_bits};
pub use next::{next_bits, ASERT_ANCHOR_HEIGHT};
pub use primitive_types::U256;
pub use retarget::{retarget_bits, retarget_target, target_timespan, RETARGET_INTERVAL};
pub use work::ChainWork;

use crate::error::ConsensusError;
use crate::hash::Hash256;

/// A hash read as a 256-bit little-endian integer, as Bitcoin's `UintToArith256`.
pub fn hash_to_u256(hash: &Hash256) -> U256 {
    U256::from_little_endian(&hash.0)
}

/// Bitcoin's `CheckProofOfWork`: the bits must decode to a positive, non-overflowing target
/// no higher than the network's limit, and the hash must not exceed it.
pub fn check_proof_of_work(hash: &Hash256, bits: u32, pow_limit: &U256) -> Result<(), ConsensusError> {
    let target = target_from_bits(bits).ok_or(ConsensusError::BadCompactBits { bits })?;
    if target > *pow_limit {
        return Err(ConsensusError::TargetAboveLimit { bits });
    }
    if hash_to_u256(hash) > target {
        return Err(ConsensusError::InsufficientProofOfWork { hash: *hash, bits });
    }
    Ok(())
}
