//! Rescan from the chain's address index gives the same view as following every event, and
//! keeps following the chain afterwards (including a reorg of a block that is not ours).

use std::sync::Arc;

use lode_chain::build::{assemble, coinbase, grind, pay};
use lode_chain::{AcceptStatus, Amount, ChainParams, ChainState, Hash256, Height, PubkeyHash};
use lode_wallet::tracker::Tracker;

const NOW: u64 = 1_767_225_600 + 1_000_000;

fn block_paying(state: &ChainState, parent: Hash256, to: PubkeyHash, tag: u64) -> lode_chain::Block {
    let e = *state.entry(&parent).expect("parent");
    let height = Height(e.height.0 + 1);
    let cb = coinbase(height, tag, b"t", vec![pay(to, state.params().subsidy(height))]);
    let mut b = assemble(parent, e.header.time + 1, state.params().pow_limit_bits, vec![cb]);
    assert!(grind(&mut b.header, &state.params().pow_limit()));
    b
}

#[test]
fn rescan_from_index_matches_the_live_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = ChainState::open_with_clock(dir.path(), ChainParams::regtest(), Arc::new(|| NOW)).expect("open");
    let ours = PubkeyHash([1; 20]);
    let theirs = PubkeyHash([2; 20]);
    let mut live = Tracker::new([ours], 10);
    for event in [state.params().genesis_block()]
        .iter()
        .map(|g| lode_chain::ChainEvent::BlockConnected {
            hash: g.hash(),
            height: Height(0),
            block: Arc::new(g.clone()),
        })
    {
        live.apply(&event).expect("genesis");
    }
    for i in 0..15u64 {
        let to = if i == 2 || i == 5 { ours } else { theirs };
        let b = block_paying(&state, state.tip_hash(), to, i);
        let outcome = state.accept_block(Arc::new(b)).expect("accept");
        for e in &outcome.events {
            live.apply(e).expect("live apply");
        }
    }
    let mut rescanned = Tracker::new([ours], 10);
    let read = rescanned.rescan_from_index(&state).expect("rescan");
    assert_eq!(read, 2, "only the two blocks paying us are read");
    assert_eq!(rescanned.balance(), live.balance());
    assert_eq!(rescanned.history(), live.history());
    assert_eq!(
        rescanned.balance().spendable,
        Amount(2 * state.params().subsidy(Height(1)).0)
    );

    // A reorg replacing the (foreign) tip with two blocks, one paying us.
    let tip = state.tip_hash();
    let parent = state.entry(&tip).expect("tip").header.prev_hash;
    let b1 = block_paying(&state, parent, theirs, 100);
    let b1_hash = b1.hash();
    state.accept_block(Arc::new(b1)).expect("side");
    let b2 = block_paying(&state, b1_hash, ours, 101);
    let outcome = state.accept_block(Arc::new(b2)).expect("reorg");
    assert_eq!(outcome.status, AcceptStatus::Connected);
    for e in &outcome.events {
        live.apply(e).expect("live");
        rescanned.apply(e).expect("rescanned view follows the reorg");
    }
    assert_eq!(rescanned.balance(), live.balance());
    assert_eq!(rescanned.history(), live.history());
}
