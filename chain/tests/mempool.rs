//! Mempool behaviour on a regtest chain: refusals with their numbers, replace-by-fee at
//! the exact thresholds, orphans, eviction, expiry, maturity, package limits, and chain
//! events (connect, reorg) including a random-reorg property: no transaction is lost or
//! duplicated.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{key, Harness, NOW};
use lode_chain::build::{key_hash, pay, spend};
use lode_chain::mempool::{Mempool, MempoolError, MempoolPolicy, MempoolUpdate, TxAccepted};
use lode_chain::state::Clock;
use lode_chain::{Amount, Block, ChainEvent, Hash256, Height, OutPoint, Transaction, Unlock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Size of a one-input, one-output transaction; each extra output adds 28 bytes.
const SIZE_1_1: usize = 188;
const SIZE_1_2: usize = 216;
const COINBASE_VALUE: u64 = 50 * lode_chain::COIN;

struct Setup {
    h: Harness,
    pool: Mempool,
    time: Arc<AtomicU64>,
}

fn clock(time: &Arc<AtomicU64>) -> Clock {
    let t = time.clone();
    Arc::new(move || t.load(Ordering::SeqCst))
}

/// A regtest chain `blocks` high and an empty pool with `policy` changes applied.
fn setup_with(blocks: usize, adjust: impl FnOnce(&mut MempoolPolicy)) -> Setup {
    let mut h = Harness::new();
    for _ in 0..blocks {
        h.mine();
    }
    let time = Arc::new(AtomicU64::new(NOW));
    let mut policy = MempoolPolicy::for_params(&h.params);
    adjust(&mut policy);
    let pool = Mempool::with_policy(policy, clock(&time));
    Setup { h, pool, time }
}

fn setup(blocks: usize) -> Setup {
    setup_with(blocks, |_| {})
}

fn coinbase_at(h: &Harness, height: u32) -> OutPoint {
    let hash = h.state.hash_at(Height(height)).expect("height");
    let block = h.state.block(&hash).expect("read").expect("body");
    OutPoint {
        txid: block.transactions[0].txid(),
        index: 0,
    }
}

/// Spends `inputs` (worth `value` in total) to the miner key, one output per value in
/// `outputs`.
fn pay_out(h: &Harness, inputs: &[OutPoint], outputs: &[u64]) -> Transaction {
    let to = key_hash(&h.miner_key);
    let outs = outputs.iter().map(|v| pay(to, Amount(*v))).collect();
    spend(inputs, outs, &h.miner_key, &h.genesis())
}

/// Spends a 50-coin coinbase with `fee`, split into `n` outputs.
fn spend_coinbase(h: &Harness, cb: OutPoint, fee: u64, n: usize) -> Transaction {
    let total = COINBASE_VALUE - fee;
    let mut outs = vec![total / n as u64; n];
    outs[0] += total % n as u64;
    pay_out(h, &[cb], &outs)
}

fn out(tx: &Transaction, index: u32) -> OutPoint {
    OutPoint { txid: tx.txid(), index }
}

fn accept(s: &mut Setup, tx: &Transaction) -> Result<TxAccepted, MempoolError> {
    s.pool.accept(Arc::new(tx.clone()), &s.h.state)
}

fn added(s: &mut Setup, tx: &Transaction) -> TxAccepted {
    match accept(s, tx) {
        Ok(a @ TxAccepted::Added { .. }) => a,
        other => panic!("expected the transaction in the pool, got {other:?}"),
    }
}

/// Accepts `block` and applies its events to the pool.
fn connect(s: &mut Setup, block: Block) -> MempoolUpdate {
    let outcome = s.h.state.accept_block(Arc::new(block)).expect("accept block");
    let update = s.pool.apply_all(&outcome.events, &s.h.state);
    s.pool.check_consistency(&s.h.state).expect("consistent");
    update
}

fn mine_txs(s: &mut Setup, txs: Vec<Transaction>) -> MempoolUpdate {
    let block = s.h.block_on(s.h.state.tip_hash(), txs, Amount::ZERO, 0, 0);
    connect(s, block)
}

#[test]
fn double_spend_refused_first_seen_wins() {
    let mut s = setup_with(12, |p| p.replace_by_fee = false);
    let cb = coinbase_at(&s.h, 1);
    let first = spend_coinbase(&s.h, cb, 1000, 1);
    let second = spend_coinbase(&s.h, cb, 5000, 1);
    added(&mut s, &first);
    match accept(&mut s, &second) {
        Err(MempoolError::Conflict { txid, index, spent_by }) => {
            assert_eq!((txid, index, spent_by), (cb.txid, 0, first.txid()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(accept(&mut s, &first), Err(MempoolError::AlreadyInPool(t)) if t == first.txid()));

    // Once mined, spending the coin again is a spend of a spent output, and the mined
    // transaction is known.
    mine_txs(&mut s, vec![first.clone()]);
    assert!(s.pool.is_empty());
    assert!(matches!(
        accept(&mut s, &second),
        Err(MempoolError::MissingOrSpent { txid, index: 0 }) if txid == cb.txid
    ));
    assert!(matches!(accept(&mut s, &first), Err(MempoolError::AlreadyConfirmed(_))));
}

#[test]
fn double_spend_with_rbf_needs_more_fee() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    let first = spend_coinbase(&s.h, cb, 1000, 1);
    added(&mut s, &first);
    // Same fee, more bytes: a plain double spend, refused.
    let other = spend_coinbase(&s.h, cb, 1000, 2);
    let err = accept(&mut s, &other).expect_err("lower rate");
    assert!(matches!(err, MempoolError::RbfFeeRateTooLow { .. }), "{err}");
    assert_eq!(s.pool.len(), 1);
}

#[test]
fn rbf_fee_rate_threshold_is_exact() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    // 1880 / 188 = 10 per byte.
    let original = spend_coinbase(&s.h, cb, 1880, 1);
    assert_eq!(original.size(), SIZE_1_1);
    added(&mut s, &original);
    // 2160 / 216 = 10 per byte: equal rate, refused (absolute and relay rules would pass).
    let equal = spend_coinbase(&s.h, cb, 2160, 2);
    assert_eq!(equal.size(), SIZE_1_2);
    match accept(&mut s, &equal) {
        Err(e @ MempoolError::RbfFeeRateTooLow { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "replacement fee rate 2160/216 bytes is not above 1880/188 bytes of replaced transaction {}",
                    original.txid()
                )
            );
        }
        other => panic!("expected a fee-rate refusal, got {other:?}"),
    }
    // One unit more: accepted, the original is gone.
    let better = spend_coinbase(&s.h, cb, 2161, 2);
    match added(&mut s, &better) {
        TxAccepted::Added { replaced, fee, .. } => {
            assert_eq!(fee, Amount(2161));
            assert_eq!(
                replaced.iter().map(|t| t.txid()).collect::<Vec<_>>(),
                vec![original.txid()]
            );
        }
        TxAccepted::Orphan { .. } => unreachable!(),
    }
    assert!(!s.pool.contains(&original.txid()) && s.pool.contains(&better.txid()));
    assert_eq!(s.pool.spender(&cb), Some(better.txid()));
    s.pool.check_consistency(&s.h.state).expect("consistent");
}

#[test]
fn rbf_absolute_fee_and_relay_rules_are_exact() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    // 2160 / 216 = 10 per byte.
    let original = spend_coinbase(&s.h, cb, 2160, 2);
    added(&mut s, &original);
    // Smaller, higher rate (11.5), same absolute fee: refused by rule 3.
    let same_fee = spend_coinbase(&s.h, cb, 2160, 1);
    match accept(&mut s, &same_fee) {
        Err(MempoolError::RbfFeeTooLow {
            fee,
            replaced_fees,
            count,
        }) => assert_eq!((fee, replaced_fees, count), (2160, 2160, 1)),
        other => panic!("expected rule 3, got {other:?}"),
    }
    // One unit more passes rule 3 but does not pay for its own 188 bytes (rule 4).
    let one_more = spend_coinbase(&s.h, cb, 2161, 1);
    match accept(&mut s, &one_more) {
        Err(e @ MempoolError::RbfRelayFeeNotPaid { .. }) => assert_eq!(
            e.to_string(),
            "replacement adds 1 units of fee, less than 188 units to relay its 188 bytes"
        ),
        other => panic!("expected rule 4, got {other:?}"),
    }
    let short = spend_coinbase(&s.h, cb, 2160 + 187, 1);
    assert!(matches!(
        accept(&mut s, &short),
        Err(MempoolError::RbfRelayFeeNotPaid {
            additional: 187,
            required: 188,
            size: 188
        })
    ));
    let enough = spend_coinbase(&s.h, cb, 2160 + 188, 1);
    added(&mut s, &enough);
    assert_eq!(s.pool.txids(), vec![enough.txid()]);
}

