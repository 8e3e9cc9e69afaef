//! [`Ledger`]: the blocks this node mined, and what became of them. Written by the chain
//! task only (it sees every block it mines go in and every connect and disconnect), read by
//! the RPC through [`super::MiningMonitor`].
//!
//! A mined block is *found* once the chain stores it on a valid branch; it is *stale* while
//! it is off the best chain (stored on a side branch, or disconnected by a reorg), and its
//! reward counts only while it is on the best chain, so a reorg that takes a block away and
//! a later one that brings it back both correct the figures.

use std::collections::{HashMap, VecDeque};

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

/// See the module doc.
#[derive(Debug, Default)]
pub struct Ledger {
    mined: HashMap<Hash256, Mined>,
    order: VecDeque<Hash256>,
    figures: LedgerFigures,
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
        let (hash, connected) = match event {
            ChainEvent::BlockConnected { hash, .. } => (hash, true),
            ChainEvent::BlockDisconnected { hash, .. } => (hash, false),
            ChainEvent::Reorg { .. } => return,
        };
        let Some(m) = self.mined.get_mut(hash) else { return };
        if m.on_best == connected {
            return;
        }
        m.on_best = connected;
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

    /// The figures now.
    pub fn figures(&self) -> LedgerFigures {
        self.figures
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
