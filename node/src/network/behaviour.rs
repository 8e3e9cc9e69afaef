//! The combined libp2p behaviour.

// `#[derive(NetworkBehaviour)]` generates `BehaviourEvent` with one undocumented variant per
// field; every item written here is documented.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, connection_limits, gossipsub, identify, mdns, ping, request_response, StreamProtocol};

use lode_chain::ChainParams;

use super::config::NetworkConfig;
use super::gate::Gate;
use super::gossip::{self, Names};
use super::protocol::SyncCodec;
use crate::error::NodeError;

/// Everything the node speaks, in one behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Bans: blocked peers are disconnected and refused.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Connection limits (total and per peer).
    pub limits: connection_limits::Behaviour,
    /// Inbound slots: bans by address, a cap per address, eviction when full.
    pub gate: Gate,
    /// Identify: our chain (genesis) and listen addresses.
    pub identify: identify::Behaviour,
    /// Keep-alive and round-trip times.
    pub ping: ping::Behaviour,
    /// Block and transaction gossip.
    pub gossipsub: gossipsub::Behaviour,
    /// Headers-first sync.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// LAN discovery (off with `--no-mdns`).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Wider discovery, bootstrapped through `--peer`.
    pub kad: Toggle<kad::Behaviour<MemoryStore>>,
}

/// Most concurrent sync streams per connection (body download pipelines requests).
const SYNC_STREAMS: usize = 64;
/// A sync request unanswered for this long has failed.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

impl Behaviour {
    /// Builds the behaviour for `config` on the network `params` describe.
    pub fn new(
        key: &Keypair,
        names: &Names,
        config: &NetworkConfig,
        params: &ChainParams,
    ) -> Result<Behaviour, NodeError> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            // One over: room for a newcomer while the gate evicts the peer it replaces. The
            // inbound share (which cannot take the slots kept for the peers we dial) is the
            // gate's, since making room needs a behaviour that can close connections.
            .with_max_established(Some(config.max_connections.saturating_add(1)))
            .with_max_pending_incoming(Some(config.max_connections))
            // Two, not one: simultaneous dials briefly give a pair of connections.
            .with_max_established_per_peer(Some(2));
        let identify = identify::Behaviour::new(
            identify::Config::new(names.identify_version(), key.public())
                .with_agent_version(format!("lode/{}", env!("CARGO_PKG_VERSION"))),
        );
        let sync_protocol = StreamProtocol::try_from_owned(names.sync_protocol())
            .map_err(|e| NodeError::Network(format!("sync protocol name: {e}")))?;
        let sync = request_response::Behaviour::with_codec(
            SyncCodec::new(params.max_block_size),
            [(sync_protocol, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(SYNC_TIMEOUT)
                .with_max_concurrent_streams(SYNC_STREAMS),
        );
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| NodeError::Network(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        let kad = if config.kademlia {
            let protocol = StreamProtocol::try_from_owned(names.kad_protocol())
                .map_err(|e| NodeError::Network(format!("kad protocol name: {e}")))?;
            let mut kc = kad::Config::new(protocol);
            // The event loop bootstraps once it has a peer; kad's own timer would only warn
            // "no known peers" on a node started without `--peer`.
            kc.set_periodic_bootstrap_interval(None);
            let mut k = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kc);
            // Serve the DHT too: on a LAN nobody is behind NAT, and client-only nodes
            // would leave the DHT empty.
            k.set_mode(Some(kad::Mode::Server));
            Some(k)
        } else {
            None
        };
        Ok(Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            gate: Gate::new(
                config.max_inbound() as usize,
                config.inbound_per_address as usize,
                config.loopback_exempt,
            ),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            gossipsub: gossip::behaviour(
                key,
                names,
                config.gossip_frame_limit(params),
                config.gossip_topic_limits(params),
            )?,
            sync,
            mdns: mdns.into(),
            kad: kad.into(),
        })
    }
}
