//! The nonce-search kernels against each other, against `BlockHeader::hash` and against real
//! Bitcoin headers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lode_chain::pow::{check_proof_of_work, target_from_bits};
use lode_chain::{BlockHeader, Hash256};
use lode_miner::{HeaderHasher, Kernel, SearchOutcome, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn kernels() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|k| k.is_supported()).collect()
}

fn random_header(rng: &mut StdRng) -> [u8; 80] {
    let mut bytes = [0u8; 80];
    rng.fill(&mut bytes[..]);
    bytes
}

fn with_nonce(header: &[u8; 80], nonce: u32) -> BlockHeader {
    let mut bytes = *header;
    bytes[76..].copy_from_slice(&nonce.to_le_bytes());
    BlockHeader::from_bytes(&bytes).expect("80 bytes decode")
}

fn bitcoin_headers() -> Vec<BlockHeader> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/bitcoin");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("bitcoin test data directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("btc_headers_") && name.ends_with(".hex")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no btc_headers_*.hex in {}", dir.display());
    let mut headers = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable header file");
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert_eq!(line.len(), 160, "{}: line is not one 80-byte header", file.display());
            let bytes = hex::decode(line).expect("hex header");
            headers.push(BlockHeader::from_bytes(&bytes).expect("80-byte header"));
        }
    }
    headers
}

#[test]
fn the_best_kernel_uses_sha_ni_when_the_cpu_has_it() {
    let has_sha = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" sha_ni"));
    if has_sha {
        assert!(
            lode_miner::kernel_name().starts_with("sha-ni"),
            "{}",
            lode_miner::kernel_name()
        );
    }
    let hasher = HeaderHasher::new(&[0; 80]);
    assert_eq!(hasher.kernel(), Kernel::best());
    assert_eq!(hasher.kernel_name(), lode_miner::kernel_name());
}

#[test]
fn every_kernel_matches_block_header_hash_on_random_headers() {
    let mut rng = StdRng::seed_from_u64(0x10de);
    let kernels = kernels();
    for _ in 0..2_000 {
        let header = random_header(&mut rng);
        let hashers: Vec<HeaderHasher> = kernels
            .iter()
            .map(|&k| HeaderHasher::with_kernel(&header, k).expect("supported"))
            .collect();
        // Edge nonces as well as random ones, since the nonce is byte-swapped into the block.
        for nonce in [0, 1, u32::MAX, rng.gen(), rng.gen(), rng.gen()] {
            let expected = with_nonce(&header, nonce).hash().0;
            for hasher in &hashers {
                assert_eq!(hasher.hash(nonce), expected, "{} nonce {nonce}", hasher.kernel_name());
            }
        }
    }
}

#[test]
fn every_kernel_reproduces_real_bitcoin_headers() {
    let pow_limit = target_from_bits(0x1d00ffff).expect("bitcoin pow limit");
    let headers = bitcoin_headers();
    assert!(headers.len() > 10_000);
    for kernel in kernels() {
        for header in &headers {
            let hasher = HeaderHasher::with_kernel(&header.to_bytes(), kernel).expect("supported");
            let hash = Hash256(hasher.hash(header.nonce));
            assert_eq!(hash, header.hash(), "{}", kernel.name());
            check_proof_of_work(&hash, header.bits, &pow_limit).expect("real header meets its bits");
            let target = Target::from_bits(header.bits).expect("valid bits");
            assert!(target.is_met_by(&hash.0));
        }
    }
}

/// The first nonce in `range` meeting `target`, by hashing every one with `BlockHeader::hash`.
fn brute_force(header: &[u8; 80], range: std::ops::RangeInclusive<u32>, target: &Target) -> Option<u32> {
    range
        .into_iter()
        .find(|&n| target.is_met_by(&with_nonce(header, n).hash().0))
}

#[test]
fn search_finds_the_first_nonce_like_brute_force() {
    let mut rng = StdRng::seed_from_u64(7);
    let stop = AtomicBool::new(false);
    for round in 0..40 {
        let header = random_header(&mut rng);
        // Easy targets so that every range holds several solutions, and some top-word ties.
        let mut le = [0xffu8; 32];
        le[31] = if round % 2 == 0 { 0x00 } else { 0x03 };
        le[30] = rng.gen();
        let target = Target::from_le_bytes(le);
        let start: u32 = if round % 5 == 0 { u32::MAX - 700 } else { rng.gen() };
        let end = start.saturating_add(rng.gen_range(0..1_500));
        let expected = brute_force(&header, start..=end, &target);
        for kernel in kernels() {
            let hasher = HeaderHasher::with_kernel(&header, kernel).expect("supported");
            let outcome = hasher.search(start..=end, &target, &stop);
            match expected {
                Some(n) => assert_eq!(outcome, SearchOutcome::Found(n), "{}", kernel.name()),
                None => assert_eq!(outcome, SearchOutcome::Exhausted, "{}", kernel.name()),
            }
        }
    }
}

