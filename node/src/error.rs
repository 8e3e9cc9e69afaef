//! The node's errors: what can stop a node from starting or make a request fail.

use thiserror::Error;

/// Errors of the node library. `main` wraps them in `anyhow` with context.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The chain store refused to open (another network's data dir, corrupt store, I/O).
    #[error(transparent)]
    Chain(#[from] lode_chain::error::ChainError),
    /// A chain-spec file could not be loaded.
    #[error(transparent)]
    Params(#[from] lode_chain::params::ParamsError),
    /// A command-line flag was malformed.
    #[error("{0}")]
    Config(String),
    /// The data dir (or a file in it) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The node key file exists but is not a valid key.
    #[error("node key {path} is malformed: {reason}")]
    NodeKey {
        /// The key file.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// Building the libp2p swarm failed.
    #[error("network setup failed: {0}")]
    Network(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The multiaddr.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The built-in wallet could not be opened or used.
    #[error("wallet: {0}")]
    Wallet(String),
    /// The chain store is damaged: it was left as it is, and `fix` says how to recover.
    #[error("{error}; the store was left as it is. To recover: {fix}")]
    DamagedStore {
        /// What failed (boxed: it is large, and rare).
        error: Box<lode_chain::error::ChainError>,
        /// The commands that recover.
        fix: String,
    },
    /// `lode chain reindex --from-peers` could not download the missing blocks.
    #[error("downloading the missing blocks from peers: {0}")]
    Refetch(String),
    /// The node stopped accepting work because a write failed (disk full, I/O error).
    #[error("the node halted: {0}")]
    Halted(String),
    /// The node is shutting down or one of its tasks has stopped.
    #[error("node is shutting down")]
    Stopped,
    /// A task panicked or could not be joined.
    #[error("task failed: {0}")]
    Task(String),
}

/// The node key's errors, as the node reports them (the same messages).
impl From<crate::common::node_key::NodeKeyError> for NodeError {
    fn from(e: crate::common::node_key::NodeKeyError) -> Self {
        use crate::common::node_key::NodeKeyError;
        match e {
            NodeKeyError::Io { path, source } => NodeError::Io { path, source },
            NodeKeyError::Malformed { path, reason } => NodeError::NodeKey { path, reason },
        }
    }
}
