//! Signature checks spread over a worker pool give the single-threaded verdict: the same
//! block is connected (or refused, with the same error) by chains verifying on 1, 2 and 4
//! workers and on the default pool, and of several bad signatures the first in block order
//! is the one reported.

mod common;

use std::sync::Arc;

use common::Harness;
use lode_chain::build::{key_hash, pay, seeded_key, spend};
use lode_chain::{AcceptStatus, Amount, Block, ChainParams, ConsensusError, OutPoint, Transaction, TxOut, Unlock};

const KEYS: usize = 48;

/// Regtest with a premine of two outputs to each of `KEYS` keys, so one block can carry
/// many independently signed two-input spends.
fn params() -> ChainParams {
    let mut params = ChainParams::regtest();
    params.name = "parallel".into();
    params.genesis_outputs = (0..KEYS)
        .flat_map(|i| {
            let to = key_hash(&seeded_key(i as u64 + 1));
            [0, 1].map(|_| TxOut {
                value: Amount::coins(1),
                pubkey_hash: to,
            })
        })
        .collect();
    params
}

/// Spends of every key's two premine outputs (fee 1,000 each), in key order.
fn spends(h: &Harness) -> Vec<Transaction> {
    let genesis = h.genesis();
    let premine = h.params.genesis_block().transactions[0].txid();
    (0..KEYS)
        .map(|i| {
            let key = seeded_key(i as u64 + 1);
            let ops = [0, 1].map(|j| OutPoint {
                txid: premine,
                index: (2 * i + j) as u32,
            });
            spend(
                &ops,
                vec![pay(key_hash(&key), Amount(Amount::coins(2).0 - 1_000))],
                &key,
                &genesis,
            )
        })
        .collect()
}

fn corrupt(tx: &mut Transaction, input: usize) {
    if let Unlock::Key(k) = &mut tx.inputs[input].unlock {
        k.signature[40] ^= 0x01;
    }
}

/// The verdict of a fresh chain verifying on `threads` workers (`None`: default pool).
fn verdict(threads: Option<usize>, txs: &[Transaction]) -> Result<AcceptStatus, String> {
    let mut h = Harness::with_params(params());
    h.state.set_verify_threads(threads).expect("pool");
    let tip = h.state.tip_hash();
    let block: Block = h.block_on(tip, txs.to_vec(), Amount(1_000 * txs.len() as u64), 0, 0);
    let out = h.state.accept_block(Arc::new(block)).map(|o| o.status);
    h.state.verify().expect("chain consistent after the verdict");
    out.map_err(|e| e.to_string())
}

/// The verdict on every pool size, asserted equal; returns it.
fn same_on_every_pool(txs: &[Transaction]) -> Result<AcceptStatus, String> {
    let all: Vec<_> = [Some(1), Some(2), Some(4), None]
        .into_iter()
        .map(|t| verdict(t, txs))
        .collect();
    for v in &all[1..] {
        assert_eq!(v, &all[0], "verdicts differ between pool sizes");
    }
    all[0].clone()
}

fn bad_signature(index: usize) -> Result<AcceptStatus, String> {
    Ok(AcceptStatus::Invalid {
        rule: ConsensusError::BadSignature { index },
    })
}

#[test]
fn valid_block_connects_on_every_pool_size() {
    let h = Harness::with_params(params());
    assert_eq!(same_on_every_pool(&spends(&h)), Ok(AcceptStatus::Connected));
}

#[test]
fn first_of_two_bad_signatures_in_block_order_is_reported() {
    let h = Harness::with_params(params());
    // The two bad inputs have different indices, so the error tells which one was reported.
    for (early, late) in [(3, 40), (0, KEYS - 1), (20, 21)] {
        for (early_input, late_input) in [(1, 0), (0, 1)] {
            let mut txs = spends(&h);
            corrupt(&mut txs[early], early_input);
            corrupt(&mut txs[late], late_input);
            assert_eq!(
                same_on_every_pool(&txs),
                bad_signature(early_input),
                "bad inputs in txs {early} and {late}"
            );
        }
    }
}

#[test]
fn every_signature_of_a_block_bad_reports_the_first() {
    let h = Harness::with_params(params());
    let mut txs = spends(&h);
    for tx in &mut txs {
        corrupt(tx, 1);
        corrupt(tx, 0);
    }
    assert_eq!(same_on_every_pool(&txs), bad_signature(0));
}

#[test]
fn other_rules_still_win_over_an_earlier_bad_signature() {
    // As before the pool: signatures are checked after every other spend rule, so a block
    // with a bad signature early and a missing input later reports the missing input.
    let h = Harness::with_params(params());
    let mut txs = spends(&h);
    corrupt(&mut txs[2], 0);
    let missing = OutPoint {
        txid: txs[0].txid(),
        index: 9,
    };
    let key = seeded_key(31);
    txs[30] = spend(&[missing], vec![pay(key_hash(&key), Amount(1))], &key, &h.genesis());
    let v = same_on_every_pool(&txs);
    assert!(
        matches!(
            v,
            Ok(AcceptStatus::Invalid {
                rule: ConsensusError::MissingOrSpentInput { .. }
            })
        ),
        "{v:?}"
    );
}
