//! Context-free transaction rules: what can be checked from the transaction alone.

use std::collections::HashSet;

use crate::amount::Amount;
use crate::error::ConsensusError;
use crate::params::ChainParams;
use crate::transaction::{Transaction, Unlock, MAX_COINBASE_MESSAGE};

/// Runs every context-free rule on a transaction, coinbase or not.
pub fn check_transaction(tx: &Transaction, params: &ChainParams) -> Result<(), ConsensusError> {
    check_transaction_within(tx, params, params.max_money())
}

/// [`check_transaction`] with the money supply computed once by the caller: it sums the
/// premine, so a block computes it once rather than once per transaction.
pub(crate) fn check_transaction_within(
    tx: &Transaction,
    params: &ChainParams,
    max: Amount,
) -> Result<(), ConsensusError> {
    check_not_empty(tx)?;
    check_size(tx, params)?;
    check_output_values(tx, max)?;
    if tx.is_coinbase() {
        check_coinbase_shape(tx)?;
    } else {
        check_spend_inputs(tx)?;
    }
    Ok(())
}

/// A transaction needs inputs and outputs (Bitcoin's `bad-txns-vin-empty`/`vout-empty`).
fn check_not_empty(tx: &Transaction) -> Result<(), ConsensusError> {
    if tx.inputs.is_empty() {
        return Err(ConsensusError::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(ConsensusError::NoOutputs);
    }
    Ok(())
}

/// No transaction may exceed the network's transaction size limit.
fn check_size(tx: &Transaction, params: &ChainParams) -> Result<(), ConsensusError> {
    let size = tx.size();
    if size > params.max_tx_size {
        return Err(ConsensusError::TxTooLarge {
            size,
            max: params.max_tx_size,
        });
    }
    Ok(())
}

/// Every output and their sum stay within the money supply (CVE-2010-5139 was an overflow
/// of exactly this sum).
fn check_output_values(tx: &Transaction, max: Amount) -> Result<(), ConsensusError> {
    for (index, out) in tx.outputs.iter().enumerate() {
        if out.value > max {
            return Err(ConsensusError::OutputTooLarge {
                index,
                value: out.value,
                max,
            });
        }
    }
    match tx.output_total() {
        Some(total) if total <= max => Ok(()),
        _ => Err(ConsensusError::OutputTotalTooLarge { max }),
    }
}

/// A coinbase has one input naming the null outpoint, and a short message.
fn check_coinbase_shape(tx: &Transaction) -> Result<(), ConsensusError> {
    let [input] = tx.inputs.as_slice() else {
        return Err(ConsensusError::BadCoinbaseShape {
            inputs: tx.inputs.len(),
        });
    };
    if !input.prev_out.is_null() {
        return Err(ConsensusError::BadCoinbaseShape { inputs: 1 });
    }
    if let Unlock::Coinbase(data) = &input.unlock {
        if data.message.len() > MAX_COINBASE_MESSAGE {
            return Err(ConsensusError::CoinbaseMessageTooLong {
                len: data.message.len(),
                max: MAX_COINBASE_MESSAGE,
            });
        }
    }
    Ok(())
}

/// A spend names real outpoints with key unlocks, each at most once
/// (Bitcoin's `bad-txns-inputs-duplicate`).
fn check_spend_inputs(tx: &Transaction) -> Result<(), ConsensusError> {
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for input in &tx.inputs {
        match input.unlock {
            Unlock::Key(_) if !input.prev_out.is_null() => {}
            Unlock::Key(_) | Unlock::Coinbase(_) => return Err(ConsensusError::UnexpectedCoinbaseInput),
        }
        if !seen.insert(input.prev_out) {
            return Err(ConsensusError::DuplicateInput {
                txid: input.prev_out.txid,
                index: input.prev_out.index,
            });
        }
    }
    Ok(())
}
