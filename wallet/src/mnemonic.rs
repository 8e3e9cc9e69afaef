//! BIP39 English mnemonics and the 64-byte seed they stretch to.
//!
//! The word list, checksum and PBKDF2 stretching come from the `bip39` crate (rust-bitcoin's,
//! with its `zeroize` feature) rather than being hand-written: it is what most Rust wallets
//! use and it is checked against the official vectors in `tests/vectors.rs`.

use std::fmt;

use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, WalletError};

/// Word counts BIP39 defines. Fresh wallets use 24; any of these is accepted on import.
pub const WORD_COUNTS: [usize; 5] = [12, 15, 18, 21, 24];

/// A valid BIP39 English mnemonic. Its words are secret: it has no `Display`, its `Debug`
/// prints only the word count, and it is zeroized on drop (by `bip39`'s own `ZeroizeOnDrop`).
#[derive(Clone)]
pub struct Mnemonic(bip39::Mnemonic);

impl Mnemonic {
    /// A fresh 24-word mnemonic from the operating system's random source.
    pub fn generate() -> Mnemonic {
        let mut entropy = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(entropy.as_mut());
        // 32 bytes is a valid BIP39 entropy length, so this cannot fail.
        match bip39::Mnemonic::from_entropy(entropy.as_ref()) {
            Ok(m) => Mnemonic(m),
            Err(_) => unreachable!("32 bytes of entropy is always valid"),
        }
    }

    /// Parses a phrase (any case, any whitespace between words), checking words and checksum.
    pub fn parse(phrase: &str) -> Result<Mnemonic> {
        let mut normalized = Zeroizing::new(phrase.split_whitespace().collect::<Vec<_>>().join(" "));
        normalized.make_ascii_lowercase();
        let m = bip39::Mnemonic::parse_in(bip39::Language::English, normalized.as_str())
            .map_err(|e| WalletError::InvalidMnemonic(describe(&e)))?;
        Ok(Mnemonic(m))
    }

    /// The mnemonic for raw entropy (16–32 bytes, a multiple of 4).
    pub fn from_entropy(entropy: &[u8]) -> Result<Mnemonic> {
        bip39::Mnemonic::from_entropy(entropy)
            .map(Mnemonic)
            .map_err(|e| WalletError::InvalidMnemonic(describe(&e)))
    }

    /// Number of words.
    pub fn word_count(&self) -> usize {
        self.0.word_count()
    }

    /// The phrase, for showing to the user on request or storing in the keystore.
    pub fn phrase(&self) -> Zeroizing<String> {
        let mut s = String::new();
        for (i, w) in self.0.words().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(w);
        }
        Zeroizing::new(s)
    }

    /// The 64-byte seed: PBKDF2-HMAC-SHA512 of the phrase, salted with "mnemonic" and the
    /// optional BIP39 passphrase (NFKD-normalized).
    pub fn to_seed(&self, passphrase: &str) -> Seed {
        Seed(Zeroizing::new(self.0.to_seed(passphrase)))
    }
}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mnemonic({} words, redacted)", self.word_count())
    }
}

/// Turns a `bip39` error into a message that never repeats the (secret) input words.
fn describe(e: &bip39::Error) -> String {
    match e {
        bip39::Error::BadWordCount(n) => format!("{n} words; expected 12, 15, 18, 21 or 24"),
        bip39::Error::UnknownWord(i) => format!("word {} is not in the BIP39 English list", i + 1),
        bip39::Error::BadEntropyBitCount(n) => format!("{n} bits of entropy; expected 128 to 256 in steps of 32"),
        bip39::Error::InvalidChecksum => "checksum does not match: a word is wrong or out of order".into(),
        bip39::Error::AmbiguousLanguages(_) => "language is ambiguous".into(),
    }
}

/// A BIP39 seed: the root of every key. Zeroized on drop, never printed.
pub struct Seed(Zeroizing<[u8; 64]>);

impl Seed {
    /// The 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(redacted)")
    }
}

impl Zeroize for Seed {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}
