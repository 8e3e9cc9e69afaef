//! Templates for Stratum jobs: built by the chain task (a read through `ChainHandle`) on
//! every new tip at once and every `job_interval` otherwise, published on a `watch`. Each
//! session turns a template into its own job (its coinbase outputs, split into coinb1/coinb2
//! around the 8-byte extra-nonce region).

use std::sync::Arc;
use std::time::Duration;

use lode_chain::build::coinbase;
use lode_chain::pow::{target_from_bits, U256};
use lode_chain::{Amount, Block, BlockHeader, Hash256, Height, PubkeyHash, Transaction, TxOut};
use lode_miner::template::{build_template, NoTransactions};
use tokio::sync::watch;

use crate::chain_task::{ChainHandle, TipInfo};
use crate::common::stratum::{difficulty_of_target, merkle_branch, split_coinbase, WireError};

use super::pool::ledger::LedgerHead;
use super::pool::{Pool, TemplateFacts};

/// What every coinbase mined through Stratum carries as its message.
pub const COINBASE_MESSAGE: &[u8] = b"lode/stratum";

/// A block template for Stratum jobs (no coinbase yet: each job supplies its own).
#[derive(Debug)]
pub struct Template {
    /// Increases with every template.
    pub id: u64,
    /// Height of the block.
    pub height: Height,
    /// Its parent.
    pub prev_hash: Hash256,
    /// Header version.
    pub version: u32,
    /// Compact target.
    pub bits: u32,
    /// The time the template was stamped with (the job's ntime).
    pub time: u32,
    /// The earliest time a block may carry (median time past + 1).
    pub min_time: u32,
    /// Subsidy + fees.
    pub reward: Amount,
    /// The transactions after the coinbase.
    pub txs: Arc<Vec<Transaction>>,
    /// The coinbase's merkle branch.
    pub branch: Vec<Hash256>,
    /// The network target.
    pub target: U256,
    /// Network difficulty (diff1 / target).
    pub net_diff: f64,
    /// Where the node's own coinbase pays (wallet or `--mining-address`), if anywhere.
    pub node_payout: Option<PubkeyHash>,
    /// Pool mode: the outputs of the window's split (the same for every miner).
    pub pool_outputs: Option<Arc<Vec<TxOut>>>,
    /// True when the tip moved since the previous template.
    pub clean: bool,
}

/// A template turned into one coinbase: the job a session sends.
#[derive(Debug)]
pub struct JobCoinbase {
    /// Bytes before the extra-nonce region.
    pub coinb1: Vec<u8>,
    /// Bytes after it.
    pub coinb2: Vec<u8>,
    /// The outputs (to rebuild the block).
    pub outputs: Vec<TxOut>,
}

impl Template {
    /// The coinbase paying `outputs`, split for Stratum.
    pub fn job_coinbase(&self, outputs: Vec<TxOut>) -> Result<JobCoinbase, WireError> {
        let cb = coinbase(self.height, 0, COINBASE_MESSAGE, outputs.clone());
        let (coinb1, coinb2) = split_coinbase(&cb)?;
        Ok(JobCoinbase {
            coinb1,
            coinb2,
            outputs,
        })
    }

    /// The full block a share describes.
    pub fn block(&self, header: BlockHeader, outputs: &[TxOut], extra_nonce: u64) -> Block {
        let mut transactions = Vec::with_capacity(self.txs.len() + 1);
        transactions.push(coinbase(self.height, extra_nonce, COINBASE_MESSAGE, outputs.to_vec()));
        transactions.extend(self.txs.iter().cloned());
        Block { header, transactions }
    }
}

/// Builds one template on the chain task's current tip; in pool mode also the pool's
/// ledger on that tip (the carried balances its coinbase starts from), read in the same
/// chain read so the two agree even across a reorg.
pub async fn build(
    chain: &ChainHandle,
    id: u64,
    previous: Option<&Template>,
    pool: Option<&Arc<Pool>>,
) -> Result<(Template, Option<LedgerHead>), String> {
    let pool = pool.cloned();
    let built = chain
        .read(move |v| {
            let chain = v.chain();
            let ledger = match &pool {
                Some(p) => Some(p.ledger_head(|h| chain.hash_at(h)).map_err(|e| e.to_string())?),
                None => None,
            };
            let node_payout = v.default_payout().ok();
            // The placeholder payee is replaced by every job's own outputs.
            let placeholder = node_payout.unwrap_or(PubkeyHash([0; 20]));
            let result = match v.mempool() {
                Some(pool) => build_template(chain, pool, placeholder, chain.now(), 0),
                None => build_template(chain, &NoTransactions, placeholder, chain.now(), 0),
            };
            result
                .map(|t| (t, node_payout, chain.tip_median_time_past().saturating_add(1), ledger))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
    let (t, node_payout, min_time, ledger) = built;
    let header = t.block.header;
    let target = target_from_bits(header.bits).ok_or_else(|| format!("bad bits {:08x}", header.bits))?;
    let txs: Vec<Transaction> = t.block.transactions.into_iter().skip(1).collect();
    let txids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
    let template = Template {
        id,
        height: t.height,
        prev_hash: header.prev_hash,
        version: header.version,
        bits: header.bits,
        time: header.time,
        min_time,
        reward: t.reward,
        branch: merkle_branch(&txids),
        txs: Arc::new(txs),
        target,
        net_diff: difficulty_of_target(&target),
        node_payout,
        pool_outputs: None,
        clean: previous.is_none_or(|p| p.prev_hash != header.prev_hash),
    };
    Ok((template, ledger))
}

/// Publishes templates: at once on a new tip, and every `interval` on the same tip (a new
/// job id with a fresh ntime and the mempool's newest transactions).
pub async fn run(
    chain: ChainHandle,
    mut tip: watch::Receiver<TipInfo>,
    pool: Option<Arc<Pool>>,
    out: watch::Sender<Option<Arc<Template>>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut id = 0u64;
    let mut last: Option<Arc<Template>> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        id += 1;
        match build(&chain, id, last.as_deref(), pool.as_ref()).await {
            Ok((mut t, ledger)) => {
                if let (Some(pool), Some(ledger)) = (&pool, ledger) {
                    // The stored balances follow the chain (a reorg reverses orphaned
                    // blocks' credits) before the split that starts from them.
                    if let Err(e) = pool.apply_ledger(&ledger) {
                        tracing::warn!(error = %e, "cannot update the pool's carried balances");
                    }
                    let facts = TemplateFacts {
                        id: t.id,
                        height: t.height.0,
                        reward: t.reward,
                        net_diff: t.net_diff,
                        node_payout: t.node_payout,
                    };
                    match pool.split_for(facts, &ledger.carried) {
                        Ok(outputs) => t.pool_outputs = Some(Arc::new(outputs)),
                        Err(e) => tracing::warn!(error = %e, "pool split failed; no job this round"),
                    }
                }
                if pool.is_none() || t.pool_outputs.is_some() {
                    let t = Arc::new(t);
                    last = Some(t.clone());
                    if out.send(Some(t)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if chain.read(|_| ()).await.is_err() {
                    return;
                }
                tracing::warn!(error = %e, "cannot build a Stratum template");
            }
        }
        ticker.reset();
        tokio::select! {
            changed = tip.changed() => if changed.is_err() { return },
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
    }
}
