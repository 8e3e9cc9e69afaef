//! The node key file: `DATA_DIR/node_key`, the hex of the node's Ed25519 libp2p secret, so
//! its peer id is stable across restarts. The daemon loads (or first creates) it at start;
//! `lode devnet` writes fixed keys before a node's first start and reads the peer id back.

use std::path::Path;

use libp2p::identity::Keypair;

/// File holding the node's libp2p key (hex of the Ed25519 secret), so its peer id is stable.
pub const NODE_KEY_FILE: &str = "node_key";

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The key file exists but is not a valid key.
    #[error("node key {path} is malformed: {reason}")]
    Malformed {
        /// The key file.
        path: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Loads the node key from the data dir, creating it (mode 0600) on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<Keypair, NodeKeyError> {
    let path = data_dir.join(NODE_KEY_FILE);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut bytes = hex::decode(text.trim()).map_err(|e| NodeKeyError::Malformed {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| NodeKeyError::Malformed {
                path: shown,
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = libp2p::identity::ed25519::Keypair::generate();
            let secret = hex::encode(key.secret().as_ref());
            lode_chain::atomic_file::write_private(&path, secret.as_bytes())
                .map_err(|source| NodeKeyError::Io { path: shown, source })?;
            Ok(Keypair::from(key))
        }
        Err(source) => Err(NodeKeyError::Io { path: shown, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_loaded_again_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_key(dir.path()).expect("created");
        let again = load_or_create_key(dir.path()).expect("loaded");
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        std::fs::write(dir.path().join(NODE_KEY_FILE), "zz").expect("write");
        let e = load_or_create_key(dir.path()).expect_err("malformed");
        assert!(e.to_string().contains("is malformed"), "{e}");
    }
}
