//! Mining methods: `getmininginfo` (public), `setgenerate`, `generate` (regtest),
//! `getblocktemplate`, `submitblock` (scope `mine`).

use lode_chain::params::DifficultyAlgorithm;
use lode_chain::pow::ChainWork;
use lode_chain::{AcceptStatus, ChainState, ConsensusError, Hash256, Height, PubkeyHash};
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

/// Most transactions one `generateblock` call names (a block holds far fewer).
const MAX_GENERATEBLOCK_TXS: usize = 10_000;

/// Core's `generateblock "output" ["rawtx/txid",...] ( submit )`: one block paying
/// `output` with exactly the given transactions, in order (txids from the mempool, or raw
/// transactions); `{"hash"}`, plus `"hex"` when `submit` is false (then it is not stored).
pub(crate) async fn generateblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["output", "transactions", "submit"])?;
    fixed_difficulty_only(app, "generateblock")?;
    let output = p.str(0, "output")?;
    // Lode has no descriptors: an address is the only output Core's call takes that Lode has.
    let pay = PubkeyHash::from_address(output, &app.api.params().hrp)
        .map_err(|_| RpcError::new(-5, "Error: Invalid address or descriptor"))?;
    let items = match p.value(1, "transactions") {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(RpcError::invalid_params("param transactions must be an array")),
        None => return Err(RpcError::invalid_params("missing param transactions")),
    };
    if items.len() > MAX_GENERATEBLOCK_TXS {
        return Err(RpcError::new(
            -8,
            format!("param transactions: at most {MAX_GENERATEBLOCK_TXS} entries"),
        ));
    }
    let submit = p.opt_bool(2, "submit")?.unwrap_or(true);
    let params = app.api.params().clone();
    let mut wanted: Vec<Result<lode_chain::Transaction, Hash256>> = Vec::with_capacity(items.len());
    for item in &items {
        let Value::String(s) = item else {
            return Err(RpcError::invalid_params(
                "param transactions: each entry must be a string",
            ));
        };
        match Hash256::from_hex(s) {
            Ok(txid) if s.len() == 64 => wanted.push(Err(txid)),
            _ => {
                let tx = super::chain::decode_raw_tx(s, &params).map_err(|_| {
                    let shown: String = s.chars().take(80).collect();
                    RpcError::new(
                        -22,
                        format!("Transaction decode failed for {shown}. Make sure the tx has at least one input."),
                    )
                })?;
                wanted.push(Ok(tx));
            }
        }
    }
    // Txids are looked up in the mempool as it is now; the block is validated as a whole
    // by the chain task, so a transaction mined in between only makes the call fail.
    let txs = app
        .api
        .chain()
        .read(move |v| -> Result<Vec<lode_chain::Transaction>, RpcError> {
            let pool = v.mempool();
            wanted
                .into_iter()
                .map(|w| match w {
                    Ok(tx) => Ok(tx),
                    Err(txid) => pool
                        .and_then(|m| m.get(&txid))
                        .map(|e| (**e.tx()).clone())
                        .ok_or_else(|| RpcError::new(-5, format!("Transaction {txid} not in mempool."))),
                })
                .collect()
        })
        .await??;
    let block = app
        .api
        .chain()
        .generate_block(pay, txs, submit)
        .await?
        .map_err(|e| match e {
            GenerateError::Invalid(_) => RpcError::new(-25, e.to_string()),
            GenerateError::Refused(_) => RpcError::internal(format!("ProcessNewBlock, block not accepted: {e}")),
            other => RpcError::internal(other),
        })?;
    let mut out = json!({"hash": block.hash().to_hex()});
    if !submit {
        out["hex"] = json!(hex::encode(lode_chain::encoding::encode(&block)));
    }
    Ok(out)
}

fn fixed_difficulty_only(app: &App, method: &str) -> Result<(), RpcError> {
    if !matches!(app.api.params().difficulty, DifficultyAlgorithm::Fixed) {
        return Err(RpcError::misc(format!(
            "{method} is for fixed-difficulty networks like regtest; {} mines with setgenerate",
            app.api.params().name
        )));
    }
    Ok(())
}

async fn mine_blocks(app: &App, p: &Params, method: &str, address: Option<PubkeyHash>) -> Result<Value, RpcError> {
    fixed_difficulty_only(app, method)?;
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

/// What a BIP 22 `template_request` asks for.
enum TemplateMode {
    /// A template to mine on (the default).
    Template,
    /// BIP 23: judge this block as a template would be judged, without storing it.
    Proposal(String),
}

/// Core's `getblocktemplate ( template_request )`: BIP 22's template, or BIP 23's proposal
/// verdict with `{"mode": "proposal", "data": hex}`. `capabilities` and `rules` are read
/// (Lode has no soft-fork rules to require); Lode's payout address is `lode_address` in the
/// request, or a string in place of the request (Lode's older form).
pub(crate) async fn getblocktemplate(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["template_request", "address"])?;
    let (mode, address) = match p.value(0, "template_request") {
        None => (TemplateMode::Template, p.opt_str(1, "address")?),
        Some(Value::String(a)) => (TemplateMode::Template, Some(a.as_str())),
        Some(Value::Object(req)) => {
            for key in ["capabilities", "rules"] {
                match req.get(key) {
                    None | Some(Value::Array(_)) => {}
                    Some(_) => {
                        return Err(RpcError::invalid_params(format!(
                            "template_request.{key} must be an array"
                        )))
                    }
                }
            }
            let mode = match req.get("mode") {
                None | Some(Value::Null) => TemplateMode::Template,
                Some(Value::String(m)) if m == "template" => TemplateMode::Template,
                Some(Value::String(m)) if m == "proposal" => match req.get("data") {
                    Some(Value::String(d)) => TemplateMode::Proposal(d.clone()),
                    _ => return Err(RpcError::new(-22, "Missing data String key for proposal")),
                },
                Some(_) => return Err(RpcError::new(-8, "Invalid mode")),
            };
            let address = match req.get("lode_address") {
                None | Some(Value::Null) => p.opt_str(1, "address")?,
                Some(Value::String(a)) => Some(a.as_str()),
                Some(_) => {
                    return Err(RpcError::invalid_params(
                        "template_request.lode_address must be a string",
                    ))
                }
            };
            (mode, address)
        }
        Some(_) => return Err(RpcError::invalid_params("param template_request must be an object")),
    };
    match mode {
        TemplateMode::Proposal(hex) => propose(app, &hex).await,
        TemplateMode::Template => {
            let address = address
                .map(|a| {
                    PubkeyHash::from_address(a, &app.api.params().hrp)
                        .map_err(|e| RpcError::new(-5, format!("Error: Invalid address ({e})")))
                })
                .transpose()?;
            template(app, address).await
        }
    }
}

