//! Contextual transaction rules: spends against the UTXO set, and the block-level coinbase
//! and fee rules.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::address::PubkeyHash;
use crate::amount::Amount;
use crate::block::CheckedBlock;
use crate::error::{ChainError, ConsensusError};
use crate::hash::Hash256;
use crate::height::Height;
use crate::params::ChainParams;
use crate::sig::{verify_all, SigCache, SigItem};
use crate::transaction::{OutPoint, Transaction, Unlock};
use crate::utxo::{UtxoEntry, UtxoView};

/// What checking one transaction's inputs found.
#[derive(Debug)]
pub struct TxInputs {
    /// Inputs minus outputs.
    pub fee: Amount,
    /// The outputs it spends, in input order.
    pub spent: Vec<(OutPoint, UtxoEntry)>,
    /// The signatures still to verify, in input order.
    pub signatures: Vec<SigItem>,
}

fn rule(txid: Hash256, rule: ConsensusError) -> ChainError {
    ChainError::InvalidTx { txid, rule }
}

/// Checks a non-coinbase transaction's inputs against `view` for inclusion at
/// `spend_height`: every input exists and is unspent, coinbase outputs are mature, the key
/// hashes to the output's address, sums stay within the money supply and the fee is not
/// negative. Signatures are returned for the caller to verify (in a batch for blocks).
pub fn check_tx_inputs(
    tx: &Transaction,
    txid: Hash256,
    view: &dyn UtxoView,
    spend_height: Height,
    params: &ChainParams,
    genesis: &Hash256,
) -> Result<TxInputs, ChainError> {
    check_tx_inputs_within(tx, txid, view, spend_height, params, genesis, params.max_money())
}

/// [`check_tx_inputs`] with the money supply computed once per block by the caller (it sums
/// the premine).
fn check_tx_inputs_within(
    tx: &Transaction,
    txid: Hash256,
    view: &dyn UtxoView,
    spend_height: Height,
    params: &ChainParams,
    genesis: &Hash256,
    max: Amount,
) -> Result<TxInputs, ChainError> {
    let sighash = tx.sighash(genesis);
    let mut spent = Vec::with_capacity(tx.inputs.len());
    let mut signatures = Vec::with_capacity(tx.inputs.len());
    let mut total = Amount::ZERO;
    for (index, input) in tx.inputs.iter().enumerate() {
        let op = input.prev_out;
        let Unlock::Key(key) = &input.unlock else {
            return Err(rule(txid, ConsensusError::UnexpectedCoinbaseInput));
        };
        // The output must exist and be unspent.
        let entry = view.utxo(&op)?.ok_or_else(|| {
            rule(
                txid,
                ConsensusError::MissingOrSpentInput {
                    txid: op.txid,
                    index: op.index,
                },
            )
        })?;
        // Coinbase outputs wait `coinbase_maturity` blocks (reorgs could erase them).
        if entry.is_coinbase {
            let mature_at = entry.height.0.saturating_add(params.coinbase_maturity);
            if spend_height.0 < mature_at {
                return Err(rule(
                    txid,
                    ConsensusError::ImmatureCoinbase {
                        txid: op.txid,
                        index: op.index,
                        height: entry.height.0,
                        mature_at,
                    },
                ));
            }
        }
        // The key must be the one the output pays.
        if PubkeyHash::from_pubkey(&key.pubkey) != entry.output.pubkey_hash {
            return Err(rule(txid, ConsensusError::PubkeyMismatch { index }));
        }
        total = total
            .checked_add(entry.output.value)
            .filter(|t| *t <= max)
            .ok_or_else(|| rule(txid, ConsensusError::InputTotalTooLarge))?;
        signatures.push(SigItem {
            pubkey: key.pubkey,
            signature: key.signature,
            msg: sighash,
        });
        spent.push((op, entry));
    }
    let outputs = tx
        .output_total()
        .ok_or_else(|| rule(txid, ConsensusError::OutputTotalTooLarge { max }))?;
    let fee = total
        .checked_sub(outputs)
        .ok_or_else(|| rule(txid, ConsensusError::NegativeFee { inputs: total, outputs }))?;
    Ok(TxInputs { fee, spent, signatures })
}

