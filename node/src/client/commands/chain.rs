//! `lode chain`: what the node knows about the chain, its mempool and its peers.

use clap::Subcommand;
use serde_json::{json, Value};

use super::input::{self, BlockRef};
use super::output::{coins, coins_exact, plain, Fields, Table};
use super::{signed_units, ClientArgs, CommandError, Node, Report};

/// `lode chain [TARGET] COMMAND`.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// Node and output flags.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to show.
    #[command(subcommand)]
    pub command: ChainCommand,
}

/// The chain subcommands.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Tip, difficulty, mining and peer count.
    Info,
    /// A block, by height or hash.
    Block {
        /// Block height or 64-hex-digit hash.
        hash_or_height: String,
    },
    /// A transaction in the mempool or the chain.
    Tx {
        /// The transaction id (64 hex digits).
        txid: String,
    },
    /// Mempool size, fees and transactions.
    Mempool,
    /// Connected peers.
    Peers,
    /// Check the chain state's consistency (admin scope).
    Verify,
    /// Rebuild a stopped node's UTXO set and indexes from its stored blocks (works on
    /// --data-dir directly, not over RPC); with --from-peers, then download from peers
    /// the blocks the store lacks.
    Reindex {
        /// The node's network (devnet, regtest or a chain-spec .toml).
        #[arg(long, default_value = "devnet")]
        network: String,
        /// After the rebuild, download what is missing (every block after the first
        /// missing or unreadable one) from the --peer nodes, then exit.
        #[arg(long)]
        from_peers: bool,
        /// A peer to download from, as a multiaddr (repeatable; with --from-peers).
        #[arg(long = "peer", value_name = "MULTIADDR", requires = "from_peers")]
        peers: Vec<String>,
        /// With --from-peers: give up when no block arrived for this long (seconds).
        #[arg(long, value_name = "SECS", default_value_t = 60, requires = "from_peers")]
        idle_timeout: u64,
    },
}

/// Runs `lode chain`.
pub fn run(args: ChainArgs) -> Result<(), CommandError> {
    let command = args.command;
    super::run(&args.client, move |node| async move { execute(&node, command).await })
}

/// Runs one chain command against `node`.
pub async fn execute(node: &Node, command: ChainCommand) -> Result<Report, CommandError> {
    match command {
        ChainCommand::Info => info(node).await,
        ChainCommand::Block { hash_or_height } => {
            let hash = match input::block_ref(&hash_or_height)? {
                BlockRef::Hash(h) => h,
                BlockRef::Height(h) => plain(&node.call("getblockhash", json!([h])).await?),
            };
            let v = node.call("getblock", json!([hash, 1])).await?;
            Ok(Report::new(v.clone(), block_text(&v)))
        }
        ChainCommand::Tx { txid } => {
            let txid = input::hash("txid", &txid)?;
            let v = node.call("getrawtransaction", json!([txid, true])).await?;
            Ok(Report::new(v.clone(), tx_text(&v)))
        }
        ChainCommand::Mempool => {
            let info = node.call("getmempoolinfo", json!([])).await?;
            let txids = node.call("getrawmempool", json!([false])).await?;
            let text = mempool_text(&info, &txids);
            Ok(Report::new(json!({"info": info, "txids": txids}), text))
        }
        ChainCommand::Peers => {
            let v = node.call("getpeerinfo", json!([])).await?;
            Ok(Report::new(v.clone(), peers_text(&v)))
        }
        // The binary runs it on the data dir itself: a damaged store has no RPC to ask.
        ChainCommand::Reindex { .. } => Err(CommandError::BadInput {
            what: "command",
            input: "reindex".into(),
            reason: "reindex works on a stopped node's --data-dir, not over RPC".into(),
        }),
        ChainCommand::Verify => {
            let v = node.call("verifychain", json!([])).await?;
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            let mut f = Fields::new();
            f.add("verified", if ok { "ok" } else { "FAILED" })
                .add_json("height", &v, "height")
                .add_json("blocks", &v, "blocks")
                .add_json("transactions", &v, "transactions")
                .add_json("utxos", &v, "utxos");
            for key in ["error", "reason", "message"] {
                f.add_json(key, &v, key);
            }
            let mut report = Report::new(v.clone(), f.render());
            if !ok {
                let why = ["error", "reason", "message"]
                    .iter()
                    .find_map(|k| v.get(*k).map(plain))
                    .unwrap_or_else(|| "the node reports an inconsistent chain state".into());
                report.failure = Some(format!("chain verification failed: {why}"));
            }
            Ok(report)
        }
    }
}

