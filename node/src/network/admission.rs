//! Who may hold an inbound slot: bans by address, a cap per remote address, and which inbound
//! peer to evict when the inbound slots are full.
//!
//! Pure bookkeeping fed with addresses and times, no I/O, so every rule is unit-tested here;
//! [`gate`](super::gate) applies it to the swarm's connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Most addresses banned at once; past it the ban that ends soonest is forgotten, so a peer
/// cycling through addresses cannot grow the list without bound.
pub const MAX_ADDRESS_BANS: usize = 1024;

/// Inbound peers kept whatever else they are, by lowest ping (Bitcoin Core keeps 8).
const PROTECT_PING: usize = 8;
/// Inbound peers kept for the most recent new block they relayed (Core: 4).
const PROTECT_BLOCK: usize = 4;
/// Inbound peers kept for the most recent new transaction they relayed (Core: 4).
const PROTECT_TX: usize = 4;

/// The IP address in a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// An address group: the IP family (0 for loopback) and the leading bytes that group it.
pub type Group = (u8, [u8; 4]);

/// The address group an IP belongs to (as Bitcoin Core groups them): the /16 of an IPv4
/// address, the /32 of an IPv6 one; every loopback address is one group. Many connections
/// from one group are the cheapest for an attacker to make, so eviction starts there.
pub fn group_of(ip: IpAddr) -> Group {
    if ip.is_loopback() {
        return (0, [0; 4]);
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (4, [o[0], o[1], 0, 0])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            (6, [o[0], o[1], o[2], o[3]])
        }
    }
}

/// Bans by address and the per-address inbound cap.
#[derive(Debug)]
pub struct AddressPolicy {
    /// Loopback addresses are neither capped nor banned: several nodes of a devnet share
    /// 127.0.0.1, and banning it would cut every one of them off. Tests turn this off to
    /// exercise the address rules on loopback.
    loopback_exempt: bool,
    /// Most inbound connections from one address.
    per_address: usize,
    bans: HashMap<IpAddr, Instant>,
}

impl AddressPolicy {
    /// A policy capping inbound connections at `per_address` per remote address.
    pub fn new(per_address: usize, loopback_exempt: bool) -> AddressPolicy {
        AddressPolicy {
            loopback_exempt,
            per_address: per_address.max(1),
            bans: HashMap::new(),
        }
    }

    /// Whether the address rules skip this IP (see [`AddressPolicy::new`]).
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.loopback_exempt && ip.is_loopback()
    }

    /// Bans `ip` until `until`; false (and nothing stored) for an exempt address.
    pub fn ban(&mut self, ip: IpAddr, until: Instant) -> bool {
        if self.is_exempt(ip) {
            return false;
        }
        if !self.bans.contains_key(&ip) && self.bans.len() >= MAX_ADDRESS_BANS {
            if let Some(soonest) = self.bans.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a) {
                self.bans.remove(&soonest);
            }
        }
        let end = self.bans.entry(ip).or_insert(until);
        *end = (*end).max(until);
        true
    }

    /// Lifts a ban; true if there was one.
    pub fn unban(&mut self, ip: &IpAddr) -> bool {
        self.bans.remove(ip).is_some()
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.bans.get(&ip).is_some_and(|t| *t > now)
    }

    /// Forgets bans that ended.
    pub fn expire(&mut self, now: Instant) {
        self.bans.retain(|_, t| *t > now);
    }

    /// Addresses banned now.
    pub fn ban_count(&self) -> usize {
        self.bans.len()
    }

    /// Why an inbound connection from `ip` is refused, if it is: banned, or `current`
    /// inbound connections from that address already.
    pub fn refuse(&self, ip: IpAddr, current: usize, now: Instant) -> Option<Refusal> {
        if self.is_banned(ip, now) {
            Some(Refusal::Banned)
        } else if !self.is_exempt(ip) && current >= self.per_address {
            Some(Refusal::AddressFull)
        } else {
            None
        }
    }
}

