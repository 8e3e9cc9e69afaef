//! The durable chain store on sled, with a write-back cache in front of it.
//!
//! Every logical table is its own sled tree (named in [`keys::trees`]). A block's body and
//! index entry are written to sled when it is accepted. Connecting or disconnecting a block
//! prepares all its writes (UTXO set, undo data, tx and address indexes, best chain, tip) in
//! full, then merges them into an in-memory cache of pending writes that every getter
//! consults before sled, so readers always see the connected state. The cache goes to sled
//! all or nothing, synced to disk — as one transaction over every tree when small, through
//! the write-ahead journal of `journal.rs` in bounded chunks when large — when it passes its
//! byte budget ([`Store::set_cache_budget`]) or when [`Store::flush`] is called. A kill at any instant
//! therefore leaves the state of the last completed flush, and the blocks connected after it
//! are stored and are connected again at open. With a budget of 0 every connect or
//! disconnect is its own transaction, as before the cache. See
//! `docs/adr/0002-storage-layout.md` and `docs/adr/0006-utxo-cache.md`.

mod addr_index;
pub mod bodies;
mod journal;
pub mod keys;
mod open;
mod rebuild;

#[doc(hidden)]
pub use journal::FlushStep;
pub use journal::{DEFAULT_CHUNK_BYTES, DEFAULT_JOURNAL_ABOVE, JOURNAL_FILE};
pub use open::{catch_quietly, SLED_PAGE_CACHE_BYTES};
pub use rebuild::ReindexReport;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bincode::{Decode, Encode};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional, Tree};

use crate::address::PubkeyHash;
use crate::amount::Amount;
use crate::block::Block;
use crate::encoding;
use crate::error::ChainError;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::ChainParams;
use crate::pow::ChainWork;
use crate::transaction::OutPoint;
use crate::utxo::{UtxoEntry, UtxoView};
use crate::validation::BlockSpends;

pub use keys::AddrKind;
use keys::{height_key, meta, outpoint_key, trees, FORMAT_VERSION};

/// What the node knows about a block's validity.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum BlockStatus {
    /// Body stored; header rules passed; spends not yet checked.
    Stored,
    /// Connected to the best chain at least once: fully valid.
    Valid,
    /// Broke a consensus rule.
    Invalid,
    /// Descends from an invalid block.
    InvalidAncestor,
    /// Marked invalid by the operator (`invalidateblock`), whatever its consensus verdict;
    /// cleared by `reconsiderblock`. Last, so index entries written before it decode alike.
    Invalidated,
}

impl BlockStatus {
    /// Invalid itself or by descent.
    pub fn is_invalid(self) -> bool {
        match self {
            BlockStatus::Invalid | BlockStatus::InvalidAncestor | BlockStatus::Invalidated => true,
            BlockStatus::Stored | BlockStatus::Valid => false,
        }
    }
}

/// The block index record of one block.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct IndexEntry {
    /// Its header.
    pub header: BlockHeader,
    /// Its height.
    pub height: Height,
    /// Cumulative work of the chain ending at it (big-endian U256).
    pub chain_work: [u8; 32],
    /// Validity.
    pub status: BlockStatus,
    /// Arrival order, to break ties between equal-work tips (first seen wins).
    pub seq: u64,
}

impl IndexEntry {
    /// Cumulative work.
    pub fn work(&self) -> ChainWork {
        ChainWork::from_be_bytes(&self.chain_work)
    }
}

/// Where a best-chain transaction is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct TxLocation {
    /// Block containing it.
    pub block: Hash256,
    /// Height of that block.
    pub height: Height,
    /// Position in the block.
    pub position: u32,
}

/// One address-index record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct AddrRecord {
    /// Value received or spent.
    pub value: Amount,
    /// For `Received`, the new output; for `Spent`, the output that was spent.
    pub outpoint: OutPoint,
}

/// One address-index row, parsed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AddrEvent {
    /// Block height.
    pub height: Height,
    /// Transaction.
    pub txid: Hash256,
    /// Received or spent.
    pub kind: AddrKind,
    /// Output index (received) or input index (spent).
    pub index: u32,
    /// Value and outpoint.
    pub record: AddrRecord,
}

/// The trees, as indices into per-tree arrays (names in [`keys::trees`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    Meta,
    Index,
    Bodies,
    Best,
    Utxo,
    Undo,
    TxIndex,
    Addr,
}

