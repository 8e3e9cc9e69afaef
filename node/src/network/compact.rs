//! Compact block announcement, in the spirit of BIP 152: a header, one short id per
//! transaction and the coinbase in full. The receiver rebuilds the block from its mempool,
//! asks the sender only for what it lacks (`getblocktxn`/`blocktxn` over the sync protocol)
//! and falls back to the full block when short ids collide or the rebuilt merkle root is not
//! the header's (ADR 0022).
//!
//! Short ids are BIP 152's: SipHash-2-4 of the txid keyed with the first 16 bytes of
//! SHA-256(header ‖ nonce), truncated to 6 bytes. The key exists only once the block's proof
//! of work does, so nobody can grind transactions that collide in a block ahead of time.

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bincode::{Decode, Encode};
use lode_chain::header::BlockHeader;
use lode_chain::{encoding, Block, ChainParams, Hash256, Transaction};
use siphasher::sip::SipHasher24;

/// Bytes of a short transaction id.
pub const SHORT_ID_BYTES: usize = 6;
/// Most transaction indexes asked for in one `getblocktxn` (4 bytes each: the request frame
/// stays well under the sync protocol's 16 KiB). A block missing more than this is fetched
/// whole: most of it is missing anyway.
pub const MAX_BLOCKTXN_INDEXES: usize = 3000;
/// Smallest possible encoded transaction (version, empty input and output lists, lock time):
/// bounds how many transactions a block of the maximum size can hold.
const MIN_TX_BYTES: usize = 4 + 8 + 8 + 4;

/// A short transaction id.
pub type ShortId = [u8; SHORT_ID_BYTES];

/// A transaction sent in full inside a compact block (at least the coinbase).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PrefilledTx {
    /// Its index in the block.
    pub index: u32,
    /// The transaction.
    pub tx: Transaction,
}

/// A compact block: what goes on the `cmpct` gossip topic.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CompactBlock {
    /// The block's header.
    pub header: BlockHeader,
    /// Chosen by the announcer; keys the short ids together with the header.
    pub nonce: u64,
    /// Short ids of the transactions not prefilled, in block order.
    pub short_ids: Vec<ShortId>,
    /// Prefilled transactions, indexes strictly increasing; the first is the coinbase.
    pub prefilled: Vec<PrefilledTx>,
}

/// What was wrong with a compact block, or why it could not be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompactError {
    /// Not decodable within the limit.
    #[error("compact block does not decode: {0}")]
    Undecodable(String),
    /// More transactions than a block of the maximum size can hold.
    #[error("compact block claims {0} transactions, more than a block can hold")]
    TooManyTxs(usize),
    /// No coinbase at index 0, or indexes not strictly increasing / out of range.
    #[error("compact block's prefilled transactions are malformed: {0}")]
    BadPrefilled(&'static str),
    /// Two transactions of the block share a short id: only the full block tells which is which.
    #[error("short id collision in the compact block")]
    Collision,
    /// The rebuilt block's merkle root is not the header's.
    #[error("rebuilt block's merkle root does not match its header")]
    MerkleMismatch,
    /// The `blocktxn` answer does not fill the missing slots exactly.
    #[error("blocktxn answer carries {got} transactions for {want} missing")]
    WrongTxnCount {
        /// Missing slots.
        want: usize,
        /// Transactions received.
        got: usize,
    },
}

/// SipHash keys of a block's short ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortIdKey(u64, u64);

impl ShortIdKey {
    /// BIP 152's key: the first two little-endian u64s of SHA-256(header ‖ nonce).
    pub fn new(header: &BlockHeader, nonce: u64) -> ShortIdKey {
        let mut data = header.to_bytes().to_vec();
        data.extend_from_slice(&nonce.to_le_bytes());
        let h = Hash256::sha256(&data).0;
        let k0 = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let k1 = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        ShortIdKey(k0, k1)
    }

    /// The short id of a txid: SipHash-2-4, low 6 bytes.
    pub fn short_id(&self, txid: &Hash256) -> ShortId {
        let mut s = SipHasher24::new_with_keys(self.0, self.1);
        s.write(&txid.0);
        let v = s.finish().to_le_bytes();
        [v[0], v[1], v[2], v[3], v[4], v[5]]
    }
}