#[test]
fn search_finds_real_bitcoin_nonces() {
    let headers = bitcoin_headers();
    let stop = AtomicBool::new(false);
    // Bitcoin's genesis, and a few later blocks.
    for header in [headers[0], headers[10_000], headers[headers.len() - 1]] {
        let target = Target::from_bits(header.bits).expect("valid bits");
        let start = header.nonce.saturating_sub(300_000);
        let end = header.nonce.saturating_add(1_000);
        for kernel in kernels() {
            let hasher = HeaderHasher::with_kernel(&header.to_bytes(), kernel).expect("supported");
            let outcome = hasher.search(start..=end, &target, &stop);
            let SearchOutcome::Found(nonce) = outcome else {
                panic!("{}: {outcome:?} for nonce {}", kernel.name(), header.nonce);
            };
            // An earlier solution would be valid too (never seen on real headers).
            assert!(nonce <= header.nonce);
            assert!(target.is_met_by(&hasher.hash(nonce)));
        }
    }
}

#[test]
fn an_empty_or_impossible_range_is_exhausted_after_counting_every_nonce() {
    let stop = AtomicBool::new(false);
    let never = Target::from_le_bytes([0; 32]);
    let hasher = HeaderHasher::new(&[1; 80]);
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 5..=4;
    assert_eq!(hasher.search(empty, &never, &stop), SearchOutcome::Exhausted);
    let progress = AtomicU64::new(0);
    let outcome = hasher.search_with_progress(u32::MAX - 20_000..=u32::MAX, &never, &stop, &progress);
    assert_eq!(outcome, SearchOutcome::Exhausted);
    assert_eq!(progress.load(Ordering::Relaxed), 20_001);
}

#[test]
fn a_raised_stop_flag_stops_before_hashing() {
    let stop = AtomicBool::new(true);
    let hasher = HeaderHasher::new(&[2; 80]);
    let everything = Target::from_le_bytes([0xff; 32]);
    assert_eq!(
        hasher.search(10..=20, &everything, &stop),
        SearchOutcome::Stopped { next: 10 }
    );
}

#[test]
fn raising_the_stop_flag_aborts_a_running_search_quickly() {
    let never = Target::from_le_bytes([0; 32]);
    for kernel in kernels() {
        let hasher = HeaderHasher::with_kernel(&[3; 80], kernel).expect("supported");
        let stop = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        std::thread::scope(|s| {
            let search = s.spawn(|| {
                let outcome = hasher.search_with_progress(0..=u32::MAX, &never, &stop, &progress);
                (outcome, Instant::now())
            });
            // Wait (with a deadline) until the search is under way, then stop it.
            let deadline = Instant::now() + Duration::from_secs(30);
            while progress.load(Ordering::Relaxed) == 0 {
                assert!(Instant::now() < deadline, "search never reported progress");
                std::thread::yield_now();
            }
            let raised = Instant::now();
            stop.store(true, Ordering::Relaxed);
            let (outcome, ended) = search.join().expect("search thread");
            let SearchOutcome::Stopped { next } = outcome else {
                panic!("{}: {outcome:?}", kernel.name());
            };
            assert!(u64::from(next) >= progress.load(Ordering::Relaxed));
            // The kernel stops within one chunk (≤ a few ms); the margin is for a loaded machine.
            let latency = ended.saturating_duration_since(raised);
            assert!(
                latency < Duration::from_millis(250),
                "{}: stopped after {latency:?}",
                kernel.name()
            );
        });
    }
}

#[test]
fn a_target_is_met_up_to_and_including_itself() {
    let target = Target::from_bits(0x1d00ffff).expect("bitcoin's limit");
    let mut at = [0u8; 32];
    at[26] = 0xff;
    at[27] = 0xff;
    assert_eq!(target, Target::from_le_bytes(at));
    assert!(target.is_met_by(&at));
    let mut above = at;
    above[0] = 1;
    assert!(!target.is_met_by(&above));
    let mut below = at;
    below[26] = 0xfe;
    below[0] = 0xff;
    assert!(target.is_met_by(&below));
    assert_eq!(Target::from_bits(0x0100_0000), None);
}