impl T {
    /// Every tree, in index order (`T::ALL[t as usize] == t`).
    const ALL: [T; TREES] = [
        T::Meta,
        T::Index,
        T::Bodies,
        T::Best,
        T::Utxo,
        T::Undo,
        T::TxIndex,
        T::Addr,
    ];
}

const TREES: usize = 8;
const TREE_NAMES: [&str; TREES] = [
    trees::META,
    trees::INDEX,
    trees::BODIES,
    trees::BEST,
    trees::UTXO,
    trees::UNDO,
    trees::TXINDEX,
    trees::ADDR,
];

/// Default write-back cache budget: 64 MiB, small next to a devnet laptop's memory and
/// room for a few hundred full blocks' changes between flushes.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// What one cached write costs beyond its key and value bytes: the map node's share and the
/// two vectors' headers (an estimate; the budget is a bound on the order of magnitude).
const ENTRY_OVERHEAD: usize = 80;

/// Key-value rows of one tree, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A pending write seen through the cache: key, and the new value or `None` (deleted).
type PendingRef<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// An iterator over pending writes.
type PendingIter<'a> = Box<dyn Iterator<Item = PendingRef<'a>> + 'a>;

/// One write: tree, key, and the new value or `None` to delete.
type Write = (T, Vec<u8>, Option<Vec<u8>>);

/// One block's writes (or genesis's) in the order they were made: applied in that order,
/// the last write of a key wins, as in a sled batch.
#[derive(Default)]
struct Changes {
    writes: Vec<Write>,
}

impl Changes {
    fn with_capacity(n: usize) -> Changes {
        Changes {
            writes: Vec::with_capacity(n),
        }
    }

    fn insert(&mut self, t: T, key: &[u8], value: impl Into<Vec<u8>>) {
        self.writes.push((t, key.to_vec(), Some(value.into())));
    }

    fn remove(&mut self, t: T, key: &[u8]) {
        self.writes.push((t, key.to_vec(), None));
    }

    fn batches(&self) -> [Batch; TREES] {
        let mut batches: [Batch; TREES] = Default::default();
        for (t, k, v) in &self.writes {
            let batch = &mut batches[*t as usize];
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        batches
    }
}

/// Pending writes of one tree, newest value per key (`None`: deleted). Trees that are read by
/// prefix scans ([`ORDERED`]) keep their keys in order so a scan can merge them with sled's;
/// the others are hashed, so a lookup costs the same however many blocks the cache holds.
enum Writes {
    Ordered(BTreeMap<Vec<u8>, Option<Vec<u8>>>),
    Hashed(HashMap<Vec<u8>, Option<Vec<u8>>>),
}

/// The trees read by prefix scans: the block index and best chain (loaded at open) and the
/// address index (an address's history).
const ORDERED: [T; 3] = [T::Index, T::Best, T::Addr];

impl Writes {
    fn for_tree(t: usize) -> Writes {
        if ORDERED.iter().any(|o| *o as usize == t) {
            Writes::Ordered(BTreeMap::new())
        } else {
            Writes::Hashed(HashMap::new())
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        match self {
            Writes::Ordered(m) => m.get(key),
            Writes::Hashed(m) => m.get(key),
        }
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Option<Option<Vec<u8>>> {
        match self {
            Writes::Ordered(m) => m.insert(key, value),
            Writes::Hashed(m) => m.insert(key, value),
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        match self {
            Writes::Ordered(m) => m.remove(key),
            Writes::Hashed(m) => m.remove(key),
        }
    }

    fn len(&self) -> usize {
        match self {
            Writes::Ordered(m) => m.len(),
            Writes::Hashed(m) => m.len(),
        }
    }

    fn iter(&self) -> PendingIter<'_> {
        match self {
            Writes::Ordered(m) => Box::new(m.iter()),
            Writes::Hashed(m) => Box::new(m.iter()),
        }
    }

    /// The pending writes under `prefix` (in key order for ordered trees).
    fn under<'a>(&'a self, prefix: &'a [u8]) -> PendingIter<'a> {
        match self {
            Writes::Ordered(m) => Box::new(
                m.range(prefix.to_vec()..)
                    .take_while(move |(k, _)| k.starts_with(prefix)),
            ),
            Writes::Hashed(m) => Box::new(m.iter().filter(move |(k, _)| k.starts_with(prefix))),
        }
    }

    /// The values of the UTXO tree's writes, for [`Store::utxo_iter`].
    fn clone_map(&self) -> HashMap<Vec<u8>, Option<Vec<u8>>> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn entry_cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

/// Pending writes not yet in sled, newest value per key.
struct Cache {
    trees: [Writes; TREES],
    /// Estimated heap bytes of `trees`.
    bytes: usize,
    /// Blocks connected or disconnected since the last flush.
    blocks: u64,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            trees: std::array::from_fn(Writes::for_tree),
            bytes: 0,
            blocks: 0,
        }
    }
}

impl Cache {
    fn merge(&mut self, changes: Changes) {
        for (t, k, v) in changes.writes {
            let cost = entry_cost(&k, &v);
            let key_len = k.len();
            if let Some(old) = self.trees[t as usize].insert(k, v) {
                self.bytes = self
                    .bytes
                    .saturating_sub(key_len + old.map_or(0, |o| o.len()) + ENTRY_OVERHEAD);
            }
            self.bytes += cost;
        }
    }

