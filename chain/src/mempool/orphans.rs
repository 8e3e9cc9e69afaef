//! Transactions whose parents are unknown, held (bounded by count and bytes, oldest evicted
//! first) until a parent arrives. They are unvalidated beyond the context-free rules, so
//! the pool stays small and entries expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::hash::Hash256;
use crate::transaction::Transaction;

struct Orphan {
    tx: Arc<Transaction>,
    size: usize,
    time: u64,
    seq: u64,
    missing: BTreeSet<Hash256>,
}

/// A bounded pool of orphan transactions, indexed by the parents they wait for.
#[derive(Default)]
pub struct OrphanTxPool {
    orphans: HashMap<Hash256, Orphan>,
    by_parent: HashMap<Hash256, BTreeSet<Hash256>>,
    /// Arrival order, for evicting the oldest.
    order: BTreeMap<u64, Hash256>,
    bytes: usize,
    next_seq: u64,
}

impl OrphanTxPool {
    /// Holds `tx` until one of `missing` (parent txids) arrives, evicting the oldest orphans
    /// until it fits within `max_count` and `max_bytes`. Returns the evicted txids.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        txid: Hash256,
        tx: Arc<Transaction>,
        size: usize,
        missing: BTreeSet<Hash256>,
        now: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Hash256> {
        let mut evicted = Vec::new();
        if self.orphans.contains_key(&txid) || size > max_bytes || max_count == 0 {
            return evicted;
        }
        while self.orphans.len() >= max_count || self.bytes + size > max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.remove(&oldest);
            evicted.push(oldest);
        }
        for parent in &missing {
            self.by_parent.entry(*parent).or_default().insert(txid);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, txid);
        self.bytes += size;
        self.orphans.insert(
            txid,
            Orphan {
                tx,
                size,
                time: now,
                seq,
                missing,
            },
        );
        evicted
    }

    /// True if held.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.orphans.contains_key(txid)
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.orphans.len()
    }

    /// True if none are held.
    pub fn is_empty(&self) -> bool {
        self.orphans.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Removes and returns, oldest first, the orphans waiting for `parent`.
    pub(crate) fn take_children(&mut self, parent: &Hash256) -> Vec<Arc<Transaction>> {
        let waiting = self.by_parent.remove(parent).unwrap_or_default();
        let mut out: Vec<(u64, Arc<Transaction>)> = waiting
            .iter()
            .filter_map(|txid| self.remove(txid))
            .map(|o| (o.seq, o.tx))
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, tx)| tx).collect()
    }

    /// Drops orphans older than `max_age` seconds; returns their txids.
    pub(crate) fn expire(&mut self, now: u64, max_age: u64) -> Vec<Hash256> {
        let old: Vec<Hash256> = self
            .orphans
            .iter()
            .filter(|(_, o)| now.saturating_sub(o.time) >= max_age)
            .map(|(txid, _)| *txid)
            .collect();
        for txid in &old {
            self.remove(txid);
        }
        old
    }

    /// Forgets an orphan (it turned up in a block).
    pub(crate) fn discard(&mut self, txid: &Hash256) -> bool {
        self.remove(txid).is_some()
    }

    fn remove(&mut self, txid: &Hash256) -> Option<Orphan> {
        let orphan = self.orphans.remove(txid)?;
        self.bytes -= orphan.size;
        self.order.remove(&orphan.seq);
        for parent in &orphan.missing {
            if let Some(set) = self.by_parent.get_mut(parent) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_parent.remove(parent);
                }
            }
        }
        Some(orphan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{KeyUnlock, OutPoint, TxIn, Unlock};

    fn orphan(parent: u8) -> (Hash256, Arc<Transaction>) {
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint {
                    txid: Hash256([parent; 32]),
                    index: 0,
                },
                unlock: Unlock::Key(KeyUnlock {
                    pubkey: [0; 32],
                    signature: [0; 64],
                }),
            }],
            outputs: vec![],
            lock_time: 0,
        };
        (tx.txid(), Arc::new(tx))
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_first() {
        let mut pool = OrphanTxPool::default();
        let ids: Vec<_> = (1..=4).map(orphan).collect();
        for (i, (txid, tx)) in ids.iter().enumerate() {
            let missing = BTreeSet::from([Hash256([i as u8 + 1; 32])]);
            pool.insert(*txid, tx.clone(), 10, missing, 0, 3, 1000);
        }
        assert_eq!(pool.len(), 3);
        assert!(!pool.contains(&ids[0].0), "the oldest went first");
        let (txid, tx) = orphan(9);
        let evicted = pool.insert(txid, tx, 25, BTreeSet::from([Hash256([9; 32])]), 0, 10, 40);
        assert_eq!(evicted, vec![ids[1].0, ids[2].0]);
        assert_eq!(pool.bytes(), 35);
        assert_eq!(pool.take_children(&Hash256([9; 32])).len(), 1);
        assert_eq!(pool.expire(100, 50), vec![ids[3].0]);
        assert!(pool.is_empty() && pool.bytes() == 0);
    }
}
