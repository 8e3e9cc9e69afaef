//! The Stratum v1 server (`lode node --stratum ADDR`): any SHA-256d miner mines Lode through
//! it, alone (solo: each block pays the node's wallet or the miner's address) or as a pool
//! (`--pool`: PPLNS paid in the coinbase). `docs/STRATUM.md` describes the surface and the
//! payout rule; ADR 0008 the design.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | [`StratumConfig`], [`config::PoolConfig`] |
//! | [`messages`] | request parsing, replies, error codes |
//! | [`jobs`] | templates from the chain task, per-job coinbases |
//! | [`share`] | checking a submit against its job |
//! | [`vardiff`] | per-connection difficulty |
//! | [`session`] | one connection's state machine and loop |
//! | [`shared`] | what every connection shares (caps, bans, templates, pool, stats) |
//! | [`server`] | accept loop, metrics refresh |
//! | [`pool`] | durable share log, PPLNS payouts, found-block audit |
//! | [`stats`] | per-worker figures, bounded |
//!
//! The wire transforms and the capped line reader shared with `lode miner` are in
//! [`crate::common::stratum`] and [`crate::common::lines`].

pub mod config;
pub mod jobs;
pub mod messages;
pub mod pool;
pub mod server;
pub mod session;
pub mod share;
pub mod shared;
pub mod stats;
pub mod vardiff;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use lode_chain::ChainParams;
use tokio::sync::watch;

pub use config::{PoolConfig, StratumConfig};
pub use shared::Shared;

use crate::chain_task::{ChainHandle, TipInfo};
use crate::error::NodeError;

/// A running Stratum server.
pub struct StratumServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state (statistics, pool) for RPC and metrics.
    pub shared: Arc<Shared>,
}

/// Binds `config.listen`, opens the pool's database in pool mode, and starts the template
/// task and the accept loop; both stop on `shutdown`.
pub async fn start(
    config: StratumConfig,
    params: ChainParams,
    data_dir: &Path,
    chain: ChainHandle,
    tip: watch::Receiver<TipInfo>,
    shutdown: watch::Receiver<bool>,
) -> Result<StratumServer, NodeError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| NodeError::Listen {
            addr: config.listen.to_string(),
            reason: format!("Stratum port: {e}"),
        })?;
    let addr = listener.local_addr().map_err(|e| NodeError::Listen {
        addr: config.listen.to_string(),
        reason: e.to_string(),
    })?;
    let pool = match &config.pool {
        Some(pc) => {
            let dir = data_dir.to_path_buf();
            let pc = pc.clone();
            let pool = tokio::task::spawn_blocking(move || pool::Pool::open(&dir, pc))
                .await
                .map_err(|e| NodeError::Task(e.to_string()))?
                .map_err(|e| NodeError::Config(e.to_string()))?;
            Some(Arc::new(pool))
        }
        None => None,
    };
    let (template_tx, template_rx) = watch::channel(None);
    let shared = Arc::new(Shared::new(
        config.clone(),
        params,
        chain.clone(),
        tip.clone(),
        template_rx,
        pool.clone(),
    ));
    tokio::spawn(jobs::run(
        chain,
        tip,
        pool,
        template_tx,
        config.job_interval,
        shutdown.clone(),
    ));
    tokio::spawn(server::accept_loop(listener, shared.clone(), shutdown));
    tracing::info!(%addr, mode = if config.pool.is_some() { "pool" } else { "solo" }, "Stratum server listening");
    Ok(StratumServer { addr, shared })
}
