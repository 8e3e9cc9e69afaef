//! Contextual header rules: the ones that need the parent and its ancestors.

use crate::error::ConsensusError;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::ChainParams;
use crate::pow::next_bits;

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
    check_time_not_too_new(params, header, now)?;
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