#[test]
fn rbf_pays_for_evicted_descendants_and_respects_limits() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    let parent = spend_coinbase(&s.h, cb, 1000, 1);
    added(&mut s, &parent);
    let child = pay_out(&s.h, &[out(&parent, 0)], &[COINBASE_VALUE - 1000 - 5000]);
    added(&mut s, &child);
    // Higher rate than both, but not more than their 6000 together.
    let cheap = spend_coinbase(&s.h, cb, 6000, 1);
    assert!(matches!(
        accept(&mut s, &cheap),
        Err(MempoolError::RbfFeeTooLow {
            replaced_fees: 6000,
            count: 2,
            ..
        })
    ));
    // A replacement may not spend what it evicts.
    let self_spend = pay_out(&s.h, &[cb, out(&parent, 0)], &[COINBASE_VALUE]);
    assert!(matches!(accept(&mut s, &self_spend), Err(MempoolError::RbfSpendsEvicted(t)) if t == parent.txid()));
    let enough = spend_coinbase(&s.h, cb, 6000 + 188, 1);
    match added(&mut s, &enough) {
        TxAccepted::Added { replaced, .. } => assert_eq!(replaced.len(), 2),
        TxAccepted::Orphan { .. } => unreachable!(),
    }
    assert_eq!(s.pool.len(), 1);

    // Rule 5: at most `max_replacements` evictions.
    let mut s = setup_with(12, |p| p.max_replacements = 2);
    let cb = coinbase_at(&s.h, 1);
    let parent = spend_coinbase(&s.h, cb, 1000, 3);
    added(&mut s, &parent);
    for i in 0..2 {
        let child = pay_out(&s.h, &[out(&parent, i)], &[parent.outputs[i as usize].value.0 - 500]);
        added(&mut s, &child);
    }
    let replacement = spend_coinbase(&s.h, cb, 100_000, 1);
    assert!(matches!(
        accept(&mut s, &replacement),
        Err(MempoolError::RbfTooManyEvictions { count: 3, max: 2 })
    ));

    // Rule 2: no new unconfirmed inputs.
    let mut s = setup(13);
    let (cb1, cb2) = (coinbase_at(&s.h, 1), coinbase_at(&s.h, 2));
    let unconfirmed = spend_coinbase(&s.h, cb2, 1000, 1);
    added(&mut s, &unconfirmed);
    let original = spend_coinbase(&s.h, cb1, 1000, 1);
    added(&mut s, &original);
    let adds_parent = pay_out(&s.h, &[cb1, out(&unconfirmed, 0)], &[COINBASE_VALUE]);
    assert!(matches!(
        accept(&mut s, &adds_parent),
        Err(MempoolError::RbfNewUnconfirmedInput { txid, index: 0 }) if txid == unconfirmed.txid()
    ));
}

