//! [`NetworkHandle`]: the cloneable, typed way to the network event loop. The command enum
//! is private to the network module; everyone else calls one method per action.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::gossip::TopicKind;
use super::protocol::RequestFrame;
use super::sync::Progress;
use crate::error::NodeError;
use crate::task_sender::TaskSender;

/// Commands to the event loop.
pub(super) enum NetCommand {
    /// Dial an address (with or without `/p2p/PEER_ID`).
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Testing: publish bytes on a topic without any local check.
    PublishRaw {
        topic: TopicKind,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Peers with at least one connection that identified as our chain.
    Peers(oneshot::Sender<Vec<PeerId>>),
    /// Whether a peer is banned.
    IsBanned(PeerId, oneshot::Sender<bool>),
    /// Sync progress.
    Progress(oneshot::Sender<Progress>),
    /// What compact blocks did at this node.
    CompactCounts(oneshot::Sender<super::compact::CompactCounts>),
    /// Testing: send any sync request to a peer, bypassing the sync manager (a hostile
    /// peer's oversized or flooding requests). The answer is dropped.
    RawSyncRequest(PeerId, RequestFrame),
    /// Connected peers of our chain with their address and direction.
    PeerInfo(oneshot::Sender<Vec<PeerInfo>>),
    /// Adds (keep re-dialling; dials at once) or removes an address from the peers to dial.
    SetPeer {
        addr: Multiaddr,
        add: bool,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Closes every connection to a peer; `false` if none was open.
    Disconnect(PeerId, oneshot::Sender<bool>),
    /// Bans a peer for a time (`Some`) or lifts its ban (`None`); the reply says whether
    /// anything changed.
    Ban(PeerId, Option<Duration>, oneshot::Sender<bool>),
    /// Banned peers and the seconds left on each ban.
    ListBanned(oneshot::Sender<Vec<(PeerId, u64)>>),
    /// What the inbound gate refused and evicted.
    GateStats(oneshot::Sender<super::gate::GateStats>),
}

/// A connected peer as the RPC shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its peer id.
    pub id: PeerId,
    /// Remote address of its first connection.
    pub addr: Multiaddr,
    /// True if it dialled us.
    pub inbound: bool,
    /// The best height it told us of (sync status), if it has.
    pub height: Option<u32>,
    /// The last ping round trip, if one has been measured.
    pub ping: Option<std::time::Duration>,
}

/// A cloneable handle to the network event loop (strong: the node handle's; weak: the RPC
/// server's, see [`NetworkHandle::downgrade`]).
#[derive(Clone)]
pub struct NetworkHandle {
    tx: TaskSender<NetCommand>,
}

impl NetworkHandle {
    pub(super) fn new(tx: mpsc::Sender<NetCommand>) -> NetworkHandle {
        NetworkHandle {
            tx: TaskSender::Strong(tx),
        }
    }

    /// A handle that does not keep the event loop alive.
    pub fn downgrade(&self) -> NetworkHandle {
        NetworkHandle {
            tx: self.tx.downgrade(),
        }
    }

    async fn send(&self, cmd: NetCommand) -> Result<(), NodeError> {
        let tx = self.tx.get().ok_or(NodeError::Stopped)?;
        tx.send(cmd).await.map_err(|_| NodeError::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> NetCommand) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Dials a peer once (multiaddr with or without `/p2p/PEER_ID`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.ask(|reply| NetCommand::Dial { addr, reply })
            .await?
            .map_err(NodeError::Network)
    }

    /// Adds an address to the peers kept connected (dialled now and re-dialled).
    pub async fn add_peer(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.ask(|reply| NetCommand::SetPeer { addr, add: true, reply })
            .await?
            .map_err(NodeError::Network)
    }

    /// Removes an address from the peers kept connected.
    pub async fn remove_peer(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.ask(|reply| NetCommand::SetPeer {
            addr,
            add: false,
            reply,
        })
        .await?
        .map_err(NodeError::Network)
    }

    /// Connected peers that identified as our chain.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.ask(NetCommand::Peers).await
    }

    /// Connected peers with their address and direction.
    pub async fn peer_info(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(NetCommand::PeerInfo).await
    }

    /// Whether `peer` is banned.
    pub async fn is_banned(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.ask(|reply| NetCommand::IsBanned(peer, reply)).await
    }

    /// What the inbound gate refused (banned or full addresses, full slots) and evicted.
    pub async fn gate_stats(&self) -> Result<super::gate::GateStats, NodeError> {
        self.ask(NetCommand::GateStats).await
    }

    /// Sync progress (our height and the best height peers report).
    pub async fn progress(&self) -> Result<Progress, NodeError> {
        self.ask(NetCommand::Progress).await
    }

    /// What compact blocks did at this node since it started.
    pub async fn compact_counts(&self) -> Result<super::compact::CompactCounts, NodeError> {
        self.ask(NetCommand::CompactCounts).await
    }

    /// Closes every connection to `peer`; `false` if none was open.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.ask(|reply| NetCommand::Disconnect(peer, reply)).await
    }

    /// Bans `peer` for `duration` (`None`: lifts its ban); whether anything changed.
    pub async fn ban(&self, peer: PeerId, duration: Option<Duration>) -> Result<bool, NodeError> {
        self.ask(|reply| NetCommand::Ban(peer, duration, reply)).await
    }

    /// Banned peers and the seconds left on each ban.
    pub async fn list_banned(&self) -> Result<Vec<(PeerId, u64)>, NodeError> {
        self.ask(NetCommand::ListBanned).await
    }

    /// Testing and debugging: publishes raw bytes on a topic without any local check (how
    /// a hostile peer is simulated). Returns the publish result.
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: TopicKind, bytes: Vec<u8>) -> Result<Result<(), String>, NodeError> {
        self.ask(|reply| NetCommand::PublishRaw { topic, bytes, reply }).await
    }

    /// Testing: sends a raw sync request to `peer` outside the sync manager.
    #[doc(hidden)]
    pub async fn send_raw_sync_request(&self, peer: PeerId, request: RequestFrame) -> Result<(), NodeError> {
        self.send(NetCommand::RawSyncRequest(peer, request)).await
    }
}
