//! [`NodeApi`]: the cloneable handle the RPC server (and any other in-process client) uses
//! to reach a running node's tasks.
//!
//! It holds only *weak* senders: a request in flight never keeps the chain task or the
//! network alive past shutdown (the chain task stops when its last strong sender is gone).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lode_chain::{Block, ChainEvent, ChainParams, Hash256, Transaction};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::chain_task::{BlockVerdict, ChainCommand, ChainTask, TipInfo, TxVerdict};
use crate::error::NodeError;
use crate::metrics::Metrics;
use crate::network::gossip::TopicKind;
use crate::network::NetCommand;

/// A cloneable handle to a running node's tasks.
#[derive(Clone)]
pub struct NodeApi {
    pub(crate) peer_id: PeerId,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) params: ChainParams,
    pub(crate) genesis: Hash256,
    pub(crate) data_dir: PathBuf,
    pub(crate) chain: mpsc::WeakSender<ChainCommand>,
    pub(crate) net: mpsc::WeakSender<NetCommand>,
    pub(crate) tip: watch::Receiver<TipInfo>,
    pub(crate) events: broadcast::Sender<ChainEvent>,
    pub(crate) accepted_txs: broadcast::Sender<Hash256>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stop: Arc<watch::Sender<bool>>,
    pub(crate) default_threads: usize,
    pub(crate) started: std::time::Instant,
}

impl NodeApi {
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

    /// Seconds since the node started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs `f` on the chain thread with the chain task (reads, wallet actions) and returns
    /// its result.
    pub async fn with_chain<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ChainTask) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let chain = self.chain.upgrade().ok_or(NodeError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |task: &mut ChainTask| {
            let _ = tx.send(f(task));
        });
        chain
            .send(ChainCommand::Run(run))
            .await
            .map_err(|_| NodeError::Stopped)?;
        drop(chain);
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Asks the network event loop.
    pub(crate) async fn ask_net<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> NetCommand) -> Result<T, NodeError> {
        let net = self.net.upgrade().ok_or(NodeError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        net.send(make(tx)).await.map_err(|_| NodeError::Stopped)?;
        drop(net);
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Gossips bytes on a topic.
    pub(crate) async fn publish(&self, topic: TopicKind, bytes: Vec<u8>) -> Result<(), NodeError> {
        let net = self.net.upgrade().ok_or(NodeError::Stopped)?;
        net.send(NetCommand::Publish {
            topic,
            bytes,
            reply: None,
        })
        .await
        .map_err(|_| NodeError::Stopped)
    }

    /// Submits a block like the miner does: the chain judges it; stored on a valid branch,
    /// it is announced.
    pub async fn submit_block(&self, block: Block) -> Result<BlockVerdict, NodeError> {
        let (chain, net) = match (self.chain.upgrade(), self.net.upgrade()) {
            (Some(c), Some(n)) => (c, n),
            _ => return Err(NodeError::Stopped),
        };
        crate::node::submit_and_announce(&chain, &net, Arc::new(block)).await
    }

    /// Submits a transaction; accepted, it is announced.
    pub async fn submit_tx(&self, tx: Transaction) -> Result<TxVerdict, NodeError> {
        let bytes = lode_chain::encoding::encode(&tx);
        let verdict = self.with_chain(move |task| task.submit_tx(tx)).await?;
        if matches!(verdict, TxVerdict::Accepted { .. }) {
            self.publish(TopicKind::Txs, bytes).await?;
        }
        Ok(verdict)
    }

    /// Starts the embedded miner with `threads` workers (restarts it if running), paying
    /// the configured mining address or a fresh wallet address.
    pub async fn start_mining(&self, threads: usize) -> Result<(), NodeError> {
        let (chain, net) = match (self.chain.upgrade(), self.net.upgrade()) {
            (Some(c), Some(n)) => (c, n),
            _ => return Err(NodeError::Stopped),
        };
        let (found_tx, found_rx) = std::sync::mpsc::channel();
        let hrp = self.params.hrp.clone();
        self.with_chain(move |task| -> Result<(), NodeError> {
            // Stop the old workers first: two miners would race on one tip.
            task.set_miner(None);
            let pay_to = match task.mining_address() {
                Some(p) => p,
                None => task
                    .wallet_mut()
                    .ok_or_else(|| NodeError::Wallet("no wallet to pay the coinbase to".into()))?
                    .fresh_pkh(&hrp)?,
            };
            let miner = crate::mining::NodeMiner::start(threads, pay_to, found_tx)?;
            task.set_miner(Some(miner));
            Ok(())
        })
        .await??;
        crate::node::spawn_found_bridge(found_rx, &chain, &net)
    }

    /// Stops the embedded miner (its threads are joined).
    pub async fn stop_mining(&self) -> Result<(), NodeError> {
        self.with_chain(|task| task.set_miner(None)).await
    }

    /// Default miner thread count (`--miner-threads`).
    pub fn default_threads(&self) -> usize {
        self.default_threads
    }

    /// Asks the node to stop (RPC `stop`): whoever runs the node waits on
    /// [`crate::NodeHandle::stop_requested`].
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }
}
