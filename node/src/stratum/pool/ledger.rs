//! The pool's ledger follows the active chain. The balances carried after a found block
//! hold only while that block is on the active chain: they are backed by its coinbase's
//! remainder output to the node's wallet, which a reorg erases. So the carried balances are
//! never kept as a running total; they are always those recorded after the newest found
//! block that is on the active chain (none: nothing carried). A reorg that orphans a pool
//! block therefore reverses its credits by construction, and a reorg back restores them.
//! Shares are not consumed by a block (PPLNS windows overlap), so an orphaned block leaves
//! the share log as it was: its shares count again for the next block.

use std::collections::BTreeMap;

use lode_chain::{Amount, Hash256, Height, PubkeyHash};

use super::{bin, block_key, unbin, FoundBlock, Pool, PoolError};

/// Found blocks examined at most (newest first) when looking for the newest one on the
/// active chain: more orphans than this in a row means nothing is carried.
const MAX_LEDGER_WALK: usize = 4_096;

/// The ledger as of one view of the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerHead {
    /// The newest found block on the active chain (height, hash), if any.
    pub head: Option<(Height, Hash256)>,
    /// The balances carried after it (empty without one).
    pub carried: BTreeMap<PubkeyHash, Amount>,
    /// Found blocks newer than it that are not on the active chain.
    pub orphaned: usize,
}

fn split_key(key: &[u8]) -> Option<(Height, Hash256)> {
    let height = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let hash: [u8; 32] = key.get(4..36)?.try_into().ok()?;
    Some((Height(height), Hash256(hash)))
}

impl Pool {
    /// The ledger as the active chain makes it: `on_chain(h)` is the active chain's hash at
    /// height `h`. Reads only keys and the small carried-after records, so the chain task
    /// can run it inside the read that builds a template (one consistent view of tip and
    /// ledger).
    pub fn ledger_head(&self, on_chain: impl Fn(Height) -> Option<Hash256>) -> Result<LedgerHead, PoolError> {
        let mut orphaned = 0;
        for item in self.blocks.iter().keys().rev().take(MAX_LEDGER_WALK) {
            let key = item?;
            let (height, hash) = split_key(&key).ok_or_else(|| PoolError::Corrupt("found-block key".into()))?;
            if on_chain(height) != Some(hash) {
                orphaned += 1;
                continue;
            }
            let pairs: Vec<([u8; 20], u64)> = match self.carried_after.get(&key)? {
                Some(v) => unbin(&v, "carried after a block")?,
                // Records written before the ledger followed reorgs: read the block's own.
                None => match self.blocks.get(&key)? {
                    Some(v) => unbin::<FoundBlock>(&v, "block")?.carried,
                    None => Vec::new(),
                },
            };
            return Ok(LedgerHead {
                head: Some((height, hash)),
                carried: pairs.into_iter().map(|(k, v)| (PubkeyHash(k), Amount(v))).collect(),
                orphaned,
            });
        }
        Ok(LedgerHead {
            head: None,
            carried: BTreeMap::new(),
            orphaned,
        })
    }

    /// Makes the stored carried balances `head`'s (flushed when they change); true when
    /// they changed.
    pub fn apply_ledger(&self, head: &LedgerHead) -> Result<bool, PoolError> {
        if self.carried()? == head.carried {
            return Ok(false);
        }
        self.carried.clear()?;
        for (k, v) in &head.carried {
            self.carried.insert(k.0, bin(&v.0))?;
        }
        self.db.flush()?;
        if head.orphaned > 0 {
            tracing::info!(
                orphaned = head.orphaned,
                head = ?head.head.map(|(h, hash)| (h.0, hash.to_hex())),
                "pool ledger follows a reorg: orphaned blocks' credits reversed"
            );
        }
        Ok(true)
    }

    /// Forgets a found block the chain refused (its record was written before submitting,
    /// so a crash between the two never loses the audit of an accepted block).
    pub fn forget_block(&self, height: Height, hash: &Hash256) -> Result<(), PoolError> {
        let key = block_key(height.0, hash);
        self.blocks.remove(&key)?;
        self.carried_after.remove(&key)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ShareRecord, TemplateFacts};
    use super::*;
    use crate::stratum::config::PoolConfig;

    #[tokio::test]
    async fn carried_balances_follow_the_active_chain() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = PoolConfig {
            min_payout: Amount(u64::MAX / 4),
            ..PoolConfig::default()
        };
        let pool = Pool::open(dir.path(), config).expect("open");
        let node = PubkeyHash([9; 20]);
        pool.record(ShareRecord {
            payee: [1; 20],
            worker: String::new(),
            diff_log2: 0,
            net_diff: 1.0,
            time: 1,
            height: 1,
        })
        .await
        .expect("logged");
        let facts = |id: u64, height: u32| TemplateFacts {
            id,
            height,
            reward: Amount(1_000),
            net_diff: 1.0,
            node_payout: Some(node),
        };
        // Block 1 (hash a) carries 1,000 to payee 1; block 2 (hash b) on it carries 2,000.
        let (a, b, c) = (Hash256([0xa; 32]), Hash256([0xb; 32]), Hash256([0xc; 32]));
        let empty = BTreeMap::new();
        pool.split_for(facts(1, 1), &empty).expect("split");
        pool.commit_block(1, a, 10).expect("commit").expect("record");
        let after_a = pool.ledger_head(|h| (h.0 == 1).then_some(a)).expect("head");
        assert_eq!(after_a.head, Some((Height(1), a)));
        assert_eq!(after_a.carried.get(&PubkeyHash([1; 20])), Some(&Amount(1_000)));
        pool.split_for(facts(2, 2), &after_a.carried).expect("split");
        pool.commit_block(2, b, 11).expect("commit").expect("record");
        let on_ab = |h: Height| match h.0 {
            1 => Some(a),
            2 => Some(b),
            _ => None,
        };
        let after_b = pool.ledger_head(on_ab).expect("head");
        assert_eq!(after_b.carried.get(&PubkeyHash([1; 20])), Some(&Amount(2_000)));
        assert!(pool.apply_ledger(&after_b).expect("apply"));
        assert_eq!(pool.carried().expect("carried"), after_b.carried);

        // A reorg replaces block 2: block 1's balances again.
        let reorged = pool
            .ledger_head(|h| match h.0 {
                1 => Some(a),
                2 => Some(c),
                _ => None,
            })
            .expect("head");
        assert_eq!(reorged.head, Some((Height(1), a)));
        assert_eq!(reorged.orphaned, 1);
        assert!(pool.apply_ledger(&reorged).expect("apply"));
        assert_eq!(pool.carried().expect("carried"), after_a.carried);
        // A deeper one replaces both: nothing is carried.
        let none = pool.ledger_head(|_| Some(c)).expect("head");
        assert_eq!((none.head, none.orphaned, none.carried.len()), (None, 2, 0));
        assert!(pool.apply_ledger(&none).expect("apply"));
        assert!(pool.carried().expect("carried").is_empty());
        // Back to the first branch: its balances return; and they survive reopening.
        assert!(pool
            .apply_ledger(&pool.ledger_head(on_ab).expect("head"))
            .expect("apply"));
        drop(pool);
        let pool = Pool::open(dir.path(), PoolConfig::default()).expect("reopen");
        assert_eq!(pool.carried().expect("carried"), after_b.carried);
        // A refused block is forgotten.
        pool.forget_block(Height(2), &b).expect("forget");
        assert!(pool.block(&b).expect("read").is_none());
        assert_eq!(pool.ledger_head(on_ab).expect("head").head, Some((Height(1), a)));
    }
}
