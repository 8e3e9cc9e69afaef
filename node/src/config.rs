//! Node configuration: everything `lode node` takes from its flags, already validated.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use lode_chain::ChainParams;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (default).
    Human,
    /// One JSON object per line.
    Json,
}

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Network parameters (devnet, regtest or a chain spec).
    pub params: ChainParams,
    /// Data directory (chain store, node key).
    pub data_dir: PathBuf,
    /// Addresses to listen on for libp2p.
    pub p2p_listen: Vec<Multiaddr>,
    /// Peers to dial at start and re-dial when the connection drops.
    pub peers: Vec<Multiaddr>,
    /// The RPC server (`None`: no HTTP port).
    pub rpc: Option<crate::rpc::RpcConfig>,
    /// Mine with the embedded miner.
    pub mine: bool,
    /// Miner threads.
    pub miner_threads: usize,
    /// Where the coinbase pays instead of a fresh wallet address.
    pub mining_address: Option<lode_chain::PubkeyHash>,
    /// How the built-in wallet is chosen.
    pub wallet: crate::mining::WalletConfig,
    /// Discover LAN peers with mDNS.
    pub mdns: bool,
    /// Run Kademlia (bootstrapped through `peers`).
    pub kademlia: bool,
    /// Most established connections in total.
    pub max_connections: u32,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Show an indicatif bar during sync when stderr is a terminal.
    pub progress_bar: bool,
    /// Testing only: gossipsub `max_transmit_size` override (a hostile test peer uses it to
    /// send oversized messages). `None` derives it from the max block size.
    pub gossip_max_transmit_override: Option<usize>,
}

impl NodeConfig {
    /// A configuration with defaults for `params` in `data_dir`, listening on an OS-chosen
    /// loopback port with mDNS and Kademlia off: what tests and embedders start from.
    pub fn local(params: ChainParams, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            params,
            data_dir,
            p2p_listen: vec![loopback_any_port()],
            peers: Vec::new(),
            rpc: None,
            mine: false,
            miner_threads: 1,
            mining_address: None,
            wallet: crate::mining::WalletConfig::default(),
            mdns: false,
            kademlia: false,
            max_connections: 64,
            ban_duration: Duration::from_secs(3600),
            progress_bar: false,
            gossip_max_transmit_override: None,
        }
    }

    /// Largest gossip message per topic: a max-size block (blocks) or transaction (txs) plus
    /// room for gossipsub's framing, equal on every node of the network. A message over its
    /// topic's limit but under the frame limit ([`NodeConfig::gossip_frame_limit`]) is decoded
    /// and counted against its sender's score (and the sender banned); only frames beyond
    /// that are dropped by the codec unread.
    pub fn gossip_topic_limits(&self) -> (usize, usize) {
        match self.gossip_max_transmit_override {
            Some(o) => (o, o),
            None => (
                self.params.max_block_size + GOSSIP_FRAME_OVERHEAD,
                self.params.max_tx_size + GOSSIP_FRAME_OVERHEAD,
            ),
        }
    }

    /// Largest gossip frame read at all: twice the block topic's limit.
    pub fn gossip_frame_limit(&self) -> usize {
        self.gossip_topic_limits().0.saturating_mul(2)
    }
}

/// Bytes of gossipsub framing allowed on top of a max-size block.
pub const GOSSIP_FRAME_OVERHEAD: usize = 4096;

fn loopback_any_port() -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    Multiaddr::empty()
        .with(Protocol::Ip4(std::net::Ipv4Addr::LOCALHOST))
        .with(Protocol::Tcp(0))
}
