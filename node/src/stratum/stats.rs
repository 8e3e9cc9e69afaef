//! Per-worker and server-wide share statistics, bounded: at most [`MAX_WORKERS`] workers
//! are tracked (the least recently seen is forgotten first) and each keeps one hour of
//! per-minute buckets.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Workers tracked at most.
pub const MAX_WORKERS: usize = 4_096;
const BUCKETS: usize = 60;

/// Why a share (or request) was refused: a fixed set, so metric labels stay bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Job not found or from before the tip.
    Stale,
    /// Sent before.
    Duplicate,
    /// Hash above the share target.
    LowDifficulty,
    /// ntime outside the window.
    BadNtime,
    /// Version bits outside the negotiated mask.
    BadVersion,
    /// Worker not authorized.
    Unauthorized,
    /// Not subscribed.
    NotSubscribed,
    /// Malformed message.
    Malformed,
}

impl Reject {
    /// Every reason.
    pub const ALL: [Reject; 8] = [
        Reject::Stale,
        Reject::Duplicate,
        Reject::LowDifficulty,
        Reject::BadNtime,
        Reject::BadVersion,
        Reject::Unauthorized,
        Reject::NotSubscribed,
        Reject::Malformed,
    ];

    /// Its label.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Stale => "stale",
            Reject::Duplicate => "duplicate",
            Reject::LowDifficulty => "low_difficulty",
            Reject::BadNtime => "bad_ntime",
            Reject::BadVersion => "bad_version",
            Reject::Unauthorized => "unauthorized",
            Reject::NotSubscribed => "not_subscribed",
            Reject::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One worker's figures.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    /// Accepted shares.
    pub accepted: u64,
    /// Σ difficulty of accepted shares.
    pub accepted_diff: f64,
    /// Refused shares by [`Reject`] index.
    pub rejected: [u64; 8],
    /// Unix seconds of the last accepted share.
    pub last_share: u64,
    /// Best share difficulty achieved.
    pub best_share: f64,
    /// Blocks found.
    pub blocks: u64,
    buckets: VecDeque<(u64, f64)>,
}

impl WorkerStats {
    fn add(&mut self, now: u64, diff: f64) {
        let minute = now / 60;
        match self.buckets.back_mut() {
            Some((m, d)) if *m == minute => *d += diff,
            _ => {
                self.buckets.push_back((minute, diff));
                if self.buckets.len() > BUCKETS {
                    self.buckets.pop_front();
                }
            }
        }
    }

    /// Hash rate over the last `secs` (Σ accepted difficulty × 2^32 / seconds), from
    /// whole-minute buckets.
    pub fn hashrate(&self, now: u64, secs: u64) -> f64 {
        let minutes = secs.div_ceil(60).max(1);
        let from = (now / 60 + 1).saturating_sub(minutes);
        let sum: f64 = self.buckets.iter().filter(|(m, _)| *m >= from).map(|(_, d)| d).sum();
        // The span covered: the whole minutes before this one plus the part of this one.
        let span = ((minutes - 1) * 60 + now % 60 + 1) as f64;
        sum * 4_294_967_296.0 / span
    }

    /// Refusals by reason name.
    pub fn rejected_by_reason(&self) -> Vec<(&'static str, u64)> {
        Reject::ALL
            .iter()
            .map(|r| (r.name(), self.rejected[r.index()]))
            .collect()
    }
}

/// Server-wide counters and the per-worker table.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    workers: HashMap<String, WorkerStats>,
    accepted: u64,
    rejected: [u64; 8],
    blocks: u64,
    blocks_rejected: u64,
}

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn worker<'a>(inner: &'a mut Inner, name: &str) -> &'a mut WorkerStats {
        if !inner.workers.contains_key(name) && inner.workers.len() >= MAX_WORKERS {
            if let Some(oldest) = inner
                .workers
                .iter()
                .min_by_key(|(_, w)| w.last_share)
                .map(|(k, _)| k.clone())
            {
                inner.workers.remove(&oldest);
            }
        }
        inner.workers.entry(name.to_string()).or_default()
    }

    /// An accepted share of difficulty `diff` (achieving `actual`).
    pub fn accepted(&self, worker: &str, now: u64, diff: f64, actual: f64) {
        self.with(|i| {
            i.accepted += 1;
            let w = Self::worker(i, worker);
            w.accepted += 1;
            w.accepted_diff += diff;
            w.last_share = now;
            if actual > w.best_share {
                w.best_share = actual;
            }
            w.add(now, diff);
        });
    }

    /// A refused share or request.
    pub fn rejected(&self, worker: Option<&str>, reason: Reject) {
        self.with(|i| {
            i.rejected[reason.index()] += 1;
            if let Some(name) = worker {
                Self::worker(i, name).rejected[reason.index()] += 1;
            }
        });
    }

    /// A block found (accepted by the chain or not).
    pub fn block(&self, worker: &str, accepted: bool) {
        self.with(|i| {
            if accepted {
                i.blocks += 1;
                Self::worker(i, worker).blocks += 1;
            } else {
                i.blocks_rejected += 1;
            }
        });
    }

    /// (accepted, rejected by reason, blocks found, blocks the chain refused).
    pub fn totals(&self) -> (u64, Vec<(&'static str, u64)>, u64, u64) {
        self.with(|i| {
            (
                i.accepted,
                Reject::ALL.iter().map(|r| (r.name(), i.rejected[r.index()])).collect(),
                i.blocks,
                i.blocks_rejected,
            )
        })
    }

    /// A copy of every worker's figures.
    pub fn workers(&self) -> Vec<(String, WorkerStats)> {
        self.with(|i| {
            let mut v: Vec<_> = i.workers.iter().map(|(k, w)| (k.clone(), w.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashrate_vector_of_the_notes() {
        // 60 shares × 16384 in 600 s → 7.0369 TH/s.
        let mut w = WorkerStats::default();
        for i in 0..60u64 {
            w.add(6_000 + i * 10, 16_384.0);
        }
        let rate = w.hashrate(6_600 - 1, 600);
        assert!((rate / 1e12 - 7.0369).abs() < 0.01, "{rate}");
    }
}
