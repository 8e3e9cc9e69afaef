//! Builds and signs a payment: address check, coin selection, change, signatures.

use lode_chain::{Amount, Hash256, KeyUnlock, OutPoint, PubkeyHash, Transaction, TxIn, TxOut, Unlock};
use rand::Rng;

use crate::address::parse_address;
use crate::coinselect::{self, Selection};
use crate::error::{Result, WalletError};
use crate::tracker::Tracker;
use crate::wallet::Wallet;

/// Version of the transactions the wallet writes.
pub const TX_VERSION: u32 = 1;

/// A signed payment, ready for the node.
#[derive(Clone, Debug)]
pub struct Payment {
    /// The signed transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Hash256,
    /// Fee paid.
    pub fee: Amount,
    /// Change output: key and value, if any.
    pub change: Option<(PubkeyHash, Amount)>,
    /// The coins spent.
    pub spent: Vec<OutPoint>,
}

/// Builds and signs a transaction paying `amount` to `address` at `fee_rate` units/byte
/// (`None`: the network's minimum relay fee rate). Only mature coins not reserved by pending
/// transactions are used, confirmed ones first; when they do not cover the payment, the
/// change of our own pending transactions is used too (Core's trusted change), within the
/// mempool's ancestor limit. Change goes to a fresh internal address.
///
/// Nothing is reserved yet: once the node accepts `payment.tx`, call
/// [`Tracker::add_pending`] with it so its coins are not spent again.
pub fn build_payment(
    wallet: &mut Wallet,
    tracker: &mut Tracker,
    address: &str,
    amount: Amount,
    fee_rate: Option<u64>,
) -> Result<Payment> {
    let params = wallet.params().clone();
    let recipient = parse_address(address, &params)?;
    let rate = fee_rate.unwrap_or(params.min_relay_fee_rate);
    if rate < params.min_relay_fee_rate {
        return Err(WalletError::FeeRateTooLow {
            rate,
            min: params.min_relay_fee_rate,
        });
    }
    // Refuse before selecting or issuing a change key that a locked wallet could not use.
    if wallet.is_locked() {
        return Err(WalletError::Locked);
    }
    let Selection {
        coins,
        fee,
        change,
        size,
    } = match coinselect::select(&tracker.spendable_coins(), amount, rate, params.min_relay_fee_rate) {
        Err(WalletError::InsufficientFunds { .. }) => {
            let max_ancestors = lode_chain::mempool::MempoolPolicy::for_params(&params).max_ancestors;
            coinselect::select(
                &tracker.spendable_coins_with_change(max_ancestors),
                amount,
                rate,
                params.min_relay_fee_rate,
            )?
        }
        other => other?,
    };
    if size > params.max_tx_size as u64 {
        return Err(WalletError::TooLarge {
            size: size as usize,
            max: params.max_tx_size,
        });
    }
    let mut outputs = vec![TxOut {
        value: amount,
        pubkey_hash: recipient,
    }];
    let change = match change {
        Some(value) => {
            let key = wallet.new_change_key()?;
            tracker.watch(wallet.watched_pkhs());
            // A random position keeps observers from telling change from payment by order.
            let at = rand::thread_rng().gen_range(0..=outputs.len());
            outputs.insert(
                at,
                TxOut {
                    value,
                    pubkey_hash: key.pkh,
                },
            );
            Some((key.pkh, value))
        }
        None => None,
    };
    let mut tx = Transaction {
        version: TX_VERSION,
        inputs: coins
            .iter()
            .map(|c| TxIn {
                prev_out: c.outpoint,
                unlock: Unlock::Key(KeyUnlock {
                    pubkey: [0; 32],
                    signature: [0; 64],
                }),
            })
            .collect(),
        outputs,
        lock_time: 0,
    };
    let owners: Vec<PubkeyHash> = coins.iter().map(|c| c.pkh).collect();
    wallet.sign(&mut tx, &owners)?;
    debug_assert_eq!(tx.size() as u64, size, "size formula matches the encoding");
    let txid = tx.txid();
    tracing::info!(%txid, inputs = coins.len(), fee = fee.0, change = change.is_some(), "built payment");
    Ok(Payment {
        tx,
        txid,
        fee,
        change,
        spent: coins.iter().map(|c| c.outpoint).collect(),
    })
}
