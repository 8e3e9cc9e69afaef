//! The wallet: one account of one mnemonic, its addresses, its lock state and its signatures.
//!
//! A wallet that is encrypted starts locked. Locked, it still knows its addresses (their
//! public keys are in the file) and can hand out receive addresses from a pre-derived pool,
//! but it cannot sign or show its mnemonic until `unlock`, which lasts until a timeout or
//! `lock`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lode_chain::{ChainParams, Hash256, KeyUnlock, PubkeyHash, Transaction, Unlock};
use zeroize::Zeroizing;

use crate::address::encode_address;
use crate::error::{Result, WalletError};
use crate::keys::{Chain, KeyPair, KeyPath};
use crate::keystore::{self, Body, KdfParams, Secrets, StoredSecret, WatchKeys};
use crate::mnemonic::{Mnemonic, Seed};

/// Keys derived ahead of the last issued index on each chain (BIP44's gap limit), so coins
/// sent to a not-yet-issued address — e.g. by a restored copy of this wallet — are still seen.
pub const LOOKAHEAD: u32 = 20;

/// Options for creating a wallet.
#[derive(Default)]
pub struct CreateOptions {
    /// BIP39 passphrase (the "25th word"); part of the seed, not of the file encryption.
    pub bip39_passphrase: Zeroizing<String>,
    /// Encrypt the secret with this passphrase and these argon2id costs.
    pub encryption: Option<(Zeroizing<String>, KdfParams)>,
}

/// A public key the wallet watches.
#[derive(Clone, Copy, Debug)]
pub struct WatchKey {
    /// Where it was derived.
    pub path: KeyPath,
    /// The Ed25519 public key.
    pub pubkey: [u8; 32],
    /// Its hash, which outputs pay.
    pub pkh: PubkeyHash,
}

/// Secrets held while unlocked.
struct Unlocked {
    seed: Seed,
    secrets: Secrets,
    /// `None`: never expires (unencrypted wallet, or an unlock without timeout).
    until: Option<Instant>,
}

