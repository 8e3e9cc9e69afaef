//! Bitcoin's difficulty retarget every 2016 blocks (`CalculateNextWorkRequired`), with its
//! factor-of-4 clamp and its well-known quirk kept for compatibility with real headers: the
//! measured span runs from the first to the last block of the period, 2015 intervals.

use primitive_types::{U256, U512};

use super::compact::{encode_compact, target_from_bits};
use crate::error::ConsensusError;

/// Blocks per retarget period.
pub const RETARGET_INTERVAL: u32 = 2016;

/// The ideal duration of a retarget period: `2016 * target_spacing` seconds (two weeks for
/// Bitcoin's 600 s).
pub fn target_timespan(target_spacing: u64) -> i64 {
    i64::try_from(target_spacing)
        .unwrap_or(i64::MAX)
        .saturating_mul(i64::from(RETARGET_INTERVAL))
}

/// The new target: `target * span / target_timespan`, where `span = actual_timespan`
/// clamped to `[target_timespan / 4, target_timespan * 4]`, capped at `pow_limit`.
///
/// The product is taken in 512 bits, so, unlike Bitcoin Core's 256-bit product, a target near
/// 2^256 cannot wrap around. A `target_timespan` below 4 is treated as 4 (the clamp needs
/// a positive lower bound).
pub fn retarget_target(target: &U256, actual_timespan: i64, target_timespan: i64, pow_limit: &U256) -> U256 {
    let timespan = target_timespan.max(4);
    let span = actual_timespan.clamp(timespan / 4, timespan.saturating_mul(4));
    // Both are positive after the clamp.
    let scaled = U512::from(*target) * U512::from(span.unsigned_abs()) / U512::from(timespan.unsigned_abs());
    match U256::try_from(scaled) {
        Ok(next) if next <= *pow_limit => next,
        _ => *pow_limit,
    }
}

/// [`retarget_target`] on compact bits: the last block of the period carries `last_bits`
/// and `last_time`, the first block `first_time`. Fails with
/// [`ConsensusError::BadCompactBits`] if `last_bits` is not a valid positive target.
pub fn retarget_bits(
    last_bits: u32,
    first_time: u32,
    last_time: u32,
    target_timespan: i64,
    pow_limit: &U256,
) -> Result<u32, ConsensusError> {
    let target = target_from_bits(last_bits).ok_or(ConsensusError::BadCompactBits { bits: last_bits })?;
    let actual = i64::from(last_time) - i64::from(first_time);
    Ok(encode_compact(&retarget_target(
        &target,
        actual,
        target_timespan,
        pow_limit,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_to_a_factor_of_four() {
        let limit = U256::MAX;
        let t = U256::one() << 200;
        let ts = target_timespan(600);
        assert_eq!(ts, 1_209_600);
        assert_eq!(retarget_target(&t, ts, ts, &limit), t);
        assert_eq!(retarget_target(&t, ts * 100, ts, &limit), t << 2);
        assert_eq!(retarget_target(&t, -5, ts, &limit), t >> 2);
        assert_eq!(retarget_target(&t, ts / 2, ts, &limit), t >> 1);
    }

    #[test]
    fn caps_at_the_pow_limit_without_wrapping() {
        let limit = U256::MAX >> 1;
        assert_eq!(retarget_target(&limit, 10_000_000, 1_209_600, &limit), limit);
        assert_eq!(
            retarget_bits(0x1d00_ffff, 0, 10_000_000, 1_209_600, &(U256::from(0xffffu64) << 208)),
            Ok(0x1d00_ffff)
        );
        assert!(retarget_bits(0, 0, 1, 1_209_600, &limit).is_err());
    }
}
