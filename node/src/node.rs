//! Starting and stopping a node, and the handle to a running one.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lode_chain::{Block, ChainEvent, ChainParams, Hash256, Height, Transaction};
use tokio::sync::{broadcast, watch};

use crate::api::NodeApi;
use crate::chain_task::{BlockVerdict, ChainHandle, ChainSetup, MempoolSink, Origin, TipInfo, TxVerdict};
use crate::common::node_key::load_or_create_key;
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::network::gossip::{Names, TopicKind};
use crate::network::sync::Progress;
use crate::network::{NetworkHandle, NetworkSetup};

pub use crate::chain_store::CHAIN_DIR;

/// A running node. Dropping it stops the node without waiting; [`NodeHandle::shutdown`]
/// stops it and waits until the store is flushed and closed.
pub struct NodeHandle {
    api: NodeApi,
    rpc: Option<crate::rpc::RpcServer>,
    stratum_addr: Option<std::net::SocketAddr>,
    stop_requested: watch::Receiver<bool>,
    // The strong handles: they keep the chain task and the event loop alive until shutdown
    // (`api` holds weak ones). Everything else the handle shows comes from `api`.
    chain: Option<ChainHandle>,
    net: NetworkHandle,
    shutdown: watch::Sender<bool>,
    net_task: Option<tokio::task::JoinHandle<()>>,
    chain_thread: Option<std::thread::JoinHandle<Result<(), lode_chain::error::ChainError>>>,
}

/// Starts a node: opens the chain and the wallet, spawns the chain task, starts the network
/// (which listens and dials the configured peers) and the RPC server, each with its own
/// config, and returns once it is listening.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    let NodeConfig {
        params,
        data_dir,
        chain: chain_config,
        network,
        rpc,
        mining,
        wallet,
        stratum,
    } = config;
    for addr in &network.listen {
        crate::network::check_port_free(addr)?;
    }
    if let Some(rpc) = rpc.as_ref().filter(|r| r.listen.port() != 0) {
        if let Err(e) = std::net::TcpListener::bind(rpc.listen) {
            return Err(NodeError::Listen {
                addr: rpc.listen.to_string(),
                reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!("RPC port {} is already in use", rpc.listen.port())
                } else {
                    e.to_string()
                },
            });
        }
    }
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    let key = load_or_create_key(&data_dir)?;
    let peer_id = key.public().to_peer_id();

    // The chain, and the built-in wallet rebuilt from the chain's address index.
    let (chain, wallet) = tokio::task::spawn_blocking({
        let params = params.clone();
        let data_dir = data_dir.clone();
        move || -> Result<_, NodeError> {
            let chain = crate::chain_store::open(&data_dir, params)?;
            let wallet = crate::wallet::NodeWallet::open(&data_dir, &wallet, &chain)?;
            Ok((chain, wallet))
        }
    })
    .await
    .map_err(|e| NodeError::Task(e.to_string()))??;
    let genesis = chain.genesis_hash();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let default_threads = mining.threads;
    // The mining ledger saved by the last run, re-checked against the chain as it is now.
    let monitor = crate::miner::MiningMonitor::open(&data_dir, &chain);
    let running_chain = crate::chain_task::spawn(ChainSetup {
        config: chain_config,
        sink: Box::new(MempoolSink::new(&params)),
        chain,
        wallet: Some(wallet),
        mining,
        metrics: Some(metrics.clone()),
        monitor: monitor.clone(),
        mempool_dir: Some(data_dir.clone()),
    })?;
    let chain = running_chain.handle;
    let outputs = running_chain.outputs;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let running_net = crate::network::start(
        network,
        NetworkSetup {
            key,
            params: params.clone(),
            names: Names::new(&genesis),
            chain: chain.clone(),
            tip: outputs.tip.clone(),
            prechecker: running_chain.prechecker,
            announce: outputs.announce.subscribe(),
            shutdown: shutdown_rx,
        },
    )
    .await?;
    spawn_tick(chain.downgrade());
    crate::miner::MiningMonitor::spawn_sampler(&monitor, shutdown_tx.subscribe());
    let stratum = match stratum {
        Some(sc) => Some(
            crate::stratum::start(
                sc,
                params.clone(),
                &data_dir,
                chain.downgrade(),
                outputs.tip.clone(),
                shutdown_tx.subscribe(),
            )
            .await?,
        ),
        None => None,
    };

    let tip = outputs.tip.borrow().clone();
    tracing::info!(
        network = %params.name,
        genesis = %genesis,
        peer_id = %peer_id,
        listen = ?running_net.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        data_dir = %data_dir.display(),
        height = tip.height.0,
        tip = %tip.hash,
        "lode node started"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let api = NodeApi {
        peer_id,
        listen: running_net.listen,
        params,
        genesis,
        data_dir,
        chain: chain.downgrade(),
        net: running_net.handle.downgrade(),
        tip: outputs.tip,
        events: outputs.events,
        accepted_txs: outputs.accepted_txs,
        metrics,
        mining: monitor,
        stop: Arc::new(stop_tx),
        halted: outputs.halted,
        default_threads,
        started: std::time::Instant::now(),
        stratum: stratum.as_ref().map(|s| s.shared.clone()),
    };
    spawn_halt_watch(api.clone());
    let rpc = match rpc {
        Some(rpc_config) => Some(crate::rpc::start(api.clone(), rpc_config, shutdown_tx.subscribe()).await?),
        None => None,
    };

    Ok(NodeHandle {
        api,
        rpc,
        stratum_addr: stratum.as_ref().map(|s| s.addr),
        stop_requested: stop_rx,
        chain: Some(chain),
        net: running_net.handle,
        shutdown: shutdown_tx,
        net_task: Some(running_net.task),
        chain_thread: Some(running_chain.thread),
    })
}

