//! The network's own configuration: what `lode node` takes for the P2P side.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use lode_chain::ChainParams;

/// Connection slots kept for connections we dial (configured and discovered peers), which
/// inbound connections cannot take: at most half of `max_connections`.
pub const OUTBOUND_SLOTS: u32 = 8;

/// Default most inbound connections from one IP address: a few nodes behind one NAT get in,
/// one machine cannot take every inbound slot.
pub const INBOUND_PER_ADDRESS: u32 = 4;

/// Bytes of gossipsub framing allowed on top of a max-size block.
pub const GOSSIP_FRAME_OVERHEAD: usize = 4096;

/// How the node takes part in the P2P network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Addresses to listen on for libp2p.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and re-dial when the connection drops.
    pub peers: Vec<Multiaddr>,
    /// Discover LAN peers with mDNS.
    pub mdns: bool,
    /// Run Kademlia (bootstrapped through `peers`).
    pub kademlia: bool,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most inbound connections from one remote IP address.
    pub inbound_per_address: u32,
    /// Loopback peers are exempt from the per-address cap and from bans by address (several
    /// devnet nodes share 127.0.0.1; banning it would cut off all of them). Tests turn it
    /// off to exercise the address rules on loopback.
    pub loopback_exempt: bool,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Show an indicatif bar during sync when stderr is a terminal.
    pub progress_bar: bool,
    /// Testing only: gossipsub `max_transmit_size` override (a hostile test peer uses it to
    /// send oversized messages). `None` derives it from the max block size.
    pub gossip_max_transmit_override: Option<usize>,
    /// How often each peer is asked for its tip (tests lengthen it to prove that gossip
    /// alone delivers a block).
    pub status_interval: Duration,
    /// Testing only: serve sync requests as a liar does (see [`HostileServe`]).
    pub hostile_serve: Option<HostileServe>,
    /// Testing only: answer status, headers and blocks requests from this chain (blocks
    /// after genesis, parents first) instead of our own, whatever its blocks contain: a
    /// hostile peer serving a branch that no honest node would store.
    pub scripted_chain: Option<Arc<Vec<lode_chain::Block>>>,
}

/// Testing only: how a hostile test peer answers sync requests. It claims a height (and the
/// work of that many blocks at the easiest target) in its status answers, and answers
/// headers and blocks requests never (holding the stream open) or always with an error.
#[derive(Clone, Debug)]
pub struct HostileServe {
    /// The height claimed.
    pub claim_height: u32,
    /// True: never answer headers or blocks requests; false: answer them with errors.
    pub silent: bool,
    /// Headers and blocks requests received (for tests to count).
    pub requests: Arc<AtomicU64>,
}

impl Default for NetworkConfig {
    /// One OS-chosen loopback port, no peers, mDNS and Kademlia off: what tests and
    /// embedders start from.
    fn default() -> NetworkConfig {
        NetworkConfig {
            listen: vec![loopback_any_port()],
            peers: Vec::new(),
            mdns: false,
            kademlia: false,
            max_connections: 64,
            inbound_per_address: INBOUND_PER_ADDRESS,
            loopback_exempt: true,
            ban_duration: Duration::from_secs(3600),
            progress_bar: false,
            gossip_max_transmit_override: None,
            status_interval: crate::network::sync::STATUS_INTERVAL,
            hostile_serve: None,
            scripted_chain: None,
        }
    }
}

impl NetworkConfig {
    /// Most inbound connections: `max_connections` less the slots kept for outbound ones
    /// ([`OUTBOUND_SLOTS`], at most half), so a flood of inbound connections can never keep
    /// the node from its configured peers.
    pub fn max_inbound(&self) -> u32 {
        self.max_connections
            .saturating_sub(OUTBOUND_SLOTS.min(self.max_connections / 2))
    }

    /// Largest gossip message per topic: a max-size block (blocks) or transaction (txs) plus
    /// room for gossipsub's framing, equal on every node of the network. A message over its
    /// topic's limit but under the frame limit ([`NetworkConfig::gossip_frame_limit`]) is
    /// decoded and counted against its sender's score (and the sender banned); only frames
    /// beyond that are dropped by the codec unread.
    pub fn gossip_topic_limits(&self, params: &ChainParams) -> (usize, usize) {
        match self.gossip_max_transmit_override {
            Some(o) => (o, o),
            None => (
                params.max_block_size + GOSSIP_FRAME_OVERHEAD,
                params.max_tx_size + GOSSIP_FRAME_OVERHEAD,
            ),
        }
    }

    /// Largest gossip frame read at all: twice the block topic's limit.
    pub fn gossip_frame_limit(&self, params: &ChainParams) -> usize {
        self.gossip_topic_limits(params).0.saturating_mul(2)
    }
}

fn loopback_any_port() -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    Multiaddr::empty()
        .with(Protocol::Ip4(std::net::Ipv4Addr::LOCALHOST))
        .with(Protocol::Tcp(0))
}
