//! The operator's `invalidateblock` / `reconsiderblock` on regtest chains: the fork choice
//! leaves an invalidated block and its descendants for the most-work other branch, the
//! marks survive a restart, reconsidering brings the most-work chain back, and after every
//! switch the stored UTXO set equals one rebuilt from scratch.

mod common;

use std::sync::Arc;

use common::Harness;
use lode_chain::error::ChainError;
use lode_chain::store::BlockStatus;
use lode_chain::{Amount, ChainEvent, Hash256, Height};

fn status(h: &Harness, hash: &Hash256) -> BlockStatus {
    h.state.entry(hash).expect("indexed").status
}

/// Genesis, main blocks 1..=5, and a side branch of two blocks on main block 2 (heights 3
/// and 4: less work than main, more than main's block 3).
fn two_branches() -> (Harness, Vec<Hash256>, Vec<Hash256>) {
    let mut h = Harness::new();
    let main: Vec<Hash256> = (0..5).map(|_| h.mine().hash()).collect();
    let side = h.branch(main[1], 2, 0x5);
    assert_eq!(h.state.tip_hash(), main[4]);
    (h, main, side)
}

#[test]
fn invalidating_a_best_chain_block_reorgs_to_the_best_other_branch_and_persists() {
    let (mut h, main, side) = two_branches();
    let events = h.state.invalidate_block(&main[3]).expect("invalidate");
    assert_eq!(h.state.tip_hash(), side[1], "the side branch has the most work left");
    assert_eq!(h.state.height(), Height(4));
    assert_eq!(status(&h, &main[3]), BlockStatus::Invalidated);
    assert_eq!(status(&h, &main[4]), BlockStatus::InvalidAncestor);
    assert!(!status(&h, &main[2]).is_invalid(), "its parent stays valid");
    match events.last() {
        Some(ChainEvent::Reorg {
            fork_height,
            old_tip,
            new_tip,
            disconnected,
            connected,
        }) => {
            assert_eq!(*fork_height, Height(2));
            assert_eq!(*old_tip, main[4]);
            assert_eq!(*new_tip, side[1]);
            assert_eq!(disconnected, &vec![main[4], main[3], main[2]]);
            assert_eq!(connected, &side);
        }
        other => panic!("expected a closing reorg, got {other:?}"),
    }
    h.state.verify().expect("utxos after the invalidation");

    // A block on the invalidated branch is refused.
    let child = h.block_on(main[4], vec![], Amount::ZERO, 0, 0x9);
    let err = h
        .state
        .accept_block(Arc::new(child))
        .expect_err("child of an invalidated block");
    assert!(err.consensus_rule().is_some(), "{err}");

    // The marks and the tip survive a restart.
    h.reopen();
    assert_eq!(h.state.tip_hash(), side[1]);
    assert_eq!(status(&h, &main[3]), BlockStatus::Invalidated);
    assert_eq!(status(&h, &main[4]), BlockStatus::InvalidAncestor);

    // Reconsidering brings the most-work chain back.
    let events = h.state.reconsider_block(&main[3]).expect("reconsider");
    assert_eq!(h.state.tip_hash(), main[4]);
    assert!(!status(&h, &main[3]).is_invalid());
    assert!(!status(&h, &main[4]).is_invalid());
    assert!(
        matches!(events.last(), Some(ChainEvent::Reorg { new_tip, .. }) if *new_tip == main[4]),
        "{events:?}"
    );
    h.state.verify().expect("utxos after the reconsideration");
    h.reopen();
    assert_eq!(h.state.tip_hash(), main[4]);
}

#[test]
fn invalidating_without_another_branch_rewinds_to_the_parent() {
    let (mut h, main, side) = two_branches();
    // Take the side branch out first: nothing else competes.
    h.state.invalidate_block(&side[0]).expect("invalidate side");
    assert_eq!(h.state.tip_hash(), main[4], "a side block does not move the tip");
    assert_eq!(status(&h, &side[1]), BlockStatus::InvalidAncestor);
    let events = h.state.invalidate_block(&main[4]).expect("invalidate tip");
    assert_eq!(h.state.tip_hash(), main[3]);
    assert!(matches!(events.last(), Some(ChainEvent::Reorg { connected, .. }) if connected.is_empty()));
    // Reconsidering a descendant clears its ancestors' marks too (Core's rule).
    h.state.reconsider_block(&side[1]).expect("reconsider side tip");
    assert!(!status(&h, &side[0]).is_invalid());
    assert_eq!(
        h.state.tip_hash(),
        main[3],
        "main block 4 is still invalidated; side has equal work, seen later"
    );
    h.state.reconsider_block(&main[4]).expect("reconsider");
    assert_eq!(h.state.tip_hash(), main[4]);
    h.state.verify().expect("verify");
}

#[test]
fn genesis_and_unknown_blocks_are_refused() {
    let (mut h, _, _) = two_branches();
    let genesis = h.genesis();
    assert!(matches!(
        h.state.invalidate_block(&genesis),
        Err(ChainError::NotAllowed(_))
    ));
    let unknown = Hash256([7; 32]);
    assert!(matches!(h.state.invalidate_block(&unknown), Err(ChainError::UnknownBlock(u)) if u == unknown));
    assert!(matches!(
        h.state.reconsider_block(&unknown),
        Err(ChainError::UnknownBlock(_))
    ));
    assert_eq!(h.state.height(), Height(5));
}
