//! Reorganisations on regtest-difficulty chains: competing branches, switching back and
//! forth several blocks deep; after every switch the stored UTXO set must equal one rebuilt
//! from scratch (`verify`), and spent/created outputs must follow the active branch.

mod common;

use std::sync::Arc;

use common::{key, Harness};
use lode_chain::build::{key_hash, pay, spend};
use lode_chain::store::BlockStatus;
use lode_chain::{AcceptStatus, Amount, ChainEvent, ConsensusError, Hash256, OutPoint};

fn coinbase_outpoint(h: &Harness, height: u32) -> OutPoint {
    let hash = h.state.hash_at(lode_chain::Height(height)).expect("height");
    let block = h.state.block(&hash).expect("read").expect("body");
    OutPoint {
        txid: block.transactions[0].txid(),
        index: 0,
    }
}

#[test]
fn branches_switch_back_and_forth_with_consistent_utxos() {
    let mut h = Harness::new();
    for _ in 0..12 {
        h.mine();
    }
    let fork = h.state.tip_hash();
    let cb1 = coinbase_outpoint(&h, 1);
    let cb2 = coinbase_outpoint(&h, 2);
    let genesis = h.genesis();
    let subsidy = h.params.subsidy(lode_chain::Height(1));

    // Branch A: spends coinbase 1 to key 2, then two more blocks.
    let a_tx = spend(
        &[cb1],
        vec![pay(key_hash(&key(2)), Amount(subsidy.0 - 1000))],
        &h.miner_key,
        &genesis,
    );
    let a1 = h.block_on(fork, vec![a_tx.clone()], Amount(1000), 0, 0xa);
    let a1_hash = a1.hash();
    assert_eq!(
        h.state.accept_block(Arc::new(a1)).expect("a1").status,
        AcceptStatus::Connected
    );
    let mut a = vec![a1_hash];
    a.extend(h.branch(a1_hash, 2, 0xa));
    assert_eq!(h.state.tip_hash(), a[2]);
    let a_out = OutPoint {
        txid: a_tx.txid(),
        index: 0,
    };
    assert!(h.state.utxo(&a_out).expect("read").is_some());
    assert!(h.state.utxo(&cb1).expect("read").is_none());
    h.state.verify().expect("verify after A");

    // Branch B: spends coinbase 1 differently (a conflict) and coinbase 2, four blocks: more work.
    let b_tx1 = spend(
        &[cb1],
        vec![pay(key_hash(&key(3)), Amount(subsidy.0 - 500))],
        &h.miner_key,
        &genesis,
    );
    let b1 = h.block_on(fork, vec![b_tx1.clone()], Amount(500), 0, 0xb);
    let b1_hash = b1.hash();
    assert_eq!(
        h.state.accept_block(Arc::new(b1)).expect("b1").status,
        AcceptStatus::SideBranch
    );
    let b_tx2 = spend(
        &[cb2],
        vec![pay(key_hash(&key(4)), Amount(subsidy.0))],
        &h.miner_key,
        &genesis,
    );
    let b2 = h.block_on(b1_hash, vec![b_tx2.clone()], Amount::ZERO, 0, 0xb);
    let b2_hash = b2.hash();
    h.state.accept_block(Arc::new(b2)).expect("b2");
    let b3 = h.branch(b2_hash, 1, 0xb)[0];
    assert_eq!(h.state.tip_hash(), a[2], "equal work: first seen keeps the tip");
    let b4 = h.block_on(b3, vec![], Amount::ZERO, 0, 0xb);
    let b4_hash = b4.hash();
    let outcome = h.state.accept_block(Arc::new(b4)).expect("b4");
    assert_eq!(outcome.status, AcceptStatus::Connected);
    assert_eq!(h.state.tip_hash(), b4_hash);
    let reorg = outcome.events.iter().find_map(|e| match e {
        ChainEvent::Reorg {
            disconnected,
            connected,
            ..
        } => Some((disconnected.clone(), connected.clone())),
        _ => None,
    });
    let (disc, conn) = reorg.expect("reorg event");
    assert_eq!(disc, vec![a[2], a[1], a[0]]);
    assert_eq!(conn, vec![b1_hash, b2_hash, b3, b4_hash]);
    assert!(h.state.utxo(&a_out).expect("read").is_none(), "A's output is gone");
    assert!(h
        .state
        .utxo(&OutPoint {
            txid: b_tx1.txid(),
            index: 0
        })
        .expect("read")
        .is_some());
    assert!(h.state.utxo(&cb2).expect("read").is_none());
    assert_eq!(h.state.store().tx_location(&a_tx.txid()).expect("read"), None);
    h.state.verify().expect("verify after switch to B");

    // Back to A, two blocks deeper than B.
    let more_a = h.branch(a[2], 3, 0xa);
    assert_eq!(h.state.tip_hash(), more_a[2]);
    assert!(h.state.utxo(&a_out).expect("read").is_some());
    assert!(h.state.utxo(&cb2).expect("read").is_some(), "coinbase 2 unspent again");
    h.state.verify().expect("verify after switch back to A");

    // And to B once more.
    let more_b = h.branch(b4_hash, 3, 0xb);
    assert_eq!(h.state.tip_hash(), more_b[2]);
    let report = h.state.verify().expect("verify after second switch to B");
    assert_eq!(report.blocks, u64::from(h.state.height().0) + 1);

    // The same state after a restart.
    let tip = h.state.tip_hash();
    h.reopen();
    assert_eq!(h.state.tip_hash(), tip);
    h.state.verify().expect("verify after reopen");
}

