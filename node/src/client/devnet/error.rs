//! Why a `lode devnet` command failed: one variant per cause, each a one-line message.

use std::path::Path;

use thiserror::Error;

use crate::client::ClientError;
use crate::common::node_key::NodeKeyError;

/// Errors of `lode devnet`.
#[derive(Debug, Error)]
pub enum DevnetError {
    /// A flag or argument is out of range or malformed.
    #[error("{0}")]
    Args(String),
    /// A port the devnet needs is taken by another process.
    #[error("port {port} ({node} {role}) is already in use on 127.0.0.1; pick other ports with --base-port")]
    PortInUse {
        /// The port.
        port: u16,
        /// The node it was meant for.
        node: String,
        /// `P2P`, `RPC` or `Stratum`.
        role: &'static str,
    },
    /// A port could not be checked for another reason than being taken.
    #[error("cannot check port {port} ({node} {role}): {reason}")]
    PortCheck {
        /// The port.
        port: u16,
        /// The node it was meant for.
        node: String,
        /// `P2P` or `RPC`.
        role: &'static str,
        /// What the OS said.
        reason: String,
    },
    /// Another `devnet up` holds the directory.
    #[error(
        "a devnet is already running in {dir} (supervisor pid {pid}); stop it with `lode devnet down --dir {dir}`"
    )]
    AlreadyRunning {
        /// The devnet directory.
        dir: String,
        /// The running supervisor.
        pid: u32,
    },
    /// The directory holds no devnet.
    #[error("no devnet in {dir} ({file} not found); start one with `lode devnet up --dir {dir}`")]
    NoDevnet {
        /// The directory.
        dir: String,
        /// The file looked for.
        file: String,
    },
    /// The devnet is not running (a command that needs its nodes).
    #[error("the devnet in {dir} is not running; start it with `lode devnet up --dir {dir}`")]
    NotRunning {
        /// The directory.
        dir: String,
    },
    /// `up` resumed a devnet with another block time than the one its chain was mined with.
    #[error(
        "the devnet in {dir} was created with --block-time {recorded}s, not {asked}s: its blocks are invalid under another \
         block time; run `lode devnet up --block-time {recorded}s` or start afresh with `lode devnet reset --dir {dir}`"
    )]
    BlockTimeMismatch {
        /// The directory.
        dir: String,
        /// Block time in devnet.json.
        recorded: u64,
        /// Block time asked for.
        asked: u64,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A devnet file is not what we wrote.
    #[error("{path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A node key could not be read or made.
    #[error(transparent)]
    NodeKey(#[from] NodeKeyError),
    /// A node process could not be started.
    #[error("cannot start {node}: {source}")]
    Spawn {
        /// The node.
        node: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node process exited while the devnet was running.
    #[error("{node} exited unexpectedly ({status}); its log is {log}")]
    NodeExited {
        /// The node.
        node: String,
        /// Exit status as the OS reports it.
        status: String,
        /// Its log file.
        log: String,
    },
    /// The nodes did not all become healthy at one tip in time.
    #[error("the devnet was not ready after {secs} s: {detail}")]
    NotReady {
        /// How long we waited.
        secs: u64,
        /// Which nodes were not ready and why.
        detail: String,
    },
    /// A node's RPC call failed.
    #[error("{node}: {source}")]
    Rpc {
        /// The node.
        node: String,
        /// The client's error.
        source: ClientError,
    },
    /// Processes did not stop in time.
    #[error("{what} did not stop within {secs} s")]
    StopTimeout {
        /// Which processes.
        what: String,
        /// How long we waited.
        secs: u64,
    },
    /// `reset` needs a confirmation it cannot ask for.
    #[error("refusing to delete {dir} without confirmation: stdin is not a terminal; pass --yes")]
    NeedsConfirmation {
        /// The directory.
        dir: String,
    },
}

impl DevnetError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> DevnetError {
        DevnetError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
