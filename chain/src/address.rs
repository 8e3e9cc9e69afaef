//! Addresses: the 20-byte public-key hash an output pays, written as bech32m with the
//! network's human-readable prefix.

use std::fmt;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use bincode::{Decode, Encode};

use thiserror::Error;

use crate::hash::Hash256;

/// An address that cannot be written or read (bad bech32m, another network, wrong length).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// Not valid bech32m, or a prefix bech32m cannot carry.
    #[error("address is not valid bech32m: {0}")]
    Encoding(String),
    /// Valid, but for another network.
    #[error("address is for network prefix {found:?}, this network uses {expected:?}")]
    Network {
        /// This network's prefix.
        expected: String,
        /// The address's prefix.
        found: String,
    },
    /// The payload is not a 20-byte public-key hash.
    #[error("address payload must be 20 bytes, got {0}")]
    Length(usize),
}

/// The first 20 bytes of SHA-256 of an Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct PubkeyHash(pub [u8; 20]);

impl PubkeyHash {
    /// Hash of a 32-byte Ed25519 public key.
    pub fn from_pubkey(pubkey: &[u8; 32]) -> PubkeyHash {
        let digest = Hash256::sha256(pubkey);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        PubkeyHash(out)
    }

    /// Encodes as a bech32m address with the given prefix.
    pub fn to_address(&self, hrp: &str) -> Result<String, AddressError> {
        let hrp = Hrp::parse(hrp).map_err(|e| AddressError::Encoding(e.to_string()))?;
        bech32::encode::<Bech32m>(hrp, &self.0).map_err(|e| AddressError::Encoding(e.to_string()))
    }

    /// Decodes a bech32m address, requiring the given prefix.
    pub fn from_address(s: &str, expected_hrp: &str) -> Result<PubkeyHash, AddressError> {
        let checked = CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| AddressError::Encoding(e.to_string()))?;
        let found = checked.hrp().to_lowercase();
        if found != expected_hrp.to_ascii_lowercase() {
            return Err(AddressError::Network {
                expected: expected_hrp.to_string(),
                found,
            });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 20] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::Length(bytes.len()))?;
        Ok(PubkeyHash(arr))
    }

    /// Lower-case hex of the 20 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for PubkeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubkeyHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_network_check() {
        let pkh = PubkeyHash::from_pubkey(&[5u8; 32]);
        let addr = pkh.to_address("ldev").expect("encodes");
        assert!(addr.starts_with("ldev1"));
        assert_eq!(PubkeyHash::from_address(&addr, "ldev"), Ok(pkh));
        assert_eq!(
            PubkeyHash::from_address(&addr, "lreg"),
            Err(AddressError::Network {
                expected: "lreg".into(),
                found: "ldev".into()
            })
        );
    }

    #[test]
    fn corrupted_or_wrong_length_is_refused() {
        let addr = PubkeyHash([1; 20]).to_address("ldev").expect("encodes");
        let mut bad = addr.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'q' { b'p' } else { b'q' };
        let bad = String::from_utf8(bad).expect("ascii");
        assert!(matches!(
            PubkeyHash::from_address(&bad, "ldev"),
            Err(AddressError::Encoding(_))
        ));
        let hrp = Hrp::parse("ldev").expect("hrp");
        let short = bech32::encode::<Bech32m>(hrp, &[1u8; 19]).expect("encodes");
        assert_eq!(PubkeyHash::from_address(&short, "ldev"), Err(AddressError::Length(19)));
        // A bech32 (not bech32m) string with the same payload must be refused.
        let legacy = bech32::encode::<bech32::Bech32>(hrp, &[1u8; 20]).expect("encodes");
        assert!(PubkeyHash::from_address(&legacy, "ldev").is_err());
    }
}
