//! [`RateHistory`]: the embedded miner's hash rate over time, in two bounded rings — one
//! sample a second for ten minutes, one a minute (the mean of its seconds) for a day — per
//! worker thread and in total. Rates come from the workers' own hash counters.

use std::collections::VecDeque;
use std::time::Instant;

/// One-second samples kept (10 minutes).
pub const FINE_KEEP: usize = 600;
/// One-minute samples kept (24 hours).
pub const COARSE_KEEP: usize = 1440;

/// One hash-rate sample.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RateSample {
    /// Unix time (seconds) at the end of the sample.
    pub t: u64,
    /// Hashes per second, all threads.
    pub total: f64,
    /// Hashes per second, per worker thread (empty while the miner is off).
    pub threads: Vec<f64>,
}

/// The range of history asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The one-second ring (10 minutes).
    Fine,
    /// The one-minute ring (24 hours).
    Coarse,
}

#[derive(Debug)]
struct Last {
    at: Instant,
    counts: Vec<u64>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct RateHistory {
    fine: VecDeque<RateSample>,
    coarse: VecDeque<RateSample>,
    last: Option<Last>,
    /// The minute being accumulated: (minute, sum of totals, sums per thread, seconds).
    minute: Option<(u64, f64, Vec<f64>, u32)>,
}

impl RateHistory {
    /// Records a reading of the workers' counters (`None` while the miner is off) taken at
    /// `at`, Unix time `t`. A restarted miner (other thread count, counters lower) starts a
    /// fresh baseline rather than reporting a negative or made-up rate.
    pub fn record(&mut self, t: u64, at: Instant, counts: Option<Vec<u64>>) {
        let sample = match (counts, self.last.take()) {
            (Some(now), Some(prev))
                if prev.counts.len() == now.len() && now.iter().zip(&prev.counts).all(|(n, p)| n >= p) =>
            {
                let secs = at.duration_since(prev.at).as_secs_f64();
                let threads: Vec<f64> = if secs > 0.0 {
                    now.iter()
                        .zip(&prev.counts)
                        .map(|(n, p)| (n - p) as f64 / secs)
                        .collect()
                } else {
                    vec![0.0; now.len()]
                };
                self.last = Some(Last { at, counts: now });
                Some(RateSample {
                    t,
                    total: threads.iter().sum(),
                    threads,
                })
            }
            (Some(now), _) => {
                self.last = Some(Last { at, counts: now });
                None
            }
            (None, _) => Some(RateSample {
                t,
                total: 0.0,
                threads: Vec::new(),
            }),
        };
        if let Some(s) = sample {
            self.push(s);
        }
    }

    fn push(&mut self, s: RateSample) {
        let minute = s.t / 60;
        match &mut self.minute {
            Some((m, total, threads, n)) if *m == minute => {
                *total += s.total;
                if threads.len() == s.threads.len() {
                    threads.iter_mut().zip(&s.threads).for_each(|(a, b)| *a += b);
                } else {
                    *threads = s.threads.clone();
                }
                *n += 1;
            }
            _ => {
                if let Some((m, total, threads, n)) = self.minute.take() {
                    let n = f64::from(n.max(1));
                    push_bounded(
                        &mut self.coarse,
                        RateSample {
                            t: (m + 1) * 60,
                            total: total / n,
                            threads: threads.iter().map(|v| v / n).collect(),
                        },
                        COARSE_KEEP,
                    );
                }
                self.minute = Some((minute, s.total, s.threads.clone(), 1));
            }
        }
        push_bounded(&mut self.fine, s, FINE_KEEP);
    }

    /// The samples of `range`, oldest first.
    pub fn samples(&self, range: Range) -> Vec<RateSample> {
        match range {
            Range::Fine => self.fine.iter().cloned().collect(),
            Range::Coarse => self.coarse.iter().cloned().collect(),
        }
    }
}

fn push_bounded(ring: &mut VecDeque<RateSample>, s: RateSample, keep: usize) {
    if ring.len() == keep {
        ring.pop_front();
    }
    ring.push_back(s);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_are_counted_hashes_over_elapsed_time() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        h.record(1000, t0, Some(vec![0, 0]));
        h.record(1001, t0 + Duration::from_secs(1), Some(vec![300, 100]));
        h.record(1002, t0 + Duration::from_secs(3), Some(vec![500, 100]));
        let s = h.samples(Range::Fine);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].total, s[0].threads.clone()), (400.0, vec![300.0, 100.0]));
        assert_eq!((s[1].total, s[1].threads.clone()), (100.0, vec![100.0, 0.0]));
    }

    #[test]
    fn a_restarted_miner_starts_a_new_baseline_and_off_is_zero() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        h.record(10, t0, Some(vec![1000]));
        h.record(11, t0 + Duration::from_secs(1), None);
        h.record(12, t0 + Duration::from_secs(2), Some(vec![5, 5]));
        h.record(13, t0 + Duration::from_secs(3), Some(vec![15, 25]));
        let totals: Vec<f64> = h.samples(Range::Fine).iter().map(|s| s.total).collect();
        assert_eq!(totals, vec![0.0, 30.0]);
    }

    #[test]
    fn rings_are_bounded_and_minutes_are_means() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        h.record(0, t0, Some(vec![0]));
        // 2 hours of one-second samples at 10 hashes/s, then 20 hashes/s for a minute.
        let mut count = 0u64;
        for s in 1..=7200u64 {
            count += if s > 7140 { 20 } else { 10 };
            h.record(s, t0 + Duration::from_secs(s), Some(vec![count]));
        }
        h.record(7260, t0 + Duration::from_secs(7260), None);
        assert_eq!(h.samples(Range::Fine).len(), FINE_KEEP);
        let coarse = h.samples(Range::Coarse);
        // Minutes 0 to 120 are complete (the last sample opened minute 121).
        assert_eq!(coarse.len(), 121);
        assert!((coarse[5].total - 10.0).abs() < 1e-9, "{:?}", coarse[5]);
        // Minute 119 (7140..7199) holds one 10 and fifty-nine 20s: its mean is near 20.
        assert!(
            (coarse[119].total - (10.0 + 59.0 * 20.0) / 60.0).abs() < 1e-9,
            "{:?}",
            coarse[119]
        );
    }
}