async fn info(node: &Node) -> Result<Report, CommandError> {
    let chain = node.call("getblockchaininfo", json!([])).await?;
    let mining = node.call("getmininginfo", json!([])).await?;
    let peers = node.call("getpeerinfo", json!([])).await?;
    let peer_count = peers.as_array().map(Vec::len).unwrap_or(0);
    let mut f = Fields::new();
    f.add_json("network", &chain, "chain")
        .add_json("height", &chain, "blocks")
        .add_json("headers", &chain, "headers")
        .add_json("best block", &chain, "bestblockhash")
        .add_json("time", &chain, "time")
        .add_json("median time", &chain, "mediantime")
        .add_json("bits", &chain, "bits")
        .add_json("difficulty", &chain, "difficulty")
        .add_json("chain work", &chain, "chainwork")
        .add_json("syncing", &chain, "initialblockdownload")
        .add_json("genesis", &chain, "genesis")
        .add_json("size on disk", &chain, "size_on_disk");
    let generating = mining.get("generate").and_then(Value::as_bool).unwrap_or(false);
    let mining_line = if generating {
        format!(
            "on, {} threads, {} H/s",
            plain(mining.get("threads").unwrap_or(&Value::Null)),
            plain(mining.get("hashespersec").unwrap_or(&Value::Null))
        )
    } else {
        "off".to_string()
    };
    f.add("mining", mining_line)
        .add_json("blocks found", &mining, "blocks_found")
        .add_json("network hash/s", &mining, "networkhashps")
        .add("peers", peer_count.to_string());
    Ok(Report::new(
        json!({"blockchain": chain, "mining": mining, "peers": peer_count}),
        f.render(),
    ))
}

fn block_text(v: &Value) -> String {
    let mut f = Fields::new();
    for (key, name) in [
        ("hash", "hash"),
        ("height", "height"),
        ("confirmations", "confirmations"),
        ("time", "time"),
        ("median time", "mediantime"),
        ("previous", "previousblockhash"),
        ("next", "nextblockhash"),
        ("merkle root", "merkleroot"),
        ("version", "version"),
        ("bits", "bits"),
        ("difficulty", "difficulty"),
        ("nonce", "nonce"),
        ("chain work", "chainwork"),
        ("size", "size"),
        ("transactions", "nTx"),
    ] {
        f.add_json(key, v, name);
    }
    let mut text = f.render();
    if let Some(txs) = v.get("tx").and_then(Value::as_array) {
        text.push('\n');
        for tx in txs {
            text.push_str("\n  ");
            // Verbosity 1 lists txids; a full object (verbosity 2) has its own txid.
            text.push_str(&plain(tx.get("txid").unwrap_or(tx)));
        }
    }
    text
}

