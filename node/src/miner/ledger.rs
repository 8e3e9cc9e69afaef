//! [`Ledger`]: the blocks this node mined, and what became of them. Written by the chain
//! task only (it sees every block it mines go in and every connect and disconnect), read by
//! the RPC through [`super::MiningMonitor`].
//!
//! A mined block is *found* once the chain stores it on a valid branch; it is *stale* while
//! it is off the best chain (stored on a side branch, or disconnected by a reorg), and its
//! reward counts only while it is on the best chain, so a reorg that takes a block away and
//! a later one that brings it back both correct the figures.
//!
//! The ledger outlives the process: [`Ledger::snapshot`] is what `super::store` writes to
//! the data dir, and [`Ledger::restore`] takes it back, re-checking every followed block
//! against the chain as it is now (a reorg the last save missed is still corrected).

use std::collections::{HashMap, VecDeque};

use bincode::{Decode, Encode};
use lode_chain::{ChainEvent, Hash256};

/// Most mined blocks followed individually; older ones keep the state they had (a reorg
/// deeper than this many of our own blocks is not corrected).
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Mined {
    reward: u64,
    on_best: bool,
    /// Stored on a valid branch (counted as found).
    counted: bool,
}

/// The mining figures at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerFigures {
    /// Blocks this node mined that the chain stored on a valid branch.
    pub blocks_found: u64,
    /// Of those, how many are off the best chain now.
    pub blocks_stale: u64,
    /// Coinbase value (subsidy + fees) of our blocks on the best chain, base units.
    pub rewards: u64,
}

/// One followed block as saved: only blocks the chain stored (found) are saved.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SavedBlock {
    /// Its hash.
    pub hash: [u8; 32],
    /// Its coinbase value, base units.
    pub reward: u64,
    /// On the best chain when saved.
    pub on_best: bool,
}

/// The ledger as saved in the data dir.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SavedLedger {
    /// Genesis of the chain these blocks belong to (a file from another chain is ignored).
    pub genesis: [u8; 32],
    /// [`LedgerFigures::blocks_found`].
    pub blocks_found: u64,
    /// [`LedgerFigures::blocks_stale`].
    pub blocks_stale: u64,
    /// [`LedgerFigures::rewards`].
    pub rewards: u64,
    /// The followed blocks, oldest first (at most [`MAX_TRACKED`]).
    pub blocks: Vec<SavedBlock>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct Ledger {
    mined: HashMap<Hash256, Mined>,
    order: VecDeque<Hash256>,
    figures: LedgerFigures,
    /// Changed since the last [`Ledger::snapshot`].
    dirty: bool,
}

impl Ledger {
    /// Notes a block this node mined, paying `reward`, before the chain sees it.
    pub fn expect(&mut self, hash: Hash256, reward: u64) {
        if self.mined.contains_key(&hash) {
            return;
        }
        if self.order.len() == MAX_TRACKED {
            if let Some(old) = self.order.pop_front() {
                self.mined.remove(&old);
            }
        }
        self.order.push_back(hash);
        self.mined.insert(
            hash,
            Mined {
                reward,
                on_best: false,
                counted: false,
            },
        );
    }

    /// The chain's verdict on an expected block: stored on a valid branch or not.
    pub fn settle(&mut self, hash: &Hash256, stored_valid: bool) {
        let Some(m) = self.mined.get_mut(hash) else { return };
        if m.counted {
            return;
        }
        self.dirty = true;
        if stored_valid {
            m.counted = true;
            self.figures.blocks_found += 1;
            if !m.on_best {
                self.figures.blocks_stale += 1;
            }
        } else {
            let on_best = m.on_best;
            let reward = m.reward;
            self.mined.remove(hash);
            self.order.retain(|h| h != hash);
            if on_best {
                self.figures.rewards = self.figures.rewards.saturating_sub(reward);
            }
        }
    }

    /// Follows our blocks onto and off the best chain.
    pub fn on_chain_event(&mut self, event: &ChainEvent) {
        match event {
            ChainEvent::BlockConnected { hash, .. } => self.follow(*hash, true),
            ChainEvent::BlockDisconnected { hash, .. } => self.follow(*hash, false),
            ChainEvent::Reorg { .. } => {}
        }
    }

    /// The figures now.
    pub fn figures(&self) -> LedgerFigures {
        self.figures
    }

    /// A save failed: the next one writes again.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether anything changed since the last snapshot.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// What to save (the found blocks, oldest first), and the ledger is clean again.
    pub fn snapshot(&mut self, genesis: Hash256) -> SavedLedger {
        self.dirty = false;
        SavedLedger {
            genesis: genesis.0,
            blocks_found: self.figures.blocks_found,
            blocks_stale: self.figures.blocks_stale,
            rewards: self.figures.rewards,
            blocks: self
                .order
                .iter()
                .filter_map(|h| {
                    let m = self.mined.get(h)?;
                    m.counted.then_some(SavedBlock {
                        hash: h.0,
                        reward: m.reward,
                        on_best: m.on_best,
                    })
                })
                .collect(),
        }
    }