/// Verifies one transaction's signatures, naming the first bad input.
pub fn verify_tx_signatures(txid: Hash256, signatures: &[SigItem]) -> Result<(), ChainError> {
    verify_all(signatures).map_err(|index| rule(txid, ConsensusError::BadSignature { index }))
}

/// The UTXO changes of a block that passed every contextual rule.
#[derive(Debug, Default)]
pub struct BlockSpends {
    /// The output every non-coinbase input spends, in block order, including outputs
    /// created earlier in the same block. This is the block's undo data.
    pub inputs: Vec<(OutPoint, UtxoEntry)>,
    /// Outputs the block adds to the UTXO set (those not spent within the block).
    pub created: Vec<(OutPoint, UtxoEntry)>,
    /// Total fees.
    pub fees: Amount,
}

/// A view of the store plus the outputs created earlier in the same block.
struct BlockView<'a> {
    base: &'a dyn UtxoView,
    created: &'a HashMap<OutPoint, UtxoEntry>,
}

impl UtxoView for BlockView<'_> {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        match self.created.get(outpoint) {
            Some(e) => Ok(Some(*e)),
            None => self.base.utxo(outpoint),
        }
    }
}

/// Runs every contextual transaction rule of a block at `height` over `view` (the UTXO set
/// at its parent): coinbase height, spends, no double spend within the block, signatures
/// (skipping those in `sig_cache`, verified at mempool entry), and coinbase ≤ subsidy + fees.
/// Returns the UTXO changes to commit.
pub fn check_block_spends(
    block: &CheckedBlock,
    height: Height,
    view: &dyn UtxoView,
    params: &ChainParams,
    genesis: &Hash256,
    sig_cache: Option<&SigCache>,
) -> Result<BlockSpends, ChainError> {
    let hash = block.hash();
    let invalid = |rule: ConsensusError| ChainError::InvalidBlock { hash, rule };
    let txs = &block.block().transactions;

    // The coinbase commits to this block's height (makes every coinbase txid unique).
    let coinbase = &txs[0];
    let found = coinbase.coinbase_data().map(|d| d.height.0).unwrap_or(u32::MAX);
    if found != height.0 {
        return Err(invalid(ConsensusError::BadCoinbaseHeight {
            expected: height.0,
            found,
        }));
    }

    // Signatures depend on the transactions alone, so they are checked on the worker pool
    // while this thread runs the contextual rules. The verdict and error are those of the
    // sequential order: any contextual error wins (signatures came last), then the first
    // bad signature in block order.
    let max = params.max_money();
    let cancel = AtomicBool::new(false);
    let mut sig_verdict = Ok(());
    let contextual = rayon::in_place_scope(|scope| {
        scope.spawn(|_| sig_verdict = first_bad_signature(txs, genesis, sig_cache, &cancel));
        let result = contextual_spends(block, height, view, params, genesis, max);
        if result.is_err() {
            // The verdict is decided: stop verifying signatures.
            cancel.store(true, Ordering::Relaxed);
        }
        result
    });
    let (inputs, created, fees) = contextual?;
    if let Err(input) = sig_verdict {
        return Err(invalid(ConsensusError::BadSignature { index: input }));
    }

    // Keep the created outputs in block order for a deterministic write.
    let mut created: Vec<(OutPoint, UtxoEntry)> = created.into_iter().collect();
    created.sort_unstable_by_key(|(op, _)| *op);
    Ok(BlockSpends { inputs, created, fees })
}

