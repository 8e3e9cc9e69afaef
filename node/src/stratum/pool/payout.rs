//! The payout rule, pure: a PPLNS window scored by share difficulty ÷ network difficulty,
//! split with exact cumulative flooring, with a pool fee, a minimum payout and an output
//! cap (both carried over). `docs/STRATUM.md` states the same rule for miners to check.

use std::collections::BTreeMap;

use lode_chain::pow::U256;
use lode_chain::{Amount, PubkeyHash, TxOut};

/// Fixed-point scale: one unit of weight is 2^-32 of a difficulty-1 share at the reference
/// network difficulty.
pub const SCORE_UNIT: f64 = 4_294_967_296.0;

/// One share as the window sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredShare {
    /// Who it pays.
    pub payee: PubkeyHash,
    /// Its share difficulty.
    pub share_diff: f64,
    /// The network difficulty when it was submitted.
    pub net_diff: f64,
}

/// A share's weight in integer units, scored against `reference` (the network difficulty
/// of the block being paid): `round(share_diff × reference / net_diff × 2^32)`, at least 1.
/// Shares submitted at the reference difficulty weigh exactly `share_diff × 2^32`, so on a
/// steady difficulty the split is exact; otherwise the ratio is rounded once per share.
pub fn weight(share_diff: f64, net_diff: f64, reference: f64) -> u128 {
    let scaled = if net_diff == reference {
        share_diff
    } else {
        share_diff * (reference / net_diff)
    };
    let w = (scaled * SCORE_UNIT).round();
    if w.is_finite() && w >= 1.0 {
        w.min(1e36) as u128
    } else {
        1
    }
}

/// The window's size in weight units: `window × reference × 2^32`.
pub fn window_units(window: f64, reference: f64) -> u128 {
    weight(window * reference, reference, reference)
}

/// The window: walk shares newest first until the weights reach [`window_units`]; the share
/// at the edge counts only for the part inside. Weights summed per payee.
pub fn window(
    newest_first: impl IntoIterator<Item = ScoredShare>,
    window: f64,
    reference: f64,
) -> BTreeMap<PubkeyHash, u128> {
    let mut left = window_units(window, reference);
    let mut out = BTreeMap::new();
    for s in newest_first {
        if left == 0 {
            break;
        }
        let w = weight(s.share_diff, s.net_diff, reference).min(left);
        left -= w;
        *out.entry(s.payee).or_insert(0u128) += w;
    }
    out
}

/// Splits `total` by `weights` with cumulative flooring in payee order:
/// `r_i = ⌊W≤i · total / W⌋ − ⌊W<i · total / W⌋`, so the parts sum to `total` exactly.
pub fn split(total: Amount, weights: &BTreeMap<PubkeyHash, u128>) -> BTreeMap<PubkeyHash, Amount> {
    let sum = weights.values().fold(U256::zero(), |a, &w| a + U256::from(w));
    let mut out = BTreeMap::new();
    if sum.is_zero() {
        return out;
    }
    let mut cum = U256::zero();
    let mut paid_before = 0u64;
    for (payee, &w) in weights {
        cum += U256::from(w);
        // ⌊cum · total / sum⌋ ≤ total, so it fits in u64.
        let upto = (cum * U256::from(total.0) / sum).low_u64();
        out.insert(*payee, Amount(upto - paid_before));
        paid_before = upto;
    }
    out
}

/// What a found block's coinbase pays, and what carries over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    /// The coinbase outputs: miners (largest first), then the node's remainder.
    pub outputs: Vec<TxOut>,
    /// Balances carried to a later block (below the minimum payout, or past the cap).
    pub carried: BTreeMap<PubkeyHash, Amount>,
    /// Each miner's share of this block before carries.
    pub shares: BTreeMap<PubkeyHash, Amount>,
    /// The pool fee.
    pub fee: Amount,
}

/// The payout rule's inputs besides the window.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Fee in basis points of the reward, to the node.
    pub fee_bps: u32,
    /// Smallest output to a miner.
    pub min_payout: Amount,
    /// Most outputs (the node's remainder counts as one).
    pub max_outputs: usize,
}

