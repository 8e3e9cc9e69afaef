//! Transactions: UTXO inputs signed with Ed25519, outputs paying 20-byte public-key hashes.

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};

use crate::address::PubkeyHash;
use crate::amount::Amount;
use crate::encoding;
use crate::hash::Hash256;
use crate::height::Height;

/// Domain tag of the signature digest, so a digest can never collide with another hash use.
const SIGHASH_TAG: &[u8] = b"lode/sighash/v1";

/// Bytes of free data a coinbase may carry after the height and extra-nonce.
pub const MAX_COINBASE_MESSAGE: usize = 64;

/// A reference to an output of an earlier transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct OutPoint {
    /// The transaction holding the output.
    pub txid: Hash256,
    /// The output's position in it.
    pub index: u32,
}

impl OutPoint {
    /// The null outpoint a coinbase input names.
    pub const NULL: OutPoint = OutPoint {
        txid: Hash256::ZERO,
        index: u32::MAX,
    };

    /// True for the coinbase's null outpoint.
    pub fn is_null(&self) -> bool {
        *self == OutPoint::NULL
    }
}

/// What unlocks an input.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Unlock {
    /// A coinbase input: the block height, the miner's extra-nonce and a short message.
    Coinbase(CoinbaseData),
    /// A spend: the public key whose hash the output names and an Ed25519 signature.
    Key(KeyUnlock),
}

/// Data carried by a coinbase input.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CoinbaseData {
    /// Height of the block this coinbase belongs to (makes every coinbase txid unique).
    pub height: Height,
    /// The miner rolls this when the 32-bit header nonce is exhausted.
    pub extra_nonce: [u8; 8],
    /// Free data, at most [`MAX_COINBASE_MESSAGE`] bytes.
    pub message: Vec<u8>,
}

/// Public key and signature of a spending input.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct KeyUnlock {
    /// Ed25519 public key (compressed Edwards point).
    pub pubkey: [u8; 32],
    /// Ed25519 signature over [`Transaction::sighash`].
    pub signature: [u8; 64],
}

/// A transaction input.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct TxIn {
    /// The output being spent ([`OutPoint::NULL`] in a coinbase).
    pub prev_out: OutPoint,
    /// What unlocks it.
    pub unlock: Unlock,
}

/// A transaction output.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct TxOut {
    /// Value in base units.
    pub value: Amount,
    /// Hash of the public key allowed to spend it.
    pub pubkey_hash: PubkeyHash,
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Transaction {
    /// Format version (not interpreted by consensus yet).
    pub version: u32,
    /// Inputs; a coinbase has exactly one with the null outpoint.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// Reserved; must be carried as given.
    pub lock_time: u32,
}

impl Transaction {
    /// Heap bytes owned by this transaction (its input and output vectors and coinbase
    /// message), not counting its own struct: see [`crate::Block::memory_size`].
    pub fn heap_size(&self) -> usize {
        // Each allocation also costs the allocator's header (16 bytes on glibc x86-64).
        const PER_ALLOCATION: usize = 16;
        2 * PER_ALLOCATION
            + self.inputs.capacity() * std::mem::size_of::<TxIn>()
            + self.outputs.capacity() * std::mem::size_of::<TxOut>()
            + self
                .inputs
                .iter()
                .map(|i| match &i.unlock {
                    Unlock::Coinbase(c) => c.message.capacity(),
                    Unlock::Key(_) => 0,
                })
                .sum::<usize>()
    }

    /// txid: double SHA-256 of the canonical encoding.
    pub fn txid(&self) -> Hash256 {
        Hash256::sha256d(&encoding::encode(self))
    }

    /// Canonical encoded size in bytes.
    pub fn size(&self) -> usize {
        encoding::encoded_len(self)
    }

    /// True if this is shaped like a coinbase (single input with a coinbase unlock).
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && matches!(self.inputs[0].unlock, Unlock::Coinbase(_))
    }

    /// The coinbase data, if this is a coinbase.
    pub fn coinbase_data(&self) -> Option<&CoinbaseData> {
        match self.inputs.as_slice() {
            [TxIn {
                unlock: Unlock::Coinbase(data),
                ..
            }] => Some(data),
            _ => None,
        }
    }

    /// The digest every input signs: SHA-256 over a domain tag, the chain's genesis hash
    /// (so a transaction is never valid on another network) and the canonical encoding of the
    /// transaction with every signature blanked to zeros.
    pub fn sighash(&self, genesis: &Hash256) -> [u8; 32] {
        let mut blanked = self.clone();
        for input in &mut blanked.inputs {
            if let Unlock::Key(key) = &mut input.unlock {
                key.signature = [0u8; 64];
            }
        }
        let mut h = Sha256::new();
        h.update(SIGHASH_TAG);
        h.update(genesis.0);
        h.update(encoding::encode(&blanked));
        let first = h.finalize();
        Sha256::digest(first).into()
    }

    /// Sum of output values, `None` on overflow.
    pub fn output_total(&self) -> Option<Amount> {
        Amount::checked_sum(self.outputs.iter().map(|o| o.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend() -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint {
                    txid: Hash256([7; 32]),
                    index: 1,
                },
                unlock: Unlock::Key(KeyUnlock {
                    pubkey: [1; 32],
                    signature: [2; 64],
                }),
            }],
            outputs: vec![TxOut {
                value: Amount(5),
                pubkey_hash: PubkeyHash([3; 20]),
            }],
            lock_time: 0,
        }
    }

    #[test]
    fn sighash_ignores_signatures_but_binds_genesis_and_content() {
        let tx = spend();
        let g = Hash256([9; 32]);
        let mut resigned = tx.clone();
        if let Unlock::Key(k) = &mut resigned.inputs[0].unlock {
            k.signature = [0xee; 64];
        }
        assert_eq!(tx.sighash(&g), resigned.sighash(&g));
        assert_ne!(tx.txid(), resigned.txid());
        assert_ne!(tx.sighash(&g), tx.sighash(&Hash256([8; 32])));
        let mut changed = tx.clone();
        changed.outputs[0].value = Amount(6);
        assert_ne!(tx.sighash(&g), changed.sighash(&g));
    }

    #[test]
    fn encoded_size_matches_layout() {
        // version 4 + len 8 + (outpoint 36 + variant 4 + key 32 + sig 64) + len 8 + (8 + 20) + lock 4
        assert_eq!(spend().size(), 4 + 8 + 136 + 8 + 28 + 4);
        assert_eq!(encoding::encode(&spend()).len(), spend().size());
    }
}