impl CompactBlock {
    /// The compact form of `block`, prefilling the coinbase.
    pub fn from_block(block: &Block, nonce: u64) -> CompactBlock {
        let key = ShortIdKey::new(&block.header, nonce);
        let mut txs = block.transactions.iter();
        let prefilled = txs
            .next()
            .map(|cb| PrefilledTx {
                index: 0,
                tx: cb.clone(),
            })
            .into_iter()
            .collect();
        CompactBlock {
            header: block.header,
            nonce,
            short_ids: txs.map(|tx| key.short_id(&tx.txid())).collect(),
            prefilled,
        }
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Strictly decodes at most `max` bytes (bincode checks every length against what is
    /// left before allocating) and checks the structure.
    pub fn decode(bytes: &[u8], max: usize, params: &ChainParams) -> Result<CompactBlock, CompactError> {
        let c: CompactBlock = encoding::decode(bytes, max).map_err(|e| CompactError::Undecodable(e.to_string()))?;
        c.check(params)?;
        Ok(c)
    }

    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// Structure: a bounded count, the coinbase prefilled at 0, prefilled indexes strictly
    /// increasing and inside the block.
    pub fn check(&self, params: &ChainParams) -> Result<(), CompactError> {
        let count = self.tx_count();
        if count > params.max_block_size / MIN_TX_BYTES {
            return Err(CompactError::TooManyTxs(count));
        }
        match self.prefilled.first() {
            Some(p) if p.index == 0 && p.tx.is_coinbase() => {}
            _ => return Err(CompactError::BadPrefilled("the coinbase is not prefilled at index 0")),
        }
        let mut last = None;
        for p in &self.prefilled {
            let i = p.index as usize;
            if last.is_some_and(|l| i <= l) {
                return Err(CompactError::BadPrefilled("indexes not strictly increasing"));
            }
            if i >= count {
                return Err(CompactError::BadPrefilled("index past the end of the block"));
            }
            last = Some(i);
        }
        Ok(())
    }

    /// The block's hash.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Starts a rebuild: slots for every transaction, the prefilled ones filled, and the
    /// short id → slot map for the mempool match. A short id appearing twice is a collision.
    pub fn start_rebuild(&self) -> Result<PartialBlock, CompactError> {
        let count = self.tx_count();
        let mut slots: Vec<Option<Arc<Transaction>>> = vec![None; count];
        for p in &self.prefilled {
            // Checked against `count` in `check`; `get_mut` keeps a missed check from panicking.
            if let Some(slot) = slots.get_mut(p.index as usize) {
                *slot = Some(Arc::new(p.tx.clone()));
            }
        }
        let mut wanted = HashMap::with_capacity(self.short_ids.len());
        let mut ids = self.short_ids.iter();
        for (i, slot) in slots.iter().enumerate() {
            if slot.is_some() {
                continue;
            }
            let Some(id) = ids.next() else { break };
            if wanted.insert(*id, i).is_some() {
                return Err(CompactError::Collision);
            }
        }
        Ok(PartialBlock {
            header: self.header,
            key: ShortIdKey::new(&self.header, self.nonce),
            slots,
            wanted,
            clashed: Vec::new(),
        })
    }
}

/// A block being rebuilt.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: BlockHeader,
    key: ShortIdKey,
    slots: Vec<Option<Arc<Transaction>>>,
    /// Short ids still to match, and their slot.
    wanted: HashMap<ShortId, usize>,
    /// Slots two mempool transactions matched: left empty and asked for.
    clashed: Vec<usize>,
}

impl PartialBlock {
    /// The block's hash.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Offers mempool transactions; those whose short id the block lists fill their slot.
    /// Two mempool transactions on one short id empty the slot again (BIP 152: ask for it).
    pub fn fill_from<'a>(&mut self, txs: impl Iterator<Item = (Hash256, &'a Arc<Transaction>)>) {
        for (txid, tx) in txs {
            let id = self.key.short_id(&txid);
            let Some(&slot) = self.wanted.get(&id) else {
                continue;
            };
            let clashed = self.clashed.contains(&slot);
            let Some(s) = self.slots.get_mut(slot) else {
                continue;
            };
            if s.is_none() && !clashed {
                *s = Some(tx.clone());
            } else {
                *s = None;
                if !clashed {
                    self.clashed.push(slot);
                }
            }
        }
    }

    /// Indexes of the transactions still missing.
    pub fn missing(&self) -> Vec<u32> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Fills the first missing slots, in order, with `txs`: a `blocktxn` answer to a request
    /// for `asked` transactions, which may stop short of them at the server's byte budget.
    /// Returns how many are still missing.
    pub fn fill_missing(&mut self, txs: Vec<Transaction>, asked: usize) -> Result<usize, CompactError> {
        let want = self.slots.iter().filter(|s| s.is_none()).count();
        if txs.is_empty() || txs.len() > asked || txs.len() > want {
            return Err(CompactError::WrongTxnCount {
                want: asked.min(want),
                got: txs.len(),
            });
        }
        let got = txs.len();
        let mut txs = txs.into_iter();
        for slot in self.slots.iter_mut().filter(|s| s.is_none()).take(got) {
            *slot = txs.next().map(Arc::new);
        }
        Ok(want - got)
    }

    /// The block, once every slot is filled and the merkle root is the header's.
    pub fn finish(&self) -> Result<Block, CompactError> {
        let mut transactions = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            match s {
                Some(tx) => transactions.push((**tx).clone()),
                None => {
                    return Err(CompactError::WrongTxnCount {
                        want: self.missing().len(),
                        got: 0,
                    })
                }
            }
        }
        let block = Block {
            header: self.header,
            transactions,
        };
        let (root, mutated) = block.compute_merkle_root();
        if mutated || root != self.header.merkle_root {
            return Err(CompactError::MerkleMismatch);
        }
        Ok(block)
    }
}

