//! The one canonical binary encoding: bincode 2 with fixed-width little-endian integers.
//!
//! Every hash (block id, txid, signature digest) is taken over exactly these bytes. Decoding
//! is strict: the input length is checked against a caller-given maximum before anything is
//! decoded, bincode's own limit caps every allocation at twice the input's size tier, and
//! leftover bytes are an error. With
//! fixed-width integers every value has exactly one encoding, so decode → encode returns the
//! input bytes (property-tested in `tests/encoding_prop.rs`).

use bincode::config::{self, Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

use crate::error::DecodeError;

/// Hard ceiling on any single decoded value (larger than any network's max block size).
pub const MAX_DECODE_BYTES: usize = 32 * 1024 * 1024;

type Canonical<const N: usize> = Configuration<LittleEndian, Fixint, Limit<N>>;

fn canonical<const N: usize>() -> Canonical<N> {
    config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<N>()
}

fn unlimited() -> Configuration<LittleEndian, Fixint> {
    config::standard().with_little_endian().with_fixed_int_encoding()
}

/// Encodes `value` canonically.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding our own plain-data types into a Vec cannot fail: no custom impl returns an
    // error and the limit only applies to decoding.
    bincode::encode_to_vec(value, unlimited()).expect("canonical encoding of plain data cannot fail")
}

/// Length of the canonical encoding of `value`, without allocating it.
pub fn encoded_len<T: Encode>(value: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    match bincode::encode_into_writer(value, &mut counter, unlimited()) {
        Ok(()) => counter.bytes_written,
        Err(_) => usize::MAX,
    }
}

/// Decodes a `T` from exactly `bytes`, refusing inputs longer than `max_len`, malformed
/// data and trailing bytes.
pub fn decode<T: Decode<()>>(bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    let max = max_len.min(MAX_DECODE_BYTES);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { len: bytes.len(), max });
    }
    // bincode charges a container's in-memory size against the limit before allocating it,
    // and that can exceed its encoded size; so the allocation budget is twice the input's
    // size tier: a 100-byte message can never make us allocate megabytes.
    let decoded = match bytes.len() {
        0..=4_096 => bincode::decode_from_slice::<T, _>(bytes, canonical::<8_192>()),
        4_097..=262_144 => bincode::decode_from_slice::<T, _>(bytes, canonical::<524_288>()),
        262_145..=4_194_304 => bincode::decode_from_slice::<T, _>(bytes, canonical::<8_388_608>()),
        _ => bincode::decode_from_slice::<T, _>(bytes, canonical::<{ 2 * MAX_DECODE_BYTES }>()),
    };
    let (value, read) = decoded.map_err(|e| DecodeError::Malformed(short(&e)))?;
    if read != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

fn short(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { additional } => format!("unexpected end of input ({additional} more bytes needed)"),
        E::LimitExceeded => "declared length exceeds the size limit".to_string(),
        E::UnexpectedVariant { found, type_name, .. } => format!("unknown {type_name} variant {found}"),
        E::InvalidBooleanValue(v) => format!("invalid boolean byte {v}"),
        E::OutsideUsizeRange(v) => format!("length {v} out of range"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&0x0102_0304u32), vec![4, 3, 2, 1]);
        assert_eq!(encode(&vec![7u8]), vec![1, 0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn trailing_bytes_and_oversize_are_refused() {
        assert_eq!(decode::<u32>(&[1, 0, 0, 0, 9], 100), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(
            decode::<u32>(&[1, 0, 0, 0], 3),
            Err(DecodeError::TooLarge { len: 4, max: 3 })
        );
    }

    #[test]
    fn declared_length_beyond_the_input_tier_is_refused_before_allocating() {
        // 16 bytes of input claiming a 1 MB byte vector: refused on the limit, no 1 MB buffer.
        let mut bytes = 1_000_000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode::<Vec<u8>>(&bytes, 1 << 20),
            Err(DecodeError::Malformed("declared length exceeds the size limit".into()))
        );
    }

    #[test]
    fn huge_declared_length_does_not_allocate() {
        // A Vec<u64> claiming 2^60 elements must fail on the limit, not try to allocate.
        let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode::<Vec<u64>>(&bytes, 1024),
            Err(DecodeError::Malformed(_))
        ));
    }
}
