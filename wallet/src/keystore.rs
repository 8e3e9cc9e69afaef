//! The wallet file: format, encryption and atomic, crash-safe writes.
//!
//! One JSON file, `wallet.json`, in the wallet's directory:
//!
//! ```text
//! { "format": "lode-wallet", "version": 1, "body": { network, genesis, coin_type, account,
//!   created_at, next_receive, next_change, secret, watch, pending_txs, released },
//!   "checksum": sha256(body) }
//! ```
//!
//! `pending_txs` holds the wallet's own unconfirmed transactions (canonical bytes, hex,
//! parents first) so their coins stay reserved across restarts; `released` the last
//! [`MAX_RELEASED`] that stopped being pending without confirming, and why. Both are
//! absent in files written before they existed.
//!
//! `secret` is either the mnemonic and BIP39 passphrase in the clear, or those two sealed
//! with XChaCha20-Poly1305 under a key stretched from the user's passphrase by argon2id.
//! `watch` holds the public keys of the issued addresses plus a look-ahead pool, so a locked
//! wallet still knows what is its own. The checksum catches damage to the public fields (the
//! AEAD tag already covers the sealed secret). JSON was chosen over bincode so an operator
//! can inspect the file; it is small and written rarely.
//!
//! Writes go through [`lode_chain::atomic_file::write_private`]: a temporary file in the same
//! directory which is fsynced, renamed over the old file and followed by an fsync of the
//! directory, so a crash leaves either the old or the new file, never a mix. A file that fails to parse is reported and never rewritten.

use std::fs;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lode_chain::Hash256;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Result, WalletError};

/// Name of the wallet file inside its directory.
pub const WALLET_FILE: &str = "wallet.json";
/// The `format` field every wallet file carries.
pub const FORMAT: &str = "lode-wallet";
/// The file format version this build writes and reads.
pub const VERSION: u32 = 1;

/// argon2id cost parameters. Stored in the file so a wallet opens with the parameters it was
/// sealed with.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended setting (64 MiB, 3 passes), with one lane because the
    /// node shares its cores with mining: about a quarter second on a laptop core.
    fn default() -> KdfParams {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only: they offer no protection against guessing.
    pub fn insecure_fast() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Refuses parameters a hostile file could use to exhaust memory or time, or that argon2
    /// itself rejects.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WalletError::InvalidKdfParams(m));
        if !(1..=16).contains(&self.p_cost) {
            return bad(format!("p_cost {} not in 1..=16", self.p_cost));
        }
        if !(1..=64).contains(&self.t_cost) {
            return bad(format!("t_cost {} not in 1..=64", self.t_cost));
        }
        if self.m_cost_kib < 8 * self.p_cost || self.m_cost_kib > 1024 * 1024 {
            return bad(format!("m_cost {} KiB not in 8·p_cost..=1 GiB", self.m_cost_kib));
        }
        Ok(())
    }

    fn derive_key(&self, passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()?;
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| WalletError::InvalidKdfParams(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
            .map_err(|e| WalletError::InvalidKdfParams(e.to_string()))?;
        Ok(key)
    }
}

/// The secret material: what a thief needs to spend. Zeroized on drop; no `Debug`.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secrets {
    pub mnemonic: String,
    pub bip39_passphrase: String,
}

/// How the secret is stored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum StoredSecret {
    /// In the clear (no wallet passphrase set).
    Plain(Secrets),
    /// Sealed under a passphrase.
    Encrypted {
        kdf: KdfParams,
        /// argon2 salt, hex.
        salt: String,
        /// XChaCha20 nonce, hex (24 bytes).
        nonce: String,
        /// Sealed JSON of [`Secrets`] with its Poly1305 tag, hex.
        ciphertext: String,
    },
}

/// How many released (conflicted or refused) transactions the file remembers.
pub const MAX_RELEASED: usize = 100;

/// An own transaction that stopped being pending without confirming, and why.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Released {
    /// The transaction's id.
    pub txid: Hash256,
    /// Why its coins were released (conflicted by a block, refused by the mempool, …).
    pub reason: String,
    /// When, Unix seconds.
    pub at: u64,
}

/// Public keys the wallet watches, by chain, in index order (hex).
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct WatchKeys {
    pub receive: Vec<String>,
    pub change: Vec<String>,
}

