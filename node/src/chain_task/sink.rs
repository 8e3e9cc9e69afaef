//! The seam where the mempool plugs in: [`TxSink`]. The node uses [`MempoolSink`] (the chain
//! crate's mempool: keeps, orders, replaces and re-admits transactions on reorgs, fed every
//! chain event); [`TipCheck`] validates against the tip and keeps nothing.

use std::sync::Arc;

use lode_chain::error::{ChainError, ConsensusError};
use lode_chain::mempool::{Mempool, TxAccepted};
use lode_chain::validation::spend::verify_tx_signatures;
use lode_chain::validation::{check_transaction, check_tx_inputs};
use lode_chain::{ChainEvent, ChainState, Hash256, Height, Transaction};

use super::verdict::TxVerdict;

/// The seam where the mempool plugs in: the chain task hands it every transaction and
/// every chain event, with the chain state for context.
pub trait TxSink: Send + Sync {
    /// Judges (and, for a mempool, keeps) a transaction.
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict;
    /// Sees every best-chain change (a mempool evicts mined and re-admits reorged txs).
    fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent);
    /// Transactions held (none for a sink that keeps nothing).
    fn txids(&self) -> Vec<Hash256>;
    /// Transactions that entered the pool without being submitted (returned from
    /// disconnected blocks, orphans whose parents arrived): peers have not seen them from
    /// us, so they are announced. Drained by the chain task after every command.
    fn take_relay(&mut self) -> Vec<Arc<Transaction>>;
    /// The pool, if this sink keeps one (the miner takes its transactions from it).
    fn mempool(&self) -> Option<&Mempool> {
        None
    }
    /// The pool to change, if this sink keeps one (restoring it from disk at start).
    fn mempool_mut(&mut self) -> Option<&mut Mempool> {
        None
    }
}

/// The mempool as the transaction sink: what it accepts is relayed; what breaks consensus
/// is penalised; policy refusals, conflicts and orphans are neither (they depend on what
/// this node has seen).
pub struct MempoolSink {
    pool: Mempool,
    relay: Vec<Hash256>,
}

impl MempoolSink {
    /// An empty pool with the network's default policy.
    pub fn new(params: &lode_chain::ChainParams) -> MempoolSink {
        MempoolSink {
            pool: Mempool::new(params, lode_chain::state::system_clock()),
            relay: Vec::new(),
        }
    }
}

impl TxSink for MempoolSink {
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict {
        let txid = tx.txid();
        match self.pool.accept(Arc::new(tx), chain) {
            Ok(TxAccepted::Added { orphans_added, .. }) => {
                self.relay.extend(orphans_added);
                TxVerdict::Accepted { txid }
            }
            Ok(TxAccepted::Orphan { missing, .. }) => TxVerdict::Ignored {
                txid,
                reason: format!("waits for {} unknown parent(s)", missing.len()),
            },
            Err(e) if e.breaks_consensus() => TxVerdict::Rejected {
                txid,
                reason: e.to_string(),
            },
            Err(e) => TxVerdict::Ignored {
                txid,
                reason: e.to_string(),
            },
        }
    }

    fn on_chain_event(&mut self, chain: &ChainState, event: &ChainEvent) {
        let update = self.pool.apply(event, chain);
        self.relay
            .extend(update.returned.iter().chain(&update.orphans_added).copied());
        if !update.dropped.is_empty() {
            tracing::debug!(
                dropped = update.dropped.len(),
                "mempool dropped transactions after a reorg"
            );
        }
    }

    fn txids(&self) -> Vec<Hash256> {
        self.pool.txids()
    }

    fn mempool(&self) -> Option<&Mempool> {
        Some(&self.pool)
    }

    fn mempool_mut(&mut self) -> Option<&mut Mempool> {
        Some(&mut self.pool)
    }

    fn take_relay(&mut self) -> Vec<Arc<Transaction>> {
        // Only what is still in the pool (a later event may have confirmed or dropped it).
        std::mem::take(&mut self.relay)
            .iter()
            .filter_map(|txid| self.pool.get(txid).map(|e| e.tx().clone()))
            .collect()
    }
}

/// A sink that keeps nothing: full validation against the tip only (for embedders and
/// tests that want no pool).
#[derive(Debug, Default)]
pub struct TipCheck;

impl TxSink for TipCheck {
    fn submit(&mut self, chain: &ChainState, tx: Transaction) -> TxVerdict {
        let txid = tx.txid();
        let params = chain.params();
        if let Err(rule) = check_transaction(&tx, params) {
            return TxVerdict::Rejected {
                txid,
                reason: rule.to_string(),
            };
        }
        if tx.is_coinbase() {
            return TxVerdict::Rejected {
                txid,
                reason: ConsensusError::UnexpectedCoinbaseInput.to_string(),
            };
        }
        let spend_height = Height(chain.height().0.saturating_add(1));
        let genesis = chain.genesis_hash();
        let inputs = match check_tx_inputs(&tx, txid, chain.store(), spend_height, params, &genesis) {
            Ok(i) => i,
            // Unknown inputs may be a parent we have not seen yet: not the sender's fault.
            Err(ChainError::InvalidTx {
                rule: ConsensusError::MissingOrSpentInput { .. },
                ..
            }) => {
                return TxVerdict::Ignored {
                    txid,
                    reason: "spends an unknown or spent output".into(),
                }
            }
            Err(e) => return tx_error(txid, e),
        };
        match verify_tx_signatures(txid, &inputs.signatures) {
            Ok(()) => TxVerdict::Accepted { txid },
            Err(e) => tx_error(txid, e),
        }
    }

    fn on_chain_event(&mut self, _chain: &ChainState, _event: &ChainEvent) {}

    fn txids(&self) -> Vec<Hash256> {
        Vec::new()
    }

    fn take_relay(&mut self) -> Vec<Arc<Transaction>> {
        Vec::new()
    }
}

fn tx_error(txid: Hash256, e: ChainError) -> TxVerdict {
    match e.consensus_rule() {
        Some(rule) => TxVerdict::Rejected {
            txid,
            reason: rule.to_string(),
        },
        None => TxVerdict::Ignored {
            txid,
            reason: e.to_string(),
        },
    }
}