/// The coinbase for `reward`: fee `⌊reward·fee_bps/10000⌋` first; the rest split by the
/// window; each miner is due its part plus its carried balance; dues of at least
/// `min_payout` are paid largest first while outputs and the reward last; every other due
/// carries over; the node's output gets the remainder, so outputs sum to `reward` exactly.
pub fn payout(
    reward: Amount,
    weights: &BTreeMap<PubkeyHash, u128>,
    carried: &BTreeMap<PubkeyHash, Amount>,
    rule: Rule,
    node: PubkeyHash,
) -> Payout {
    let fee = Amount((u128::from(reward.0) * u128::from(rule.fee_bps.min(10_000)) / 10_000) as u64);
    let shares = split(Amount(reward.0 - fee.0), weights);
    let mut due: BTreeMap<PubkeyHash, u64> = carried.iter().map(|(k, v)| (*k, v.0)).collect();
    for (k, v) in &shares {
        let e = due.entry(*k).or_insert(0);
        *e = e.saturating_add(v.0);
    }
    let mut order: Vec<(PubkeyHash, u64)> = due.into_iter().collect();
    // Largest first; ties by payee so the order is total.
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let miner_slots = rule.max_outputs.saturating_sub(1);
    let mut outputs = Vec::new();
    let mut out_carried = BTreeMap::new();
    let mut paid = 0u64;
    for (payee, amount) in order {
        if amount == 0 {
            continue;
        }
        if amount >= rule.min_payout.0 && outputs.len() < miner_slots && paid + amount <= reward.0 {
            paid += amount;
            outputs.push(TxOut {
                value: Amount(amount),
                pubkey_hash: payee,
            });
        } else {
            out_carried.insert(payee, Amount(amount));
        }
    }
    if reward.0 > paid {
        outputs.push(TxOut {
            value: Amount(reward.0 - paid),
            pubkey_hash: node,
        });
    }
    Payout {
        outputs,
        carried: out_carried,
        shares,
        fee,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: u8) -> PubkeyHash {
        PubkeyHash([b; 20])
    }

    #[test]
    fn split_of_the_notes_3_2_1() {
        let w: BTreeMap<_, u128> = [(p(1), 3), (p(2), 2), (p(3), 1)].into_iter().collect();
        let s = split(Amount(5_000_000_000), &w);
        assert_eq!(s[&p(1)], Amount(2_500_000_000));
        assert_eq!(s[&p(2)], Amount(1_666_666_666));
        assert_eq!(s[&p(3)], Amount(833_333_334));
    }

    #[test]
    fn window_of_the_notes() {
        // X = 2, D_net = 100, newest shares A80, B60, C50, A40.
        let (a, b, c) = (p(1), p(2), p(3));
        let shares = [(a, 80.0), (b, 60.0), (c, 50.0), (a, 40.0)].map(|(payee, d)| ScoredShare {
            payee,
            share_diff: d,
            net_diff: 100.0,
        });
        let w = window(shares, 2.0, 100.0);
        let total: u128 = w.values().sum();
        assert_eq!(total, window_units(2.0, 100.0));
        // A counts 80 + the 10 of its edge share inside the window.
        assert_eq!(w[&a], weight(90.0, 100.0, 100.0));
        let s = split(Amount(312_500_000), &w);
        assert_eq!(s[&a], Amount(140_625_000));
        assert_eq!(s[&b], Amount(93_750_000));
        assert_eq!(s[&c], Amount(78_125_000));
    }

    #[test]
    fn payout_sums_exactly_and_carries_small_and_capped() {
        let w: BTreeMap<_, u128> = [(p(1), 1000), (p(2), 10), (p(3), 500), (p(4), 400)]
            .into_iter()
            .collect();
        let rule = Rule {
            fee_bps: 100,
            min_payout: Amount(1_000_000),
            max_outputs: 3,
        };
        let carried: BTreeMap<_, _> = [(p(5), Amount(2_000_000))].into_iter().collect();
        let out = payout(Amount(100_000_000), &w, &carried, rule, p(9));
        let sum: u64 = out.outputs.iter().map(|o| o.value.0).sum();
        assert_eq!(sum, 100_000_000);
        assert_eq!(out.fee, Amount(1_000_000));
        // Two miner slots: the two largest (p1, p3); p2 is below the minimum; p4 and p5
        // past the cap carry over.
        assert_eq!(out.outputs.len(), 3);
        assert_eq!(out.outputs[0].pubkey_hash, p(1));
        assert_eq!(out.outputs[1].pubkey_hash, p(3));
        assert_eq!(out.outputs[2].pubkey_hash, p(9));
        assert!(out.carried.contains_key(&p(2)) && out.carried.contains_key(&p(4)));
        assert_eq!(out.carried[&p(5)], Amount(2_000_000));
        let shares_sum: u64 = out.shares.values().map(|a| a.0).sum();
        assert_eq!(shares_sum, 99_000_000);
    }
}
