//! The durable chain store on sled.
//!
//! Every logical table is its own sled tree (named in [`keys::trees`]). Connecting or
//! disconnecting a block is ONE sled transaction over every tree it touches, prepared in
//! full before anything is written, so a kill at any instant leaves either the old or the
//! new state. See `docs/adr/0002-storage-layout.md`.

pub mod keys;

use std::path::Path;

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
use keys::{addr_key, height_key, meta, outpoint_key, trees, FORMAT_VERSION};

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
}

impl BlockStatus {
    /// Invalid itself or by descent.
    pub fn is_invalid(self) -> bool {
        match self {
            BlockStatus::Invalid | BlockStatus::InvalidAncestor => true,
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

/// Handles to every tree.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: Tree,
    index: Tree,
    bodies: Tree,
    best: Tree,
    utxo: Tree,
    undo: Tree,
    txindex: Tree,
    addr: Tree,
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

impl Store {
    /// Opens (creating if needed) the store at `path` for `params`' network. Refuses a data
    /// dir of another network or storage format. Returns whether it was freshly created.
    pub fn open(path: &Path, params: &ChainParams) -> Result<(Store, bool), ChainError> {
        let db = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open()?;
        let open = |name: &str| db.open_tree(name);
        let store = Store {
            meta: open(trees::META)?,
            index: open(trees::INDEX)?,
            bodies: open(trees::BODIES)?,
            best: open(trees::BEST)?,
            utxo: open(trees::UTXO)?,
            undo: open(trees::UNDO)?,
            txindex: open(trees::TXINDEX)?,
            addr: open(trees::ADDR)?,
            db,
        };
        let genesis = params.genesis_hash();
        match store.meta.get(meta::GENESIS)? {
            Some(found) => {
                let version = store
                    .meta
                    .get(meta::VERSION)?
                    .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if version != FORMAT_VERSION {
                    return Err(ChainError::FormatVersion {
                        found: version,
                        expected: FORMAT_VERSION,
                    });
                }
                let found = hash_from("genesis", &found)?;
                if found != genesis {
                    let found_name = store
                        .meta
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
                Ok((store, false))
            }
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
        let mut b = self.connect_batches(&hash, Height::GENESIS, &block, &txids, &spends);
        b.index.insert(&hash.0, encoding::encode(&entry));
        b.bodies.insert(&hash.0, block.to_bytes());
        b.meta.insert(meta::VERSION, &FORMAT_VERSION.to_be_bytes());
        b.meta.insert(meta::NETWORK, params.name.as_bytes());
        b.meta.insert(meta::GENESIS, &hash.0);
        self.commit(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// All index entries (loaded once at open; the index is small).
    pub fn load_index(&self) -> Result<Vec<(Hash256, IndexEntry)>, ChainError> {
        let mut out = Vec::with_capacity(self.index.len());
        for item in self.index.iter() {
            let (k, v) = item?;
            out.push((
                hash_from("index key", &k)?,
                decode_stored::<IndexEntry>("index entry", &v)?,
            ));
        }
        Ok(out)
    }

    /// The best chain, genesis first.
    pub fn load_best_chain(&self) -> Result<Vec<Hash256>, ChainError> {
        let mut out = Vec::with_capacity(self.best.len());
        for (expected, item) in self.best.iter().enumerate() {
            let (k, v) = item?;
            let h = <[u8; 4]>::try_from(k.as_ref()).map(u32::from_be_bytes).ok();
            if h != Some(expected as u32) {
                return Err(ChainError::Corrupt(format!(
                    "best chain has a gap at height {expected}"
                )));
            }
            out.push(hash_from("best chain", &v)?);
        }
        Ok(out)
    }

    /// The stored tip hash.
    pub fn tip(&self) -> Result<Option<Hash256>, ChainError> {
        self.meta.get(meta::TIP)?.map(|v| hash_from("tip", &v)).transpose()
    }

    /// Stores a new block's body and index entry together.
    pub fn put_block(&self, hash: &Hash256, block: &Block, entry: &IndexEntry) -> Result<(), ChainError> {
        let mut bodies = Batch::default();
        bodies.insert(&hash.0, block.to_bytes());
        let mut index = Batch::default();
        index.insert(&hash.0, encoding::encode(entry));
        (&self.bodies, &self.index)
            .transaction(|(b, i)| {
                b.apply_batch(&bodies)?;
                i.apply_batch(&index)?;
                Ok::<(), ConflictableTransactionError<ChainError>>(())
            })
            .map_err(abort_to_chain)
    }

    /// Rewrites index entries (status changes).
    pub fn put_index_entries(&self, entries: &[(Hash256, IndexEntry)]) -> Result<(), ChainError> {
        let mut batch = Batch::default();
        for (hash, entry) in entries {
            batch.insert(&hash.0, encoding::encode(entry));
        }
        self.index.apply_batch(batch)?;
        Ok(())
    }

    /// A stored block body.
    pub fn block(&self, hash: &Hash256) -> Result<Option<Block>, ChainError> {
        match self.bodies.get(hash.0)? {
            Some(bytes) => Ok(Some(decode_stored("block body", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Raw stored block bytes (for serving peers without re-encoding).
    pub fn block_bytes(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self.bodies.get(hash.0)?.map(|v| v.to_vec()))
    }

    /// Where a best-chain transaction is.
    pub fn tx_location(&self, txid: &Hash256) -> Result<Option<TxLocation>, ChainError> {
        match self.txindex.get(txid.0)? {
            Some(v) => Ok(Some(decode_stored("tx index", &v)?)),
            None => Ok(None),
        }
    }

    /// Address-index rows for `pkh`, oldest first.
    pub fn address_events(&self, pkh: &PubkeyHash) -> Result<Vec<AddrEvent>, ChainError> {
        let mut out = Vec::new();
        for item in self.addr.scan_prefix(pkh.0) {
            let (k, v) = item?;
            let (height, txid, kind, index) =
                keys::parse_addr_key(&k).ok_or_else(|| ChainError::Corrupt("address index key".into()))?;
            let record = decode_stored::<AddrRecord>("address record", &v)?;
            out.push(AddrEvent {
                height,
                txid,
                kind,
                index,
                record,
            });
        }
        Ok(out)
    }

    /// Every unspent output (for verification and statistics).
    pub fn utxo_iter(&self) -> impl Iterator<Item = Result<(OutPoint, UtxoEntry), ChainError>> + '_ {
        self.utxo.iter().map(|item| {
            let (k, v) = item?;
            let op = keys::outpoint_from_key(&k).ok_or_else(|| ChainError::Corrupt("utxo key".into()))?;
            Ok((op, decode_stored::<UtxoEntry>("utxo entry", &v)?))
        })
    }

    /// Number of unspent outputs.
    pub fn utxo_count(&self) -> usize {
        self.utxo.len()
    }

    /// Undo data of a connected block: the output each non-coinbase input spent.
    pub fn undo(&self, hash: &Hash256) -> Result<Vec<(OutPoint, UtxoEntry)>, ChainError> {
        let bytes = self
            .undo
            .get(hash.0)?
            .ok_or_else(|| ChainError::Corrupt(format!("no undo data for {hash}")))?;
        decode_stored("undo data", &bytes)
    }

    /// Connects `block` (already fully validated, `spends` from `check_block_spends`) as the
    /// new tip at `height`: one atomic transaction.
    pub fn connect(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        spends: &BlockSpends,
        entry: &IndexEntry,
    ) -> Result<(), ChainError> {
        let mut b = self.connect_batches(hash, height, block, txids, spends);
        b.index.insert(&hash.0, encoding::encode(entry));
        self.commit(b)
    }

    fn connect_batches(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        spends: &BlockSpends,
    ) -> Batches {
        let mut b = Batches::default();
        for (op, _) in &spends.inputs {
            b.utxo.remove(outpoint_key(op).as_slice());
        }
        for (op, entry) in &spends.created {
            b.utxo.insert(outpoint_key(op).as_slice(), encoding::encode(entry));
        }
        b.undo.insert(&hash.0, encoding::encode(&spends.inputs));
        let mut inputs = spends.inputs.iter();
        for (position, (tx, txid)) in block.transactions.iter().zip(txids).enumerate() {
            let loc = TxLocation {
                block: *hash,
                height,
                position: position as u32,
            };
            b.txindex.insert(&txid.0, encoding::encode(&loc));
            for (i, out) in tx.outputs.iter().enumerate() {
                let op = OutPoint {
                    txid: *txid,
                    index: i as u32,
                };
                let rec = AddrRecord {
                    value: out.value,
                    outpoint: op,
                };
                b.addr.insert(
                    addr_key(&out.pubkey_hash, height, txid, AddrKind::Received, i as u32).as_slice(),
                    encoding::encode(&rec),
                );
            }
            if position > 0 {
                for i in 0..tx.inputs.len() {
                    if let Some((op, entry)) = inputs.next() {
                        let rec = AddrRecord {
                            value: entry.output.value,
                            outpoint: *op,
                        };
                        let k = addr_key(&entry.output.pubkey_hash, height, txid, AddrKind::Spent, i as u32);
                        b.addr.insert(k.as_slice(), encoding::encode(&rec));
                    }
                }
            }
        }
        b.best.insert(&height_key(height), &hash.0);
        b.meta.insert(meta::TIP, &hash.0);
        b
    }

    /// Disconnects the tip `block` at `height` using its undo data, making `parent` the tip:
    /// one atomic transaction. `entry` is the block's index entry to write back.
    pub fn disconnect(
        &self,
        hash: &Hash256,
        height: Height,
        block: &Block,
        txids: &[Hash256],
        parent: &Hash256,
    ) -> Result<(), ChainError> {
        let inputs = self.undo(hash)?;
        let in_block: std::collections::HashSet<&Hash256> = txids.iter().collect();
        let mut b = Batches::default();
        let mut undo_iter = inputs.iter();
        for (position, (tx, txid)) in block.transactions.iter().zip(txids).enumerate() {
            b.txindex.remove(&txid.0);
            for (i, out) in tx.outputs.iter().enumerate() {
                b.utxo.remove(
                    outpoint_key(&OutPoint {
                        txid: *txid,
                        index: i as u32,
                    })
                    .as_slice(),
                );
                b.addr
                    .remove(addr_key(&out.pubkey_hash, height, txid, AddrKind::Received, i as u32).as_slice());
            }
            if position > 0 {
                for i in 0..tx.inputs.len() {
                    let (_, entry) = undo_iter
                        .next()
                        .ok_or_else(|| ChainError::Corrupt(format!("undo data of {hash} is short")))?;
                    b.addr.remove(
                        addr_key(&entry.output.pubkey_hash, height, txid, AddrKind::Spent, i as u32).as_slice(),
                    );
                }
            }
        }
        // Restore spent outputs last so they win over the removals above; outputs created
        // and spent inside this block stay gone.
        for (op, entry) in &inputs {
            if !in_block.contains(&op.txid) {
                b.utxo.insert(outpoint_key(op).as_slice(), encoding::encode(entry));
            }
        }
        b.undo.remove(&hash.0);
        b.best.remove(&height_key(height));
        b.meta.insert(meta::TIP, &parent.0);
        self.commit(b)
    }

    fn commit(&self, b: Batches) -> Result<(), ChainError> {
        (
            &self.meta,
            &self.index,
            &self.bodies,
            &self.best,
            &self.utxo,
            &self.undo,
            &self.txindex,
            &self.addr,
        )
            .transaction(|(meta, index, bodies, best, utxo, undo, txindex, addr)| {
                meta.apply_batch(&b.meta)?;
                index.apply_batch(&b.index)?;
                bodies.apply_batch(&b.bodies)?;
                best.apply_batch(&b.best)?;
                utxo.apply_batch(&b.utxo)?;
                undo.apply_batch(&b.undo)?;
                txindex.apply_batch(&b.txindex)?;
                addr.apply_batch(&b.addr)?;
                Ok::<(), ConflictableTransactionError<ChainError>>(())
            })
            .map_err(abort_to_chain)
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), ChainError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, ChainError> {
        Ok(self.db.size_on_disk()?)
    }
}

impl UtxoView for Store {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        match self.utxo.get(outpoint_key(outpoint))? {
            Some(v) => Ok(Some(decode_stored("utxo entry", &v)?)),
            None => Ok(None),
        }
    }
}

/// One batch per tree, committed together.
#[derive(Default)]
struct Batches {
    meta: Batch,
    index: Batch,
    bodies: Batch,
    best: Batch,
    utxo: Batch,
    undo: Batch,
    txindex: Batch,
    addr: Batch,
}
