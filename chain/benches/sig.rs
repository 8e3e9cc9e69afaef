//! Signature verification rates on 2,000 signatures, all in one run so they are comparable:
//! single strict checks, dalek's (non-consensus) `verify_batch` as the ceiling, and our exact
//! `verify_all` / `verify_all_batched`, plus `SigCache::verify_all` when every signature is cached. Rates are criterion's elements/s (one element = one signature).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use lode_chain::sig::{verify_all, verify_all_batched, verify_each, SigCache, SigItem};
use sha2::{Digest, Sha256};

const N: usize = 2_000;

fn items() -> Vec<SigItem> {
    (0..N as u32)
        .map(|i| {
            let seed: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            let key = SigningKey::from_bytes(&seed);
            let msg: [u8; 32] = Sha256::digest(seed).into();
            SigItem {
                pubkey: key.verifying_key().to_bytes(),
                signature: key.sign(&msg).to_bytes(),
                msg,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let items = items();
    let keys: Vec<VerifyingKey> = items
        .iter()
        .map(|it| VerifyingKey::from_bytes(&it.pubkey).expect("bench keys are valid"))
        .collect();
    let sigs: Vec<Signature> = items.iter().map(|it| Signature::from_bytes(&it.signature)).collect();
    let msgs: Vec<&[u8]> = items.iter().map(|it| &it.msg[..]).collect();

    let mut g = c.benchmark_group("sig2000");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("single_strict", |b| b.iter(|| verify_each(&items)));
    g.bench_function("dalek_verify_batch", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&msgs, &sigs, &keys))
    });
    g.bench_function("verify_all_batched_exact", |b| b.iter(|| verify_all_batched(&items)));
    g.bench_function("verify_all", |b| b.iter(|| verify_all(&items)));
    // Block connect after the mempool verified the same signatures: every lookup hits.
    let mut cache = SigCache::new(N);
    assert_eq!(cache.verify_all(&items), Ok(()));
    g.bench_function("sig_cache_all_hits", |b| b.iter(|| cache.verify_all(&items)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
