//! One test per consensus rule: a block or transaction breaking exactly that rule is refused
//! with that rule's error, and the chain keeps its tip.

mod common;

use std::sync::Arc;

use common::{key, Harness, NOW};
use lode_chain::build::{grind, key_hash, pay, spend};
use lode_chain::merkle::merkle_root;
use lode_chain::{Amount, Block, ConsensusError, Hash256, Height, OutPoint, Transaction, Unlock};

/// Recomputes the merkle root and grinds a valid nonce after a test edited the block.
fn reseal(h: &Harness, mut block: Block) -> Block {
    let txids: Vec<Hash256> = block.transactions.iter().map(Transaction::txid).collect();
    block.header.merkle_root = merkle_root(&txids).0;
    assert!(grind(&mut block.header, &h.params.pow_limit()));
    block
}

fn rejected(h: &mut Harness, block: Block) -> ConsensusError {
    let tip = h.state.tip_hash();
    let err = h.state.accept_block(Arc::new(block)).map(|o| o.status);
    h.state.verify().expect("chain still consistent");
    assert_eq!(h.state.tip_hash(), tip, "tip unchanged");
    match err {
        Err(e) => e.consensus_rule().cloned().expect("a consensus rule"),
        Ok(lode_chain::AcceptStatus::Invalid { rule }) => rule,
        Ok(other) => panic!("block was accepted: {other:?}"),
    }
}

fn matured(h: &mut Harness) -> OutPoint {
    for _ in 0..11 {
        h.mine();
    }
    let hash = h.state.hash_at(Height(1)).expect("h1");
    let b = h.state.block(&hash).expect("read").expect("body");
    OutPoint {
        txid: b.transactions[0].txid(),
        index: 0,
    }
}

#[test]
fn coinbase_may_claim_exactly_subsidy_plus_fees() {
    let mut h = Harness::new();
    let cb = matured(&mut h);
    let g = h.genesis();
    let subsidy = h.params.subsidy(Height(1));
    let tx = spend(
        &[cb],
        vec![pay(key_hash(&key(2)), Amount(subsidy.0 - 700))],
        &h.miner_key,
        &g,
    );
    let tip = h.state.tip_hash();
    let greedy = h.block_on(tip, vec![tx.clone()], Amount(700), 1, 0);
    assert!(
        matches!(rejected(&mut h, greedy), ConsensusError::CoinbaseTooLarge { claimed, allowed } if claimed.0 == allowed.0 + 1)
    );
    let exact = h.block_on(tip, vec![tx], Amount(700), 0, 0);
    let status = h.state.accept_block(Arc::new(exact)).expect("exact claim").status;
    assert_eq!(status, lode_chain::AcceptStatus::Connected);
}

#[test]
fn immature_coinbase_refused_until_exactly_mature() {
    let mut h = Harness::new();
    for _ in 0..9 {
        h.mine();
    }
    let g = h.genesis();
    let hash1 = h.state.hash_at(Height(1)).expect("h1");
    let cb_txid = h.state.block(&hash1).expect("read").expect("body").transactions[0].txid();
    let cb = OutPoint {
        txid: cb_txid,
        index: 0,
    };
    let tx = spend(&[cb], vec![pay(key_hash(&key(2)), Amount(1000))], &h.miner_key, &g);
    // Tip is 9: a block at height 10 spending the height-1 coinbase is one block early.
    let early = h.block_on(
        h.state.tip_hash(),
        vec![tx.clone()],
        Amount(h.params.subsidy(Height(1)).0 - 1000),
        0,
        0,
    );
    assert!(matches!(
        rejected(&mut h, early),
        ConsensusError::ImmatureCoinbase {
            height: 1,
            mature_at: 11,
            ..
        }
    ));
    h.mine();
    let on_time = h.block_on(
        h.state.tip_hash(),
        vec![tx],
        Amount(h.params.subsidy(Height(1)).0 - 1000),
        0,
        0,
    );
    assert_eq!(
        h.state.accept_block(Arc::new(on_time)).expect("mature").status,
        lode_chain::AcceptStatus::Connected
    );
}

