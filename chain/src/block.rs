//! Blocks, and the type-level split between a decoded block and one that passed the
//! context-free checks.

use std::sync::Arc;

use bincode::{Decode, Encode};

use crate::encoding;
use crate::error::DecodeError;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::merkle;
use crate::transaction::Transaction;

/// A block as decoded: nothing about it has been checked.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Block {
    /// The 80-byte header.
    pub header: BlockHeader,
    /// Transactions; the first must be the coinbase.
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// Block hash (hash of the header).
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Strictly decodes a block no larger than `max_size` bytes.
    pub fn from_bytes(bytes: &[u8], max_size: usize) -> Result<Block, DecodeError> {
        encoding::decode(bytes, max_size)
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        encoding::encoded_len(self)
    }

    /// Bytes the decoded block occupies in memory (its own struct, every transaction's
    /// struct and vectors, coinbase messages), as held by whoever keeps it, e.g. sync's
    /// buffer of downloaded blocks: larger than [`Block::size`], the encoding.
    pub fn memory_size(&self) -> usize {
        use std::mem::size_of;
        size_of::<Block>()
            + self.transactions.capacity() * size_of::<Transaction>()
            + self.transactions.iter().map(Transaction::heap_size).sum::<usize>()
    }

    /// The txids in block order.
    pub fn txids(&self) -> Vec<Hash256> {
        self.transactions.iter().map(Transaction::txid).collect()
    }

    /// Merkle root computed from the transactions, and the mutation flag.
    pub fn compute_merkle_root(&self) -> (Hash256, bool) {
        merkle::merkle_root(&self.txids())
    }
}

/// A block that passed every context-free check (see `validation::block`). Only this type
/// can go on to contextual validation and the store, so an unchecked block cannot be
/// committed by mistake. Carries the hashes computed during the checks.
#[derive(Clone, Debug)]
pub struct CheckedBlock {
    block: Arc<Block>,
    hash: Hash256,
    txids: Arc<[Hash256]>,
    size: usize,
}

impl CheckedBlock {
    /// Only the context-free validator constructs this.
    pub(crate) fn new(block: Arc<Block>, hash: Hash256, txids: Vec<Hash256>, size: usize) -> CheckedBlock {
        CheckedBlock {
            block,
            hash,
            txids: txids.into(),
            size,
        }
    }

    /// The block.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// Its hash.
    pub fn hash(&self) -> Hash256 {
        self.hash
    }

    /// Its txids in order.
    pub fn txids(&self) -> &[Hash256] {
        &self.txids
    }

    /// Encoded size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.block.header
    }
}
