//! The HTTP API against real in-process regtest nodes on 127.0.0.1: every JSON-RPC method
//! and REST route, success and failure; auth; rate limits; hostile bodies; events; metrics.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{addr, wait_for, wait_peers};
use lode_chain::ChainParams;
use lode_node::rpc::RpcConfig;
use lode_node::{NodeConfig, NodeHandle};
use reqwest::StatusCode;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// A node with an RPC port on 127.0.0.1 (rate limit `rate`, 0 = off).
async fn node(dir: &Path, rate: u32, tweak: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let mut config = NodeConfig::local(ChainParams::regtest(), dir.to_path_buf());
    let mut rpc = RpcConfig::local("127.0.0.1:0".parse().expect("addr"));
    rpc.rate_limit = rate;
    config.rpc = Some(rpc);
    tweak(&mut config);
    lode_node::start(config).await.expect("node starts")
}

/// A raw client: every call returns the HTTP status and the JSON body.
#[derive(Clone)]
struct Rpc {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Rpc {
    fn of(node: &NodeHandle, dir: &Path) -> Rpc {
        let line = std::fs::read_to_string(dir.join(".cookie")).expect("cookie");
        // Core's cookie format; the token also works as a Bearer token.
        let token = line.trim().strip_prefix("__cookie__:").expect("__cookie__:TOKEN");
        Rpc {
            base: format!("http://{}", node.rpc_addr().expect("rpc runs")),
            token: Some(token.to_string()),
            http: reqwest::Client::new(),
        }
    }

    fn anon(&self) -> Rpc {
        Rpc {
            token: None,
            ..self.clone()
        }
    }

    fn with_token(&self, t: &str) -> Rpc {
        Rpc {
            token: Some(t.to_string()),
            ..self.clone()
        }
    }

    async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/rpc", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("http")
    }