/// BIP 23's proposal: the block judged as a template is (every rule but proof of work),
/// not stored. Answers null when valid, else BIP 22's reason strings.
async fn propose(app: &App, hex: &str) -> Result<Value, RpcError> {
    let block = super::chain::decode_raw_block(hex, app.api.params())
        .map_err(|e| RpcError::new(-22, format!("Block decode failed: {}", e.message)))?;
    app.api
        .chain()
        .read(move |v| {
            let chain = v.chain();
            let hash = block.hash();
            if let Some(entry) = chain.entry(&hash) {
                return json!(if entry.status.is_invalid() {
                    "duplicate-invalid"
                } else {
                    "duplicate"
                });
            }
            if block.header.prev_hash != chain.tip_hash() {
                return json!("inconclusive-not-best-prevblk");
            }
            match chain.check_template(&block) {
                Ok(_) => Value::Null,
                Err(e) => json!(e.consensus_rule().map_or_else(|| e.to_string(), |r| r.to_string())),
            }
        })
        .await
        .map_err(Into::into)
}

async fn template(app: &App, address: Option<PubkeyHash>) -> Result<Value, RpcError> {
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
            let coinbase_value = block
                .transactions
                .first()
                .and_then(|c| c.output_total())
                .map_or(0, |a| a.0);
            // BIP 22's `depends`: 1-based positions of earlier template transactions spent.
            let positions: std::collections::HashMap<Hash256, usize> = block
                .transactions
                .iter()
                .skip(1)
                .enumerate()
                .map(|(i, tx)| (tx.txid(), i + 1))
                .collect();
            let txs: Vec<Value> = block
                .transactions
                .iter()
                .skip(1)
                .map(|tx| {
                    let txid = tx.txid();
                    let fee = pool.get(&txid).map_or(0, |e| e.fee().0);
                    let mut depends: Vec<usize> = tx
                        .inputs
                        .iter()
                        .filter_map(|i| positions.get(&i.prev_out.txid).copied())
                        .collect();
                    depends.sort_unstable();
                    depends.dedup();
                    let bytes = lode_chain::encoding::encode(tx);
                    json!({
                        "data": hex::encode(&bytes),
                        "txid": txid.to_hex(),
                        "hash": txid.to_hex(),
                        "depends": depends,
                        "fee": fee,
                        "lode_size": bytes.len(),
                    })
                })
                .collect();
            let target = lode_chain::pow::compact::target_from_bits(block.header.bits)
                .map(|t| format!("{t:064x}"))
                .unwrap_or_default();
            let coinbase = block
                .transactions
                .first()
                .map(lode_chain::encoding::encode)
                .unwrap_or_default();
            Ok(json!({
                "version": block.header.version,
                "rules": [],
                "vbavailable": {},
                "vbrequired": 0,
                "capabilities": ["proposal"],
                "previousblockhash": block.header.prev_hash.to_hex(),
                "transactions": txs,
                "coinbaseaux": {},
                "coinbasevalue": coinbase_value,
                "coinbasetxn": {"data": hex::encode(coinbase)},
                "target": target,
                "mintime": chain.tip_median_time_past().saturating_add(1),
                "mutable": ["time", "transactions", "prevblock"],
                "noncerange": "00000000ffffffff",
                "sizelimit": chain.params().max_block_size,
                "curtime": block.header.time,
                "bits": format!("{:08x}", block.header.bits),
                "height": height,
            }))
        })
        .await?
}

pub(crate) async fn submitblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    // `dummy` is Core's ignored second param.
    p.expect_at_most(&["hexdata", "dummy"])?;
    let block = super::chain::decode_block(app, p.str(0, "hexdata")?)?;
    let hash = block.hash();
    // Stored on a valid branch, it is announced by the chain task.
    let verdict = app.api.chain().submit_block(block, Origin::Local).await?;
    Ok(match verdict {
        BlockVerdict::Accepted(AcceptStatus::Connected) => Value::Null,
        BlockVerdict::Accepted(AcceptStatus::AlreadyKnown) => json!("duplicate"),
        BlockVerdict::Accepted(AcceptStatus::SideBranch | AcceptStatus::HeaderOnly | AcceptStatus::Orphan { .. }) => {
            json!("inconclusive")
        }
        // BIP 22: a block already known to be invalid is a duplicate of an invalid one.
        BlockVerdict::Rejected(ConsensusError::KnownInvalid(h) | ConsensusError::InvalidParent(h)) if h == hash => {
            json!("duplicate-invalid")
        }
        BlockVerdict::Accepted(AcceptStatus::Invalid { rule }) | BlockVerdict::Rejected(rule) => {
            json!(rule.to_string())
        }
        BlockVerdict::Failed(e) => return Err(RpcError::internal(e)),
    })
}
