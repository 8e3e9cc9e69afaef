//! Per-connection variable difficulty, DATUM/public-pool style: aim at one share per
//! `interval`, judge the rate over a few intervals, and move by powers of two only when off
//! by more than 2× (no oscillation), clamped between the floor and the network difficulty.

use std::time::{Duration, Instant};

use crate::common::stratum::ShareDifficulty;

/// One connection's vardiff state.
#[derive(Debug)]
pub struct Vardiff {
    interval: Duration,
    since: Instant,
    shares: u32,
}

/// Shares a retarget waits for before judging a fast miner.
const FAST_SHARES: u32 = 8;
/// Intervals a retarget waits before judging a slow miner.
const SLOW_INTERVALS: u32 = 4;

impl Vardiff {
    /// Aiming at one share per `interval`.
    pub fn new(interval: Duration, now: Instant) -> Vardiff {
        Vardiff {
            interval: interval.max(Duration::from_millis(100)),
            since: now,
            shares: 0,
        }
    }

    /// Counts an accepted share; returns a new difficulty when the miner is too fast.
    pub fn on_share(&mut self, now: Instant, current: ShareDifficulty) -> Option<ShareDifficulty> {
        self.shares += 1;
        if self.shares < FAST_SHARES {
            return None;
        }
        self.judge(now, current)
    }

    /// Called periodically: returns a new difficulty when the miner is too slow.
    pub fn on_tick(&mut self, now: Instant, current: ShareDifficulty) -> Option<ShareDifficulty> {
        if now.duration_since(self.since) < self.interval * SLOW_INTERVALS {
            return None;
        }
        self.judge(now, current)
    }

    fn judge(&mut self, now: Instant, current: ShareDifficulty) -> Option<ShareDifficulty> {
        let elapsed = now.duration_since(self.since).as_secs_f64().max(0.001);
        let expected = elapsed / self.interval.as_secs_f64();
        let ratio = f64::from(self.shares) / expected;
        self.since = now;
        self.shares = 0;
        if (0.5..=2.0).contains(&ratio) {
            return None;
        }
        // Jump straight to the power of two nearest the ideal (no share at all: halve).
        let step = if ratio > 0.0 { ratio.log2().round() as i32 } else { -1 };
        let next = ShareDifficulty::from_log2(current.log2() + step);
        (next != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_fast_goes_up_too_slow_goes_down_in_range_stays() {
        let t0 = Instant::now();
        let d = ShareDifficulty::from_log2(0);
        let mut v = Vardiff::new(Duration::from_secs(10), t0);
        // 8 shares in 10 s: 8× too fast → ×8.
        let mut got = None;
        for i in 0..8 {
            got = v.on_share(t0 + Duration::from_millis(1250 * (i + 1)), d);
        }
        assert_eq!(got, Some(ShareDifficulty::from_log2(3)));
        // No share for 40 s → halve.
        let mut v = Vardiff::new(Duration::from_secs(10), t0);
        assert_eq!(v.on_tick(t0 + Duration::from_secs(39), d), None);
        assert_eq!(
            v.on_tick(t0 + Duration::from_secs(40), d),
            Some(ShareDifficulty::from_log2(-1))
        );
        // 8 shares in 80 s: on target.
        let mut v = Vardiff::new(Duration::from_secs(10), t0);
        let mut got = Some(d);
        for i in 0..8 {
            got = v.on_share(t0 + Duration::from_secs(10 * (i + 1)), d);
        }
        assert_eq!(got, None);
    }
}