    /// Drops a pending write (a direct sled write of the same key supersedes it).
    fn forget(&mut self, t: T, key: &[u8]) {
        if let Some(old) = self.trees[t as usize].remove(key) {
            self.bytes = self.bytes.saturating_sub(entry_cost(key, &old));
        }
    }

    fn entries(&self) -> usize {
        self.trees.iter().map(Writes::len).sum()
    }

    fn batches(&self) -> [Batch; TREES] {
        std::array::from_fn(|t| {
            let mut batch = Batch::default();
            for (k, v) in self.trees[t].iter() {
                match v {
                    Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                    None => batch.remove(k.as_slice()),
                }
            }
            batch
        })
    }
}

/// How full the write-back cache is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CacheStats {
    /// Estimated bytes of pending writes.
    pub bytes: usize,
    /// Pending writes (keys), all trees.
    pub entries: usize,
    /// Blocks connected or disconnected since the last flush.
    pub blocks: u64,
    /// The budget that triggers a flush (0: every block is written at once).
    pub budget: usize,
}

/// Handles to every tree and the write-back cache in front of them. Clones share the cache.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: std::path::PathBuf,
    trees: [Tree; TREES],
    cache: Arc<RwLock<Cache>>,
    budget: Arc<AtomicUsize>,
    /// Where older builds kept the write-ahead journal of large flushes (now a file,
    /// `journal.rs`): read at open only, to finish a flush such a build left.
    legacy_journal: Tree,
    flush_cfg: Arc<journal::FlushConfig>,
}

fn decode_stored<T: Decode<()>>(what: &str, bytes: &[u8]) -> Result<T, ChainError> {
    encoding::decode(bytes, encoding::MAX_DECODE_BYTES).map_err(|e| ChainError::Corrupt(format!("{what}: {e}")))
}

fn hash_from(what: &str, bytes: &[u8]) -> Result<Hash256, ChainError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ChainError::Corrupt(format!("{what}: not 32 bytes")))?;
    Ok(Hash256(arr))
}

fn abort_to_chain(e: TransactionError<ChainError>) -> ChainError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => ChainError::Store(e),
    }
}

/// A block's address-index rows: every output it creates (received) and every output its
/// inputs spend (spent, from `spent`: the undo data, in input order).
fn addr_rows(block: &Block, txids: &[Hash256], spent: &[(OutPoint, UtxoEntry)]) -> Vec<addr_index::Row> {
    let mut rows = Vec::new();
    let mut spent = spent.iter();
    for (position, (tx, txid)) in block.transactions.iter().zip(txids).enumerate() {
        for (i, out) in tx.outputs.iter().enumerate() {
            rows.push(addr_index::Row {
                pkh: out.pubkey_hash,
                txid: *txid,
                kind: AddrKind::Received,
                index: i as u32,
                record: AddrRecord {
                    value: out.value,
                    outpoint: OutPoint {
                        txid: *txid,
                        index: i as u32,
                    },
                },
            });
        }
        if position > 0 {
            for i in 0..tx.inputs.len() {
                if let Some((op, entry)) = spent.next() {
                    rows.push(addr_index::Row {
                        pkh: entry.output.pubkey_hash,
                        txid: *txid,
                        kind: AddrKind::Spent,
                        index: i as u32,
                        record: AddrRecord {
                            value: entry.output.value,
                            outpoint: *op,
                        },
                    });
                }
            }
        }
    }
    rows
}

