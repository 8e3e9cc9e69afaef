//! `DIR/devnet.json`: how clients (`lode wallet --devnet node1`, `lode devnet status`) find
//! the nodes of a devnet. The fields of PRODUCT.md §2 (`network`, and per node `name`, `rpc`,
//! `p2p`, `data_dir`, `cookie`, `mining`, `pid`), plus `supervisor_pid`, `block_time`,
//! `base_port` and each node's `wallet_account`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::DevnetError;

/// File name inside the devnet directory.
pub const DEVNET_FILE: &str = "devnet.json";

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetFile {
    /// Network name (`devnet`).
    pub network: String,
    /// The nodes, node0 first.
    pub nodes: Vec<DevnetNode>,
    /// Pid of the `lode devnet up` process that runs them (last run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    /// Target block time in seconds the chain is mined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_time: Option<u64>,
    /// `--base-port` of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_port: Option<u16>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetNode {
    /// `node0`, `node1`, …
    pub name: String,
    /// Base URL of its RPC/REST port (`http://127.0.0.1:PORT`).
    pub rpc: String,
    /// Its P2P address with peer id (`/ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID`).
    pub p2p: String,
    /// Its data directory (absolute).
    pub data_dir: PathBuf,
    /// Its RPC cookie file (absolute; rewritten by the node at every start).
    pub cookie: PathBuf,
    /// Whether it mines.
    pub mining: bool,
    /// Process id of the node (last run).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Account of the devnet test mnemonic its wallet uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_account: Option<u32>,
}

impl DevnetNode {
    /// The peer id at the end of the P2P address.
    pub fn peer_id(&self) -> Option<&str> {
        self.p2p
            .rsplit_once("/p2p/")
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty())
    }
}

impl DevnetFile {
    /// Reads `dir/devnet.json`; a missing file is [`DevnetError::NoDevnet`].
    pub fn read(dir: &Path) -> Result<DevnetFile, DevnetError> {
        let path = dir.join(DEVNET_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DevnetError::NoDevnet {
                    dir: dir.display().to_string(),
                    file: DEVNET_FILE.into(),
                })
            }
            Err(e) => return Err(DevnetError::io(&path, e)),
        };
        serde_json::from_str(&text).map_err(|e| DevnetError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Reads the file if there is one.
    pub fn read_if_present(dir: &Path) -> Result<Option<DevnetFile>, DevnetError> {
        match DevnetFile::read(dir) {
            Ok(f) => Ok(Some(f)),
            Err(DevnetError::NoDevnet { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `dir/devnet.json` atomically (temp file, then rename), pretty-printed.
    pub fn write(&self, dir: &Path) -> Result<(), DevnetError> {
        let path = dir.join(DEVNET_FILE);
        let tmp = dir.join(format!("{DEVNET_FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(self).map_err(|e| DevnetError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(&tmp, text).map_err(|e| DevnetError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| DevnetError::io(&path, e))
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&DevnetNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_spec_field_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = DevnetFile {
            network: "devnet".into(),
            nodes: vec![DevnetNode {
                name: "node0".into(),
                rpc: "http://127.0.0.1:18441".into(),
                p2p: "/ip4/127.0.0.1/tcp/18440/p2p/12D3KooWabc".into(),
                data_dir: "/tmp/d/node0".into(),
                cookie: "/tmp/d/node0/.cookie".into(),
                mining: true,
                pid: Some(42),
                wallet_account: Some(0),
            }],
            supervisor_pid: Some(41),
            block_time: Some(2),
            base_port: Some(18440),
        };
        file.write(dir.path()).expect("write");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(DEVNET_FILE)).expect("read")).expect("json");
        assert_eq!(v["network"], "devnet");
        for key in ["name", "rpc", "p2p", "data_dir", "cookie", "mining", "pid"] {
            assert!(v["nodes"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(DevnetFile::read(dir.path()).expect("read"), file);
        assert_eq!(file.nodes[0].peer_id(), Some("12D3KooWabc"));
    }
}