#[test]
fn spend_rules() {
    let mut h = Harness::new();
    let cb = matured(&mut h);
    let g = h.genesis();
    let tip = h.state.tip_hash();
    let value = h.params.subsidy(Height(1));

    let missing = OutPoint {
        txid: Hash256([9; 32]),
        index: 0,
    };
    let tx = spend(&[missing], vec![pay(key_hash(&key(2)), Amount(1))], &h.miner_key, &g);
    let b = h.block_on(tip, vec![tx], Amount::ZERO, 0, 1);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::MissingOrSpentInput { .. }
    ));

    let t1 = spend(&[cb], vec![pay(key_hash(&key(2)), Amount(1))], &h.miner_key, &g);
    let t2 = spend(&[cb], vec![pay(key_hash(&key(3)), Amount(2))], &h.miner_key, &g);
    let b = h.block_on(tip, vec![t1, t2], Amount::ZERO, 0, 2);
    assert!(matches!(rejected(&mut h, b), ConsensusError::DoubleSpendInBlock { .. }));

    let wrong_key = spend(&[cb], vec![pay(key_hash(&key(2)), Amount(1))], &key(7), &g);
    let b = h.block_on(tip, vec![wrong_key], Amount::ZERO, 0, 3);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::PubkeyMismatch { index: 0 }
    ));

    let mut bad_sig = spend(&[cb], vec![pay(key_hash(&key(2)), Amount(1))], &h.miner_key, &g);
    if let Unlock::Key(k) = &mut bad_sig.inputs[0].unlock {
        k.signature[5] ^= 1;
    }
    let b = h.block_on(tip, vec![bad_sig], Amount::ZERO, 0, 4);
    assert!(matches!(rejected(&mut h, b), ConsensusError::BadSignature { index: 0 }));

    // Signed for another network: the digest commits to the genesis hash.
    let other_net = spend(
        &[cb],
        vec![pay(key_hash(&key(2)), Amount(1))],
        &h.miner_key,
        &Hash256([1; 32]),
    );
    let b = h.block_on(tip, vec![other_net], Amount::ZERO, 0, 5);
    assert!(matches!(rejected(&mut h, b), ConsensusError::BadSignature { index: 0 }));

    let overspend = spend(
        &[cb],
        vec![pay(key_hash(&key(2)), Amount(value.0 + 1))],
        &h.miner_key,
        &g,
    );
    let b = h.block_on(tip, vec![overspend], Amount::ZERO, 0, 6);
    assert!(matches!(rejected(&mut h, b), ConsensusError::NegativeFee { .. }));

    // Spending an output created earlier in the same block is fine.
    let t1 = spend(
        &[cb],
        vec![pay(key_hash(&h.miner_key), Amount(value.0 - 10))],
        &h.miner_key,
        &g,
    );
    let t2 = spend(
        &[OutPoint {
            txid: t1.txid(),
            index: 0,
        }],
        vec![pay(key_hash(&key(2)), Amount(value.0 - 30))],
        &h.miner_key,
        &g,
    );
    let b = h.block_on(tip, vec![t1, t2], Amount(30), 0, 7);
    assert_eq!(
        h.state.accept_block(Arc::new(b)).expect("chained spends").status,
        lode_chain::AcceptStatus::Connected
    );
    h.state.verify().expect("verify");
}

