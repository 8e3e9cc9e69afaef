//! The NFQUEUE delayer: the kernel hands it each packet iptables queued (one queue per
//! host link), and it accepts the packet once delay ± jitter has passed, or drops it with
//! the link's loss probability. Runs as the hidden `lode netem-delay` inside a lab's switch
//! namespace.
//!
//! Packets of one link leave in the order they came (a later packet never overtakes an
//! earlier one): TCP reads reordering as loss, and netem without a rate does reorder, which
//! would make the emulated WAN look worse than a real path of that delay. The random draws
//! come from a seeded RNG, so a run's delays are reproducible from its seed.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::NetlabError;

/// Packets held per link at most; beyond it new ones are dropped (a bounded queue, like a
/// router's buffer).
const MAX_HELD: usize = 20_000;
/// Kernel queue length per link.
const KERNEL_QUEUE: u32 = 20_000;
/// Longest wait between two reads of the queue when nothing is due (adds at most this much
/// to a packet's delay: the crate exposes no descriptor to poll).
const IDLE: Duration = Duration::from_micros(500);

/// One link's queue and figures: `QUEUE:DELAY_US:JITTER_US:LOSS_PPM` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLink {
    /// NFQUEUE number.
    pub queue: u16,
    /// Mean delay in microseconds.
    pub delay_us: u64,
    /// Jitter (±) in microseconds.
    pub jitter_us: u64,
    /// Loss in parts per million.
    pub loss_ppm: u32,
}

impl FromStr for QueueLink {
    type Err = String;

    fn from_str(s: &str) -> Result<QueueLink, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{s:?} is not QUEUE:DELAY_US:JITTER_US:LOSS_PPM");
        let [q, d, j, l] = parts.as_slice() else {
            return Err(bad());
        };
        let link = QueueLink {
            queue: q.parse().map_err(|_| bad())?,
            delay_us: d.parse().map_err(|_| bad())?,
            jitter_us: j.parse().map_err(|_| bad())?,
            loss_ppm: l.parse().map_err(|_| bad())?,
        };
        if link.loss_ppm > 1_000_000 || link.delay_us > 10_000_000 || link.jitter_us > 10_000_000 {
            return Err(format!("{s:?}: loss over 1000000 ppm or delay over 10 s"));
        }
        Ok(link)
    }
}

impl QueueLink {
    /// The command-line form [`FromStr`] reads.
    pub fn arg(&self) -> String {
        format!("{}:{}:{}:{}", self.queue, self.delay_us, self.jitter_us, self.loss_ppm)
    }
}

struct Held {
    link: QueueLink,
    packets: VecDeque<(Instant, nfq::Message)>,
    /// Release time of the last packet queued: the next one never leaves before it.
    last: Instant,
}

/// Binds every link's queue and delays packets until killed.
pub fn run(links: &[QueueLink], seed: u64) -> Result<(), NetlabError> {
    let err = |what: &str, e: std::io::Error| NetlabError::Delayer(format!("{what}: {e}"));
    let mut queue = nfq::Queue::open().map_err(|e| err("open netlink", e))?;
    let mut held: HashMap<u16, Held> = HashMap::new();
    for l in links {
        queue
            .bind(l.queue)
            .map_err(|e| err(&format!("bind queue {}", l.queue), e))?;
        // Metadata only: the verdict needs no payload, and copying none keeps it cheap.
        queue.set_copy_range(l.queue, 0).map_err(|e| err("copy range", e))?;
        queue
            .set_queue_max_len(l.queue, KERNEL_QUEUE)
            .map_err(|e| err("queue length", e))?;
        // A full kernel queue lets packets through rather than dropping them silently.
        queue.set_fail_open(l.queue, true).map_err(|e| err("fail open", e))?;
        held.insert(
            l.queue,
            Held {
                link: *l,
                packets: VecDeque::new(),
                last: Instant::now(),
            },
        );
    }
    queue.set_nonblocking(true);
    let mut rng = StdRng::seed_from_u64(seed);
    tracing::info!(links = links.len(), seed, "delayer running");
    loop {
        // Take everything waiting.
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    let now = Instant::now();
                    let Some(h) = held.get_mut(&msg.get_queue_num()) else {
                        msg.set_verdict(nfq::Verdict::Accept);
                        queue.verdict(msg).map_err(|e| err("verdict", e))?;
                        continue;
                    };
                    let lost = h.link.loss_ppm > 0 && rng.gen_range(0..1_000_000) < h.link.loss_ppm;
                    if lost || h.packets.len() >= MAX_HELD {
                        msg.set_verdict(nfq::Verdict::Drop);
                        queue.verdict(msg).map_err(|e| err("verdict", e))?;
                        continue;
                    }
                    let j = h.link.jitter_us.min(h.link.delay_us);
                    let us = if j == 0 {
                        h.link.delay_us
                    } else {
                        rng.gen_range(h.link.delay_us - j..=h.link.delay_us + j)
                    };
                    let at = (now + Duration::from_micros(us)).max(h.last);
                    h.last = at;
                    h.packets.push_back((at, msg));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The kernel queue overflowed (fail-open let the packets through): go on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(err("recv", e)),
            }
        }
        // Release what is due.
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for h in held.values_mut() {
            while h.packets.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, mut msg)) = h.packets.pop_front() {
                    msg.set_verdict(nfq::Verdict::Accept);
                    queue.verdict(msg).map_err(|e| err("verdict", e))?;
                }
            }
            if let Some((at, _)) = h.packets.front() {
                next = Some(next.map_or(*at, |n| n.min(*at)));
            }
        }
        let wait = next.map_or(IDLE, |n| n.saturating_duration_since(Instant::now()).min(IDLE));
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_args_round_trip_and_bad_ones_are_named() {
        let l = QueueLink {
            queue: 3,
            delay_us: 40_000,
            jitter_us: 10_000,
            loss_ppm: 10_000,
        };
        assert_eq!(l.arg().parse::<QueueLink>(), Ok(l));
        assert!("3:1:2".parse::<QueueLink>().expect_err("short").contains("QUEUE:"));
        assert!("3:1:2:2000000".parse::<QueueLink>().expect_err("loss").contains("ppm"));
    }
}
