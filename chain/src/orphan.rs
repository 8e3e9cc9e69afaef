//! Blocks whose parent is not known yet, held (bounded) until it arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::block::Block;
use crate::hash::Hash256;

/// Most orphan blocks held at once.
pub const MAX_ORPHAN_BLOCKS: usize = 128;
/// Most bytes of orphan blocks held at once.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;

/// A bounded pool of orphan blocks; the oldest is evicted first.
#[derive(Default)]
pub struct OrphanPool {
    blocks: HashMap<Hash256, (Arc<Block>, usize)>,
    by_parent: HashMap<Hash256, Vec<Hash256>>,
    order: VecDeque<Hash256>,
    bytes: usize,
}

impl OrphanPool {
    /// Holds `block` (with its encoded `size`) until its parent arrives.
    pub fn insert(&mut self, hash: Hash256, block: Arc<Block>, size: usize) {
        if self.blocks.contains_key(&hash) || size > MAX_ORPHAN_BYTES {
            return;
        }
        while self.blocks.len() >= MAX_ORPHAN_BLOCKS || self.bytes + size > MAX_ORPHAN_BYTES {
            let Some(oldest) = self.order.pop_front() else { break };
            self.remove(&oldest);
        }
        self.by_parent.entry(block.header.prev_hash).or_default().push(hash);
        self.blocks.insert(hash, (block, size));
        self.order.push_back(hash);
        self.bytes += size;
    }

    /// True if held.
    pub fn contains(&self, hash: &Hash256) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Removes and returns the orphans whose parent is `parent`.
    pub fn take_children(&mut self, parent: &Hash256) -> Vec<Arc<Block>> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        hashes.iter().filter_map(|h| self.remove(h)).collect()
    }

    fn remove(&mut self, hash: &Hash256) -> Option<Arc<Block>> {
        let (block, size) = self.blocks.remove(hash)?;
        self.bytes -= size;
        self.order.retain(|h| h != hash);
        if let Some(siblings) = self.by_parent.get_mut(&block.header.prev_hash) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&block.header.prev_hash);
            }
        }
        Some(block)
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The root an orphan chain is waiting for: walk `hash`'s ancestry inside the pool.
    pub fn missing_root(&self, hash: &Hash256) -> Option<Hash256> {
        let mut cur = *hash;
        let mut steps = 0;
        while let Some((block, _)) = self.blocks.get(&cur) {
            cur = block.header.prev_hash;
            steps += 1;
            if steps > MAX_ORPHAN_BLOCKS {
                break;
            }
        }
        if cur == *hash {
            None
        } else {
            Some(cur)
        }
    }
}
