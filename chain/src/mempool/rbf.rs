//! Replace-by-fee: when a transaction conflicts with mempool transactions, it may evict
//! them (and their descendants) if it pays more — Bitcoin Core's full-RBF rules (BIP125
//! rules 2–5 without the signalling rule 1), checked in two stages: the structural ones
//! before any input lookup, the fee ones once the replacement's fee is known.

use std::collections::{BTreeSet, HashMap};

use crate::hash::Hash256;
use crate::transaction::Transaction;

use super::entry::MempoolEntry;
use super::error::MempoolError;
use super::policy::{FeeRate, MempoolPolicy};

/// Rules that need no fees: bounded evictions, no spending of what is evicted, no new
/// unconfirmed inputs. `conflicts` are the transactions spending the same outputs,
/// `evicted` those plus all their descendants.
pub(crate) fn check_structure(
    tx: &Transaction,
    conflicts: &BTreeSet<Hash256>,
    evicted: &BTreeSet<Hash256>,
    entries: &HashMap<Hash256, MempoolEntry>,
    policy: &MempoolPolicy,
) -> Result<(), MempoolError> {
    // Rule 5: each replacement may make us re-sort only so much of the pool.
    if evicted.len() > policy.max_replacements {
        return Err(MempoolError::RbfTooManyEvictions {
            count: evicted.len(),
            max: policy.max_replacements,
        });
    }
    // Spending an output of an evicted transaction would leave the replacement without
    // its input once the eviction is done.
    if let Some(input) = tx.inputs.iter().find(|i| evicted.contains(&i.prev_out.txid)) {
        return Err(MempoolError::RbfSpendsEvicted(input.prev_out.txid));
    }
    // Rule 2: unconfirmed inputs only where a replaced transaction already had them, so a
    // replacement cannot lower its package's rate with new low-fee parents.
    let conflict_parents: BTreeSet<Hash256> = conflicts
        .iter()
        .filter_map(|c| entries.get(c))
        .flat_map(|e| e.tx.inputs.iter().map(|i| i.prev_out.txid))
        .collect();
    for input in &tx.inputs {
        let parent = input.prev_out.txid;
        if entries.contains_key(&parent) && !conflict_parents.contains(&parent) {
            return Err(MempoolError::RbfNewUnconfirmedInput {
                txid: parent,
                index: input.prev_out.index,
            });
        }
    }
    Ok(())
}

/// Fee rules: the replacement's rate is above that of every transaction it evicts (its
/// own rate, descendants included — stricter than Core, which compares direct conflicts
/// only), its fee is above their total (rule 3), and the difference pays for its own bytes
/// at the relay rate (rule 4), so replacements cannot relay bandwidth for free.
pub(crate) fn check_fees(
    fee: u64,
    size: usize,
    evicted: &BTreeSet<Hash256>,
    entries: &HashMap<Hash256, MempoolEntry>,
    policy: &MempoolPolicy,
) -> Result<(), MempoolError> {
    let rate = FeeRate::new(fee, size);
    let mut replaced_fees: u64 = 0;
    for txid in evicted {
        let Some(old) = entries.get(txid) else { continue };
        if rate <= old.fee_rate() {
            return Err(MempoolError::RbfFeeRateTooLow {
                fee,
                size,
                replaced: *txid,
                replaced_fee: old.fee,
                replaced_size: old.size,
            });
        }
        replaced_fees = replaced_fees.saturating_add(old.fee);
    }
    if fee <= replaced_fees {
        return Err(MempoolError::RbfFeeTooLow {
            fee,
            replaced_fees,
            count: evicted.len(),
        });
    }
    let additional = fee - replaced_fees;
    let required = policy.min_fee(size);
    if additional < required {
        return Err(MempoolError::RbfRelayFeeNotPaid {
            additional,
            required,
            size,
        });
    }
    Ok(())
}
