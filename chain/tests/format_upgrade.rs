//! A store of storage format 1 (one sled entry per block body, one per address-index row)
//! opens in this build: its bodies are rewritten in pieces (`store/bodies.rs`) and its
//! address index in groups (`store/addr_index.rs`) — format 2 — and everything reads as
//! before.

mod common;

use std::sync::Arc;

use common::{block_on_state, key, matured_spend, retry_lock, Harness};
use lode_chain::build::key_hash;
use lode_chain::store::bodies::PIECE_BYTES;
use lode_chain::store::keys::addr_key;

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
    let pkhs: Vec<_> = (1..=3).map(|k| key_hash(&key(k))).collect();
    let events_before: Vec<_> = pkhs
        .iter()
        .map(|p| h.state.store().address_events(p).expect("events"))
        .collect();
    assert!(events_before.iter().all(|e| !e.is_empty()), "every test key has rows");
    let before: Vec<_> = hashes
        .iter()
        .map(|x| h.state.block(x).expect("read").expect("stored"))
        .collect();
    h.close();

    // Rewrite the store as format 1 wrote it: each body whole under its hash, version 1.
    {
        let db = retry_lock(|| sled::open(h.dir.path())).expect("sled");
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
        // The address index as format 1 kept it: one entry per row.
        let addr = db.open_tree("addr").expect("addr");
        addr.clear().expect("clear");
        for (pkh, events) in pkhs.iter().zip(&events_before) {
            for e in events {
                addr.insert(
                    addr_key(pkh, e.height, &e.txid, e.kind, e.index),
                    lode_chain::encoding::encode(&e.record),
                )
                .expect("row");
            }
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
    let events_after: Vec<_> = pkhs
        .iter()
        .map(|p| h.state.store().address_events(p).expect("events"))
        .collect();
    assert_eq!(events_after, events_before);
    h.state.verify().expect("verify after the upgrade");
    // Upgraded for good: it opens again without rewriting anything.
    h.reopen();
    assert_eq!(h.state.tip_hash(), tip);
}
