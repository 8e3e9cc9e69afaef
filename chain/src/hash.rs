//! 32-byte hashes and the double SHA-256 used for block ids and txids.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};

use thiserror::Error;

/// Text that is not a display-order hash (user input at the edges: RPC, CLI).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseHashError {
    /// Not 64 characters long.
    #[error("hash must be 64 hex characters, got {0}")]
    Length(usize),
    /// 64 characters, but not all hex digits.
    #[error("hash is not valid hex")]
    Hex,
}

/// A 32-byte hash in internal (little-endian) byte order, shown reversed like Bitcoin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The all-zero hash (previous-block hash of genesis, null outpoint txid).
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// Double SHA-256 of `data`.
    pub fn sha256d(data: &[u8]) -> Hash256 {
        let first = Sha256::digest(data);
        Hash256(Sha256::digest(first).into())
    }

    /// Single SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Hash256 {
        Hash256(Sha256::digest(data).into())
    }

    /// The raw bytes in internal order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Display-order hex (bytes reversed), as Bitcoin shows block hashes and txids.
    pub fn to_hex(&self) -> String {
        let mut rev = self.0;
        rev.reverse();
        hex::encode(rev)
    }

    /// Parses display-order hex (64 characters).
    pub fn from_hex(s: &str) -> Result<Hash256, ParseHashError> {
        if s.len() != 64 {
            return Err(ParseHashError::Length(s.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError::Hex)?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({})", self.to_hex())
    }
}

impl FromStr for Hash256 {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash256::from_hex(s)
    }
}

impl serde::Serialize for Hash256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Hash256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash256::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_reversed() {
        let h = Hash256::sha256d(b"hello");
        let s = h.to_hex();
        assert_eq!(Hash256::from_hex(&s).ok(), Some(h));
        let mut raw = h.0;
        raw.reverse();
        assert_eq!(hex::encode(raw), s);
    }

    #[test]
    fn bad_hex_is_refused() {
        assert_eq!(Hash256::from_hex("00"), Err(ParseHashError::Length(2)));
        assert_eq!(Hash256::from_hex(&"zz".repeat(32)), Err(ParseHashError::Hex));
    }
}
