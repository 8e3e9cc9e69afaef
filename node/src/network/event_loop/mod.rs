//! The event loop: one tokio task owns the libp2p swarm.
//!
//! The loop `select!`s over swarm events, commands from the [`NetworkHandle`](super::NetworkHandle),
//! replies from the chain task, tip changes, the chain task's announcements (the one path by
//! which anything is published), a one-second tick and the shutdown signal. Nothing slow runs
//! in it: a gossip block is decoded (bounded by the max block size) and handed to the chain
//! task with `try_send`; the verdict comes back as a future in `pending` and only then is the
//! message reported Accept/Ignore/Reject to gossipsub ([`gossip`]). Sync requests from peers
//! are answered the same way, always ([`serve`]: an `Error` answer when the chain is busy or
//! the peer over its rate limit).

mod compact;
mod gossip;
mod serve;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, MessageId, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, mdns, ping, Multiaddr, PeerId, Swarm};
use lode_chain::{encoding, ChainParams};
use tokio::sync::{broadcast, mpsc, watch};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::gossip::{Names, TopicKind};
use super::handle::{NetCommand, PeerInfo};
use super::peer_id_of;
use super::peers::{Misbehaviour, PeerBook};
use super::protocol::{RequestFrame, SyncCodec, SyncRequest, SyncResponse};
use super::sync::{SyncManager, SyncNet, SyncOutput};
use crate::chain_task::{Announcement, BlockVerdict, ChainHandle, HeadersVerdict, Prechecker, TipInfo, TxVerdict};
use crate::progress::ProgressReporter;

enum Completion {
    GossipBlock {
        msg_id: MessageId,
        source: PeerId,
        verdict: Option<BlockVerdict>,
    },
    GossipTx {
        msg_id: MessageId,
        source: PeerId,
        verdict: Option<TxVerdict>,
    },
    Headers {
        peer: PeerId,
        verdict: Option<HeadersVerdict>,
    },
    Submitted(Option<Vec<BlockVerdict>>),
    Serve {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    /// A compact block matched against the mempool: (already known, the partial block).
    CompactMatched {
        hash: lode_chain::Hash256,
        result: Option<(bool, super::compact::PartialBlock)>,
    },
}

/// Per-peer token bucket for inbound sync requests.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Gossipsub score at or below which a peer is banned (gossipsub's default graylist
/// threshold: one invalid block-topic delivery costs 100).
const GOSSIP_BAN_SCORE: f64 = -80.0;
/// How often configured peers that dropped are re-dialled.
const REDIAL_INTERVAL: Duration = Duration::from_secs(5);
/// How often Kademlia re-bootstraps.
const BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// Connections below which peers Kademlia discovers are dialled.
const DISCOVERY_DIALS: usize = 8;

/// The request-response behaviour seen by the sync manager.
struct Requests<'a>(&'a mut request_response::Behaviour<SyncCodec>);

impl SyncNet for Requests<'_> {
    fn send(&mut self, peer: &PeerId, req: SyncRequest) -> OutboundRequestId {
        self.0.send_request(peer, RequestFrame::Request(req))
    }
}

/// Channels and settings the event loop is built with.
pub struct LoopParts {
    /// The swarm (listening already).
    pub swarm: Swarm<Behaviour>,
    /// Topic and protocol names.
    pub names: Names,
    /// Network parameters (size limits).
    pub params: ChainParams,
    /// To the chain task.
    pub chain: ChainHandle,
    /// From the node handle.
    pub commands: mpsc::Receiver<NetCommand>,
    /// The chain's tip.
    pub tip: watch::Receiver<TipInfo>,
    /// Where synced blocks' signatures are checked ahead of their connect.
    pub prechecker: Prechecker,
    /// What the chain task wants announced: the only things this loop publishes.
    pub announce: broadcast::Receiver<Announcement>,
    /// Where listen addresses are published.
    pub listen_addrs: watch::Sender<Vec<Multiaddr>>,
    /// Set to true to stop.
    pub shutdown: watch::Receiver<bool>,
    /// Peers to dial and keep dialling.
    pub peers: Vec<Multiaddr>,
    /// How long bans last.
    pub ban_duration: Duration,
    /// Whether to draw a progress bar on a terminal.
    pub progress_bar: bool,
    /// How often each peer is asked for its tip.
    pub status_interval: Duration,
    /// Testing only: answer sync requests as a liar.
    pub hostile_serve: Option<super::config::HostileServe>,
    /// Testing only: answer sync requests from this chain.
    pub scripted_chain: Option<std::sync::Arc<Vec<lode_chain::Block>>>,
}

