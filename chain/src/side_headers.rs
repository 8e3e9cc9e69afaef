//! Headers of side-branch blocks that were not stored: a gossiped block whose branch has no
//! more work than the tip is judged on its header and then only its header is remembered,
//! in memory, bounded and pruned by depth. If its branch later wins on work, the node's sync
//! fetches the bodies (requested blocks are stored whatever their branch).

use std::collections::{HashMap, VecDeque};

use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::pow::ChainWork;

/// Most side headers remembered (≈150 bytes each: well under 1 MB).
pub const MAX_SIDE_HEADERS: usize = 4_096;
/// Side headers more than this many blocks below the tip are forgotten: a branch that far
/// behind is re-learned through sync if it ever wins.
pub const SIDE_HEADER_DEPTH: u32 = 288;

/// A remembered side-branch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideHeader {
    /// The header (it passed the contextual header checks against its parent).
    pub header: BlockHeader,
    /// Its height.
    pub height: Height,
    /// Cumulative work of its branch.
    pub work: ChainWork,
}

/// The bounded set of side headers.
#[derive(Debug, Default)]
pub struct SideHeaders {
    map: HashMap<Hash256, SideHeader>,
    order: VecDeque<Hash256>,
}

impl SideHeaders {
    /// Remembers a side header, forgetting the oldest when full.
    pub fn insert(&mut self, hash: Hash256, entry: SideHeader) {
        if self.map.insert(hash, entry).is_some() {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > MAX_SIDE_HEADERS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// The remembered header `hash`.
    pub fn get(&self, hash: &Hash256) -> Option<&SideHeader> {
        self.map.get(hash)
    }

    /// Forgets `hash` (its body arrived and it is indexed now).
    pub fn remove(&mut self, hash: &Hash256) {
        if self.map.remove(hash).is_some() {
            self.order.retain(|h| h != hash);
        }
    }

    /// Forgets headers more than [`SIDE_HEADER_DEPTH`] below `tip_height`.
    pub fn prune(&mut self, tip_height: Height) {
        let floor = tip_height.0.saturating_sub(SIDE_HEADER_DEPTH);
        if self.map.values().all(|e| e.height.0 >= floor) {
            return;
        }
        self.map.retain(|_, e| e.height.0 >= floor);
        let map = &self.map;
        self.order.retain(|h| map.contains_key(h));
    }

    /// Number remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(height: u32) -> SideHeader {
        SideHeader {
            header: BlockHeader {
                version: 1,
                prev_hash: Hash256([0; 32]),
                merkle_root: Hash256([0; 32]),
                time: height,
                bits: 0x207f_ffff,
                nonce: 0,
            },
            height: Height(height),
            work: ChainWork::default(),
        }
    }

    #[test]
    fn bounded_and_pruned_by_depth() {
        let mut s = SideHeaders::default();
        for i in 0..(MAX_SIDE_HEADERS as u32 + 5) {
            s.insert(Hash256::sha256d(&i.to_le_bytes()), entry(i % 1000));
        }
        assert_eq!(s.len(), MAX_SIDE_HEADERS);
        s.prune(Height(1000 + SIDE_HEADER_DEPTH));
        assert!(s.len() < MAX_SIDE_HEADERS);
        s.prune(Height(10_000));
        assert!(s.is_empty());
    }
}
