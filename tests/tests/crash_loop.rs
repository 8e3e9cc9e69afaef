//! The crash loop of issue 17: a node that mines, receives transactions from clients and
//! blocks from a peer (which keeps running, and mines while the node is down) is
//! SIGKILLed at random instants and restarted, over and over. After every restart:
//! - each block and transaction it acknowledged — `generate` hashes, a `submitblock`
//!   answered `null` (blocks built with `generateblock` unsubmitted), `sendtoaddress` and
//!   `sendrawtransaction` txids — is still there (a block stored; a transaction in the
//!   mempool or the best chain);
//! - it syncs the blocks the peer mined while it was down, and the chain verifies;
//! - the wallet's balance equals a full rescan's: the wallet file's keys replayed over every
//!   best-chain block from genesis (fetched over RPC) by a fresh tracker, coin by coin;
//!   every coin of its that a mempool transaction spends is reserved (never offered again);
//! - no coin was spent twice by the wallet: no outpoint is an input of two acknowledged
//!   payments.
//!
//! A few rounds run in the suite; `crash_loop_100_rounds` (ignored) is the closing run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lode_chain::{Block, ChainParams, Hash256, Height, Transaction};
use lode_node::client::http::RpcClient;
use lode_node::common::coins;
use lode_tests::local::{peer_and_node, LocalNode};
use lode_tests::wait_until;
use lode_wallet::tracker::Tracker;
use serde_json::{json, Value};

/// An RPC endpoint a client thread calls with its own runtime.
#[derive(Clone)]
struct Endpoint {
    url: String,
    cookie: PathBuf,
}

impl Endpoint {
    fn of(node: &LocalNode) -> Endpoint {
        Endpoint {
            url: node.url().to_string(),
            cookie: node.data_dir.join(".cookie"),
        }
    }

    fn call(&self, rt: &tokio::runtime::Runtime, method: &str, params: Value) -> Result<Value, String> {
        let client = RpcClient::with_cookie(&self.url, &self.cookie).map_err(|e| e.to_string())?;
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), client.call(method, params)).await })
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())
    }
}

/// What the node under test acknowledged, by kind.
#[derive(Default)]
struct Acks {
    generated: Vec<String>,
    submitted: Vec<String>,
    paid: Vec<String>,
    relayed: Vec<String>,
    /// The highest best-chain height the node was seen at.
    height: u64,
}

impl Acks {
    fn blocks(&self) -> impl Iterator<Item = &String> {
        self.generated.iter().chain(&self.submitted)
    }
    fn txids(&self) -> impl Iterator<Item = &String> {
        self.paid.iter().chain(&self.relayed)
    }
    fn count(&self) -> usize {
        self.generated.len() + self.submitted.len() + self.paid.len() + self.relayed.len()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The node's miner clients pause this long between blocks (the submitter twice as long).
const MINE_PAUSE_MS: u64 = 50;

/// A small deterministic generator: varied, reproducible kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The client threads of one round, until `stop`: on the node a miner (`generate`), a
/// payer (`sendtoaddress`), a block submitter (`generateblock` unsubmitted, then
/// `submitblock`) and a relayer of the peer's payments (`sendrawtransaction`). The peer
/// mines while the node is down (see `crash_loop`), not meanwhile: two miners racing make
/// forks deeper than coinbase maturity, and a reorganisation that takes away a coinbase
/// also takes away, rightly, every payment spending it.
fn clients(
    a: &Endpoint,
    p: &Endpoint,
    a_addr: &Value,
    p_addr: &Value,
    stop: &Arc<AtomicBool>,
    acks: &Arc<Mutex<Acks>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    {
        let (a, stop, acks) = (a.clone(), stop.clone(), acks.clone());
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(v) = a.call(&rt, "generate", json!([1])) {
                    let hashes = v.as_array().cloned().unwrap_or_default();
                    acks.lock().expect("acks").generated.extend(hashes.iter().map(text));
                }
                if let Ok(Some(h)) = a.call(&rt, "getblockcount", json!([])).map(|v| v.as_u64()) {
                    let mut acks = acks.lock().expect("acks");
                    acks.height = acks.height.max(h);
                }
                // At full speed the node outruns its peer's gossip by tens of blocks, and the
                // peer's catch-up while the node is down becomes a fork deeper than coinbase
                // maturity (see `clients`).
                std::thread::sleep(Duration::from_millis(MINE_PAUSE_MS));
            }
        }));
    }
    {
        let (a, to, stop, acks) = (a.clone(), p_addr.clone(), stop.clone(), acks.clone());
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(v) = a.call(&rt, "sendtoaddress", json!([to, 0.001])) {
                    acks.lock().expect("acks").paid.push(text(&v));
                }
            }
        }));
    }
    {
        let (a, to, stop, acks) = (a.clone(), a_addr.clone(), stop.clone(), acks.clone());
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            while !stop.load(Ordering::Relaxed) {
                // A block the node builds but does not store, handed back as a miner would.
                let Ok(built) = a.call(&rt, "generateblock", json!([to, [], false])) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if let Ok(Value::Null) = a.call(&rt, "submitblock", json!([built["hex"]])) {
                    acks.lock().expect("acks").submitted.push(text(&built["hash"]));
                }
                std::thread::sleep(Duration::from_millis(2 * MINE_PAUSE_MS));
            }
        }));
    }
    {
        let (a, p, to, stop, acks) = (a.clone(), p.clone(), a_addr.clone(), stop.clone(), acks.clone());
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            while !stop.load(Ordering::Relaxed) {
                let Ok(txid) = p.call(&rt, "sendtoaddress", json!([to, 0.001])) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Ok(hex) = p.call(&rt, "getrawtransaction", json!([txid])) else {
                    continue;
                };
                if let Ok(v) = a.call(&rt, "sendrawtransaction", json!([hex])) {
                    acks.lock().expect("acks").relayed.push(text(&v));
                }
            }
        }));
    }
    threads
}

