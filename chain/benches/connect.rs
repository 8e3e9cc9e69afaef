//! Connecting a block of 2,000 one-input two-output transactions (decode, validate, UTXO
//! updates into the store's write-back cache), next to the raw Ed25519 verification rates measured in the same
//! run (single-core `verify_strict`, and dalek's batch) over the same 2,000 signatures.
//!
//! `cargo bench -p lode-chain --bench connect` (`-- nomatch` skips the criterion groups).
//! After the criterion groups it prints, on stderr:
//! - `connect/strict: cold=R1 warm=R2 cores=N`: the connect rate (tx/s) of the 2,000-tx
//!   block over the single-core `verify_strict` rate of its 2,000 signatures, both measured
//!   here (cold: empty signature cache; warm: the cache holds every signature, as when the
//!   mempool saw the transactions first); N is the signature worker pool's size;
//! - `connect/pool:` the same 2,000 strict checks spread over the pool, over single: the
//!   parallelism the run really got (other processes share the cores);
//! - `connect/flush:` the time to write one such block's cached changes to sled (the
//!   write-back cache defers it to a flush per budget's worth of blocks);
//! - `connect/per-tx:` lines for blocks of 500, 2,000 and 8,000 transactions (cold, warm,
//!   and warm with the spent outputs read once through the store beforehand), wall and CPU
//!   time per transaction, measured in interleaved rounds over the same UTXO set, and their
//!   max/min over the sizes (`LODE_CONNECT_PER_TX_ONLY=1` runs these alone);
//! - a `summary:` line with the absolute rates.
//!
//! BENCHMARKS.md records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, seeded_key, spend};
use lode_chain::{Amount, Block, ChainParams, ChainState, Height, OutPoint, TxOut, Unlock};

const TXS: usize = 2_000;

/// Block sizes of the per-transaction cost lines (time per tx should stay flat).
const SIZES: [usize; 3] = [500, 2_000, 8_000];

struct Fixture {
    txs: usize,
    params: ChainParams,
    block_bytes: Vec<u8>,
    sigs: Vec<(VerifyingKey, Signature, [u8; 32])>,
}

/// A block of `n` transactions, each spending one of `premine` (≥ `n`) genesis outputs, so
/// that blocks of every size read the same UTXO set.
fn fixture(n: usize, premine: usize) -> Fixture {
    let keys: Vec<SigningKey> = (0..premine.max(n)).map(|i| seeded_key(i as u64 + 1)).collect();
    let mut params = ChainParams::regtest();
    params.name = "bench".into();
    // 8,000 transactions of ~210 bytes exceed regtest's 2 MB; the rules do not change.
    params.max_block_size = 4_000_000;
    params.genesis_outputs = keys
        .iter()
        .map(|k| TxOut {
            value: Amount::coins(1),
            pubkey_hash: key_hash(k),
        })
        .collect();
    let genesis_block = params.genesis_block();
    let genesis = genesis_block.hash();
    let premine_txid = genesis_block.transactions[0].txid();
    let mut txs = vec![coinbase(
        Height(1),
        0,
        b"bench",
        vec![pay(
            key_hash(&keys[0]),
            Amount(params.subsidy(Height(1)).0 + n as u64 * 1_000),
        )],
    )];
    for (i, k) in keys.iter().take(n).enumerate() {
        let op = OutPoint {
            txid: premine_txid,
            index: i as u32,
        };
        let outs = vec![
            pay(key_hash(k), Amount(60_000_000)),
            pay(key_hash(&keys[(i + 1) % n]), Amount(39_999_000)),
        ];
        txs.push(spend(&[op], outs, k, &genesis));
    }
    let mut block = assemble(genesis, params.genesis_time + 1, params.pow_limit_bits, txs);
    assert!(grind(&mut block.header, &params.pow_limit()));
    let sigs = block.transactions[1..]
        .iter()
        .map(|tx| {
            let Unlock::Key(k) = &tx.inputs[0].unlock else {
                unreachable!("spends only")
            };
            let vk = VerifyingKey::from_bytes(&k.pubkey).expect("valid key");
            (vk, Signature::from_bytes(&k.signature), tx.sighash(&genesis))
        })
        .collect();
    Fixture {
        txs: n,
        block_bytes: block.to_bytes(),
        params,
        sigs,
    }
}

/// A fresh chain; the state comes first so it drops (and flushes) before its directory.
fn fresh_state(params: &ChainParams) -> (ChainState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ChainState::open(dir.path(), params.clone()).expect("open");
    (state, dir)
}

fn connect(params: &ChainParams, state: &mut ChainState, bytes: &[u8]) {
    let block = Block::from_bytes(bytes, params.max_block_size).expect("decode");
    let outcome = state.accept_block(Arc::new(block)).expect("accept");
    assert_eq!(outcome.status, lode_chain::AcceptStatus::Connected);
}

fn verify_single(sigs: &[(VerifyingKey, Signature, [u8; 32])]) {
    for (vk, sig, msg) in sigs {
        vk.verify_strict(msg, sig).expect("valid");
    }
}