/// An open wallet file.
pub struct Wallet {
    path: PathBuf,
    params: ChainParams,
    genesis: Hash256,
    body: Body,
    receive: Vec<WatchKey>,
    change: Vec<WatchKey>,
    by_pkh: HashMap<PubkeyHash, WatchKey>,
    unlocked: Option<Unlocked>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("path", &self.path)
            .field("network", &self.params.name)
            .field("account", &self.body.account)
            .field("locked", &self.unlocked.is_none())
            .finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Wallet {
    /// Creates a wallet with a fresh 24-word mnemonic, unencrypted, account 0, in `dir`.
    pub fn create_fresh(dir: &Path, params: &ChainParams) -> Result<Wallet> {
        Wallet::create(dir, params, Mnemonic::generate(), 0, CreateOptions::default())
    }

    /// Creates an unencrypted wallet for `account` of an existing mnemonic (devnet node I
    /// uses account I of [`lode_chain::params::DEVNET_MNEMONIC`]).
    pub fn from_mnemonic(dir: &Path, phrase: &str, account: u32, params: &ChainParams) -> Result<Wallet> {
        Wallet::create(dir, params, Mnemonic::parse(phrase)?, account, CreateOptions::default())
    }

    /// Creates a wallet file in `dir`. Refuses if one exists: a wallet is never overwritten.
    pub fn create(
        dir: &Path,
        params: &ChainParams,
        mnemonic: Mnemonic,
        account: u32,
        options: CreateOptions,
    ) -> Result<Wallet> {
        if account >= crate::slip10::HARDENED {
            return Err(WalletError::IndexOutOfRange(account));
        }
        fs::create_dir_all(dir).map_err(|e| WalletError::io(dir, e))?;
        let path = keystore::wallet_path(dir);
        if path.exists() {
            return Err(WalletError::AlreadyExists(path));
        }
        let genesis = params.genesis_hash();
        let secrets = Secrets {
            mnemonic: mnemonic.phrase().to_string(),
            bip39_passphrase: options.bip39_passphrase.to_string(),
        };
        let secret = match &options.encryption {
            None => StoredSecret::Plain(secrets.clone()),
            Some((pass, kdf)) => keystore::seal(&secrets, pass, *kdf, &genesis, account)?,
        };
        let body = Body {
            network: params.name.clone(),
            genesis,
            coin_type: params.coin_type,
            account,
            created_at: now_unix(),
            next_receive: 0,
            next_change: 0,
            secret,
            watch: WatchKeys::default(),
            pending_txs: Vec::new(),
            released: Vec::new(),
        };
        let mut wallet = Wallet::assemble(path, params, body)?;
        wallet.unlocked = Some(Unlocked {
            seed: mnemonic.to_seed(&secrets.bip39_passphrase),
            secrets,
            until: None,
        });
        wallet.top_up()?;
        if wallet.is_encrypted() {
            // A freshly created encrypted wallet starts locked like one opened from disk.
            wallet.unlocked = None;
        }
        wallet.save()?;
        tracing::info!(path = %wallet.path.display(), account, encrypted = wallet.is_encrypted(), "created wallet");
        Ok(wallet)
    }

    /// Opens the wallet in `dir`, checking it belongs to `params`' network. An encrypted
    /// wallet opens locked. A damaged file is reported and left as it is.
    pub fn open(dir: &Path, params: &ChainParams) -> Result<Wallet> {
        let path = keystore::wallet_path(dir);
        let body = keystore::read(&path)?;
        let mut wallet = Wallet::assemble(path, params, body)?;
        if let StoredSecret::Plain(secrets) = &wallet.body.secret {
            let secrets = secrets.clone();
            wallet.install_secrets(secrets, None)?;
        }
        Ok(wallet)
    }

    /// Opens the wallet in `dir`, or creates a fresh one if the directory has none, so a new
    /// data dir never meets a "no wallet" error. Any other failure is returned as is.
    pub fn open_or_create(dir: &Path, params: &ChainParams) -> Result<Wallet> {
        match Wallet::open(dir, params) {
            Err(WalletError::NotFound(_)) => Wallet::create_fresh(dir, params),
            other => other,
        }
    }

    fn assemble(path: PathBuf, params: &ChainParams, body: Body) -> Result<Wallet> {
        let genesis = params.genesis_hash();
        if body.genesis != genesis {
            return Err(WalletError::WrongNetwork {
                expected: params.name.clone(),
                found: body.network.clone(),
                found_genesis: body.genesis,
            });
        }
        let corrupted = |reason: String| WalletError::Corrupted {
            path: path.clone(),
            reason,
        };
        if body.coin_type != params.coin_type {
            return Err(corrupted(format!(
                "coin type {} differs from the network's {}",
                body.coin_type, params.coin_type
            )));
        }
        let mut wallet = Wallet {
            path: path.clone(),
            params: params.clone(),
            genesis,
            receive: Vec::new(),
            change: Vec::new(),
            by_pkh: HashMap::new(),
            unlocked: None,
            body: body.clone(),
        };
        for (chain, keys) in [
            (Chain::Receive, &body.watch.receive),
            (Chain::Change, &body.watch.change),
        ] {
            for (i, hex_key) in keys.iter().enumerate() {
                let mut pubkey = [0u8; 32];
                hex::decode_to_slice(hex_key, &mut pubkey)
                    .map_err(|_| corrupted(format!("watch key {i} of the {chain:?} chain is not 32 hex bytes")))?;
                let index = u32::try_from(i).map_err(|_| corrupted("too many watch keys".into()))?;
                wallet.add_watch(chain, index, pubkey);
            }
        }
        if body.next_receive as usize > wallet.receive.len() || body.next_change as usize > wallet.change.len() {
            return Err(corrupted("issued indexes exceed the stored keys".into()));
        }
        Ok(wallet)
    }

    fn add_watch(&mut self, chain: Chain, index: u32, pubkey: [u8; 32]) {
        let key = WatchKey {
            path: KeyPath {
                coin_type: self.body.coin_type,
                account: self.body.account,
                chain,
                index,
            },
            pubkey,
            pkh: PubkeyHash::from_pubkey(&pubkey),
        };
        self.by_pkh.insert(key.pkh, key);
        match chain {
            Chain::Receive => self.receive.push(key),
            Chain::Change => self.change.push(key),
        }
    }

    /// Derives the seed and checks it against the stored watch keys, so a wrong BIP39
    /// passphrase or a swapped mnemonic is caught before it signs anything.
    fn install_secrets(&mut self, secrets: Secrets, until: Option<Instant>) -> Result<()> {
        let mnemonic = Mnemonic::parse(&secrets.mnemonic).map_err(|e| WalletError::Corrupted {
            path: self.path.clone(),
            reason: format!("stored mnemonic: {e}"),
        })?;
        let seed = mnemonic.to_seed(&secrets.bip39_passphrase);
        if let Some(first) = self.receive.first() {
            if KeyPair::derive(&seed, &first.path)?.public_key() != first.pubkey {
                return Err(WalletError::Corrupted {
                    path: self.path.clone(),
                    reason: "stored keys do not match the stored mnemonic".into(),
                });
            }
        }
        self.unlocked = Some(Unlocked { seed, secrets, until });
        Ok(())
    }

    /// Derives watch keys up to `LOOKAHEAD` past each chain's next index. Needs the seed.
    fn top_up(&mut self) -> Result<bool> {
        let Some(unlocked) = &self.unlocked else {
            return Ok(false);
        };
        let mut new = Vec::new();
        for (chain, have, next) in [
            (Chain::Receive, self.receive.len(), self.body.next_receive),
            (Chain::Change, self.change.len(), self.body.next_change),
        ] {
            let want = next.saturating_add(LOOKAHEAD).min(crate::slip10::HARDENED - 1);
            for index in (have as u32)..want {
                let path = KeyPath {
                    coin_type: self.body.coin_type,
                    account: self.body.account,
                    chain,
                    index,
                };
                new.push((chain, index, KeyPair::derive(&unlocked.seed, &path)?.public_key()));
            }
        }
        let changed = !new.is_empty();
        for (chain, index, pubkey) in new {
            self.add_watch(chain, index, pubkey);
        }
        Ok(changed)
    }

    /// Writes the current state to the wallet file (atomically).
    fn save(&mut self) -> Result<()> {
        self.body.watch = WatchKeys {
            receive: self.receive.iter().map(|k| hex::encode(k.pubkey)).collect(),
            change: self.change.iter().map(|k| hex::encode(k.pubkey)).collect(),
        };
        keystore::write_atomic(&self.path, &self.body)
    }

    /// The own unconfirmed transactions the file holds, parents first. A record that does
    /// not decode is reported as damage (the file's checksum passed, so it is not noise).
    pub fn stored_pending(&self) -> Result<Vec<Transaction>> {
        self.body
            .pending_txs
            .iter()
            .enumerate()
            .map(|(i, hex_tx)| {
                let corrupted = |what: &str| WalletError::Corrupted {
                    path: self.path.clone(),
                    reason: format!("pending transaction {i} {what}"),
                };
                let bytes = hex::decode(hex_tx).map_err(|_| corrupted("is not hex"))?;
                lode_chain::encoding::decode::<Transaction>(&bytes, self.params.max_tx_size)
                    .map_err(|e| corrupted(&format!("does not decode: {e}")))
            })
            .collect()
    }

    /// Transactions released without confirming, oldest first.
    pub fn released(&self) -> &[keystore::Released] {
        &self.body.released
    }

    /// Records the own unconfirmed transactions (parents first) and any newly released
    /// ones, and writes the file (atomically, synced) before returning: once this returns,
    /// a crash cannot lose them. On failure the file and this wallet are as before.
    pub fn store_pending(&mut self, pending: &[&Transaction], released: Vec<(Hash256, String)>) -> Result<()> {
        let old_pending = std::mem::replace(
            &mut self.body.pending_txs,
            pending
                .iter()
                .map(|tx| hex::encode(lode_chain::encoding::encode(*tx)))
                .collect(),
        );
        let old_released = self.body.released.clone();
        let at = now_unix();
        self.body.released.extend(
            released
                .into_iter()
                .map(|(txid, reason)| keystore::Released { txid, reason, at }),
        );
        let excess = self.body.released.len().saturating_sub(keystore::MAX_RELEASED);
        self.body.released.drain(..excess);
        if let Err(e) = self.save() {
            self.body.pending_txs = old_pending;
            self.body.released = old_released;
            return Err(e);
        }
        Ok(())
    }

    /// The wallet file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network parameters the wallet was opened with.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The network's genesis hash (signatures are bound to it).
    pub fn genesis_hash(&self) -> Hash256 {
        self.genesis
    }

    /// The account number.
    pub fn account(&self) -> u32 {
        self.body.account
    }

    /// When the wallet was created, Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.body.created_at
    }