fn hash(hex: &str) -> Hash256 {
    Hash256::from_hex(hex).expect("a block hash")
}

/// The node's best chain as the test has read it over RPC: blocks are fetched once (by
/// hash, raw) and decoded here, the chain followed back from the tip to where it joins
/// what was read before, so a reorganisation is followed too.
struct ChainCopy {
    params: ChainParams,
    blocks: HashMap<Hash256, Block>,
    best: Vec<Hash256>,
    /// Mempool transactions seen, by txid (immutable, fetched once).
    pool_txs: HashMap<Hash256, Transaction>,
}

impl ChainCopy {
    fn new() -> ChainCopy {
        let params = ChainParams::regtest();
        let genesis = params.genesis_block();
        let g = genesis.hash();
        ChainCopy {
            blocks: HashMap::from([(g, genesis)]),
            best: vec![g],
            params,
            pool_txs: HashMap::new(),
        }
    }

    fn block(&mut self, node: &LocalNode, h: Hash256) -> &Block {
        if !self.blocks.contains_key(&h) {
            let raw = node.rpc("getblock", json!([h.to_hex(), 0]));
            let bytes = hex::decode(text(&raw)).expect("block hex");
            let block = Block::from_bytes(&bytes, self.params.max_block_size).expect("a block");
            assert_eq!(block.hash(), h, "getblock answered another block");
            self.blocks.insert(h, block);
        }
        &self.blocks[&h]
    }

    /// Follows the node's best chain to its tip.
    fn update(&mut self, node: &LocalNode) {
        let info = node.rpc("getblockchaininfo", json!([]));
        let mut h = hash(&text(&info["bestblockhash"]));
        let mut height = info["blocks"].as_u64().expect("height") as usize;
        let mut segment = Vec::new();
        while self.best.get(height) != Some(&h) {
            segment.push(h);
            h = self.block(node, h).header.prev_hash;
            height = height.checked_sub(1).expect("the chain leads back to genesis");
        }
        self.best.truncate(height + 1);
        self.best.extend(segment.into_iter().rev());
    }

    /// The mempool's transactions now.
    fn mempool(&mut self, node: &LocalNode) -> Vec<Hash256> {
        let txids: Vec<Hash256> = node
            .rpc("getrawmempool", json!([]))
            .as_array()
            .expect("txids")
            .iter()
            .map(|t| hash(&text(t)))
            .collect();
        for txid in &txids {
            if !self.pool_txs.contains_key(txid) {
                // Mined or evicted since the list was read: not in this mempool any more.
                let Ok(raw) = node.try_rpc("getrawtransaction", json!([txid.to_hex()])) else {
                    continue;
                };
                let bytes = hex::decode(text(&raw)).expect("tx hex");
                let tx: Transaction = lode_chain::encoding::decode(&bytes, bytes.len()).expect("a transaction");
                self.pool_txs.insert(*txid, tx);
            }
        }
        txids
    }

