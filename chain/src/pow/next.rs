//! The difficulty rule: which bits the block after a given parent must carry, for each of the
//! network's difficulty algorithms.

use crate::error::ConsensusError;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::{ChainParams, DifficultyAlgorithm};

use super::asert::asert_next_bits;
use super::retarget::{retarget_bits, target_timespan, RETARGET_INTERVAL};

/// Height of the ASERT anchor block.
///
/// Anchoring at genesis would measure the schedule from the genesis time, which is fixed in
/// the parameters and usually long past when a network (a devnet above all) starts: ASERT
/// would see the chain years behind schedule and pin the target at the pow limit for ages.
/// Block 1 is the first block mined when the network actually starts, so the schedule
/// begins there (its parent's time is taken as `anchor.time - target_spacing`).
pub const ASERT_ANCHOR_HEIGHT: Height = Height(1);

/// The compact bits the block at `parent_height + 1`, child of `parent`, must carry.
///
/// `ancestor(h)` must return the header at height `h` on `parent`'s branch (for
/// `h <= parent_height`); `parent` itself is used for `h == parent_height` without calling
/// it. Fails with [`ConsensusError::MissingAncestor`] if a needed header is unavailable,
/// or [`ConsensusError::BadCompactBits`] if the bits the rule starts from are invalid.
pub fn next_bits(
    params: &ChainParams,
    parent_height: Height,
    parent: &BlockHeader,
    ancestor: &dyn Fn(Height) -> Option<BlockHeader>,
) -> Result<u32, ConsensusError> {
    let fetch = |h: Height| -> Result<BlockHeader, ConsensusError> {
        if h == parent_height {
            Ok(*parent)
        } else {
            ancestor(h).ok_or(ConsensusError::MissingAncestor { height: h.0 })
        }
    };
    let spacing = i64::try_from(params.target_spacing).unwrap_or(i64::MAX);
    match params.difficulty {
        // Fixed: every block uses the pow limit — regtest mines on demand, so difficulty
        // must never rise.
        DifficultyAlgorithm::Fixed => Ok(params.pow_limit_bits),

        // Bitcoin: bits stay the parent's within a 2016-block period; the first block of a
        // new period retargets from the span between the previous period's first and last
        // blocks (Bitcoin's rule, so real Bitcoin headers validate).
        DifficultyAlgorithm::Bitcoin => {
            let next_height = u64::from(parent_height.0) + 1;
            if next_height % u64::from(RETARGET_INTERVAL) != 0 {
                return Ok(parent.bits);
            }
            // parent_height + 1 is a positive multiple of 2016: no underflow, no overflow.
            let first_height = Height(parent_height.0 - (RETARGET_INTERVAL - 1));
            let first = fetch(first_height)?;
            retarget_bits(
                parent.bits,
                first.time,
                parent.time,
                target_timespan(params.target_spacing),
                &params.pow_limit(),
            )
        }

        // ASERT: the child of genesis carries the genesis bits; every later block follows
        // aserti3-2d from the anchor at height 1 (see [`ASERT_ANCHOR_HEIGHT`] for why not
        // genesis), so the target tracks the schedule measured from the network's start.
        DifficultyAlgorithm::Asert { half_life } => {
            if parent_height < ASERT_ANCHOR_HEIGHT {
                return Ok(params.genesis_bits);
            }
            let anchor = fetch(ASERT_ANCHOR_HEIGHT)?;
            let anchor_parent_time = i64::from(anchor.time) - spacing;
            let time_diff = i64::from(parent.time) - anchor_parent_time;
            let height_diff = i64::from(parent_height.0) - i64::from(ASERT_ANCHOR_HEIGHT.0);
            asert_next_bits(
                anchor.bits,
                time_diff,
                height_diff,
                spacing,
                i64::try_from(half_life).unwrap_or(i64::MAX),
                &params.pow_limit(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash256;
    use crate::pow::{decode_compact, encode_compact};

    fn header(time: u32, bits: u32) -> BlockHeader {
        BlockHeader {
            version: 1,
            prev_hash: Hash256::ZERO,
            merkle_root: Hash256::ZERO,
            time,
            bits,
            nonce: 0,
        }
    }

    fn none(_: Height) -> Option<BlockHeader> {
        None
    }

    #[test]
    fn fixed_is_the_pow_limit() {
        let p = ChainParams::regtest();
        assert_eq!(
            next_bits(&p, Height(7), &header(0, 0x1d00_ffff), &none),
            Ok(p.pow_limit_bits)
        );
    }

    #[test]
    fn bitcoin_keeps_bits_inside_a_period_and_retargets_at_its_end() {
        let mut p = ChainParams::regtest();
        p.difficulty = DifficultyAlgorithm::Bitcoin;
        p.target_spacing = 600;
        p.pow_limit_bits = 0x1d00_ffff;
        let parent = header(1_000_000 + 604_800, 0x1c10_0000);
        assert_eq!(next_bits(&p, Height(2014), &parent, &none), Ok(0x1c10_0000));
        assert_eq!(
            next_bits(&p, Height(4031), &parent, &none),
            Err(ConsensusError::MissingAncestor { height: 2016 })
        );
        let first = |h: Height| (h == Height(2016)).then(|| header(1_000_000, 0x1c10_0000));
        // Blocks came twice as fast: the target halves.
        assert_eq!(next_bits(&p, Height(4031), &parent, &first), Ok(0x1c08_0000));
    }

    #[test]
    fn asert_starts_at_genesis_bits_and_anchors_at_height_one() {
        let p = ChainParams::devnet();
        assert_eq!(
            next_bits(&p, Height(0), &header(5, 0x1d00_ffff), &none),
            Ok(p.genesis_bits)
        );
        // Block 1 is the parent: exactly on schedule, the anchor's bits.
        let anchor = header(2_000_000_000, p.genesis_bits);
        assert_eq!(next_bits(&p, Height(1), &anchor, &none), Ok(p.genesis_bits));
        let at_one = |h: Height| (h == Height(1)).then_some(anchor);
        let on_time = header(anchor.time + 10 * 2, 0x1f00_0000);
        assert_eq!(next_bits(&p, Height(11), &on_time, &at_one), Ok(p.genesis_bits));
        // One half-life ahead of schedule: half the target.
        let half_life = match p.difficulty {
            crate::params::DifficultyAlgorithm::Asert { half_life } => half_life as u32,
            _ => unreachable!("devnet uses ASERT"),
        };
        let early = header(anchor.time + 10 * 2 - half_life, 0x1f00_0000);
        let expected = encode_compact(&(decode_compact(p.genesis_bits).target >> 1));
        assert_eq!(next_bits(&p, Height(11), &early, &at_one), Ok(expected));
        assert_eq!(
            next_bits(&p, Height(11), &early, &none),
            Err(ConsensusError::MissingAncestor { height: 1 })
        );
    }
}
