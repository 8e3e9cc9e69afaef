//! Signing keys and the wallet's derivation scheme.
//!
//! Account `I`'s receive key `j` is `m/44'/coin_type'/I'/0'/j'`; its change (internal) key
//! `j` is `m/44'/coin_type'/I'/1'/j'`. All steps are hardened, as SLIP-0010 requires for
//! Ed25519.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use lode_chain::PubkeyHash;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::mnemonic::Seed;
use crate::slip10::ExtendedKey;

/// BIP44 purpose field.
pub const PURPOSE: u32 = 44;

/// Which of an account's two key chains.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chain {
    /// Addresses handed out to receive payments (`.../0'/j'`).
    Receive,
    /// Change outputs of our own transactions (`.../1'/j'`).
    Change,
}

impl Chain {
    /// The path step of this chain.
    pub fn index(self) -> u32 {
        match self {
            Chain::Receive => 0,
            Chain::Change => 1,
        }
    }
}

/// Where a key sits in the wallet's tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct KeyPath {
    /// SLIP-44 coin type.
    pub coin_type: u32,
    /// Account number.
    pub account: u32,
    /// Receive or change.
    pub chain: Chain,
    /// Index within the chain.
    pub index: u32,
}

impl KeyPath {
    /// The hardened steps below `m`.
    pub fn steps(&self) -> [u32; 5] {
        [PURPOSE, self.coin_type, self.account, self.chain.index(), self.index]
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e] = self.steps();
        write!(f, "m/{a}'/{b}'/{c}'/{d}'/{e}'")
    }
}

/// An Ed25519 signing key. The secret is zeroized on drop (ed25519-dalek's `zeroize`
/// feature); `Debug` shows only the public key.
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// The key at `path` under `seed`.
    pub fn derive(seed: &Seed, path: &KeyPath) -> Result<KeyPair> {
        let node = ExtendedKey::master(seed.as_bytes()).derive(&path.steps())?;
        Ok(KeyPair::from_secret(node.secret_bytes()))
    }

    /// A key from its 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> KeyPair {
        KeyPair {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The hash outputs name to pay this key.
    pub fn pubkey_hash(&self) -> PubkeyHash {
        PubkeyHash::from_pubkey(&self.public_key())
    }

    /// Signs a 32-byte digest.
    pub fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.signing.sign(digest).to_bytes()
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair(public {})", hex::encode(self.public_key()))
    }
}
