//! Mempool policy: limits that are not consensus, each with the reason for its value, and
//! exact fee-rate arithmetic.

use std::cmp::Ordering;

use crate::params::ChainParams;

/// Limits and switches of one mempool. Build with [`MempoolPolicy::for_params`] and adjust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolPolicy {
    /// Minimum fee rate, units per byte (the network's `min_relay_fee_rate`): the price of
    /// relaying and storing a byte, and what keeps free spam out.
    pub min_relay_fee_rate: u64,
    /// Largest transaction accepted (the network's `max_tx_size`).
    pub max_tx_size: usize,
    /// Block size the fee estimate fills (the network's `max_block_size`).
    pub max_block_size: usize,
    /// Encoded bytes the pool may hold before it evicts the lowest-paying packages. 64 MiB
    /// is hundreds of full 2 MB blocks: a backlog of days, yet small next to the node's RAM.
    pub max_bytes: usize,
    /// Seconds a transaction may wait before it is dropped: two weeks, Bitcoin Core's
    /// default, long enough to outlive a fee spike and short enough to forget the stuck.
    pub expiry_secs: u64,
    /// Most unconfirmed ancestors, counting the transaction itself (Core's 25): bounds the
    /// work of every ancestor walk and of package selection.
    pub max_ancestors: usize,
    /// Most unconfirmed descendants of any ancestor, counting the ancestor itself (Core's 25).
    pub max_descendants: usize,
    /// Whether a conflicting transaction may replace a mempool one by paying more
    /// (full replace-by-fee). When false, the first seen always wins.
    pub replace_by_fee: bool,
    /// Most transactions one replacement may evict, descendants included (BIP125 rule 5:
    /// bounds the work an attacker can make us do per relayed transaction).
    pub max_replacements: usize,
    /// Most orphan transactions held (Core's 100): they are unvalidated, so keep few.
    pub max_orphans: usize,
    /// Most bytes of orphans held: a handful of full-size transactions.
    pub max_orphan_bytes: usize,
    /// Seconds an orphan waits for its parents (Core's 20 minutes).
    pub orphan_expiry_secs: u64,
}

impl MempoolPolicy {
    /// The default policy for a network.
    pub fn for_params(params: &ChainParams) -> MempoolPolicy {
        MempoolPolicy {
            min_relay_fee_rate: params.min_relay_fee_rate,
            max_tx_size: params.max_tx_size,
            max_block_size: params.max_block_size,
            max_bytes: 64 * 1024 * 1024,
            expiry_secs: 14 * 24 * 3600,
            max_ancestors: 25,
            max_descendants: 25,
            replace_by_fee: true,
            max_replacements: 100,
            max_orphans: 100,
            max_orphan_bytes: 5 * params.max_tx_size.max(1),
            orphan_expiry_secs: 20 * 60,
        }
    }

    /// The least fee a transaction of `size` bytes must pay to be relayed.
    pub fn min_fee(&self, size: usize) -> u64 {
        self.min_relay_fee_rate.saturating_mul(size as u64)
    }
}

/// A fee rate kept as the exact fraction fee/size, so comparisons never round: a
/// replacement at exactly the same rate is refused and one unit more is enough.
#[derive(Clone, Copy, Debug)]
pub struct FeeRate {
    /// Fee, base units.
    pub fee: u64,
    /// Size, bytes (never zero: a zero size compares as one byte).
    pub size: u64,
}

impl FeeRate {
    /// `fee` units over `size` bytes.
    pub fn new(fee: u64, size: usize) -> FeeRate {
        FeeRate {
            fee,
            size: (size as u64).max(1),
        }
    }

    /// Units per byte, rounded up (what a wallet must pay per byte to match this rate).
    pub fn per_byte_ceil(&self) -> u64 {
        self.fee.div_ceil(self.size)
    }
}

impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        // a/b vs c/d ⇔ a·d vs c·b; u128 products of u64 values cannot overflow.
        (u128::from(self.fee) * u128::from(other.size)).cmp(&(u128::from(other.fee) * u128::from(self.size)))
    }
}

impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FeeRate {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rates_compare_exactly() {
        assert_eq!(FeeRate::new(1880, 188), FeeRate::new(2160, 216));
        assert!(FeeRate::new(2161, 216) > FeeRate::new(1880, 188));
        assert!(FeeRate::new(u64::MAX, 1) > FeeRate::new(u64::MAX - 1, 1));
        assert_eq!(FeeRate::new(0, 0), FeeRate::new(0, 5));
        assert_eq!(FeeRate::new(189, 188).per_byte_ceil(), 2);
    }
}
