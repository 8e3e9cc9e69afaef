//! `devnet.json`: what `lode devnet up` writes and the client commands read to find a node
//! of a local devnet by name (`--devnet node1`).
//!
//! ```json
//! {"network": "devnet", "nodes": [{"name": "node0", "rpc": "http://127.0.0.1:18443",
//!   "p2p": "/ip4/127.0.0.1/tcp/18444/p2p/12D3…", "data_dir": "devnet/node0",
//!   "cookie": "devnet/node0/.cookie", "mining": true, "pid": 4242}]}
//! ```
//!
//! `devnet up` also records `supervisor_pid`, `block_time`, `base_port` and each node's
//! `wallet_account` (optional fields: files without them still load).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name inside a devnet directory.
pub const DEVNET_FILE_NAME: &str = "devnet.json";

/// The contents of `devnet.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetFile {
    /// Network name (`devnet`, `regtest`, or a chain spec's name).
    pub network: String,
    /// The nodes, in start order (`node0` first).
    pub nodes: Vec<DevnetNode>,
    /// Pid of the `lode devnet up` that runs (or last ran) the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    /// Target block time, seconds, the devnet's chain is mined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_time: Option<u64>,
    /// `--base-port` of the last `devnet up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_port: Option<u16>,
    /// The devnet's chain spec (`chain.toml`, calibrated at creation); absent for devnets
    /// created before it existed, whose nodes run the built-in devnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_spec: Option<PathBuf>,
    /// `--wan` profile of a devnet whose nodes run in network namespaces (Linux, root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<String>,
}

/// One node of a devnet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Its name (`node0`, `node1`, …).
    pub name: String,
    /// Base URL of its RPC port (`http://127.0.0.1:18443`).
    pub rpc: String,
    /// Its P2P multiaddr, with `/p2p/PEER_ID`.
    pub p2p: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its RPC cookie file.
    pub cookie: PathBuf,
    /// Whether it mines.
    pub mining: bool,
    /// Its process id, while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The account of the devnet test mnemonic its wallet uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_account: Option<u32>,
    /// Its Stratum URL (`stratum+tcp://127.0.0.1:3333`), when `up --stratum` gave it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum: Option<String>,
}

impl DevnetNode {
    /// The peer id at the end of its P2P address, if the address has one.
    pub fn peer_id(&self) -> Option<&str> {
        self.p2p
            .rsplit_once("/p2p/")
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty())
    }
}

/// Why `devnet.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevnetFileError {
    /// The file does not exist.
    #[error("{path} does not exist (start a devnet with `lode devnet up`)")]
    Missing {
        /// The path tried.
        path: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a devnet description.
    #[error("{path} is not a valid devnet file: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What serde said (line and column).
        reason: String,
    },
}

impl DevnetFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<DevnetFile, DevnetFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DevnetFileError::Missing {
                path: path.display().to_string(),
            },
            _ => DevnetFileError::Io {
                path: path.display().to_string(),
                source: e,
            },
        })?;
        serde_json::from_str(&text).map_err(|e| DevnetFileError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes the file atomically ([`lode_chain::atomic_file::write_atomic`]), so a reader
    /// never sees half a file.
    pub fn save(&self, path: &Path) -> Result<(), DevnetFileError> {
        let io = |source| DevnetFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        text.push('\n');
        lode_chain::atomic_file::write_atomic(path, text.as_bytes()).map_err(io)
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&DevnetNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node names, comma-separated (for error messages).
    pub fn node_names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DevnetFile {
        DevnetFile {
            network: "devnet".into(),
            nodes: vec![DevnetNode {
                name: "node0".into(),
                rpc: "http://127.0.0.1:18440".into(),
                p2p: "/ip4/127.0.0.1/tcp/18441".into(),
                data_dir: "devnet/node0".into(),
                cookie: "devnet/node0/.cookie".into(),
                mining: true,
                pid: Some(7),
                wallet_account: None,
                stratum: None,
            }],
            ..DevnetFile::default()
        }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DEVNET_FILE_NAME);
        sample().save(&path).expect("save");
        assert_eq!(DevnetFile::load(&path).expect("load"), sample());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(DEVNET_FILE_NAME)]);
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DEVNET_FILE_NAME);
        let e = DevnetFile::load(&path).expect_err("missing");
        assert!(matches!(e, DevnetFileError::Missing { .. }), "{e}");
        std::fs::write(&path, "{\"network\": 3}").expect("write");
        let e = DevnetFile::load(&path).expect_err("malformed");
        assert!(e.to_string().contains("not a valid devnet file"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn pid_may_be_absent() {
        let f: DevnetFile = serde_json::from_str(
            r#"{"network":"regtest","nodes":[{"name":"node0","rpc":"http://x","p2p":"","data_dir":"d","cookie":"c","mining":false}]}"#,
        )
        .expect("parses");
        assert_eq!(f.nodes[0].pid, None);
        assert!(f.node("node0").is_some());
        assert!(f.node("node9").is_none());
    }
}
