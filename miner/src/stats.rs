//! Accounting the user can trust: hashes counted by the workers themselves, rates over a
//! sliding window of real samples, and blocks found, stale and rewarded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Width of the hash-rate window.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Counters shared by the workers and readers.
#[derive(Debug)]
pub struct MinerStats {
    /// Nonces tried, per worker thread (each worker adds its own as it goes).
    hashes: Vec<AtomicU64>,
    blocks_found: AtomicU64,
    blocks_stale: AtomicU64,
    rewards: AtomicU64,
    samples: Mutex<VecDeque<(Instant, Vec<u64>)>>,
}

/// A reading of the counters.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Hashes per second over the window, all threads.
    pub hash_rate: f64,
    /// Hashes per second over the window, per thread.
    pub per_thread: Vec<f64>,
    /// Hashes tried since start.
    pub total_hashes: u64,
    /// Blocks this miner found.
    pub blocks_found: u64,
    /// Found blocks that did not stay on the best chain (orphaned or refused).
    pub blocks_stale: u64,
    /// Coinbase value of found blocks, base units.
    pub rewards: u64,
    /// Seconds the rate was measured over (0 before a second reading).
    pub window_secs: f64,
}

impl MinerStats {
    /// Counters for `threads` workers.
    pub fn new(threads: usize) -> MinerStats {
        MinerStats {
            hashes: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            blocks_found: AtomicU64::new(0),
            blocks_stale: AtomicU64::new(0),
            rewards: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// The counter a worker adds its tried nonces to.
    pub fn worker_counter(&self, worker: usize) -> Option<&AtomicU64> {
        self.hashes.get(worker)
    }

    /// Each worker's hash counter now (for a history kept elsewhere).
    pub fn counts(&self) -> Vec<u64> {
        self.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect()
    }

    /// Records a block found by this miner and its reward.
    pub fn record_found(&self, reward: u64) {
        self.blocks_found.fetch_add(1, Ordering::Relaxed);
        self.rewards.fetch_add(reward, Ordering::Relaxed);
    }

    /// Records that a found block left (or never joined) the best chain, taking back its reward.
    pub fn record_stale(&self, reward: u64) {
        self.blocks_stale.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .rewards
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| Some(r.saturating_sub(reward)));
    }

    /// Reads the counters; the rate is measured between the oldest sample in the window and
    /// now. Call it periodically (the node does, once a second) to keep the window filled.
    pub fn snapshot(&self) -> StatsSnapshot {
        let now = Instant::now();
        let counts: Vec<u64> = self.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, counts.clone()));
        // Keep one sample at or beyond the window's start, so the window stays full.
        while samples.len() > 2
            && samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
        {
            samples.pop_front();
        }
        let (t0, c0) = samples.front().cloned().unwrap_or((now, counts.clone()));
        drop(samples);
        let secs = now.duration_since(t0).as_secs_f64();
        let per_thread: Vec<f64> = counts
            .iter()
            .zip(c0.iter())
            .map(|(c, o)| {
                if secs > 0.0 {
                    c.saturating_sub(*o) as f64 / secs
                } else {
                    0.0
                }
            })
            .collect();
        StatsSnapshot {
            hash_rate: per_thread.iter().sum(),
            per_thread,
            total_hashes: counts.iter().sum(),
            blocks_found: self.blocks_found.load(Ordering::Relaxed),
            blocks_stale: self.blocks_stale.load(Ordering::Relaxed),
            rewards: self.rewards.load(Ordering::Relaxed),
            window_secs: secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_comes_from_counted_hashes() {
        let s = MinerStats::new(2);
        let first = s.snapshot();
        assert_eq!(first.hash_rate, 0.0);
        s.worker_counter(0)
            .expect("worker 0")
            .fetch_add(1_000, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        let second = s.snapshot();
        assert_eq!(second.total_hashes, 1_000);
        assert!(second.hash_rate > 0.0 && second.per_thread[1] == 0.0);
        // The rate is counted hashes over the measured window, nothing else.
        let expected = 1_000.0 / second.window_secs;
        assert!((second.hash_rate - expected).abs() < 1e-6 * expected);
    }

    #[test]
    fn stale_blocks_take_back_rewards() {
        let s = MinerStats::new(1);
        s.record_found(50);
        s.record_found(50);
        s.record_stale(50);
        let snap = s.snapshot();
        assert_eq!((snap.blocks_found, snap.blocks_stale, snap.rewards), (2, 1, 50));
    }
}
