//! Checks of a block that need no chain context and can run ahead of its connect: the
//! signatures. A signature commits to the transaction's sighash (bound to the genesis hash)
//! and carries its public key, so it can be verified before the outputs it spends are
//! known; whether that key owns the output is checked at connect (`spend`).

use std::sync::Mutex;

use crate::block::Block;
use crate::hash::Hash256;
use crate::sig::{SigCache, SigItem};
use crate::transaction::Unlock;

/// Every key signature of `block`'s transactions, in block order.
pub fn signature_items(block: &Block, genesis: &Hash256) -> Vec<SigItem> {
    let mut items = Vec::new();
    for tx in block.transactions.iter().skip(1) {
        let sighash = tx.sighash(genesis);
        for input in &tx.inputs {
            if let Unlock::Key(key) = &input.unlock {
                items.push(SigItem {
                    pubkey: key.pubkey,
                    signature: key.signature,
                    msg: sighash,
                });
            }
        }
    }
    items
}

/// Verifies `block`'s signatures ahead of its connect and records them in `cache`, so the
/// connect finds them verified. Returns how many were verified now, or `None` if one is
/// bad (nothing is recorded; the connect then reports the first bad one as consensus does).
pub fn precheck_signatures(block: &Block, genesis: &Hash256, cache: &Mutex<SigCache>) -> Option<usize> {
    SigCache::verify_and_record(cache, &signature_items(block, genesis)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{assemble, coinbase, key_hash, pay, seeded_key, spend};
    use crate::transaction::OutPoint;
    use crate::{Amount, Height};

    fn block_with_spends(n: u64, genesis: &Hash256) -> Block {
        let mut txs = vec![coinbase(Height(1), 0, b"", vec![])];
        for i in 0..n {
            let key = seeded_key(i);
            let op = OutPoint {
                txid: Hash256([i as u8; 32]),
                index: 0,
            };
            txs.push(spend(&[op, op], vec![pay(key_hash(&key), Amount(1))], &key, genesis));
        }
        assemble(Hash256([0; 32]), 1, 0x207f_ffff, txs)
    }

    #[test]
    fn good_signatures_are_recorded_and_a_bad_one_records_nothing() {
        let genesis = Hash256([9; 32]);
        let block = block_with_spends(3, &genesis);
        let items = signature_items(&block, &genesis);
        assert_eq!(items.len(), 6, "two inputs each, coinbase skipped");

        let cache = Mutex::new(SigCache::new(100));
        assert_eq!(precheck_signatures(&block, &genesis, &cache), Some(6));
        let guard = cache.lock().expect("lock");
        assert!(items.iter().all(|i| guard.contains(i)));
        drop(guard);
        // Already verified: nothing left to do.
        assert_eq!(precheck_signatures(&block, &genesis, &cache), Some(0));

        // Under another genesis every sighash differs: the signatures no longer verify.
        let other = Hash256([8; 32]);
        let fresh = Mutex::new(SigCache::new(100));
        assert_eq!(precheck_signatures(&block, &other, &fresh), None);
        assert!(fresh.lock().expect("lock").is_empty());

        // One tampered signature among good ones: nothing is recorded.
        let mut bad = block.clone();
        if let Unlock::Key(k) = &mut bad.transactions[2].inputs[1].unlock {
            k.signature[0] ^= 1;
        }
        let fresh = Mutex::new(SigCache::new(100));
        assert_eq!(precheck_signatures(&bad, &genesis, &fresh), None);
        assert!(fresh.lock().expect("lock").is_empty());
    }
}