/// Every second, a tick to the chain task (fee refresh of the miner's template, wallet
/// unlock expiry). Holds only a weak handle, so it never keeps the chain task alive.
fn spawn_tick(chain: ChainHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            // A full queue means the task is busy: skipping a tick is harmless.
            if !chain.tick() {
                break;
            }
        }
    });
}

/// How long a halted node keeps answering (writes refused with the reason, `/health` 503)
/// before it stops: long enough for a client or a monitor to learn why.
pub const HALT_GRACE: Duration = Duration::from_secs(5);

/// A write failed (disk full): after [`HALT_GRACE`], ask whoever runs the node to shut it
/// down cleanly, as the RPC `stop` does.
fn spawn_halt_watch(api: NodeApi) {
    let mut halted = api.halted.clone();
    tokio::spawn(async move {
        if halted.wait_for(Option::is_some).await.is_ok() {
            tokio::time::sleep(HALT_GRACE).await;
            api.request_stop();
        }
    });
}

impl NodeHandle {
    /// A cloneable handle for in-process clients (the RPC server uses one).
    pub fn api(&self) -> NodeApi {
        self.api.clone()
    }

    /// The RPC server's address, if it runs.
    pub fn rpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc.as_ref().map(|r| r.addr)
    }

    /// The Stratum server's address, if it runs.
    pub fn stratum_addr(&self) -> Option<std::net::SocketAddr> {
        self.stratum_addr
    }

    /// Why the node stopped accepting work (a failed write), if it did.
    pub fn halted(&self) -> Option<String> {
        self.api.halted()
    }

    /// Resolves when a client asked the node to stop (RPC `stop`).
    pub async fn stop_requested(&self) {
        let mut rx = self.stop_requested.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.api.peer_id()
    }

    /// The addresses it listens on.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.api.listen
    }

    /// Listen addresses with `/p2p/PEER_ID` appended (what `--peer` takes).
    pub fn p2p_addrs(&self) -> Vec<Multiaddr> {
        self.api.p2p_addrs()
    }

    /// Network parameters.
    pub fn params(&self) -> &ChainParams {
        self.api.params()
    }

    /// The current tip.
    pub fn tip(&self) -> TipInfo {
        self.api.tip()
    }

    /// A receiver that sees every tip change.
    pub fn watch_tip(&self) -> watch::Receiver<TipInfo> {
        self.api.watch_tip()
    }

    /// Chain events (connects, disconnects, reorgs) from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<ChainEvent> {
        self.api.subscribe_events()
    }

    /// The chain task (a weak handle).
    pub fn chain(&self) -> &ChainHandle {
        self.api.chain()
    }

    /// The network (a weak handle).
    pub fn net(&self) -> &NetworkHandle {
        self.api.net()
    }

    /// Submits a block found locally (miner, RPC, tests): the chain judges it and, if it
    /// was stored on a valid branch, the chain task announces it to peers.
    pub async fn submit_block(&self, block: Block) -> Result<BlockVerdict, NodeError> {
        self.api.chain().submit_block(Arc::new(block), Origin::Local).await
    }

    /// The built-in wallet's balance and addresses.
    pub async fn wallet_info(&self) -> Result<Option<crate::chain_task::WalletInfo>, NodeError> {
        self.api.chain().wallet_info().await
    }

    /// Submits a transaction (wallet, RPC): judged by the chain task's transaction sink
    /// and, if accepted, announced.
    pub async fn submit_tx(&self, tx: Transaction) -> Result<TxVerdict, NodeError> {
        self.api.chain().submit_tx(tx, Origin::Local).await
    }

    /// Testing and debugging: publishes raw bytes on a topic without any local check (how a
    /// hostile peer is simulated). Returns the publish result.
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: TopicKind, bytes: Vec<u8>) -> Result<Result<(), String>, NodeError> {
        self.net.publish_raw(topic, bytes).await
    }

    /// Testing: sends a raw sync request to `peer` outside the sync manager.
    #[doc(hidden)]
    pub async fn send_raw_sync_request(
        &self,
        peer: PeerId,
        request: crate::network::protocol::RequestFrame,
    ) -> Result<(), NodeError> {
        self.net.send_raw_sync_request(peer, request).await
    }

    /// Txids in the mempool.
    pub async fn mempool_txids(&self) -> Result<Vec<Hash256>, NodeError> {
        self.api.chain().mempool_txids().await
    }

    /// Best-chain block hash at `height`.
    pub async fn hash_at(&self, height: Height) -> Result<Option<Hash256>, NodeError> {
        self.api.chain().hash_at(height).await
    }

    /// Dials a peer (multiaddr with or without `/p2p/PEER_ID`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.net.dial(addr).await
    }

    /// Connected peers that identified as our chain.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.net.peers().await
    }

    /// Whether `peer` is banned.
    pub async fn is_banned(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.net.is_banned(peer).await
    }

    /// Sync progress (our height and the best height peers report).
    pub async fn progress(&self) -> Result<Progress, NodeError> {
        self.net.progress().await
    }

    /// Stops the node: closes connections, lets the chain task finish what it has queued
    /// (a block being written is written whole), flushes and closes the store.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.shutdown.send(true);
        self.join().await
    }

    /// Stops the node abruptly, as a crash would (connections are dropped, not closed);
    /// still waits for the chain thread so the data dir can be reopened in this process.
    pub async fn kill(mut self) -> Result<(), NodeError> {
        if let Some(t) = self.net_task.take() {
            t.abort();
            let _ = t.await;
        }
        self.join().await
    }

    async fn join(&mut self) -> Result<(), NodeError> {
        if let Some(rpc) = self.rpc.take() {
            // The accept loop stops on the shutdown signal; connections get 2 s to finish.
            let mut task = rpc.task;
            if tokio::time::timeout(Duration::from_secs(3), &mut task).await.is_err() {
                task.abort();
            }
            // Like bitcoind's cookie: gone when the server is, so clients fail fast and
            // clearly instead of trying a stale port with a dead token.
            for f in [crate::rpc::RPC_URL_FILE, crate::rpc::auth::COOKIE_FILE] {
                let _ = std::fs::remove_file(self.api.data_dir().join(f));
            }
        }
        if let Some(t) = self.net_task.take() {
            t.await.map_err(|e| NodeError::Task(e.to_string()))?;
        }
        // The chain task stops when its last strong handle is gone: ours and the event loop's.
        self.chain = None;
        if let Some(t) = self.chain_thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| NodeError::Task(e.to_string()))?
                .map_err(|_| NodeError::Task("chain thread panicked".into()))??;
        }
        // The chain task is gone: the ledger is final; save it.
        let mining = self.api.mining.clone();
        let _ = tokio::task::spawn_blocking(move || mining.save()).await;
        tracing::info!("node stopped");
        Ok(())
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        // Without an explicit shutdown, still stop the tasks (they exit on their own).
        let _ = self.shutdown.send(true);
    }
}
