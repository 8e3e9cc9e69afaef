//! Bitcoin's compact target encoding ("nBits"), bit for bit as `arith_uint256::SetCompact`
//! and `GetCompact`.

use primitive_types::U256;

/// The result of decoding compact bits, with Bitcoin's sign and overflow flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DecodedCompact {
    /// The decoded (unsigned) target.
    pub target: U256,
    /// The sign bit was set on a non-zero mantissa.
    pub negative: bool,
    /// The value does not fit in 256 bits.
    pub overflow: bool,
}

/// Decodes compact bits exactly like Bitcoin Core's `SetCompact`.
pub fn decode_compact(bits: u32) -> DecodedCompact {
    let size = bits >> 24;
    let mut word = bits & 0x007f_ffff;
    // Like Core, small sizes shift the mantissa first, and the flags test what remains:
    // 0x00923456 decodes to zero and is not negative.
    let target = if size <= 3 {
        word >>= 8 * (3 - size);
        U256::from(word)
    } else {
        let shift = 8 * (size - 3);
        if shift >= 256 {
            U256::zero()
        } else {
            U256::from(word) << shift
        }
    };
    let negative = word != 0 && (bits & 0x0080_0000) != 0;
    let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
    DecodedCompact {
        target,
        negative,
        overflow,
    }
}

/// Encodes a target exactly like Bitcoin Core's `GetCompact` (non-negative).
pub fn encode_compact(target: &U256) -> u32 {
    let mut size = target.bits().div_ceil(8) as u32;
    let mut compact: u32 = if size <= 3 {
        (target.low_u64() << (8 * (3 - size))) as u32
    } else {
        (*target >> (8 * (size - 3))).low_u64() as u32
    };
    // The mantissa's top bit is the sign: move a byte into the exponent instead.
    if compact & 0x0080_0000 != 0 {
        compact >>= 8;
        size += 1;
    }
    compact | (size << 24)
}

/// Encodes like Bitcoin Core's `GetCompact(fNegative)`: as [`encode_compact`], with the
/// sign bit set when `negative` and the mantissa is non-zero. Consensus never produces
/// negative bits; this exists so the decode/encode round trip of any bits can be checked.
pub fn encode_compact_signed(target: &U256, negative: bool) -> u32 {
    let compact = encode_compact(target);
    if negative && compact & 0x007f_ffff != 0 {
        compact | 0x0080_0000
    } else {
        compact
    }
}

/// Decodes bits into a usable target: `None` if negative, zero or overflowing.
pub fn target_from_bits(bits: u32) -> Option<U256> {
    let d = decode_compact(bits);
    if d.negative || d.overflow || d.target.is_zero() {
        None
    } else {
        Some(d.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_genesis_bits() {
        let t = target_from_bits(0x1d00ffff).expect("valid");
        assert_eq!(t, U256::from(0xffffu64) << 208);
        assert_eq!(encode_compact(&t), 0x1d00ffff);
    }

    #[test]
    fn flags_test_the_mantissa_after_the_size_shift() {
        let d = decode_compact(0x0092_3456);
        assert!(d.target.is_zero() && !d.negative && !d.overflow);
        assert!(decode_compact(0x0480_0001).negative);
        assert_eq!(encode_compact_signed(&U256::from(0x7eu64), true), 0x01fe_0000);
    }

    #[test]
    fn sign_bit_moves_into_exponent() {
        assert_eq!(encode_compact(&U256::from(0x80u64)), 0x0200_8000);
    }
}
