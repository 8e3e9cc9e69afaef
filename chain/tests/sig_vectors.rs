//! Known-answer and equivalence tests for `lode_chain::sig`.
//!
//! The consensus rule is ed25519-dalek's `verify_strict`; these tests pin our verdict on every
//! Wycheproof and CCTV vector, and require the batched path to give the same verdict as single
//! strict checks on every vector, alone and mixed into batches of valid signatures.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use lode_chain::sig::{
    verify, verify_all, verify_all_batched, verify_all_parallel, verify_each, SigCache, SigError, SigItem,
    SIG_CACHE_WAYS,
};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/ed25519")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(data_dir().join(name)).expect("test data present");
    serde_json::from_str(&text).expect("valid json")
}

fn arr<const N: usize>(hex_str: &str) -> Option<[u8; N]> {
    hex::decode(hex_str).ok()?.try_into().ok()
}

/// A valid signature over a 32-byte digest, deterministic in `i`.
fn valid_item(i: u32) -> SigItem {
    let seed: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
    let key = SigningKey::from_bytes(&seed);
    let msg: [u8; 32] = Sha256::digest(seed).into();
    SigItem {
        pubkey: key.verifying_key().to_bytes(),
        signature: key.sign(&msg).to_bytes(),
        msg,
    }
}

fn valid_vec_item(i: u32) -> SigItem<Vec<u8>> {
    let it = valid_item(i);
    SigItem {
        pubkey: it.pubkey,
        signature: it.signature,
        msg: it.msg.to_vec(),
    }
}

/// dalek's own batch verifier on one item: the naive fast path we must not trust.
fn dalek_batch(items: &[SigItem<Vec<u8>>]) -> bool {
    let keys: Option<Vec<VerifyingKey>> = items
        .iter()
        .map(|it| VerifyingKey::from_bytes(&it.pubkey).ok())
        .collect();
    let Some(keys) = keys else { return false };
    let sigs: Vec<Signature> = items.iter().map(|it| Signature::from_bytes(&it.signature)).collect();
    let msgs: Vec<&[u8]> = items.iter().map(|it| it.msg.as_slice()).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

/// Worker pools of 1 and 4 threads (more than this machine's cores, so items really interleave):
/// the parallel path must give the same verdict and index in both.
fn pools() -> &'static [rayon::ThreadPool; 2] {
    static POOLS: std::sync::OnceLock<[rayon::ThreadPool; 2]> = std::sync::OnceLock::new();
    POOLS.get_or_init(|| {
        [1, 4].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool")
        })
    })
}

/// `verify_all_parallel` on 1 and on 4 workers, with and without a cache holding nothing
/// relevant; all four answers must agree, and the one returned is checked by the caller.
fn parallel<M: AsRef<[u8]> + Sync>(items: &[SigItem<M>]) -> Result<(), usize> {
    let empty = SigCache::new(16);
    let answers: Vec<Result<(), usize>> = pools()
        .iter()
        .flat_map(|pool| {
            [
                pool.install(|| verify_all_parallel(items, None)),
                pool.install(|| verify_all_parallel(items, Some(&empty))),
            ]
        })
        .collect();
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "pool sizes disagree: {answers:?}"
    );
    answers[0]
}

/// Asserts every path agrees with `verify` on `case`, alone and at several positions in batches
/// of valid signatures (big enough that the batched path really batches).
fn assert_paths_agree(case: &SigItem<Vec<u8>>, label: &str) {
    let ok = verify(&case.pubkey, &case.signature, &case.msg).is_ok();
    let expect = |pos: usize| if ok { Ok(()) } else { Err(pos) };
    let single = std::slice::from_ref(case);
    assert_eq!(verify_all(single), expect(0), "{label}: verify_all alone");
    assert_eq!(verify_each(single), expect(0), "{label}: verify_each alone");
    assert_eq!(verify_all_batched(single), expect(0), "{label}: batched alone");
    assert_eq!(parallel(single), expect(0), "{label}: parallel alone");
    for (before, after) in [(0usize, 5usize), (3, 3), (6, 0)] {
        let mut batch: Vec<_> = (0..before as u32).map(valid_vec_item).collect();
        batch.push(case.clone());
        batch.extend((100..100 + after as u32).map(valid_vec_item));
        assert_eq!(
            verify_all_batched(&batch),
            expect(before),
            "{label}: batched at {before}"
        );
        assert_eq!(verify_all(&batch), expect(before), "{label}: verify_all at {before}");
        assert_eq!(parallel(&batch), expect(before), "{label}: parallel at {before}");
        // Two copies: the first must be named.
        let mut twice = batch.clone();
        twice.push(case.clone());
        assert_eq!(verify_all_batched(&twice), expect(before), "{label}: batched twice");
        assert_eq!(parallel(&twice), expect(before), "{label}: parallel twice");
    }
}