/// Why an inbound connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The remote address is banned.
    #[error("address banned")]
    Banned,
    /// The remote address holds its share of inbound slots already.
    #[error("too many inbound connections from this address")]
    AddressFull,
    /// Every inbound slot is held by a peer worth more than a newcomer.
    #[error("inbound slots full, no peer to evict")]
    SlotsFull,
}

/// What eviction knows of an inbound connection.
#[derive(Clone, Debug)]
pub struct Candidate<K> {
    /// The connection.
    pub key: K,
    /// Its remote IP (`None`: an address without one, grouped on its own).
    pub ip: Option<IpAddr>,
    /// When it was established.
    pub since: Instant,
    /// Last ping round trip.
    pub ping: Option<Duration>,
    /// When it last relayed a block we did not have.
    pub last_block: Option<Instant>,
    /// When it last relayed a transaction we did not have.
    pub last_tx: Option<Instant>,
}

/// The inbound connection to drop to make room, after Bitcoin Core's `SelectNodeToEvict`:
/// keep the 8 with the lowest ping, the 4 that most recently relayed a new block, the 4 that
/// most recently relayed a new transaction, then the older half of the rest; of what remains,
/// take the address group with the most connections (ties: the group with the youngest
/// connection) and drop its youngest. `None` when every connection is protected: then the
/// newcomer is refused instead. An attacker therefore has to out-serve honest peers, or
/// out-wait them, to hold slots; numbers from one group only get it evicted first.
pub fn select_eviction<K: Clone>(candidates: &[Candidate<K>]) -> Option<K> {
    let mut rest: Vec<&Candidate<K>> = candidates.iter().collect();
    protect_by(&mut rest, PROTECT_PING, |c| c.ping.map(std::cmp::Reverse));
    protect_by(&mut rest, PROTECT_BLOCK, |c| c.last_block);
    protect_by(&mut rest, PROTECT_TX, |c| c.last_tx);
    // The older half of what is left: long-lived connections are costly to make.
    rest.sort_by_key(|c| c.since);
    let keep = rest.len() / 2;
    rest.drain(..keep);
    if rest.is_empty() {
        return None;
    }
    let mut groups: HashMap<Option<Group>, Vec<&Candidate<K>>> = HashMap::new();
    for c in rest {
        groups.entry(c.ip.map(group_of)).or_default().push(c);
    }
    let youngest = |g: &Vec<&Candidate<K>>| g.iter().map(|c| c.since).max();
    let biggest = groups
        .values()
        .max_by(|a, b| a.len().cmp(&b.len()).then(youngest(a).cmp(&youngest(b))))?;
    biggest.iter().max_by_key(|c| c.since).map(|c| c.key.clone())
}

