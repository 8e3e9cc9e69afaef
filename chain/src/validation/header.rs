//! Contextual header rules: the ones that need the parent and its ancestors.

use crate::error::ConsensusError;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::{ChainParams, DifficultyAlgorithm};
use crate::pow::next_bits;
use crate::pow::retarget::RETARGET_INTERVAL;

/// How far before its parent the first block of a retarget period may be dated (BIP 94).
pub const TIME_WARP_MAX_BACK: u32 = 600;

/// Number of previous blocks whose median time a new header must exceed (Bitcoin's 11).
pub const MEDIAN_TIME_SPAN: u32 = 11;

/// What header rules need to know about the parent's branch.
pub struct HeaderContext<'a> {
    /// Height of the parent.
    pub parent_height: Height,
    /// The parent's header.
    pub parent: &'a BlockHeader,
    /// The header at a height ≤ the parent's on the parent's branch.
    pub ancestor: &'a dyn Fn(Height) -> Option<BlockHeader>,
}

/// Median of the times of the last (up to) 11 blocks ending at the parent.
pub fn median_time_past(ctx: &HeaderContext<'_>) -> u32 {
    let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN as usize);
    times.push(ctx.parent.time);
    let mut h = ctx.parent_height.0;
    while times.len() < MEDIAN_TIME_SPAN as usize && h > 0 {
        h -= 1;
        match (ctx.ancestor)(Height(h)) {
            Some(header) => times.push(header.time),
            None => break,
        }
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// Runs every contextual header rule for `header` on top of `ctx.parent`.
pub fn check_header_contextual(
    params: &ChainParams,
    header: &BlockHeader,
    ctx: &HeaderContext<'_>,
    now: u64,
) -> Result<(), ConsensusError> {
    check_difficulty(params, header, ctx)?;
    check_time_after_median(header, ctx)?;
    check_time_warp(params, header, ctx)?;
    check_time_not_too_new(params, header, now)?;
    Ok(())
}

/// BIP 94: with the 2016-block retarget, the first block of a period may not be dated more
/// than [`TIME_WARP_MAX_BACK`] seconds before the last block of the previous one. Without
/// it, miners date each period's last block in the future and the next period's first in
/// the past, so every measured period looks long and the difficulty falls without end.
fn check_time_warp(params: &ChainParams, header: &BlockHeader, ctx: &HeaderContext<'_>) -> Result<(), ConsensusError> {
    if params.difficulty != DifficultyAlgorithm::Bitcoin {
        return Ok(());
    }
    let height = u64::from(ctx.parent_height.0) + 1;
    if height % u64::from(RETARGET_INTERVAL) != 0 {
        return Ok(());
    }
    if header.time < ctx.parent.time.saturating_sub(TIME_WARP_MAX_BACK) {
        return Err(ConsensusError::TimeWarp {
            time: header.time,
            parent: ctx.parent.time,
            max_back: TIME_WARP_MAX_BACK,
        });
    }
    Ok(())
}

/// The bits are exactly what the network's difficulty algorithm demands.
fn check_difficulty(params: &ChainParams, header: &BlockHeader, ctx: &HeaderContext<'_>) -> Result<(), ConsensusError> {
    let expected = next_bits(params, ctx.parent_height, ctx.parent, ctx.ancestor)?;
    if header.bits != expected {
        return Err(ConsensusError::BadDifficulty {
            expected,
            found: header.bits,
        });
    }
    Ok(())
}

/// Time must exceed the median of the previous 11 blocks, so it can never run backwards
/// for long (Bitcoin's `time-too-old`).
fn check_time_after_median(header: &BlockHeader, ctx: &HeaderContext<'_>) -> Result<(), ConsensusError> {
    let median = median_time_past(ctx);
    if header.time <= median {
        return Err(ConsensusError::TimeTooOld {
            time: header.time,
            median,
        });
    }
    Ok(())
}

/// Time may not run more than the network's future limit ahead of the node's clock
/// (Bitcoin's `time-too-new`). Not a permanent verdict: the block may become valid later.
fn check_time_not_too_new(params: &ChainParams, header: &BlockHeader, now: u64) -> Result<(), ConsensusError> {
    let limit = params.max_future_block_time;
    if u64::from(header.time) > now.saturating_add(limit) {
        return Err(ConsensusError::TimeTooNew {
            time: header.time,
            now,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash256;

    fn header(time: u32) -> BlockHeader {
        BlockHeader {
            version: 1,
            prev_hash: Hash256::ZERO,
            merkle_root: Hash256::ZERO,
            time,
            bits: 0x207f_ffff,
            nonce: 0,
        }
    }

    #[test]
    fn the_first_block_of_a_period_may_not_go_back_more_than_600_seconds() {
        let mut params = ChainParams::bitcoin_mainnet();
        let parent = header(1_000_000);
        let none = |_: Height| None;
        let ctx = |h: u32| HeaderContext {
            parent_height: Height(h),
            parent: &parent,
            ancestor: &none,
        };
        // First block of a period (height 2016): 600 s back is fine, 601 s is not.
        assert!(check_time_warp(&params, &header(1_000_000 - 600), &ctx(2015)).is_ok());
        assert!(matches!(
            check_time_warp(&params, &header(1_000_000 - 601), &ctx(2015)),
            Err(ConsensusError::TimeWarp { .. })
        ));
        // Inside a period the median-time rule alone applies.
        assert!(check_time_warp(&params, &header(1_000_000 - 601), &ctx(2016)).is_ok());
        // Other algorithms have no periods.
        params.difficulty = DifficultyAlgorithm::Fixed;
        assert!(check_time_warp(&params, &header(1_000_000 - 601), &ctx(2015)).is_ok());
    }
}