struct Wycheproof {
    tc_id: u64,
    valid: bool,
    /// `None` when the signature is not 64 bytes: it cannot even be carried in a transaction.
    item: Option<SigItem<Vec<u8>>>,
}

fn wycheproof() -> Vec<Wycheproof> {
    let v = json("wycheproof_ed25519_test.json");
    let mut out = Vec::new();
    for group in v["testGroups"].as_array().expect("groups") {
        let pk: [u8; 32] = arr(group["publicKey"]["pk"].as_str().expect("pk")).expect("32-byte pk");
        for t in group["tests"].as_array().expect("tests") {
            let msg = hex::decode(t["msg"].as_str().expect("msg")).expect("hex msg");
            let item = arr::<64>(t["sig"].as_str().expect("sig")).map(|signature| SigItem {
                pubkey: pk,
                signature,
                msg,
            });
            out.push(Wycheproof {
                tc_id: t["tcId"].as_u64().expect("tcId"),
                valid: t["result"] == "valid",
                item,
            });
        }
    }
    out
}

#[test]
fn wycheproof_verdicts_match_expected_exactly() {
    let cases = wycheproof();
    assert_eq!(cases.len(), 151);
    assert_eq!(cases.iter().filter(|c| c.valid).count(), 88);
    let mut disagreements = Vec::new();
    for c in &cases {
        let ours = c
            .item
            .as_ref()
            .is_some_and(|it| verify(&it.pubkey, &it.signature, &it.msg).is_ok());
        if ours != c.valid {
            disagreements.push(c.tc_id);
        }
    }
    // verify_strict gives exactly Wycheproof's verdict on all 151 cases (no "valid" case is
    // rejected; the v1 file has no acceptable/legacy results).
    assert_eq!(disagreements, Vec::<u64>::new());
    // Signatures of the wrong length are all expected invalid; they cannot reach `verify`.
    let wrong_len: Vec<u64> = cases.iter().filter(|c| c.item.is_none()).map(|c| c.tc_id).collect();
    assert_eq!(wrong_len.len(), 12);
    assert!(cases.iter().filter(|c| c.item.is_none()).all(|c| !c.valid));
}

#[test]
fn wycheproof_batched_path_agrees() {
    for c in wycheproof() {
        if let Some(item) = &c.item {
            assert_paths_agree(item, &format!("wycheproof tcId {}", c.tc_id));
        }
    }
}

struct Cctv {
    number: u64,
    flags: Vec<String>,
    item: SigItem<Vec<u8>>,
}

fn cctv() -> Vec<Cctv> {
    let v = json("cctv_ed25519vectors.json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| Cctv {
            number: c["number"].as_u64().expect("number"),
            flags: c["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            item: SigItem {
                pubkey: arr(c["key"].as_str().expect("key")).expect("32-byte key"),
                signature: arr(c["sig"].as_str().expect("sig")).expect("64-byte sig"),
                msg: c["msg"].as_str().expect("msg").as_bytes().to_vec(),
            },
        })
        .collect()
}

/// The CCTV cases `verify_strict` accepts (all others are rejected): 42 of the 43 have a torsion
/// component in A and/or R that cancels in the cofactorless equation.
const CCTV_STRICT_ACCEPTS: &[u64] = &[
    7, 29, 50, 117, 139, 161, 182, 249, 305, 411, 425, 438, 465, 473, 481, 489, 497, 511, 525, 538, 565, 573, 581, 589,
    597, 611, 625, 638, 665, 673, 681, 689, 697, 711, 725, 738, 765, 773, 781, 789, 797, 832, 899,
];
/// CCTV cases dalek's `verify_batch` accepts but strict rejects (see the divergence test).
const CCTV_NAIVE_FALSE_ACCEPTS: &[u64] = &[
    2, 12, 17, 23, 25, 26, 30, 31, 39, 45, 52, 59, 61, 65, 66, 73, 81, 86, 90, 93, 95, 101, 108, 110, 118, 119, 126,
    130, 131, 136, 137, 138, 141, 144, 145, 146, 147, 149, 152, 154, 155, 160, 174, 179, 180, 181, 189, 198, 203, 208,
    218, 222, 223, 227, 228, 232, 233, 238, 242, 256, 258, 262, 265, 268, 272, 275, 276, 280, 283, 287, 288, 289, 296,
    300, 302, 303, 304, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 318, 319, 321, 322, 324, 325, 326, 327,
    328, 329, 330, 331, 332, 337, 345, 353, 359, 362, 365, 366, 376, 380, 385, 388, 389, 391, 392, 393, 397, 402, 424,
    439, 449, 453, 458, 466, 476, 495, 500, 508, 514, 518, 519, 520, 553, 570, 571, 586, 593, 600, 605, 621, 632, 637,
    659, 660, 663, 675, 707, 715, 721, 724, 732, 733, 739, 774, 780, 795, 807, 809, 810, 815, 823, 825, 826, 829, 831,
    834, 835, 837, 838, 840, 841, 846, 847, 853, 854, 855, 868, 869, 870, 872, 888, 892, 893, 896, 900, 901, 902, 903,
    904, 905, 906, 908,
];
/// CCTV cases dalek's `verify_batch` rejects but strict accepts.
const CCTV_NAIVE_FALSE_REJECTS: &[u64] = &[
    7, 29, 117, 139, 161, 182, 249, 411, 425, 438, 465, 473, 481, 489, 497, 511, 525, 538, 565, 573, 589, 597, 611,
    625, 638, 665, 673, 681, 689, 697, 711, 725, 738, 765, 781, 789, 797, 832, 899,
];

