//! `lode chain reindex --from-peers`: after the rebuild from the stored blocks, the blocks
//! the store lacks (everything after the first missing or unreadable body, which the
//! reindex left out of the best chain) are downloaded from peers by the node's own sync,
//! then the node stops cleanly. No second download path: the node runs on the data dir
//! with its RPC off, its miner off and the given peers, until it has caught up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use lode_chain::{ChainParams, Hash256};

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::node::NodeHandle;

/// How often the progress is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long a start may wait for the reindex's store lock to be let go (sled frees it a
/// moment after the last handle is dropped).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What the download did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefetchReport {
    /// Best chain height before (the reindex's).
    pub from_height: u32,
    /// Best chain height after.
    pub height: u32,
    /// Its tip.
    pub tip: Hash256,
    /// Peers connected at the end.
    pub peers: usize,
}

/// Runs the node on `data_dir` with `peers` until its best chain is at least as high as
/// every connected peer says its own is (and no peer has proven a higher one). Gives up
/// with an error when no block arrives for `idle` while it is behind (or no peer answers).
pub async fn fetch_from_peers(
    params: ChainParams,
    data_dir: PathBuf,
    peers: Vec<Multiaddr>,
    idle: Duration,
) -> Result<RefetchReport, NodeError> {
    if peers.is_empty() {
        return Err(NodeError::Config(
            "--from-peers needs at least one --peer MULTIADDR to download from".into(),
        ));
    }
    let mut config = NodeConfig::local(params, data_dir);
    config.network.peers = peers;
    let node = start_when_unlocked(config).await?;
    let outcome = follow(&node, idle).await;
    // Stopped cleanly either way: what arrived is flushed and kept.
    let stopped = node.shutdown().await;
    let report = outcome?;
    stopped?;
    Ok(report)
}

/// Starts the node, waiting for the store lock the reindex just let go.
async fn start_when_unlocked(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match crate::node::start(config.clone()).await {
            Err(e) if e.to_string().contains("could not acquire lock") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Watches the sync until caught up, or until nothing arrives for `idle`.
async fn follow(node: &NodeHandle, idle: Duration) -> Result<RefetchReport, NodeError> {
    let from_height = node.tip().height.0;
    let mut last_height = from_height;
    let mut last_change = Instant::now();
    loop {
        let tip = node.tip();
        if tip.height.0 != last_height {
            last_height = tip.height.0;
            last_change = Instant::now();
        }
        let info = node.net().peer_info().await?;
        let progress = node.progress().await?;
        // The heights peers told us (a claim; `progress.target` is what they proved).
        let told: Vec<u32> = info.iter().filter_map(|p| p.height).collect();
        let best_told = told.iter().copied().max();
        if let Some(best) = best_told {
            if tip.height.0 >= best && progress.target <= tip.height.0 {
                tracing::info!(
                    from = from_height,
                    to = tip.height.0,
                    peers = info.len(),
                    "caught up with the peers"
                );
                return Ok(RefetchReport {
                    from_height,
                    height: tip.height.0,
                    tip: tip.hash,
                    peers: info.len(),
                });
            }
        }
        if last_change.elapsed() >= idle {
            let why = match best_told {
                None if info.is_empty() => "no peer connected".to_string(),
                None => format!("{} peers connected but none told its height", info.len()),
                Some(best) => format!("peers claim height {best}; none sent a block"),
            };
            return Err(NodeError::Refetch(format!(
                "stopped at height {} after {}s with no new block: {why}",
                tip.height.0,
                idle.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