/// The event loop. See the module doc.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    names: Names,
    params: ChainParams,
    chain: ChainHandle,
    commands: mpsc::Receiver<NetCommand>,
    tip: watch::Receiver<TipInfo>,
    prechecker: Prechecker,
    announce: broadcast::Receiver<Announcement>,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    shutdown: watch::Receiver<bool>,
    sync: SyncManager,
    book: PeerBook,
    pending: FuturesUnordered<BoxFuture<'static, Completion>>,
    persistent: Vec<(Multiaddr, Option<PeerId>)>,
    last_redial: Instant,
    /// `None` until the first bootstrap (done on the first tick that has a peer).
    last_bootstrap: Option<Instant>,
    ready: HashSet<PeerId>,
    /// Remote address and direction of each connected peer's first connection.
    conns: HashMap<PeerId, (Multiaddr, bool)>,
    /// Last ping round trip per connected peer (shown by the explorer's network view).
    pings: HashMap<PeerId, std::time::Duration>,
    rate: HashMap<PeerId, Bucket>,
    progress: ProgressReporter,
    /// Testing only: lie in sync answers.
    hostile_serve: Option<super::config::HostileServe>,
    /// Testing only: requests a silent liar holds unanswered (bounded).
    held: Vec<ResponseChannel<SyncResponse>>,
    /// Testing only: answer sync requests from this chain.
    scripted_chain: Option<std::sync::Arc<Vec<lode_chain::Block>>>,
    /// How long bans last.
    ban_duration: Duration,
    /// The address each banned peer was banned by (to lift it with the peer's ban); only
    /// banned peers, so bounded by the peer book's ban list.
    banned_addrs: HashMap<PeerId, Multiaddr>,
    /// Compact blocks being rebuilt and their requests.
    compact: compact::CompactState,
}

impl EventLoop {
    /// Builds the loop.
    pub fn new(parts: LoopParts) -> EventLoop {
        let tip = parts.tip.borrow().clone();
        EventLoop {
            sync: SyncManager::new(tip, parts.params.max_block_size)
                .with_status_interval(parts.status_interval)
                .with_min_chain_work(parts.params.min_chain_work),
            swarm: parts.swarm,
            names: parts.names,
            params: parts.params,
            chain: parts.chain,
            commands: parts.commands,
            tip: parts.tip,
            announce: parts.announce,
            prechecker: parts.prechecker,
            listen_addrs: parts.listen_addrs,
            shutdown: parts.shutdown,
            book: PeerBook::new(parts.ban_duration),
            pending: FuturesUnordered::new(),
            persistent: parts.peers.into_iter().map(|a| (a, None)).collect(),
            last_redial: Instant::now(),
            last_bootstrap: None,
            ready: HashSet::new(),
            conns: HashMap::new(),
            pings: HashMap::new(),
            rate: HashMap::new(),
            progress: ProgressReporter::new(parts.progress_bar),
            hostile_serve: parts.hostile_serve,
            held: Vec::new(),
            scripted_chain: parts.scripted_chain,
            ban_duration: parts.ban_duration,
            banned_addrs: HashMap::new(),
            compact: compact::CompactState::default(),
        }
    }

