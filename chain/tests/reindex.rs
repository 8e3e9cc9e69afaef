//! `ChainState::reindex`: a store whose derived tables are damaged (best chain with a gap,
//! UTXO set emptied, an index entry garbled) is refused at open and rebuilt from its
//! stored blocks, to the same tip, passing `verify()`; an unreadable body is counted and
//! left alone; sled's refusals become `Unopenable`, never a panic.

mod common;

use std::sync::Arc;

use common::{block_on_state, fixed_clock, matured_spend, retry_lock, Harness};
use lode_chain::error::ChainError;
use lode_chain::{ChainParams, ChainState, Hash256};

/// A chain of 40 blocks with spends and a short side branch, closed and flushed; returns
/// its tip.
fn build(h: &mut Harness) -> Hash256 {
    for round in 0..40u64 {
        let tip = h.state.tip_hash();
        let (txs, fees) = matured_spend(&h.state);
        let b = block_on_state(&h.state, tip, txs, fees, round);
        h.state.accept_block(Arc::new(b)).expect("accept");
    }
    let fork = h.state.hash_at(lode_chain::Height(35)).expect("h35");
    h.branch(fork, 2, 77);
    h.state.flush().expect("flush");
    h.state.tip_hash()
}

/// Closes the harness's chain and hands its directory to `damage` as a raw sled handle.
fn damage(h: Harness, f: impl FnOnce(&sled::Db)) -> (tempfile::TempDir, ChainParams) {
    let Harness { dir, params, state, .. } = h;
    drop(state);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let db = loop {
        match sled::open(dir.path()) {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open for damage: {e}"),
        }
    };
    f(&db);
    db.flush().expect("flush damage");
    drop(db);
    (dir, params)
}

fn open_retrying(path: &std::path::Path, params: &ChainParams) -> Result<ChainState, ChainError> {
    retry_lock(|| ChainState::open_with_clock(path, params.clone(), fixed_clock()))
}

fn reindex_retrying(path: &std::path::Path, params: &ChainParams) -> (ChainState, lode_chain::store::ReindexReport) {
    retry_lock(|| ChainState::reindex(path, params.clone())).expect("reindex")
}

#[test]
fn a_store_with_damaged_tables_is_refused_then_rebuilt_from_its_blocks() {
    let mut h = Harness::new();
    let tip = build(&mut h);
    let height = h.state.height();
    let utxos = h.state.verify().expect("verify before").utxos;
    let (dir, params) = damage(h, |db| {
        let best = db.open_tree("best").expect("best");
        best.remove(7u32.to_be_bytes()).expect("gap");
        db.open_tree("utxo").expect("utxo").clear().expect("clear utxo");
        db.open_tree("txindex")
            .expect("txindex")
            .clear()
            .expect("clear txindex");
        // One unreadable body among the good ones.
        db.open_tree("bodies")
            .expect("bodies")
            .insert([0xab; 32], &b"garbage"[..])
            .expect("garbage");
    });
    let err = open_retrying(dir.path(), &params).map(|_| ()).expect_err("refused");
    assert!(matches!(err, ChainError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("gap at height 7"), "{err}");

    let (state, report) = reindex_retrying(dir.path(), &params);
    assert_eq!(report.height, height.0);
    assert_eq!(report.tip, tip);
    assert_eq!(report.unreadable, 1);
    assert_eq!(report.unlinked, 0);
    // Genesis, 40 best blocks and the side branch's 2.
    assert_eq!(report.blocks, 43);
    assert_eq!(state.tip_hash(), tip);
    let v = state.verify().expect("verify after reindex");
    assert_eq!(v.utxos, utxos);
    // The tx index is back: the last block's coinbase is found.
    let last = state.block(&tip).expect("read").expect("tip body");
    let loc = state.store().tx_location(&last.transactions[0].txid()).expect("read");
    assert_eq!(loc.map(|l| l.block), Some(tip));
    drop(state);
    // And it stays so across a reopen.
    let state = open_retrying(dir.path(), &params).expect("reopen");
    assert_eq!(state.tip_hash(), tip);
    state.verify().expect("verify after reopen");
}

#[test]
fn an_unopenable_store_is_reported_and_never_taken_for_a_new_one() {
    // sled refuses a damaged config outright, before touching anything else.
    let mut h = Harness::new();
    build(&mut h);
    let Harness { dir, state, params, .. } = h;
    drop(state);
    let garble = |path: &std::path::Path| {
        let len = std::fs::metadata(path).expect("sled's file").len() as usize;
        std::fs::write(path, (0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>()).expect("garble");
    };
    garble(&dir.path().join("conf"));
    let files = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("dir")
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(dir.path());
    let err = open_retrying(dir.path(), &params).map(|_| ()).expect_err("refused");
    assert!(matches!(err, ChainError::Unopenable { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be opened"), "{err}");
    assert!(before == files(dir.path()), "files changed");

    // A log damaged from its start reads as empty to sled (whose own recovery rewrites its
    // torn tail): it must not pass for a new store, with genesis written over it.
    let mut h = Harness::new();
    build(&mut h);
    let Harness { dir, state, params, .. } = h;
    drop(state);
    garble(&dir.path().join("db"));
    for _ in 0..2 {
        let err = open_retrying(dir.path(), &params).map(|_| ()).expect_err("refused");
        assert!(matches!(err, ChainError::Unopenable { .. }), "{err:?}");
        assert!(err.to_string().contains("reads no chain"), "{err}");
    }
}