    /// True if the secret is sealed with a passphrase.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.body.secret, StoredSecret::Encrypted { .. })
    }

    /// True if the wallet cannot sign right now.
    pub fn is_locked(&self) -> bool {
        match &self.unlocked {
            None => true,
            Some(u) => u.until.is_some_and(|t| Instant::now() >= t),
        }
    }

    /// Unlocks an encrypted wallet for `timeout` (`None`: until [`Wallet::lock`]). A wrong
    /// passphrase is refused and leaves the wallet locked.
    pub fn unlock(&mut self, passphrase: &str, timeout: Option<Duration>) -> Result<()> {
        let secrets = keystore::open_secret(&self.body.secret, passphrase, &self.genesis, self.body.account).map_err(
            |e| match e {
                // The keystore does not know where the file is; name it for the user.
                WalletError::Corrupted { reason, .. } => WalletError::Corrupted {
                    path: self.path.clone(),
                    reason,
                },
                other => other,
            },
        )?;
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        self.install_secrets(secrets, until)?;
        if self.top_up()? {
            self.save()?;
        }
        tracing::info!(path = %self.path.display(), "wallet unlocked");
        Ok(())
    }

    /// Forgets the secrets of an encrypted wallet (zeroizing them). No effect on an
    /// unencrypted wallet, whose secret is on disk in the clear anyway.
    pub fn lock(&mut self) {
        if self.is_encrypted() {
            self.unlocked = None;
        }
    }

    /// Drops the secrets now if an unlock timeout has passed. Locking is otherwise noticed
    /// lazily, on the next use; the node calls this on a timer so expired secrets do not
    /// linger in memory.
    pub fn expire(&mut self) {
        if self.is_locked() {
            self.unlocked = None;
        }
    }

    /// Seals an unencrypted wallet's secret under `passphrase` and rewrites the file.
    pub fn encrypt(&mut self, passphrase: &str, kdf: KdfParams) -> Result<()> {
        let StoredSecret::Plain(secrets) = &self.body.secret else {
            return Err(WalletError::AlreadyEncrypted);
        };
        let sealed = keystore::seal(secrets, passphrase, kdf, &self.genesis, self.body.account)?;
        let old = std::mem::replace(&mut self.body.secret, sealed);
        if let Err(e) = self.save() {
            self.body.secret = old;
            return Err(e);
        }
        self.unlocked = None;
        Ok(())
    }

    fn secrets(&mut self) -> Result<&Unlocked> {
        if self.is_locked() {
            // Expired: drop (and zeroize) the secrets now rather than keeping them around.
            self.unlocked = None;
        }
        self.unlocked.as_ref().ok_or(WalletError::Locked)
    }

    /// The mnemonic phrase, for showing to its owner on request. Needs the wallet unlocked.
    pub fn mnemonic(&mut self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.secrets()?.secrets.mnemonic.clone()))
    }

    fn issue(&mut self, chain: Chain) -> Result<WatchKey> {
        let next = match chain {
            Chain::Receive => self.body.next_receive,
            Chain::Change => self.body.next_change,
        };
        if self.secrets().is_ok() {
            self.top_up()?;
        }
        let pool = match chain {
            Chain::Receive => &self.receive,
            Chain::Change => &self.change,
        };
        let key = *pool.get(next as usize).ok_or(WalletError::AddressPoolExhausted)?;
        let bump = next.checked_add(1).ok_or(WalletError::AddressPoolExhausted)?;
        match chain {
            Chain::Receive => self.body.next_receive = bump,
            Chain::Change => self.body.next_change = bump,
        }
        if self.secrets().is_ok() {
            self.top_up()?;
        }
        self.save()?;
        Ok(key)
    }

    /// Moves the issued indexes past every key in `used` (keys the chain shows were paid,
    /// e.g. after restoring from the mnemonic), so they are not handed out again and the
    /// look-ahead pool reaches [`LOOKAHEAD`] keys beyond them. Returns true if the set of
    /// watched keys grew: the caller should then watch them and rescan (BIP44's gap limit).
    /// A locked wallet advances its indexes but can only grow the pool once unlocked.
    pub fn mark_used(&mut self, used: impl IntoIterator<Item = PubkeyHash>) -> Result<bool> {
        let before = self.by_pkh.len();
        let mut changed = false;
        for pkh in used {
            let Some(key) = self.by_pkh.get(&pkh).copied() else {
                continue;
            };
            let next = match key.path.chain {
                Chain::Receive => &mut self.body.next_receive,
                Chain::Change => &mut self.body.next_change,
            };
            if key.path.index >= *next {
                *next = key.path.index.saturating_add(1);
                changed = true;
            }
        }
        if !changed {
            return Ok(false);
        }
        if self.secrets().is_ok() {
            self.top_up()?;
        }
        self.save()?;
        Ok(self.by_pkh.len() > before)
    }

    /// Issues the next receive address (persisted, so it is never handed out twice).
    pub fn new_receive_address(&mut self) -> Result<String> {
        let key = self.issue(Chain::Receive)?;
        encode_address(&key.pkh, &self.params)
    }

    /// Issues the next change key; the builder pays change to it.
    pub fn new_change_key(&mut self) -> Result<WatchKey> {
        self.issue(Chain::Change)
    }

    /// The receive address at `index` if it is already derived (index 0 is the miner's
    /// default payout address).
    pub fn receive_address(&self, index: u32) -> Option<String> {
        let key = self.receive.get(index as usize)?;
        encode_address(&key.pkh, &self.params).ok()
    }

    /// Receive addresses issued so far, in order.
    pub fn issued_addresses(&self) -> Vec<String> {
        self.receive
            .iter()
            .take(self.body.next_receive as usize)
            .filter_map(|k| encode_address(&k.pkh, &self.params).ok())
            .collect()
    }

    /// Every public-key hash the wallet watches (issued keys and the look-ahead pool).
    pub fn watched_pkhs(&self) -> Vec<PubkeyHash> {
        self.receive.iter().chain(self.change.iter()).map(|k| k.pkh).collect()
    }

    /// The watch key paying `pkh`, if it is ours.
    pub fn key_for(&self, pkh: &PubkeyHash) -> Option<&WatchKey> {
        self.by_pkh.get(pkh)
    }

    /// Signs every input of `tx`; `owners[i]` is the public-key hash input `i` spends from.
    /// Fills each input's public key, then signs the one digest all inputs share
    /// ([`Transaction::sighash`] blanks every signature, so it does not depend on the order).
    pub fn sign(&mut self, tx: &mut Transaction, owners: &[PubkeyHash]) -> Result<()> {
        if owners.len() != tx.inputs.len() {
            return Err(WalletError::Crypto("one owner per input is required"));
        }
        let mut keys = Vec::with_capacity(owners.len());
        self.secrets()?;
        let seed = &self.unlocked.as_ref().ok_or(WalletError::Locked)?.seed;
        for (input, owner) in tx.inputs.iter().zip(owners) {
            let watch = self.by_pkh.get(owner).ok_or(WalletError::UnknownKey(input.prev_out))?;
            let key = KeyPair::derive(seed, &watch.path)?;
            if key.pubkey_hash() != *owner {
                return Err(WalletError::UnknownKey(input.prev_out));
            }
            keys.push(key);
        }
        for (input, key) in tx.inputs.iter_mut().zip(&keys) {
            input.unlock = Unlock::Key(KeyUnlock {
                pubkey: key.public_key(),
                signature: [0; 64],
            });
        }
        let digest = tx.sighash(&self.genesis);
        for (input, key) in tx.inputs.iter_mut().zip(&keys) {
            if let Unlock::Key(k) = &mut input.unlock {
                k.signature = key.sign(&digest);
            }
        }
        Ok(())
    }
}