#[test]
fn orphan_resolved_when_parent_arrives() {
    let mut s = setup(13);
    let parent = spend_coinbase(&s.h, coinbase_at(&s.h, 1), 1000, 2);
    let child = pay_out(&s.h, &[out(&parent, 0)], &[parent.outputs[0].value.0 - 1000]);
    let grandchild = pay_out(&s.h, &[out(&child, 0)], &[child.outputs[0].value.0 - 1000]);
    match accept(&mut s, &grandchild) {
        Ok(TxAccepted::Orphan { missing, .. }) => assert_eq!(missing, vec![child.txid()]),
        other => panic!("expected an orphan, got {other:?}"),
    }
    assert!(matches!(accept(&mut s, &child), Ok(TxAccepted::Orphan { .. })));
    assert!(matches!(accept(&mut s, &child), Err(MempoolError::AlreadyOrphan(_))));
    assert_eq!((s.pool.len(), s.pool.orphan_count()), (0, 2));
    match added(&mut s, &parent) {
        TxAccepted::Added { orphans_added, .. } => {
            assert_eq!(orphans_added, vec![child.txid(), grandchild.txid()])
        }
        TxAccepted::Orphan { .. } => unreachable!(),
    }
    assert_eq!(s.pool.orphan_count(), 0);
    assert_eq!(s.pool.txids(), vec![parent.txid(), child.txid(), grandchild.txid()]);
    assert_eq!(s.pool.ancestors(&grandchild.txid()), vec![parent.txid(), child.txid()]);
    s.pool.check_consistency(&s.h.state).expect("consistent");

    // An orphan whose parent is mined directly (never seen in the pool) enters on connect.
    let parent2 = spend_coinbase(&s.h, coinbase_at(&s.h, 2), 1000, 1);
    let child2 = pay_out(&s.h, &[out(&parent2, 0)], &[parent2.outputs[0].value.0 - 1000]);
    assert!(matches!(accept(&mut s, &child2), Ok(TxAccepted::Orphan { .. })));
    let update = mine_txs(&mut s, vec![parent2]);
    assert_eq!(update.orphans_added, vec![child2.txid()]);
    assert!(s.pool.contains(&child2.txid()));
}

#[test]
fn eviction_takes_the_lowest_descendant_fee_rate_first() {
    let mut s = setup_with(20, |p| p.max_bytes = 4 * SIZE_1_1);
    let per_byte = |rate: u64| rate * SIZE_1_1 as u64;
    let cb: Vec<OutPoint> = (1..=8).map(|h| coinbase_at(&s.h, h)).collect();
    let a = spend_coinbase(&s.h, cb[0], per_byte(2), 1);
    let b = spend_coinbase(&s.h, cb[1], per_byte(5), 1);
    // A low-fee parent kept up by its high-fee child: package (1 + 10) / 2 = 5.5.
    let p = spend_coinbase(&s.h, cb[2], per_byte(1), 1);
    let k = pay_out(&s.h, &[out(&p, 0)], &[p.outputs[0].value.0 - per_byte(10)]);
    for tx in [&a, &b, &p, &k] {
        added(&mut s, tx);
    }
    assert_eq!(s.pool.bytes(), 4 * SIZE_1_1);
    // Full: the estimate sits just above the lowest eviction score (2 per byte).
    assert_eq!(s.pool.fee_rate_estimate(), 3);

    let d = spend_coinbase(&s.h, cb[3], per_byte(4), 1);
    added(&mut s, &d);
    assert!(!s.pool.contains(&a.txid()), "rate 2 goes first");
    // The newcomer would itself be the lowest: refused, nothing else moves.
    let e = spend_coinbase(&s.h, cb[4], per_byte(3), 1);
    assert!(matches!(accept(&mut s, &e), Err(MempoolError::PoolFull { .. })));
    assert_eq!(s.pool.len(), 4);
    let f = spend_coinbase(&s.h, cb[5], per_byte(6), 1);
    added(&mut s, &f);
    assert!(!s.pool.contains(&d.txid()), "rate 4 goes next");
    let g = spend_coinbase(&s.h, cb[6], per_byte(7), 1);
    added(&mut s, &g);
    assert!(
        !s.pool.contains(&b.txid()),
        "rate 5 goes before the 1-per-byte parent with its child"
    );
    assert!(s.pool.contains(&p.txid()) && s.pool.contains(&k.txid()));
    // Next is the package (5.5): both leave together.
    let h8 = spend_coinbase(&s.h, cb[7], per_byte(8), 1);
    added(&mut s, &h8);
    assert!(
        !s.pool.contains(&k.txid()),
        "the child alone scores 10: it stays only if the parent stays"
    );
    assert!(!s.pool.contains(&p.txid()));
    s.pool.check_consistency(&s.h.state).expect("consistent");
}

