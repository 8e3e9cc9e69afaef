//! Building blocks and transactions: coinbase construction, block assembly with its merkle
//! root, and signing. Shared by the miner, the wallet and tests.

use ed25519_dalek::{Signer, SigningKey};

use crate::address::PubkeyHash;
use crate::amount::Amount;
use crate::block::Block;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::merkle::merkle_root;
use crate::pow::{check_proof_of_work, U256};
use crate::transaction::{CoinbaseData, OutPoint, Transaction, TxIn, TxOut, Unlock};

/// A coinbase for a block at `height` paying `outputs`, with an extra-nonce and a message.
pub fn coinbase(height: Height, extra_nonce: u64, message: &[u8], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::NULL,
            unlock: Unlock::Coinbase(CoinbaseData {
                height,
                extra_nonce: extra_nonce.to_le_bytes(),
                message: message.to_vec(),
            }),
        }],
        outputs,
        lock_time: 0,
    }
}

/// Assembles a block on `prev` with the merkle root filled in (nonce 0).
pub fn assemble(prev: Hash256, time: u32, bits: u32, transactions: Vec<Transaction>) -> Block {
    let txids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let (root, _) = merkle_root(&txids);
    Block {
        header: BlockHeader {
            version: 1,
            prev_hash: prev,
            merkle_root: root,
            time,
            bits,
            nonce: 0,
        },
        transactions,
    }
}

/// Grinds the nonce until the header meets its bits. Only for easy targets (regtest, tests):
/// the miner crate has the fast search. Returns false if the 32-bit space ran out.
pub fn grind(header: &mut BlockHeader, pow_limit: &U256) -> bool {
    for nonce in 0..=u32::MAX {
        header.nonce = nonce;
        if check_proof_of_work(&header.hash(), header.bits, pow_limit).is_ok() {
            return true;
        }
    }
    false
}

/// Signs every key input of `tx` (all spending outputs of `key`) over its sighash.
pub fn sign_all(tx: &mut Transaction, key: &SigningKey, genesis: &Hash256) {
    let pubkey = key.verifying_key().to_bytes();
    for input in &mut tx.inputs {
        if let Unlock::Key(k) = &mut input.unlock {
            k.pubkey = pubkey;
        }
    }
    let digest = tx.sighash(genesis);
    let signature = key.sign(&digest).to_bytes();
    for input in &mut tx.inputs {
        if let Unlock::Key(k) = &mut input.unlock {
            k.signature = signature;
        }
    }
}

/// A one-key spend of `inputs` to `outputs`, signed.
pub fn spend(inputs: &[OutPoint], outputs: Vec<TxOut>, key: &SigningKey, genesis: &Hash256) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: inputs
            .iter()
            .map(|op| TxIn {
                prev_out: *op,
                unlock: Unlock::Key(crate::transaction::KeyUnlock {
                    pubkey: [0; 32],
                    signature: [0; 64],
                }),
            })
            .collect(),
        outputs,
        lock_time: 0,
    };
    sign_all(&mut tx, key, genesis);
    tx
}

/// `n` fixed-difficulty blocks on genesis, each with only a coinbase paying `to`, one
/// second apart (regtest chains for tests). Grinds each nonce, so only for easy targets.
pub fn empty_chain(params: &crate::params::ChainParams, n: u32, to: PubkeyHash) -> Vec<Block> {
    let genesis = params.genesis_block();
    let (mut parent, mut time) = (genesis.hash(), genesis.header.time);
    let mut out = Vec::with_capacity(n as usize);
    for h in 1..=n {
        let cb = coinbase(Height(h), 0, b"", vec![pay(to, params.subsidy(Height(h)))]);
        let mut b = assemble(parent, time + 1, params.pow_limit_bits, vec![cb]);
        if !grind(&mut b.header, &params.pow_limit()) {
            break;
        }
        parent = b.hash();
        time = b.header.time;
        out.push(b);
    }
    out
}

/// `n` fixed-difficulty blocks of `txs` one-input transactions each (regtest benches), after
/// 12 blocks on genesis that fund `key` (height 1), let the coinbase mature (2–11) and fan it
/// out into `txs` outputs (12): each later block spends the previous one's outputs, so every
/// transaction needs its signature checked and the UTXO set stays at `txs` entries. Grinds
/// each nonce, so only for easy targets.
pub fn spend_chain(params: &crate::params::ChainParams, n: usize, txs: usize, key: &SigningKey) -> Vec<Block> {
    let genesis = params.genesis_block();
    let to = key_hash(key);
    let mut blocks: Vec<Block> = Vec::with_capacity(12 + n);
    let make = |h: u32, body: Vec<Transaction>, blocks: &mut Vec<Block>| {
        let (parent, time) = blocks
            .last()
            .map_or((genesis.hash(), genesis.header.time), |b| (b.hash(), b.header.time));
        let mut all = vec![coinbase(
            Height(h),
            0,
            b"bench",
            vec![pay(to, params.subsidy(Height(h)))],
        )];
        all.extend(body);
        let mut b = assemble(parent, time + 1, params.pow_limit_bits, all);
        grind(&mut b.header, &params.pow_limit());
        blocks.push(b);
    };
    for h in 1..=11 {
        make(h, vec![], &mut blocks);
    }
    let funding = blocks[0].transactions[0].txid();
    let each = Amount(params.subsidy(Height(1)).0 / txs.max(1) as u64);
    let fan = spend(
        &[OutPoint {
            txid: funding,
            index: 0,
        }],
        vec![pay(to, each); txs],
        key,
        &genesis.hash(),
    );
    let fan_txid = fan.txid();
    let mut outs: Vec<OutPoint> = (0..txs as u32)
        .map(|index| OutPoint { txid: fan_txid, index })
        .collect();
    make(12, vec![fan], &mut blocks);
    for h in 13..13 + n as u32 {
        let body: Vec<Transaction> = outs
            .iter()
            .map(|op| spend(&[*op], vec![pay(to, each)], key, &genesis.hash()))
            .collect();
        outs = body
            .iter()
            .map(|t| OutPoint {
                txid: t.txid(),
                index: 0,
            })
            .collect();
        make(h, body, &mut blocks);
    }
    blocks
}

/// A deterministic signing key numbered `n` (benches and tests that need many distinct keys).
/// Never for real funds: the secret is the number.
pub fn seeded_key(n: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// The address (public-key hash) of a signing key.
pub fn key_hash(key: &SigningKey) -> PubkeyHash {
    PubkeyHash::from_pubkey(&key.verifying_key().to_bytes())
}

/// One output.
pub fn pay(to: PubkeyHash, value: Amount) -> TxOut {
    TxOut { value, pubkey_hash: to }
}