impl Store {
    /// Opens (creating if needed) the store at `path` for `params`' network. Refuses a data
    /// dir of another network or storage format. Returns whether it was freshly created.
    pub(crate) fn open(path: &Path, params: &ChainParams) -> Result<(Store, bool), ChainError> {
        // sled reads a damaged log up to its last intact record; one damaged from the start
        // reads as empty. A store that had data must not be taken for a new one.
        let had_data = std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
        let db = open::open_db(path)?;
        let mut opened = Vec::with_capacity(TREES);
        for name in TREE_NAMES {
            opened.push(db.open_tree(name)?);
        }
        let trees: [Tree; TREES] = opened
            .try_into()
            .map_err(|_| ChainError::Corrupt("tree list length".into()))?;
        let store = Store {
            legacy_journal: db.open_tree(trees::JOURNAL)?,
            db,
            path: path.to_path_buf(),
            trees,
            cache: Arc::default(),
            budget: Arc::new(AtomicUsize::new(DEFAULT_CACHE_BYTES)),
            flush_cfg: Arc::default(),
        };
        // An interrupted flush completes (or is discarded) before anything is read.
        journal::recover(&store)?;
        let genesis = params.genesis_hash();
        match store.tree(T::Meta).get(meta::GENESIS)? {
            Some(found) => {
                let version = store
                    .tree(T::Meta)
                    .get(meta::VERSION)?
                    .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if version != FORMAT_VERSION && version != 1 {
                    return Err(ChainError::FormatVersion {
                        found: version,
                        expected: FORMAT_VERSION,
                    });
                }
                let found = hash_from("genesis", &found)?;
                if found != genesis {
                    let found_name = store
                        .tree(T::Meta)
                        .get(meta::NETWORK)?
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                    return Err(ChainError::WrongNetwork {
                        expected_name: params.name.clone(),
                        expected: genesis,
                        found_name,
                        found,
                    });
                }
                if version == 1 {
                    store.migrate_from_format_1()?;
                }
                Ok((store, false))
            }
            None if had_data => Err(ChainError::Unopenable {
                path: path.display().to_string(),
                reason: "its files exist but sled reads no chain from them (its log is damaged)".into(),
            }),
            None => {
                store.init_genesis(params)?;
                Ok((store, true))
            }
        }
    }

