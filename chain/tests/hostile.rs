//! What a hostile peer's blocks can make the chain remember: side branches nobody asked for
//! are judged by their header and not stored; headers that break a rule leave nothing on
//! disk; an equal-work branch that turns out invalid gives the tip back to the branch seen
//! first.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{key, Harness};
use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, spend};
use lode_chain::{AcceptStatus, Amount, Block, ConsensusError, Hash256, Height, OutPoint};

/// Junk blocks in a flood.
const FLOOD: usize = 1_000;
/// The bound stated in BENCHMARKS.md: a flood of [`FLOOD`] junk side blocks grows the data
/// dir by less than this.
const FLOOD_BOUND: u64 = 1 << 20;

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A side block at height 1 on genesis carrying ≈2 KB of junk: a transaction spending an
/// output that does not exist (only connecting it would tell) with 60 outputs.
fn junk_on_genesis(h: &Harness, tag: u64) -> Block {
    let genesis = h.state.genesis_hash();
    let g = *h.state.entry(&genesis).expect("genesis");
    let junk = spend(
        &[OutPoint {
            txid: Hash256::sha256d(&tag.to_le_bytes()),
            index: 0,
        }],
        (0..60).map(|i| pay(key_hash(&key(9)), Amount(1 + i))).collect(),
        &key(9),
        &genesis,
    );
    let height = Height(1);
    let cb = coinbase(
        height,
        tag,
        b"junk",
        vec![pay(key_hash(&key(9)), h.params.subsidy(height))],
    );
    let mut block = assemble(genesis, g.header.time + 1, h.params.pow_limit_bits, vec![cb, junk]);
    assert!(grind(&mut block.header, &h.params.pow_limit()));
    block
}

#[test]
fn an_unrequested_side_branch_flood_is_not_stored() {
    let mut h = Harness::new();
    for _ in 0..20 {
        h.mine();
    }
    let tip = h.state.tip_hash();
    let flood: Vec<Block> = (0..FLOOD as u64).map(|t| junk_on_genesis(&h, t)).collect();
    let junk_bytes: usize = flood.iter().map(|b| b.size()).sum();
    h.state.flush().expect("flush");
    let before = dir_size(h.dir.path());
    for block in &flood {
        let outcome = h
            .state
            .accept_unrequested_block(Arc::new(block.clone()))
            .expect("judged");
        assert_eq!(outcome.status, AcceptStatus::HeaderOnly);
        assert!(h.state.entry(&block.hash()).is_none(), "not indexed");
        assert!(h.state.block(&block.hash()).expect("read").is_none(), "not stored");
    }
    // The same block again is known (its header is remembered) and costs nothing.
    let again = h
        .state
        .accept_unrequested_block(Arc::new(flood[0].clone()))
        .expect("known");
    assert_eq!(again.status, AcceptStatus::AlreadyKnown);
    h.state.flush().expect("flush");
    let grown = dir_size(h.dir.path()).saturating_sub(before);
    eprintln!(
        "{FLOOD} unrequested side blocks ({junk_bytes} bytes of junk): data dir grew by {grown} bytes; \
         side headers held: {}",
        h.state.side_header_count()
    );
    assert!(grown < FLOOD_BOUND, "data dir grew by {grown} bytes");
    assert!(h.state.side_header_count() <= lode_chain::side_headers::MAX_SIDE_HEADERS);
    assert_eq!(h.state.tip_hash(), tip);
    h.state.verify().expect("verify");

    // Control: the same flood *requested* (the old rule for every block) is stored, so the
    // measurement above can tell the difference.
    let before = dir_size(h.dir.path());
    for block in &flood {
        h.state.accept_block(Arc::new(block.clone())).expect("stored");
    }
    h.state.flush().expect("flush");
    let stored = dir_size(h.dir.path()).saturating_sub(before);
    eprintln!("the same blocks requested: data dir grew by {stored} bytes");
    assert!(stored > FLOOD_BOUND, "requested blocks are stored ({stored} bytes)");
}

#[test]
fn a_side_branch_that_overtakes_the_tip_is_stored_and_connected() {
    let mut h = Harness::new();
    let fork = h.state.tip_hash();
    let a = h.branch(fork, 2, 0xa);
    // b1, b2 have no more work than a2: headers only. Built on a second chain that has them.
    let mut other = Harness::new();
    let b = other.branch(fork, 3, 0xb);
    let body = |hash: &Hash256| Arc::new(other.state.block(hash).expect("read").expect("body"));
    for hb in &b[..2] {
        let o = h.state.accept_unrequested_block(body(hb)).expect("judged");
        assert!(
            matches!(o.status, AcceptStatus::HeaderOnly | AcceptStatus::Orphan { .. }),
            "{:?}",
            o.status
        );
    }
    assert_eq!(h.state.tip_hash(), a[1]);
    // b3 would win on work, but its parent's body was never stored: an orphan (sync then
    // fetches b1 and b2 as requested blocks).
    let o = h.state.accept_unrequested_block(body(&b[2])).expect("orphan");
    assert!(matches!(o.status, AcceptStatus::Orphan { .. }), "{:?}", o.status);
    h.state.accept_block(body(&b[0])).expect("requested b1");
    let o = h.state.accept_block(body(&b[1])).expect("requested b2");
    assert_eq!(
        h.state.tip_hash(),
        b[2],
        "b3 left the orphan pool and won: {:?}",
        o.status
    );
    h.state.verify().expect("verify");
}

