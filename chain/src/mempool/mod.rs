//! The mempool: transactions valid on top of the best tip, waiting to be mined.
//!
//! A transaction is accepted when it would be valid in the next block on the best tip
//! given the pool's own transactions (its parents may be unconfirmed), pays the minimum
//! relay fee rate and respects the size and package limits ([`MempoolPolicy`]). Each
//! refusal is a [`MempoolError`] variant. Conflicts: first seen wins, unless the newcomer
//! pays enough to replace (see [`rbf`]). Transactions with unknown parents wait in a
//! bounded orphan pool and are retried when a parent arrives.
//!
//! Chain events ([`ChainEvent`], from `ChainState::accept_block`) keep it on the tip:
//! a connected block removes its transactions and everything conflicting with them; the
//! transactions of disconnected blocks are buffered and, when the reorganisation is
//! complete, the whole pool is rebuilt against the new tip (returned transactions first,
//! then the pool in its order), dropping what became invalid. Nothing is lost or
//! duplicated: a transaction ends up in the pool, in the best chain, or dropped with a
//! reason.
//!
//! Data structures: entries by txid with in-pool parent/child links and cached ancestor and
//! descendant package totals (updated by walks bounded by the 25-transaction limits); an
//! index from spent outpoint to spender (conflicts in O(inputs)); an order map by arrival
//! sequence, which is topological (parents first) and is the iteration order; and an
//! ordered set by eviction score, so trimming a full pool takes O(log n) per eviction; and
//! a set by entry time, so expiry (run on every accept) touches only what expires.
//! Accepting costs O(inputs) lookups plus O(25) package updates and O(log n) index
//! updates; a reorganisation costs one revalidation of the pool (no signatures).

mod entry;
mod error;
mod orphans;
pub mod persist;
mod policy;
pub mod rbf;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

pub use entry::{MempoolEntry, PackageStats};
pub use error::MempoolError;
pub use orphans::OrphanTxPool;
pub use policy::{FeeRate, MempoolPolicy};

use crate::amount::Amount;
use crate::block::Block;
use crate::error::{ChainError, ConsensusError};
use crate::event::ChainEvent;
use crate::hash::Hash256;
use crate::height::Height;
use crate::params::ChainParams;
use crate::state::{ChainState, Clock};
use crate::transaction::{OutPoint, Transaction};
use crate::utxo::{UtxoEntry, UtxoView};
use crate::validation::{check_transaction, check_tx_inputs};

/// What happened to a transaction the pool took.
#[derive(Clone, Debug)]
pub enum TxAccepted {
    /// It is in the pool.
    Added {
        /// Its txid.
        txid: Hash256,
        /// Its fee.
        fee: Amount,
        /// Its encoded size, bytes.
        size: usize,
        /// Transactions it replaced (conflicts and their descendants).
        replaced: Vec<Arc<Transaction>>,
        /// Orphans that its arrival let into the pool, in order.
        orphans_added: Vec<Hash256>,
    },
    /// Some parents are unknown: it waits in the orphan pool for them.
    Orphan {
        /// Its txid.
        txid: Hash256,
        /// The parent txids it waits for.
        missing: Vec<Hash256>,
    },
}

/// What applying chain events changed in the pool.
#[derive(Debug, Default)]
pub struct MempoolUpdate {
    /// Removed because a connected block included them.
    pub confirmed: Vec<Hash256>,
    /// Removed because they (or an ancestor) conflicted with a connected block.
    pub conflicted: Vec<Hash256>,
    /// Transactions of disconnected blocks now back in the pool.
    pub returned: Vec<Hash256>,
    /// Dropped when the pool was revalidated after a reorganisation, with the reason.
    pub dropped: Vec<(Hash256, MempoolError)>,
    /// Orphans that could enter the pool.
    pub orphans_added: Vec<Hash256>,
}

impl MempoolUpdate {
    fn merge(&mut self, other: MempoolUpdate) {
        self.confirmed.extend(other.confirmed);
        self.conflicted.extend(other.conflicted);
        self.returned.extend(other.returned);
        self.dropped.extend(other.dropped);
        self.orphans_added.extend(other.orphans_added);
    }
}

/// How strictly a transaction is checked.
#[derive(Clone, Copy)]
struct Mode {
    /// Enforce the minimum relay fee (off for transactions returned from blocks, which may
    /// have been mined for free).
    relay_fee: bool,
    /// Verify signatures (off when revalidating: a signature does not depend on the tip).
    signatures: bool,
    /// Conflicts may replace (off when rebuilding: then the first in order wins).
    replace: bool,
    /// Enforce the ancestor/descendant limits (off when rebuilding after a reorg: returned
    /// transactions lengthen packages already in the pool, and dropping valid transactions
    /// for that would lose them; Core lets the limits be exceeded there too).
    limits: bool,
}

const RELAY: Mode = Mode {
    relay_fee: true,
    signatures: true,
    replace: true,
    limits: true,
};