    /// Every transaction of the best chain, by txid.
    fn chain_txs(&self) -> HashMap<Hash256, &Transaction> {
        self.best
            .iter()
            .flat_map(|h| &self.blocks[h].transactions)
            .map(|tx| (tx.txid(), tx))
            .collect()
    }
}

/// Every acknowledgement in `acks` is still there on `node`, the chain verifies, the
/// wallet's balance is a full rescan's and no coin was paid twice; returns how many
/// acknowledgements were checked.
fn check(node: &LocalNode, copy: &mut ChainCopy, acks: &Acks, round: usize) -> usize {
    for hash in acks.blocks() {
        if let Err(e) = node.try_rpc("getblockheader", json!([hash])) {
            panic!(
                "round {round}: acknowledged block {hash} lost: {e}\n{}",
                node.log_tail(40)
            );
        }
    }
    let v = node.rpc("verifychain", json!([]));
    assert_eq!(v["ok"], Value::Bool(true), "round {round}: {v}");

    // A quiet moment (no client runs, the peer has stopped mining): the wallet's view and
    // the chain read over RPC are of the same tip, or everything is read again.
    let (balances, unspent, pool) = loop {
        let before = node.rpc("getbestblockhash", json!([]));
        let balances = node.rpc("getbalances", json!([]));
        let unspent = node.rpc("listunspent", json!([0]));
        copy.update(node);
        let pool = copy.mempool(node);
        if node.rpc("getbestblockhash", json!([])) == before {
            break (balances, unspent, pool);
        }
    };
    let chain_txs = copy.chain_txs();
    let pool: HashSet<Hash256> = pool.into_iter().filter(|t| copy.pool_txs.contains_key(t)).collect();
    let mut spent_by: HashMap<String, String> = HashMap::new();
    for txid in acks.txids() {
        let id = hash(txid);
        let tx = match chain_txs.get(&id) {
            Some(tx) => *tx,
            None if pool.contains(&id) => &copy.pool_txs[&id],
            None => panic!(
                "round {round}: acknowledged transaction {txid} lost (neither in the best chain nor in the mempool)\n{}",
                node.log_tail(40)
            ),
        };
        if acks.paid.contains(txid) {
            for input in &tx.inputs {
                let op = format!("{}:{}", input.prev_out.txid, input.prev_out.index);
                if let Some(other) = spent_by.insert(op.clone(), txid.clone()) {
                    panic!("round {round}: the wallet spent {op} twice: in {other} and in {txid}");
                }
            }
        }
    }

    // The full rescan: the keys of the wallet's file, every best-chain block from genesis.
    let wallet =
        lode_wallet::Wallet::open(&node.data_dir.join("wallet"), &copy.params).expect("the node's wallet file");
    let mut rescan = Tracker::new(wallet.watched_pkhs(), copy.params.coinbase_maturity);
    rescan.rescan(
        copy.best
            .iter()
            .enumerate()
            .map(|(height, h)| (*h, Height(height as u32), &copy.blocks[h])),
    );
    let mine = &balances["mine"];
    let units = |key: &str| {
        coins::from_json(&mine[key])
            .unwrap_or_else(|e| panic!("{key}: {e}: {balances}"))
            .0
    };
    let full = rescan.balance();
    assert_eq!(
        full.spendable.0,
        units("trusted") + units("lode_reserved"),
        "round {round}: mature coins, rescan vs wallet: {balances}"
    );
    assert_eq!(
        full.immature.0,
        units("immature"),
        "round {round}: immature coins: {balances}"
    );
    // Coin by coin: the wallet's coins are the rescan's, and each one a mempool
    // transaction spends is reserved (not offered to a new payment). A reserved coin may be
    // outside the mempool for a while (its payment waits to be handed over again).
    let listed: HashMap<String, bool> = unspent
        .as_array()
        .expect("coins")
        .iter()
        .map(|c| {
            (
                format!("{}:{}", text(&c["txid"]), c["vout"]),
                c["spendable"] == json!(true),
            )
        })
        .collect();
    let rescanned: HashSet<String> = rescan
        .coins()
        .map(|c| format!("{}:{}", c.outpoint.txid.to_hex(), c.outpoint.index))
        .collect();
    let listed_set: HashSet<String> = listed.keys().cloned().collect();
    assert_eq!(
        listed_set, rescanned,
        "round {round}: the wallet's coins vs a full rescan's"
    );
    for t in &pool {
        for input in &copy.pool_txs[t].inputs {
            let op = format!("{}:{}", input.prev_out.txid.to_hex(), input.prev_out.index);
            if listed.get(&op) == Some(&true) {
                panic!(
                    "round {round}: mempool transaction {t} spends the wallet's coin {op}, which the wallet offers as spendable (known to the wallet: {})\n{}",
                    node.try_rpc("gettransaction", json!([t.to_hex()])).is_ok(),
                    node.log_tail(40)
                );
            }
        }
    }
    acks.count()
}

