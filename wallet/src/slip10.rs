//! SLIP-0010 key derivation for Ed25519.
//!
//! Ed25519 has no public-key derivation, so SLIP-0010 defines only hardened children:
//! `I = HMAC-SHA512(chain_code, 0x00 || key || ser32(index + 2^31))`, key = I[..32],
//! chain code = I[32..]. The master node is `HMAC-SHA512("ed25519 seed", seed)`.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Result, WalletError};

type HmacSha512 = Hmac<Sha512>;

/// The hardened-index offset (2^31).
pub const HARDENED: u32 = 0x8000_0000;

/// A node of the derivation tree: a 32-byte Ed25519 secret seed and its chain code.
/// Both are secret; zeroized on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ExtendedKey {
    secret: [u8; 32],
    chain_code: [u8; 32],
}

impl ExtendedKey {
    /// The master node of `seed` (any length; BIP39 seeds are 64 bytes).
    pub fn master(seed: &[u8]) -> ExtendedKey {
        ExtendedKey::from_hmac(b"ed25519 seed", &[seed])
    }

    /// The hardened child `index` (0 ≤ index < 2^31; the hardened bit is added here).
    pub fn child(&self, index: u32) -> Result<ExtendedKey> {
        if index >= HARDENED {
            return Err(WalletError::IndexOutOfRange(index));
        }
        let ser = (index | HARDENED).to_be_bytes();
        Ok(ExtendedKey::from_hmac(&self.chain_code, &[&[0u8], &self.secret, &ser]))
    }

    /// Follows a path of hardened indexes (each below 2^31) from this node.
    pub fn derive(&self, path: &[u32]) -> Result<ExtendedKey> {
        let mut node = self.clone();
        for &i in path {
            node = node.child(i)?;
        }
        Ok(node)
    }

    /// The 32-byte Ed25519 secret key (RFC 8032 "seed").
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The chain code.
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }

    fn from_hmac(key: &[u8], parts: &[&[u8]]) -> ExtendedKey {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let mut mac = match HmacSha512::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("hmac takes any key length"),
        };
        for p in parts {
            mac.update(p);
        }
        let mut out = mac.finalize().into_bytes();
        let mut node = ExtendedKey {
            secret: [0; 32],
            chain_code: [0; 32],
        };
        node.secret.copy_from_slice(&out[..32]);
        node.chain_code.copy_from_slice(&out[32..]);
        out.as_mut_slice().zeroize();
        node
    }
}

impl fmt::Debug for ExtendedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtendedKey(redacted)")
    }
}

/// Parses `m/44'/1'/0'` or `m/0H/1H`: every step must be hardened (Ed25519 has no other kind).
/// Returns the indexes without the hardened bit.
pub fn parse_path(path: &str) -> Result<Vec<u32>> {
    let bad = |reason| WalletError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let mut parts = path.split('/');
    if parts.next() != Some("m") {
        return Err(bad("must start with m"));
    }
    parts
        .map(|p| {
            let digits = p
                .strip_suffix('\'')
                .or_else(|| p.strip_suffix('H'))
                .or_else(|| p.strip_suffix('h'))
                .ok_or_else(|| bad("every step must be hardened (ends with ' or H)"))?;
            let i: u32 = digits.parse().map_err(|_| bad("step is not a number"))?;
            if i >= HARDENED {
                return Err(bad("step is 2^31 or more"));
            }
            Ok(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_refuse_non_hardened() {
        assert_eq!(parse_path("m").ok(), Some(vec![]));
        assert_eq!(parse_path("m/44'/1'/0H/0h").ok(), Some(vec![44, 1, 0, 0]));
        assert!(parse_path("m/0").is_err());
        assert!(parse_path("x/0'").is_err());
        assert!(parse_path("m/2147483648'").is_err());
        assert!(matches!(
            ExtendedKey::master(&[1; 16]).child(HARDENED),
            Err(WalletError::IndexOutOfRange(_))
        ));
    }
}
