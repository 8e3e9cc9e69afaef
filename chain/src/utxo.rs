//! Unspent outputs and read access to them.

use bincode::{Decode, Encode};

use crate::error::ChainError;
use crate::height::Height;
use crate::transaction::{OutPoint, TxOut};

/// An unspent output with what the rules need to know about where it came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct UtxoEntry {
    /// The output itself.
    pub output: TxOut,
    /// Height of the block that created it (0 for the genesis premine).
    pub height: Height,
    /// Created by a coinbase (subject to maturity). The genesis premine is not: it is
    /// spendable at once.
    pub is_coinbase: bool,
}

/// Read access to a set of unspent outputs (the store's, or the store's plus a block's or
/// the mempool's).
pub trait UtxoView {
    /// The unspent output at `outpoint`, if any.
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError>;
}

impl<T: UtxoView + ?Sized> UtxoView for &T {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        (**self).utxo(outpoint)
    }
}

impl UtxoView for std::collections::HashMap<OutPoint, UtxoEntry> {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        Ok(self.get(outpoint).copied())
    }
}