#[test]
fn transactions_expire_with_their_descendants() {
    let mut s = setup_with(13, |p| p.expiry_secs = 100);
    let old = spend_coinbase(&s.h, coinbase_at(&s.h, 1), 1000, 1);
    added(&mut s, &old);
    s.time.store(NOW + 60, Ordering::SeqCst);
    let young_child = pay_out(&s.h, &[out(&old, 0)], &[old.outputs[0].value.0 - 1000]);
    let young = spend_coinbase(&s.h, coinbase_at(&s.h, 2), 1000, 1);
    added(&mut s, &young_child);
    added(&mut s, &young);
    s.time.store(NOW + 99, Ordering::SeqCst);
    assert!(s.pool.expire().is_empty());
    s.time.store(NOW + 100, Ordering::SeqCst);
    let expired: BTreeSet<Hash256> = s.pool.expire().into_iter().collect();
    assert_eq!(expired, BTreeSet::from([old.txid(), young_child.txid()]));
    assert_eq!(s.pool.txids(), vec![young.txid()]);
    // Orphans wait 20 minutes at most.
    let lost_parent = spend_coinbase(&s.h, coinbase_at(&s.h, 4), 1000, 1);
    let orphan = pay_out(&s.h, &[out(&lost_parent, 0)], &[lost_parent.outputs[0].value.0 - 1000]);
    assert!(matches!(accept(&mut s, &orphan), Ok(TxAccepted::Orphan { .. })));
    s.time.store(NOW + 100 + 20 * 60, Ordering::SeqCst);
    s.pool.expire();
    assert_eq!(s.pool.orphan_count(), 0);
    // Accepting also expires first.
    s.time.store(NOW + 100 + 20 * 60 + 60, Ordering::SeqCst);
    let newer = spend_coinbase(&s.h, coinbase_at(&s.h, 3), 1000, 1);
    added(&mut s, &newer);
    assert_eq!(s.pool.txids(), vec![newer.txid()]);
}

#[test]
fn coinbase_spend_refused_before_maturity_accepted_at_it() {
    let mut s = setup(18);
    // Coinbase at 9 matures at 19 = the next block's height.
    let mature = spend_coinbase(&s.h, coinbase_at(&s.h, 9), 1000, 1);
    added(&mut s, &mature);
    let early = spend_coinbase(&s.h, coinbase_at(&s.h, 10), 1000, 1);
    match accept(&mut s, &early) {
        Err(e @ MempoolError::ImmatureCoinbase { .. }) => {
            assert!(matches!(
                e,
                MempoolError::ImmatureCoinbase {
                    height: 10,
                    mature_at: 20,
                    spend_height: 19,
                    ..
                }
            ));
            assert!(
                e.to_string().contains("spendable at height 20, next block is 19"),
                "{e}"
            );
        }
        other => panic!("expected immature, got {other:?}"),
    }
    s.h.mine();
    added(&mut s, &early);
}

#[test]
fn ancestor_and_descendant_limits() {
    let mut s = setup(12);
    // A chain of 25: the last has 25 ancestors counting itself; a 26th is refused.
    let mut prev = spend_coinbase(&s.h, coinbase_at(&s.h, 1), 1000, 1);
    added(&mut s, &prev);
    for _ in 1..25 {
        let next = pay_out(&s.h, &[out(&prev, 0)], &[prev.outputs[0].value.0 - 1000]);
        added(&mut s, &next);
        prev = next;
    }
    assert_eq!(s.pool.get(&prev.txid()).expect("in pool").ancestor_stats().count, 25);
    let too_deep = pay_out(&s.h, &[out(&prev, 0)], &[prev.outputs[0].value.0 - 1000]);
    match accept(&mut s, &too_deep) {
        Err(e @ MempoolError::TooManyAncestors { count: 26, max: 25 }) => assert_eq!(
            e.to_string(),
            "transaction would have 26 unconfirmed ancestors including itself, limit 25"
        ),
        other => panic!("expected the ancestor limit, got {other:?}"),
    }

    // One parent with 24 children has 25 descendants; a 25th child is refused.
    let mut s = setup(12);
    let parent = spend_coinbase(&s.h, coinbase_at(&s.h, 1), 1000, 25);
    added(&mut s, &parent);
    for i in 0..24u32 {
        let child = pay_out(&s.h, &[out(&parent, i)], &[parent.outputs[i as usize].value.0 - 1000]);
        added(&mut s, &child);
    }
    let last = pay_out(&s.h, &[out(&parent, 24)], &[parent.outputs[24].value.0 - 1000]);
    assert!(matches!(
        accept(&mut s, &last),
        Err(MempoolError::TooManyDescendants { ancestor, count: 26, max: 25 }) if ancestor == parent.txid()
    ));
    s.pool.check_consistency(&s.h.state).expect("consistent");
}

