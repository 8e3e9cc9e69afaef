//! The inbound gate: a libp2p behaviour that applies [`admission`](super::admission) to every
//! inbound connection — refused before the handshake when its address is banned or full,
//! and at establishment when the inbound slots are full and nobody can be evicted.
//!
//! It owns the inbound slot count (the connection-limits behaviour keeps only the total and
//! the per-peer limits), because making room means closing another connection, which only
//! a behaviour can ask the swarm to do.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::admission::{ip_of, select_eviction, AddressPolicy, Candidate, Refusal};

/// Counts of what the gate did (for tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Inbound connections refused because their address is banned.
    pub refused_banned: u64,
    /// Inbound connections refused because their address holds its share of slots.
    pub refused_address_full: u64,
    /// Inbound connections refused because every slot was held by a protected peer.
    pub refused_slots_full: u64,
    /// Inbound peers evicted to make room.
    pub evicted: u64,
}

#[derive(Debug)]
struct Inbound {
    peer: PeerId,
    ip: Option<IpAddr>,
    since: Instant,
    ping: Option<Duration>,
    last_block: Option<Instant>,
    last_tx: Option<Instant>,
}

/// The behaviour. See the module doc.
pub struct Gate {
    policy: AddressPolicy,
    max_inbound: usize,
    inbound: HashMap<ConnectionId, Inbound>,
    close: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
    stats: GateStats,
}

impl Gate {
    /// A gate keeping at most `max_inbound` inbound connections, `per_address` from one
    /// remote address (loopback exempt when `loopback_exempt`).
    pub fn new(max_inbound: usize, per_address: usize, loopback_exempt: bool) -> Gate {
        Gate {
            policy: AddressPolicy::new(per_address, loopback_exempt),
            max_inbound,
            inbound: HashMap::new(),
            close: VecDeque::new(),
            waker: None,
            stats: GateStats::default(),
        }
    }

    /// What the gate did so far.
    pub fn stats(&self) -> GateStats {
        self.stats
    }

    /// Bans the address of `addr` until `until` and closes every inbound connection from it
    /// (a fresh peer id from there is the same attacker). False for an exempt or IP-less
    /// address.
    pub fn ban_address(&mut self, addr: &Multiaddr, until: Instant) -> bool {
        let Some(ip) = ip_of(addr) else { return false };
        if !self.policy.ban(ip, until) {
            return false;
        }
        let doomed: Vec<(PeerId, ConnectionId)> = self
            .inbound
            .iter()
            .filter(|(_, c)| c.ip == Some(ip))
            .map(|(id, c)| (c.peer, *id))
            .collect();
        self.close.extend(doomed);
        self.wake();
        true
    }

    /// Lifts the ban on the address of `addr`; true if there was one.
    pub fn unban_address(&mut self, addr: &Multiaddr) -> bool {
        ip_of(addr).is_some_and(|ip| self.policy.unban(&ip))
    }

    /// Forgets ended bans (called once a second).
    pub fn tick(&mut self, now: Instant) {
        self.policy.expire(now);
    }

    /// Records a peer's ping round trip (low pings protect from eviction).
    pub fn note_ping(&mut self, peer: &PeerId, rtt: Duration) {
        self.for_peer(peer, |c| c.ping = Some(rtt));
    }

    /// Records that a peer relayed a block new to us.
    pub fn note_block(&mut self, peer: &PeerId, now: Instant) {
        self.for_peer(peer, |c| c.last_block = Some(now));
    }

    /// Records that a peer relayed a transaction new to us.
    pub fn note_tx(&mut self, peer: &PeerId, now: Instant) {
        self.for_peer(peer, |c| c.last_tx = Some(now));
    }

    fn for_peer(&mut self, peer: &PeerId, f: impl Fn(&mut Inbound)) {
        for c in self.inbound.values_mut().filter(|c| c.peer == *peer) {
            f(c);
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn count_from(&self, ip: Option<IpAddr>) -> usize {
        self.inbound.values().filter(|c| c.ip.is_some() && c.ip == ip).count()
    }

    fn refused(&mut self, why: Refusal, remote: &Multiaddr) -> ConnectionDenied {
        match why {
            Refusal::Banned => self.stats.refused_banned += 1,
            Refusal::AddressFull => self.stats.refused_address_full += 1,
            Refusal::SlotsFull => self.stats.refused_slots_full += 1,
        }
        tracing::debug!(%remote, reason = %why, "inbound connection refused");
        ConnectionDenied::new(why)
    }

    fn check_address(&mut self, remote: &Multiaddr) -> Result<Option<IpAddr>, ConnectionDenied> {
        let ip = ip_of(remote);
        if let Some(ip) = ip {
            if let Some(why) = self.policy.refuse(ip, self.count_from(Some(ip)), Instant::now()) {
                return Err(self.refused(why, remote));
            }
        }
        Ok(ip)
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Before the handshake: a banned or full address costs us no Noise handshake.
        self.check_address(remote).map(|_| ())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let ip = self.check_address(remote)?;
        if self.inbound.len() >= self.max_inbound {
            let candidates: Vec<Candidate<ConnectionId>> = self
                .inbound
                .iter()
                // Already on its way out: not a candidate twice.
                .filter(|(cid, _)| !self.close.iter().any(|(_, c)| c == *cid))
                .map(|(cid, c)| Candidate {
                    key: *cid,
                    ip: c.ip,
                    since: c.since,
                    ping: c.ping,
                    last_block: c.last_block,
                    last_tx: c.last_tx,
                })
                .collect();
            match select_eviction(&candidates) {
                Some(victim) => {
                    if let Some(v) = self.inbound.remove(&victim) {
                        tracing::info!(peer = %v.peer, newcomer = %peer, "inbound slots full: evicting the least useful peer");
                        self.close.push_back((v.peer, victim));
                        self.stats.evicted += 1;
                        self.wake();
                    }
                }
                None => return Err(self.refused(Refusal::SlotsFull, remote)),
            }
        }
        self.inbound.insert(
            id,
            Inbound {
                peer,
                ip,
                since: Instant::now(),
                ping: None,
                last_block: None,
                last_tx: None,
            },
        );
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Outbound connections are ours to choose (configured and discovered peers).
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(c) = event {
            self.inbound.remove(&c.connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, ev: THandlerOutEvent<Self>) {
        libp2p::core::util::unreachable(ev)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
