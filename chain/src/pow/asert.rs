//! aserti3-2d, the absolutely scheduled exponentially rising targets algorithm Bitcoin Cash
//! adopted in November 2020 (BCHN `CalculateASERT`, spec `2020-11-15-asert.md`), in its
//! integer-only form so the official test vectors pass bit for bit.
//!
//! The target is `anchor_target * 2^((time_diff - spacing * (height_diff + 1)) / half_life)`:
//! every `half_life` seconds the chain runs behind its ideal schedule double the target,
//! every `half_life` seconds ahead halve it. The fractional power of two is a cubic
//! approximation in 16-bit fixed point.

use primitive_types::{U256, U512};

use super::compact::{encode_compact, target_from_bits};
use crate::error::ConsensusError;

/// Fixed-point radix of the exponent: 16 fractional bits.
const RADIX_BITS: u32 = 16;

/// `2^(frac / 65536)` in 16-bit fixed point (`65536..=131071`), by BCHN's cubic polynomial.
/// Every intermediate fits in u64 for `frac < 65536` (the maximum sum is just below 2^64).
fn pow2_fraction(frac: u64) -> u64 {
    debug_assert!(frac < 1 << RADIX_BITS);
    let poly =
        195_766_423_245_049u64 * frac + 971_821_376u64 * frac * frac + 5_127u64 * frac * frac * frac + (1u64 << 47);
    (1u64 << RADIX_BITS) + (poly >> 48)
}

/// The aserti3-2d target: `time_diff` is the evaluation block's time minus the anchor
/// block's parent's time, `height_diff` the evaluation block's height minus the anchor's
/// height (the evaluation block is the parent of the block whose target this is).
///
/// Integer arithmetic exactly as BCHN: the exponent `((time_diff - target_spacing *
/// (height_diff + 1)) * 65536) / half_life` truncates toward zero, its integer part is taken
/// with an arithmetic shift (rounding toward minus infinity) and its 16-bit fraction feeds
/// the cubic. The result is at least 1 and at most `pow_limit`.
///
/// Total for all inputs: intermediates are computed in 128 and 512 bits, so values where
/// BCHN's 64- and 256-bit arithmetic would overflow saturate instead (to 1 or `pow_limit`)
/// and every value BCHN accepts gives BCHN's answer. A `half_life` below 1 is treated as 1.
pub fn asert_next_target(
    anchor_target: &U256,
    time_diff: i64,
    height_diff: i64,
    target_spacing: i64,
    half_life: i64,
    pow_limit: &U256,
) -> U256 {
    let half_life = i128::from(half_life.max(1));
    // In i128 the subtraction and the products cannot overflow (each factor < 2^64, 2^17).
    let drift = i128::from(time_diff) - i128::from(target_spacing) * (i128::from(height_diff) + 1);
    // Rust's `/` truncates toward zero, like C++'s.
    // Saturating: BCHN's i64 would overflow long before, and saturation keeps the sign.
    let exponent = drift.saturating_mul(1 << RADIX_BITS) / half_life;
    // Arithmetic shift: floor. The remainder is the non-negative fraction below it.
    let shifts = exponent >> RADIX_BITS;
    let frac = (exponent & 0xffff) as u64;
    let factor = pow2_fraction(frac);

    // anchor_target < 2^256 and factor < 2^17: the product fits in 512 bits.
    let scaled = U512::from(*anchor_target) * U512::from(factor);
    if scaled.is_zero() {
        return U256::one();
    }
    // Multiply by 2^(shifts - 16): the factor carried 16 fractional bits.
    let shift = shifts - i128::from(RADIX_BITS);
    let next = if shift <= 0 {
        let right = shift.unsigned_abs();
        if right >= 512 {
            U512::zero()
        } else {
            scaled >> (right as usize)
        }
    } else {
        // The product is below 2^273; a left shift that leaves 256 bits is above any limit.
        let left = shift as u128;
        let bits = scaled.bits() as u128;
        if bits + left > 256 {
            return *pow_limit;
        }
        scaled << (left as usize)
    };
    if next.is_zero() {
        return U256::one();
    }
    match U256::try_from(next) {
        Ok(target) if target <= *pow_limit => target,
        _ => *pow_limit,
    }
}

/// [`asert_next_target`] on compact bits: decodes the anchor's bits and encodes the result
/// with Bitcoin's compact rules. Fails with [`ConsensusError::BadCompactBits`] if the
/// anchor's bits are negative, zero or overflowing.
pub fn asert_next_bits(
    anchor_bits: u32,
    time_diff: i64,
    height_diff: i64,
    target_spacing: i64,
    half_life: i64,
    pow_limit: &U256,
) -> Result<u32, ConsensusError> {
    let anchor = target_from_bits(anchor_bits).ok_or(ConsensusError::BadCompactBits { bits: anchor_bits })?;
    let next = asert_next_target(&anchor, time_diff, height_diff, target_spacing, half_life, pow_limit);
    Ok(encode_compact(&next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> U256 {
        (U256::one() << 224) - 1
    }

    #[test]
    fn on_schedule_keeps_the_target() {
        let t = U256::from(0x1234_5678u64) << 100;
        assert_eq!(asert_next_target(&t, 600, 0, 600, 172_800, &limit()), t);
        assert_eq!(asert_next_target(&t, 6000, 9, 600, 172_800, &limit()), t);
    }

    #[test]
    fn one_half_life_doubles_or_halves() {
        let t = U256::one() << 200;
        assert_eq!(asert_next_target(&t, 600 + 172_800, 0, 600, 172_800, &limit()), t << 1);
        assert_eq!(asert_next_target(&t, 600 - 172_800, 0, 600, 172_800, &limit()), t >> 1);
    }

    #[test]
    fn extremes_saturate_instead_of_overflowing() {
        let t = U256::one() << 200;
        assert_eq!(asert_next_target(&t, i64::MAX, 0, 600, 1, &limit()), limit());
        assert_eq!(
            asert_next_target(&t, i64::MIN, i64::MAX, i64::MAX, 1, &limit()),
            U256::one()
        );
        assert_eq!(asert_next_target(&t, 0, i64::MAX, 600, 0, &limit()), U256::one());
        // A pow limit near 2^256 (devnet's) must not overflow the product.
        let easy = U256::MAX >> 1;
        assert_eq!(asert_next_target(&easy, 600, 0, 600, 60, &easy), easy);
        assert_eq!(asert_next_target(&easy, 10_000, 0, 600, 60, &easy), easy);
        assert!(asert_next_target(&easy, 600 + 30, 0, 600, 60, &U256::MAX) > easy);
    }

    #[test]
    fn bad_anchor_bits_are_refused() {
        assert_eq!(
            asert_next_bits(0x1d80_ffff, 600, 0, 600, 172_800, &limit()),
            Err(ConsensusError::BadCompactBits { bits: 0x1d80_ffff })
        );
        assert_eq!(
            asert_next_bits(0x1d00_ffff, 600, 0, 600, 172_800, &limit()),
            Ok(0x1d00_ffff)
        );
    }
}