/// A transaction that passed every check, with what the commit needs.
struct Checked {
    tx: Arc<Transaction>,
    txid: Hash256,
    fee: u64,
    size: usize,
    parents: BTreeSet<Hash256>,
    evicted: BTreeSet<Hash256>,
    /// Best-chain height it was checked against.
    height: Height,
}

enum Verdict {
    Ready(Checked),
    /// Inputs whose transactions are unknown.
    Orphan(Vec<OutPoint>),
}

/// Eviction index key: lowest score first; among equals the newest goes first.
type ScoreKey = (FeeRate, Reverse<u64>, Hash256);

/// The mempool. See the module doc.
pub struct Mempool {
    policy: MempoolPolicy,
    clock: Clock,
    entries: HashMap<Hash256, MempoolEntry>,
    /// Which pool transaction spends each outpoint.
    spends: HashMap<OutPoint, Hash256>,
    /// Arrival order (topological).
    order: BTreeMap<u64, Hash256>,
    by_score: BTreeSet<ScoreKey>,
    /// Entry times, so expiry touches only what expires.
    by_time: BTreeSet<(u64, Hash256)>,
    orphans: OrphanTxPool,
    bytes: usize,
    total_fee: u64,
    next_seq: u64,
    /// Non-coinbase transactions of blocks disconnected since the last rebuild, one list
    /// per block in event order (tip first).
    disconnected: Vec<Vec<Arc<Transaction>>>,
}

/// The UTXO set of the best tip plus the pool's outputs, minus outputs the pool already
/// spends, with `evicted` (transactions a replacement would remove) treated as absent.
struct PoolView<'a> {
    chain: &'a ChainState,
    entries: &'a HashMap<Hash256, MempoolEntry>,
    spends: &'a HashMap<OutPoint, Hash256>,
    evicted: &'a BTreeSet<Hash256>,
    height: Height,
}

impl UtxoView for PoolView<'_> {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        if let Some(spender) = self.spends.get(outpoint) {
            if !self.evicted.contains(spender) {
                return Ok(None);
            }
        }
        if let Some(parent) = self.entries.get(&outpoint.txid) {
            if self.evicted.contains(&outpoint.txid) {
                return Ok(None);
            }
            // Pool transactions are never coinbases, so the height only matters for show.
            return Ok(parent.tx.outputs.get(outpoint.index as usize).map(|output| UtxoEntry {
                output: *output,
                height: self.height,
                is_coinbase: false,
            }));
        }
        self.chain.utxo(outpoint)
    }
}

impl Mempool {
    /// An empty pool with the network's default policy.
    pub fn new(params: &ChainParams, clock: Clock) -> Mempool {
        Mempool::with_policy(MempoolPolicy::for_params(params), clock)
    }

    /// An empty pool with `policy`; `clock` gives seconds (expiry), injectable for tests.
    pub fn with_policy(policy: MempoolPolicy, clock: Clock) -> Mempool {
        Mempool {
            policy,
            clock,
            entries: HashMap::new(),
            spends: HashMap::new(),
            order: BTreeMap::new(),
            by_score: BTreeSet::new(),
            by_time: BTreeSet::new(),
            orphans: OrphanTxPool::default(),
            bytes: 0,
            total_fee: 0,
            next_seq: 0,
            disconnected: Vec::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &MempoolPolicy {
        &self.policy
    }

    // ----- queries (RPC, miner, wallet) -----

    /// The entry of a pool transaction.
    pub fn get(&self, txid: &Hash256) -> Option<&MempoolEntry> {
        self.entries.get(txid)
    }

    /// True if the transaction is in the pool (orphans are not).
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.entries.contains_key(txid)
    }

    /// Transactions in the pool.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes of the pool's transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sum of the pool's fees.
    pub fn total_fees(&self) -> Amount {
        Amount(self.total_fee)
    }

    /// Entries in pool order: deterministic, and parents always before their children.
    pub fn iter(&self) -> impl Iterator<Item = &MempoolEntry> + '_ {
        self.order.values().filter_map(|txid| self.entries.get(txid))
    }

