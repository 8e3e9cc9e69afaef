//! Template assembly from a 5,000-transaction mempool with package dependencies (2,500
//! parents, each with one child; children pay more so packages matter).
//!
//! `cargo bench -p lode-miner --bench template`. Reports milliseconds for package selection
//! alone and for the whole `build_template` (selection, coinbase, merkle root, and the
//! consensus check of the template: every rule except PoW; signatures were verified at
//! mempool entry and are found in the signature cache).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use ed25519_dalek::SigningKey;
use lode_chain::build::{key_hash, pay, seeded_key, spend};
use lode_chain::mempool::Mempool;
use lode_chain::{Amount, ChainParams, ChainState, OutPoint, PubkeyHash, TxOut};
use lode_miner::template::{build_template, select_packages, TxSource};

const PARENTS: usize = 2_500;

struct Fixture {
    _dir: tempfile::TempDir,
    state: ChainState,
    pool: Mempool,
}

fn fixture() -> Fixture {
    let keys: Vec<SigningKey> = (0..PARENTS).map(|i| seeded_key(i as u64 + 1)).collect();
    let mut params = ChainParams::regtest();
    params.name = "bench".into();
    params.max_block_size = 4_000_000;
    params.genesis_outputs = keys
        .iter()
        .map(|k| TxOut {
            value: Amount::coins(1),
            pubkey_hash: key_hash(k),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ChainState::open(dir.path(), params.clone()).expect("open");
    let genesis = state.genesis_hash();
    let premine = params.genesis_block().transactions[0].txid();
    let mut pool = Mempool::new(&params, lode_chain::state::system_clock());
    for (i, k) in keys.iter().enumerate() {
        let fee = 300 + (i as u64 * 7919) % 2_000;
        let parent = spend(
            &[OutPoint {
                txid: premine,
                index: i as u32,
            }],
            vec![
                pay(key_hash(k), Amount(60_000_000)),
                pay(key_hash(k), Amount(40_000_000 - fee)),
            ],
            k,
            &genesis,
        );
        let child_fee = 500 + (i as u64 * 104_729) % 5_000;
        let child = spend(
            &[OutPoint {
                txid: parent.txid(),
                index: 0,
            }],
            vec![pay(key_hash(k), Amount(60_000_000 - child_fee))],
            k,
            &genesis,
        );
        pool.accept(Arc::new(parent), &state).expect("parent accepted");
        pool.accept(Arc::new(child), &state).expect("child accepted");
    }
    assert_eq!(pool.len(), 2 * PARENTS);
    Fixture { _dir: dir, state, pool }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let to = PubkeyHash([7; 20]);
    let mut g = c.benchmark_group("template_5000_txs");
    g.sample_size(10);
    g.bench_function("select_packages", |b| {
        b.iter(|| select_packages(f.pool.template_candidates(), 3_900_000).len())
    });
    g.bench_function("build_template (select + check)", |b| {
        b.iter(|| {
            build_template(&f.state, &f.pool, to, f.state.now(), 0)
                .expect("template")
                .tx_count()
        })
    });
    g.finish();
}

fn summary() {
    let f = fixture();
    let to = PubkeyHash([7; 20]);
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            let tpl = build_template(&f.state, &f.pool, to, f.state.now(), 0).expect("template");
            assert_eq!(tpl.tx_count(), 2 * PARENTS);
            t.elapsed()
        })
        .collect();
    times.sort();
    eprintln!(
        "summary: build_template over a {}-transaction mempool: median {:.1} ms (goal < 50 ms)",
        2 * PARENTS,
        times[4].as_secs_f64() * 1e3
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