    async fn raw(&self, method: &str, params: Value) -> (StatusCode, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self.post_raw(body.to_string()).await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A call that must succeed.
    async fn ok(&self, method: &str, params: Value) -> Value {
        let (status, v) = self.raw(method, params).await;
        assert_eq!(status, StatusCode::OK, "{method}: {v}");
        assert!(v["error"].is_null(), "{method}: {v}");
        v["result"].clone()
    }

    /// A call that must fail with `code`; returns the message.
    async fn err(&self, method: &str, params: Value, code: i64) -> String {
        let (_, v) = self.raw(method, params).await;
        assert_eq!(v["error"]["code"], json!(code), "{method}: {v}");
        v["error"]["message"].as_str().unwrap_or_default().to_string()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("http");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Base units as Core's decimal coins, written as Core writes them (`1.50000000`).
fn c(units: u64) -> Value {
    serde_json::from_str(&format!("{}.{:08}", units / 100_000_000, units % 100_000_000)).expect("number")
}

/// A negative amount as Core writes it.
fn neg_c(units: u64) -> Value {
    serde_json::from_str(&format!("-{}", c(units))).expect("number")
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_methods_and_rest_routes_answer_and_refuse_like_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    let hashes = rpc.ok("generate", json!([12])).await;
    assert_eq!(hashes.as_array().map(Vec::len), Some(12));
    let anon = rpc.anon();

    assert_eq!(anon.ok("getblockcount", json!([])).await, json!(12));
    let best = anon.ok("getbestblockhash", json!([])).await;
    assert_eq!(best, hashes[11]);
    assert_eq!(anon.ok("getblockhash", json!([12])).await, best);
    let info = anon.ok("getblockchaininfo", json!([])).await;
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 12);
    assert_eq!(info["bestblockhash"], best);
    assert_eq!(info["initialblockdownload"], false);

    // getblock at every verbosity, and the header.
    let b1 = anon.ok("getblock", json!([hashes[0]])).await;
    assert_eq!(b1["height"], 1);
    assert_eq!(b1["confirmations"], 12);
    assert_eq!(b1["nextblockhash"], hashes[1]);
    assert_eq!(b1["nTx"], 1);
    let coinbase_txid = b1["tx"][0].clone();
    let raw = anon.ok("getblock", json!([hashes[0], 0])).await;
    let bytes = hex::decode(s(&raw)).expect("hex");
    let block = lode_chain::Block::from_bytes(&bytes, 1 << 20).expect("decodes");
    assert_eq!(block.hash().to_hex(), s(&hashes[0]));
    let b2 = anon
        .ok("getblock", json!({"blockhash": hashes[0], "verbosity": 2}))
        .await;
    assert_eq!(b2["tx"][0]["txid"], coinbase_txid);
    assert_eq!(b2["tx"][0]["vin"][0]["lode_height"], 1);
    assert!(b2["tx"][0]["vin"][0]["coinbase"].is_string());
    assert_eq!(
        b1["versionHex"],
        format!("{:08x}", b1["version"].as_u64().expect("version"))
    );
    let hv = anon.ok("getblockheader", json!([hashes[0]])).await;
    assert_eq!(hv["merkleroot"], b1["merkleroot"]);
    assert!(hv.get("tx").is_none());
    let hh = anon.ok("getblockheader", json!([hashes[0], false])).await;
    assert_eq!(s(&hh).len(), 160);

    // Transactions.
    let tx = anon.ok("getrawtransaction", json!([coinbase_txid, true])).await;
    assert_eq!(tx["blockhash"], hashes[0]);
    assert_eq!(tx["confirmations"], 12);
    // Amounts on the JSON-RPC API are decimal coins (Core); REST keeps base units.
    let subsidy = ChainParams::regtest().subsidy(lode_chain::Height(1)).0;
    assert_eq!(tx["vout"][0]["value"], c(subsidy));
    assert!(tx["vout"][0]["value"].to_string().contains('.'));
    let txhex = anon.ok("getrawtransaction", json!([coinbase_txid])).await;
    assert_eq!(txhex, tx["hex"]);

    // Mempool, mining, network.
    assert_eq!(anon.ok("getrawmempool", json!([])).await, json!([]));
    let mi = anon.ok("getmempoolinfo", json!([])).await;
    assert_eq!(mi["size"], 0);
    let fee = anon.ok("estimatefee", json!([])).await;
    assert!(fee["feerate"].as_u64() >= Some(ChainParams::regtest().min_relay_fee_rate));
    // Core's estimatesmartfee: coins per 1000 bytes (relay floor × 1000 ÷ 1e8 at least).
    let smart = anon.ok("estimatesmartfee", json!([6])).await;
    let floor = ChainParams::regtest().min_relay_fee_rate as f64 * 1000.0 / 1e8;
    assert!(smart["feerate"].as_f64() >= Some(floor), "{smart}");
    assert_eq!(smart["blocks"], 6);
    anon.err("estimatesmartfee", json!([0]), -8).await;
    // Core's difficulty: relative to 0x1d00ffff (regtest's easiest target ≈ 4.66e-10).
    let d = info["difficulty"].as_f64().expect("difficulty");
    assert!((4.0e-10..5.0e-10).contains(&d), "{d}");
    assert!(anon.ok("uptime", json!([])).await.is_u64());
    assert!(s(&anon.ok("help", json!([])).await).contains("getmempoolentry"));
    anon.err("getmempoolentry", json!([format!("{:064x}", 5)]), -5).await;
    let mining = anon.ok("getmininginfo", json!([])).await;
    assert_eq!(mining["blocks"], 12);
    assert_eq!(mining["generate"], false);
    let net = anon.ok("getnetworkinfo", json!([])).await;
    assert_eq!(net["lode_peerid"], json!(a.peer_id().to_string()));
    assert_eq!(net["connections"], 0);

    // Failures: each names what was wrong.
    assert!(anon.err("getblockhash", json!([99]), -8).await.contains("99"));
    assert!(anon.err("getblockhash", json!(["x"]), -32602).await.contains("height"));
    assert!(anon
        .err("getblockhash", json!([]), -32602)
        .await
        .contains("missing param height"));
    assert!(anon.err("getblockcount", json!([1]), -32602).await.contains("too many"));
    assert!(anon.err("getblock", json!(["zz"]), -8).await.contains("blockhash"));
    anon.err("getblock", json!([format!("{:064x}", 5)]), -5).await;
    anon.err("getblock", json!([hashes[0], 7]), -8).await;
    anon.err("getrawtransaction", json!([format!("{:064x}", 5)]), -5).await;
    anon.err("sendrawtransaction", json!(["zz"]), -22).await;
    anon.err("sendrawtransaction", json!(["00"]), -22).await;
    anon.err("sendrawtransaction", json!([txhex]), -27).await; // already mined
    anon.err("nosuchmethod", json!([]), -32601).await;

    // REST.
    let (st, status) = anon.get("/api/v1/status").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(status["height"], 12);
    assert_eq!(status["tip"], best);
    let (_, tip) = anon.get("/api/v1/tip").await;
    assert_eq!(tip["hash"], best);
    let (_, page) = anon.get("/api/v1/blocks?limit=5").await;
    assert_eq!(page["blocks"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["blocks"][0]["height"], 12);
    assert_eq!(page["next"], 7);
    let (_, last) = anon.get("/api/v1/blocks?from=2&limit=5").await;
    assert_eq!(last["blocks"].as_array().map(Vec::len), Some(3));
    assert_eq!(last["next"], Value::Null);
    let (_, by_height) = anon.get("/api/v1/block/1").await;
    assert_eq!(by_height["hash"], hashes[0]);
    let (_, by_hash) = anon.get(&format!("/api/v1/block/{}", s(&hashes[0]))).await;
    assert_eq!(by_hash["height"], 1);
    let (_, rtx) = anon.get(&format!("/api/v1/tx/{}", s(&coinbase_txid))).await;
    assert_eq!(rtx["txid"], coinbase_txid);
    let (_, mp) = anon.get("/api/v1/mempool").await;
    assert_eq!(mp["size"], 0);
    let (_, peers) = anon.get("/api/v1/peers").await;
    assert_eq!(peers, json!([]));
    let miner_addr = s(&tx["vout"][0]["scriptPubKey"]["address"]);
    let (st, ad) = anon.get(&format!("/api/v1/address/{miner_addr}")).await;
    assert_eq!(st, StatusCode::OK, "{ad}");
    // One `generate` call pays one fresh address: all twelve rewards.
    assert_eq!(ad["balance"], json!(12 * subsidy));
    assert_eq!(ad["history"]["total"], 12);
    assert_eq!(ad["utxo_count"], 12);
    let (_, ad2) = anon.get(&format!("/api/v1/address/{miner_addr}?page=1&limit=5")).await;
    assert_eq!(ad2["history"]["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(ad2["history"]["items"][0]["height"], 7);
    for (path, want) in [
        ("/api/v1/block/99", StatusCode::NOT_FOUND),
        ("/api/v1/block/nothex", StatusCode::BAD_REQUEST),
        ("/api/v1/blocks?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/blocks?limit=abc", StatusCode::BAD_REQUEST),
        ("/api/v1/blocks?from=99", StatusCode::BAD_REQUEST),
        ("/api/v1/tx/00", StatusCode::BAD_REQUEST),
        ("/api/v1/address/ldev1qqqq", StatusCode::BAD_REQUEST),
        ("/api/v1/nothing", StatusCode::NOT_FOUND),
    ] {
        let (st, body) = anon.get(path).await;
        assert_eq!(st, want, "{path}: {body}");
    }
    let (_, tx404) = anon.get(&format!("/api/v1/tx/{:064x}", 9)).await;
    assert!(tx404["error"].is_string());
    let (_, doc) = anon.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/block/{id}"].is_object());
    let (st, health) = anon.get("/health").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(health["ready"], true);

    // sendrawtransaction of a transaction built outside the node: accepted, then a
    // conflicting one is refused with the mempool's reason, and unknown inputs are -25.
    use lode_chain::build::{key_hash, pay, seeded_key, spend};
    let key = seeded_key(77);
    let params = ChainParams::regtest();
    let to_key = key_hash(&key).to_address(&params.hrp).expect("address");
    let mined = rpc.ok("generate", json!([11, to_key])).await;
    let cb = rpc.ok("getblock", json!([mined[0]])).await["tx"][0].clone();
    let outpoint = lode_chain::OutPoint {
        txid: lode_chain::Hash256::from_hex(&s(&cb)).expect("txid"),
        index: 0,
    };
    let genesis = params.genesis_hash();
    let value = params.subsidy(lode_chain::Height(13)).0;
    let raw = |fee: u64, to: u8| {
        let out = pay(lode_chain::PubkeyHash([to; 20]), lode_chain::Amount(value - fee));
        hex::encode(lode_chain::encoding::encode(&spend(
            &[outpoint],
            vec![out],
            &key,
            &genesis,
        )))
    };
    let txid = anon.ok("sendrawtransaction", json!([raw(10_000, 1)])).await;
    assert_eq!(anon.ok("getrawmempool", json!([])).await, json!([txid]));
    let reason = anon.err("sendrawtransaction", json!([raw(10_001, 2)]), -26).await;
    assert!(!reason.is_empty());
    let unknown = lode_chain::OutPoint {
        txid: lode_chain::Hash256([3; 32]),
        index: 0,
    };
    let orphan = spend(
        &[unknown],
        vec![pay(lode_chain::PubkeyHash([1; 20]), lode_chain::Amount(1000))],
        &key,
        &genesis,
    );
    anon.err(
        "sendrawtransaction",
        json!([hex::encode(lode_chain::encoding::encode(&orphan))]),
        -25,
    )
    .await;
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_methods_pay_another_node_and_track_the_payment() {
    common::init_logs();
    let (da, db) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = node(da.path(), 0, |_| {}).await;
    let b = node(db.path(), 0, |c| c.network.peers = vec![addr(&a)]).await;
    wait_peers(&a, 1, T).await;
    let (ra, rb) = (Rpc::of(&a, da.path()), Rpc::of(&b, db.path()));
    ra.ok("generate", json!([11])).await;
    let subsidy = ChainParams::regtest().subsidy(lode_chain::Height(1)).0;
    let bal = ra.ok("getbalances", json!([])).await;
    // Coinbase maturity 10: the next block (12) may spend the rewards of blocks 1 and 2.
    // Amounts are Core's decimal coins.
    assert_eq!(bal["mine"]["trusted"], c(2 * subsidy));
    assert_eq!(bal["lode_immature_coins"].as_array().map(Vec::len), Some(9));
    assert_eq!(bal["lode_immature_coins"][0]["height"], json!(13));
    assert_eq!(ra.ok("getbalance", json!([])).await, c(2 * subsidy));
    assert_eq!(ra.ok("getbalance", json!(["*", 1])).await, c(2 * subsidy));

    let to = rb.ok("getnewaddress", json!([])).await;
    let amount = 1_250_000_000u64;
    // Core's sendtoaddress answers the txid; verbose adds the fee reason (and Lode's fee).
    let txid = s(&ra.ok("sendtoaddress", json!([to, c(amount)])).await);
    assert_eq!(txid.len(), 64);
    let entry = ra.ok("getmempoolentry", json!([txid])).await;
    let fee = (entry["fees"]["base"].as_f64().expect("fee") * 1e8).round() as u64;
    let size = entry["vsize"].as_u64().expect("size");
    let rate = ra.ok("estimatefee", json!([])).await["feerate"].as_u64().expect("rate");
    assert_eq!(fee, size * rate, "fee = size × rate");
    // Gossip carries it to B's mempool.
    wait_for("tx in B's mempool", T, || {
        let rb = rb.clone();
        let txid = txid.clone();
        async move {
            rb.ok("getrawmempool", json!([]))
                .await
                .as_array()
                .is_some_and(|a| a.contains(&json!(txid)))
        }
    })
    .await;
    let verbose = rb.ok("getrawmempool", json!([true])).await;
    assert_eq!(verbose[&txid]["fees"]["base"], c(fee));
    assert_eq!(verbose[&txid]["bip125-replaceable"], true);
    let mtx = rb.ok("getrawtransaction", json!([txid, true])).await;
    assert!(mtx.get("confirmations").is_none(), "unconfirmed: {mtx}");
    assert_eq!(mtx["fee"], c(fee));
    // The same transaction again is idempotent; its coins spent otherwise are refused.
    assert_eq!(rb.ok("sendrawtransaction", json!([mtx["hex"]])).await, json!(txid));
    // One reward is reserved by the pending payment; its change is pending.
    let pending = ra.ok("getbalances", json!([])).await;
    assert_eq!(pending["mine"]["lode_reserved"], c(subsidy));
    assert_eq!(pending["mine"]["trusted"], c(subsidy));
    assert_eq!(pending["mine"]["untrusted_pending"], c(subsidy - amount - fee));
    // The wallet may spend its own pending change (trusted change), but not more than the
    // confirmed coin and that change together.
    let all = subsidy + (subsidy - amount - fee);
    let e = ra.err("sendtoaddress", json!([to, c(all + 1)]), -6).await;
    assert!(e.contains("insufficient"), "{e}");

    ra.ok("generate", json!([1])).await;
    wait_for("B sees the block", T, || async { b.tip().hash == a.tip().hash }).await;
    assert_eq!(rb.ok("getbalance", json!([])).await, c(amount));
    let utxos = rb.ok("listunspent", json!([])).await;
    assert_eq!(utxos[0]["txid"], json!(txid));
    assert_eq!(utxos[0]["amount"], c(amount));
    assert_eq!(utxos[0]["spendable"], true);
    let hist = ra.ok("listtransactions", json!([])).await;
    let send = hist
        .as_array()
        .and_then(|h| h.iter().find(|e| e["txid"] == json!(txid)))
        .cloned()
        .expect("send in history");
    assert_eq!(send["category"], "send");
    // Core: a send's amount and fee are negative, apart.
    assert_eq!(send["amount"], neg_c(amount));
    assert_eq!(send["fee"], neg_c(fee));
    assert_eq!(send["confirmations"], 1);
    assert_eq!(send["blockheight"], 12);
    let gt = rb.ok("gettransaction", json!([txid])).await;
    assert_eq!(gt["category"], "receive");
    assert_eq!(gt["amount"], c(amount));
    assert_eq!(gt["details"][0]["amount"], c(amount));
    assert_eq!(gt["hex"], mtx["hex"]);
    let info = rb.ok("getaddressinfo", json!([to])).await;
    assert_eq!(info["ismine"], true);
    assert_eq!(ra.ok("getaddressinfo", json!([to])).await["ismine"], false);
    // The REST address view agrees with the wallet, in base units (esplora's way).
    let (_, ad) = rb.anon().get(&format!("/api/v1/address/{}", s(&to))).await;
    assert_eq!(ad["balance"], json!(amount));
    // A mined transaction cannot be sent again.
    rb.err("sendrawtransaction", json!([mtx["hex"]]), -27).await;

    // Wallet refusals.
    rb.err("sendtoaddress", json!(["lreg1nothing", 5]), -5).await;
    rb.err("sendtoaddress", json!([to, 0]), -8).await;
    rb.err("sendtoaddress", json!([to, 0.00000001]), -8).await; // dust
    rb.err("sendtoaddress", json!([to, -5]), -3).await;
    rb.err("sendtoaddress", json!([to, 0.123456789]), -3).await;
    rb.err("walletpassphrase", json!(["pw", 10]), -15).await;
    rb.err("walletpassphrase", json!(["pw", 0]), -8).await;
    let m = rb.ok("dumpmnemonic", json!([])).await;
    let words = s(&m["mnemonic"]).split_whitespace().count();
    assert!(words == 12 || words == 24, "{m}");

    // Encrypted, the wallet refuses to sign until unlocked, and locks again on request.
    let back = ra.ok("getnewaddress", json!([])).await;
    rb.err("encryptwallet", json!([""]), -8).await;
    rb.ok("encryptwallet", json!(["correct horse"])).await;
    rb.err("encryptwallet", json!(["again"]), -15).await;
    assert!(rb
        .err("sendtoaddress", json!([back, 1.0]), -13)
        .await
        .contains("locked"));
    rb.err("dumpmnemonic", json!([]), -13).await;
    rb.err("walletpassphrase", json!(["wrong horse", 60]), -14).await;
    rb.ok("walletpassphrase", json!(["correct horse", 60])).await;
    assert_eq!(
        s(&rb.ok("dumpmnemonic", json!([])).await["mnemonic"]),
        s(&m["mnemonic"])
    );
    let verbose = rb
        .ok(
            "sendtoaddress",
            json!({"address": back, "amount": 1.0, "verbose": true}),
        )
        .await;
    assert!(
        verbose["txid"].is_string() && verbose["fee_reason"].is_string(),
        "{verbose}"
    );
    assert_eq!(rb.ok("walletlock", json!([])).await, Value::Null);
    rb.err("sendtoaddress", json!([back, 1.0]), -13).await;
    let wi = rb.ok("getwalletinfo", json!([])).await;
    assert_eq!(wi["lode_encrypted"], true);
    assert_eq!(wi["walletname"], "lode");
    assert!(wi["lode_addresses"].as_array().is_some_and(|a| a.contains(&to)));
    b.shutdown().await.expect("shutdown");
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mining_and_admin_methods_act_on_the_node() {
    let (da, dc) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = node(da.path(), 0, |_| {}).await;
    let c = node(dc.path(), 0, |_| {}).await;
    let (ra, rc) = (Rpc::of(&a, da.path()), Rpc::of(&c, dc.path()));
    let hashes = ra.ok("generate", json!([3])).await;

    // submitblock: A's blocks in order to C (not connected to A).
    for h in hashes.as_array().expect("array") {
        let hex = ra.ok("getblock", json!([h, 0])).await;
        assert_eq!(rc.ok("submitblock", json!([hex])).await, Value::Null);
    }
    let hex = ra.ok("getblock", json!([hashes[2], 0])).await;
    assert_eq!(rc.ok("submitblock", json!([hex])).await, json!("duplicate"));
    let mut bytes = hex::decode(s(&hex)).expect("hex");
    let mut block = lode_chain::Block::from_bytes(&bytes, 1 << 20).expect("block");
    block.header.merkle_root = lode_chain::Hash256([9; 32]);
    assert!(lode_chain::build::grind(
        &mut block.header,
        &ChainParams::regtest().pow_limit()
    ));
    bytes = block.to_bytes();
    let verdict = rc.ok("submitblock", json!([hex::encode(&bytes)])).await;
    assert!(verdict.as_str().is_some_and(|v| v.contains("merkle")), "{verdict}");
    rc.err("submitblock", json!(["abcd"]), -22).await;

    // getblocktemplate builds on the tip.
    let t = ra.ok("getblocktemplate", json!([])).await;
    assert_eq!(t["previousblockhash"], hashes[2]);
    assert_eq!(t["height"], 4);
    assert_eq!(
        t["coinbasevalue"],
        json!(ChainParams::regtest().subsidy(lode_chain::Height(4)).0)
    );

    // setgenerate starts and stops the embedded miner.
    let on = ra.ok("setgenerate", json!([true, 1])).await;
    assert_eq!(on["threads"], 1);
    wait_for("the miner finds blocks", T, || async { a.tip().height.0 >= 6 }).await;
    assert_eq!(ra.ok("getmininginfo", json!([])).await["generate"], true);
    ra.ok("setgenerate", json!([false])).await;
    assert_eq!(ra.ok("getmininginfo", json!([])).await["generate"], false);
    let h = a.tip().height;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.tip().height, h, "mining stopped");
    ra.err("setgenerate", json!([]), -32602).await;
    ra.err("generate", json!([0]), -8).await;
    ra.err("generate", json!([1, "lreg1bad"]), -5).await;
    // Core's generatetoaddress: the blocks pay the address given.
    let payee = ra.ok("getnewaddress", json!([])).await;
    let before = ra.ok("getblockcount", json!([])).await.as_u64().expect("count");
    let got = ra.ok("generatetoaddress", json!([2, payee, 1000])).await;
    assert_eq!(got.as_array().map(Vec::len), Some(2));
    assert_eq!(ra.ok("getblockcount", json!([])).await, json!(before + 2));
    let block = ra.ok("getblock", json!([got[0], 2])).await;
    assert_eq!(block["tx"][0]["vout"][0]["scriptPubKey"]["address"], payee);
    ra.err("generatetoaddress", json!([1]), -32602).await;
    ra.err("generatetoaddress", json!([1, "lreg1bad"]), -5).await;

    // addnode / getpeerinfo / disconnectnode / setban / listbanned.
    let a_addr = addr(&a).to_string();
    rc.ok("addnode", json!([a_addr, "add"])).await;
    wait_peers(&c, 1, T).await;
    let peers = rc.ok("getpeerinfo", json!([])).await;
    assert_eq!(peers[0]["id"], json!(a.peer_id().to_string()));
    assert_eq!(peers[0]["inbound"], false);
    wait_for("C syncs A", T, || async { c.tip().hash == a.tip().hash }).await;
    rc.err("addnode", json!(["nonsense", "add"]), -8).await;
    rc.err("addnode", json!([a_addr, "sideways"]), -8).await;
    rc.ok("addnode", json!([a_addr, "remove"])).await;
    rc.err("addnode", json!([a_addr, "remove"]), -23).await;
    let pid = a.peer_id().to_string();
    rc.ok("setban", json!([pid, "add", 600])).await;
    let banned = rc.ok("listbanned", json!([])).await;
    assert_eq!(banned[0]["peer_id"], json!(pid));
    wait_for("A disconnected", T, || async {
        c.peers().await.map(|p| p.is_empty()).unwrap_or(false)
    })
    .await;
    rc.ok("setban", json!([pid, "remove"])).await;
    rc.err("setban", json!([pid, "remove"]), -30).await;
    rc.err("setban", json!(["notapeer", "add"]), -8).await;
    rc.ok("addnode", json!([a_addr, "onetry"])).await;
    wait_peers(&c, 1, T).await;
    rc.ok("disconnectnode", json!([pid])).await;
    let v = rc.ok("verifychain", json!([])).await;
    assert_eq!(v["ok"], true, "{v}");

    // generate is for fixed-difficulty networks.
    let dd = tempfile::tempdir().expect("tempdir");
    let d = node(dd.path(), 0, |cfg| cfg.params = ChainParams::devnet()).await;
    let rd = Rpc::of(&d, dd.path());
    assert!(rd.err("generate", json!([1]), -1).await.contains("regtest"));

    // stop asks the node's owner to shut down.
    assert_eq!(rc.ok("stop", json!([])).await, json!("Lode node stopping"));
    tokio::time::timeout(T, c.stop_requested())
        .await
        .expect("stop requested");
    c.shutdown().await.expect("shutdown");
    d.shutdown().await.expect("shutdown");
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_reconsider_generateblock_and_block_proposals_follow_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    let hashes = rpc.ok("generate", json!([12])).await;
    let h = |i: usize| s(&hashes[i]);

    // invalidateblock: the chain rewinds to the parent (no other branch); its descendants go too.
    assert_eq!(rpc.ok("invalidateblock", json!([h(10)])).await, Value::Null);
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, hashes[9]);
    assert_eq!(rpc.ok("getblockcount", json!([])).await, 10);
    assert_eq!(rpc.ok("getblockheader", json!([h(11)])).await["confirmations"], -1);
    let invalid_hex = rpc.ok("getblock", json!([h(10), 0])).await;
    assert_eq!(
        rpc.ok("submitblock", json!([invalid_hex, "ignored"])).await,
        json!("duplicate-invalid")
    );
    rpc.err("getrawmempool", json!([false, true]), -8).await;
    // A new block goes on the parent; the invalidated branch (2 blocks) still has more work
    // than it, and wins again once reconsidered.
    let side = rpc.ok("generate", json!([1])).await;
    assert_ne!(side[0], hashes[10]);
    assert_eq!(rpc.ok("getblockcount", json!([])).await, 11);
    assert_eq!(rpc.ok("reconsiderblock", json!([h(10)])).await, Value::Null);
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, hashes[11]);
    // Invalidating the tip's parent moves to the best other branch: the side block.
    rpc.ok("invalidateblock", json!([h(10)])).await;
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, side[0]);
    rpc.ok("reconsiderblock", json!([h(11)])).await;
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, hashes[11]);
    // Core's errors; the operator's methods need the admin scope.
    rpc.err("invalidateblock", json!([format!("{:064x}", 7)]), -5).await;
    rpc.err("reconsiderblock", json!([format!("{:064x}", 7)]), -5).await;
    let genesis = rpc.ok("getblockhash", json!([0])).await;
    rpc.err("invalidateblock", json!([genesis]), -8).await;
    rpc.err("invalidateblock", json!(["xyz"]), -8).await;
    let (status, _) = rpc.anon().raw("invalidateblock", json!([h(11)])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, hashes[11]);

    // generateblock: exactly the transactions named, paying the output.
    let payee = rpc.ok("getnewaddress", json!([])).await;
    let empty = rpc.ok("generateblock", json!([payee, []])).await;
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, empty["hash"]);
    assert!(empty.get("hex").is_none(), "hex only when not submitted: {empty}");
    let block = rpc.ok("getblock", json!([empty["hash"], 2])).await;
    assert_eq!(block["tx"].as_array().map(Vec::len), Some(1));
    assert_eq!(block["tx"][0]["vout"][0]["scriptPubKey"]["address"], payee);

    let txid = rpc.ok("sendtoaddress", json!([payee, c(100_000_000)])).await;
    let raw = rpc.ok("getrawtransaction", json!([txid])).await;
    // Not submitted: the hex comes back, nothing is stored, and it is a valid proposal.
    let tip = rpc.ok("getbestblockhash", json!([])).await;
    let unsent = rpc
        .ok(
            "generateblock",
            json!({"output": payee, "transactions": [raw], "submit": false}),
        )
        .await;
    assert_eq!(rpc.ok("getbestblockhash", json!([])).await, tip);
    rpc.err("getblock", json!([unsent["hash"]]), -5).await;
    let proposal = json!([{"mode": "proposal", "data": unsent["hex"]}]);
    assert_eq!(rpc.ok("getblocktemplate", proposal.clone()).await, Value::Null);
    // A tampered proposal is judged without proof of work: the broken rule comes back.
    let mut bad = lode_chain::Block::from_bytes(&hex::decode(s(&unsent["hex"])).expect("hex"), 1 << 21).expect("block");
    bad.header.merkle_root = lode_chain::Hash256([3; 32]);
    let verdict = rpc
        .ok(
            "getblocktemplate",
            json!([{"mode": "proposal", "data": hex::encode(bad.to_bytes())}]),
        )
        .await;
    assert!(verdict.as_str().is_some_and(|v| v.contains("merkle")), "{verdict}");
    // Submitted with the mempool's txid: mined, and the mempool is empty again.
    let mined = rpc.ok("generateblock", json!([payee, [txid]])).await;
    let block = rpc.ok("getblock", json!([mined["hash"], 1])).await;
    assert_eq!(block["tx"][1], txid);
    assert_eq!(rpc.ok("getrawmempool", json!([])).await, json!([]));
    // The earlier proposal now builds on a block that is not the tip; the mined one is known.
    assert_eq!(
        rpc.ok("getblocktemplate", proposal).await,
        json!("inconclusive-not-best-prevblk")
    );
    let mined_hex = rpc.ok("getblock", json!([mined["hash"], 0])).await;
    assert_eq!(
        rpc.ok("getblocktemplate", json!([{"mode": "proposal", "data": mined_hex}]))
            .await,
        json!("duplicate")
    );
    // Core's errors: a txid not in the mempool, undecodable hex, a bad output, and a
    // transaction that cannot go into the next block (its inputs are spent).
    rpc.err("generateblock", json!([payee, [format!("{:064x}", 9)]]), -5)
        .await;
    rpc.err("generateblock", json!([payee, ["zz"]]), -22).await;
    rpc.err("generateblock", json!(["lreg1bad", []]), -5).await;
    let e = rpc.err("generateblock", json!([payee, [raw]]), -25).await;
    assert!(e.contains("TestBlockValidity failed"), "{e}");
    rpc.err("generateblock", json!([payee]), -32602).await;

    // BIP 22's template_request: capabilities and rules read, modes checked.
    let t = rpc
        .ok(
            "getblocktemplate",
            json!([{"capabilities": ["coinbasetxn", "proposal"], "rules": []}]),
        )
        .await;
    assert_eq!(t["previousblockhash"], mined["hash"]);
    assert_eq!(t["capabilities"], json!(["proposal"]));
    assert_eq!(t["noncerange"], "00000000ffffffff");
    assert!(t["coinbasetxn"]["data"].is_string(), "{t}");
    rpc.err("getblocktemplate", json!([{"mode": "longpoll"}]), -8).await;
    rpc.err("getblocktemplate", json!([{"mode": "proposal"}]), -22).await;
    rpc.err("getblocktemplate", json!([{"mode": "proposal", "data": "zz"}]), -22)
        .await;
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_needs_the_right_token_and_scope_and_the_cookie_rotates() {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = |k: &str| hex::encode(sha2::Sha256::digest(k.as_bytes()));
    let keys = vec![
        lode_node::rpc::auth::ApiKey::parse(&format!("reader:read:{}", key("reader-key"))).expect("key"),
        lode_node::rpc::auth::ApiKey::parse(&format!("payer:wallet:{}", key("payer-key"))).expect("key"),
    ];
    let a = node(dir.path(), 0, |c| {
        if let Some(r) = c.rpc.as_mut() {
            r.api_keys = keys;
        }
    })
    .await;
    let rpc = Rpc::of(&a, dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".cookie"))
            .expect("cookie")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No token: public works, private is 401 with a JSON-RPC error.
    let (st, v) = rpc.anon().raw("getnewaddress", json!([])).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], -32001);
    assert_eq!(rpc.anon().raw("getblockcount", json!([])).await.0, StatusCode::OK);
    // A wrong token is refused whatever it asks for.
    let wrong = rpc.with_token("not-the-token");
    let (st, v) = wrong.raw("getblockcount", json!([])).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], -32001);
    assert_eq!(wrong.get("/api/v1/tip").await.0, StatusCode::UNAUTHORIZED);
    // Keys: the right scope passes, another is 403.
    let reader = rpc.with_token("reader-key");
    assert_eq!(reader.raw("getblockcount", json!([])).await.0, StatusCode::OK);
    let (st, v) = reader.raw("getnewaddress", json!([])).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], -32002);
    let payer = rpc.with_token("payer-key");
    assert!(payer.ok("getnewaddress", json!([])).await.is_string());
    assert_eq!(payer.raw("stop", json!([])).await.0, StatusCode::FORBIDDEN);
    assert_eq!(payer.raw("generate", json!([1])).await.0, StatusCode::FORBIDDEN);
    // The cookie rotates on restart: the old token stops working.
    let old = rpc.token.clone().expect("token");
    a.shutdown().await.expect("shutdown");
    let a = node(dir.path(), 0, |_| {}).await;
    let fresh = Rpc::of(&a, dir.path());
    assert_ne!(fresh.token.as_deref(), Some(old.as_str()));
    assert_eq!(
        fresh.with_token(&old).raw("getbalance", json!([])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(fresh.ok("getbalance", json!([])).await.is_f64());
    let url = std::fs::read_to_string(dir.path().join("rpc_url")).expect("rpc_url");
    assert_eq!(url.trim(), fresh.base);
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_headers_recover_and_are_higher_with_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 5, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    let anon = rpc.anon();
    let header =
        |h: &reqwest::header::HeaderMap, name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // One route: its own bucket (half the address's: rate 2, burst 4) runs out first, and
    // the headers show both quotas.
    let mut route_limited = None;
    let mut passed = 0;
    for _ in 0..20 {
        let resp = anon
            .http
            .get(format!("{}/api/v1/tip", anon.base))
            .send()
            .await
            .expect("http");
        let h = resp.headers().clone();
        assert_eq!(header(&h, "x-ratelimit-limit").as_deref(), Some("10"));
        assert_eq!(header(&h, "x-ratelimit-route").as_deref(), Some("GET /api/v1/tip"));
        assert_eq!(header(&h, "x-ratelimit-route-limit").as_deref(), Some("4"));
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            route_limited = Some(h);
            break;
        }
        passed += 1;
    }
    let h = route_limited.expect("one route is limited within 20 requests");
    assert!((4..=6).contains(&passed), "the route's burst of 4 passes: {passed}");
    assert_eq!(header(&h, "x-ratelimit-route-remaining").as_deref(), Some("0"));
    assert!(h.contains_key("retry-after"));
    let left: u32 = header(&h, "x-ratelimit-remaining")
        .and_then(|v| v.parse().ok())
        .expect("remaining");
    assert!(left > 0, "the address's own quota is not spent by one route: {left}");
    // A JSON-RPC method is a route of its own, refused as a JSON-RPC error (after a pause
    // that refills the address's bucket, so it is the method's that refuses).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut method_refused = None;
    for _ in 0..6 {
        let (st, v) = anon.raw("getblockcount", json!([])).await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            method_refused = Some(v);
            break;
        }
    }
    let v = method_refused.expect("getblockcount is limited within 6 calls");
    assert_eq!(v["error"]["code"], -32005, "{v}");
    // Several routes: the address's bucket (burst 10) is what refuses.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let routes = [
        "/api/v1/tip",
        "/api/v1/mempool",
        "/api/v1/blocks",
        "/health",
        "/api/v1/status",
    ];
    let mut limited = None;
    let mut passed = 0;
    for i in 0..40 {
        let resp = anon
            .http
            .get(format!("{}{}", anon.base, routes[i % routes.len()]))
            .send()
            .await
            .expect("http");
        let h = resp.headers().clone();
        assert!(h.contains_key("x-ratelimit-remaining") && h.contains_key("x-ratelimit-reset"));
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(h);
            break;
        }
        passed += 1;
    }
    let h = limited.expect("a burst of 40 is limited");
    assert!(passed >= 10, "the burst of 10 passes: {passed}");
    assert_eq!(header(&h, "x-ratelimit-remaining").as_deref(), Some("0"));
    let retry: u64 = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    // A failed auth also spends the address's quota (and is refused either way).
    assert_eq!(
        rpc.with_token("wrong").raw("getblockcount", json!([])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The cookie holder's bucket is separate and ten times larger (spread over methods:
    // each method's own bucket is half of it).
    for i in 0..60 {
        let method = ["getblockcount", "getbestblockhash", "getmempoolinfo"][i % 3];
        assert_eq!(rpc.raw(method, json!([])).await.0, StatusCode::OK);
    }
    // The quota recovers.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(anon.get("/api/v1/tip").await.0, StatusCode::OK);
    let (_, metrics) = {
        let resp = rpc
            .http
            .get(format!("{}/metrics", rpc.base))
            .bearer_auth(rpc.token.clone().unwrap_or_default())
            .send()
            .await
            .expect("http");
        (resp.status(), resp.text().await.unwrap_or_default())
    };
    let rejected: f64 = metrics
        .lines()
        .find(|l| l.starts_with("lode_rpc_rate_limited_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("rate-limit counter");
    assert!(rejected >= 2.0, "{rejected}");
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_json_rpc_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path()).anon();
    let body = |b: &str| b.to_string();
    let resp = rpc.post_raw(body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\"")).await;
    assert_eq!(resp.json::<Value>().await.expect("json")["error"]["code"], -32700);
    let resp = rpc.post_raw(body("[]")).await;
    assert_eq!(resp.json::<Value>().await.expect("json")["error"]["code"], -32600);
    let resp = rpc
        .post_raw(body("{\"jsonrpc\": \"3.0\", \"id\": 1, \"method\": \"getblockcount\"}"))
        .await;
    assert_eq!(resp.json::<Value>().await.expect("json")["error"]["code"], -32600);
    // A batch: answers in order, each with its id, good and bad mixed.
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "getblockcount"},
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
        {"jsonrpc": "2.0", "id": "c", "method": "getblockhash", "params": ["x"]},
        {"jsonrpc": "2.0", "method": "getblockcount"},
        {"jsonrpc": "2.0", "id": "e", "method": "getnewaddress"},
        5
    ]);
    let resp = rpc.post_raw(batch.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let out: Value = resp.json().await.expect("json");
    let out = out.as_array().expect("array");
    assert_eq!(out.len(), 5, "the notification gets no answer: {out:?}");
    assert_eq!(out[0]["id"], "a");
    assert_eq!(out[0]["result"], 0);
    assert_eq!(out[1]["error"]["code"], -32601);
    assert_eq!(out[2]["error"]["code"], -32602);
    assert_eq!(out[3]["error"]["code"], -32001);
    assert_eq!(out[4]["error"]["code"], -32600);
    // Only a notification: nothing to say.
    let resp = rpc
        .post_raw(body("{\"jsonrpc\": \"2.0\", \"method\": \"getblockcount\"}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // A body over the limit is refused before it is read whole.
    let huge = vec![b' '; lode_node::rpc::body_limit(ChainParams::regtest().max_block_size) + 1];
    let resp = rpc.post_raw(huge).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Deep nesting and wrong types.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let resp = rpc.post_raw(deep).await;
    assert_eq!(resp.json::<Value>().await.expect("json")["error"]["code"], -32700);
    rpc.err("getblock", json!([{"a": 1}]), -32602).await;
    rpc.err(
        "getblock",
        json!({"blockhash": format!("{:064x}", 1), "extra": 1}),
        -32602,
    )
    .await;
    // A slow client that never finishes its headers is cut off; others are served meanwhile.
    let mut slow = tokio::net::TcpStream::connect(a.rpc_addr().expect("rpc"))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert_eq!(rpc.ok("getblockcount", json!([])).await, json!(0));
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(&mut slow, &mut buf),
    )
    .await;
    assert!(matches!(closed, Ok(Ok(_))), "the slow connection is closed: {closed:?}");
    // (A new client: the server also closes idle keep-alive connections after the same time,
    // and a pooled one might be reused in the instant it closes.)
    let fresh = Rpc {
        http: reqwest::Client::new(),
        ..rpc.clone()
    };
    assert_eq!(fresh.ok("getblockcount", json!([])).await, json!(0));
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_tips_and_txs_and_resume_from_an_id_and_metrics_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    let resp = rpc
        .http
        .get(format!("{}/api/v1/events", rpc.base))
        .send()
        .await
        .expect("sse");
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp;
    let hashes = rpc.ok("generate", json!([2])).await;
    let mut text = String::new();
    let read = async {
        while !(text.contains(&s(&hashes[0])) && text.contains(&s(&hashes[1]))) {
            match body.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("stream ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(T, read).await.expect("two tip events");
    assert!(text.contains("event: tip"), "{text}");
    // Ids increase by one from the node's start time (so they keep increasing across a
    // restart of the node).
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert!(ids.len() >= 2 && ids[1] == ids[0] + 1, "{text}");
    assert!(
        ids[0] > 1_000_000_000_000_000,
        "ids start at the start time in µs: {ids:?}"
    );
    let (first, second) = (ids[0], ids[1]);
    // Resuming after the first replays the second first.
    let resp = rpc
        .http
        .get(format!("{}/api/v1/events", rpc.base))
        .header("Last-Event-ID", first.to_string())
        .send()
        .await
        .expect("sse");
    let mut body = resp;
    let mut text = String::new();
    let read = async {
        while !text.contains(&s(&hashes[1])) {
            match body.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("stream ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(T, read).await.expect("replayed event");
    assert!(
        text.contains(&format!("id: {second}")) && !text.contains(&format!("id: {first}\n")),
        "{text}"
    );

    let metrics = rpc
        .http
        .get(format!("{}/metrics", rpc.base))
        .send()
        .await
        .expect("metrics");
    let m = metrics.text().await.expect("text");
    for needle in [
        "lode_chain_height 2",
        "lode_block_validation_seconds_count 2",
        "lode_rpc_requests_total{method=\"generate\",status=\"ok\"} 1",
        "lode_peers 0",
        "lode_mempool_transactions 0",
        "lode_miner_hashrate",
    ] {
        assert!(m.contains(needle), "{needle} missing in\n{m}");
    }
    a.shutdown().await.expect("shutdown");
}

/// One HTTP/1.1 request on a kept-alive connection; returns the status and the JSON body
/// (`Null` for an empty one) and the raw head.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(T, stream.read(&mut chunk))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().expect("status");
                let body = &buf[end + 4..end + 4 + len];
                return (status, head, serde_json::from_slice(body).unwrap_or(Value::Null));
            }
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_transport_paths_versions_basic_auth_and_keep_alive_across_a_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    // rpcauth line for "alice" / "hunter2-pw" (salt f9a7…, HMAC from Python's hmac module).
    let alice = lode_node::rpc::auth::RpcAuthUser::parse(
        "alice:f9a7b2c4d6e8f0a1b3c5d7e9f1a3b5c7$f0255c0695b95e84ea23c98a00d61c823147bb61ed93801db0c1e243b6e306c8",
    )
    .expect("rpcauth");
    let carol = lode_node::rpc::auth::RpcAuthUser::parse(
        "carol:f9a7b2c4d6e8f0a1b3c5d7e9f1a3b5c7$f0255c0695b95e84ea23c98a00d61c823147bb61ed93801db0c1e243b6e306c8:read",
    )
    .expect("rpcauth");
    let a = node(dir.path(), 0, |c| {
        if let Some(r) = c.rpc.as_mut() {
            r.rpc_auth = vec![alice, carol];
        }
    })
    .await;
    let rpc = Rpc::of(&a, dir.path());
    let cookie = basic("__cookie__", rpc.token.as_deref().unwrap_or_default());
    let mut conn = tokio::net::TcpStream::connect(a.rpc_addr().expect("rpc"))
        .await
        .expect("connect");
    let legacy = |m: &str, p: Value| json!({"version": "1.1", "id": 7, "method": m, "params": p}).to_string();

    // A legacy call on `/`: result, error and id, no jsonrpc member.
    let (st, _, v) = exchange(&mut conn, "/", Some(&cookie), &legacy("getblockcount", json!([]))).await;
    assert_eq!((st, v.clone()), (200, json!({"result": 0, "error": null, "id": 7})));
    // Errors set the status as Core's JSONErrorReply: 404 unknown method, 500 other.
    let (st, _, v) = exchange(&mut conn, "/", Some(&cookie), &legacy("nosuchmethod", json!([]))).await;
    assert_eq!(st, 404);
    assert!(
        v["result"].is_null() && v["error"]["code"] == -32601 && v["id"] == 7,
        "{v}"
    );
    let (st, _, v) = exchange(&mut conn, "/", Some(&cookie), &legacy("getblockhash", json!([99]))).await;
    assert_eq!((st, v["error"]["code"].clone()), (500, json!(-8)));
    let (st, _, v) = exchange(&mut conn, "/", None, "{not json").await;
    assert_eq!((st, v["error"]["code"].clone()), (500, json!(-32700)));
    // A 2.0 call on `/`: 200, result only.
    let (st, _, v) = exchange(&mut conn, "/", None, r#"{"jsonrpc":"2.0","id":1,"method":"nosuch"}"#).await;
    assert_eq!(st, 200);
    assert!(v.get("result").is_none() && v["error"]["code"] == -32601, "{v}");

    // Wrong credentials: 401 with WWW-Authenticate, and the same connection serves on.
    for bad in [
        basic("__cookie__", "wrong"),
        basic("alice", "hunter2"),
        "Bearer nope".to_string(),
    ] {
        let (st, head, v) = exchange(&mut conn, "/", Some(&bad), &legacy("getblockcount", json!([]))).await;
        assert_eq!(st, 401, "{bad}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"jsonrpc\""),
            "{head}"
        );
        assert_eq!(v["error"]["code"], -32001);
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    }
    let (st, _, v) = exchange(&mut conn, "/", Some(&cookie), &legacy("getbalance", json!([]))).await;
    assert_eq!(st, 200, "the kept-alive connection still serves: {v}");

    // rpcauth users: alice has every scope; carol reads only.
    let (st, _, v) = exchange(
        &mut conn,
        "/",
        Some(&basic("alice", "hunter2-pw")),
        &legacy("getnewaddress", json!([])),
    )
    .await;
    assert!(st == 200 && v["result"].is_string(), "{v}");
    let (st, _, v) = exchange(
        &mut conn,
        "/",
        Some(&basic("carol", "hunter2-pw")),
        &legacy("getnewaddress", json!([])),
    )
    .await;
    assert_eq!((st, v["error"]["code"].clone()), (403, json!(-32002)));
    // Public methods need no credential; private ones say so.
    let (st, _, v) = exchange(&mut conn, "/", None, &legacy("getnewaddress", json!([]))).await;
    assert_eq!((st, v["error"]["code"].clone()), (401, json!(-32001)));

    // The built-in wallet answers to its name and to the empty name; others do not exist.
    for path in ["/wallet/lode", "/wallet/"] {
        let (st, _, v) = exchange(&mut conn, path, Some(&cookie), &legacy("getbalance", json!([]))).await;
        assert_eq!(st, 200, "{path}: {v}");
    }
    let (st, _, v) = exchange(
        &mut conn,
        "/wallet/other",
        Some(&cookie),
        &legacy("getbalance", json!([])),
    )
    .await;
    assert_eq!((st, v["error"]["code"].clone()), (500, json!(-18)));
    let (st, _, _) = exchange(
        &mut conn,
        "/wallet/other",
        Some(&cookie),
        &legacy("getblockcount", json!([])),
    )
    .await;
    assert_eq!(st, 200, "chain methods ignore the wallet path");

    // A batch mixing versions: 200, each answered in its own.
    let batch = json!([
        {"id": 1, "method": "getblockcount"},
        {"jsonrpc": "2.0", "id": 2, "method": "getblockcount"},
        {"jsonrpc": "1.0", "id": 3, "method": "nosuch"}
    ]);
    let (st, _, v) = exchange(&mut conn, "/", Some(&cookie), &batch.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(v[0], json!({"result": 0, "error": null, "id": 1}));
    assert_eq!(v[1], json!({"jsonrpc": "2.0", "result": 0, "id": 2}));
    assert!(v[2]["result"].is_null() && v[2]["error"]["code"] == -32601);
    a.shutdown().await.expect("shutdown");
}

/// A signed POST to `/rpc` (the key's id and secret, the Unix time to sign with).
async fn signed_post(rpc: &Rpc, key: &str, secret: &[u8], ts: i64, body: &str, sent_body: &str) -> (StatusCode, Value) {
    use lode_node::common::signing;
    let ts = ts.to_string();
    let sig = signing::sign(secret, &ts, "POST", "/rpc", body.as_bytes());
    signed_raw(rpc, key, &ts, &sig, sent_body).await
}

async fn signed_raw(rpc: &Rpc, key: &str, ts: &str, sig: &str, body: &str) -> (StatusCode, Value) {
    let resp = rpc
        .http
        .post(format!("{}/rpc", rpc.base))
        .header("content-type", "application/json")
        .header("x-lode-key", key)
        .header("x-lode-timestamp", ts)
        .header("x-lode-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .expect("http");
    let st = resp.status();
    (st, resp.json().await.unwrap_or(Value::Null))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_pass_once_and_every_forgery_is_refused_without_effect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    // The admin creates keys on the running node; the secret is shown once.
    let reader = rpc.ok("createapikey", json!({"scopes": "read"})).await;
    let payer = rpc.ok("createapikey", json!(["read,wallet", 2])).await;
    let (pid, psecret) = (s(&payer["key"]), hex::decode(s(&payer["secret"])).expect("hex"));
    let (rid, rsecret) = (s(&reader["key"]), hex::decode(s(&reader["secret"])).expect("hex"));
    let listed = rpc.ok("listapikeys", json!([])).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(
        !listed.to_string().contains(&s(&payer["secret"])),
        "a listing never shows secrets"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("api_keys.json"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let issued = || async {
        rpc.ok("getwalletinfo", json!([])).await["lode_addresses"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = issued().await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"getnewaddress"}"#;

    // A good signature: served, with the key's own quota in the headers.
    let now = unix_now();
    let (st, v) = signed_post(&rpc, &pid, &psecret, now, call, call).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["result"].is_string());
    assert_eq!(issued().await, before + 1);

    // Each forgery: refused with 401 (403 for the scope) and no address issued.
    let refusals: Vec<(&str, (StatusCode, Value))> = vec![
        (
            "wrong secret",
            signed_post(&rpc, &pid, &rsecret, now + 1, call, call).await,
        ),
        (
            "stale timestamp",
            signed_post(&rpc, &pid, &psecret, now - 31, call, call).await,
        ),
        ("replay", {
            let ts = (now + 2).to_string();
            let sig = lode_node::common::signing::sign(&psecret, &ts, "POST", "/rpc", call.as_bytes());
            assert_eq!(signed_raw(&rpc, &pid, &ts, &sig, call).await.0, StatusCode::OK);
            signed_raw(&rpc, &pid, &ts, &sig, call).await
        }),
        (
            "tampered body",
            signed_post(
                &rpc,
                &pid,
                &psecret,
                now + 3,
                r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount"}"#,
                call,
            )
            .await,
        ),
        (
            "missing scope",
            signed_post(&rpc, &rid, &rsecret, now + 4, call, call).await,
        ),
    ];
    let after_good = issued().await;
    assert_eq!(after_good, before + 2, "only the two good calls issued addresses");
    for (what, (st, v)) in &refusals {
        let want = if *what == "missing scope" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(*st, want, "{what}: {v}");
    }
    assert!(refusals[1].1 .1["error"]["message"].to_string().contains("30 s"));
    assert!(refusals[2].1 .1["error"]["message"]
        .to_string()
        .contains("already used"));
    // A reader may read.
    let (st, _) = signed_post(
        &rpc,
        &rid,
        &rsecret,
        now + 5,
        r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    // Revoked: refused at once.
    assert_eq!(rpc.ok("revokeapikey", json!([pid])).await, Value::Null);
    let (st, _) = signed_post(&rpc, &pid, &psecret, now + 6, call, call).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(issued().await, after_good);
    rpc.err("revokeapikey", json!([pid]), -8).await;

    // The payer's own quota (2/s, burst 4) was visible and is enforced: a fresh key of 1/s.
    let slow = rpc.ok("createapikey", json!(["read", 1])).await;
    let (sid, ssecret) = (s(&slow["key"]), hex::decode(s(&slow["secret"])).expect("hex"));
    let count = r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount"}"#;
    let mut limited = None;
    for i in 0..10 {
        let (st, v) = signed_post(&rpc, &sid, &ssecret, now + 10 + i, count, count).await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(v);
            break;
        }
    }
    assert!(limited.is_some(), "a 1/s key is limited within 10 quick calls");

    // Every refusal counted by reason.
    let metrics = rpc
        .http
        .get(format!("{}/metrics", rpc.base))
        .send()
        .await
        .expect("http")
        .text()
        .await
        .unwrap_or_default();
    for reason in [
        "bad_signature",
        "stale_timestamp",
        "replay",
        "unknown_key",
        "missing_scope",
        "rate_limited",
    ] {
        assert!(
            metrics.contains(&format!("lode_rpc_refused_total{{reason=\"{reason}\"}}")),
            "{reason} counted: {metrics}"
        );
    }
    a.shutdown().await.expect("shutdown");
}

/// One anonymous flood worker: its own connection, public reads that make the node decode
/// blocks, until `stop`; counts the answers it got (any status) in `answers`.
async fn flood_worker(
    base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answers: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let req = if i.is_multiple_of(2) {
            http.get(format!("{base}/api/v1/blocks?limit=100"))
        } else {
            http.post(format!("{base}/rpc"))
                .header("content-type", "application/json")
                .body(r#"[{"jsonrpc":"2.0","id":1,"method":"getblockchaininfo","params":[]},{"jsonrpc":"2.0","id":2,"method":"getrawmempool","params":[]}]"#)
        };
        match req.send().await {
            Ok(r) => {
                let _ = r.bytes().await;
                answers.fetch_add(1, Ordering::Relaxed);
            }
            // A connection refused or closed by the caps: try again.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_flood_does_not_stop_blocks_connecting_and_the_cookie_holder_is_served() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    // No rate limit: every flood request reaches the chain state.
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    common::mine(&a, 30, 1).await;
    // Reads run off the chain-writer thread and side by side: two reads meet inside their
    // closures (on one thread, as before, the first would wait for the second in vain).
    let (to_second, from_first) = std::sync::mpsc::channel::<()>();
    let (to_first, from_second) = std::sync::mpsc::channel::<()>();
    let first = a.chain().read(move |v| {
        let _ = to_second.send(());
        let met = from_second.recv_timeout(Duration::from_secs(10)).is_ok();
        (
            met,
            std::thread::current().name().map(str::to_string),
            v.chain().height().0,
        )
    });
    let second = a.chain().read(move |_| {
        let _ = to_first.send(());
        from_first.recv_timeout(Duration::from_secs(10)).is_ok()
    });
    let (first, second) = tokio::join!(first, second);
    let (met, thread, height) = first.expect("first read");
    assert!(met && second.expect("second read"), "two reads ran at once");
    assert_ne!(
        thread.as_deref(),
        Some("lode-chain"),
        "reads are not served by the chain writer"
    );
    assert_eq!(height, 30);
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    // More workers than one address's public connection slots (64): the rest land on
    // reserved slots and are turned away, as the cookie holder's own connection is not.
    let workers: Vec<_> = (0..80)
        .map(|_| tokio::spawn(flood_worker(rpc.base.clone(), stop.clone(), answers.clone())))
        .collect();
    // The flood is under way before the blocks come.
    wait_for("flood answers", T, || {
        let n = answers.load(Ordering::Relaxed);
        async move { n >= 100 }
    })
    .await;
    let before = answers.load(Ordering::Relaxed);
    // Blocks keep connecting while the reads pour in (each submit waits for its verdict).
    common::mine(&a, 20, 2).await;
    assert_eq!(a.tip().height.0, 50);
    // ... and the flood was answered meanwhile: the two overlapped.
    assert!(
        answers.load(Ordering::Relaxed) > before,
        "the flood went on during the connects"
    );
    // The cookie holder is served, on a fresh connection, while the flood goes on.
    let fresh = Rpc::of(&a, dir.path());
    let fresh = Rpc {
        http: reqwest::Client::new(),
        ..fresh
    };
    assert_eq!(fresh.ok("getblockcount", json!([])).await, json!(50));
    assert_eq!(fresh.get("/api/v1/blocks?limit=5").await.0, StatusCode::OK);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(T, w).await.expect("worker ends").expect("worker");
    }
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_stream_caps_per_address_keep_room_for_credentials() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    let addr = a.rpc_addr().expect("rpc");
    // 64 idle connections fill this address's public slots.
    let mut idle = Vec::new();
    for _ in 0..lode_node::rpc::caps::PUBLIC_CONNECTIONS_PER_ADDR {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // A moment for the accept loop to count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]}"#;
    let (status, _, body) = exchange(
        &mut tokio::net::TcpStream::connect(addr).await.expect("connect"),
        "/rpc",
        None,
        call,
    )
    .await;
    assert_eq!(status, 503, "an anonymous caller over the cap: {body}");
    let token = rpc.token.clone().expect("cookie");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, _, body) = exchange(&mut conn, "/rpc", Some(&format!("Bearer {token}")), call).await;
    assert_eq!(status, 200, "the cookie holder gets a reserved slot: {body}");
    assert_eq!(body["result"], json!(0));
    for mut s in idle {
        let _ = s.shutdown().await;
    }
    // Slots come back: an anonymous caller gets in again.
    wait_for("public slots back", T, || {
        let anon = rpc.anon();
        async move { anon.get("/api/v1/tip").await.0 == StatusCode::OK }
    })
    .await;

    // Event streams: four anonymous ones per address, then 503; the cookie holder's passes.
    let open = |r: Rpc| async move {
        let mut req = r.http.get(format!("{}/api/v1/events", r.base));
        if let Some(t) = &r.token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("sse")
    };
    let mut streams = Vec::new();
    for _ in 0..lode_node::rpc::caps::PUBLIC_STREAMS_PER_ADDR {
        let s = open(rpc.anon()).await;
        assert_eq!(s.status(), StatusCode::OK);
        streams.push(s);
    }
    assert_eq!(open(rpc.anon()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(open(rpc.clone()).await.status(), StatusCode::OK);
    // A closed stream gives its slot back.
    drop(streams.pop());
    wait_for("stream slot back", T, || {
        let anon = rpc.anon();
        async move { open(anon).await.status() == StatusCode::OK }
    })
    .await;
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_costs_the_sum_of_its_calls_and_lists_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One token a second, a burst of two: every cost shows.
    let a = node(dir.path(), 1, |_| {}).await;
    let anon = Rpc::of(&a, dir.path()).anon();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []});
    // Three calls cost three tokens: more than the bucket holds, the whole batch refused.
    let resp = anon.post_raw(json!([call, call, call]).to_string()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = resp.json().await.expect("json");
    assert!(s(&body["error"]).contains("costs 3 tokens"), "{body}");
    // Nothing of the batch's cost was taken beyond the gate's one: a single call passes.
    assert_eq!(anon.raw("getblockcount", json!([])).await.0, StatusCode::OK);

    // Page caps (limit unmetered here).
    let b = node(&dir.path().join("b"), 0, |_| {}).await;
    let rpc = Rpc::of(&b, &dir.path().join("b"));
    common::mine(&b, 3, 1).await;
    assert_eq!(rpc.get("/api/v1/blocks?limit=101").await.0, StatusCode::BAD_REQUEST);
    let (status, page) = rpc.get("/api/v1/blocks?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["blocks"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next"], json!(1), "a cursor to the next page: {page}");
    let addr = rpc.ok("getnewaddress", json!([])).await;
    let path = format!("/api/v1/address/{}?limit=101", s(&addr));
    assert_eq!(rpc.get(&path).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        rpc.get("/api/v1/series/blocks?count=1001").await.0,
        StatusCode::BAD_REQUEST
    );
    // The OpenAPI document states the caps.
    let (_, doc) = rpc.get("/api/v1/openapi.json").await;
    let params = &doc["paths"]["/api/v1/blocks"]["get"]["parameters"];
    let limit = params
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
        .expect("limit param");
    assert_eq!(limit["schema"]["maximum"], json!(100), "{limit}");
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
}

/// Drives `url` with `clients` concurrent keep-alive clients for `secs`; successful answers
/// per second.
async fn requests_per_second(url: String, clients: usize, secs: f64) -> f64 {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, stop, ok) = (url.clone(), stop.clone(), ok.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = http.get(&url).send().await {
                        if r.status().is_success() && r.bytes().await.is_ok() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = ok.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / elapsed
}

/// `lode_block_validation_seconds` from a `/metrics` text: (count, sum, cumulative buckets).
fn validation_histogram(metrics: &str) -> (f64, f64, Vec<(f64, f64)>) {
    let value = |l: &str| {
        l.split_whitespace()
            .last()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets = Vec::new();
    for l in metrics.lines() {
        if l.starts_with("lode_block_validation_seconds_count") {
            count = value(l);
        } else if l.starts_with("lode_block_validation_seconds_sum") {
            sum = value(l);
        } else if let Some(rest) = l.strip_prefix("lode_block_validation_seconds_bucket{le=\"") {
            let le = rest.split('"').next().unwrap_or("+Inf");
            let le = le.parse::<f64>().unwrap_or(f64::INFINITY);
            buckets.push((le, value(l)));
        }
    }
    (count, sum, buckets)
}

/// The bucket bound below which `q` of the observations between two snapshots fall.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let total = after.last().map_or(0.0, |b| b.1) - before.last().map_or(0.0, |b| b.1);
    for (i, (le, n)) in after.iter().enumerate() {
        let prior = before.get(i).map_or(0.0, |b| b.1);
        if n - prior >= q * total {
            return *le;
        }
    }
    f64::INFINITY
}

/// The public-read load benchmark (issue 12): requests/s of a cheap REST route against a
/// bare axum handler in the same run, and block validation times with and without a
/// public-read flood. Run: `cargo nextest run -p lode-node --test rpc --run-ignored only
/// --no-capture public_read_load_benchmark`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures for BENCHMARKS.md"]
async fn public_read_load_benchmark() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const CLIENTS: usize = 16;
    const SECS: f64 = 5.0;
    const BLOCKS: usize = 200;
    // The baseline: a bare axum handler answering a tip-shaped JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bare_addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/tip",
        axum::routing::get(|| async {
            axum::Json(json!({"height": 200, "hash": "00".repeat(32), "time": 1_700_000_000u32, "bits": "207fffff"}))
        }),
    );
    let bare = tokio::spawn(async move { axum::serve(listener, app).await });
    let bare_rps = requests_per_second(format!("http://{bare_addr}/tip"), CLIENTS, SECS).await;
    bare.abort();

    let dir = tempfile::tempdir().expect("tempdir");
    let a = node(dir.path(), 0, |_| {}).await;
    let rpc = Rpc::of(&a, dir.path());
    common::mine(&a, BLOCKS, 1).await;
    let tip_rps = requests_per_second(format!("{}/api/v1/tip", rpc.base), CLIENTS, SECS).await;
    let block_rps = requests_per_second(format!("{}/api/v1/block/100", rpc.base), CLIENTS, SECS).await;
    let page_rps = requests_per_second(format!("{}/api/v1/blocks?limit=100", rpc.base), CLIENTS, SECS).await;

    let metrics = |rpc: Rpc| async move {
        rpc.http
            .get(format!("{}/metrics", rpc.base))
            .bearer_auth(rpc.token.clone().unwrap_or_default())
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    // Block validation without load, then with a public-read flood.
    let (c0, s0, b0) = validation_histogram(&metrics(rpc.clone()).await);
    let started = std::time::Instant::now();
    common::mine(&a, BLOCKS, 2).await;
    let quiet_wall = started.elapsed().as_secs_f64();
    let (c1, s1, b1) = validation_histogram(&metrics(rpc.clone()).await);

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(flood_worker(rpc.base.clone(), stop.clone(), answers.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    common::mine(&a, BLOCKS, 3).await;
    let loaded_wall = started.elapsed().as_secs_f64();
    let served = answers.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    let (c2, s2, b2) = validation_histogram(&metrics(rpc.clone()).await);

    let ms = |s: f64| s * 1000.0;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average at the end: {}", load.trim());
    eprintln!("bare axum GET /tip:            {bare_rps:>9.0} req/s");
    eprintln!(
        "node GET /api/v1/tip:          {tip_rps:>9.0} req/s  ({:.2} of bare)",
        tip_rps / bare_rps
    );
    eprintln!(
        "node GET /api/v1/block/100:    {block_rps:>9.0} req/s  ({:.2} of bare)",
        block_rps / bare_rps
    );
    eprintln!(
        "node GET /api/v1/blocks?limit=100: {page_rps:>6.0} req/s  ({:.3} of bare)",
        page_rps / bare_rps
    );
    eprintln!(
        "block validation, no load:   {} blocks, mean {:.3} ms, p50 ≤ {:.3} ms, p90 ≤ {:.3} ms, p99 ≤ {:.3} ms; {:.1} blocks/s submitted",
        c1 - c0,
        ms((s1 - s0) / (c1 - c0)),
        ms(quantile(&b0, &b1, 0.5)),
        ms(quantile(&b0, &b1, 0.9)),
        ms(quantile(&b0, &b1, 0.99)),
        BLOCKS as f64 / quiet_wall
    );
    eprintln!(
        "block validation, read flood: {} blocks, mean {:.3} ms, p50 ≤ {:.3} ms, p90 ≤ {:.3} ms, p99 ≤ {:.3} ms; {:.1} blocks/s submitted; {served} flood answers",
        c2 - c1,
        ms((s2 - s1) / (c2 - c1)),
        ms(quantile(&b1, &b2, 0.5)),
        ms(quantile(&b1, &b2, 0.9)),
        ms(quantile(&b1, &b2, 0.99)),
        BLOCKS as f64 / loaded_wall
    );
    assert_eq!(a.tip().height.0 as usize, 3 * BLOCKS);
    a.shutdown().await.expect("shutdown");
}
