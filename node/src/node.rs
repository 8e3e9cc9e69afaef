//! Starting and stopping a node, and the handle to a running one.

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId};
use lode_chain::{AcceptStatus, Block, ChainEvent, ChainParams, ChainState, Hash256, Height, Transaction};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::api::NodeApi;
use crate::chain_task::{
    tip_info, BlockVerdict, ChainCommand, ChainOutputs, ChainTask, MempoolSink, TipInfo, TxVerdict,
};
use crate::common::node_key::load_or_create_key;
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::network::behaviour::Behaviour;
use crate::network::gossip::{Names, TopicKind};
use crate::network::sync::Progress;
use crate::network::{EventLoop, LoopParts, NetCommand};

/// Capacity of the chain task's queue: enough for a burst of gossip and sync work; when it
/// is full, gossip is dropped (sync repairs it) and peers' requests get a "busy" answer.
const CHAIN_QUEUE: usize = 256;
/// Capacity of the network's command queue.
const NET_QUEUE: usize = 64;
/// Directory of the chain store inside the data dir.
pub const CHAIN_DIR: &str = "chain";

/// A running node. Dropping it stops the node without waiting; [`NodeHandle::shutdown`]
/// stops it and waits until the store is flushed and closed.
pub struct NodeHandle {
    api: NodeApi,
    rpc: Option<crate::rpc::RpcServer>,
    stop_requested: watch::Receiver<bool>,
    // The strong senders: they keep the chain task and the event loop alive until shutdown
    // (`api` holds weak ones). Everything else the handle shows comes from `api`.
    chain: mpsc::Sender<ChainCommand>,
    net: mpsc::Sender<NetCommand>,
    shutdown: watch::Sender<bool>,
    net_task: Option<tokio::task::JoinHandle<()>>,
    chain_thread: Option<std::thread::JoinHandle<Result<(), lode_chain::error::ChainError>>>,
}

