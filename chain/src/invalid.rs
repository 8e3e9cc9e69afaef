//! A bounded, in-memory memory of blocks whose header broke a rule.
//!
//! Nothing of a header that fails its checks goes to disk: a peer could otherwise fill the
//! store with index entries whose only proof of work is against their own bits. Forgetting
//! an old entry costs at most re-checking that header once more.

use std::collections::{HashSet, VecDeque};

use crate::hash::Hash256;

/// Most hashes remembered (32 bytes each plus set overhead: well under 1 MB).
pub const MAX_INVALID_HASHES: usize = 10_000;

/// Invalid block hashes, oldest forgotten first.
#[derive(Debug, Default)]
pub struct InvalidSet {
    set: HashSet<Hash256>,
    order: VecDeque<Hash256>,
}

impl InvalidSet {
    /// Remembers `hash` as invalid, forgetting the oldest entry when full.
    pub fn insert(&mut self, hash: Hash256) {
        if !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > MAX_INVALID_HASHES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// True if `hash` is remembered as invalid.
    pub fn contains(&self, hash: &Hash256) -> bool {
        self.set.contains(hash)
    }

    /// Number remembered.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_stays_bounded_and_forgets_the_oldest() {
        let mut s = InvalidSet::default();
        for i in 0..(MAX_INVALID_HASHES as u32 + 10) {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            s.insert(Hash256(h));
        }
        assert_eq!(s.len(), MAX_INVALID_HASHES);
        assert!(!s.contains(&Hash256([0; 32])), "oldest forgotten");
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&(MAX_INVALID_HASHES as u32 + 9).to_le_bytes());
        assert!(s.contains(&Hash256(last)));
    }
}
