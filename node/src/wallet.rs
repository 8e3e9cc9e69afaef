//! The node's built-in wallet as the chain task holds it: keys (`DATA_DIR/wallet/`) and the
//! view of its coins, and every wallet rule the node applies (which address a coinbase pays,
//! watching what is issued, reserving what a payment spends).
//!
//! A fresh wallet is created on first start, or account I of a given mnemonic
//! (`--wallet-mnemonic-file`, `--wallet-account`: what `devnet up` gives node I). Its
//! tracker follows every chain event; at start it is rebuilt from the chain's address index.
//!
//! The wallet's own unconfirmed transactions are kept in the wallet file (parents first):
//! a payment is written there before the mempool sees it, so its txid is never returned
//! for something a crash could forget. At start they are reserved again (or released, with
//! the reason, if a block confirmed a conflicting spend meanwhile) and the chain task hands
//! them to the mempool again; the file follows every settlement.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lode_chain::{Amount, ChainEvent, ChainState, Hash256, Height, PubkeyHash, Transaction};
use lode_wallet::builder::Payment;
use lode_wallet::tracker::{Settlement, Tracker};
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
    /// Own transactions released without confirming: (txid, why), oldest first.
    pub released: Vec<(Hash256, String)>,
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
    /// Txids of the pending transactions the wallet file holds now.
    stored: BTreeSet<Hash256>,
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
        let tracker = Tracker::new(wallet.watched_pkhs(), params.coinbase_maturity);
        let mut node_wallet = NodeWallet {
            wallet,
            tracker,
            stored: BTreeSet::new(),
        };
        let read = node_wallet.rescan(chain).map_err(wallet_err)?;
        tracing::info!(
            blocks_read = read,
            balance = %node_wallet.tracker.balance().spendable,
            pending = node_wallet.stored.len(),
            "wallet loaded"
        );
        Ok(node_wallet)
    }

    /// Rebuilds the view from the chain's address index, then reserves the pending
    /// transactions of the wallet file again. One that a block confirmed meanwhile is
    /// history now; one whose coins a block spent otherwise is released, with the reason.
    fn rescan(&mut self, chain: &ChainState) -> Result<usize, WalletError> {
        let read = self.tracker.rescan_from_index(chain)?;
        let stored = self.wallet.stored_pending()?;
        self.stored = stored.iter().map(Transaction::txid).collect();
        let mut released = Vec::new();
        for tx in stored {
            let txid = tx.txid();
            if chain.store().tx_location(&txid)?.is_some() {
                continue;
            }
            if let Some(input) = tx.inputs.iter().find(|i| self.tracker.own_coin(&i.prev_out).is_none()) {
                let reason = format!(
                    "input {}:{} was spent by another transaction while the node was down",
                    input.prev_out.txid, input.prev_out.index
                );
                tracing::warn!(%txid, %reason, "pending wallet transaction released");
                released.push((txid, reason));
                continue;
            }
            if let Err(e) = self.tracker.add_pending(&tx) {
                tracing::warn!(%txid, reason = %e, "pending wallet transaction released");
                released.push((txid, e.to_string()));
            }
        }
        self.persist(released)?;
        Ok(read)
    }

    /// Writes the pending transactions and new releases to the wallet file if they
    /// changed since the last write.
    fn persist(&mut self, released: Vec<(Hash256, String)>) -> Result<(), WalletError> {
        let pending = self.tracker.pending_in_order();
        let now: BTreeSet<Hash256> = pending.iter().map(|p| p.txid).collect();
        if now == self.stored && released.is_empty() {
            return Ok(());
        }
        let txs: Vec<&Transaction> = pending.iter().map(|p| &p.tx).collect();
        self.wallet.store_pending(&txs, released)?;
        self.stored = now;
        Ok(())
    }

    /// Follows one chain event; the wallet file follows what it settled.
    pub fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent) {
        if let Err(e) = self.tracker.apply(event) {
            // Out of step (should not happen): rebuild from the index rather than be wrong.
            tracing::warn!(error = %e, "wallet view out of step with the chain; rescanning");
            if let Err(e) = self.rescan(chain) {
                tracing::error!(error = %e, "wallet rescan failed");
            }
        }
        let released = self
            .tracker
            .take_settlements()
            .into_iter()
            .filter(|(_, s)| matches!(s, Settlement::Conflicted(_)))
            .map(|(txid, s)| (txid, s.to_string()))
            .collect();
        if let Err(e) = self.persist(released) {
            // The file keeps the older list: a restart re-checks each against the chain.
            tracing::error!(error = %e, "cannot record settled wallet transactions in the wallet file");
        }
    }

    /// Own unconfirmed transactions, parents first (to hand to the mempool again).
    pub fn pending_txs(&self) -> Vec<Transaction> {
        self.tracker
            .pending_in_order()
            .into_iter()
            .map(|p| p.tx.clone())
            .collect()
    }

    /// Releases a pending transaction the mempool refused for good, recording why.
    pub fn release(&mut self, txid: &Hash256, reason: String) -> Result<(), WalletError> {
        // Its children spend its outputs: they cannot stand without it.
        let mut doomed = vec![*txid];
        let mut released = Vec::new();
        while let Some(t) = doomed.pop() {
            doomed.extend(
                self.tracker
                    .pending()
                    .filter(|p| p.tx.inputs.iter().any(|i| i.prev_out.txid == t))
                    .map(|p| p.txid),
            );
            if self.tracker.abandon_pending(&t) {
                let why = if t == *txid {
                    reason.clone()
                } else {
                    format!("its parent {txid} was released: {reason}")
                };
                tracing::warn!(txid = %t, reason = %why, "pending wallet transaction released");
                released.push((t, why));
            }
        }
        self.persist(released)
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

    /// Records a payment before the mempool sees it: its coins are reserved and it is in
    /// the wallet file (synced) when this returns. On failure nothing is reserved.
    pub fn record_sent(&mut self, tx: &Transaction) -> Result<(), WalletError> {
        let txid = self.tracker.add_pending(tx)?;
        if let Err(e) = self.persist(Vec::new()) {
            self.tracker.abandon_pending(&txid);
            return Err(e);
        }
        Ok(())
    }

    /// True if `tx` spends one of this wallet's coins that no pending transaction of its
    /// own reserves: a transaction only this wallet's keys could have signed, which it has
    /// let go of.
    pub fn spends_unreserved_own(&self, tx: &Transaction) -> bool {
        tx.inputs
            .iter()
            .any(|i| self.tracker.own_coin(&i.prev_out).is_some() && !self.tracker.is_reserved(&i.prev_out))
    }

    /// Takes a mempool transaction spending this wallet's coins back as its own pending
    /// one (reserved, and in the wallet file when this returns). The wallet file lets a
    /// payment go when a block confirms it; if a crash loses that block before it reached
    /// the disk, the payment comes back into the mempool (from `mempool.dat`, or relayed by
    /// a peer) while the wallet would see its coins as free and could pay them twice.
    /// Returns whether it was adopted (not when one of its coins is reserved by another).
    pub fn adopt(&mut self, tx: &Transaction) -> Result<bool, WalletError> {
        let txid = tx.txid();
        if !self.spends_unreserved_own(tx)
            || tx.inputs.iter().any(|i| self.tracker.is_reserved(&i.prev_out))
            || self.tracker.pending().any(|p| p.txid == txid)
        {
            return Ok(false);
        }
        self.record_sent(tx)?;
        tracing::info!(%txid, "mempool transaction spending the wallet's coins taken back as pending");
        Ok(true)
    }

    /// Takes back a payment the mempool refused right after [`NodeWallet::record_sent`]
    /// (it was never announced): nothing to remember about it.
    pub fn unsend(&mut self, txid: &Hash256) -> Result<(), WalletError> {
        self.tracker.abandon_pending(txid);
        self.persist(Vec::new())
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
            released: self
                .wallet
                .released()
                .iter()
                .map(|r| (r.txid, r.reason.clone()))
                .collect(),
        }
    }
}

fn wallet_err(e: WalletError) -> NodeError {
    NodeError::Wallet(e.to_string())
}