/// Starts a node: opens the chain, spawns the chain task and the network event loop,
/// listens, dials the configured peers, and returns once it is listening.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    for addr in &config.p2p_listen {
        check_port_free(addr)?;
    }
    if let Some(rpc) = config.rpc.as_ref().filter(|r| r.listen.port() != 0) {
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
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    let key = load_or_create_key(&data_dir)?;
    let peer_id = key.public().to_peer_id();

    let params = config.params.clone();
    let chain_path = data_dir.join(CHAIN_DIR);
    let chain = tokio::task::spawn_blocking({
        let params = params.clone();
        move || ChainState::open(&chain_path, params)
    })
    .await
    .map_err(|e| NodeError::Task(e.to_string()))??;
    let genesis = chain.genesis_hash();
    let names = Names::new(&genesis);

    let (tip_tx, tip_rx) = watch::channel(tip_info(&chain));
    let (events_tx, _) = broadcast::channel(1024);
    let (relay_tx, _) = broadcast::channel(1024);
    let (accepted_tx, _) = broadcast::channel(1024);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (chain_tx, chain_rx) = mpsc::channel(CHAIN_QUEUE);
    // The built-in wallet, rebuilt from the chain's address index, and the miner paying it.
    let (chain, mut wallet) = tokio::task::spawn_blocking({
        let data_dir = data_dir.clone();
        let wallet_cfg = config.wallet.clone();
        move || {
            let wallet = crate::mining::NodeWallet::open(&data_dir, &wallet_cfg, &chain);
            (chain, wallet)
        }
    })
    .await
    .map_err(|e| NodeError::Task(e.to_string()))?;
    let mut found_rx = None;
    let miner = if config.mine {
        let pay_to = match config.mining_address {
            Some(p) => p,
            None => wallet
                .as_mut()
                .map_err(|e| NodeError::Wallet(e.to_string()))?
                .fresh_pkh(&params.hrp)?,
        };
        let (found_tx, rx) = std::sync::mpsc::channel();
        found_rx = Some(rx);
        Some(crate::mining::NodeMiner::start(config.miner_threads, pay_to, found_tx)?)
    } else {
        None
    };
    let mut task = ChainTask::new(
        chain,
        Box::new(MempoolSink::new(&params)),
        ChainOutputs {
            tip: tip_tx,
            events: events_tx.clone(),
            relay_txs: relay_tx.clone(),
            accepted_txs: accepted_tx.clone(),
        },
    )
    .with_wallet(wallet?)
    .with_mining_address(config.mining_address)
    .with_metrics(metrics.clone());
    if let Some(m) = miner {
        task = task.with_miner(m);
    }
    let chain_thread = std::thread::Builder::new()
        .name("lode-chain".into())
        .spawn(move || task.run(chain_rx))
        .map_err(|e| NodeError::Task(format!("cannot spawn the chain thread: {e}")))?;

    let swarm = build_swarm(&key, &names, &config)?;
    let mut swarm = swarm;
    for addr in &config.p2p_listen {
        swarm.listen_on(addr.clone()).map_err(|e| NodeError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    for topic in [&names.blocks, &names.txs] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| NodeError::Network(format!("subscribe: {e}")))?;
    }

    let (listen_tx, mut listen_rx) = watch::channel(Vec::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (net_tx, net_rx) = mpsc::channel(NET_QUEUE);
    let event_loop = EventLoop::new(LoopParts {
        swarm,
        names,
        params: params.clone(),
        chain: chain_tx.clone(),
        commands: net_rx,
        tip: tip_rx.clone(),
        relay_txs: relay_tx.subscribe(),
        listen_addrs: listen_tx,
        shutdown: shutdown_rx,
        peers: config.peers.clone(),
        ban_duration: config.ban_duration,
        progress_bar: config.progress_bar,
    });
    let net_task = tokio::spawn(event_loop.run());
    spawn_tick(&chain_tx);
    if let Some(rx) = found_rx {
        spawn_found_bridge(rx, &chain_tx, &net_tx)?;
    }

    // Return once every listener has reported its address (port 0 becomes a real port).
    let want = config.p2p_listen.len();
    let wait = listen_rx.wait_for(|v| v.len() >= want);
    let listen = match tokio::time::timeout(Duration::from_secs(10), wait).await {
        Ok(Ok(v)) => v.clone(),
        _ => return Err(NodeError::Network("listeners did not come up within 10 s".into())),
    };

    let tip = tip_rx.borrow().clone();
    tracing::info!(
        network = %params.name,
        genesis = %genesis,
        peer_id = %peer_id,
        listen = ?listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        data_dir = %data_dir.display(),
        height = tip.height.0,
        tip = %tip.hash,
        "lode node started"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let api = NodeApi {
        peer_id,
        listen: listen.clone(),
        params: params.clone(),
        genesis,
        data_dir: data_dir.clone(),
        chain: chain_tx.downgrade(),
        net: net_tx.downgrade(),
        tip: tip_rx.clone(),
        events: events_tx.clone(),
        accepted_txs: accepted_tx,
        metrics,
        stop: Arc::new(stop_tx),
        default_threads: config.miner_threads,
        started: std::time::Instant::now(),
    };
    let rpc = match config.rpc.clone() {
        Some(rpc_config) => Some(crate::rpc::start(api.clone(), rpc_config, shutdown_tx.subscribe()).await?),
        None => None,
    };

    Ok(NodeHandle {
        api,
        rpc,
        stop_requested: stop_rx,
        chain: chain_tx,
        net: net_tx,
        shutdown: shutdown_tx,
        net_task: Some(net_task),
        chain_thread: Some(chain_thread),
    })
}

/// Every second, a `Tick` to the chain task (fee refresh of the miner's template, wallet
/// unlock expiry). Holds only a weak sender, so it never keeps the chain task alive.
fn spawn_tick(chain: &mpsc::Sender<ChainCommand>) {
    let weak = chain.downgrade();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let Some(chain) = weak.upgrade() else { break };
            // A full queue means the task is busy: skipping a tick is harmless.
            let _ = chain.try_send(ChainCommand::Tick);
        }
    });
}

/// Carries blocks the miner found into the chain task, through the same acceptance path as
/// blocks from peers, and announces the ones that were stored. Holds only weak senders:
/// when the node stops, the chain task drops the miner, whose channel then closes.
pub(crate) fn spawn_found_bridge(
    found: std::sync::mpsc::Receiver<lode_miner::FoundBlock>,
    chain: &mpsc::Sender<ChainCommand>,
    net: &mpsc::Sender<NetCommand>,
) -> Result<(), NodeError> {
    let (chain, net) = (chain.downgrade(), net.downgrade());
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("lode-found".into())
        .spawn(move || {
            while let Ok(f) = found.recv() {
                let (Some(chain), Some(net)) = (chain.upgrade(), net.upgrade()) else {
                    break;
                };
                let hash = f.block.hash();
                let verdict = rt.block_on(submit_and_announce(&chain, &net, Arc::new(f.block)));
                match verdict {
                    Ok(v) => tracing::info!(block = %hash, reward = %f.reward, verdict = ?v, "mined a block"),
                    Err(e) => tracing::warn!(block = %hash, error = %e, "mined block not submitted"),
                }
            }
        })
        .map_err(|e| NodeError::Task(format!("cannot spawn the miner bridge: {e}")))?;
    Ok(())
}