/// The server's side of `getblocktxn`: the transactions of `block` at `indexes`, in order,
/// stopping once `budget` bytes are reached (at least one is always sent); the requester
/// asks again for the rest, so no answer takes long on a slow link.
pub fn pick_txs(block: &Block, indexes: &[u32], budget: usize) -> Result<Vec<Transaction>, String> {
    if indexes.len() > MAX_BLOCKTXN_INDEXES {
        return Err(format!("at most {MAX_BLOCKTXN_INDEXES} transactions per getblocktxn"));
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for &i in indexes {
        let tx = block
            .transactions
            .get(i as usize)
            .ok_or_else(|| format!("the block has no transaction {i}"))?;
        if !out.is_empty() && bytes + tx.size() > budget {
            break;
        }
        bytes += tx.size();
        out.push(tx.clone());
    }
    Ok(out)
}

/// Counters of what compact blocks did at this node (tests, `status`, benchmarks).
#[derive(Debug, Default)]
pub struct CompactStats {
    /// Compact blocks received (decoded and well formed).
    pub received: AtomicU64,
    /// Rebuilt from the mempool alone.
    pub rebuilt_from_mempool: AtomicU64,
    /// `getblocktxn` requests sent.
    pub txn_requests: AtomicU64,
    /// Transactions received in `blocktxn` answers.
    pub txs_fetched: AtomicU64,
    /// Full blocks fetched after a collision, a merkle mismatch or a failed `getblocktxn`.
    pub full_fallbacks: AtomicU64,
    /// Full blocks received on the blocks gossip topic.
    pub full_gossip_received: AtomicU64,
    /// Compact blocks we published.
    pub announced: AtomicU64,
    /// Bytes of those compact blocks.
    pub announced_bytes: AtomicU64,
    /// Bytes of the full blocks they stand for.
    pub announced_block_bytes: AtomicU64,
}

/// A copy of [`CompactStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactCounts {
    /// See [`CompactStats::received`].
    pub received: u64,
    /// See [`CompactStats::rebuilt_from_mempool`].
    pub rebuilt_from_mempool: u64,
    /// See [`CompactStats::txn_requests`].
    pub txn_requests: u64,
    /// See [`CompactStats::txs_fetched`].
    pub txs_fetched: u64,
    /// See [`CompactStats::full_fallbacks`].
    pub full_fallbacks: u64,
    /// See [`CompactStats::full_gossip_received`].
    pub full_gossip_received: u64,
    /// See [`CompactStats::announced`].
    pub announced: u64,
    /// See [`CompactStats::announced_bytes`].
    pub announced_bytes: u64,
    /// See [`CompactStats::announced_block_bytes`].
    pub announced_block_bytes: u64,
}

