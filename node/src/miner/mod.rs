//! The embedded miner as the chain task drives it: worker threads doing the nonce search on
//! templates the chain task builds after every change. Found blocks leave the workers on a
//! std channel and come back into the chain task's queue like any other local block (see
//! `chain_task`), which then announces them.
//!
//! | module | one idea |
//! |---|---|
//! | [`ledger`] | our blocks: found, stale, rewards, corrected on reorg |
//! | [`history`] | the hash-rate rings (1 s for 10 min, 1 min for 24 h), per thread and total |
//! | [`monitor`] | [`MiningMonitor`]: both, shared by the chain task, a sampler and the RPC |
//! | [`store`] | the ledger's file in the data dir (bounded, written whole) |

pub mod history;
pub mod ledger;
pub mod monitor;
pub mod store;

pub use monitor::MiningMonitor;

use std::sync::Arc;
use std::time::Instant;

use lode_chain::mempool::Mempool;
use lode_chain::{ChainState, PubkeyHash};
use lode_miner::{FoundBlock, MinerStats, MiningController};

use crate::error::NodeError;

/// How the node mines.
#[derive(Clone, Debug)]
pub struct MiningConfig {
    /// Mine from the start.
    pub enabled: bool,
    /// Worker threads (also the default for RPC `setgenerate`).
    pub threads: usize,
    /// Where the coinbase pays instead of a fresh wallet address.
    pub address: Option<PubkeyHash>,
}

impl Default for MiningConfig {
    fn default() -> MiningConfig {
        MiningConfig {
            enabled: false,
            threads: 1,
            address: None,
        }
    }
}

/// The embedded miner.
pub struct NodeMiner {
    controller: MiningController,
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
        Ok(NodeMiner { controller })
    }

    /// Gives the workers a fresh template when the tip moved or more fees wait.
    pub fn update(&mut self, chain: &ChainState, pool: &Mempool) {
        if let Err(e) = self.controller.update(chain, pool, Instant::now()) {
            tracing::warn!(error = %e, "cannot build a block template");
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