/// Removes from `rest` the `n` candidates with the greatest `rank` (only those with one).
fn protect_by<K, R: Ord>(rest: &mut Vec<&Candidate<K>>, n: usize, rank: impl Fn(&Candidate<K>) -> Option<R>) {
    let mut ranked: Vec<(usize, R)> = rest
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, rank(c)?)))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1));
    let mut drop: Vec<usize> = ranked.into_iter().take(n).map(|(i, _)| i).collect();
    drop.sort_unstable_by(|a, b| b.cmp(a));
    for i in drop {
        rest.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_banned_address_is_refused_whatever_peer_id_comes_from_it_and_the_ban_ends() {
        let now = Instant::now();
        let mut p = AddressPolicy::new(4, true);
        assert!(p.ban(ip("203.0.113.7"), now + Duration::from_secs(60)));
        // The peer id is not an input at all: a fresh one from the same address is refused.
        assert_eq!(p.refuse(ip("203.0.113.7"), 0, now), Some(Refusal::Banned));
        assert_eq!(p.refuse(ip("203.0.113.8"), 0, now), None);
        assert_eq!(p.refuse(ip("203.0.113.7"), 0, now + Duration::from_secs(61)), None);
        p.expire(now + Duration::from_secs(61));
        assert_eq!(p.ban_count(), 0);
    }

    #[test]
    fn loopback_is_exempt_unless_configured_otherwise() {
        let now = Instant::now();
        let mut devnet = AddressPolicy::new(2, true);
        assert!(!devnet.ban(ip("127.0.0.1"), now + Duration::from_secs(60)));
        assert_eq!(devnet.refuse(ip("127.0.0.1"), 50, now), None, "devnets share 127.0.0.1");
        assert_eq!(devnet.refuse(ip("::1"), 50, now), None);
        let mut strict = AddressPolicy::new(2, false);
        assert!(strict.ban(ip("127.0.0.1"), now + Duration::from_secs(60)));
        assert_eq!(strict.refuse(ip("127.0.0.1"), 0, now), Some(Refusal::Banned));
        assert_eq!(
            AddressPolicy::new(2, false).refuse(ip("127.0.0.1"), 2, now),
            Some(Refusal::AddressFull)
        );
    }

    #[test]
    fn the_per_address_cap_counts_only_that_address() {
        let now = Instant::now();
        let p = AddressPolicy::new(2, true);
        assert_eq!(p.refuse(ip("198.51.100.1"), 1, now), None);
        assert_eq!(p.refuse(ip("198.51.100.1"), 2, now), Some(Refusal::AddressFull));
        assert_eq!(p.refuse(ip("2001:db8::1"), 2, now), Some(Refusal::AddressFull));
    }

    #[test]
    fn the_ban_list_is_bounded_and_forgets_the_ban_ending_soonest() {
        let now = Instant::now();
        let mut p = AddressPolicy::new(4, true);
        for i in 0..(MAX_ADDRESS_BANS as u32 + 10) {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            // The first address's ban ends soonest.
            assert!(p.ban(a, now + Duration::from_secs(100 + u64::from(i))));
        }
        assert_eq!(p.ban_count(), MAX_ADDRESS_BANS);
        assert!(
            !p.is_banned(ip("10.0.0.0"), now),
            "the soonest-ending ban was dropped first"
        );
        assert!(p.is_banned(IpAddr::V4((0x0a00_0000 + MAX_ADDRESS_BANS as u32 + 9).into()), now));
    }

    fn cand(key: u32, addr: &str, age_s: u64, now: Instant) -> Candidate<u32> {
        Candidate {
            key,
            ip: Some(ip(addr)),
            since: now - Duration::from_secs(age_s),
            ping: None,
            last_block: None,
            last_tx: None,
        }
    }

    #[test]
    fn eviction_takes_the_youngest_of_the_biggest_group_and_spares_useful_peers() {
        let now = Instant::now() + Duration::from_secs(10_000);
        let mut c = Vec::new();
        // 20 honest peers from distinct groups, old.
        for i in 0..20u32 {
            c.push(cand(i, &format!("{}.1.0.1", 10 + i), 1000 + u64::from(i), now));
        }
        // 10 from one /16, younger.
        for i in 0..10u32 {
            c.push(cand(100 + i, &format!("203.0.113.{i}"), 100 + u64::from(i), now));
        }
        // The youngest connection of all relayed a block just now: kept.
        let mut fresh = cand(200, "203.0.113.200", 1, now);
        fresh.last_block = Some(now);
        c.push(fresh);
        let victim = select_eviction(&c).expect("someone to evict");
        assert_eq!(
            victim, 100,
            "youngest of the crowded group (the block relayer is protected)"
        );
    }

    #[test]
    fn when_everyone_is_protected_nobody_is_evicted() {
        let now = Instant::now() + Duration::from_secs(10_000);
        let c: Vec<_> = (0..3u32).map(|i| cand(i, "127.0.0.1", u64::from(i), now)).collect();
        // Three peers: one is the older half... of one; pings protect the rest.
        let mut c2 = c.clone();
        for x in &mut c2 {
            x.ping = Some(Duration::from_millis(1));
        }
        assert_eq!(select_eviction(&c2), None);
        // Without pings the youngest goes.
        assert_eq!(select_eviction(&c), Some(0));
    }
}