impl CompactStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> CompactCounts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CompactCounts {
            received: g(&self.received),
            rebuilt_from_mempool: g(&self.rebuilt_from_mempool),
            txn_requests: g(&self.txn_requests),
            txs_fetched: g(&self.txs_fetched),
            full_fallbacks: g(&self.full_fallbacks),
            full_gossip_received: g(&self.full_gossip_received),
            announced: g(&self.announced),
            announced_bytes: g(&self.announced_bytes),
            announced_block_bytes: g(&self.announced_block_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_chain::build::{assemble, coinbase, pay};
    use lode_chain::{Height, PubkeyHash};

    fn tx(n: u8) -> Transaction {
        Transaction {
            version: 1,
            inputs: Vec::new(),
            outputs: vec![pay(PubkeyHash([n; 20]), lode_chain::Amount(u64::from(n) + 1))],
            lock_time: u32::from(n),
        }
    }

    fn block(n: u8) -> Block {
        let params = ChainParams::regtest();
        let mut txs = vec![coinbase(
            Height(1),
            0,
            b"c",
            vec![pay(PubkeyHash([1; 20]), params.subsidy(Height(1)))],
        )];
        txs.extend((1..=n).map(tx));
        assemble(Hash256::ZERO, 1, params.pow_limit_bits, txs)
    }

    fn pool(txs: &[Transaction]) -> Vec<(Hash256, Arc<Transaction>)> {
        txs.iter().map(|t| (t.txid(), Arc::new(t.clone()))).collect()
    }

    #[test]
    fn a_block_rebuilds_from_the_mempool_and_round_trips() {
        let params = ChainParams::regtest();
        let b = block(5);
        let c = CompactBlock::from_block(&b, 42);
        let c = CompactBlock::decode(&c.to_bytes(), 1 << 20, &params).expect("decodes");
        assert_eq!(c.short_ids.len(), 5);
        let mut p = c.start_rebuild().expect("no collision");
        let mut mempool = pool(&b.transactions[1..]);
        mempool.extend(pool(&[tx(77), tx(78)]));
        p.fill_from(mempool.iter().map(|(id, t)| (*id, t)));
        assert!(p.missing().is_empty());
        assert_eq!(p.finish().expect("merkle root matches"), b);
    }

    #[test]
    fn missing_transactions_are_listed_and_filled_in_order() {
        let b = block(5);
        let c = CompactBlock::from_block(&b, 1);
        let mut p = c.start_rebuild().expect("no collision");
        let mempool = pool(&[b.transactions[2].clone(), b.transactions[4].clone()]);
        p.fill_from(mempool.iter().map(|(id, t)| (*id, t)));
        assert_eq!(p.missing(), vec![1, 3, 5]);
        assert!(matches!(
            p.clone().fill_missing(vec![tx(1), tx(2)], 1),
            Err(CompactError::WrongTxnCount { want: 1, got: 2 })
        ));
        assert!(p.clone().fill_missing(Vec::new(), 3).is_err());
        // The server stops at its budget: two of three, then the last.
        let served = pick_txs(&b, &[1, 3, 5], b.transactions[1].size() + b.transactions[3].size()).expect("served");
        assert_eq!(served.len(), 2);
        assert_eq!(p.fill_missing(served, 3), Ok(1));
        assert!(p.finish().is_err(), "one still missing");
        assert_eq!(p.missing(), vec![5]);
        let rest = pick_txs(&b, &[5], 0).expect("at least one");
        assert_eq!(p.fill_missing(rest, 1), Ok(0));
        assert_eq!(p.finish().expect("complete"), b);
        assert!(pick_txs(&b, &[6], 1000).is_err(), "past the end");
    }

    #[test]
    fn a_wrong_transaction_under_a_short_id_is_a_merkle_mismatch() {
        let b = block(3);
        let mut c = CompactBlock::from_block(&b, 9);
        // The compact block names another transaction at slot 2 (as a short id collision
        // with a mempool transaction would).
        let other = tx(99);
        c.short_ids[1] = ShortIdKey::new(&c.header, c.nonce).short_id(&other.txid());
        let mut p = c.start_rebuild().expect("no collision");
        let mempool = pool(&[b.transactions[1].clone(), other, b.transactions[3].clone()]);
        p.fill_from(mempool.iter().map(|(id, t)| (*id, t)));
        assert!(p.missing().is_empty());
        assert_eq!(p.finish(), Err(CompactError::MerkleMismatch));
    }

    #[test]
    fn duplicate_short_ids_and_bad_structure_are_refused() {
        let params = ChainParams::regtest();
        let b = block(3);
        let mut c = CompactBlock::from_block(&b, 9);
        c.short_ids[2] = c.short_ids[0];
        assert_eq!(c.start_rebuild().err(), Some(CompactError::Collision));

        let mut no_coinbase = CompactBlock::from_block(&b, 9);
        no_coinbase.prefilled.clear();
        assert!(matches!(no_coinbase.check(&params), Err(CompactError::BadPrefilled(_))));

        let mut past_end = CompactBlock::from_block(&b, 9);
        past_end.prefilled.push(PrefilledTx { index: 9, tx: tx(1) });
        assert!(matches!(past_end.check(&params), Err(CompactError::BadPrefilled(_))));

        let mut huge = CompactBlock::from_block(&b, 9);
        huge.short_ids = vec![[0; 6]; params.max_block_size / MIN_TX_BYTES + 1];
        assert!(matches!(huge.check(&params), Err(CompactError::TooManyTxs(_))));

        // A length prefix claiming more than the bytes left is refused before allocation.
        let mut bytes = CompactBlock::from_block(&b, 9).to_bytes();
        bytes[88..96].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            CompactBlock::decode(&bytes, 1 << 20, &params),
            Err(CompactError::Undecodable(_))
        ));
    }

    #[test]
    fn two_mempool_transactions_on_one_short_id_leave_the_slot_missing() {
        let b = block(2);
        let c = CompactBlock::from_block(&b, 5);
        let mut p = c.start_rebuild().expect("no collision");
        // Forge a clash: a second transaction offered under the same txid's short id.
        let real = Arc::new(b.transactions[1].clone());
        let imposter = Arc::new(tx(50));
        let txid = b.transactions[1].txid();
        p.fill_from([(txid, &real), (txid, &imposter)].into_iter());
        assert_eq!(p.missing(), vec![1, 2]);
    }
}