    /// Txids in pool order (for `getrawmempool`).
    pub fn txids(&self) -> Vec<Hash256> {
        self.order.values().copied().collect()
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Hash256> {
        self.spends.get(outpoint).copied()
    }

    /// In-pool ancestors of `txid` (not itself), parents first: what a miner must include
    /// before it.
    pub fn ancestors(&self, txid: &Hash256) -> Vec<Hash256> {
        self.in_pool_order(self.ancestors_of(txid))
    }

    /// In-pool descendants of `txid` (not itself), in pool order.
    pub fn descendants(&self, txid: &Hash256) -> Vec<Hash256> {
        self.in_pool_order(self.descendants_of(txid))
    }

    /// Orphans waiting for parents.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// True if `txid` waits in the orphan pool.
    pub fn contains_orphan(&self, txid: &Hash256) -> bool {
        self.orphans.contains(txid)
    }

    /// Entries by ancestor fee rate, highest first, ties in pool order: the order in which
    /// package selection considers them (a child is not ready before its ancestors; the
    /// miner handles that). O(n log n).
    pub fn by_ancestor_fee_rate(&self) -> Vec<&MempoolEntry> {
        let mut sorted: Vec<&MempoolEntry> = self.entries.values().collect();
        sorted.sort_by(|a, b| {
            b.ancestor_fee_rate()
                .cmp(&a.ancestor_fee_rate())
                .then(a.seq.cmp(&b.seq))
        });
        sorted
    }

    /// Fee rate (units per byte) a wallet should pay to be mined soon; never below the
    /// minimum relay rate, never an error. When the pool holds more than a block, it is just
    /// above the ancestor fee rate where a block filled by ancestor fee rate would end; when
    /// the pool is nearly full, just above the lowest eviction score (or it would be evicted).
    pub fn fee_rate_estimate(&self) -> u64 {
        let floor = self.policy.min_relay_fee_rate;
        let mut rate = floor;
        // Room for the coinbase and header.
        let budget = self.policy.max_block_size.saturating_sub(1_000);
        if self.bytes > budget {
            let mut used = 0usize;
            for e in self.by_ancestor_fee_rate() {
                used += e.size;
                if used > budget {
                    rate = rate.max(e.ancestor_fee_rate().per_byte_ceil().saturating_add(1));
                    break;
                }
            }
        }
        if self.bytes.saturating_mul(10) > self.policy.max_bytes.saturating_mul(9) {
            if let Some((lowest, _, _)) = self.by_score.first() {
                rate = rate.max(lowest.per_byte_ceil().saturating_add(1));
            }
        }
        rate.max(floor)
    }

    // ----- acceptance -----

    /// Tries to add `tx` on top of `chain`'s best tip. Also drops expired transactions
    /// first, and retries orphans waiting for it after.
    pub fn accept(&mut self, tx: Arc<Transaction>, chain: &ChainState) -> Result<TxAccepted, MempoolError> {
        let now = self.now();
        self.accept_entered(tx, chain, now)
    }

    /// [`Mempool::accept`] for a transaction read back from disk that first entered a pool
    /// at `entered` (clock seconds): it keeps that entry time, so its expiry counts from
    /// its first arrival, not from the restart (as Core's `mempool.dat`). One already past
    /// the expiry is refused.
    pub fn accept_restored(
        &mut self,
        tx: Arc<Transaction>,
        chain: &ChainState,
        entered: u64,
    ) -> Result<TxAccepted, MempoolError> {
        let now = self.now();
        let age = now.saturating_sub(entered);
        if age >= self.policy.expiry_secs {
            return Err(MempoolError::Expired {
                age,
                max: self.policy.expiry_secs,
            });
        }
        // A time in the future (a clock set back) is clamped to now.
        self.accept_entered(tx, chain, entered.min(now))
    }

    fn accept_entered(
        &mut self,
        tx: Arc<Transaction>,
        chain: &ChainState,
        entered: u64,
    ) -> Result<TxAccepted, MempoolError> {
        self.expire();
        let txid = tx.txid();
        match self.check(&tx, txid, chain, RELAY)? {
            Verdict::Orphan(missing) => {
                let parents: BTreeSet<Hash256> = missing.iter().map(|op| op.txid).collect();
                let now = self.now();
                let size = tx.size();
                let evicted = self.orphans.insert(
                    txid,
                    tx,
                    size,
                    parents.clone(),
                    now,
                    self.policy.max_orphans,
                    self.policy.max_orphan_bytes,
                );
                if !evicted.is_empty() {
                    tracing::debug!(count = evicted.len(), "orphan pool full: evicted the oldest");
                }
                Ok(TxAccepted::Orphan {
                    txid,
                    missing: parents.into_iter().collect(),
                })
            }
            Verdict::Ready(checked) => {
                let (fee, size) = (checked.fee, checked.size);
                let replaced = self.commit(checked, entered);
                self.trim();
                if !self.entries.contains_key(&txid) {
                    return Err(MempoolError::PoolFull { fee, size });
                }
                let orphans_added = self.process_orphans(vec![txid], chain);
                Ok(TxAccepted::Added {
                    txid,
                    fee: Amount(fee),
                    size,
                    replaced: replaced.into_iter().map(|e| e.tx).collect(),
                    orphans_added,
                })
            }
        }
    }

    /// What [`Mempool::accept`] would decide, without changing anything (for
    /// `testmempoolaccept`): `Ok(Some(fee))` if it would enter the pool, `Ok(None)` if it
    /// would wait as an orphan. Does not predict eviction from a full pool.
    pub fn test_accept(&self, tx: &Arc<Transaction>, chain: &ChainState) -> Result<Option<Amount>, MempoolError> {
        match self.check(tx, tx.txid(), chain, RELAY)? {
            Verdict::Ready(checked) => Ok(Some(Amount(checked.fee))),
            Verdict::Orphan(_) => Ok(None),
        }
    }

    /// Every check, in order of cost; nothing is changed.
    fn check(
        &self,
        tx: &Arc<Transaction>,
        txid: Hash256,
        chain: &ChainState,
        mode: Mode,
    ) -> Result<Verdict, MempoolError> {
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        let size = tx.size();
        if size > self.policy.max_tx_size {
            return Err(MempoolError::TooLarge {
                size,
                max: self.policy.max_tx_size,
            });
        }
        check_transaction(tx, chain.params()).map_err(|rule| match rule {
            ConsensusError::TxTooLarge { size, max } => MempoolError::TooLarge { size, max },
            other => MempoolError::Consensus(other),
        })?;
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyInPool(txid));
        }
        if self.orphans.contains(&txid) {
            return Err(MempoolError::AlreadyOrphan(txid));
        }
        if chain.store().tx_location(&txid)?.is_some() {
            return Err(MempoolError::AlreadyConfirmed(txid));
        }

