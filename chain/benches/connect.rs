//! Connecting a block of 2,000 one-input two-output transactions (decode, validate, UTXO
//! updates, sled write), next to the raw Ed25519 verification rates measured in the same
//! run (single `verify_strict`, and dalek's batch) over the same 2,000 signatures.
//!
//! `cargo bench -p lode-chain --bench connect`. The summary line at the end gives the
//! ratios; BENCHMARKS.md records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, seeded_key, spend};
use lode_chain::{Amount, Block, ChainParams, ChainState, Height, OutPoint, TxOut, Unlock};

const TXS: usize = 2_000;

struct Fixture {
    params: ChainParams,
    block_bytes: Vec<u8>,
    sigs: Vec<(VerifyingKey, Signature, [u8; 32])>,
}

fn fixture() -> Fixture {
    let keys: Vec<SigningKey> = (0..TXS).map(|i| seeded_key(i as u64 + 1)).collect();
    let mut params = ChainParams::regtest();
    params.name = "bench".into();
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
            Amount(params.subsidy(Height(1)).0 + TXS as u64 * 1_000),
        )],
    )];
    for (i, k) in keys.iter().enumerate() {
        let op = OutPoint {
            txid: premine_txid,
            index: i as u32,
        };
        let outs = vec![
            pay(key_hash(k), Amount(60_000_000)),
            pay(key_hash(&keys[(i + 1) % TXS]), Amount(39_999_000)),
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
        block_bytes: block.to_bytes(),
        params,
        sigs,
    }
}

fn fresh_state(params: &ChainParams) -> (tempfile::TempDir, ChainState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ChainState::open(dir.path(), params.clone()).expect("open");
    (dir, state)
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
    let f = fixture();
    let mut g = c.benchmark_group("block_2000_txs");
    g.sample_size(10);
    g.bench_function("connect (decode+validate+utxo+sled)", |b| {
        b.iter_batched(
            || fresh_state(&f.params),
            |(dir, mut state)| {
                connect(&f.params, &mut state, &f.block_bytes);
                (dir, state)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("connect, signatures cached at mempool entry", |b| {
        b.iter_batched(
            || warm_state(&f),
            |(dir, mut state)| {
                connect(&f.params, &mut state, &f.block_bytes);
                (dir, state)
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

/// A fresh chain whose signature cache already holds the block's signatures, as on a node
/// whose mempool accepted its transactions before the block arrived.
fn warm_state(f: &Fixture) -> (tempfile::TempDir, ChainState) {
    let (dir, state) = fresh_state(&f.params);
    let items: Vec<lode_chain::sig::SigItem> = f
        .sigs
        .iter()
        .map(|(vk, sig, msg)| lode_chain::sig::SigItem {
            pubkey: vk.to_bytes(),
            signature: sig.to_bytes(),
            msg: *msg,
        })
        .collect();
    let mut cache = state.sig_cache().lock().expect("cache lock");
    cache.verify_all(&items).expect("valid signatures");
    drop(cache);
    (dir, state)
}

fn summary() {
    let f = fixture();
    let warm_t = median(
        9,
        || warm_state(&f),
        |(_, state)| connect(&f.params, state, &f.block_bytes),
    );
    let connect_t = median(
        9,
        || fresh_state(&f.params),
        |(_, state)| connect(&f.params, state, &f.block_bytes),
    );
    let single_t = median(9, || (), |_| verify_single(&f.sigs));
    let batch_t = median(9, || (), |_| verify_batch(&f.sigs));
    let rate = |d: Duration| TXS as f64 / d.as_secs_f64();
    eprintln!(
        "summary: connect {:.0} tx/s (cold sig cache), {:.0} tx/s (signatures verified at mempool entry) | \
         verify_strict {:.0} sig/s | dalek batch {:.0} sig/s | cold / strict = {:.2}x | warm / strict = {:.2}x | \
         warm / batch = {:.2}x",
        rate(connect_t),
        rate(warm_t),
        rate(single_t),
        rate(batch_t),
        rate(connect_t) / rate(single_t),
        rate(warm_t) / rate(single_t),
        rate(warm_t) / rate(batch_t),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
