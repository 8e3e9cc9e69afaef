//! The mempool on disk (`mempool.dat` and the journal): a pool of 1,000 transactions
//! saved and restored whole, what no longer fits the chain dropped with a reason, damaged
//! and torn files reported.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{fixed_clock, Harness, NOW};
use lode_chain::build::{key_hash, pay, spend};
use lode_chain::mempool::persist::{self, PersistError, TxJournal};
use lode_chain::mempool::{Mempool, MempoolError, MempoolPolicy};
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

fn txs_of(saved: &[persist::SavedTx]) -> Vec<Transaction> {
    saved.iter().map(|s| s.tx.clone()).collect()
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
        journal.append(tx, NOW).expect("append");
    }
    journal.sync().expect("sync");
    drop(journal);
    // A crash in the middle of the last append.
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 10).expect("truncate");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(txs_of(&read), spends[..3].to_vec());
    assert!(read.iter().all(|s| s.entered == Some(NOW)));

    // Cleared, it holds nothing, and appends after the clear are read back.
    let mut journal = TxJournal::open(&path, &h.genesis()).expect("reopen");
    journal.clear().expect("clear");
    assert!(persist::read_journal(&path, &h.genesis(), h.params.max_tx_size)
        .expect("read")
        .is_empty());
    journal.append(&spends[3], NOW - 5).expect("append");
    journal.sync().expect("sync");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(
        read,
        vec![persist::SavedTx {
            tx: spends[3].clone(),
            entered: Some(NOW - 5)
        }]
    );
}

/// A pool whose clock the test moves.
fn pool_at(h: &Harness, now: &Arc<AtomicU64>) -> Mempool {
    let now = now.clone();
    Mempool::new(&h.params, Arc::new(move || now.load(Ordering::Relaxed)))
}

#[test]
fn restored_transactions_keep_their_entry_time_and_expire_on_schedule() {
    let (h, spends) = chain_with_spends(3);
    let expiry = MempoolPolicy::for_params(&h.params).expiry_secs;
    let clock = Arc::new(AtomicU64::new(NOW));
    let mut before = pool_at(&h, &clock);
    // Entered a day apart: NOW, NOW + 1 day, NOW + 2 days.
    for (i, tx) in spends.iter().enumerate() {
        clock.store(NOW + i as u64 * 86_400, Ordering::Relaxed);
        before.accept(Arc::new(tx.clone()), &h.state).expect("accepted");
    }
    let path = h.dir.path().join(persist::SNAPSHOT_FILE);
    persist::save(&before, &h.genesis(), &path).expect("save");
    let saved = persist::load(&path, &h.genesis(), h.params.max_tx_size).expect("load");
    let times: Vec<_> = saved.iter().map(|s| s.entered).collect();
    assert_eq!(times, vec![Some(NOW), Some(NOW + 86_400), Some(NOW + 2 * 86_400)]);

    // Restarted a second after the first expired: it is not taken back; the others keep
    // the times they entered at, not the restart's.
    clock.store(NOW + expiry + 1, Ordering::Relaxed);
    let mut after = pool_at(&h, &clock);
    let report = persist::restore(&mut after, &h.state, saved);
    let dropped: Vec<_> = report.dropped.iter().map(|(t, _)| *t).collect();
    assert_eq!(dropped, vec![spends[0].txid()]);
    assert!(
        report.dropped[0].1.contains("past the expiry"),
        "{}",
        report.dropped[0].1
    );
    assert_eq!(report.restored, vec![spends[1].txid(), spends[2].txid()]);
    for (i, tx) in spends.iter().enumerate().skip(1) {
        let entry = after.get(&tx.txid()).expect("restored");
        assert_eq!(
            entry.time(),
            NOW + i as u64 * 86_400,
            "the saved entry time, not the load's"
        );
    }

    // Each expires when the expiry has passed since its first arrival, not since the restart.
    clock.store(NOW + 86_400 + expiry - 1, Ordering::Relaxed);
    assert!(after.expire().is_empty());
    clock.store(NOW + 86_400 + expiry, Ordering::Relaxed);
    assert_eq!(after.expire(), vec![spends[1].txid()]);
    assert_eq!(after.txids(), vec![spends[2].txid()]);
}

#[test]
fn a_first_format_journal_is_read_and_rewritten_in_the_new_one() {
    let (h, spends) = chain_with_spends(2);
    let path = h.dir.path().join(persist::JOURNAL_FILE);
    // The first format: magic "lodemjl\0", records without the entry time.
    let mut bytes = b"lodemjl\0".to_vec();
    bytes.extend_from_slice(&h.genesis().0);
    for tx in &spends {
        let raw = lode_chain::encoding::encode(tx);
        bytes.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&raw)[..4]);
        bytes.extend_from_slice(&raw);
    }
    std::fs::write(&path, &bytes).expect("write");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(txs_of(&read), spends);
    assert!(read.iter().all(|s| s.entered.is_none()));
    let mut journal = TxJournal::open(&path, &h.genesis()).expect("open");
    journal.clear().expect("clear");
    journal.append(&spends[0], NOW).expect("append");
    journal.sync().expect("sync");
    let read = persist::read_journal(&path, &h.genesis(), h.params.max_tx_size).expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].entered, Some(NOW));
}
