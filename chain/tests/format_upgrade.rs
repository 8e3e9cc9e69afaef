//! A store of storage format 1 (one sled entry per block body) opens in this build: its
//! bodies are rewritten in pieces (format 2, `store/bodies.rs`) and everything reads as
//! before.

mod common;

use std::sync::Arc;

use common::{block_on_state, matured_spend, Harness};
use lode_chain::store::bodies::PIECE_BYTES;

#[test]
fn a_format_1_store_is_upgraded_at_open_and_reads_the_same() {
    let mut h = Harness::new();
    let mut hashes = vec![h.genesis()];
    for _ in 0..15 {
        let (txs, fees) = matured_spend(&h.state);
        let b = block_on_state(&h.state, h.state.tip_hash(), txs, fees, 0);
        hashes.push(b.hash());
        h.state.accept_block(Arc::new(b)).expect("accept");
    }
    let tip = h.state.tip_hash();
    let before: Vec<_> = hashes
        .iter()
        .map(|x| h.state.block(x).expect("read").expect("stored"))
        .collect();
    h.close();

    // Rewrite the store as format 1 wrote it: each body whole under its hash, version 1.
    {
        let db = loop {
            match sled::open(h.dir.path()) {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("sled: {e}"),
            }
        };
        let bodies = db.open_tree("bodies").expect("bodies");
        let pieces: Vec<(sled::IVec, sled::IVec)> = bodies.iter().collect::<Result<_, _>>().expect("pieces");
        assert!(pieces.iter().all(|(k, v)| k.len() == 36 && v.len() <= PIECE_BYTES));
        bodies.clear().expect("clear");
        for x in &hashes {
            let whole: Vec<u8> = pieces
                .iter()
                .filter(|(k, _)| k.starts_with(&x.0))
                .flat_map(|(_, v)| v.to_vec())
                .collect();
            bodies.insert(x.0, whole).expect("whole body");
        }
        db.open_tree("meta")
            .expect("meta")
            .insert("version", &1u32.to_be_bytes())
            .expect("version 1");
        db.flush().expect("sync");
    }

    h.open_again().expect("a format-1 store opens");
    assert_eq!(h.state.tip_hash(), tip);
    let after: Vec<_> = hashes
        .iter()
        .map(|x| h.state.block(x).expect("read").expect("stored"))
        .collect();
    assert_eq!(after, before);
    h.state.verify().expect("verify after the upgrade");
    // Upgraded for good: it opens again without rewriting anything.
    h.reopen();
    assert_eq!(h.state.tip_hash(), tip);
}
