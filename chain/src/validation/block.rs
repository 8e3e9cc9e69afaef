//! Context-free block rules: what can be checked from the block alone, before its parent is
//! looked at. Passing them yields a [`CheckedBlock`].

use std::collections::HashSet;
use std::sync::Arc;

use crate::block::{Block, CheckedBlock};
use crate::error::ConsensusError;
use crate::hash::Hash256;
use crate::merkle::merkle_root;
use crate::params::ChainParams;
use crate::pow::check_proof_of_work;
use crate::validation::tx::check_transaction_within;

/// Runs every context-free rule. Cheap checks come first so junk is refused early: PoW
/// before hashing every transaction.
pub fn check_block(block: Arc<Block>, params: &ChainParams) -> Result<CheckedBlock, ConsensusError> {
    let hash = block.hash();
    check_pow(&block, &hash, params)?;
    check_body(block, hash, params)
}

/// Every context-free rule except proof of work: what a miner checks on its template before
/// searching for a nonce.
pub fn check_block_unmined(block: Arc<Block>, params: &ChainParams) -> Result<CheckedBlock, ConsensusError> {
    let hash = block.hash();
    check_body(block, hash, params)
}

fn check_body(block: Arc<Block>, hash: Hash256, params: &ChainParams) -> Result<CheckedBlock, ConsensusError> {
    let size = check_size(&block, params)?;
    check_coinbase_position(&block)?;
    let max = params.max_money();
    for tx in &block.transactions {
        check_transaction_within(tx, params, max)?;
    }
    let txids = block.txids();
    check_merkle(&block, &txids)?;
    check_unique_txids(&txids)?;
    Ok(CheckedBlock::new(block, hash, txids, size))
}

/// The header hash meets the target its own bits state, and that target is within the pow
/// limit (Bitcoin's `CheckProofOfWork`). Whether the bits are the *expected* ones is
/// contextual.
fn check_pow(block: &Block, hash: &Hash256, params: &ChainParams) -> Result<(), ConsensusError> {
    check_proof_of_work(hash, block.header.bits, &params.pow_limit())
}

/// A block may not exceed the network's maximum size.
fn check_size(block: &Block, params: &ChainParams) -> Result<usize, ConsensusError> {
    let size = block.size();
    if size > params.max_block_size {
        return Err(ConsensusError::BlockTooLarge {
            size,
            max: params.max_block_size,
        });
    }
    Ok(size)
}

/// The first transaction, and only the first, is a coinbase.
fn check_coinbase_position(block: &Block) -> Result<(), ConsensusError> {
    let Some(first) = block.transactions.first() else {
        return Err(ConsensusError::NoTransactions);
    };
    if !first.is_coinbase() {
        return Err(ConsensusError::FirstTxNotCoinbase);
    }
    for (index, tx) in block.transactions.iter().enumerate().skip(1) {
        if tx.inputs.iter().any(|i| i.prev_out.is_null()) || tx.is_coinbase() {
            return Err(ConsensusError::ExtraCoinbase { index });
        }
    }
    Ok(())
}

/// The header commits to exactly these transactions, and the tree has no duplicated
/// subtree (CVE-2012-2459: such a block shares its root with a different, valid list).
fn check_merkle(block: &Block, txids: &[Hash256]) -> Result<(), ConsensusError> {
    let (root, mutated) = merkle_root(txids);
    if mutated {
        // Name the repeated txid for the log; it is one of a duplicated adjacent pair.
        let dup = txids.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]).unwrap_or(root);
        return Err(ConsensusError::MutatedMerkleTree(dup));
    }
    if root != block.header.merkle_root {
        return Err(ConsensusError::BadMerkleRoot {
            expected: root,
            found: block.header.merkle_root,
        });
    }
    Ok(())
}

/// No txid appears twice in a block.
fn check_unique_txids(txids: &[Hash256]) -> Result<(), ConsensusError> {
    let mut seen = HashSet::with_capacity(txids.len());
    for txid in txids {
        if !seen.insert(*txid) {
            return Err(ConsensusError::DuplicateTx(*txid));
        }
    }
    Ok(())
}