    /// Writes genesis: its index entry, body, best-chain entry, premine outputs and meta, in
    /// one transaction (meta's genesis key is what marks the store initialised).
    fn init_genesis(&self, params: &ChainParams) -> Result<(), ChainError> {
        let block = params.genesis_block();
        let hash = block.hash();
        let txids = block.txids();
        let entry = IndexEntry {
            header: block.header,
            height: Height::GENESIS,
            chain_work: ChainWork::from_bits(block.header.bits).to_be_bytes(),
            status: BlockStatus::Valid,
            seq: 0,
        };
        let coinbase = &block.transactions[0];
        let created: Vec<(OutPoint, UtxoEntry)> = coinbase
            .outputs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                // The premine is spendable at once: not subject to coinbase maturity.
                (
                    OutPoint {
                        txid: txids[0],
                        index: i as u32,
                    },
                    UtxoEntry {
                        output: *out,
                        height: Height::GENESIS,
                        is_coinbase: false,
                    },
                )
            })
            .collect();
        let spends = BlockSpends {
            inputs: Vec::new(),
            created,
            fees: Amount::ZERO,
        };
        let mut b = self.connect_changes(&hash, Height::GENESIS, &block, &txids, &spends);
        b.insert(T::Index, &hash.0, encoding::encode(&entry));
        let bytes = block.to_bytes();
        for (k, piece) in bodies::pieces(&hash, &bytes) {
            b.insert(T::Bodies, &k, piece.to_vec());
        }
        b.insert(T::Meta, meta::VERSION, FORMAT_VERSION.to_be_bytes());
        b.insert(T::Meta, meta::NETWORK, params.name.as_bytes());
        b.insert(T::Meta, meta::GENESIS, hash.0);
        let writes = b.writes.len();
        self.commit(b.batches())?;
        // A large premine is one big transaction: free what it replaced now, not during the
        // first blocks' reads.
        journal::release_garbage(writes);
        self.db.flush()?;
        Ok(())
    }

    /// Format 1 → 2: block bodies in pieces (`bodies.rs`), the address index in groups
    /// (`addr_index.rs`). Each body and each (address, height) moves in one batch
    /// and the version is written last, so a kill part-way leaves a store this finishes at
    /// the next open; an older build refuses the store from then on (format 2).
    fn migrate_from_format_1(&self) -> Result<(), ChainError> {
        let started = std::time::Instant::now();
        let moved = bodies::migrate_whole_bodies(self.tree(T::Bodies))?;
        let rows = addr_index::migrate_rows(self.tree(T::Addr))?;
        self.db.flush()?;
        self.tree(T::Meta)
            .insert(meta::VERSION, &FORMAT_VERSION.to_be_bytes())?;
        self.db.flush()?;
        tracing::info!(
            bodies = moved,
            address_rows = rows,
            ms = started.elapsed().as_millis() as u64,
            "chain store upgraded to storage format {FORMAT_VERSION} (block bodies in pieces, address index in groups)"
        );
        Ok(())
    }

    fn tree(&self, t: T) -> &Tree {
        &self.trees[t as usize]
    }

    fn read_cache(&self) -> RwLockReadGuard<'_, Cache> {
        // A poisoned lock means a panic while merging whole, already validated changes; the
        // map is still a map of newest values, so reading on is sound.
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_cache(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `key` of tree `t` through the cache, handing the bytes to `f`.
    fn get_with<R>(
        &self,
        t: T,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> Result<R, ChainError>,
    ) -> Result<Option<R>, ChainError> {
        {
            let cache = self.read_cache();
            if let Some(pending) = cache.trees[t as usize].get(key) {
                return pending.as_deref().map(f).transpose();
            }
        }
        match self.tree(t).get(key)? {
            Some(v) => f(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Every (key, value) of tree `t` under `prefix`, cache merged over sled, in key order.
    fn scan(&self, t: T, prefix: &[u8]) -> Result<Rows, ChainError> {
        let cache = self.read_cache();
        let pending = &cache.trees[t as usize];
        let mut out = BTreeMap::new();
        for item in self.tree(t).scan_prefix(prefix) {
            let (k, v) = item?;
            if !pending.contains_key(k.as_ref()) {
                out.insert(k.to_vec(), v.to_vec());
            }
        }
        for (k, v) in pending.under(prefix) {
            if let Some(v) = v {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// All index entries (loaded once at open; the index is small).
    pub fn load_index(&self) -> Result<Vec<(Hash256, IndexEntry)>, ChainError> {
        let rows = self.scan(T::Index, &[])?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            out.push((
                hash_from("index key", &k)?,
                decode_stored::<IndexEntry>("index entry", &v)?,
            ));
        }
        Ok(out)
    }

    /// The best chain, genesis first.
    pub fn load_best_chain(&self) -> Result<Vec<Hash256>, ChainError> {
        let rows = self.scan(T::Best, &[])?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, (k, v)) in rows.into_iter().enumerate() {
            let h = <[u8; 4]>::try_from(k.as_slice()).map(u32::from_be_bytes).ok();
            if h != Some(expected as u32) {
                return Err(ChainError::Corrupt(format!(
                    "best chain has a gap at height {expected}"
                )));
            }
            out.push(hash_from("best chain", &v)?);
        }
        Ok(out)
    }

    /// The tip hash (cached, so possibly not flushed yet).
    pub fn tip(&self) -> Result<Option<Hash256>, ChainError> {
        self.get_with(T::Meta, meta::TIP, |v| hash_from("tip", v))
    }

    /// Stores a new block's body and index entry together, straight to sled (not through the
    /// cache): a block is on disk before any flush can make it part of the UTXO set, which is
    /// what lets a restart connect it again.
    pub(crate) fn put_block(&self, hash: &Hash256, block: &Block, entry: &IndexEntry) -> Result<(), ChainError> {
        let mut pieces = Batch::default();
        bodies::put(&mut pieces, hash, &block.to_bytes());
        let mut index = Batch::default();
        index.insert(&hash.0, encoding::encode(entry));
        // Hold the cache so no flush can interleave a stale pending entry for this key.
        let mut cache = self.write_cache();
        self.flush_cfg.writable()?;
        cache.forget(T::Index, &hash.0);
        (self.tree(T::Bodies), self.tree(T::Index))
            .transaction(|(b, i)| {
                b.apply_batch(&pieces)?;
                i.apply_batch(&index)?;
                Ok::<(), ConflictableTransactionError<ChainError>>(())
            })
            .map_err(abort_to_chain)
    }

    /// Rewrites index entries (status changes), straight to sled: a block found invalid stays
    /// known as invalid whether or not the cache is flushed.
    pub(crate) fn put_index_entries(&self, entries: &[(Hash256, IndexEntry)]) -> Result<(), ChainError> {
        let mut batch = Batch::default();
        let mut cache = self.write_cache();
        self.flush_cfg.writable()?;
        for (hash, entry) in entries {
            cache.forget(T::Index, &hash.0);
            batch.insert(&hash.0, encoding::encode(entry));
        }
        self.tree(T::Index).apply_batch(batch)?;
        Ok(())
    }

    /// A stored block body.
    pub fn block(&self, hash: &Hash256) -> Result<Option<Block>, ChainError> {
        match bodies::get(self.tree(T::Bodies), hash)? {
            Some(bytes) => Ok(Some(decode_stored("block body", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Raw stored block bytes (for serving peers without re-encoding).
    pub fn block_bytes(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, ChainError> {
        bodies::get(self.tree(T::Bodies), hash)
    }

    /// Where a best-chain transaction is.
    pub fn tx_location(&self, txid: &Hash256) -> Result<Option<TxLocation>, ChainError> {
        self.get_with(T::TxIndex, &txid.0, |v| decode_stored("tx index", v))
    }

    /// Address-index rows for `pkh`, oldest first (by height, then txid, kind, index).
    pub fn address_events(&self, pkh: &PubkeyHash) -> Result<Vec<AddrEvent>, ChainError> {
        let mut out = Vec::new();
        for (k, v) in self.scan(T::Addr, &pkh.0)? {
            addr_index::decode_entry(&k, &v, &mut out)?;
        }
        Ok(out)
    }

    /// Every unspent output (for verification and statistics), the cached ones included.
    /// Holds a copy of the cached UTXO writes (at most the cache budget) while iterating.
    pub fn utxo_iter(&self) -> impl Iterator<Item = Result<(OutPoint, UtxoEntry), ChainError>> + '_ {
        let pending = self.read_cache().trees[T::Utxo as usize].clone_map();
        let parse = |k: &[u8], v: &[u8]| -> Result<(OutPoint, UtxoEntry), ChainError> {
            let op = keys::outpoint_from_key(k).ok_or_else(|| ChainError::Corrupt("utxo key".into()))?;
            Ok((op, decode_stored::<UtxoEntry>("utxo entry", v)?))
        };
        let cached: Vec<_> = pending
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| parse(k, v)))
            .collect();
        self.tree(T::Utxo)
            .iter()
            .filter_map(move |item| match item {
                Ok((k, _)) if pending.contains_key(k.as_ref()) => None,
                Ok((k, v)) => Some(parse(&k, &v)),
                Err(e) => Some(Err(e.into())),
            })
            .chain(cached)
    }

    /// Number of unspent outputs, the cached ones included (looks up every cached UTXO key
    /// in sled: for statistics, not for hot paths).
    pub fn utxo_count(&self) -> Result<usize, ChainError> {
        let cache = self.read_cache();
        let tree = self.tree(T::Utxo);
        let mut count = tree.len();
        for (k, v) in cache.trees[T::Utxo as usize].iter() {
            match (tree.contains_key(k)?, v.is_some()) {
                (false, true) => count += 1,
                (true, false) => count = count.saturating_sub(1),
                _ => {}
            }
        }
        Ok(count)
    }

    /// Undo data of a connected block: the output each non-coinbase input spent. Read from
    /// the cache or sled, so a reorganisation may reach back past the last flush.
    pub fn undo(&self, hash: &Hash256) -> Result<Vec<(OutPoint, UtxoEntry)>, ChainError> {
        self.get_with(T::Undo, &hash.0, |v| decode_stored("undo data", v))?
            .ok_or_else(|| ChainError::Corrupt(format!("no undo data for {hash}")))
    }

    /// Connects `block` (already fully validated, `spends` from `check_block_spends`) as the
    /// new tip at `height`: one atomic unit in the cache (or one sled transaction with a
    /// budget of 0), flushing the cache if this passes its budget.
    pub(crate) fn connect(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        spends: &BlockSpends,
        entry: &IndexEntry,
    ) -> Result<(), ChainError> {
        let mut b = self.connect_changes(hash, height, block, txids, spends);
        b.insert(T::Index, &hash.0, encoding::encode(entry));
        self.stage(b)
    }

    fn connect_changes(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        spends: &BlockSpends,
    ) -> Changes {
        let outputs: usize = block.transactions.iter().map(|tx| tx.outputs.len()).sum();
        // Every write below, counted, so the list is never reallocated while it grows.
        let mut b = Changes::with_capacity(
            2 * spends.inputs.len() + spends.created.len() + outputs + block.transactions.len() + 5,
        );
        for (op, _) in &spends.inputs {
            b.remove(T::Utxo, &outpoint_key(op));
        }
        for (op, entry) in &spends.created {
            b.insert(T::Utxo, &outpoint_key(op), encoding::encode(entry));
        }
        b.insert(T::Undo, &hash.0, encoding::encode(&spends.inputs));
        for (position, (_, txid)) in block.transactions.iter().zip(txids).enumerate() {
            let loc = TxLocation {
                block: *hash,
                height,
                position: position as u32,
            };
            b.insert(T::TxIndex, &txid.0, encoding::encode(&loc));
        }
        for (k, v) in addr_index::entries(height, addr_rows(block, txids, &spends.inputs)) {
            b.insert(T::Addr, &k, v);
        }
        b.insert(T::Best, &height_key(height), hash.0);
        b.insert(T::Meta, meta::TIP, hash.0);
        b
    }

    /// Disconnects the tip `block` at `height` using its undo data (from the cache or sled),
    /// making `parent` the tip: one atomic unit, like [`Store::connect`].
    pub(crate) fn disconnect(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        parent: &Hash256,
    ) -> Result<(), ChainError> {
        let inputs = self.undo(hash)?;
        let in_block: std::collections::HashSet<&Hash256> = txids.iter().collect();
        let mut b = Changes::default();
        for (tx, txid) in block.transactions.iter().zip(txids) {
            b.remove(T::TxIndex, &txid.0);
            for i in 0..tx.outputs.len() {
                b.remove(
                    T::Utxo,
                    &outpoint_key(&OutPoint {
                        txid: *txid,
                        index: i as u32,
                    }),
                );
            }
        }
        let spent_inputs: usize = block.transactions.iter().skip(1).map(|tx| tx.inputs.len()).sum();
        if inputs.len() < spent_inputs {
            return Err(ChainError::Corrupt(format!("undo data of {hash} is short")));
        }
        // The same rows as the connect wrote give the same keys.
        for k in addr_index::keys(height, &addr_rows(block, txids, &inputs)) {
            b.remove(T::Addr, &k);
        }
        // Restore spent outputs last so they win over the removals above; outputs created
        // and spent inside this block stay gone.
        for (op, entry) in &inputs {
            if !in_block.contains(&op.txid) {
                b.insert(T::Utxo, &outpoint_key(op), encoding::encode(entry));
            }
        }
        b.remove(T::Undo, &hash.0);
        b.remove(T::Best, &height_key(height));
        b.insert(T::Meta, meta::TIP, parent.0);
        self.stage(b)
    }

    /// Adds one block's changes to the cache, flushing it if it is now over budget; with a
    /// budget of 0, writes them as their own transaction.
    fn stage(&self, changes: Changes) -> Result<(), ChainError> {
        let budget = self.budget.load(Ordering::Relaxed);
        if budget == 0 {
            // Older pending writes (from a larger budget) must land first.
            self.flush_cache()?;
            return self.commit(changes.batches());
        }
        let over = {
            let mut cache = self.write_cache();
            cache.merge(changes);
            cache.blocks += 1;
            cache.bytes > budget
        };
        if over {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every pending write to sled, all or nothing, and empties the cache: as one
    /// transaction up to [`DEFAULT_JOURNAL_ABOVE`] cached bytes, through the journal in
    /// bounded chunks above it (`journal.rs`). Returns whether there was anything to write.
    /// Not necessarily synced: see [`Store::flush`].
    fn flush_cache(&self) -> Result<bool, ChainError> {
        let mut cache = self.write_cache();
        self.flush_cfg.writable()?;
        if cache.entries() == 0 {
            return Ok(false);
        }
        // Readers wait on the lock until sled holds the same values the cache did.
        if cache.bytes > self.flush_cfg.journal_above() {
            journal::flush(self, &cache)?;
        } else {
            // A journal left by a failed large flush lands first (it is older).
            journal::recover(self)?;
            self.commit(cache.batches())?;
            // The flush pays for the node versions it replaced (see `release_garbage`), rather
            // than the reads of the blocks after it.
            journal::release_garbage(cache.entries());
        }
        *cache = Cache::default();
        Ok(true)
    }

    /// Writes `batches` as one sled transaction over every tree.
    fn commit(&self, batches: [Batch; TREES]) -> Result<(), ChainError> {
        self.flush_cfg.writable()?;
        let [meta_b, index_b, bodies_b, best_b, utxo_b, undo_b, txindex_b, addr_b] = batches;
        let [meta, index, bodies, best, utxo, undo, txindex, addr] = &self.trees;
        (meta, index, bodies, best, utxo, undo, txindex, addr)
            .transaction(|(meta, index, bodies, best, utxo, undo, txindex, addr)| {
                meta.apply_batch(&meta_b)?;
                index.apply_batch(&index_b)?;
                bodies.apply_batch(&bodies_b)?;
                best.apply_batch(&best_b)?;
                utxo.apply_batch(&utxo_b)?;
                undo.apply_batch(&undo_b)?;
                txindex.apply_batch(&txindex_b)?;
                addr.apply_batch(&addr_b)?;
                Ok::<(), ConflictableTransactionError<ChainError>>(())
            })
            .map_err(abort_to_chain)
    }

    /// Writes the cache to sled as one transaction and syncs everything to disk: once this
    /// returns, a kill reopens at least at the current tip.
    pub fn flush(&self) -> Result<(), ChainError> {
        self.flush_cache()?;
        self.db.flush()?;
        Ok(())
    }

    /// Syncs to disk what is already in sled (stored blocks and index entries, earlier
    /// flushes), leaving the write-back cache alone: cheap, and enough to make every stored
    /// block recoverable, because open connects the stored blocks after the flushed tip.
    pub(crate) fn sync(&self) -> Result<(), ChainError> {
        self.db.flush()?;
        Ok(())
    }

    /// The directory the store was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the write-back cache budget in bytes (0: no cache, every block is written at
    /// once). Takes effect at the next connect or disconnect.
    pub fn set_cache_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Sets how flushes are split: a flush of more than `journal_above` cached bytes goes
    /// through the journal in chunks of `chunk_bytes` (clamped to 1 B..8 MiB). For tests
    /// and measurements; the defaults are [`DEFAULT_JOURNAL_ABOVE`], [`DEFAULT_CHUNK_BYTES`].
    #[doc(hidden)]
    pub fn set_flush_chunking(&self, journal_above: usize, chunk_bytes: usize) {
        self.flush_cfg.set(journal_above, chunk_bytes);
    }

    /// Fault injection for tests: the next journaled flush stops after `chunks` chunks of
    /// `step`, and the store then refuses every write (so dropping it writes nothing more),
    /// as if the process had been killed there.
    #[doc(hidden)]
    pub fn halt_flush_after(&self, step: FlushStep, chunks: u32) {
        self.flush_cfg.arm(step, chunks);
    }

    /// Bytes in the flush journal file plus entries left in an older build's journal tree: 0
    /// except during, or after an interrupted, large flush.
    #[doc(hidden)]
    pub fn journal_len(&self) -> u64 {
        journal::journal_bytes(self)
    }

    /// How full the write-back cache is.
    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.read_cache();
        CacheStats {
            bytes: cache.bytes,
            entries: cache.entries(),
            blocks: cache.blocks,
            budget: self.budget.load(Ordering::Relaxed),
        }
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, ChainError> {
        Ok(self.db.size_on_disk()?)
    }
}

impl UtxoView for Store {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        self.get_with(T::Utxo, &outpoint_key(outpoint), |v| decode_stored("utxo entry", v))
    }
}