        // Where each input comes from: the pool, the chain, or an unknown parent.
        let mut missing = Vec::new();
        let mut conflicts = BTreeSet::new();
        for input in &tx.inputs {
            let op = input.prev_out;
            if let Some(parent) = self.entries.get(&op.txid) {
                if op.index as usize >= parent.tx.outputs.len() {
                    return Err(MempoolError::MissingOrSpent {
                        txid: op.txid,
                        index: op.index,
                    });
                }
            } else if chain.utxo(&op)?.is_none() {
                // A known transaction's output that is gone was spent (or never existed);
                // only an unknown transaction makes this an orphan.
                if chain.store().tx_location(&op.txid)?.is_some() {
                    return Err(MempoolError::MissingOrSpent {
                        txid: op.txid,
                        index: op.index,
                    });
                }
                missing.push(op);
                continue;
            }
            if let Some(spender) = self.spends.get(&op) {
                if !mode.replace || !self.policy.replace_by_fee {
                    return Err(MempoolError::Conflict {
                        txid: op.txid,
                        index: op.index,
                        spent_by: *spender,
                    });
                }
                conflicts.insert(*spender);
            }
        }
        if !missing.is_empty() {
            return Ok(Verdict::Orphan(missing));
        }
        let evicted = if conflicts.is_empty() {
            BTreeSet::new()
        } else {
            let mut all = conflicts.clone();
            for c in &conflicts {
                // Stop walking once rule 5 is broken anyway: a transaction with many
                // conflicting inputs must not make us walk the whole pool.
                if all.len() > self.policy.max_replacements {
                    break;
                }
                all.extend(self.descendants_of(c));
            }
            rbf::check_structure(tx, &conflicts, &all, &self.entries, &self.policy)?;
            all
        };

        // Consensus spend rules against tip + pool, for inclusion in the next block.
        let spend_height = Height(chain.height().0.saturating_add(1));
        let view = PoolView {
            chain,
            entries: &self.entries,
            spends: &self.spends,
            evicted: &evicted,
            height: spend_height,
        };
        let inputs = check_tx_inputs(tx, txid, &view, spend_height, chain.params(), &chain.genesis_hash())
            .map_err(|e| spend_error(e, spend_height))?;
        let fee = inputs.fee.0;

        if mode.relay_fee {
            let min_fee = self.policy.min_fee(size);
            if fee < min_fee {
                return Err(MempoolError::FeeTooLow {
                    fee,
                    size,
                    min_fee,
                    rate: self.policy.min_relay_fee_rate,
                });
            }
        }

        // Package limits, not counting what a replacement evicts.
        let parents: BTreeSet<Hash256> = tx
            .inputs
            .iter()
            .map(|i| i.prev_out.txid)
            .filter(|t| self.entries.contains_key(t))
            .collect();
        if mode.limits {
            self.check_limits(&parents, &evicted)?;
        }

        if !evicted.is_empty() {
            rbf::check_fees(fee, size, &evicted, &self.entries, &self.policy)?;
        }

