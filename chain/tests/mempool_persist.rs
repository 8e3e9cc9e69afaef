//! The mempool on disk (`mempool.dat` and the journal): a pool of 1,000 transactions
//! saved and restored whole, what no longer fits the chain dropped with a reason, damaged
//! and torn files reported.

mod common;

use std::sync::Arc;

use common::{fixed_clock, Harness};
use lode_chain::build::{key_hash, pay, spend};
use lode_chain::mempool::persist::{self, PersistError, TxJournal};
use lode_chain::mempool::{Mempool, MempoolError};
use lode_chain::{Amount, OutPoint, Transaction};

/// A chain whose tip confirmed one transaction with `n` outputs to the miner key, and `n`
/// one-in-one-out spends of them (not accepted anywhere yet).
fn chain_with_spends(n: usize) -> (Harness, Vec<Transaction>) {
    let mut h = Harness::new();
    for _ in 0..11 {
        h.mine();
    }
    // The coinbase of height 1 is mature at height 11.
    let cb_block = h
        .state
        .block(&h.state.hash_at(lode_chain::Height(1)).expect("h1"))
        .expect("read")
        .expect("body");
    let cb = OutPoint {
        txid: cb_block.transactions[0].txid(),
        index: 0,
    };
    let each = 40 * lode_chain::COIN / n as u64;
    let to = key_hash(&h.miner_key);
    let fan_out = spend(
        &[cb],
        (0..n).map(|_| pay(to, Amount(each))).collect(),
        &h.miner_key,
        &h.genesis(),
    );
    let fee = 50 * lode_chain::COIN - each * n as u64;
    let block = h.block_on(h.state.tip_hash(), vec![fan_out.clone()], Amount(fee), 0, 0);
    h.state.accept_block(Arc::new(block)).expect("fan-out confirmed");
    let spends = (0..n as u32)
        .map(|i| {
            let op = OutPoint {
                txid: fan_out.txid(),
                index: i,
            };
            spend(&[op], vec![pay(to, Amount(each - 1_000))], &h.miner_key, &h.genesis())
        })
        .collect();
    (h, spends)
}

fn pool(h: &Harness) -> Mempool {
    Mempool::new(&h.params, fixed_clock())
}

#[test]
fn a_pool_of_a_thousand_comes_back_whole() {
    let (h, spends) = chain_with_spends(1_000);
    let mut before = pool(&h);
    for tx in &spends {
        before.accept(Arc::new(tx.clone()), &h.state).expect("accepted");
    }
    assert_eq!(before.len(), 1_000);
    let path = h.dir.path().join(persist::SNAPSHOT_FILE);
    assert_eq!(persist::save(&before, &h.genesis(), &path).expect("save"), 1_000);

    let txs = persist::load(&path, &h.genesis(), h.params.max_tx_size).expect("load");
    let mut after = pool(&h);
    let report = persist::restore(&mut after, &h.state, txs);
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    assert_eq!(report.restored.len(), 1_000);
    assert_eq!(after.txids(), before.txids(), "same transactions, same order");
    assert_eq!(after.total_fees(), before.total_fees());
}

#[test]
fn what_no_longer_fits_is_dropped_with_its_reason() {
    let (mut h, spends) = chain_with_spends(20);
    let mut before = pool(&h);
    for tx in &spends {
        before.accept(Arc::new(tx.clone()), &h.state).expect("accepted");
    }
    let path = h.dir.path().join(persist::SNAPSHOT_FILE);
    persist::save(&before, &h.genesis(), &path).expect("save");
    // While the node was down a block confirmed the first three.
    let block = h.block_on(h.state.tip_hash(), spends[..3].to_vec(), Amount(3_000), 0, 1);
    h.state.accept_block(Arc::new(block)).expect("block");

    let txs = persist::load(&path, &h.genesis(), h.params.max_tx_size).expect("load");
    let mut after = pool(&h);
    let report = persist::restore(&mut after, &h.state, txs);
    assert_eq!(report.restored.len(), 17);
    let dropped: Vec<_> = report.dropped.iter().map(|(t, _)| *t).collect();
    assert_eq!(dropped, spends[..3].iter().map(Transaction::txid).collect::<Vec<_>>());
    for (txid, reason) in &report.dropped {
        assert_eq!(reason, &MempoolError::AlreadyConfirmed(*txid).to_string());
    }
}

#[test]
fn a_damaged_snapshot_is_reported_not_guessed() {
    let (h, spends) = chain_with_spends(5);
    let mut before = pool(&h);
    for tx in &spends {
        before.accept(Arc::new(tx.clone()), &h.state).expect("accepted");
    }
    let path = h.dir.path().join(persist::SNAPSHOT_FILE);
    persist::save(&before, &h.genesis(), &path).expect("save");
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    let err = persist::load(&path, &h.genesis(), h.params.max_tx_size).expect_err("damaged");
    assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // Another network's file is refused as such.
    persist::save(&before, &h.genesis(), &path).expect("save");
    let other = lode_chain::Hash256([9; 32]);
    let err = persist::load(&path, &other, h.params.max_tx_size).expect_err("other network");
    assert!(matches!(err, PersistError::WrongNetwork { .. }), "{err}");
}

#[test]
fn the_journal_survives_a_torn_last_record() {
    let (h, spends) = chain_with_spends(4);
    let path = h.dir.path().join(persist::JOURNAL_FILE);
    let mut journal = TxJournal::open(&path, &h.genesis()).expect("open");
    for tx in &spends {
        journal.append(tx).expect("append");
    }
    journal.sync().expect("sync");
    drop(journal);
    // A crash in the middle of the last append.
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 10).expect("truncate");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(read, spends[..3].to_vec());

    // Cleared, it holds nothing, and appends after the clear are read back.
    let mut journal = TxJournal::open(&path, &h.genesis()).expect("reopen");
    journal.clear().expect("clear");
    assert!(persist::read_journal(&path, &h.genesis(), h.params.max_tx_size)
        .expect("read")
        .is_empty());
    journal.append(&spends[3]).expect("append");
    journal.sync().expect("sync");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(read, vec![spends[3].clone()]);
}