#[test]
fn headers_that_break_a_rule_leave_nothing_on_disk() {
    let mut h = Harness::new();
    for _ in 0..5 {
        h.mine();
    }
    let genesis = h.state.genesis_hash();
    let g = *h.state.entry(&genesis).expect("genesis");
    // Twice as hard as regtest's fixed target: valid proof of work against its own bits,
    // but not the bits the chain expects.
    let wrong_bits = 0x203f_ffff;
    let mut flood = Vec::new();
    for tag in 0..FLOOD as u64 {
        let cb = coinbase(Height(1), tag, b"bad bits", vec![pay(key_hash(&key(9)), Amount(1))]);
        let mut block = assemble(genesis, g.header.time + 1, wrong_bits, vec![cb]);
        assert!(grind(&mut block.header, &h.params.pow_limit()));
        flood.push(block);
    }
    h.state.flush().expect("flush");
    let before = dir_size(h.dir.path());
    for block in &flood {
        let err = h.state.accept_block(Arc::new(block.clone())).expect_err("bad bits");
        assert!(
            matches!(err.consensus_rule(), Some(ConsensusError::BadDifficulty { .. })),
            "{err}"
        );
        assert!(h.state.entry(&block.hash()).is_none(), "no index entry");
    }
    h.state.flush().expect("flush");
    let grown = dir_size(h.dir.path()).saturating_sub(before);
    eprintln!("{FLOOD} invalid headers: data dir grew by {grown} bytes");
    assert!(grown < 64 * 1024, "data dir grew by {grown} bytes");
    assert_eq!(h.state.invalid_header_count(), FLOOD);
    // Refused cheaply the second time, and so is a child.
    let err = h.state.accept_block(Arc::new(flood[0].clone())).expect_err("known");
    assert!(
        matches!(err.consensus_rule(), Some(ConsensusError::KnownInvalid(_))),
        "{err}"
    );
    let mut child = assemble(
        flood[0].hash(),
        flood[0].header.time + 1,
        h.params.pow_limit_bits,
        vec![coinbase(
            Height(2),
            1,
            b"child",
            vec![pay(key_hash(&key(9)), Amount(1))],
        )],
    );
    assert!(grind(&mut child.header, &h.params.pow_limit()));
    let err = h
        .state
        .accept_block(Arc::new(child.clone()))
        .expect_err("child of invalid");
    assert!(
        matches!(err.consensus_rule(), Some(ConsensusError::InvalidParent(_))),
        "{err}"
    );
    assert!(h.state.entry(&child.hash()).is_none());
    // Nothing of them survives a restart either.
    h.reopen();
    assert!(h.state.entry(&flood[0].hash()).is_none());
}

#[test]
fn an_equal_work_branch_ending_in_an_invalid_block_gives_the_tip_back_to_the_first_seen() {
    let mut h = Harness::new();
    for _ in 0..12 {
        h.mine();
    }
    let fork = h.state.tip_hash();
    let a = h.branch(fork, 2, 0xa);
    let b = h.branch(fork, 2, 0xb);
    assert_eq!(h.state.tip_hash(), a[1], "equal work: first seen keeps the tip");
    // b3 makes B heavier, but it spends a coinbase with the wrong key.
    let cb1 = {
        let hash = h.state.hash_at(Height(1)).expect("height 1");
        let block = h.state.block(&hash).expect("read").expect("body");
        OutPoint {
            txid: block.transactions[0].txid(),
            index: 0,
        }
    };
    let bad_tx = spend(&[cb1], vec![pay(key_hash(&key(9)), Amount(1))], &key(9), &h.genesis());
    let b3 = h.block_on(b[1], vec![bad_tx], Amount::ZERO, 0, 0xb);
    let outcome = h.state.accept_block(Arc::new(b3)).expect("stored, then found invalid");
    assert!(
        matches!(outcome.status, AcceptStatus::Invalid { .. }),
        "{:?}",
        outcome.status
    );
    assert_eq!(
        h.state.tip_hash(),
        a[1],
        "B (equal work to A once b3 fell) must not keep the tip A had first"
    );
    h.state.verify().expect("verify");
}
