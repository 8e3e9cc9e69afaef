//! Mining methods: `getmininginfo` (public), `setgenerate`, `generate` (regtest),
//! `getblocktemplate`, `submitblock` (scope `mine`).

use lode_chain::params::DifficultyAlgorithm;
use lode_chain::pow::ChainWork;
use lode_chain::{AcceptStatus, ChainState, Height, PubkeyHash};
use serde_json::{json, Value};

use crate::chain_task::{BlockVerdict, GenerateError, Origin};
use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};
use crate::rpc::views;
use crate::wallet::WalletActionError;

/// Most blocks one `generate` call mines.
const MAX_GENERATE: u64 = 1000;
/// Blocks over which the network hash rate is estimated.
const HASHPS_WINDOW: u32 = 30;

/// Estimated network hash rate: the work of the last blocks over the time they took.
fn network_hashps(chain: &ChainState) -> f64 {
    let tip = chain.height().0;
    let first = tip.saturating_sub(HASHPS_WINDOW);
    if tip == first {
        return 0.0;
    }
    let tip_hash = chain.tip_hash();
    let (Some(a), Some(b)) = (
        chain.ancestor(&tip_hash, Height(first)),
        chain.ancestor(&tip_hash, Height(tip)),
    ) else {
        return 0.0;
    };
    let mut work = 0.0;
    for h in first + 1..=tip {
        if let Some(hd) = chain.ancestor(&tip_hash, Height(h)) {
            work += work_f64(ChainWork::from_bits(hd.bits));
        }
    }
    let span = f64::from(b.time.saturating_sub(a.time).max(1));
    work / span
}

fn work_f64(w: ChainWork) -> f64 {
    w.to_be_bytes().iter().fold(0.0, |acc, b| acc * 256.0 + f64::from(*b))
}

pub(crate) async fn getmininginfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let record = app.api.mining().figures();
    app.api
        .chain()
        .read(move |v| {
            let chain = v.chain();
            let bits = chain.next_bits().unwrap_or(chain.tip_entry().header.bits);
            let (generate, threads, stats) = match v.miner() {
                Some(m) => (true, m.threads, Some(m.stats.snapshot())),
                None => (false, 0, None),
            };
            json!({
                "blocks": chain.height().0,
                "bits": format!("{bits:08x}"),
                "difficulty": views::difficulty(bits),
                "networkhashps": network_hashps(chain),
                "generate": generate,
                "threads": threads,
                "hashespersec": stats.as_ref().map_or(0.0, |s| s.hash_rate),
                "blocks_found": record.blocks_found,
                "stale_blocks": record.blocks_stale,
                "pooledtx": v.mempool().map_or(0, |m| m.len()),
                "chain": chain.params().name,
                "warnings": "",
            })
        })
        .await
        .map_err(Into::into)
}

pub(crate) async fn setgenerate(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["generate", "threads"])?;
    let generate = p
        .opt_bool(0, "generate")?
        .ok_or_else(|| RpcError::invalid_params("missing param generate"))?;
    let threads = match p.opt_u64(1, "threads")? {
        Some(0) | None => None,
        Some(n) if n > 256 => return Err(RpcError::new(-8, "param threads: at most 256")),
        Some(n) => Some(n as usize),
    };
    if generate {
        let current = app.api.chain().read(|v| v.miner().map(|m| m.threads)).await?;
        let threads = threads.or(current).unwrap_or(app.api.default_threads());
        app.api.chain().start_mining(threads).await?;
        Ok(json!({"generate": true, "threads": threads}))
    } else {
        app.api.chain().stop_mining().await?;
        Ok(json!({"generate": false, "threads": 0}))
    }
}

fn payout_error(e: WalletActionError) -> RpcError {
    match e {
        WalletActionError::NoWallet => RpcError::new(-18, "no wallet: give an address"),
        other => RpcError::new(-4, other.to_string()),
    }
}

fn parse_address(app: &App, p: &Params, i: usize) -> Result<Option<PubkeyHash>, RpcError> {
    p.opt_str(i, "address")?
        .map(|a| {
            PubkeyHash::from_address(a, &app.api.params().hrp)
                .map_err(|e| RpcError::new(-5, format!("Error: Invalid address ({e})")))
        })
        .transpose()
}

