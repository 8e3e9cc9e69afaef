//! [`ChainView`]: the read-only view of the chain task's state that readers (RPC, REST) get.
//!
//! A read runs on the chain thread between two commands, so everything it sees belongs to
//! one consistent moment: the chain, the mempool and the wallet at the same tip. The view
//! holds shared references only and offers no way to change anything.

use lode_chain::mempool::Mempool;
use lode_chain::{ChainState, PubkeyHash};
use lode_miner::MinerStats;

use crate::miner::NodeMiner;
use crate::wallet::NodeWallet;

/// The chain task's state, for reading.
pub struct ChainView<'a> {
    pub(super) chain: &'a ChainState,
    pub(super) mempool: Option<&'a Mempool>,
    pub(super) wallet: Option<&'a NodeWallet>,
    pub(super) miner: Option<&'a NodeMiner>,
    pub(super) mining_address: Option<PubkeyHash>,
}

/// What the embedded miner is doing.
#[derive(Clone, Debug)]
pub struct MinerStatus {
    /// Worker threads.
    pub threads: usize,
    /// Its accounting (hash rate, blocks found, stale blocks).
    pub stats: std::sync::Arc<MinerStats>,
}

impl<'a> ChainView<'a> {
    /// The chain.
    pub fn chain(&self) -> &'a ChainState {
        self.chain
    }

    /// The mempool, if the node keeps one.
    pub fn mempool(&self) -> Option<&'a Mempool> {
        self.mempool
    }

    /// The built-in wallet.
    pub fn wallet(&self) -> Option<&'a NodeWallet> {
        self.wallet
    }

    /// The embedded miner, if it runs.
    pub fn miner(&self) -> Option<MinerStatus> {
        self.miner.map(|m| MinerStatus {
            threads: m.threads(),
            stats: m.stats(),
        })
    }

    /// The configured coinbase address (`--mining-address`), if any.
    pub fn mining_address(&self) -> Option<PubkeyHash> {
        self.mining_address
    }

    /// Where a block template pays when no address is given: the configured mining address,
    /// else the wallet's first receive address (a read never issues a fresh one).
    pub fn default_payout(&self) -> Result<PubkeyHash, crate::wallet::WalletActionError> {
        if let Some(a) = self.mining_address {
            return Ok(a);
        }
        let wallet = self.wallet.ok_or(crate::wallet::WalletActionError::NoWallet)?;
        wallet.first_pkh(&self.chain.params().hrp)
    }
}