    /// Runs until shutdown (or until the node handle is gone), then closes connections.
    pub async fn run(mut self) {
        let addrs: Vec<Multiaddr> = self.persistent.iter().map(|(a, _)| a.clone()).collect();
        for addr in addrs {
            if let Err(e) = self.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial peer");
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(done) = self.pending.next(), if !self.pending.is_empty() => self.on_completion(done),
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                changed = self.tip.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let tip = self.tip.borrow_and_update().clone();
                    self.sync.on_local_tip(tip, &mut Requests(&mut self.swarm.behaviour_mut().sync));
                    self.drain_sync();
                }
                announced = self.announce.recv() => match announced {
                    Ok(Announcement::Block(block)) => self.publish_block(&block),
                    Ok(Announcement::Tx(tx)) => self.publish_quietly(TopicKind::Txs, encoding::encode(&*tx)),
                    // Fell behind a burst: those are announced by nobody; peers still get
                    // them in blocks and through sync. Closed: the chain task is gone;
                    // shutdown follows.
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(n, "announce queue lagged"),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => self.on_tick(),
                _ = self.shutdown.changed() => break,
            }
        }
        self.progress.finish();
        self.close().await;
    }

    /// Closes every connection and lets the swarm flush the goodbyes, briefly.
    async fn close(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        while self.swarm.network_info().num_peers() > 0 {
            tokio::select! {
                _ = self.swarm.select_next_some() => {}
                _ = &mut deadline => break,
            }
        }
        tracing::debug!("network stopped");
    }

    /// Dials `addr`. `always`: dial even if connected or dialling already (an explicit
    /// request; the per-peer connection limit still applies).
    fn dial_with(&mut self, addr: Multiaddr, always: bool) -> Result<(), String> {
        // PortUse::New: with port reuse, two peers dialling each other at once end in a
        // TCP simultaneous open on which Noise fails. There is no NAT to punch here.
        let condition = if always {
            PeerCondition::Always
        } else {
            PeerCondition::DisconnectedAndNotDialing
        };
        let opts = match peer_id_of(&addr) {
            Some(peer) => DialOpts::peer_id(peer)
                .condition(condition)
                .addresses(vec![addr])
                .allocate_new_port()
                .build(),
            None => DialOpts::unknown_peer_id().address(addr).allocate_new_port().build(),
        };
        self.swarm.dial(opts).map_err(|e| e.to_string())
    }

    fn dial(&mut self, addr: Multiaddr) -> Result<(), String> {
        self.dial_with(addr, false)
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.swarm.behaviour_mut().gate.tick(now);
        for peer in self.book.tick(now) {
            self.banned_addrs.remove(&peer);
            tracing::info!(%peer, "ban lifted");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.swarm.behaviour_mut().gossipsub.remove_blacklisted_peer(&peer);
        }
        // Gossipsub scores what never reaches us as a message (over-size frames for a topic,
        // bad signatures): a peer it would graylist is banned like any other liar.
        let low: Vec<(PeerId, f64)> = self
            .ready
            .iter()
            .filter_map(|p| {
                let score = self.swarm.behaviour().gossipsub.peer_score(p)?;
                (score <= GOSSIP_BAN_SCORE).then_some((*p, score))
            })
            .collect();
        for (peer, score) in low {
            self.penalise(
                peer,
                Misbehaviour::Oversized(format!("invalid gossip (score {score:.0})")),
            );
        }
        self.sync.tick(now, &mut Requests(&mut self.swarm.behaviour_mut().sync));
        self.drain_sync();
        if now.duration_since(self.last_redial) >= REDIAL_INTERVAL {
            self.last_redial = now;
            let lost: Vec<Multiaddr> = self
                .persistent
                .iter()
                .filter(|(_, id)| id.is_none_or(|id| !self.swarm.is_connected(&id) && !self.book.is_banned(&id)))
                .map(|(a, _)| a.clone())
                .collect();
            for addr in lost {
                if let Err(e) = self.dial(addr.clone()) {
                    tracing::debug!(%addr, error = %e, "re-dial failed");
                }
            }
        }
        // Refresh the DHT now and then, once there is someone to ask.
        let bootstrap_due = self
            .last_bootstrap
            .is_none_or(|t| now.duration_since(t) >= BOOTSTRAP_INTERVAL);
        if bootstrap_due && !self.ready.is_empty() {
            self.last_bootstrap = Some(now);
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                let _ = kad.bootstrap();
            }
        }
        self.progress.update(self.sync.progress(), self.sync.is_syncing());
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Dial { addr, reply } => {
                let _ = reply.send(self.dial_with(addr, true));
            }
            NetCommand::PublishRaw { topic, bytes, reply } => {
                let t = match topic {
                    TopicKind::Blocks => self.names.blocks.clone(),
                    TopicKind::Txs => self.names.txs.clone(),
                    TopicKind::Compact => self.names.compact.clone(),
                };
                let result = match self.swarm.behaviour_mut().gossipsub.publish(t, bytes) {
                    Ok(_) => Ok(()),
                    // Normal on a lone node or right after start; sync repairs it.
                    Err(PublishError::NoPeersSubscribedToTopic) => {
                        tracing::debug!(?topic, "published with no peers subscribed");
                        Err("no peers subscribed".to_string())
                    }
                    Err(PublishError::Duplicate) => Ok(()),
                    Err(e) => {
                        tracing::warn!(?topic, error = %e, "publish failed");
                        Err(e.to_string())
                    }
                };
                let _ = reply.send(result);
            }
            NetCommand::Peers(reply) => {
                let peers = self
                    .ready
                    .iter()
                    .filter(|p| self.swarm.is_connected(p))
                    .copied()
                    .collect();
                let _ = reply.send(peers);
            }
            NetCommand::IsBanned(peer, reply) => {
                let _ = reply.send(self.book.is_banned(&peer));
            }
            NetCommand::CompactCounts(reply) => {
                let _ = reply.send(self.compact_counts());
            }
            NetCommand::Progress(reply) => {
                let _ = reply.send(self.sync.progress());
            }
            NetCommand::RawSyncRequest(peer, request) => {
                self.swarm.behaviour_mut().sync.send_request(&peer, request);
            }
            NetCommand::PeerInfo(reply) => {
                let mut peers: Vec<PeerInfo> = self
                    .ready
                    .iter()
                    .filter(|p| self.swarm.is_connected(p))
                    .filter_map(|p| {
                        self.conns.get(p).map(|(addr, inbound)| PeerInfo {
                            id: *p,
                            addr: addr.clone(),
                            inbound: *inbound,
                            height: self.sync.peer_height(p),
                            ping: self.pings.get(p).copied(),
                        })
                    })
                    .collect();
                peers.sort_by_key(|p| p.id.to_string());
                let _ = reply.send(peers);
            }
            NetCommand::SetPeer { addr, add, reply } => {
                let result = if add {
                    if !self.persistent.iter().any(|(a, _)| *a == addr) {
                        self.persistent.push((addr.clone(), peer_id_of(&addr)));
                    }
                    self.dial_with(addr, false)
                } else {
                    let before = self.persistent.len();
                    self.persistent.retain(|(a, _)| *a != addr);
                    if self.persistent.len() < before {
                        Ok(())
                    } else {
                        Err(format!("{addr} is not in the peer list"))
                    }
                };
                let _ = reply.send(result);
            }
            NetCommand::Disconnect(peer, reply) => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            NetCommand::Ban(peer, Some(duration), reply) => {
                self.book.ban(peer, Instant::now() + duration);
                self.ban_address(peer, Instant::now() + duration);
                let b = self.swarm.behaviour_mut();
                b.blocked.block_peer(peer);
                b.gossipsub.blacklist_peer(&peer);
                let _ = self.swarm.disconnect_peer_id(peer);
                tracing::info!(%peer, secs = duration.as_secs(), "peer banned by the operator");
                let _ = reply.send(true);
            }
            NetCommand::Ban(peer, None, reply) => {
                let was = self.book.unban(&peer);
                if let Some(addr) = self.banned_addrs.remove(&peer) {
                    self.swarm.behaviour_mut().gate.unban_address(&addr);
                }
                let b = self.swarm.behaviour_mut();
                b.blocked.unblock_peer(peer);
                b.gossipsub.remove_blacklisted_peer(&peer);
                if was {
                    tracing::info!(%peer, "ban lifted by the operator");
                }
                let _ = reply.send(was);
            }
            NetCommand::ListBanned(reply) => {
                let now = Instant::now();
                let mut bans: Vec<(PeerId, u64)> = self
                    .book
                    .bans()
                    .map(|(p, until)| (*p, until.saturating_duration_since(now).as_secs()))
                    .collect();
                bans.sort_by_key(|(p, _)| p.to_string());
                let _ = reply.send(bans);
            }
            NetCommand::GateStats(reply) => {
                let _ = reply.send(self.swarm.behaviour().gate.stats());
            }
        }
    }

    /// Publishes, treating "no peers" and "already published" as normal.
    fn publish_quietly(&mut self, topic: TopicKind, bytes: Vec<u8>) {
        let t = match topic {
            TopicKind::Blocks => self.names.blocks.clone(),
            TopicKind::Txs => self.names.txs.clone(),
            TopicKind::Compact => self.names.compact.clone(),
        };
        match self.swarm.behaviour_mut().gossipsub.publish(t, bytes) {
            Ok(_) | Err(PublishError::Duplicate | PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => tracing::debug!(?topic, error = %e, "announcement failed"),
        }
    }

    /// Puts a peer's listen addresses into the Kademlia table: only a peer that serves our
    /// DHT protocol (a client-mode peer in the table wastes every query sent to it), and no
    /// unspecified or, unless the peer itself is on loopback, loopback address (listening on
    /// 0.0.0.0 reports 127.0.0.1 too, which on another host is the wrong machine).
    fn learn_kad_addresses(&mut self, peer: PeerId, info: &identify::Info) {
        let kad_protocol = self.names.kad_protocol();
        if !info.protocols.iter().any(|p| p.as_ref() == kad_protocol) {
            return;
        }
        let peer_on_loopback = self.conns.get(&peer).is_some_and(|(a, _)| is_loopback(a));
        let usable: Vec<Multiaddr> = info
            .listen_addrs
            .iter()
            .filter(|a| !is_unspecified(a) && (peer_on_loopback || !is_loopback(a)))
            .cloned()
            .collect();
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            for a in usable {
                kad.add_address(&peer, a);
            }
        }
    }

    /// Dials a peer Kademlia just put in its table, so discovery from one bootstrap ends in
    /// connections (gossip and sync), not only table entries; bounded by [`DISCOVERY_DIALS`]
    /// connections so a large DHT does not make us dial everyone.
    fn dial_discovered(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.book.is_banned(&peer)
            || self.conns.len() >= DISCOVERY_DIALS
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(addresses)
            .allocate_new_port()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "cannot dial discovered peer");
        }
    }

    /// Bans the address `peer` is connected from (inbound connections from there are refused
    /// whatever peer id they bring), unless it is exempt (loopback on a devnet).
    fn ban_address(&mut self, peer: PeerId, until: Instant) {
        let Some((addr, _)) = self.conns.get(&peer) else { return };
        let addr = addr.clone();
        if self.swarm.behaviour_mut().gate.ban_address(&addr, until) {
            tracing::info!(%peer, %addr, "address banned");
            self.banned_addrs.insert(peer, addr);
        }
    }

    fn penalise(&mut self, peer: PeerId, what: Misbehaviour) {
        tracing::debug!(%peer, ?what, "peer misbehaved");
        if self.book.report(peer, &what, Instant::now()) {
            tracing::warn!(%peer, reason = ?what, "banning peer");
            self.ban_address(peer, Instant::now() + self.ban_duration);
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(peer);
            b.gossipsub.blacklist_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.send_modify(|v| v.push(address));
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                let remote = endpoint.get_remote_address().clone();
                self.conns
                    .entry(peer_id)
                    .or_insert_with(|| (remote.clone(), !endpoint.is_dialer()));
                for (addr, id) in &mut self.persistent {
                    if id.is_none() && endpoint.is_dialer() && strip_p2p(addr) == strip_p2p(&remote) {
                        *id = Some(peer_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                // A yamux frame over what yamux reads, though our windows never allow one:
                // an over-size message by another name (before the address is forgotten).
                if let Some(libp2p::swarm::ConnectionError::IO(e)) = &cause {
                    if super::muxer::is_oversize_frame(e) {
                        self.penalise(peer_id, Misbehaviour::Oversized(format!("yamux frame: {e}")));
                    }
                }
                if num_established > 0 {
                    return;
                }
                tracing::debug!(peer = %peer_id, "disconnected");
                self.ready.remove(&peer_id);
                self.conns.remove(&peer_id);
                self.pings.remove(&peer_id);
                self.rate.remove(&peer_id);
                self.sync.on_peer_gone(&peer_id);
                self.forget_missed(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                if info.protocol_version != self.names.identify_version() {
                    tracing::info!(peer = %peer_id, theirs = %info.protocol_version, "peer is of another chain; disconnecting");
                    self.penalise(peer_id, Misbehaviour::WrongChain(info.protocol_version));
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.learn_kad_addresses(peer_id, &info);
                if self.ready.insert(peer_id) {
                    tracing::info!(peer = %peer_id, agent = %info.agent_version, "peer ready");
                    self.sync
                        .on_peer_ready(peer_id, &mut Requests(&mut self.swarm.behaviour_mut().sync));
                    self.drain_sync();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
                if matches!(self.names.kind(&topic), Some(TopicKind::Blocks | TopicKind::Compact)) =>
            {
                self.on_block_topic_subscribed(peer_id)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer, result: Ok(rtt), ..
            }))
                // Only connected peers: the entry goes with the last connection.
                if self.conns.contains_key(&peer) =>
            {
                self.pings.insert(peer, rtt);
                self.swarm.behaviour_mut().gate.note_ping(&peer, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                addresses,
                ..
            })) => self.dial_discovered(peer, addresses.into_vec()),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) && !self.book.is_banned(&peer) {
                        let _ = self.dial(addr.with(Protocol::P2p(peer)));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_sync_event(&mut self, ev: request_response::Event<RequestFrame, SyncResponse>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => match request {
                    RequestFrame::Request(r) => self.serve(peer, r, channel),
                    RequestFrame::Malformed(reason) => {
                        self.respond(channel, SyncResponse::Error(format!("malformed request: {reason}")));
                        self.penalise(peer, Misbehaviour::Oversized(format!("sync request: {reason}")));
                    }
                    // The codec never reads this variant; answer it like a malformed one.
                    RequestFrame::Raw(_) => {
                        self.respond(channel, SyncResponse::Error("malformed request".into()));
                    }
                },
                request_response::Message::Response { request_id, response } => {
                    let Some(response) = self.on_compact_response(request_id, peer, response) else {
                        return;
                    };
                    self.sync.on_response(
                        request_id,
                        peer,
                        response,
                        &mut Requests(&mut self.swarm.behaviour_mut().sync),
                    );
                    self.drain_sync();
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "sync request failed");
                if let OutboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.penalise(peer, Misbehaviour::Undecodable(format!("sync answer: {e}")));
                    }
                }
                if self.on_compact_failure(request_id, &error) {
                    return;
                }
                let timeout = matches!(error, OutboundFailure::Timeout);
                self.sync
                    .on_failure(request_id, timeout, &mut Requests(&mut self.swarm.behaviour_mut().sync));
                self.drain_sync();
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
                if let request_response::InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.penalise(peer, Misbehaviour::Oversized(format!("sync request: {e}")));
                    }
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Carries out what the sync manager asked for.
    fn drain_sync(&mut self) {
        for out in self.sync.take_outputs() {
            match out {
                SyncOutput::Penalise(peer, what) => self.penalise(peer, what),
                SyncOutput::Precheck(block) => self.prechecker.offer(block),
                // Through the chain task, which announces it only if it is still the tip.
                SyncOutput::Announce(block) => self.chain.announce_tip(block),
                SyncOutput::CheckHeaders { peer, headers } => {
                    let chain = self.chain.clone();
                    // Waiting for room in the chain's queue happens in the future, not here.
                    self.pending.push(
                        async move {
                            let verdict = chain.check_headers(headers).await.ok();
                            Completion::Headers { peer, verdict }
                        }
                        .boxed(),
                    );
                }
                SyncOutput::Submit(blocks) => {
                    let chain = self.chain.clone();
                    self.pending
                        .push(async move { Completion::Submitted(chain.submit_blocks(blocks).await.ok()) }.boxed());
                }
            }
        }
    }

    fn on_completion(&mut self, done: Completion) {
        match done {
            Completion::GossipBlock {
                msg_id,
                source,
                verdict,
            } => self.on_block_verdict(msg_id, source, verdict),
            Completion::GossipTx {
                msg_id,
                source,
                verdict,
            } => self.on_tx_verdict(msg_id, source, verdict),
            Completion::Headers { peer, verdict } => {
                // No verdict means the chain task is gone (shutdown): not the peer's fault.
                let verdict = verdict.unwrap_or(HeadersVerdict::Valid {
                    missing: Vec::new(),
                    work: lode_chain::pow::ChainWork::default(),
                    last_height: lode_chain::Height(0),
                });
                self.sync
                    .on_headers_verdict(peer, verdict, &mut Requests(&mut self.swarm.behaviour_mut().sync));
            }
            Completion::Submitted(verdicts) => {
                let tip = self.tip.borrow_and_update().clone();
                self.sync.set_local(tip);
                self.sync.on_submitted(
                    verdicts.unwrap_or_default(),
                    &mut Requests(&mut self.swarm.behaviour_mut().sync),
                );
            }
            Completion::Serve { channel, response } => self.respond(channel, response),
            Completion::CompactMatched { hash, result } => self.on_compact_matched(hash, result),
        }
        self.drain_sync();
    }
}

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

/// Whether a multiaddr's IP is loopback.
fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Whether a multiaddr's IP is unspecified (0.0.0.0 or ::).
fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