pub(crate) async fn generate(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["nblocks", "address"])?;
    let address = parse_address(app, p, 1)?;
    mine_blocks(app, p, "generate", address).await
}

/// Core's `generatetoaddress nblocks address (maxtries)`: regtest's instant blocks paying
/// `address`.
pub(crate) async fn generatetoaddress(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["nblocks", "address", "maxtries"])?;
    // maxtries bounds Core's nonce loop; Lode's fixed-difficulty blocks need no bound.
    p.opt_u64(2, "maxtries")?;
    let address = parse_address(app, p, 1)?.ok_or_else(|| RpcError::invalid_params("missing param address"))?;
    mine_blocks(app, p, "generatetoaddress", Some(address)).await
}

async fn mine_blocks(app: &App, p: &Params, method: &str, address: Option<PubkeyHash>) -> Result<Value, RpcError> {
    if !matches!(app.api.params().difficulty, DifficultyAlgorithm::Fixed) {
        return Err(RpcError::misc(format!(
            "{method} is for fixed-difficulty networks like regtest; {} mines with setgenerate",
            app.api.params().name
        )));
    }
    let n = p.u64(0, "nblocks")?;
    if n == 0 || n > MAX_GENERATE {
        return Err(RpcError::new(-8, format!("param nblocks: must be 1..={MAX_GENERATE}")));
    }
    // Each block is connected and announced by the chain task before the next is built.
    let hashes = app.api.chain().generate(n, address).await?.map_err(|e| match e {
        GenerateError::NoPayout(e) => payout_error(e),
        other => RpcError::internal(other),
    })?;
    Ok(json!(hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>()))
}

pub(crate) async fn getblocktemplate(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["address"])?;
    let address = parse_address(app, p, 0)?;
    app.api
        .chain()
        .read(move |v| -> Result<Value, RpcError> {
            let pay = match address {
                Some(a) => a,
                None => v.default_payout().map_err(payout_error)?,
            };
            let chain = v.chain();
            let pool = v.mempool().ok_or_else(|| RpcError::internal("no mempool"))?;
            let template =
                lode_miner::template::build_template(chain, pool, pay, chain.now(), 0).map_err(RpcError::internal)?;
            let block = &template.block;
            let height = chain.height().0.saturating_add(1);
            let coinbase_value = block.transactions.first().and_then(|c| c.output_total()).map_or(0, |a| a.0);
            let txs: Vec<Value> = block
                .transactions
                .iter()
                .skip(1)
                .map(|tx| {
                    let fee = pool.get(&tx.txid()).map_or(0, |e| e.fee().0);
                    let bytes = lode_chain::encoding::encode(tx);
                    json!({"txid": tx.txid().to_hex(), "hex": hex::encode(&bytes), "fee": fee, "size": bytes.len()})
                })
                .collect();
            let target = lode_chain::pow::compact::target_from_bits(block.header.bits)
                .map(|t| format!("{t:064x}"))
                .unwrap_or_default();
            Ok(json!({
                "previousblockhash": block.header.prev_hash.to_hex(),
                "height": height,
                "bits": format!("{:08x}", block.header.bits),
                "target": target,
                "curtime": block.header.time,
                "mintime": chain.tip_median_time_past().saturating_add(1),
                "coinbasevalue": coinbase_value,
                "coinbasetxn": hex::encode(block.transactions.first().map(lode_chain::encoding::encode).unwrap_or_default()),
                "transactions": txs,
            }))
        })
        .await?
}

pub(crate) async fn submitblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["hexdata"])?;
    let block = super::chain::decode_block(app, p.str(0, "hexdata")?)?;
    // Stored on a valid branch, it is announced by the chain task.
    let verdict = app.api.chain().submit_block(block, Origin::Local).await?;
    Ok(match verdict {
        BlockVerdict::Accepted(AcceptStatus::Connected) => Value::Null,
        BlockVerdict::Accepted(AcceptStatus::AlreadyKnown) => json!("duplicate"),
        BlockVerdict::Accepted(AcceptStatus::SideBranch | AcceptStatus::HeaderOnly | AcceptStatus::Orphan { .. }) => {
            json!("inconclusive")
        }
        BlockVerdict::Accepted(AcceptStatus::Invalid { rule }) | BlockVerdict::Rejected(rule) => {
            json!(rule.to_string())
        }
        BlockVerdict::Failed(e) => return Err(RpcError::internal(e)),
    })
}