    /// The saved ledger, each block's place re-checked with `on_best` (the chain now): a
    /// block that left or rejoined the best chain since the save moves the figures as a
    /// reorg would have.
    pub fn restore(saved: SavedLedger, on_best: impl Fn(&Hash256) -> bool) -> Ledger {
        let mut l = Ledger {
            figures: LedgerFigures {
                blocks_found: saved.blocks_found,
                blocks_stale: saved.blocks_stale,
                rewards: saved.rewards,
            },
            ..Ledger::default()
        };
        let skip = saved.blocks.len().saturating_sub(MAX_TRACKED);
        for b in saved.blocks.into_iter().skip(skip) {
            let hash = Hash256(b.hash);
            if l.mined.contains_key(&hash) {
                continue;
            }
            l.order.push_back(hash);
            l.mined.insert(
                hash,
                Mined {
                    reward: b.reward,
                    on_best: b.on_best,
                    counted: true,
                },
            );
            l.follow(hash, on_best(&hash));
        }
        l
    }

    fn follow(&mut self, hash: Hash256, connected: bool) {
        let Some(m) = self.mined.get_mut(&hash) else { return };
        if m.on_best == connected {
            return;
        }
        m.on_best = connected;
        self.dirty = true;
        let f = &mut self.figures;
        if connected {
            f.rewards = f.rewards.saturating_add(m.reward);
            if m.counted {
                f.blocks_stale = f.blocks_stale.saturating_sub(1);
            }
        } else {
            f.rewards = f.rewards.saturating_sub(m.reward);
            if m.counted {
                f.blocks_stale += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lode_chain::{Block, Height};

    use super::*;

    fn h(n: u8) -> Hash256 {
        Hash256([n; 32])
    }

    fn block() -> Arc<Block> {
        Arc::new(lode_chain::ChainParams::regtest().genesis_block())
    }

    fn connected(n: u8) -> ChainEvent {
        ChainEvent::BlockConnected {
            hash: h(n),
            height: Height(1),
            block: block(),
        }
    }

    fn disconnected(n: u8) -> ChainEvent {
        ChainEvent::BlockDisconnected {
            hash: h(n),
            height: Height(1),
            block: block(),
        }
    }

    fn figures(found: u64, stale: u64, rewards: u64) -> LedgerFigures {
        LedgerFigures {
            blocks_found: found,
            blocks_stale: stale,
            rewards,
        }
    }

    #[test]
    fn a_block_on_the_best_chain_is_found_with_its_reward() {
        let mut l = Ledger::default();
        l.expect(h(1), 50);
        l.on_chain_event(&connected(1));
        l.settle(&h(1), true);
        assert_eq!(l.figures(), figures(1, 0, 50));
    }

    #[test]
    fn a_reorg_makes_it_stale_and_a_second_reorg_brings_it_back() {
        let mut l = Ledger::default();
        l.expect(h(1), 50);
        l.on_chain_event(&connected(1));
        l.settle(&h(1), true);
        l.on_chain_event(&disconnected(1));
        assert_eq!(l.figures(), figures(1, 1, 0));
        l.on_chain_event(&connected(1));
        assert_eq!(l.figures(), figures(1, 0, 50));
    }

    #[test]
    fn a_side_branch_block_is_found_and_stale_a_refused_one_is_neither() {
        let mut l = Ledger::default();
        l.expect(h(1), 50);
        l.settle(&h(1), true);
        l.expect(h(2), 50);
        l.settle(&h(2), false);
        assert_eq!(l.figures(), figures(1, 1, 0));
        // Someone else's blocks do not count.
        l.on_chain_event(&connected(9));
        assert_eq!(l.figures(), figures(1, 1, 0));
    }

    #[test]
    fn a_restored_ledger_keeps_its_figures_and_is_corrected_by_the_chain_now() {
        let mut l = Ledger::default();
        for n in 1..=3 {
            l.expect(h(n), 50);
            l.on_chain_event(&connected(n));
            l.settle(&h(n), true);
        }
        // Expected but never settled: not saved.
        l.expect(h(4), 50);
        assert!(l.is_dirty());
        let saved = l.snapshot(h(0));
        assert!(!l.is_dirty());
        assert_eq!(saved.blocks.len(), 3);
        let same = Ledger::restore(saved.clone(), |_| true);
        assert_eq!(same.figures(), figures(3, 0, 150));
        assert!(!same.is_dirty());
        // While the node was down (or after the last save) a reorg took block 2 away.
        let mut moved = Ledger::restore(saved, |b| *b != h(2));
        assert_eq!(moved.figures(), figures(3, 1, 100));
        assert!(moved.is_dirty());
        // And it is still followed: a later reorg brings it back.
        moved.on_chain_event(&connected(2));
        assert_eq!(moved.figures(), figures(3, 0, 150));
    }

    #[test]
    fn what_is_followed_is_bounded() {
        let mut l = Ledger::default();
        for i in 0..(MAX_TRACKED + 5) {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            l.expect(Hash256(b), 1);
            l.settle(&Hash256(b), true);
        }
        assert_eq!(l.mined.len(), MAX_TRACKED);
        assert_eq!(l.order.len(), MAX_TRACKED);
        assert_eq!(l.figures().blocks_found, (MAX_TRACKED + 5) as u64);
    }
}
