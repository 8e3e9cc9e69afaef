//! [`NodeApi`]: the cloneable handle the RPC server (and any other in-process client) uses
//! to reach a running node's tasks.
//!
//! It holds only *weak* handles to the chain task and the network: a request in flight never
//! keeps either alive past shutdown (a task stops when its last strong handle is gone).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lode_chain::{ChainEvent, ChainParams, Hash256};
use tokio::sync::{broadcast, watch};

use crate::chain_task::{ChainHandle, TipInfo};
use crate::metrics::Metrics;
use crate::miner::MiningMonitor;
use crate::network::NetworkHandle;

/// A cloneable handle to a running node's tasks.
#[derive(Clone)]
pub struct NodeApi {
    pub(crate) peer_id: PeerId,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) params: ChainParams,
    pub(crate) genesis: Hash256,
    pub(crate) data_dir: PathBuf,
    pub(crate) chain: ChainHandle,
    pub(crate) net: NetworkHandle,
    pub(crate) tip: watch::Receiver<TipInfo>,
    pub(crate) events: broadcast::Sender<ChainEvent>,
    pub(crate) accepted_txs: broadcast::Sender<Hash256>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) mining: Arc<MiningMonitor>,
    pub(crate) stop: Arc<watch::Sender<bool>>,
    /// Why the chain task stopped accepting work (disk full), once it has.
    pub(crate) halted: watch::Receiver<Option<String>>,
    pub(crate) default_threads: usize,
    pub(crate) started: std::time::Instant,
    pub(crate) stratum: Option<Arc<crate::stratum::Shared>>,
}

impl NodeApi {
    /// The chain task (a weak handle: it never keeps the node running).
    pub fn chain(&self) -> &ChainHandle {
        &self.chain
    }

    /// The network event loop (a weak handle).
    pub fn net(&self) -> &NetworkHandle {
        &self.net
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Listen addresses with `/p2p/PEER_ID`.
    pub fn p2p_addrs(&self) -> Vec<Multiaddr> {
        self.listen
            .iter()
            .map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Network parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The genesis hash.
    pub fn genesis(&self) -> Hash256 {
        self.genesis
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The current tip.
    pub fn tip(&self) -> TipInfo {
        self.tip.borrow().clone()
    }

    /// A receiver of tip changes.
    pub fn watch_tip(&self) -> watch::Receiver<TipInfo> {
        self.tip.clone()
    }

    /// Chain events from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// Txids the mempool accepts from now on.
    pub fn subscribe_txs(&self) -> broadcast::Receiver<Hash256> {
        self.accepted_txs.subscribe()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The node's own mining record: blocks found, stale, rewards, hash-rate history.
    pub fn mining(&self) -> &Arc<MiningMonitor> {
        &self.mining
    }

    /// Seconds since the node started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Default miner thread count (`--miner-threads`).
    pub fn default_threads(&self) -> usize {
        self.default_threads
    }

    /// Why the node stopped accepting work (a write failed: disk full, I/O error), if it has.
    pub fn halted(&self) -> Option<String> {
        self.halted.borrow().clone()
    }

    /// The Stratum server's state, if it runs.
    pub fn stratum(&self) -> Option<&Arc<crate::stratum::Shared>> {
        self.stratum.as_ref()
    }

    /// Asks the node to stop (RPC `stop`): whoever runs the node waits on
    /// [`crate::NodeHandle::stop_requested`].
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }
}