/// Submits a locally found block to the chain task and gossips it if it was stored on a
/// valid branch.
pub(crate) async fn submit_and_announce(
    chain: &mpsc::Sender<ChainCommand>,
    net: &mpsc::Sender<NetCommand>,
    block: Arc<Block>,
) -> Result<BlockVerdict, NodeError> {
    let (reply, rx) = oneshot::channel();
    chain
        .send(ChainCommand::SubmitBlock {
            block: block.clone(),
            reply,
        })
        .await
        .map_err(|_| NodeError::Stopped)?;
    let verdict = rx.await.map_err(|_| NodeError::Stopped)?;
    if matches!(
        verdict,
        BlockVerdict::Accepted(AcceptStatus::Connected | AcceptStatus::SideBranch)
    ) {
        net.send(NetCommand::Publish {
            topic: TopicKind::Blocks,
            bytes: block.to_bytes(),
            reply: None,
        })
        .await
        .map_err(|_| NodeError::Stopped)?;
    }
    Ok(verdict)
}

/// Fails if a fixed TCP listen port is taken. libp2p's TCP transport binds with
/// SO_REUSEPORT, so on Linux a second node on the same port would *succeed* and share the
/// port's connections with the first; a plain bind first finds the conflict and names it.
fn check_port_free(addr: &Multiaddr) -> Result<(), NodeError> {
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

fn build_swarm(key: &Keypair, names: &Names, config: &NodeConfig) -> Result<libp2p::Swarm<Behaviour>, NodeError> {
    let behaviour = Behaviour::new(key, names, config)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(format!("transport: {e}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
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

    async fn ask_chain<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ChainCommand) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.chain.send(make(tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    async fn ask_net<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> NetCommand) -> Result<T, NodeError> {
        self.api.ask_net(make).await
    }

    /// Submits a block found locally (miner, RPC, tests): the chain judges it and, if it
    /// was stored on a valid branch, it is announced to peers.
    pub async fn submit_block(&self, block: Block) -> Result<BlockVerdict, NodeError> {
        self.api.submit_block(block).await
    }

    /// The built-in wallet's balance and addresses.
    pub async fn wallet_info(&self) -> Result<Option<crate::chain_task::WalletInfo>, NodeError> {
        self.ask_chain(|reply| ChainCommand::WalletInfo { reply }).await
    }

    /// Submits a transaction (wallet, RPC): judged by the chain task's transaction sink
    /// and, if accepted, announced.
    pub async fn submit_tx(&self, tx: Transaction) -> Result<TxVerdict, NodeError> {
        self.api.submit_tx(tx).await
    }

    /// Testing and debugging: publishes raw bytes on a topic without any local check (how a
    /// hostile peer is simulated). Returns the publish result.
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: TopicKind, bytes: Vec<u8>) -> Result<Result<(), String>, NodeError> {
        self.ask_net(|reply| NetCommand::Publish {
            topic,
            bytes,
            reply: Some(reply),
        })
        .await
    }

    /// Testing: sends a raw sync request to `peer` outside the sync manager.
    #[doc(hidden)]
    pub async fn send_raw_sync_request(
        &self,
        peer: PeerId,
        request: crate::network::protocol::RequestFrame,
    ) -> Result<(), NodeError> {
        self.net
            .send(NetCommand::RawSyncRequest(peer, request))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Txids in the mempool.
    pub async fn mempool_txids(&self) -> Result<Vec<Hash256>, NodeError> {
        self.ask_chain(|reply| ChainCommand::MempoolTxids { reply }).await
    }

    /// Best-chain block hash at `height`.
    pub async fn hash_at(&self, height: Height) -> Result<Option<Hash256>, NodeError> {
        self.ask_chain(|reply| ChainCommand::HashAt { height, reply }).await
    }

    /// Dials a peer (multiaddr with or without `/p2p/PEER_ID`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.ask_net(|reply| NetCommand::Dial { addr, reply })
            .await?
            .map_err(NodeError::Network)
    }

    /// Connected peers that identified as our chain.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.ask_net(NetCommand::Peers).await
    }

    /// Whether `peer` is banned.
    pub async fn is_banned(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.ask_net(|reply| NetCommand::IsBanned(peer, reply)).await
    }

    /// Sync progress (our height and the best height peers report).
    pub async fn progress(&self) -> Result<Progress, NodeError> {
        self.ask_net(NetCommand::Progress).await
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
        // The chain task stops when its last sender is gone: ours and the event loop's.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.chain, closed));
        if let Some(t) = self.chain_thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| NodeError::Task(e.to_string()))?
                .map_err(|_| NodeError::Task("chain thread panicked".into()))??;
        }
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
