//! One mempool transaction with its links to in-pool parents and children, and the cached
//! totals of its ancestor and descendant packages (what package selection and eviction
//! sort by).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::amount::Amount;
use crate::hash::Hash256;
use crate::height::Height;
use crate::transaction::Transaction;

use super::policy::FeeRate;

/// Totals over a set of mempool transactions (an ancestor or descendant package, counting
/// the transaction itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackageStats {
    /// Transactions in the package.
    pub count: usize,
    /// Encoded bytes of the package.
    pub size: usize,
    /// Fees of the package, base units.
    pub fee: u64,
}

impl PackageStats {
    /// The package of one transaction.
    pub fn single(size: usize, fee: u64) -> PackageStats {
        PackageStats { count: 1, size, fee }
    }

    /// Adds one transaction.
    pub(crate) fn add(&mut self, size: usize, fee: u64) {
        self.count += 1;
        self.size += size;
        self.fee = self.fee.saturating_add(fee);
    }

    /// Removes one transaction (saturating: the totals were built from the same values).
    pub(crate) fn remove(&mut self, size: usize, fee: u64) {
        self.count = self.count.saturating_sub(1);
        self.size = self.size.saturating_sub(size);
        self.fee = self.fee.saturating_sub(fee);
    }

    /// The package's fee rate.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::new(self.fee, self.size)
    }
}

/// A transaction in the mempool.
#[derive(Clone, Debug)]
pub struct MempoolEntry {
    pub(crate) tx: Arc<Transaction>,
    pub(crate) txid: Hash256,
    pub(crate) fee: u64,
    pub(crate) size: usize,
    pub(crate) time: u64,
    pub(crate) height: Height,
    pub(crate) seq: u64,
    pub(crate) parents: BTreeSet<Hash256>,
    pub(crate) children: BTreeSet<Hash256>,
    pub(crate) ancestors: PackageStats,
    pub(crate) descendants: PackageStats,
}

impl MempoolEntry {
    /// The transaction.
    pub fn tx(&self) -> &Arc<Transaction> {
        &self.tx
    }

    /// Its txid.
    pub fn txid(&self) -> Hash256 {
        self.txid
    }

    /// Its fee.
    pub fn fee(&self) -> Amount {
        Amount(self.fee)
    }

    /// Its canonical encoded size, bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Its own fee rate.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::new(self.fee, self.size)
    }

    /// Clock time (seconds) when it entered the pool; expiry counts from here.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Best-chain height when it entered the pool.
    pub fn height(&self) -> Height {
        self.height
    }

    /// Position in the pool's order: parents always have a smaller one than children.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// In-pool transactions it spends from.
    pub fn parents(&self) -> &BTreeSet<Hash256> {
        &self.parents
    }

    /// In-pool transactions spending from it.
    pub fn children(&self) -> &BTreeSet<Hash256> {
        &self.children
    }

    /// It with all its unconfirmed ancestors: a miner must include them all to include it.
    pub fn ancestor_stats(&self) -> PackageStats {
        self.ancestors
    }

    /// It with all its in-pool descendants: evicting it evicts them all.
    pub fn descendant_stats(&self) -> PackageStats {
        self.descendants
    }

    /// Fee rate of its ancestor package, the key of package selection (Core's
    /// `CompareTxMemPoolEntryByAncestorFee`).
    pub fn ancestor_fee_rate(&self) -> FeeRate {
        self.ancestors.fee_rate()
    }

    /// Eviction score: the higher of its own and its descendant package's fee rate (Core's
    /// descendant score), so a well-paying parent is not evicted for a cheap child: the child
    /// goes first.
    pub fn eviction_score(&self) -> FeeRate {
        self.fee_rate().max(self.descendants.fee_rate())
    }
}