/// The node and the peer on one best chain: the peer mines one more block whenever they
/// are apart (a tie of equal work is kept by both, so it must be broken).
fn converge(node: &LocalNode, peer: &LocalNode) {
    let start = std::time::Instant::now();
    let mut nudged = std::time::Instant::now();
    loop {
        let tip = peer.rpc("getbestblockhash", json!([]));
        if node.rpc("getbestblockhash", json!([])) == tip {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the node and its peer do not agree on a chain\n{}",
            node.log_tail(40)
        );
        if nudged.elapsed() > Duration::from_secs(2) {
            peer.rpc("generate", json!([1]));
            nudged = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn crash_loop(rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peer, mut node, _) = peer_and_node(dir.path());
    // Both wallets hold mature coins; the node syncs the peer's blocks.
    peer.rpc("generate", json!([12]));
    wait_until("the node syncs from its peer", Duration::from_secs(60), || {
        node.rpc("getblockcount", json!([])) == peer.rpc("getblockcount", json!([]))
    });
    node.rpc("generate", json!([12]));
    let a_addr = node.rpc("getnewaddress", json!([]));
    let p_addr = peer.rpc("getnewaddress", json!([]));
    let p = Endpoint::of(&peer);

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut copy = ChainCopy::new();
    let mut all = Acks::default();
    let mut checked = 0usize;
    let mut synced = 0usize;
    for round in 0..rounds {
        let a = Endpoint::of(&node);
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Acks::default()));
        let threads = clients(&a, &p, &a_addr, &p_addr, &stop, &acks);
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 900));
        node.kill();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("client thread");
        }
        // Blocks the node can only get by syncing from its peer after the restart: enough
        // that the peer's chain outweighs what the node stored before it was killed (the
        // height it was last seen at, and a margin for blocks stored after that).
        let seen = acks.lock().expect("acks").height;
        let peer_height = peer.rpc("getblockcount", json!([])).as_u64().expect("height");
        let while_down = peer.rpc(
            "generate",
            json!([seen.saturating_sub(peer_height) + 3 + rng.next() % 3]),
        );
        node.start();
        converge(&node, &peer);
        for h in while_down.as_array().expect("hashes") {
            if let Err(e) = node.try_rpc("getblockheader", json!([h])) {
                panic!("round {round}: the peer's block {h} was not synced: {e}");
            }
            synced += 1;
        }
        let mut acks = std::mem::take(&mut *acks.lock().expect("acks"));
        // Everything from every round, checked again each round (the wallet's payments
        // against each other across restarts).
        acks.generated.extend(std::mem::take(&mut all.generated));
        acks.submitted.extend(std::mem::take(&mut all.submitted));
        acks.paid.extend(std::mem::take(&mut all.paid));
        acks.relayed.extend(std::mem::take(&mut all.relayed));
        let total = check(&node, &mut copy, &acks, round);
        checked += total;
        eprintln!(
            "round {round}: {total} acknowledgements checked, 0 lost; balance = rescan at height {}",
            copy.best.len() - 1
        );
        all = acks;
    }
    eprintln!(
        "crash loop: {rounds} rounds, {} acknowledgements ({} generated blocks, {} submitted blocks, {} payments, {} relayed transactions), {synced} blocks synced from the peer after restarts, {checked} checks, 0 lost; balance equal to a full rescan after every restart; no coin spent twice",
        all.count(),
        all.generated.len(),
        all.submitted.len(),
        all.paid.len(),
        all.relayed.len()
    );
    assert!(
        !all.generated.is_empty() && !all.submitted.is_empty() && !all.paid.is_empty() && !all.relayed.is_empty(),
        "every kind of acknowledgement was exercised"
    );
}

#[test]
fn crash_loop_a_few_rounds() {
    crash_loop(3);
}

/// The closing run: `cargo nextest run -p lode-tests --test crash_loop --run-ignored only`.
#[test]
#[ignore = "100 rounds, minutes: the closing run"]
fn crash_loop_100_rounds() {
    crash_loop(100);
}
