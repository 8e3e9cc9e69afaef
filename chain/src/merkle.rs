//! Bitcoin's merkle tree over txids, with detection of the duplicate-subtree mutation.

use crate::hash::Hash256;

/// Computes the merkle root of `txids` (internal byte order) the way Bitcoin does: pairs are
/// hashed with double SHA-256 and an odd last node is paired with itself.
///
/// The second value is `true` when some level hashed two *identical* adjacent nodes that were
/// both present (not the odd-node duplication). Such a tree has the same root as a different
/// transaction list (CVE-2012-2459), so a block with it is invalid.
pub fn merkle_root(txids: &[Hash256]) -> (Hash256, bool) {
    if txids.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut level: Vec<Hash256> = txids.to_vec();
    let mut mutated = false;
    let mut buf = [0u8; 64];
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        let next: Vec<Hash256> = level
            .chunks_exact(2)
            .map(|pair| {
                buf[..32].copy_from_slice(&pair[0].0);
                buf[32..].copy_from_slice(&pair[1].0);
                Hash256::sha256d(&buf)
            })
            .collect();
        level = next;
    }
    (level[0], mutated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_tx_root_is_its_txid() {
        let t = Hash256([3; 32]);
        assert_eq!(merkle_root(&[t]), (t, false));
    }

    #[test]
    fn duplicated_last_pair_is_flagged_but_odd_duplication_is_not() {
        let a = Hash256([1; 32]);
        let b = Hash256([2; 32]);
        let c = Hash256([3; 32]);
        let (root3, m3) = merkle_root(&[a, b, c]);
        assert!(!m3);
        // [a, b, c, c] has the same root as [a, b, c] but is the mutated form.
        let (root4, m4) = merkle_root(&[a, b, c, c]);
        assert_eq!(root3, root4);
        assert!(m4);
    }
}