fn verify_batch(sigs: &[(VerifyingKey, Signature, [u8; 32])]) {
    let msgs: Vec<&[u8]> = sigs.iter().map(|s| s.2.as_slice()).collect();
    let ss: Vec<Signature> = sigs.iter().map(|s| s.1).collect();
    let vks: Vec<VerifyingKey> = sigs.iter().map(|s| s.0).collect();
    ed25519_dalek::verify_batch(&msgs, &ss, &vks).expect("valid batch");
}

fn bench(c: &mut Criterion) {
    let f = fixture(TXS, TXS);
    let mut g = c.benchmark_group("block_2000_txs");
    g.sample_size(10);
    g.bench_function("connect (decode+validate+utxo into the cache)", |b| {
        b.iter_batched(
            || fresh_state(&f.params),
            |(mut state, dir)| {
                connect(&f.params, &mut state, &f.block_bytes);
                (state, dir)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("connect, signatures cached at mempool entry", |b| {
        b.iter_batched(
            || warm_state(&f),
            |(mut state, dir)| {
                connect(&f.params, &mut state, &f.block_bytes);
                (state, dir)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("ed25519 verify_strict x2000", |b| b.iter(|| verify_single(&f.sigs)));
    g.bench_function("ed25519 dalek batch x2000", |b| b.iter(|| verify_batch(&f.sigs)));
    g.finish();
}

/// Median of `runs` timings of `f`, excluding `setup`.
fn median<S, T>(runs: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(&mut S) -> T) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut s = setup();
            let t = Instant::now();
            let out = f(&mut s);
            let d = t.elapsed();
            drop(out);
            drop(s);
            d
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The block's signatures as the chain checks them.
fn sig_items(f: &Fixture) -> Vec<lode_chain::sig::SigItem> {
    f.sigs
        .iter()
        .map(|(vk, sig, msg)| lode_chain::sig::SigItem {
            pubkey: vk.to_bytes(),
            signature: sig.to_bytes(),
            msg: *msg,
        })
        .collect()
}

/// A fresh chain whose signature cache already holds the block's signatures, as on a node
/// whose mempool accepted its transactions before the block arrived.
fn warm_state(f: &Fixture) -> (ChainState, tempfile::TempDir) {
    let (state, dir) = fresh_state(&f.params);
    let items = sig_items(f);
    let mut cache = state.sig_cache().lock().expect("cache lock");
    cache.verify_all(&items).expect("valid signatures");
    drop(cache);
    (state, dir)
}

/// Median connect times of `f`'s block, cold and warm signature cache.
fn connect_times(f: &Fixture, runs: usize) -> (Duration, Duration) {
    let cold = median(
        runs,
        || fresh_state(&f.params),
        |(state, _)| connect(&f.params, state, &f.block_bytes),
    );
    let warm = median(
        runs,
        || warm_state(f),
        |(state, _)| connect(&f.params, state, &f.block_bytes),
    );
    (cold, warm)
}

fn summary() {
    let f = fixture(TXS, TXS);
    let (connect_t, warm_t) = connect_times(&f, 9);
    // Raw strict verification on this one thread: the single-core baseline.
    let single_t = median(9, || (), |_| verify_single(&f.sigs));
    let batch_t = median(9, || (), |_| verify_batch(&f.sigs));
    // The same strict checks spread over the pool: how much of the other cores this run got
    // (2.0 on an idle 2-core machine; near 1.0 when other work holds the second core).
    let items = sig_items(&f);
    let pool_t = median(
        9,
        || (),
        |_| lode_chain::sig::verify_all_parallel(&items, None).expect("valid"),
    );
    let rate = |d: Duration| TXS as f64 / d.as_secs_f64();
    let cores = rayon::current_num_threads();
    eprintln!(
        "connect/strict: cold={:.2} warm={:.2} cores={cores}",
        rate(connect_t) / rate(single_t),
        rate(warm_t) / rate(single_t),
    );
    eprintln!(
        "connect/pool: verify_strict of the same signatures on the pool = {:.2}x single (the \
         parallelism this run actually got)",
        rate(pool_t) / rate(single_t)
    );
    eprintln!(
        "summary: connect {:.0} tx/s (cold sig cache), {:.0} tx/s (signatures verified at mempool entry) | \
         verify_strict {:.0} sig/s (1 core) | dalek batch {:.0} sig/s | warm / batch = {:.2}x",
        rate(connect_t),
        rate(warm_t),
        rate(single_t),
        rate(batch_t),
        rate(warm_t) / rate(batch_t),
    );
    // What the write-back cache defers: writing this block's changes to sled in one
    // transaction and syncing it (paid once per budget's worth of blocks).
    let flush_t = median(
        9,
        || {
            let (mut state, dir) = fresh_state(&f.params);
            connect(&f.params, &mut state, &f.block_bytes);
            (state, dir)
        },
        |(state, _)| state.flush().expect("flush"),
    );
    eprintln!(
        "connect/flush: one {TXS}-tx block's cached changes flushed in {:.1} ms; cold connect + its own \
         flush = {:.2} of strict (a flush per block, the worst case)",
        flush_t.as_secs_f64() * 1e3,
        rate(connect_t + flush_t) / rate(single_t),
    );
    per_tx_lines();
}

/// On-CPU nanoseconds of every thread of this process so far, by thread id
/// (`/proc/self/task/*/schedstat`): work done, whatever share of the cores the run got.
fn thread_cpu() -> std::collections::HashMap<u64, u64> {
    let mut out = std::collections::HashMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let id = t.file_name().to_string_lossy().parse::<u64>().unwrap_or(0);
            let ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            out.insert(id, ns);
        }
    }
    out
}

/// CPU time spent by every thread since `before` (threads that ended meanwhile are lost).
fn cpu_since(before: &std::collections::HashMap<u64, u64>) -> Duration {
    let ns: u64 = thread_cpu()
        .iter()
        .map(|(id, ns)| ns.saturating_sub(before.get(id).copied().unwrap_or(0)))
        .sum();
    Duration::from_nanos(ns)
}

/// Wall and CPU time of one connect of `f`'s block on the state `setup` makes.
fn one_connect(f: &Fixture, setup: impl FnOnce() -> (ChainState, tempfile::TempDir)) -> (Duration, Duration) {
    let (mut state, dir) = setup();
    let cpu = thread_cpu();
    let t = Instant::now();
    connect(&f.params, &mut state, &f.block_bytes);
    let wall = t.elapsed();
    let cpu = cpu_since(&cpu);
    drop(state);
    drop(dir);
    (wall, cpu)
}

/// Time per transaction for blocks of every size in [`SIZES`], measured in rounds that take
/// each size in turn (so load changes during the run hit every size alike), with the same
/// UTXO set (a premine as large as the largest block) under every size.
fn per_tx_lines() {
    let premine = *SIZES.iter().max().unwrap_or(&TXS);
    let fixtures: Vec<Fixture> = SIZES.iter().map(|&n| fixture(n, premine)).collect();
    // kinds: cold, warm, warm with the spent outputs read once first.
    const KINDS: [&str; 3] = ["cold", "warm", "warm+store-pages-read"];
    let rounds = 7;
    let mut wall = vec![[Vec::new(), Vec::new(), Vec::new()]; SIZES.len()];
    let mut cpu = vec![[Vec::new(), Vec::new(), Vec::new()]; SIZES.len()];
    for _ in 0..rounds {
        for (i, f) in fixtures.iter().enumerate() {
            let pages_read = || {
                let (state, dir) = warm_state(f);
                // Warm, and the spent outputs read once through the store first: separates
                // sled's first reads after the premine's write from the connect path's own.
                let premine = f.params.genesis_block().transactions[0].txid();
                for index in 0..f.txs as u32 {
                    let op = OutPoint { txid: premine, index };
                    assert!(state.utxo(&op).expect("read").is_some());
                }
                (state, dir)
            };
            let runs = [
                one_connect(f, || fresh_state(&f.params)),
                one_connect(f, || warm_state(f)),
                one_connect(f, pages_read),
            ];
            for (k, (w, c)) in runs.into_iter().enumerate() {
                wall[i][k].push(w);
                cpu[i][k].push(c);
            }
        }
    }
    let med = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    // per size, per kind: (wall µs/tx, cpu µs/tx)
    let mut table = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        let row: Vec<(f64, f64)> = (0..KINDS.len())
            .map(|k| (us(med(&wall[i][k])), us(med(&cpu[i][k]))))
            .collect();
        eprintln!(
            "connect/per-tx: txs={n} cold={:.1}us (cpu {:.1}us) warm={:.1}us (cpu {:.1}us) \
             warm+store-pages-read={:.1}us (cpu {:.1}us)",
            row[0].0, row[0].1, row[1].0, row[1].1, row[2].0, row[2].1
        );
        table.push(row);
    }
    let spread = |k: usize, cpu: bool| {
        let v: Vec<f64> = table.iter().map(|r| if cpu { r[k].1 } else { r[k].0 }).collect();
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        max / min
    };
    eprintln!(
        "connect/per-tx: max/min over {SIZES:?} txs ({rounds} interleaved rounds, premine {premine}): \
         wall cold={:.2} warm={:.2} warm+store-pages-read={:.2} | cpu cold={:.2} warm={:.2} \
         warm+store-pages-read={:.2} (goal <= 1.20)",
        spread(0, false),
        spread(1, false),
        spread(2, false),
        spread(0, true),
        spread(1, true),
        spread(2, true),
    );
}

criterion_group!(benches, bench);

fn main() {
    // The per-size lines alone (the longest part): `LODE_CONNECT_PER_TX_ONLY=1`.
    if std::env::var_os("LODE_CONNECT_PER_TX_ONLY").is_some() {
        per_tx_lines();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
