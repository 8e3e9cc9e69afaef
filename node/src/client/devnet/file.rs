//! `DIR/devnet.json` for the devnet commands: the shared [`DevnetFile`] type (the client
//! commands read it for `--devnet NAME`), read and written with [`DevnetError`]s.
//!
//! `up` writes PRODUCT.md §2's fields (`network`, and per node `name`, `rpc`, `p2p`,
//! `data_dir`, `cookie`, `mining`, `pid`) plus `supervisor_pid`, `block_time`, `base_port`
//! and each node's `wallet_account`; paths are absolute.

use std::path::Path;

use crate::client::devnet_file::DevnetFileError;
pub use crate::client::devnet_file::{DevnetFile, DevnetNode, DEVNET_FILE_NAME as DEVNET_FILE};

use super::error::DevnetError;

/// Reads `dir/devnet.json`; a missing file is [`DevnetError::NoDevnet`].
pub fn read(dir: &Path) -> Result<DevnetFile, DevnetError> {
    DevnetFile::load(&dir.join(DEVNET_FILE)).map_err(|e| match e {
        DevnetFileError::Missing { .. } => DevnetError::NoDevnet {
            dir: dir.display().to_string(),
            file: DEVNET_FILE.into(),
        },
        DevnetFileError::Io { path, source } => DevnetError::Io { path, source },
        DevnetFileError::Malformed { path, reason } => DevnetError::Malformed { path, reason },
    })
}

/// Reads the file if there is one.
pub fn read_if_present(dir: &Path) -> Result<Option<DevnetFile>, DevnetError> {
    match read(dir) {
        Ok(f) => Ok(Some(f)),
        Err(DevnetError::NoDevnet { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `dir/devnet.json` atomically.
pub fn write(file: &DevnetFile, dir: &Path) -> Result<(), DevnetError> {
    file.save(&dir.join(DEVNET_FILE)).map_err(|e| match e {
        DevnetFileError::Io { path, source } => DevnetError::Io { path, source },
        other => DevnetError::Malformed {
            path: dir.join(DEVNET_FILE).display().to_string(),
            reason: other.to_string(),
        },
    })
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
                stratum: None,
            }],
            supervisor_pid: Some(41),
            block_time: Some(2),
            base_port: Some(18440),
            chain_spec: Some("/tmp/d/chain.toml".into()),
            wan: None,
        };
        write(&file, dir.path()).expect("write");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(DEVNET_FILE)).expect("read")).expect("json");
        assert_eq!(v["network"], "devnet");
        for key in ["name", "rpc", "p2p", "data_dir", "cookie", "mining", "pid"] {
            assert!(v["nodes"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(read(dir.path()).expect("read"), file);
        assert_eq!(file.nodes[0].peer_id(), Some("12D3KooWabc"));
        assert!(matches!(
            read(&dir.path().join("none")),
            Err(DevnetError::NoDevnet { .. })
        ));
    }
}