#[test]
fn fee_too_low_names_the_numbers() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    let cheap = spend_coinbase(&s.h, cb, 187, 1);
    match accept(&mut s, &cheap) {
        Err(e @ MempoolError::FeeTooLow { .. }) => assert_eq!(
            e.to_string(),
            "fee 187 units for 188 bytes is below the minimum relay fee 188 units (1 per byte)"
        ),
        other => panic!("expected fee too low, got {other:?}"),
    }
    let exact = spend_coinbase(&s.h, cb, 188, 1);
    added(&mut s, &exact);
    assert_eq!(s.pool.fee_rate_estimate(), s.h.params.min_relay_fee_rate);
}

#[test]
fn other_refusals_are_typed() {
    let mut s = setup(12);
    let cb = coinbase_at(&s.h, 1);
    let block = s.h.state.block(&s.h.state.tip_hash()).expect("read").expect("body");
    assert!(matches!(
        accept(&mut s, &block.transactions[0]),
        Err(MempoolError::Coinbase)
    ));

    let mut bad_sig = spend_coinbase(&s.h, cb, 1000, 1);
    if let Unlock::Key(k) = &mut bad_sig.inputs[0].unlock {
        k.signature[0] ^= 1;
    }
    let err = accept(&mut s, &bad_sig).expect_err("bad signature");
    assert!(matches!(err, MempoolError::InvalidSignature { index: 0 }) && err.breaks_consensus());
    let good = Arc::new(spend_coinbase(&s.h, cb, 1000, 1));
    assert_eq!(
        s.pool.test_accept(&good, &s.h.state).expect("valid"),
        Some(Amount(1000))
    );

    let wrong_key = spend(
        &[cb],
        vec![pay(key_hash(&key(7)), Amount(1000))],
        &key(7),
        &s.h.genesis(),
    );
    assert!(matches!(
        accept(&mut s, &wrong_key),
        Err(MempoolError::WrongKey { index: 0 })
    ));

    let overspend = pay_out(&s.h, &[cb], &[COINBASE_VALUE + 1]);
    assert!(matches!(
        accept(&mut s, &overspend),
        Err(MempoolError::OutputsExceedInputs { .. })
    ));

    let outputs = vec![1u64; 4000];
    let huge = pay_out(&s.h, &[cb], &outputs);
    assert!(matches!(
        accept(&mut s, &huge),
        Err(MempoolError::TooLarge { max: 100_000, .. })
    ));

    let missing_index = pay_out(&s.h, &[OutPoint { index: 5, ..cb }], &[1000]);
    assert!(matches!(
        accept(&mut s, &missing_index),
        Err(MempoolError::MissingOrSpent { index: 5, .. })
    ));
    assert!(s.pool.is_empty());
}

#[test]
fn miner_view_packages_and_totals() {
    let mut s = setup(13);
    let parent = spend_coinbase(&s.h, coinbase_at(&s.h, 1), 216, 2);
    let child = pay_out(&s.h, &[out(&parent, 0)], &[parent.outputs[0].value.0 - 5000]);
    let single = spend_coinbase(&s.h, coinbase_at(&s.h, 2), 1000, 1);
    for tx in [&parent, &child, &single] {
        added(&mut s, tx);
    }
    let c = s.pool.get(&child.txid()).expect("child");
    assert_eq!(c.fee(), Amount(5000));
    let anc = c.ancestor_stats();
    assert_eq!((anc.count, anc.size, anc.fee), (2, SIZE_1_1 + SIZE_1_2, 5216));
    let p = s.pool.get(&parent.txid()).expect("parent");
    assert_eq!(p.descendant_stats().fee, 5216);
    assert!(c.ancestor_fee_rate() > s.pool.get(&single.txid()).expect("single").ancestor_fee_rate());
    let order: Vec<Hash256> = s.pool.iter().map(|e| e.txid()).collect();
    assert_eq!(order, vec![parent.txid(), child.txid(), single.txid()]);
    assert_eq!(s.pool.total_fees(), Amount(6216));
    assert_eq!(s.pool.bytes(), 2 * SIZE_1_1 + SIZE_1_2);
    assert_eq!(s.pool.descendants(&parent.txid()), vec![child.txid()]);
    // Their signatures were remembered for when their block connects.
    assert_eq!(s.h.state.sig_cache().lock().expect("lock").len(), 3);
}

