//! JSON views of chain objects, shared by the JSON-RPC methods and the REST routes.
//! Amounts are integers in base units; hashes are display-order hex.

use lode_chain::header::BlockHeader;
use lode_chain::pow::compact::target_from_bits;
use lode_chain::store::IndexEntry;
use lode_chain::transaction::Unlock;
use lode_chain::{Block, ChainParams, ChainState, Hash256, Height, Transaction};
use serde::Serialize;
use utoipa::ToSchema;

/// A block header with its place in the chain.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeaderView {
    /// Block hash.
    pub hash: String,
    /// Confirmations: 1 for the tip, -1 for a block off the best chain.
    pub confirmations: i64,
    /// Height.
    pub height: u32,
    /// Header version.
    pub version: u32,
    /// Merkle root.
    pub merkleroot: String,
    /// Timestamp (Unix seconds).
    pub time: u32,
    /// Median time past of the 11 blocks ending here.
    pub mediantime: u32,
    /// Nonce.
    pub nonce: u32,
    /// Compact target, hex.
    pub bits: String,
    /// Difficulty as Bitcoin Core defines it (relative to `0x1d00ffff`).
    pub difficulty: f64,
    /// Cumulative work, hex.
    pub chainwork: String,
    /// Parent hash (absent for genesis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previousblockhash: Option<String>,
    /// Next best-chain block, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextblockhash: Option<String>,
}

/// A block: its header view, size and transactions (txids, or full objects).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BlockView {
    /// Header fields.
    #[serde(flatten)]
    pub header: HeaderView,
    /// Size in bytes (canonical encoding).
    pub size: usize,
    /// Transaction count.
    #[serde(rename = "nTx")]
    pub n_tx: usize,
    /// Txids (REST and verbosity 1), or transaction objects (JSON-RPC verbosity 2).
    #[schema(value_type = Vec<String>)]
    pub tx: Vec<serde_json::Value>,
}

/// A transaction input.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct InputView {
    /// True for the coinbase input.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub coinbase: bool,
    /// Coinbase: the height it commits to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Spent output's txid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    /// Spent output's index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vout: Option<u32>,
    /// Spending key, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
}

/// A transaction output.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OutputView {
    /// Index.
    pub n: u32,
    /// Value in base units.
    pub value: u64,
    /// Address paid.
    pub address: String,
}

/// A transaction with where it is.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TxView {
    /// Txid.
    pub txid: String,
    /// Canonical encoding, hex.
    pub hex: String,
    /// Size in bytes.
    pub size: usize,
    /// Version.
    pub version: u32,
    /// Lock time.
    pub locktime: u32,
    /// Inputs.
    pub vin: Vec<InputView>,
    /// Outputs.
    pub vout: Vec<OutputView>,
    /// Fee, when known (mempool transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<u64>,
    /// Containing block, if mined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockhash: Option<String>,
    /// Its height, if mined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Confirmations (0 in the mempool).
    pub confirmations: u32,
}

/// Bitcoin's difficulty-1 target (`0x1d00ffff`), the unit of Core's difficulty.
const DIFFICULTY_ONE_BITS: u32 = 0x1d00_ffff;

/// Difficulty of `bits` as Bitcoin Core defines it: the target of `0x1d00ffff` ÷ this
/// target, on every network (so a regtest block is about 4.66e-10, as in Core).
pub fn difficulty(bits: u32) -> f64 {
    match (target_from_bits(DIFFICULTY_ONE_BITS), target_from_bits(bits)) {
        (Some(limit), Some(t)) if !t.is_zero() => u256_to_f64(limit) / u256_to_f64(t),
        _ => 0.0,
    }
}

fn u256_to_f64(v: primitive_types::U256) -> f64 {
    v.0.iter()
        .rev()
        .fold(0.0, |acc, limb| acc * 18_446_744_073_709_551_616.0 + *limb as f64)
}