        // Signatures last: the expensive part. Verified through the chain's cache, which
        // remembers them so the block that mines this transaction connects faster.
        if mode.signatures {
            // A poisoned lock only means a panic elsewhere mid-insert; the cache holds
            // verified triples only, so it is still sound.
            let mut cache = chain.sig_cache().lock().unwrap_or_else(|e| e.into_inner());
            cache
                .verify_all(&inputs.signatures)
                .map_err(|index| MempoolError::InvalidSignature { index })?;
        }
        Ok(Verdict::Ready(Checked {
            tx: tx.clone(),
            txid,
            fee,
            size,
            parents,
            evicted,
            height: chain.height(),
        }))
    }

    /// Ancestor count (with itself) and every ancestor's descendant count (with itself and
    /// the newcomer) stay within the policy, not counting transactions a replacement evicts.
    fn check_limits(&self, parents: &BTreeSet<Hash256>, evicted: &BTreeSet<Hash256>) -> Result<(), MempoolError> {
        let ancestors = self.ancestors_of_set(parents);
        if ancestors.len() + 1 > self.policy.max_ancestors {
            return Err(MempoolError::TooManyAncestors {
                count: ancestors.len() + 1,
                max: self.policy.max_ancestors,
            });
        }
        let mut evicted_below: HashMap<Hash256, usize> = HashMap::new();
        for x in evicted {
            for a in self.ancestors_of(x) {
                *evicted_below.entry(a).or_default() += 1;
            }
        }
        for a in &ancestors {
            let Some(e) = self.entries.get(a) else { continue };
            let count = e
                .descendants
                .count
                .saturating_sub(evicted_below.get(a).copied().unwrap_or(0))
                + 1;
            if count > self.policy.max_descendants {
                return Err(MempoolError::TooManyDescendants {
                    ancestor: *a,
                    count,
                    max: self.policy.max_descendants,
                });
            }
        }
        Ok(())
    }

    /// Inserts a checked transaction, first removing what it replaces (returned).
    fn commit(&mut self, c: Checked, time: u64) -> Vec<MempoolEntry> {
        let replaced = self.remove_set(&c.evicted);
        let ancestors = self.ancestors_of_set(&c.parents);
        let mut ancestor_stats = PackageStats::single(c.size, c.fee);
        for a in &ancestors {
            if let Some(e) = self.entries.get(a) {
                ancestor_stats.add(e.size, e.fee);
            }
        }
        for a in &ancestors {
            self.update(a, |e| e.descendants.add(c.size, c.fee));
        }
        for p in &c.parents {
            if let Some(e) = self.entries.get_mut(p) {
                e.children.insert(c.txid);
            }
        }
        for input in &c.tx.inputs {
            self.spends.insert(input.prev_out, c.txid);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = MempoolEntry {
            tx: c.tx,
            txid: c.txid,
            fee: c.fee,
            size: c.size,
            time,
            height: c.height,
            seq,
            parents: c.parents,
            children: BTreeSet::new(),
            ancestors: ancestor_stats,
            descendants: PackageStats::single(c.size, c.fee),
        };
        self.order.insert(seq, c.txid);
        self.by_score.insert(score_key(&entry));
        self.by_time.insert((time, c.txid));
        self.bytes += c.size;
        self.total_fee = self.total_fee.saturating_add(c.fee);
        self.entries.insert(c.txid, entry);
        replaced
    }

    /// Retries the orphans waiting for `parents` (and, transitively, for what they let in).
    fn process_orphans(&mut self, parents: Vec<Hash256>, chain: &ChainState) -> Vec<Hash256> {
        let mut added = Vec::new();
        let mut queue = VecDeque::from(parents);
        while let Some(parent) = queue.pop_front() {
            for tx in self.orphans.take_children(&parent) {
                let txid = tx.txid();
                match self.check(&tx, txid, chain, RELAY) {
                    Ok(Verdict::Ready(checked)) => {
                        let now = self.now();
                        self.commit(checked, now);
                        self.trim();
                        if self.entries.contains_key(&txid) {
                            added.push(txid);
                            queue.push_back(txid);
                        }
                    }
                    Ok(Verdict::Orphan(missing)) => {
                        let parents = missing.iter().map(|op| op.txid).collect();
                        let now = self.now();
                        let size = tx.size();
                        self.orphans.insert(
                            txid,
                            tx,
                            size,
                            parents,
                            now,
                            self.policy.max_orphans,
                            self.policy.max_orphan_bytes,
                        );
                    }
                    Err(error) => tracing::debug!(tx = %txid, %error, "orphan refused"),
                }
            }
        }
        added
    }

    // ----- removal -----

    /// Drops transactions (with their descendants) and orphans older than the policy's
    /// expiry; returns the pool txids dropped.
    pub fn expire(&mut self) -> Vec<Hash256> {
        let now = self.now();
        self.orphans.expire(now, self.policy.orphan_expiry_secs);
        // Entered at or before `now - expiry`.
        let Some(cutoff) = now.checked_sub(self.policy.expiry_secs) else {
            return Vec::new();
        };
        let old: BTreeSet<Hash256> = self
            .by_time
            .range(..=(cutoff, Hash256([0xff; 32])))
            .map(|(_, txid)| *txid)
            .collect();
        let mut all = old.clone();
        for txid in &old {
            all.extend(self.descendants_of(txid));
        }
        self.remove_set(&all).into_iter().map(|e| e.txid).collect()
    }

    /// Removes a transaction and its descendants (a wallet abandoning it, an RPC call).
    pub fn remove_with_descendants(&mut self, txid: &Hash256) -> Vec<Arc<Transaction>> {
        if !self.entries.contains_key(txid) {
            return Vec::new();
        }
        let mut set = self.descendants_of(txid);
        set.insert(*txid);
        self.remove_set(&set).into_iter().map(|e| e.tx).collect()
    }

    /// Evicts the lowest eviction score (with its descendants) until the pool fits.
    fn trim(&mut self) -> Vec<MempoolEntry> {
        let mut evicted = Vec::new();
        while self.bytes > self.policy.max_bytes {
            let Some(&(_, _, lowest)) = self.by_score.first() else {
                break;
            };
            let mut set = self.descendants_of(&lowest);
            set.insert(lowest);
            evicted.extend(self.remove_set(&set));
        }
        if !evicted.is_empty() {
            tracing::debug!(
                count = evicted.len(),
                "mempool full: evicted the lowest-paying packages"
            );
        }
        evicted
    }

    /// Removes `set`, children first (fewer package updates), returning the entries in
    /// pool order.
    fn remove_set(&mut self, set: &BTreeSet<Hash256>) -> Vec<MempoolEntry> {
        let mut ordered: Vec<(u64, Hash256)> = set
            .iter()
            .filter_map(|t| self.entries.get(t).map(|e| (e.seq, *t)))
            .collect();
        ordered.sort_unstable_by_key(|(seq, _)| Reverse(*seq));
        let mut out: Vec<MempoolEntry> = ordered.iter().filter_map(|(_, t)| self.remove_entry(t)).collect();
        out.reverse();
        out
    }

    /// Removes one transaction, keeping its descendants (now with one ancestor fewer).
    fn remove_entry(&mut self, txid: &Hash256) -> Option<MempoolEntry> {
        let ancestors = self.ancestors_of(txid);
        let descendants = self.descendants_of(txid);
        let entry = self.entries.remove(txid)?;
        for a in &ancestors {
            self.update(a, |e| e.descendants.remove(entry.size, entry.fee));
        }
        for d in &descendants {
            self.update(d, |e| e.ancestors.remove(entry.size, entry.fee));
        }
        for p in &entry.parents {
            if let Some(e) = self.entries.get_mut(p) {
                e.children.remove(txid);
            }
        }
        for c in &entry.children {
            if let Some(e) = self.entries.get_mut(c) {
                e.parents.remove(txid);
            }
        }
        for input in &entry.tx.inputs {
            if self.spends.get(&input.prev_out) == Some(txid) {
                self.spends.remove(&input.prev_out);
            }
        }
        self.by_score.remove(&score_key(&entry));
        self.by_time.remove(&(entry.time, *txid));
        self.order.remove(&entry.seq);
        self.bytes -= entry.size;
        self.total_fee = self.total_fee.saturating_sub(entry.fee);
        Some(entry)
    }

    // ----- chain events -----

    /// Follows one chain event. Disconnected blocks' transactions are buffered until the
    /// `Reorg` event that ends every reorganisation, then the pool is rebuilt (see
    /// [`Mempool::finish_reorg`]). `chain` is the state after the events.
    pub fn apply(&mut self, event: &ChainEvent, chain: &ChainState) -> MempoolUpdate {
        match event {
            ChainEvent::BlockConnected { block, .. } => self.block_connected(block, chain),
            ChainEvent::BlockDisconnected { block, .. } => {
                let txs = block
                    .transactions
                    .iter()
                    .skip(1)
                    .map(|tx| Arc::new(tx.clone()))
                    .collect();
                self.disconnected.push(txs);
                MempoolUpdate::default()
            }
            ChainEvent::Reorg { .. } => self.finish_reorg(chain),
        }
    }

    /// Follows every event of one `accept_block` outcome, then finishes any reorganisation.
    pub fn apply_all(&mut self, events: &[ChainEvent], chain: &ChainState) -> MempoolUpdate {
        let mut update = MempoolUpdate::default();
        for event in events {
            update.merge(self.apply(event, chain));
        }
        update.merge(self.finish_reorg(chain));
        update
    }

    fn block_connected(&mut self, block: &Block, chain: &ChainState) -> MempoolUpdate {
        let mut update = MempoolUpdate::default();
        let mut txids = Vec::with_capacity(block.transactions.len());
        for tx in block.transactions.iter().skip(1) {
            let txid = tx.txid();
            txids.push(txid);
            if self.remove_entry(&txid).is_some() {
                update.confirmed.push(txid);
            }
            // Whatever else spends the same outputs can never be mined now.
            for input in &tx.inputs {
                if let Some(spender) = self.spends.get(&input.prev_out).copied() {
                    let mut set = self.descendants_of(&spender);
                    set.insert(spender);
                    update
                        .conflicted
                        .extend(self.remove_set(&set).into_iter().map(|e| e.txid));
                }
            }
        }
        if !self.disconnected.is_empty() {
            let confirmed: BTreeSet<Hash256> = txids.iter().copied().collect();
            for txs in &mut self.disconnected {
                txs.retain(|tx| !confirmed.contains(&tx.txid()));
            }
        }
        update.orphans_added = self.process_orphans(txids, chain);
        update
    }

    /// Rebuilds the pool against `chain`'s tip after blocks were disconnected: the
    /// disconnected blocks' transactions (oldest block first) then the pool's, in
    /// dependency order, each revalidated (signatures excepted: they do not depend on the
    /// tip). The first of two conflicting transactions wins. Returned transactions need not
    /// pay the relay fee (a miner took them for less). Does nothing if no block was
    /// disconnected.
    pub fn finish_reorg(&mut self, chain: &ChainState) -> MempoolUpdate {
        let mut update = MempoolUpdate::default();
        if self.disconnected.is_empty() {
            return update;
        }
        let now = self.now();
        // (tx, time it entered, came from a block)
        let mut candidates: Vec<(Arc<Transaction>, u64, bool)> = Vec::new();
        for block in std::mem::take(&mut self.disconnected).into_iter().rev() {
            candidates.extend(block.into_iter().map(|tx| (tx, now, true)));
        }
        let old: Vec<(Arc<Transaction>, u64)> = self.iter().map(|e| (e.tx.clone(), e.time)).collect();
        candidates.extend(old.into_iter().map(|(tx, time)| (tx, time, false)));
        self.entries.clear();
        self.spends.clear();
        self.order.clear();
        self.by_score.clear();
        self.by_time.clear();
        self.bytes = 0;
        self.total_fee = 0;

        let mut returned = Vec::new();
        for (tx, time, from_block) in topological(candidates) {
            let txid = tx.txid();
            // A returned transaction may also have arrived as an orphan meanwhile.
            self.orphans.discard(&txid);
            let mode = Mode {
                relay_fee: false,
                signatures: false,
                replace: false,
                limits: false,
            };
            match self.check(&tx, txid, chain, mode) {
                Ok(Verdict::Ready(checked)) => {
                    self.commit(checked, time);
                    if from_block {
                        returned.push(txid);
                    }
                }
                // Its parent was dropped or conflicted away: it can never be valid.
                Ok(Verdict::Orphan(missing)) => {
                    let op = missing.first().copied().unwrap_or(OutPoint::NULL);
                    update.dropped.push((
                        txid,
                        MempoolError::MissingOrSpent {
                            txid: op.txid,
                            index: op.index,
                        },
                    ));
                }
                // Mined again in the new branch: not lost.
                Err(MempoolError::AlreadyConfirmed(_)) | Err(MempoolError::AlreadyInPool(_)) => {}
                Err(error) => update.dropped.push((txid, error)),
            }
        }
        for e in self.trim() {
            update.dropped.push((
                e.txid,
                MempoolError::PoolFull {
                    fee: e.fee,
                    size: e.size,
                },
            ));
        }
        update.returned = returned.into_iter().filter(|t| self.entries.contains_key(t)).collect();
        update.orphans_added = self.process_orphans(update.returned.clone(), chain);
        update
    }

    // ----- graph walks -----

    /// In-pool ancestors of `txid`, not itself.
    fn ancestors_of(&self, txid: &Hash256) -> BTreeSet<Hash256> {
        match self.entries.get(txid) {
            Some(e) => self.ancestors_of_set(&e.parents),
            None => BTreeSet::new(),
        }
    }

    /// `parents` and all their in-pool ancestors.
    fn ancestors_of_set(&self, parents: &BTreeSet<Hash256>) -> BTreeSet<Hash256> {
        self.closure(parents.iter().copied(), |e| &e.parents)
    }

    /// In-pool descendants of `txid`, not itself.
    fn descendants_of(&self, txid: &Hash256) -> BTreeSet<Hash256> {
        match self.entries.get(txid) {
            Some(e) => self.closure(e.children.iter().copied(), |e| &e.children),
            None => BTreeSet::new(),
        }
    }

    fn closure(
        &self,
        start: impl Iterator<Item = Hash256>,
        next: impl Fn(&MempoolEntry) -> &BTreeSet<Hash256>,
    ) -> BTreeSet<Hash256> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Hash256> = start.collect();
        while let Some(t) = stack.pop() {
            if let Some(e) = self.entries.get(&t) {
                if seen.insert(t) {
                    stack.extend(next(e).iter().copied());
                }
            }
        }
        seen
    }

    fn in_pool_order(&self, set: BTreeSet<Hash256>) -> Vec<Hash256> {
        let mut v: Vec<(u64, Hash256)> = set
            .into_iter()
            .filter_map(|t| self.entries.get(&t).map(|e| (e.seq, t)))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Changes an entry, keeping the eviction index in step.
    fn update(&mut self, txid: &Hash256, f: impl FnOnce(&mut MempoolEntry)) {
        if let Some(e) = self.entries.get_mut(txid) {
            self.by_score.remove(&score_key(e));
            f(e);
            self.by_score.insert(score_key(e));
        }
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Checks the pool's internal consistency and that every transaction is still valid on
    /// `chain`'s tip: indexes agree, cached package totals equal recomputed ones, the
    /// order is topological, limits hold, nothing is also confirmed. For tests and debug
    /// RPCs; linear in the pool with chain reads.
    pub fn check_consistency(&self, chain: &ChainState) -> Result<(), String> {
        let fail = |msg: String| Err(msg);
        if self.order.len() != self.entries.len()
            || self.by_score.len() != self.entries.len()
            || self.by_time.len() != self.entries.len()
        {
            return fail("index sizes differ from the entry count".into());
        }
        let bytes: usize = self.entries.values().map(|e| e.size).sum();
        let fees: u64 = self.entries.values().map(|e| e.fee).sum();
        if bytes != self.bytes || fees != self.total_fee {
            return fail(format!(
                "totals {}/{} differ from {bytes}/{fees}",
                self.bytes, self.total_fee
            ));
        }
        let inputs: usize = self.entries.values().map(|e| e.tx.inputs.len()).sum();
        if inputs != self.spends.len() {
            return fail("spend index size differs from the input count".into());
        }
        let spend_height = Height(chain.height().0.saturating_add(1));
        for e in self.entries.values() {
            let txid = e.txid;
            if self.order.get(&e.seq) != Some(&txid)
                || !self.by_score.contains(&score_key(e))
                || !self.by_time.contains(&(e.time, txid))
            {
                return fail(format!("{txid} is missing from an index"));
            }
            let parents: BTreeSet<Hash256> =
                e.tx.inputs
                    .iter()
                    .map(|i| i.prev_out.txid)
                    .filter(|t| self.entries.contains_key(t))
                    .collect();
            if parents != e.parents {
                return fail(format!("{txid} parent links are wrong"));
            }
            for input in &e.tx.inputs {
                if self.spends.get(&input.prev_out) != Some(&txid) {
                    return fail(format!("{txid} input is not in the spend index"));
                }
            }
            for p in &e.parents {
                let Some(parent) = self.entries.get(p) else {
                    return fail(format!("{txid} links to missing parent {p}"));
                };
                if !parent.children.contains(&txid) || parent.seq >= e.seq {
                    return fail(format!("{txid} and parent {p} are out of order or unlinked"));
                }
            }
            let mut anc = PackageStats::single(e.size, e.fee);
            for a in self.ancestors_of(&txid).iter().filter_map(|a| self.entries.get(a)) {
                anc.add(a.size, a.fee);
            }
            let mut desc = PackageStats::single(e.size, e.fee);
            for d in self.descendants_of(&txid).iter().filter_map(|d| self.entries.get(d)) {
                desc.add(d.size, d.fee);
            }
            if anc != e.ancestors || desc != e.descendants {
                return fail(format!("{txid} cached package totals are stale"));
            }
            if chain.store().tx_location(&txid).map_err(|e| e.to_string())?.is_some() {
                return fail(format!("{txid} is both in the pool and confirmed"));
            }
            let itself = BTreeSet::from([txid]);
            let view = PoolView {
                chain,
                entries: &self.entries,
                spends: &self.spends,
                evicted: &itself,
                height: spend_height,
            };
            let inputs = check_tx_inputs(&e.tx, txid, &view, spend_height, chain.params(), &chain.genesis_hash())
                .map_err(|err| format!("{txid} is no longer valid: {err}"))?;
            if inputs.fee.0 != e.fee {
                return fail(format!("{txid} fee changed"));
            }
        }
        Ok(())
    }
}

fn score_key(e: &MempoolEntry) -> ScoreKey {
    (e.eviction_score(), Reverse(e.seq), e.txid)
}

/// Maps a spend-check failure to the mempool's reason.
fn spend_error(error: ChainError, spend_height: Height) -> MempoolError {
    let ChainError::InvalidTx { rule, .. } = error else {
        return MempoolError::Chain(error);
    };
    match rule {
        ConsensusError::MissingOrSpentInput { txid, index } => MempoolError::MissingOrSpent { txid, index },
        ConsensusError::ImmatureCoinbase {
            txid,
            index,
            height,
            mature_at,
        } => MempoolError::ImmatureCoinbase {
            txid,
            index,
            height,
            mature_at,
            spend_height: spend_height.0,
        },
        ConsensusError::PubkeyMismatch { index } => MempoolError::WrongKey { index },
        ConsensusError::BadSignature { index } => MempoolError::InvalidSignature { index },
        ConsensusError::NegativeFee { inputs, outputs } => MempoolError::OutputsExceedInputs { inputs, outputs },
        // The remaining rules already name what was wrong; carry them verbatim.
        other => MempoolError::Consensus(other),
    }
}

/// Orders `candidates` so every transaction follows its parents among them, otherwise
/// keeping the given order (Kahn's algorithm, smallest position first); drops duplicates.
fn topological(candidates: Vec<(Arc<Transaction>, u64, bool)>) -> Vec<(Arc<Transaction>, u64, bool)> {
    let mut position: HashMap<Hash256, usize> = HashMap::new();
    let mut items: Vec<Option<(Arc<Transaction>, u64, bool)>> = Vec::new();
    for c in candidates {
        let txid = c.0.txid();
        if let std::collections::hash_map::Entry::Vacant(slot) = position.entry(txid) {
            slot.insert(items.len());
            items.push(Some(c));
        }
    }
    let mut waiting_on = vec![0usize; items.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (i, item) in items.iter().enumerate() {
        let Some((tx, _, _)) = item else { continue };
        let parents: BTreeSet<usize> = tx
            .inputs
            .iter()
            .filter_map(|input| position.get(&input.prev_out.txid).copied())
            .filter(|&p| p != i)
            .collect();
        waiting_on[i] = parents.len();
        for p in parents {
            dependents[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..items.len()).filter(|&i| waiting_on[i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(items.len());
    while let Some(Reverse(i)) = ready.pop() {
        if let Some(item) = items[i].take() {
            out.push(item);
        }
        for &d in &dependents[i] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    out
}
