//! The devnet's starting difficulty, calibrated once when the devnet is created (ADR 0010).
//!
//! ASERT anchors at block 1, whose target is the genesis bits (ADR 0003): a devnet whose
//! genesis bits are far easier than its miners' hash rate mines its first hundred blocks in
//! a rush while ASERT climbs. `up` therefore measures this machine's single-thread hash rate
//! with the miner's own kernel, and writes genesis bits worth `block_time` seconds of the
//! devnet's expected hash rate into the devnet's chain spec (`DIR/chain.toml`). Every node
//! of the devnet reads that one file, so consensus stays the same for all of them.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use lode_chain::params::ChainParams;
use lode_chain::pow::compact::encode_compact;
use lode_chain::pow::U256;
use lode_miner::{HeaderHasher, Target};

use super::error::DevnetError;

/// The chain spec file inside a devnet directory.
pub const CHAIN_SPEC_FILE: &str = "chain.toml";
/// How long the hash rate is measured: several short bursts, of which the fastest counts.
/// On a shared machine a burst can lose its core to another process; the fastest burst is
/// the rate the machine can give a miner thread (a busier machine then mines slower than
/// the target, never faster — ASERT takes it from there).
pub const MEASURE_FOR: Duration = Duration::from_millis(800);
/// Bursts of the measurement.
const BURSTS: u32 = 8;
/// Nonces per measured chunk (a few milliseconds of work).
const CHUNK: u32 = 1 << 16;

/// Hashes per second of one thread of the miner's kernel on this machine: the fastest of
/// [`BURSTS`] bursts over `measure_for`.
pub fn single_thread_rate(measure_for: Duration) -> f64 {
    (0..BURSTS)
        .map(|_| burst_rate(measure_for / BURSTS))
        .fold(0.0, f64::max)
}

fn burst_rate(measure_for: Duration) -> f64 {
    let hasher = HeaderHasher::new(&[0u8; lode_chain::header::HEADER_SIZE]);
    // A zero target is never met: every nonce of every chunk is hashed.
    let never = Target::from_le_bytes([0u8; 32]);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut hashed: u64 = 0;
    let mut first = 0u32;
    while started.elapsed() < measure_for {
        let last = first.wrapping_add(CHUNK - 1);
        let _ = hasher.search(first..=last, &never, &stop);
        hashed += u64::from(CHUNK);
        first = last.wrapping_add(1);
    }
    hashed as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

/// The threads that will really mine at once: one per mining node, at most one per core.
pub fn mining_threads(miners: usize, cores: usize) -> usize {
    miners.max(1).min(cores.max(1))
}

/// Compact bits whose target takes `rate × block_time` hashes on average, never easier than
/// the network's pow limit allows.
pub fn bits_for(rate: f64, block_time: u64, params: &ChainParams) -> u32 {
    let expected = (rate * block_time as f64).clamp(1.0, 1e18) as u64;
    let target = U256::MAX / U256::from(expected.max(1));
    let target = target.min(params.pow_limit());
    encode_compact(&target)
}

/// The devnet's chain spec with calibrated genesis bits.
pub fn calibrated_params(block_time: u64, rate: f64, threads: usize) -> ChainParams {
    let mut params = ChainParams::devnet_with_spacing(block_time);
    params.genesis_bits = bits_for(rate * threads as f64, block_time, &params);
    params
}

/// What a calibration measured and chose.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Hashes per second of one thread.
    pub rate: f64,
    /// Threads expected to mine at once.
    pub threads: usize,
    /// The genesis bits chosen.
    pub bits: u32,
}

/// Writes `dir/chain.toml` for a new devnet (an existing one is kept: the chain depends on
/// it) and returns its path, with the calibration when one was made now.
pub fn ensure_spec(
    dir: &Path,
    block_time: u64,
    miners: usize,
) -> Result<(std::path::PathBuf, Option<Calibration>), DevnetError> {
    let path = dir.join(CHAIN_SPEC_FILE);
    if path.exists() {
        return Ok((path, None));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rate = single_thread_rate(MEASURE_FOR);
    let threads = mining_threads(miners, cores);
    let params = calibrated_params(block_time, rate, threads);
    let text = params.to_toml_string().map_err(|e| DevnetError::Malformed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let header = format!(
        "# Written by `lode devnet up`: the devnet's chain spec. genesis_bits was calibrated from\n\
         # {rate:.0} hashes/s per thread × {threads} mining thread(s) × {block_time} s (ADR 0010).\n\n"
    );
    lode_chain::atomic_file::write_atomic(&path, format!("{header}{text}").as_bytes())
        .map_err(|e| DevnetError::io(&path, e))?;
    Ok((
        path,
        Some(Calibration {
            rate,
            threads,
            bits: params.genesis_bits,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_take_the_expected_work() {
        let p = ChainParams::devnet_with_spacing(2);
        let bits = bits_for(5_000_000.0, 2, &p);
        let target = lode_chain::pow::target_from_bits(bits).expect("valid bits");
        // Expected hashes = 2^256 / target ≈ 10 million (compact rounding is < 1 %).
        let expected = (U256::MAX / target).low_u64() as f64;
        assert!((expected / 10_000_000.0 - 1.0).abs() < 0.01, "{expected}");
        // A rate too low for the pow limit stays at the limit.
        assert_eq!(bits_for(0.1, 1, &p), encode_compact(&p.pow_limit()));
    }

    #[test]
    fn threads_are_bounded_by_cores() {
        assert_eq!(mining_threads(1, 2), 1);
        assert_eq!(mining_threads(3, 2), 2);
        assert_eq!(mining_threads(0, 8), 1);
    }

    #[test]
    fn the_spec_is_written_once_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, made) = ensure_spec(dir.path(), 2, 1).expect("written");
        assert!(made.is_some_and(|c| c.rate > 0.0 && c.threads == 1));
        let first = std::fs::read_to_string(&path).expect("readable");
        let params = ChainParams::from_toml_file(&path).expect("valid spec");
        assert_eq!(params.name, "devnet");
        assert_eq!(params.target_spacing, 2);
        assert!(
            lode_chain::pow::target_from_bits(params.genesis_bits).expect("bits") < ChainParams::devnet().pow_limit()
        );
        // A second call keeps the file: the chain was mined under it.
        assert!(ensure_spec(dir.path(), 2, 1).expect("kept").1.is_none());
        assert_eq!(std::fs::read_to_string(&path).expect("readable"), first);
    }
}