/// Everything in the file but its envelope.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    pub network: String,
    pub genesis: Hash256,
    pub coin_type: u32,
    pub account: u32,
    /// Unix seconds.
    pub created_at: u64,
    pub next_receive: u32,
    pub next_change: u32,
    pub secret: StoredSecret,
    pub watch: WatchKeys,
    /// Own unconfirmed transactions, canonical bytes in hex, parents first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_txs: Vec<String>,
    /// The last released transactions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<Released>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    version: u32,
    body: Body,
    checksum: String,
}

impl Body {
    fn checksum(&self) -> Result<String> {
        let bytes = Zeroizing::new(serde_json::to_vec(self).map_err(|_| WalletError::Crypto("serialize body"))?);
        Ok(hex::encode(Sha256::digest(bytes.as_slice())))
    }
}

/// Binds a sealed secret to its network and account, so a sealed blob pasted into another
/// wallet file fails to open instead of silently signing for the wrong chain.
fn associated_data(genesis: &Hash256, account: u32) -> Vec<u8> {
    let mut ad = b"lode-wallet/v1".to_vec();
    ad.extend_from_slice(&genesis.0);
    ad.extend_from_slice(&account.to_le_bytes());
    ad
}

/// Seals `secrets` under `passphrase`.
pub(crate) fn seal(
    secrets: &Secrets,
    passphrase: &str,
    kdf: KdfParams,
    genesis: &Hash256,
    account: u32,
) -> Result<StoredSecret> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let key = kdf.derive_key(passphrase, &salt)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let plain = Zeroizing::new(serde_json::to_vec(secrets).map_err(|_| WalletError::Crypto("serialize secret"))?);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &associated_data(genesis, account),
            },
        )
        .map_err(|_| WalletError::Crypto("seal"))?;
    Ok(StoredSecret::Encrypted {
        kdf,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

/// Opens the stored secret. A wrong passphrase and a tampered blob are indistinguishable
/// to an AEAD; both are reported as a wrong passphrase.
pub(crate) fn open_secret(stored: &StoredSecret, passphrase: &str, genesis: &Hash256, account: u32) -> Result<Secrets> {
    let (kdf, salt, nonce, ciphertext) = match stored {
        StoredSecret::Plain(_) => return Err(WalletError::NotEncrypted),
        StoredSecret::Encrypted {
            kdf,
            salt,
            nonce,
            ciphertext,
        } => (kdf, salt, nonce, ciphertext),
    };
    let malformed = |what: &str| WalletError::Corrupted {
        path: PathBuf::from(WALLET_FILE),
        reason: format!("sealed secret has a malformed {what}"),
    };
    let salt = hex::decode(salt).map_err(|_| malformed("salt"))?;
    let nonce: [u8; 24] = hex::decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| malformed("nonce"))?;
    let ciphertext = hex::decode(ciphertext).map_err(|_| malformed("ciphertext"))?;
    let key = kdf.derive_key(passphrase, &salt)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &associated_data(genesis, account),
                },
            )
            .map_err(|_| WalletError::WrongPassphrase)?,
    );
    serde_json::from_slice(&plain).map_err(|_| malformed("payload"))
}

/// Path of the wallet file in `dir`.
pub fn wallet_path(dir: &Path) -> PathBuf {
    dir.join(WALLET_FILE)
}

/// Reads and checks the wallet file. Never writes.
pub(crate) fn read(path: &Path) -> Result<Body> {
    let bytes = match fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(WalletError::NotFound(path.to_path_buf())),
        Err(e) => return Err(WalletError::io(path, e)),
    };
    let corrupted = |reason: String| WalletError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    // Two steps so a file from a newer format says so instead of failing to parse.
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupted(format!("not valid JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(corrupted(format!("missing format marker {FORMAT:?}")));
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) {
        return Err(WalletError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: VERSION,
        });
    }
    let env: Envelope = serde_json::from_value(value).map_err(|e| corrupted(format!("unexpected content: {e}")))?;
    if env.body.checksum()? != env.checksum {
        return Err(corrupted("checksum does not match the content".into()));
    }
    Ok(env.body)
}

/// Writes `body` to `path` atomically with mode 0600.
pub(crate) fn write_atomic(path: &Path, body: &Body) -> Result<()> {
    let env = Envelope {
        format: FORMAT.into(),
        version: VERSION,
        body: body.clone(),
        checksum: body.checksum()?,
    };
    let bytes = Zeroizing::new(serde_json::to_vec_pretty(&env).map_err(|_| WalletError::Crypto("serialize file"))?);
    lode_chain::atomic_file::write_private(path, &bytes).map_err(|e| WalletError::io(path, e))
}