#[test]
fn context_free_block_rules() {
    let mut h = Harness::new();
    let cb = matured(&mut h);
    let g = h.genesis();
    let tip = h.state.tip_hash();
    let base = h.block_on(tip, vec![], Amount::ZERO, 0, 1);

    let mut b = base.clone();
    b.header.merkle_root = Hash256([1; 32]);
    assert!(grind(&mut b.header, &h.params.pow_limit()));
    assert!(matches!(rejected(&mut h, b), ConsensusError::BadMerkleRoot { .. }));

    let mut b = base.clone();
    b.transactions.clear();
    let b = reseal(&h, b);
    assert!(matches!(rejected(&mut h, b), ConsensusError::NoTransactions));

    let tx = spend(&[cb], vec![pay(key_hash(&key(2)), Amount(1))], &h.miner_key, &g);
    let mut b = base.clone();
    b.transactions.insert(0, tx.clone());
    let b = reseal(&h, b);
    assert!(matches!(rejected(&mut h, b), ConsensusError::FirstTxNotCoinbase));

    let mut b = base.clone();
    let second_cb = b.transactions[0].clone();
    b.transactions.push(second_cb);
    let b = reseal(&h, b);
    // [cb, cb]: the duplicated pair is the merkle mutation, caught before anything else.
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::ExtraCoinbase { index: 1 } | ConsensusError::MutatedMerkleTree(_)
    ));

    // The CVE-2012-2459 mutation: [cb, tx, tx2, tx2] has the root of [cb, tx, tx2].
    let tx2 = spend(
        &[OutPoint {
            txid: tx.txid(),
            index: 0,
        }],
        vec![pay(key_hash(&key(3)), Amount(1))],
        &key(2),
        &g,
    );
    let honest = h.block_on(tip, vec![tx.clone(), tx2.clone()], Amount::ZERO, 0, 2);
    let mut mutated = honest.clone();
    mutated.transactions.push(tx2.clone());
    assert_eq!(mutated.compute_merkle_root().0, honest.header.merkle_root);
    assert!(matches!(
        rejected(&mut h, mutated),
        ConsensusError::MutatedMerkleTree(_)
    ));

    // A non-adjacent duplicate keeps the merkle tree unmutated but repeats a txid.
    let b = h.block_on(tip, vec![tx.clone(), tx2.clone(), tx.clone()], Amount::ZERO, 0, 3);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::DuplicateTx(_) | ConsensusError::DuplicateInput { .. }
    ));

    let mut b = base.clone();
    b.header.nonce = (0..)
        .find(|n| {
            let mut hd = b.header;
            hd.nonce = *n;
            lode_chain::pow::check_proof_of_work(&hd.hash(), hd.bits, &h.params.pow_limit()).is_err()
        })
        .expect("a failing nonce");
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::InsufficientProofOfWork { .. }
    ));

    let mut b = base.clone();
    b.header.bits = 0x2100_ffff;
    assert!(matches!(rejected(&mut h, b), ConsensusError::TargetAboveLimit { .. }));
    let mut b = base.clone();
    b.header.bits = 0x1d80_ffff;
    assert!(matches!(rejected(&mut h, b), ConsensusError::BadCompactBits { .. }));

    let mut b = base.clone();
    b.transactions[0].outputs.clear();
    let b = reseal(&h, b);
    assert!(matches!(rejected(&mut h, b), ConsensusError::NoOutputs));

    let mut b = base.clone();
    b.transactions[0].outputs[0].value = Amount(u64::MAX);
    let b = reseal(&h, b);
    assert!(matches!(rejected(&mut h, b), ConsensusError::OutputTooLarge { .. }));

    let mut b = base.clone();
    let half = Amount(h.params.max_money().0 / 2 + 1);
    b.transactions[0].outputs = vec![pay(key_hash(&key(2)), half), pay(key_hash(&key(2)), half)];
    let b = reseal(&h, b);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::OutputTotalTooLarge { .. }
    ));

    let mut dup_in = tx.clone();
    dup_in.inputs.push(dup_in.inputs[0].clone());
    let b = h.block_on(tip, vec![dup_in], Amount::ZERO, 0, 4);
    assert!(matches!(rejected(&mut h, b), ConsensusError::DuplicateInput { .. }));

    let mut no_in = tx.clone();
    no_in.inputs.clear();
    let b = h.block_on(tip, vec![no_in], Amount::ZERO, 0, 5);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::NoInputs | ConsensusError::ExtraCoinbase { .. }
    ));

    let mut null_in = tx.clone();
    null_in.inputs[0].prev_out = OutPoint::NULL;
    let b = h.block_on(tip, vec![null_in], Amount::ZERO, 0, 6);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::ExtraCoinbase { index: 1 } | ConsensusError::UnexpectedCoinbaseInput
    ));

    let mut b = base.clone();
    if let Unlock::Coinbase(d) = &mut b.transactions[0].inputs[0].unlock {
        d.message = vec![0; 65];
    }
    let b = reseal(&h, b);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::CoinbaseMessageTooLong { len: 65, max: 64 }
    ));

    let mut b = base.clone();
    if let Unlock::Coinbase(d) = &mut b.transactions[0].inputs[0].unlock {
        d.height = Height(999);
    }
    let b = reseal(&h, b);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::BadCoinbaseHeight {
            expected: 12,
            found: 999
        }
    ));
}

