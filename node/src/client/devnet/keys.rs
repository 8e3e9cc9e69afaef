//! Node keys fixed per devnet node, so peer ids are known before any node starts.
//!
//! Node I's libp2p key is the Ed25519 secret SHA-256(`KEY_LABEL` ‖ I as 4 big-endian bytes),
//! written as hex to `DIR/nodeI/node_key` (the format `lode node` reads) before its first
//! start. These keys are public knowledge: a devnet is for local testing only.

use std::path::Path;

use libp2p::PeerId;
use sha2::{Digest, Sha256};

use super::error::DevnetError;
use crate::common::node_key::{load_or_create_key, NODE_KEY_FILE};

/// Domain label of devnet node keys.
pub const KEY_LABEL: &[u8] = b"lode devnet node key v1";

/// The Ed25519 secret of devnet node `index`.
pub fn node_secret(index: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(KEY_LABEL);
    h.update(index.to_be_bytes());
    h.finalize().into()
}

/// The peer id of devnet node `index`.
pub fn peer_id(index: u32) -> Result<PeerId, DevnetError> {
    let mut secret = node_secret(index);
    let key = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| DevnetError::Args(format!("node{index}: derived key refused: {e}")))?;
    Ok(key.public().to_peer_id())
}

/// Writes node `index`'s key into `data_dir` unless one is there, and returns the peer id
/// of the key the node will use (an existing key file wins, so a data dir keeps its id).
pub fn ensure_node_key(data_dir: &Path, index: u32) -> Result<PeerId, DevnetError> {
    let path = data_dir.join(NODE_KEY_FILE);
    if !path.exists() {
        lode_chain::atomic_file::write_private(&path, hex::encode(node_secret(index)).as_bytes())
            .map_err(|e| DevnetError::io(&path, e))?;
    }
    Ok(load_or_create_key(data_dir)?.public().to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_distinct_and_what_the_node_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = ensure_node_key(dir.path(), 3).expect("key");
        assert_eq!(Some(id), peer_id(3).ok());
        assert_ne!(peer_id(3).ok(), peer_id(4).ok());
        // A second call keeps the file.
        assert_eq!(ensure_node_key(dir.path(), 3).ok(), Some(id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
