//! The store's side of a reindex: the block index rebuilt from the stored bodies, and
//! every table derived from connected blocks (UTXO set, undo data, tx and address indexes,
//! best chain, tip) emptied, genesis's state written again. Opening the chain afterwards
//! connects every stored block from genesis, re-validating each
//! ([`crate::state::ChainState::reindex`]).

use std::collections::{HashMap, VecDeque};

use super::{bodies, BlockStatus, IndexEntry, Store, T};
use crate::block::Block;
use crate::encoding;
use crate::error::ChainError;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::ChainParams;
use crate::pow::ChainWork;

/// What a reindex found and rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Stored bodies indexed again (genesis included).
    pub blocks: u64,
    /// Bodies that do not decode, or whose hash is not their key: left where they are,
    /// not indexed.
    pub unreadable: u64,
    /// Readable bodies whose ancestry does not reach genesis: left, not indexed.
    pub unlinked: u64,
    /// Height of the best chain once every block was connected again.
    pub height: u32,
    /// Its tip.
    pub tip: Hash256,
}

impl Store {
    /// Rebuilds the index from the stored bodies and empties the derived tables; genesis's
    /// state is written again. Bodies are never removed. Synced when it returns.
    pub(crate) fn reset_from_bodies(&self, params: &ChainParams) -> Result<ReindexReport, ChainError> {
        let genesis = params.genesis_hash();
        let mut report = ReindexReport::default();
        // Parent → children, every readable body but genesis.
        let mut children: HashMap<Hash256, Vec<(Hash256, BlockHeader)>> = HashMap::new();
        for item in bodies::iter(self.tree(T::Bodies)) {
            let (key, bytes) = match item? {
                Ok((hash, bytes)) => (hash.0.to_vec(), bytes),
                Err(key) => (key, Vec::new()),
            };
            let block = match Block::from_bytes(&bytes, params.max_block_size) {
                Ok(b) if b.hash().0.as_slice() == key.as_slice() => b,
                _ => {
                    tracing::warn!(key = %hex::encode(&key), "stored block body unreadable; left out of the index");
                    report.unreadable += 1;
                    continue;
                }
            };
            let hash = block.hash();
            if hash != genesis {
                children
                    .entry(block.header.prev_hash)
                    .or_default()
                    .push((hash, block.header));
            }
        }
        // The old index's arrival order, where it is still readable: equal-work tips keep
        // the one seen first.
        let old_seq = |hash: &Hash256| -> Option<u64> {
            let bytes = self.tree(T::Index).get(hash.0).ok()??;
            encoding::decode::<IndexEntry>(&bytes, encoding::MAX_DECODE_BYTES)
                .ok()
                .map(|e| e.seq)
        };
        let readable: usize = children.values().map(Vec::len).sum();
        let mut entries: Vec<(Hash256, IndexEntry)> = Vec::with_capacity(readable);
        let genesis_work = ChainWork::from_bits(params.genesis_block().header.bits);
        let mut queue = VecDeque::from([(genesis, Height::GENESIS, genesis_work)]);
        while let Some((parent, height, work)) = queue.pop_front() {
            let Some(kids) = children.remove(&parent) else { continue };
            for (hash, header) in kids {
                let work = work.saturating_add(ChainWork::from_bits(header.bits));
                let height = Height(height.0 + 1);
                entries.push((
                    hash,
                    IndexEntry {
                        header,
                        height,
                        chain_work: work.to_be_bytes(),
                        status: BlockStatus::Stored,
                        seq: 0,
                    },
                ));
                queue.push_back((hash, height, work));
            }
        }
        report.unlinked = children.values().map(Vec::len).sum::<usize>() as u64;
        // Arrival order: the old one where known, then breadth-first (parents first).
        entries.sort_by_key(|(h, e)| (old_seq(h).unwrap_or(u64::MAX), e.height.0));
        for (i, (_, e)) in entries.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        report.blocks = entries.len() as u64 + 1;

        *self.write_cache() = super::Cache::default();
        for t in [T::Index, T::Best, T::Utxo, T::Undo, T::TxIndex, T::Addr] {
            self.tree(t).clear()?;
        }
        self.tree(T::Meta).remove(super::meta::TIP)?;
        self.init_genesis(params)?;
        let mut batch = sled::Batch::default();
        for (hash, entry) in &entries {
            batch.insert(&hash.0, encoding::encode(entry));
        }
        self.tree(T::Index).apply_batch(batch)?;
        self.db.flush()?;
        Ok(report)
    }
}
