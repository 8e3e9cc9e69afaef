//! The network: the P2P side of the node, one event loop owning the libp2p swarm.
//!
//! [`start`] builds the swarm from the network's own [`NetworkConfig`], listens, and spawns
//! the event loop; everyone else reaches it through a [`NetworkHandle`]. Gossip in, sync and
//! inbound sync serving live in the event loop; what the node publishes comes only from the
//! chain task's announce channel.

pub mod admission;
pub mod behaviour;
pub mod compact;
pub mod config;
mod event_loop;
pub mod gate;
pub mod gossip;
mod handle;
pub mod muxer;
pub mod peers;
pub mod protocol;
pub mod sync;
pub mod transport;

use std::time::Duration;

use libp2p::core::Transport as _;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{noise, tcp, Multiaddr, PeerId};
use lode_chain::ChainParams;
use tokio::sync::{broadcast, mpsc, watch};

pub use config::{HostileServe, NetworkConfig};
pub use handle::{NetworkHandle, PeerInfo};

use crate::chain_task::{Announcement, ChainHandle, Prechecker, TipInfo};
use crate::error::NodeError;
use behaviour::Behaviour;
use event_loop::{EventLoop, LoopParts};
use gossip::Names;

/// Capacity of the network's command queue.
const NET_QUEUE: usize = 64;

/// The peer id at the end of a multiaddr, if any.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().last().and_then(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// What the network is started with besides its config.
pub struct NetworkSetup {
    /// The node's libp2p identity.
    pub key: Keypair,
    /// Network parameters (genesis names the topics; sizes bound messages).
    pub params: ChainParams,
    /// Topic and protocol names of our chain.
    pub names: Names,
    /// The chain task (a strong handle: the chain outlives the event loop).
    pub chain: ChainHandle,
    /// The chain's tip.
    pub tip: watch::Receiver<TipInfo>,
    /// Where synced blocks' signatures are checked ahead of their connect.
    pub prechecker: Prechecker,
    /// The chain task's announcements: what the event loop publishes.
    pub announce: broadcast::Receiver<Announcement>,
    /// Set to true to stop.
    pub shutdown: watch::Receiver<bool>,
}

/// A started network.
pub struct RunningNetwork {
    /// A strong handle (the event loop stops when the last one is gone or on shutdown).
    pub handle: NetworkHandle,
    /// The addresses it listens on (port 0 resolved).
    pub listen: Vec<Multiaddr>,
    /// The event loop's task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Builds the swarm, listens on `config.listen`, subscribes to the topics, spawns the event
/// loop and returns once every listener has reported its address.
pub async fn start(config: NetworkConfig, setup: NetworkSetup) -> Result<RunningNetwork, NodeError> {
    for addr in &config.listen {
        check_port_free(addr)?;
    }
    let mut swarm = build_swarm(&setup.key, &setup.names, &config, &setup.params)?;
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| NodeError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    for topic in [&setup.names.blocks, &setup.names.txs, &setup.names.compact] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| NodeError::Network(format!("subscribe: {e}")))?;
    }
    let (listen_tx, mut listen_rx) = watch::channel(Vec::new());
    let (net_tx, net_rx) = mpsc::channel(NET_QUEUE);
    let event_loop = EventLoop::new(LoopParts {
        swarm,
        names: setup.names,
        params: setup.params,
        chain: setup.chain,
        commands: net_rx,
        tip: setup.tip,
        prechecker: setup.prechecker,
        announce: setup.announce,
        listen_addrs: listen_tx,
        shutdown: setup.shutdown,
        peers: config.peers.clone(),
        ban_duration: config.ban_duration,
        progress_bar: config.progress_bar,
        status_interval: config.status_interval,
        hostile_serve: config.hostile_serve.clone(),
        scripted_chain: config.scripted_chain.clone(),
    });
    let task = tokio::spawn(event_loop.run());
    // Return once every listener has reported its address (port 0 becomes a real port).
    let want = config.listen.len();
    let wait = listen_rx.wait_for(|v| v.len() >= want);
    let listen = match tokio::time::timeout(Duration::from_secs(10), wait).await {
        Ok(Ok(v)) => v.clone(),
        _ => return Err(NodeError::Network("listeners did not come up within 10 s".into())),
    };
    Ok(RunningNetwork {
        handle: NetworkHandle::new(net_tx),
        listen,
        task,
    })
}

/// Fails if a fixed TCP listen port is taken. libp2p's TCP transport binds with
/// SO_REUSEPORT, so on Linux a second node on the same port would *succeed* and share the
/// port's connections with the first; a plain bind first finds the conflict and names it.
pub fn check_port_free(addr: &Multiaddr) -> Result<(), NodeError> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(NodeError::Listen {
            addr: addr.to_string(),
            reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("port {port} is already in use")
            } else {
                e.to_string()
            },
        }),
    }
}

fn build_swarm(
    key: &Keypair,
    names: &Names,
    config: &NetworkConfig,
    params: &ChainParams,
) -> Result<libp2p::Swarm<Behaviour>, NodeError> {
    let behaviour = Behaviour::new(key, names, config, params)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        // TCP + Noise + Yamux as `with_tcp` builds it, with port reuse off (see `transport`)
        // and yamux windows no larger than the frames yamux reads (see `muxer`).
        .with_other_transport(|k| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                transport::NoPortReuse(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)))
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(k)?)
                    .multiplex(muxer::Config),
            )
        })
        .map_err(|e| NodeError::Network(format!("transport: {e}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}