#[test]
fn connected_block_removes_included_and_conflicting() {
    let mut s = setup(13);
    let (cb1, cb2) = (coinbase_at(&s.h, 1), coinbase_at(&s.h, 2));
    let parent = spend_coinbase(&s.h, cb1, 1000, 1);
    let child = pay_out(&s.h, &[out(&parent, 0)], &[parent.outputs[0].value.0 - 1000]);
    let pool_version = spend_coinbase(&s.h, cb2, 1000, 1);
    let pool_child = pay_out(
        &s.h,
        &[out(&pool_version, 0)],
        &[pool_version.outputs[0].value.0 - 1000],
    );
    for tx in [&parent, &child, &pool_version, &pool_child] {
        added(&mut s, tx);
    }
    let block_version = spend_coinbase(&s.h, cb2, 3000, 1);
    let update = mine_txs(&mut s, vec![parent.clone(), block_version]);
    assert_eq!(update.confirmed, vec![parent.txid()]);
    assert_eq!(
        update.conflicted.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([pool_version.txid(), pool_child.txid()])
    );
    assert_eq!(s.pool.txids(), vec![child.txid()]);
    let c = s.pool.get(&child.txid()).expect("child stays");
    assert!(c.parents().is_empty());
    assert_eq!(c.ancestor_stats().count, 1);
}

#[test]
fn reorg_returns_transactions_and_new_branch_conflicts_evict() {
    let mut s = setup(13);
    let (cb1, cb2) = (coinbase_at(&s.h, 1), coinbase_at(&s.h, 2));
    let fork = s.h.state.tip_hash();
    let t1 = spend_coinbase(&s.h, cb1, 1000, 1);
    let t2 = pay_out(&s.h, &[out(&t1, 0)], &[t1.outputs[0].value.0 - 1000]);
    let u = spend_coinbase(&s.h, cb2, 1000, 1);
    let u_child = pay_out(&s.h, &[out(&u, 0)], &[u.outputs[0].value.0 - 1000]);
    for tx in [&t1, &t2, &u, &u_child] {
        added(&mut s, tx);
    }
    mine_txs(&mut s, vec![t1.clone()]);
    assert_eq!(s.pool.txids(), vec![t2.txid(), u.txid(), u_child.txid()]);

    // A heavier branch from the fork spends cb2 differently and lacks t1.
    let u_rival = spend_coinbase(&s.h, cb2, 5000, 1);
    let b1 = s.h.block_on(fork, vec![u_rival.clone()], Amount::ZERO, 0, 0xb);
    let b1_hash = b1.hash();
    assert!(connect(&mut s, b1).returned.is_empty(), "side branch: nothing moves");
    let b2 = s.h.block_on(b1_hash, vec![], Amount::ZERO, 0, 0xb);
    let update = connect(&mut s, b2);
    assert_eq!(update.returned, vec![t1.txid()]);
    assert_eq!(
        update.conflicted.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([u.txid(), u_child.txid()])
    );
    assert_eq!(s.pool.txids(), vec![t1.txid(), t2.txid()]);
    assert_eq!(s.pool.ancestors(&t2.txid()), vec![t1.txid()]);
}

#[test]
fn reorg_drops_spends_of_a_vanished_coinbase() {
    let mut s = setup(3);
    let fork = s.h.state.tip_hash();
    let fork_height = s.h.state.height().0;
    for _ in 0..10 {
        s.h.mine();
    }
    // Coinbase at fork+1 is mature for the next block exactly now.
    let cb = coinbase_at(&s.h, fork_height + 1);
    let tx = spend_coinbase(&s.h, cb, 1000, 1);
    let child = pay_out(&s.h, &[out(&tx, 0)], &[tx.outputs[0].value.0 - 1000]);
    added(&mut s, &tx);
    added(&mut s, &child);
    let mut events = Vec::new();
    let mut parent = fork;
    for _ in 0..11 {
        let b = s.h.block_on(parent, vec![], Amount::ZERO, 0, 0xc);
        parent = b.hash();
        events.extend(s.h.state.accept_block(Arc::new(b)).expect("accept").events);
    }
    assert!(events.iter().any(|e| matches!(e, ChainEvent::Reorg { .. })));
    let update = s.pool.apply_all(&events, &s.h.state);
    let dropped: Vec<Hash256> = update.dropped.iter().map(|(t, _)| *t).collect();
    assert_eq!(dropped, vec![tx.txid(), child.txid()]);
    assert!(matches!(update.dropped[0].1, MempoolError::MissingOrSpent { txid, .. } if txid == cb.txid));
    assert!(s.pool.is_empty());
}

// ----- random reorganisations: nothing lost, nothing duplicated -----

struct World {
    s: Setup,
    rng: StdRng,
    values: HashMap<OutPoint, u64>,
    outpoints: Vec<OutPoint>,
    /// Coverage: (accepted, reorgs, returned, conflicted, dropped).
    seen: [usize; 5],
}