#[test]
fn cctv_strict_verdicts() {
    let cases = cctv();
    assert_eq!(cases.len(), 914);
    let accepted: Vec<u64> = cases
        .iter()
        .filter(|c| verify(&c.item.pubkey, &c.item.signature, &c.item.msg).is_ok())
        .map(|c| c.number)
        .collect();
    assert_eq!(accepted, CCTV_STRICT_ACCEPTS);
    for c in &cases {
        let has = |f: &str| c.flags.iter().any(|x| x == f);
        if has("low_order_A") || has("low_order_R") || has("non_canonical_R") {
            assert!(
                !CCTV_STRICT_ACCEPTS.contains(&c.number),
                "case {} must be rejected",
                c.number
            );
        }
    }
}

#[test]
fn cctv_batched_path_agrees() {
    for c in cctv() {
        assert_paths_agree(&c.item, &format!("cctv {}", c.number));
    }
}

#[test]
fn cctv_whole_file_batches() {
    let cases = cctv();
    let accepted: Vec<SigItem<Vec<u8>>> = cases
        .iter()
        .filter(|c| CCTV_STRICT_ACCEPTS.contains(&c.number))
        .map(|c| c.item.clone())
        .collect();
    let mut mixed: Vec<_> = (0..20).map(valid_vec_item).collect();
    mixed.extend(accepted);
    assert_eq!(verify_all_batched(&mixed), Ok(()));
    assert_eq!(parallel(&mixed), Ok(()));
    let all: Vec<_> = cases.iter().map(|c| c.item.clone()).collect();
    assert_eq!(verify_all_batched(&all), verify_each(&all));
    assert_eq!(parallel(&all), verify_each(&all));
    // Every rejected case behind many valid ones, each alone and all of them in one slice: the
    // parallel path names the first rejected one however the slice is split among workers.
    let mut long: Vec<_> = (0..200).map(valid_vec_item).collect();
    long.extend(all.iter().cloned());
    assert_eq!(parallel(&long), verify_each(&long));
    long.reverse();
    assert_eq!(parallel(&long), verify_each(&long));
}

/// Records where dalek's `verify_batch` (cofactorless, random z) disagrees with strict on a single
/// CCTV case, mixed with three valid signatures. Its z are derived deterministically from the
/// inputs, so the list is reproducible; it is what a naive batch fast path would get wrong.
#[test]
fn cctv_naive_batch_divergence_is_recorded() {
    let mut accepts_but_strict_rejects = Vec::new();
    let mut rejects_but_strict_accepts = Vec::new();
    for c in cctv() {
        let strict = verify(&c.item.pubkey, &c.item.signature, &c.item.msg).is_ok();
        let mut batch: Vec<_> = (0..3).map(valid_vec_item).collect();
        batch.push(c.item.clone());
        let naive = dalek_batch(&batch);
        if naive && !strict {
            accepts_but_strict_rejects.push(c.number);
        }
        if !naive && strict {
            rejects_but_strict_accepts.push(c.number);
        }
    }
    assert_eq!(accepts_but_strict_rejects, CCTV_NAIVE_FALSE_ACCEPTS);
    assert_eq!(rejects_but_strict_accepts, CCTV_NAIVE_FALSE_REJECTS);
    // Most of those are caught by the cheap encoding/small-order prefilters; these are not: only
    // torsion in A or R separates them, which is what the per-item torsion check is for.
    let torsion_only: Vec<u64> = cctv()
        .iter()
        .filter(|c| CCTV_NAIVE_FALSE_ACCEPTS.contains(&c.number))
        .filter(|c| {
            !c.flags
                .iter()
                .any(|f| ["low_order_A", "low_order_R", "non_canonical_R"].contains(&f.as_str()))
        })
        .map(|c| c.number)
        .collect();
    assert_eq!(
        torsion_only,
        [138, 160, 238, 362, 388, 424, 439, 724, 739, 780, 807, 888]
    );
}

