//! The node's built-in wallet as the chain task holds it: keys (`DATA_DIR/wallet/`) and the
//! view of its coins, and every wallet rule the node applies (which address a coinbase pays,
//! watching what is issued, reserving what a payment spends).
//!
//! A fresh wallet is created on first start, or account I of a given mnemonic
//! (`--wallet-mnemonic-file`, `--wallet-account`: what `devnet up` gives node I). Its
//! tracker follows every chain event; at start it is rebuilt from the chain's address index.

use std::path::{Path, PathBuf};

use lode_chain::{Amount, ChainEvent, ChainState, Hash256, Height, PubkeyHash, Transaction};
use lode_wallet::builder::Payment;
use lode_wallet::tracker::Tracker;
use lode_wallet::{Wallet, WalletError};

use crate::error::NodeError;

/// Sub-directory of the data dir holding the wallet file.
pub const WALLET_DIR: &str = "wallet";

/// How the node's wallet is chosen.
#[derive(Clone, Debug, Default)]
pub struct WalletConfig {
    /// A file holding a BIP39 mnemonic: the wallet is account `account` of it.
    pub mnemonic_file: Option<PathBuf>,
    /// Account index for `mnemonic_file`.
    pub account: u32,
}

/// Why a wallet action failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletActionError {
    /// The node runs without a wallet.
    #[error("this node has no wallet")]
    NoWallet,
    /// The wallet refused (locked, insufficient funds, bad address, …).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The wallet has issued no address yet.
    #[error("the wallet has no address")]
    NoAddress,
    /// The payment was built but the mempool refused it.
    #[error("{0}")]
    Refused(String),
}

/// What the built-in wallet holds.
#[derive(Clone, Debug)]
pub struct WalletInfo {
    /// Balances (spendable, immature with maturity heights, reserved, pending).
    pub balance: lode_wallet::tracker::Balance,
    /// Receive addresses issued so far.
    pub addresses: Vec<String>,
    /// The wallet's first receive address (watched from the start).
    pub first_address: Option<String>,
    /// Confirmed history: (txid, height, net amount in base units).
    pub history: Vec<(Hash256, Option<Height>, i128)>,
}

/// A payment the wallet made and the mempool accepted.
#[derive(Clone, Debug)]
pub struct SentPayment {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Hash256,
    /// Fee paid.
    pub fee: Amount,
    /// Its canonical size in bytes.
    pub size: usize,
}

/// The wallet and the view of its coins.
pub struct NodeWallet {
    /// Keys and addresses.
    pub wallet: Wallet,
    /// Coins, balances and history, following the chain.
    pub tracker: Tracker,
}

impl NodeWallet {
    /// Opens the wallet in `data_dir` (creating it as configured) and rebuilds its view from
    /// the chain's address index.
    pub fn open(data_dir: &Path, cfg: &WalletConfig, chain: &ChainState) -> Result<NodeWallet, NodeError> {
        let dir = data_dir.join(WALLET_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| NodeError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let params = chain.params();
        let wallet = match (&cfg.mnemonic_file, Wallet::open(&dir, params)) {
            (_, Ok(w)) => w,
            (Some(file), Err(WalletError::NotFound(_))) => {
                let phrase = std::fs::read_to_string(file).map_err(|source| NodeError::Io {
                    path: file.display().to_string(),
                    source,
                })?;
                Wallet::from_mnemonic(&dir, phrase.trim(), cfg.account, params).map_err(wallet_err)?
            }
            (None, Err(WalletError::NotFound(_))) => Wallet::create_fresh(&dir, params).map_err(wallet_err)?,
            (_, Err(e)) => return Err(wallet_err(e)),
        };
        let mut tracker = Tracker::new(wallet.watched_pkhs(), params.coinbase_maturity);
        let read = tracker.rescan_from_index(chain).map_err(wallet_err)?;
        tracing::info!(blocks_read = read, balance = %tracker.balance().spendable, "wallet loaded");
        Ok(NodeWallet { wallet, tracker })
    }

    /// Follows one chain event.
    pub fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent) {
        if let Err(e) = self.tracker.apply(event) {
            // Out of step (should not happen): rebuild from the index rather than be wrong.
            tracing::warn!(error = %e, "wallet view out of step with the chain; rescanning");
            if let Err(e) = self.tracker.rescan_from_index(chain) {
                tracing::error!(error = %e, "wallet rescan failed");
            }
        }
    }

    /// Issues a fresh receive address and watches every key the look-ahead pool now holds,
    /// so coins paid to it (a payment or a coinbase) are seen.
    pub fn new_address(&mut self) -> Result<String, WalletError> {
        let addr = self.wallet.new_receive_address()?;
        self.tracker.watch(self.wallet.watched_pkhs());
        Ok(addr)
    }

    /// A fresh receive address's key hash (for a coinbase).
    pub fn fresh_pkh(&mut self, hrp: &str) -> Result<PubkeyHash, WalletActionError> {
        let addr = self.new_address()?;
        Ok(PubkeyHash::from_address(&addr, hrp).map_err(WalletError::from)?)
    }

    /// The wallet's first receive address's key hash.
    pub fn first_pkh(&self, hrp: &str) -> Result<PubkeyHash, WalletActionError> {
        let first = self.wallet.receive_address(0).ok_or(WalletActionError::NoAddress)?;
        Ok(PubkeyHash::from_address(&first, hrp).map_err(WalletError::from)?)
    }

    /// Builds and signs a payment of `amount` to `address` at `fee_rate` (units/byte),
    /// choosing coins that are neither immature nor reserved.
    pub fn build_payment(&mut self, address: &str, amount: Amount, fee_rate: u64) -> Result<Payment, WalletError> {
        lode_wallet::builder::build_payment(&mut self.wallet, &mut self.tracker, address, amount, Some(fee_rate))
    }

    /// Records a payment the mempool accepted: its coins stay reserved until it confirms.
    pub fn record_sent(&mut self, tx: &Transaction) -> Result<(), WalletError> {
        self.tracker.add_pending(tx).map(|_| ())
    }

    /// Balances, addresses and history.
    pub fn info(&self) -> WalletInfo {
        WalletInfo {
            balance: self.tracker.balance(),
            addresses: self.wallet.issued_addresses(),
            first_address: self.wallet.receive_address(0),
            history: self
                .tracker
                .history()
                .iter()
                .map(|h| (h.txid, h.height, h.net()))
                .collect(),
        }
    }
}

fn wallet_err(e: WalletError) -> NodeError {
    NodeError::Wallet(e.to_string())
}