impl World {
    fn note_outputs(&mut self, tx: &Transaction) {
        let txid = tx.txid();
        for (i, o) in tx.outputs.iter().enumerate() {
            let op = OutPoint { txid, index: i as u32 };
            if self.values.insert(op, o.value.0).is_none() {
                self.outpoints.push(op);
            }
        }
    }

    fn note_block(&mut self, block: &Block) {
        for tx in &block.transactions {
            self.note_outputs(tx);
        }
    }

    /// Spendable now on the tip plus the pool (and unspent in the pool).
    fn available(&self, op: &OutPoint) -> bool {
        let chain = &self.s.h.state;
        if self.s.pool.spender(op).is_some() {
            return false;
        }
        if self.s.pool.contains(&op.txid) {
            return true;
        }
        match chain.utxo(op).expect("read") {
            Some(e) => !e.is_coinbase || e.height.0 + chain.params().coinbase_maturity <= chain.height().0 + 1,
            None => false,
        }
    }

    fn random_tx(&mut self) {
        let conflict = self.rng.gen_bool(0.15);
        let candidates: Vec<OutPoint> = self
            .outpoints
            .iter()
            .copied()
            .filter(|op| {
                if conflict {
                    self.s.pool.spender(op).is_some()
                } else {
                    self.available(op)
                }
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let op = candidates[self.rng.gen_range(0..candidates.len())];
        let value = self.values[&op];
        let fee = self.rng.gen_range(250..4000u64);
        if value <= fee + 2 {
            return;
        }
        let n = self.rng.gen_range(1..=2usize);
        let total = value - fee;
        let mut outs = vec![total / n as u64; n];
        outs[0] += total % n as u64;
        let tx = pay_out(&self.s.h, &[op], &outs);
        self.note_outputs(&tx);
        // Any verdict is fine; the property is checked at chain events.
        if self.s.pool.accept(Arc::new(tx), &self.s.h.state).is_ok() {
            self.seen[0] += 1;
        }
    }

    /// Pool transactions in order, each taken with probability `p` if its pool parents were.
    fn pick_from_pool(&mut self, p: f64) -> Vec<Transaction> {
        let mut taken = BTreeSet::new();
        let mut out = Vec::new();
        let entries: Vec<(Hash256, BTreeSet<Hash256>, Transaction)> = self
            .s
            .pool
            .iter()
            .map(|e| (e.txid(), e.parents().clone(), (**e.tx()).clone()))
            .collect();
        for (txid, parents, tx) in entries {
            if parents.iter().all(|p| taken.contains(p)) && self.rng.gen_bool(p) {
                taken.insert(txid);
                out.push(tx);
            }
        }
        out
    }

    /// Accepts `block`, applies the events and checks the property.
    fn connect_checked(&mut self, block: Block) {
        self.note_block(&block);
        let before: BTreeSet<Hash256> = self.s.pool.txids().into_iter().collect();
        let mut txs: HashMap<Hash256, Transaction> =
            self.s.pool.iter().map(|e| (e.txid(), (**e.tx()).clone())).collect();
        let outcome = self.s.h.state.accept_block(Arc::new(block)).expect("accept");
        let mut watched = before;
        for event in &outcome.events {
            if let ChainEvent::BlockDisconnected { block, .. } = event {
                for tx in block.transactions.iter().skip(1) {
                    watched.insert(tx.txid());
                    txs.insert(tx.txid(), tx.clone());
                }
            }
        }
        let update = self.s.pool.apply_all(&outcome.events, &self.s.h.state);
        if outcome.events.iter().any(|e| matches!(e, ChainEvent::Reorg { .. })) {
            self.seen[1] += 1;
        }
        self.seen[2] += update.returned.len();
        self.seen[3] += update.conflicted.len();
        self.seen[4] += update.dropped.len();
        self.s.pool.check_consistency(&self.s.h.state).expect("consistent pool");
        let chain = &self.s.h.state;
        for txid in watched {
            let in_pool = self.s.pool.contains(&txid);
            let in_chain = chain.store().tx_location(&txid).expect("read").is_some();
            assert!(!(in_pool && in_chain), "{txid} is both in the pool and confirmed");
            if !in_pool && !in_chain {
                let tx = &txs[&txid];
                let explained = tx.inputs.iter().any(|input| {
                    let op = input.prev_out;
                    let spent_elsewhere = self.s.pool.spender(&op).is_some_and(|s| s != txid);
                    let gone = !self.s.pool.contains(&op.txid) && chain.utxo(&op).expect("read").is_none();
                    let immature = chain.utxo(&op).expect("read").is_some_and(|e| {
                        e.is_coinbase && e.height.0 + chain.params().coinbase_maturity > chain.height().0 + 1
                    });
                    spent_elsewhere || gone || immature
                });
                assert!(explained, "{txid} was lost although still valid");
            }
        }
    }

    fn mine_on_tip(&mut self) {
        let mut txs = self.pick_from_pool(0.6);
        // Sometimes the block double-spends a pool transaction left out of it.
        if self.rng.gen_bool(0.4) {
            let picked: BTreeSet<Hash256> = txs.iter().map(|t| t.txid()).collect();
            let victim = self
                .s
                .pool
                .iter()
                .find(|e| e.parents().is_empty() && !picked.contains(&e.txid()))
                .map(|e| e.tx().inputs[0].prev_out);
            if let Some(op) = victim {
                let value = self.values[&op];
                txs.push(pay_out(&self.s.h, &[op], &[value - 7777]));
            }
        }
        let block = self.s.h.block_on(self.s.h.state.tip_hash(), txs, Amount::ZERO, 0, 0);
        self.connect_checked(block);
    }

    /// A heavier branch from `depth` blocks back; its first block re-mines part of the old
    /// first block and double-spends one of the other old transactions' inputs.
    fn reorg(&mut self, depth: u32, tag: u64) {
        let tip_height = self.s.h.state.height().0;
        if depth >= tip_height {
            return;
        }
        let fork_height = tip_height - depth;
        let fork = self.s.h.state.hash_at(Height(fork_height)).expect("fork");
        let old_first = self
            .s
            .h
            .state
            .block(&self.s.h.state.hash_at(Height(fork_height + 1)).expect("old"))
            .expect("read")
            .expect("body");
        let old_txs: Vec<Transaction> = old_first.transactions.iter().skip(1).cloned().collect();
        let old_ids: BTreeSet<Hash256> = old_txs.iter().map(|t| t.txid()).collect();
        let mut kept = BTreeSet::new();
        let mut first_txs = Vec::new();
        let mut rival = None;
        for tx in &old_txs {
            let deps_ok = tx
                .inputs
                .iter()
                .all(|i| !old_ids.contains(&i.prev_out.txid) || kept.contains(&i.prev_out.txid));
            let confirmed_inputs = tx.inputs.iter().all(|i| !old_ids.contains(&i.prev_out.txid));
            if deps_ok && self.rng.gen_bool(0.5) {
                kept.insert(tx.txid());
                first_txs.push(tx.clone());
            } else if rival.is_none() && confirmed_inputs && self.rng.gen_bool(0.5) {
                let op = tx.inputs[0].prev_out;
                let value = self.values[&op];
                rival = Some(pay_out(&self.s.h, &[op], &[value - 7777]));
            }
        }
        if let Some(r) = rival {
            first_txs.push(r);
        }
        let mut parent = fork;
        for i in 0..=depth {
            let txs = if i == 0 {
                std::mem::take(&mut first_txs)
            } else {
                Vec::new()
            };
            let b = self.s.h.block_on(parent, txs, Amount::ZERO, 0, tag);
            parent = b.hash();
            self.connect_checked(b);
        }
    }
}

#[test]
fn random_reorgs_lose_and_duplicate_nothing() {
    for seed in 0..6u64 {
        let s = setup(14);
        let mut w = World {
            s,
            rng: StdRng::seed_from_u64(seed),
            values: HashMap::new(),
            outpoints: Vec::new(),
            seen: [0; 5],
        };
        for height in 1..=w.s.h.state.height().0 {
            let hash = w.s.h.state.hash_at(Height(height)).expect("height");
            let block = w.s.h.state.block(&hash).expect("read").expect("body");
            w.note_block(&block);
        }
        let mut tag = 0x100 + seed * 1000;
        for _ in 0..60 {
            for _ in 0..w.rng.gen_range(0..4) {
                w.random_tx();
            }
            match w.rng.gen_range(0..10) {
                0..=4 => w.mine_on_tip(),
                5..=7 => {
                    tag += 1;
                    let depth = w.rng.gen_range(1..=3);
                    w.reorg(depth, tag);
                }
                _ => {}
            }
        }
        assert!(w.s.h.state.height().0 > 20);
        // The property means little unless every path was taken.
        assert!(w.seen.iter().all(|&n| n > 0), "seed {seed} coverage {:?}", w.seen);
    }
}

#[test]
fn fee_estimate_outbids_what_would_not_fit_in_the_next_block() {
    // Room for two 188-byte transactions per block.
    let mut s = setup_with(13, |p| p.max_block_size = 1_000 + 2 * SIZE_1_1);
    assert_eq!(s.pool.fee_rate_estimate(), 1, "empty pool: the relay floor");
    let rates = [5u64, 3, 9];
    let txs: Vec<Transaction> = rates
        .iter()
        .enumerate()
        .map(|(i, r)| spend_coinbase(&s.h, coinbase_at(&s.h, i as u32 + 1), r * SIZE_1_1 as u64, 1))
        .collect();
    added(&mut s, &txs[0]);
    added(&mut s, &txs[1]);
    assert_eq!(s.pool.fee_rate_estimate(), 1, "everything fits");
    added(&mut s, &txs[2]);
    let order: Vec<Hash256> = s.pool.by_ancestor_fee_rate().iter().map(|e| e.txid()).collect();
    assert_eq!(order, vec![txs[2].txid(), txs[0].txid(), txs[1].txid()]);
    assert_eq!(s.pool.fee_rate_estimate(), 4, "just above the 3 per byte left out");
}