/// The header view of an indexed block.
pub fn header_view(chain: &ChainState, hash: &Hash256, entry: &IndexEntry) -> HeaderView {
    let on_best = chain.is_on_best_chain(hash);
    let confirmations = if on_best {
        i64::from(chain.height().0) - i64::from(entry.height.0) + 1
    } else {
        -1
    };
    let next = if on_best {
        entry.height.next().and_then(|h| chain.hash_at(h))
    } else {
        None
    };
    let h: &BlockHeader = &entry.header;
    HeaderView {
        hash: hash.to_hex(),
        confirmations,
        height: entry.height.0,
        version: h.version,
        merkleroot: h.merkle_root.to_hex(),
        time: h.time,
        mediantime: median_time(chain, hash, entry.height),
        nonce: h.nonce,
        bits: format!("{:08x}", h.bits),
        difficulty: difficulty(h.bits),
        chainwork: hex::encode(entry.chain_work),
        previousblockhash: (entry.height.0 > 0).then(|| h.prev_hash.to_hex()),
        nextblockhash: next.map(|n| n.to_hex()),
    }
}

/// Median of the last 11 timestamps ending at `hash`.
pub fn median_time(chain: &ChainState, hash: &Hash256, height: Height) -> u32 {
    let mut times: Vec<u32> = (0..11u32)
        .filter_map(|back| height.0.checked_sub(back))
        .filter_map(|h| chain.ancestor(hash, Height(h)).map(|hd| hd.time))
        .collect();
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

/// A transaction's view; `place` is (block hash, height) when mined.
pub fn tx_view(
    params: &ChainParams,
    tx: &Transaction,
    place: Option<(Hash256, Height)>,
    tip: Height,
    fee: Option<u64>,
) -> TxView {
    let bytes = lode_chain::encoding::encode(tx);
    TxView {
        txid: tx.txid().to_hex(),
        size: bytes.len(),
        hex: hex::encode(&bytes),
        version: tx.version,
        locktime: tx.lock_time,
        vin: tx
            .inputs
            .iter()
            .map(|i| match &i.unlock {
                Unlock::Coinbase(c) => InputView {
                    coinbase: true,
                    height: Some(c.height.0),
                    txid: None,
                    vout: None,
                    pubkey: None,
                },
                Unlock::Key(k) => InputView {
                    coinbase: false,
                    height: None,
                    txid: Some(i.prev_out.txid.to_hex()),
                    vout: Some(i.prev_out.index),
                    pubkey: Some(hex::encode(k.pubkey)),
                },
            })
            .collect(),
        vout: tx
            .outputs
            .iter()
            .enumerate()
            .map(|(n, o)| OutputView {
                n: n as u32,
                value: o.value.0,
                address: o
                    .pubkey_hash
                    .to_address(&params.hrp)
                    .unwrap_or_else(|_| o.pubkey_hash.to_hex()),
            })
            .collect(),
        fee,
        blockhash: place.map(|(h, _)| h.to_hex()),
        height: place.map(|(_, h)| h.0),
        confirmations: place.map_or(0, |(_, h)| tip.0.saturating_sub(h.0) + 1),
    }
}

/// A block's view at verbosity 1 (txids) or 2 (transaction objects).
pub fn block_view(
    chain: &ChainState,
    hash: &Hash256,
    entry: &IndexEntry,
    block: &Block,
    verbose_txs: bool,
) -> BlockView {
    let header = header_view(chain, hash, entry);
    let place = (header.confirmations > 0).then_some((*hash, entry.height));
    let tx = block
        .transactions
        .iter()
        .map(|t| {
            if verbose_txs {
                serde_json::to_value(tx_view(chain.params(), t, place, chain.height(), None)).unwrap_or_default()
            } else {
                serde_json::Value::String(t.txid().to_hex())
            }
        })
        .collect();
    BlockView {
        header,
        size: block.size(),
        n_tx: block.transactions.len(),
        tx,
    }
}

/// Mempool figures (`getmempoolinfo`, REST `/api/v1/mempool` with the txids).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MempoolSummary {
    /// Transactions.
    pub size: usize,
    /// Bytes.
    pub bytes: usize,
    /// Sum of fees.
    pub total_fee: u64,
    /// Minimum relay fee rate, units/byte.
    pub minrelaytxfee: u64,
    /// Suggested fee rate, units/byte.
    pub feerate_estimate: u64,
    /// Byte limit of the pool.
    pub maxmempool: usize,
    /// Up to 100 txids by fee rate (REST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txids: Option<Vec<String>>,
}
