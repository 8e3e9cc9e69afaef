//! The node's built-in wallet and embedded miner, as the chain task sees them.
//!
//! The wallet lives in `DATA_DIR/wallet/`: a fresh one is created on first start, or
//! account I of a given mnemonic (`--wallet-mnemonic-file`, `--wallet-account`: what
//! `devnet up` gives node I). Its tracker follows every chain event; at start it is rebuilt
//! from the chain's address index. The miner's coinbase pays a fresh receive address of
//! this wallet (or `--mining-address`). Found blocks leave the worker threads on a std
//! channel and come back into the chain task's queue like any other block, then are
//! gossiped (see `node::start`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lode_chain::mempool::Mempool;
use lode_chain::{ChainEvent, ChainState, PubkeyHash};
use lode_miner::{FoundBlock, MinerStats, MiningController};
use lode_wallet::tracker::Tracker;
use lode_wallet::Wallet;

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
            (Some(file), Err(lode_wallet::WalletError::NotFound(_))) => {
                let phrase = std::fs::read_to_string(file).map_err(|source| NodeError::Io {
                    path: file.display().to_string(),
                    source,
                })?;
                Wallet::from_mnemonic(&dir, phrase.trim(), cfg.account, params).map_err(wallet_err)?
            }
            (None, Err(lode_wallet::WalletError::NotFound(_))) => {
                Wallet::create_fresh(&dir, params).map_err(wallet_err)?
            }
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

    /// A fresh receive address's key hash (for the coinbase).
    pub fn fresh_pkh(&mut self, hrp: &str) -> Result<PubkeyHash, NodeError> {
        let addr = self.wallet.new_receive_address().map_err(wallet_err)?;
        PubkeyHash::from_address(&addr, hrp).map_err(|e| NodeError::Config(format!("wallet address: {e}")))
    }
}

fn wallet_err(e: lode_wallet::WalletError) -> NodeError {
    NodeError::Wallet(e.to_string())
}

/// The embedded miner as the chain task drives it.
pub struct NodeMiner {
    controller: MiningController,
    pay_to: PubkeyHash,
}

impl NodeMiner {
    /// Starts `threads` workers paying `pay_to`; found blocks go to `found`.
    pub fn start(
        threads: usize,
        pay_to: PubkeyHash,
        found: std::sync::mpsc::Sender<FoundBlock>,
    ) -> Result<NodeMiner, NodeError> {
        let controller = MiningController::start(threads, pay_to, found).map_err(|e| NodeError::Task(e.to_string()))?;
        tracing::info!(threads, kernel = lode_miner::kernel_name(), "embedded miner started");
        Ok(NodeMiner { controller, pay_to })
    }

    /// Gives the workers a fresh template when the tip moved or more fees wait.
    pub fn update(&mut self, chain: &ChainState, pool: &Mempool) {
        if let Err(e) = self.controller.update(chain, pool, Instant::now()) {
            tracing::warn!(error = %e, "cannot build a block template");
        }
    }

    /// Counts our own blocks leaving the best chain as stale.
    pub fn on_chain_event(&self, event: &ChainEvent) {
        if let ChainEvent::BlockDisconnected { block, .. } = event {
            if let Some(cb) = block.transactions.first() {
                let ours: u64 = cb
                    .outputs
                    .iter()
                    .filter(|o| o.pubkey_hash == self.pay_to)
                    .map(|o| o.value.0)
                    .sum();
                if ours > 0 {
                    self.controller.stats().record_stale(ours);
                }
            }
        }
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.controller.threads()
    }

    /// Accounting.
    pub fn stats(&self) -> Arc<MinerStats> {
        self.controller.stats()
    }
}