/// The contextual rules of a block's transactions except signatures: spends against `view`
/// plus the outputs created earlier in the block, no double spend, fees, and the coinbase
/// claim. Returns the spent outputs (undo data), the created outputs and the fees.
#[allow(clippy::type_complexity)]
fn contextual_spends(
    block: &CheckedBlock,
    height: Height,
    view: &dyn UtxoView,
    params: &ChainParams,
    genesis: &Hash256,
    max: Amount,
) -> Result<(Vec<(OutPoint, UtxoEntry)>, HashMap<OutPoint, UtxoEntry>, Amount), ChainError> {
    let hash = block.hash();
    let invalid = |rule: ConsensusError| ChainError::InvalidBlock { hash, rule };
    let txs = &block.block().transactions;
    let txids = block.txids();
    let coinbase = &txs[0];
    // Sized up front: growing these tables by rehashing costs more per transaction the
    // larger the block (BENCHMARKS.md, issue 16).
    let outputs: usize = txs.iter().map(|tx| tx.outputs.len()).sum();
    let spends: usize = txs.iter().skip(1).map(|tx| tx.inputs.len()).sum();
    let mut created: HashMap<OutPoint, UtxoEntry> = HashMap::with_capacity(outputs);
    let mut inputs = Vec::with_capacity(spends);
    let mut spent_from_set: HashSet<OutPoint> = HashSet::with_capacity(spends);
    let mut fees = Amount::ZERO;
    for (tx_index, tx) in txs.iter().enumerate() {
        let txid = txids[tx_index];
        if tx_index > 0 {
            let checked = {
                let view = BlockView {
                    base: view,
                    created: &created,
                };
                check_tx_inputs_within(tx, txid, &view, height, params, genesis, max).map_err(|e| match e {
                    ChainError::InvalidTx { rule, .. } => invalid(rule),
                    other => other,
                })?
            };
            for (op, entry) in checked.spent {
                // An output created earlier in this block and spent here never reaches the
                // UTXO set (removing it makes a second spend fail as missing); an output of
                // the set spent twice is a double spend.
                if created.remove(&op).is_none() && !spent_from_set.insert(op) {
                    return Err(invalid(ConsensusError::DoubleSpendInBlock {
                        txid: op.txid,
                        index: op.index,
                    }));
                }
                inputs.push((op, entry));
            }
            fees = fees
                .checked_add(checked.fee)
                .ok_or_else(|| invalid(ConsensusError::FeeOverflow))?;
        }
        for (i, out) in tx.outputs.iter().enumerate() {
            let op = OutPoint { txid, index: i as u32 };
            created.insert(
                op,
                UtxoEntry {
                    output: *out,
                    height,
                    is_coinbase: tx_index == 0,
                },
            );
        }
    }

    // The coinbase may claim at most the subsidy plus the fees it collects.
    let allowed = params
        .subsidy(height)
        .checked_add(fees)
        .ok_or_else(|| invalid(ConsensusError::FeeOverflow))?;
    let claimed = coinbase.output_total().ok_or_else(|| {
        invalid(ConsensusError::OutputTotalTooLarge {
            max: params.max_money(),
        })
    })?;
    if claimed > allowed {
        return Err(invalid(ConsensusError::CoinbaseTooLarge { claimed, allowed }));
    }

    Ok((inputs, created, fees))
}

/// The input index of the first signature in block order that `verify_strict` rejects
/// (skipping those in `sig_cache`), checked on the current rayon pool; `Ok` if all pass or
/// `cancel` was set. Inputs that are not key unlocks are left to the contextual rules,
/// which refuse them first.
fn first_bad_signature(
    txs: &[Transaction],
    genesis: &Hash256,
    sig_cache: Option<&SigCache>,
    cancel: &AtomicBool,
) -> Result<(), usize> {
    let items = |tx: &Transaction| {
        let msg = tx.sighash(genesis);
        tx.inputs
            .iter()
            .enumerate()
            .filter_map(move |(index, input)| match &input.unlock {
                Unlock::Key(key) => Some((
                    index,
                    SigItem {
                        pubkey: key.pubkey,
                        signature: key.signature,
                        msg,
                    },
                )),
                Unlock::Coinbase(_) => None,
            })
            .collect::<Vec<_>>()
    };
    let bad = |item: &SigItem| !sig_cache.is_some_and(|c| c.contains(item)) && item.verify().is_err();
    // The first transaction with a bad signature, in block order whatever the scheduling...
    let first_tx = txs
        .par_iter()
        .skip(1)
        .with_min_len(4)
        .position_first(|tx| !cancel.load(Ordering::Relaxed) && items(tx).iter().any(|(_, item)| bad(item)));
    // ...and its first bad input.
    match first_tx {
        None => Ok(()),
        Some(i) => match items(&txs[i + 1]).into_iter().find(|(_, item)| bad(item)) {
            Some((index, _)) => Err(index),
            // Only when cancelled: the contextual verdict is the one reported.
            None => Ok(()),
        },
    }
}