fn tx_text(v: &Value) -> String {
    let mut f = Fields::new();
    f.add_json("txid", v, "txid")
        .add_json("confirmations", v, "confirmations")
        .add_json("block", v, "blockhash")
        .add_json("block time", v, "blocktime")
        .add_json("size", v, "size")
        .add_json("version", v, "version")
        .add_json("locktime", v, "locktime");
    if let Some(fee) = signed_units(v.get("fee")) {
        f.add("fee", coins_exact(fee.unsigned_abs()));
    }
    let mut text = f.render();
    let mut inputs = Table::new(&["INPUT", "SPENDS"]);
    for (i, vin) in v.get("vin").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let spends = if vin.get("coinbase").is_some() {
            format!(
                "coinbase (height {})",
                plain(vin.get("lode_height").unwrap_or(&Value::Null))
            )
        } else {
            format!(
                "{}:{}",
                plain(vin.get("txid").unwrap_or(&Value::Null)),
                plain(vin.get("vout").unwrap_or(&Value::Null))
            )
        };
        inputs.row(vec![i.to_string(), spends]);
    }
    let mut outputs = Table::new(&["OUTPUT", "ADDRESS", ">VALUE", ">UNITS"]);
    for vout in v.get("vout").and_then(Value::as_array).into_iter().flatten() {
        let value = signed_units(vout.get("value")).map(i64::unsigned_abs);
        let address = vout.get("scriptPubKey").and_then(|s| s.get("address"));
        outputs.row(vec![
            plain(vout.get("n").unwrap_or(&Value::Null)),
            plain(address.unwrap_or(&Value::Null)),
            value.map(coins).unwrap_or_default(),
            value.map(|u| u.to_string()).unwrap_or_default(),
        ]);
    }
    for table in [inputs, outputs] {
        if !table.is_empty() {
            text.push_str("\n\n");
            text.push_str(&table.render());
        }
    }
    text
}

fn mempool_text(info: &Value, txids: &Value) -> String {
    let mut f = Fields::new();
    f.add_json("transactions", info, "size")
        .add_json("bytes", info, "bytes");
    if let Some(fee) = signed_units(info.get("total_fee")) {
        f.add("total fee", coins_exact(fee.unsigned_abs()));
    }
    // Core's rates are coins per 1000 bytes: units per byte is that ÷ 1000.
    let per_byte = |key: &str| signed_units(info.get(key)).map(|u| format!("{} units/byte", u / 1000));
    if let Some(r) = per_byte("minrelaytxfee") {
        f.add("min relay fee", r);
    }
    if let Some(r) = per_byte("lode_feerate_estimate") {
        f.add("fee estimate", r);
    }
    f.add_json("max size", info, "maxmempool");
    let mut text = f.render();
    let ids = txids.as_array().cloned().unwrap_or_default();
    if !ids.is_empty() {
        text.push('\n');
        for id in &ids {
            text.push_str("\n  ");
            text.push_str(&plain(id));
        }
    }
    text
}

fn peers_text(v: &Value) -> String {
    let peers = v.as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        return "no peers".into();
    }
    let mut t = Table::new(&["PEER ID", "ADDRESS", "DIRECTION"]);
    for p in &peers {
        let inbound = p.get("inbound").and_then(Value::as_bool).unwrap_or(false);
        t.row(vec![
            plain(p.get("id").unwrap_or(&Value::Null)),
            plain(p.get("addr").unwrap_or(&Value::Null)),
            if inbound { "inbound" } else { "outbound" }.into(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_text_lists_inputs_and_outputs() {
        let v = json!({"txid": "aa", "size": 120, "confirmations": 2, "fee": 0.00001,
            "vin": [{"txid": "bb", "vout": 1}, {"coinbase": "00", "lode_height": 7}],
            "vout": [{"n": 0, "value": 12.5, "scriptPubKey": {"address": "lreg1x"}}]});
        let text = tx_text(&v);
        assert!(text.contains("bb:1"), "{text}");
        assert!(
            text.contains("lreg1x") && text.contains("12.50000000  1250000000"),
            "{text}"
        );
        assert!(text.contains("0.00001000 coins (1000 units)"), "{text}");
        assert!(text.contains("coinbase (height 7)"), "{text}");
    }

    #[test]
    fn peers_and_mempool_render() {
        assert_eq!(peers_text(&json!([])), "no peers");
        let t = peers_text(&json!([{"id": "12D3", "addr": "/ip4/127.0.0.1/tcp/1", "inbound": true}]));
        assert!(t.contains("inbound"), "{t}");
        let m = mempool_text(&json!({"size": 1, "bytes": 200, "total_fee": 0}), &json!(["ab"]));
        assert!(m.contains("\n  ab"), "{m}");
    }
}