#[test]
fn heavier_invalid_branch_is_marked_and_never_becomes_tip() {
    let mut h = Harness::new();
    for _ in 0..12 {
        h.mine();
    }
    let fork = h.state.tip_hash();
    let good = h.branch(fork, 1, 0x1);
    let cb1 = coinbase_outpoint(&h, 1);
    let genesis = h.genesis();
    // Signed by the wrong key: the public key does not hash to the output's address.
    let bad_tx = spend(&[cb1], vec![pay(key_hash(&key(9)), Amount(1))], &key(9), &genesis);
    let bad = h.block_on(fork, vec![bad_tx], Amount::ZERO, 0, 0x2);
    let bad_hash = bad.hash();
    h.state.accept_block(Arc::new(bad)).expect("stored as side branch");
    let child = h.block_on(bad_hash, vec![], Amount::ZERO, 0, 0x2);
    let child_hash = child.hash();
    let outcome = h
        .state
        .accept_block(Arc::new(child))
        .expect("child accepted for storage");
    assert!(
        matches!(
            outcome.status,
            AcceptStatus::Invalid {
                rule: ConsensusError::PubkeyMismatch { index: 0 }
            }
        ),
        "{:?}",
        outcome.status
    );
    assert_eq!(h.state.tip_hash(), good[0]);
    assert_eq!(h.state.entry(&bad_hash).map(|e| e.status), Some(BlockStatus::Invalid));
    assert_eq!(
        h.state.entry(&child_hash).map(|e| e.status),
        Some(BlockStatus::InvalidAncestor)
    );
    let grandchild = h.block_on(child_hash, vec![], Amount::ZERO, 0, 0x2);
    let err = h
        .state
        .accept_block(Arc::new(grandchild))
        .expect_err("descendant of invalid");
    assert!(matches!(err.consensus_rule(), Some(ConsensusError::InvalidParent(p)) if *p == child_hash));
    h.state.verify().expect("verify");
}

#[test]
fn orphans_connect_when_their_parent_arrives() {
    let mut h = Harness::new();
    let tip = h.state.tip_hash();
    let b1 = h.block_on(tip, vec![], Amount::ZERO, 0, 0);
    // Build b2 and b3 on b1 without accepting b1 yet: use a second harness state for context.
    h.state.accept_block(Arc::new(b1.clone())).expect("b1");
    let b2 = h.block_on(b1.hash(), vec![], Amount::ZERO, 0, 0);
    h.state.accept_block(Arc::new(b2.clone())).expect("b2");
    let b3 = h.block_on(b2.hash(), vec![], Amount::ZERO, 0, 0);

    let mut fresh = Harness::new();
    let s = fresh.state.accept_block(Arc::new(b3.clone())).expect("orphan");
    assert_eq!(
        s.status,
        AcceptStatus::Orphan {
            missing: b3.header.prev_hash
        }
    );
    let s = fresh.state.accept_block(Arc::new(b2.clone())).expect("orphan");
    assert_eq!(s.status, AcceptStatus::Orphan { missing: b1.hash() });
    assert_eq!(fresh.state.orphan_count(), 2);
    let s = fresh.state.accept_block(Arc::new(b1)).expect("parent");
    assert_eq!(s.events.len(), 3, "b1, b2 and b3 connect");
    assert_eq!(fresh.state.tip_hash(), b3.hash());
    assert_eq!(fresh.state.orphan_count(), 0);
    let _ = Hash256::ZERO;
}

#[test]
fn asert_chain_follows_its_schedule_through_a_reorg() {
    // Devnet rules (ASERT every block) with the easiest genesis target so tests can grind.
    let mut params = lode_chain::ChainParams::devnet();
    params.genesis_bits = params.pow_limit_bits;
    let mut h = Harness::with_params(params);
    // Blocks one second apart are ahead of a 2 s schedule: the target must tighten.
    let a = h.branch(h.state.tip_hash(), 40, 0xa);
    let bits_a = h.state.entry(&a[39]).expect("a").header.bits;
    assert_ne!(bits_a, h.params.genesis_bits, "difficulty rose");
    assert!(lode_chain::pow::target_from_bits(bits_a) < lode_chain::pow::target_from_bits(h.params.genesis_bits));
    let b = h.branch(a[30], 12, 0xb);
    assert_eq!(h.state.tip_hash(), b[11]);
    h.state.verify().expect("verify after ASERT reorg");
}
