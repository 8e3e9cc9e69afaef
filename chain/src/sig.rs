//! Ed25519 signature checks for consensus. The one validity rule is ed25519-dalek's
//! `verify_strict`.

use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

/// Why a signature was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SigError {
    #[error("public key is not a valid curve point")]
    BadPublicKey,
    #[error("signature does not verify")]
    Invalid,
}

/// Verifies `signature` by `pubkey` over `msg` with `verify_strict` semantics.
pub fn verify(pubkey: &[u8; 32], signature: &[u8; 64], msg: &[u8]) -> Result<(), SigError> {
    let key = VerifyingKey::from_bytes(pubkey).map_err(|_| SigError::BadPublicKey)?;
    let sig = Signature::from_bytes(signature);
    key.verify_strict(msg, &sig).map_err(|_| SigError::Invalid)
}

/// One signature to check.
#[derive(Clone, Copy, Debug)]
pub struct SigItem {
    /// Ed25519 public key.
    pub pubkey: [u8; 32],
    /// Signature.
    pub signature: [u8; 64],
    /// The signed 32-byte digest.
    pub msg: [u8; 32],
}

/// Checks every item; `Err(i)` names the first that fails.
pub fn verify_all(items: &[SigItem]) -> Result<(), usize> {
    for (i, item) in items.iter().enumerate() {
        verify(&item.pubkey, &item.signature, &item.msg).map_err(|_| i)?;
    }
    Ok(())
}
