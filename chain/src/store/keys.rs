//! Every sled tree and every key layout of the chain store, in one place.
//!
//! Heights are big-endian so key order is numeric order; outpoints are txid ‖ index(BE).

use crate::address::PubkeyHash;
use crate::hash::Hash256;
use crate::height::Height;
use crate::transaction::OutPoint;

/// Tree names. Changing one is a storage format change (bump [`FORMAT_VERSION`]).
pub mod trees {
    /// Format version, network name and genesis, best tip.
    pub const META: &str = "meta";
    /// Block hash → index entry (header, height, cumulative work, status).
    pub const INDEX: &str = "index";
    /// Block hash ‖ piece number (u32 BE) → that piece of the canonical block bytes
    /// (`store/bodies.rs`; format 1 had one entry per block, keyed by its hash).
    pub const BODIES: &str = "bodies";
    /// Height (BE) → block hash, for the best chain only.
    pub const BEST: &str = "best";
    /// Outpoint → unspent output.
    pub const UTXO: &str = "utxo";
    /// Block hash → the outputs its inputs spent (to disconnect it).
    pub const UNDO: &str = "undo";
    /// Txid → (block hash, position) for best-chain transactions.
    pub const TXINDEX: &str = "txindex";
    /// Address ‖ height (BE) ‖ group (u32 BE) → up to 32 rows (txid, kind, index, record)
    /// of that address at that height, for wallets and the explorer
    /// (`store/addr_index.rs`; format 1 had one entry per row, [`super::addr_key`]).
    pub const ADDR: &str = "addr";
    /// Where builds before issue 16's sixth pass kept a large flush's journal: chunk number
    /// (BE) → a chunk of its writes, and `complete` → the marker that every chunk is
    /// written. Now always empty, except in a store such a build left mid-flush, which open
    /// completes or discards (`store/journal.rs`; the journal is a file now).
    pub const JOURNAL: &str = "journal";
}

/// Storage format version, stored at creation and checked at open.
pub const FORMAT_VERSION: u32 = 2;

/// Keys of the meta tree.
pub mod meta {
    /// u32 BE format version.
    pub const VERSION: &[u8] = b"version";
    /// Network name (UTF-8).
    pub const NETWORK: &[u8] = b"network";
    /// Genesis hash (32 bytes).
    pub const GENESIS: &[u8] = b"genesis";
    /// Best tip hash (32 bytes).
    pub const TIP: &[u8] = b"tip";
}

/// Key of the best-chain tree.
pub fn height_key(height: Height) -> [u8; 4] {
    height.to_be_bytes()
}

/// Key of the UTXO tree.
pub fn outpoint_key(op: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(&op.txid.0);
    k[32..].copy_from_slice(&op.index.to_be_bytes());
    k
}

/// Parses a UTXO-tree key.
pub fn outpoint_from_key(k: &[u8]) -> Option<OutPoint> {
    if k.len() != 36 {
        return None;
    }
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&k[..32]);
    let index = u32::from_be_bytes([k[32], k[33], k[34], k[35]]);
    Some(OutPoint {
        txid: Hash256(txid),
        index,
    })
}

/// What an address-index record describes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddrKind {
    /// The address received an output.
    Received = 0,
    /// An output of the address was spent.
    Spent = 1,
}

/// Key of a row of storage format 1's address index: pkh(20) ‖ height(4, BE) ‖ txid(32) ‖
/// kind(1) ‖ index(4, BE). Read only to upgrade such a store (format 2 groups rows).
pub fn addr_key(pkh: &PubkeyHash, height: Height, txid: &Hash256, kind: AddrKind, index: u32) -> [u8; 61] {
    let mut k = [0u8; 61];
    k[..20].copy_from_slice(&pkh.0);
    k[20..24].copy_from_slice(&height.to_be_bytes());
    k[24..56].copy_from_slice(&txid.0);
    k[56] = kind as u8;
    k[57..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Parses a format-1 address-index key into (height, txid, kind, index).
pub fn parse_addr_key(k: &[u8]) -> Option<(Height, Hash256, AddrKind, u32)> {
    if k.len() != 61 {
        return None;
    }
    let height = Height(u32::from_be_bytes([k[20], k[21], k[22], k[23]]));
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&k[24..56]);
    let kind = match k[56] {
        0 => AddrKind::Received,
        1 => AddrKind::Spent,
        _ => return None,
    };
    let index = u32::from_be_bytes([k[57], k[58], k[59], k[60]]);
    Some((height, Hash256(txid), kind, index))
}
