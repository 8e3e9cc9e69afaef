//! The block header: Bitcoin's 80-byte layout, byte for byte.

use bincode::{Decode, Encode};

use crate::encoding;
use crate::error::DecodeError;
use crate::hash::Hash256;

/// Encoded size of a header.
pub const HEADER_SIZE: usize = 80;

/// A block header. Its canonical encoding is exactly Bitcoin's 80 bytes: u32 LE version,
/// previous block hash, merkle root, u32 time, u32 compact bits, u32 nonce.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct BlockHeader {
    /// Block version (not interpreted by consensus yet).
    pub version: u32,
    /// Hash of the parent block (zero for genesis).
    pub prev_hash: Hash256,
    /// Merkle root over the block's txids.
    pub merkle_root: Hash256,
    /// Seconds since the Unix epoch.
    pub time: u32,
    /// Compact encoding of the target the hash must meet.
    pub bits: u32,
    /// The miner's search field.
    pub nonce: u32,
}

impl BlockHeader {
    /// The canonical 80 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_hash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses exactly 80 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlockHeader, DecodeError> {
        encoding::decode(bytes, HEADER_SIZE)
    }

    /// Block hash: double SHA-256 of the 80 bytes.
    pub fn hash(&self) -> Hash256 {
        Hash256::sha256d(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTC_GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn bitcoin_genesis_header_round_trips_and_hashes() {
        let bytes = hex::decode(BTC_GENESIS).expect("hex");
        let header = BlockHeader::from_bytes(&bytes).expect("decodes");
        assert_eq!(header.to_bytes().to_vec(), bytes);
        assert_eq!(encoding::encode(&header), bytes);
        assert_eq!(header.bits, 0x1d00ffff);
        assert_eq!(
            header.hash().to_hex(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }

    #[test]
    fn wrong_length_is_refused() {
        assert!(BlockHeader::from_bytes(&[0u8; 79]).is_err());
        assert_eq!(
            BlockHeader::from_bytes(&[0u8; 81]),
            Err(DecodeError::TooLarge { len: 81, max: 80 })
        );
    }
}