#[test]
fn header_rules() {
    let mut h = Harness::new();
    for _ in 0..12 {
        h.mine();
    }
    let tip = h.state.tip_hash();
    let base = h.block_on(tip, vec![], Amount::ZERO, 0, 1);

    let mut b = base.clone();
    b.header.bits = 0x1f7f_ffff;
    assert!(grind(&mut b.header, &h.params.pow_limit()));
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::BadDifficulty {
            expected: 0x207f_ffff,
            found: 0x1f7f_ffff
        }
    ));

    let mtp = h.state.tip_median_time_past();
    let mut b = base.clone();
    b.header.time = mtp;
    assert!(grind(&mut b.header, &h.params.pow_limit()));
    assert!(matches!(rejected(&mut h, b), ConsensusError::TimeTooOld { .. }));

    let mut b = base.clone();
    b.header.time = (NOW + h.params.max_future_block_time + 1) as u32;
    assert!(grind(&mut b.header, &h.params.pow_limit()));
    assert!(matches!(rejected(&mut h, b.clone()), ConsensusError::TimeTooNew { .. }));
    // Not remembered as invalid: it may become valid when the clock catches up.
    assert!(h.state.entry(&b.hash()).is_none());

    let mut b = base.clone();
    b.header.time = (NOW + h.params.max_future_block_time) as u32;
    assert!(grind(&mut b.header, &h.params.pow_limit()));
    assert_eq!(
        h.state.accept_block(Arc::new(b)).expect("at the limit").status,
        lode_chain::AcceptStatus::Connected
    );
}

#[test]
fn oversized_block_is_refused() {
    let mut params = lode_chain::ChainParams::regtest();
    params.max_block_size = 1_000;
    let mut h = Harness::with_params(params);
    let tip = h.state.tip_hash();
    let mut b = h.block_on(tip, vec![], Amount::ZERO, 0, 0);
    if let Unlock::Coinbase(d) = &mut b.transactions[0].inputs[0].unlock {
        d.message = vec![7; 64];
    }
    let extra: Vec<_> = (0..40).map(|i| pay(key_hash(&key(i)), Amount(0))).collect();
    b.transactions[0].outputs.extend(extra);
    let b = reseal(&h, b);
    assert!(matches!(
        rejected(&mut h, b),
        ConsensusError::BlockTooLarge { max: 1000, .. }
    ));
}

/// Every test above again with the signature checks on a pool of 1 and of 4 workers (the
/// chain uses the pool it is called from): each asserts its own verdicts, so passing here
/// means the rules suite gives the same verdicts and errors whatever the pool size.
#[test]
fn whole_suite_same_verdicts_on_1_and_4_workers() {
    for threads in [1, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            coinbase_may_claim_exactly_subsidy_plus_fees();
            immature_coinbase_refused_until_exactly_mature();
            spend_rules();
            context_free_block_rules();
            header_rules();
            oversized_block_is_refused();
        });
    }
}
