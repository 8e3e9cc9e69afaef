//! lode-wallet: the node's built-in wallet.
//!
//! - [`mnemonic`]: BIP39 phrases and seeds; [`slip10`]: SLIP-0010 Ed25519 derivation;
//!   [`keys`]: signing keys and the `m/44'/coin'/account'/chain'/index'` scheme;
//!   [`address`]: bech32m addresses.
//! - [`keystore`]: the wallet file (atomic writes, optional argon2id + XChaCha20-Poly1305);
//!   [`wallet`]: an open wallet — addresses, lock state, signing.
//! - [`tracker`]: coins, balances and history, fed by the chain's connect/disconnect events.
//! - [`coinselect`]: branch-and-bound and fallback coin selection with exact fees;
//!   [`builder`]: builds and signs payments.
//!
//! Secrets (mnemonic, seed, private keys, passphrases) are zeroized on drop, never printed by
//! `Debug`, and never logged.

#![warn(missing_docs)]

pub mod address;
pub mod builder;
pub mod coinselect;
pub mod error;
pub mod keys;
pub mod keystore;
pub mod mnemonic;
pub mod slip10;
pub mod tracker;
pub mod wallet;

pub use error::{Result, WalletError};
pub use keys::{Chain, KeyPair, KeyPath};
pub use keystore::KdfParams;
pub use mnemonic::{Mnemonic, Seed};
pub use wallet::{CreateOptions, Wallet, WatchKey};