#[test]
fn dalek_testvectors_sign_and_verify() {
    let text = std::fs::read_to_string(data_dir().join("ed25519_sign_input_first128.txt")).expect("file");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split(':').collect();
        let sk_pk = hex::decode(parts[0]).expect("hex");
        let pk: [u8; 32] = arr(parts[1]).expect("pk");
        let msg = hex::decode(parts[2]).expect("hex");
        let sig_msg = hex::decode(parts[3]).expect("hex");
        let secret: [u8; 32] = sk_pk[..32].try_into().expect("32");
        let expected: [u8; 64] = sig_msg[..64].try_into().expect("64");
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(key.verifying_key().to_bytes(), pk, "line {n}");
        assert_eq!(key.sign(&msg).to_bytes(), expected, "line {n}");
        assert_eq!(verify(&pk, &expected, &msg), Ok(()), "line {n}");
        let mut bad = msg.clone();
        bad.push(0);
        assert_eq!(verify(&pk, &expected, &bad), Err(SigError::InvalidSignature));
        n += 1;
    }
    assert_eq!(n, 128);
}

#[test]
fn error_reasons() {
    let it = valid_item(1);
    // Small y values: some are not on the curve at all.
    let results: Vec<_> = (0u8..=255)
        .map(|b| {
            let mut key = [0u8; 32];
            key[0] = b;
            verify(&key, &it.signature, &it.msg)
        })
        .collect();
    assert!(results.iter().all(Result::is_err));
    assert!(results.contains(&Err(SigError::BadPublicKey)));
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(verify(&identity, &it.signature, &it.msg), Err(SigError::WeakPublicKey));
    let mut high_s = it.signature;
    high_s[63] = 0xff;
    assert_eq!(verify(&it.pubkey, &high_s, &it.msg), Err(SigError::NonCanonicalScalar));
    assert_eq!(
        verify(&it.pubkey, &it.signature, &[0u8; 32]),
        Err(SigError::InvalidSignature)
    );
    assert_eq!(SigError::BadPublicKey.to_string(), "bad public key encoding");
    assert_eq!(SigError::InvalidSignature.to_string(), "invalid signature");
}

#[test]
fn sig_cache_skips_known_and_is_bounded() {
    let items: Vec<SigItem> = (0..10).map(valid_item).collect();
    // One set of eight slots.
    let mut cache = SigCache::new(SIG_CACHE_WAYS);
    assert_eq!(cache.capacity(), SIG_CACHE_WAYS);
    assert_eq!(cache.verify_all(&items[..4]), Ok(()));
    assert_eq!(cache.len(), 4);
    assert!(items[..4].iter().all(|it| cache.contains(it)));
    // A failing batch caches nothing and reports the index in the caller's slice.
    let mut bad = items[4..8].to_vec();
    bad[2].msg[0] ^= 1;
    let mut mixed = items[..4].to_vec();
    mixed.extend(bad);
    assert_eq!(cache.verify_all(&mixed), Err(6));
    assert_eq!(cache.len(), 4);
    // Bounded: oldest entries go first.
    assert_eq!(cache.verify_all(&items), Ok(()));
    assert_eq!(cache.len(), 8);
    assert!(!cache.contains(&items[0]) && !cache.contains(&items[1]));
    assert!(items[2..].iter().all(|it| cache.contains(it)));
    // A different signature over the same key and message is a different entry.
    let mut other = items[9];
    other.signature[0] ^= 1;
    assert!(!cache.contains(&other));
    assert_eq!(SigCache::new(0).verify_all(&items), Ok(()));
    // The parallel path consults the cache like the sequential one and names the same item.
    assert_eq!(verify_all_parallel(&mixed, Some(&cache)), Err(6));
    assert_eq!(cache.verify_all_uncached(&mixed), Err(6));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Batches of valid signatures with a few corrupted at random positions: every path returns
    /// exactly the first corrupted index.
    #[test]
    fn first_failing_index(n in 1usize..40, bad in proptest::collection::vec((0usize..40, 0usize..64, 0usize..3), 0..4)) {
        let mut items: Vec<SigItem> = (0..n as u32).map(valid_item).collect();
        let mut first = None::<usize>;
        for (pos, byte, what) in bad {
            let pos = pos % n;
            let it = &mut items[pos];
            match what {
                0 => it.signature[byte] ^= 0x01,
                1 => it.msg[byte % 32] ^= 0x80,
                _ => it.pubkey = valid_item(1000 + pos as u32).pubkey,
            }
            first = Some(first.map_or(pos, |f| f.min(pos)));
        }
        let expected = first.map_or(Ok(()), Err);
        prop_assert_eq!(verify_each(&items), expected);
        prop_assert_eq!(verify_all(&items), expected);
        prop_assert_eq!(verify_all_batched(&items), expected);
        prop_assert_eq!(parallel(&items), expected);
    }
}
