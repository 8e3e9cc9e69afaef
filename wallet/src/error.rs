//! The wallet's one error type. Every variant names what went wrong and, where there is one,
//! what the user can do about it. Messages are lower-case, one line, and never carry secrets.

use std::path::PathBuf;

use lode_chain::{AddressError, Amount, Hash256, OutPoint};
use thiserror::Error;

/// Everything the wallet can refuse or fail at.
#[derive(Debug, Error)]
pub enum WalletError {
    /// The mnemonic is not a valid BIP39 English phrase.
    #[error("invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// A derivation path string could not be parsed.
    #[error("invalid derivation path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A derivation index is outside the hardened range.
    #[error("derivation index {0} is too large (at most 2^31 - 1)")]
    IndexOutOfRange(u32),
    /// An address could not be decoded or belongs to another network.
    #[error("invalid address: {0}")]
    InvalidAddress(#[from] AddressError),
    /// A bech32m string was refused.
    #[error("invalid bech32m string: {0}")]
    Bech32(String),

    /// Creating a wallet where one already exists would destroy it.
    #[error("a wallet file already exists at {0}; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    /// No wallet file in the directory.
    #[error("no wallet file at {0}")]
    NotFound(PathBuf),
    /// Reading or writing the wallet file failed.
    #[error("wallet file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The wallet file is damaged (truncated, edited, bit rot). It is left untouched.
    #[error(
        "wallet file {path} is corrupted ({reason}); it was left untouched: restore it from a backup or the mnemonic"
    )]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What is damaged.
        reason: String,
    },
    /// The wallet file was written by a newer or unknown format.
    #[error("wallet file {path} has format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The wallet file belongs to another network.
    #[error("wallet file is for network {found} (genesis {found_genesis}), not {expected}")]
    WrongNetwork {
        /// The network this node runs.
        expected: String,
        /// The network the file was made for.
        found: String,
        /// That network's genesis hash.
        found_genesis: Hash256,
    },

    /// The wallet is encrypted and currently locked.
    #[error("wallet is locked: unlock it with its passphrase to sign or show the mnemonic")]
    Locked,
    /// The passphrase given to unlock the wallet is wrong.
    #[error("wrong wallet passphrase")]
    WrongPassphrase,
    /// The wallet already has a passphrase.
    #[error("wallet is already encrypted")]
    AlreadyEncrypted,
    /// The wallet is not encrypted, so there is nothing to unlock.
    #[error("wallet is not encrypted")]
    NotEncrypted,
    /// Key derivation parameters in a file or an option are out of the accepted range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdfParams(String),
    /// Encryption failed (should not happen with valid parameters).
    #[error("wallet encryption failed: {0}")]
    Crypto(&'static str),
    /// The address pool is used up while the wallet is locked (new keys need the seed).
    #[error("no unused address left while the wallet is locked: unlock it to derive more")]
    AddressPoolExhausted,
    /// An output to spend belongs to no key of this wallet.
    #[error("output {0:?} does not belong to this wallet")]
    UnknownKey(OutPoint),

    /// Not enough spendable coins for the payment and its fee.
    #[error("insufficient funds: need {needed} coins, spendable {available}, missing {missing}")]
    InsufficientFunds {
        /// Payment plus fee.
        needed: Amount,
        /// Spendable balance.
        available: Amount,
        /// How much more is needed.
        missing: Amount,
    },
    /// The payment is below the dust threshold.
    #[error("amount {amount} is dust: outputs must be at least {threshold} coins")]
    Dust {
        /// The payment.
        amount: Amount,
        /// The smallest output allowed.
        threshold: Amount,
    },
    /// The fee rate is below what the network relays.
    #[error("fee rate {rate} units/byte is below the minimum relay fee rate {min}")]
    FeeRateTooLow {
        /// The fee rate asked for, base units per byte.
        rate: u64,
        /// The minimum relay fee rate.
        min: u64,
    },
    /// Sums overflowed (hostile or absurd amounts).
    #[error("amount overflow while {0}")]
    Overflow(&'static str),
    /// The built transaction would exceed the network's size limit.
    #[error("transaction of {size} bytes exceeds the limit of {max}: too many inputs")]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The network's limit.
        max: usize,
    },
    /// Reading the chain for a rescan failed.
    #[error("reading the chain for a rescan failed: {0}")]
    Chain(#[from] lode_chain::error::ChainError),
    /// A disconnect named a block the tracker did not connect last: its view is stale.
    #[error("wallet tracker is out of step with the chain (asked to disconnect {got} at height {height}, its tip is {tip}): rescan")]
    TrackerOutOfSync {
        /// The block asked to disconnect.
        got: Hash256,
        /// Its height.
        height: u32,
        /// The tracker's tip.
        tip: String,
    },
    /// An input of a pending transaction is already spent by another of our pending ones.
    #[error("output {0:?} is already spent by a pending wallet transaction")]
    AlreadyReserved(OutPoint),
    /// The payment amount is zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
}

impl WalletError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> WalletError {
        WalletError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the wallet.
pub type Result<T, E = WalletError> = std::result::Result<T, E>;
