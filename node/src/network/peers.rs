//! Peer reputation: scores that misbehaviour lowers, and timed bans.
//!
//! Pure bookkeeping, no I/O: the event loop reports misbehaviour here and carries out the
//! verdict (block the peer in the swarm, blacklist it in gossipsub, lift the ban later).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Score at or below which a peer is banned.
pub const BAN_SCORE: i32 = -100;

/// Most peers banned at once. Peer ids are free, so past this the ban ending soonest is
/// forgotten (the address ban, see `admission`, is what holds a determined attacker off).
pub const MAX_PEER_BANS: usize = 4096;

/// Things a peer can do wrong, with the penalty each costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Sent bytes that do not decode as what the topic or protocol carries.
    Undecodable(String),
    /// Sent a block that breaks a consensus rule (bad PoW, merkle root, spends …).
    InvalidBlock(String),
    /// Sent headers that break a rule (linkage, PoW, bits, time).
    InvalidHeaders(String),
    /// Answered a block request with a different block.
    WrongBlock,
    /// Belongs to another chain (identify carries another genesis).
    WrongChain(String),
    /// Sent an invalid transaction.
    InvalidTx(String),
    /// Sent headers that do not connect to our locator.
    UnconnectedHeaders,
    /// Sent more than a protocol allows (too many headers, oversized frame).
    Oversized(String),
    /// Exceeded the request rate limit.
    RateLimited,
    /// Did not answer in time.
    Timeout,
    /// Answered a headers or blocks request with an error.
    Refused,
}

impl Misbehaviour {
    /// Score penalty: 100 bans at once (provable lies), smaller ones add up.
    pub fn penalty(&self) -> i32 {
        match self {
            Misbehaviour::Undecodable(_)
            | Misbehaviour::InvalidBlock(_)
            | Misbehaviour::InvalidHeaders(_)
            | Misbehaviour::WrongBlock
            | Misbehaviour::WrongChain(_)
            | Misbehaviour::Oversized(_) => 100,
            // Three strikes.
            Misbehaviour::InvalidTx(_) => 34,
            Misbehaviour::UnconnectedHeaders => 20,
            Misbehaviour::RateLimited => 10,
            Misbehaviour::Timeout | Misbehaviour::Refused => 5,
        }
    }
}

/// Scores and bans of the peers we have seen.
#[derive(Debug)]
pub struct PeerBook {
    scores: HashMap<PeerId, i32>,
    bans: HashMap<PeerId, Instant>,
    ban_duration: Duration,
}

impl PeerBook {
    /// A book that bans for `ban_duration`.
    pub fn new(ban_duration: Duration) -> PeerBook {
        PeerBook {
            scores: HashMap::new(),
            bans: HashMap::new(),
            ban_duration,
        }
    }

    /// Records misbehaviour; true if the peer is now banned (and was not before).
    pub fn report(&mut self, peer: PeerId, what: &Misbehaviour, now: Instant) -> bool {
        if self.bans.contains_key(&peer) {
            return false;
        }
        let score = self.scores.entry(peer).or_insert(0);
        *score = score.saturating_sub(what.penalty());
        if *score <= BAN_SCORE {
            self.scores.remove(&peer);
            self.insert_ban(peer, now + self.ban_duration);
            return true;
        }
        false
    }

    /// Bans a peer by hand (admin RPC) until `until`, whatever its score.
    pub fn ban(&mut self, peer: PeerId, until: Instant) {
        self.scores.remove(&peer);
        self.insert_ban(peer, until);
    }

    fn insert_ban(&mut self, peer: PeerId, until: Instant) {
        if !self.bans.contains_key(&peer) && self.bans.len() >= MAX_PEER_BANS {
            if let Some(soonest) = self.bans.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                self.bans.remove(&soonest);
            }
        }
        self.bans.insert(peer, until);
    }

    /// Lifts a ban; true if the peer was banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.bans.remove(peer).is_some()
    }

    /// Every ban and when it ends.
    pub fn bans(&self) -> impl Iterator<Item = (&PeerId, &Instant)> {
        self.bans.iter()
    }

    /// True while the peer is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Current score (0 for unknown peers).
    pub fn score(&self, peer: &PeerId) -> i32 {
        self.scores.get(peer).copied().unwrap_or(0)
    }

    /// Lifts expired bans and lets scores recover by one point per call (called once a
    /// second), so occasional timeouts never add up to a ban. Returns the unbanned peers.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerId> {
        self.scores.retain(|_, s| {
            *s += 1;
            *s < 0
        });
        let expired: Vec<PeerId> = self.bans.iter().filter(|(_, t)| **t <= now).map(|(p, _)| *p).collect();
        for p in &expired {
            self.bans.remove(p);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provable_lies_ban_at_once_and_small_faults_add_up() {
        let mut book = PeerBook::new(Duration::from_secs(60));
        let now = Instant::now();
        let liar = PeerId::random();
        assert!(book.report(liar, &Misbehaviour::InvalidBlock("bad pow".into()), now));
        assert!(book.is_banned(&liar));
        let slow = PeerId::random();
        for _ in 0..19 {
            assert!(!book.report(slow, &Misbehaviour::Timeout, now));
        }
        assert!(book.report(slow, &Misbehaviour::Timeout, now));
        assert!(book.tick(now + Duration::from_secs(61)).contains(&liar));
        assert!(!book.is_banned(&liar));
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let mut book = PeerBook::new(Duration::from_secs(60));
        let now = Instant::now();
        let first = PeerId::random();
        book.ban(first, now + Duration::from_secs(1));
        for _ in 0..MAX_PEER_BANS {
            book.ban(PeerId::random(), now + Duration::from_secs(60));
        }
        assert_eq!(book.bans().count(), MAX_PEER_BANS);
        assert!(!book.is_banned(&first), "the ban ending soonest was forgotten first");
    }
}
