//! The operator's verdicts on blocks, as Bitcoin Core's `invalidateblock` and
//! `reconsiderblock`: a block marked [`BlockStatus::Invalidated`] (and its descendants,
//! invalid by ancestry) leaves the fork choice whatever its consensus verdict, so the best
//! chain moves to the most-work branch without it; reconsidering clears the marks of the
//! block, its descendants and its ancestors and lets the most-work chain win again.
//!
//! The marks are index-entry statuses, written straight to sled like any invalid verdict;
//! both operations flush the write-back cache before returning, so a restart finds the tip
//! they chose (and [`ChainState::open`] steps off an invalid tip a kill left behind).

use std::cmp::Reverse;

use super::ChainState;
use crate::error::ChainError;
use crate::event::ChainEvent;
use crate::hash::Hash256;
use crate::height::Height;
use crate::store::{BlockStatus, IndexEntry};

impl ChainState {
    /// Marks `hash` invalid by the operator's word (Core's `invalidateblock`): if it is on
    /// the best chain, the chain is rewound to its parent, and then the most-work valid
    /// branch becomes the best chain. Its descendants are invalid by ancestry. Returns the
    /// best-chain changes (disconnects, connects and one closing [`ChainEvent::Reorg`] if
    /// any block was disconnected). Unknown blocks and genesis are refused.
    pub fn invalidate_block(&mut self, hash: &Hash256) -> Result<Vec<ChainEvent>, ChainError> {
        let entry = *self.index.get(hash).ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.height == Height::GENESIS {
            return Err(ChainError::NotAllowed("the genesis block cannot be invalidated".into()));
        }
        let old_tip = self.tip_hash();
        let mut events = Vec::new();
        if self.is_on_best_chain(hash) {
            while self.height() >= entry.height {
                let (_, ev) = self.disconnect_tip()?;
                events.push(ev);
            }
        }
        self.mark_invalid(*hash, BlockStatus::Invalidated, None)?;
        events.extend(self.activate_best_chain(None)?);
        self.close_reorg(old_tip, events)
    }

    /// Clears the operator's and the consensus marks from `hash`, its descendants and its
    /// ancestors (Core's `reconsiderblock`), then lets the most-work chain win: blocks that
    /// really break a rule are found invalid again when they are connected. Returns the
    /// best-chain changes as [`ChainState::invalidate_block`] does.
    pub fn reconsider_block(&mut self, hash: &Hash256) -> Result<Vec<ChainEvent>, ChainError> {
        let entry = *self.index.get(hash).ok_or(ChainError::UnknownBlock(*hash))?;
        let mut cleared = Vec::new();
        // The block and every descendant.
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            self.clear_mark(h, &mut cleared);
            if let Some(children) = self.children.get(&h) {
                stack.extend(children.iter().copied());
            }
        }
        // Its ancestors (an invalid ancestor would keep it out of the fork choice).
        if entry.height != Height::GENESIS {
            let mut cur = entry.header.prev_hash;
            while let Some(e) = self.index.get(&cur).copied() {
                self.clear_mark(cur, &mut cleared);
                if e.height == Height::GENESIS {
                    break;
                }
                cur = e.header.prev_hash;
            }
        }
        self.store.put_index_entries(&cleared)?;
        let old_tip = self.tip_hash();
        let events = self.activate_best_chain(None)?;
        self.close_reorg(old_tip, events)
    }

    /// Sets an invalid block's status back to stored (validated again when it connects) and
    /// makes it a candidate tip again.
    fn clear_mark(&mut self, hash: Hash256, cleared: &mut Vec<(Hash256, IndexEntry)>) {
        let Some(mut e) = self.index.get(&hash).copied() else {
            return;
        };
        if !e.status.is_invalid() {
            return;
        }
        e.status = BlockStatus::Stored;
        self.index.insert(hash, e);
        self.candidates.insert((e.work(), Reverse(e.seq), hash));
        self.invalid_rules.remove(&hash);
        cleared.push((hash, e));
    }

    /// Rewrites `events` so that one [`ChainEvent::Reorg`] closes them if any block was
    /// disconnected (followers such as the mempool rebuild once per reorganisation), then
    /// flushes the store so a restart finds this tip.
    fn close_reorg(&mut self, old_tip: Hash256, events: Vec<ChainEvent>) -> Result<Vec<ChainEvent>, ChainError> {
        let mut out: Vec<ChainEvent> = events
            .into_iter()
            .filter(|e| !matches!(e, ChainEvent::Reorg { .. }))
            .collect();
        let mut disconnected = Vec::new();
        let mut connected = Vec::new();
        for ev in &out {
            match ev {
                ChainEvent::BlockDisconnected { hash, .. } => disconnected.push(*hash),
                ChainEvent::BlockConnected { hash, .. } => connected.push(*hash),
                ChainEvent::Reorg { .. } => {}
            }
        }
        if !disconnected.is_empty() {
            out.push(ChainEvent::Reorg {
                fork_height: self.fork_height_with(&old_tip),
                old_tip,
                new_tip: self.tip_hash(),
                disconnected,
                connected,
            });
        }
        self.flush()?;
        Ok(out)
    }

    /// Height of the last block the best chain shares with the branch ending at `other`.
    fn fork_height_with(&self, other: &Hash256) -> Height {
        let mut cur = *other;
        while let Some(e) = self.index.get(&cur) {
            if self.is_on_best_chain(&cur) || e.height == Height::GENESIS {
                return e.height;
            }
            cur = e.header.prev_hash;
        }
        Height::GENESIS
    }

    /// At open: disconnects best-chain blocks the index calls invalid (a kill after
    /// [`ChainState::invalidate_block`] marked a block but before its flush).
    pub(super) fn leave_invalid_tip(&mut self) -> Result<(), ChainError> {
        let first_bad = self
            .best
            .iter()
            .position(|h| self.index.get(h).is_some_and(|e| e.status.is_invalid()));
        if let Some(pos) = first_bad {
            while self.best.len() > pos.max(1) {
                self.disconnect_tip()?;
            }
            tracing::warn!(
                height = pos,
                "stepped off best-chain blocks marked invalid before a restart"
            );
        }
        Ok(())
    }
}
