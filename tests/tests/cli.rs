//! End-to-end tests of `lode wallet|mine|chain`: the real `lode` binary against real
//! `lode node --network regtest` processes on 127.0.0.1 (ports chosen by the OS, read back
//! from `DATA_DIR/rpc_url` and `getnetworkinfo`). Every child is killed by a guard; every
//! wait has a deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_chain::PubkeyHash;
use lode_tests::{lode_bin, wait_until};
use serde_json::Value;

/// Longest any single `lode` client command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// What a finished `lode` command printed.
#[derive(Debug)]
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    /// stdout parsed as exactly one JSON document.
    fn json(&self) -> Value {
        assert!(self.ok, "command failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.stdout))
    }

    /// Asserts the command failed with one `error: ...` line containing `needle`.
    fn refused(&self, needle: &str) {
        assert!(!self.ok, "expected a failure, got: {}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }
}

/// Waits for `child` (stdout/stderr piped) with a deadline, killing it when it passes.
fn finish(mut child: Child, deadline: Duration) -> Out {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lode command still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        ok: status.success(),
        stdout: out_reader.join().expect("reader"),
        stderr: err_reader.join().expect("reader"),
    }
}

/// A `lode` command run in `cwd`, with HOME there too (so no default data dir leaks in).
fn lode_cmd(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(lode_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn lode(cwd: &Path, args: &[&str]) -> Out {
    finish(lode_cmd(cwd, args).spawn().expect("spawn lode"), COMMAND_DEADLINE)
}

fn regtest_address(byte: u8) -> String {
    PubkeyHash([byte; 20]).to_address("lreg").expect("encodes")
}

// ---------------------------------------------------------------------------------------
// Without a node: target resolution, local checks of arguments and flags.

fn write_devnet(dir: &Path, rpc: &str) {
    let node = |i: u32| {
        serde_json::json!({"name": format!("node{i}"), "rpc": rpc, "p2p": "/ip4/127.0.0.1/tcp/1",
            "data_dir": dir.join(format!("node{i}")), "cookie": dir.join(format!("node{i}/.cookie")),
            "mining": i == 0, "pid": 1})
    };
    std::fs::create_dir_all(dir.join("node1")).expect("mkdir");
    std::fs::write(dir.join("node1/.cookie"), "00ff").expect("cookie");
    let file = serde_json::json!({"network": "regtest", "nodes": [node(0), node(1)]});
    std::fs::write(dir.join("devnet.json"), file.to_string()).expect("write");
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn target_errors_are_one_line_and_name_the_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    lode(cwd, &["wallet", "--devnet", "node1", "balance"]).refused("devnet/devnet.json does not exist");
    lode(cwd, &["chain", "info", "--dir", "elsewhere"]).refused("elsewhere/devnet.json does not exist");

    let url = format!("http://127.0.0.1:{}", closed_port());
    write_devnet(&cwd.join("devnet"), &url);
    lode(cwd, &["wallet", "--devnet", "node7", "balance"]).refused("no node named \"node7\"");
    // node1 is found: its URL is what cannot be reached.
    lode(cwd, &["chain", "--devnet", "node1", "info"]).refused(&format!("cannot reach the node at {url}"));
    // node0 (the default) has no cookie yet.
    lode(cwd, &["wallet", "balance"]).refused("cannot read the cookie");

    std::fs::write(cwd.join("devnet/devnet.json"), "{\"network\": ").expect("write");
    lode(cwd, &["wallet", "--devnet", "node1", "address"]).refused("not a valid devnet file");

    lode(cwd, &["chain", "--data-dir", "nowhere", "info"]).refused("nowhere/rpc_url");
    lode(cwd, &["chain", "--node", "127.0.0.1:18443", "info"]).refused("--node");
    lode(cwd, &["chain", "--node", "http://x:1", "--data-dir", "d", "info"]).refused("cannot be used with");
}

#[test]
fn malformed_arguments_are_refused_before_any_call() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    // Nothing listens here: every refusal below happens before the node is asked.
    let node = format!("http://127.0.0.1:{}", closed_port());
    let send = |addr: &str, amount: &str, extra: &[&str]| {
        let mut args = vec!["wallet", "--node", node.as_str(), "send", addr, amount];
        args.extend_from_slice(extra);
        lode(cwd, &args)
    };
    let addr = regtest_address(1);
    send(&addr, "1.123456789", &[]).refused("amount has 9 decimals; at most 8 are allowed");
    send(&addr, "-1", &[]).refused("amount must not be negative");
    send(&addr, "99999999999999", &[]).refused("amount is too large");
    send(&addr, "12,5", &[]).refused("is not a decimal number");
    send(&addr, "0", &[]).refused("more than zero");
    send("lreg1qqqq", "1", &[]).refused("invalid address \"lreg1qqqq\"");
    send("nonsense", "1", &[]).refused("invalid address");
    send(&addr, "1", &["--fee-rate", "cheap"]).refused("--fee-rate");
    send(&addr, "1", &["--confirmations", "0"]).refused("--confirmations");

    let chain = |args: &[&str]| {
        let mut v = vec!["chain", "--node", node.as_str()];
        v.extend_from_slice(args);
        lode(cwd, &v)
    };
    chain(&["block", "tip"]).refused("invalid block hash or height \"tip\"");
    chain(&["block", &"zz".repeat(32)]).refused("hex");
    chain(&["block", "99999999999"]).refused("too large");
    chain(&["tx", "abcd"]).refused("invalid txid");
    let mine = |args: &[&str]| {
        let mut v = vec!["mine", "--node", node.as_str()];
        v.extend_from_slice(args);
        lode(cwd, &v)
    };
    mine(&["start", "--threads", "0"]).refused("--threads");
    mine(&["generate", "many"]).refused("invalid value 'many'");
    mine(&["generate", "1", "--address", "xyz"]).refused("invalid address");
    mine(&["dig"]).refused("unrecognized subcommand 'dig'");
    // A well-formed request reaches for the node and names its URL.
    send(&addr, "1", &[]).refused(&format!("cannot reach the node at {node}"));
}

// ---------------------------------------------------------------------------------------
// Against two real regtest nodes.

/// A `lode node --network regtest` process, killed on drop.
struct NodeProc {
    child: Child,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl NodeProc {
    /// Starts a node dialling `peer`, and waits until its RPC port serves.
    fn start(peer: Option<&str>) -> NodeProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        let mut cmd = Command::new(lode_bin());
        cmd.args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--miner-threads", "1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(p) = peer {
            cmd.args(["--peer", p]);
        }
        let mut node = NodeProc {
            child: cmd.spawn().expect("spawn lode node"),
            data_dir,
            _dir: dir,
        };
        let url_file = node.data_dir.join("rpc_url");
        wait_until("the node's rpc_url", Duration::from_secs(30), || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("lode node exited with {status}: {}", node.log());
            }
            // Written whole once the port serves; the newline marks the end.
            std::fs::read_to_string(&url_file).is_ok_and(|s| s.ends_with('\n'))
        });
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("node.log")).unwrap_or_default()
    }

    /// `lode GROUP --data-dir DIR ARGS...`
    fn lode(&self, group: &str, args: &[&str]) -> Out {
        let dir = self.data_dir.to_str().expect("utf-8 path");
        let mut v = vec![group, "--data-dir", dir];
        v.extend_from_slice(args);
        lode(self._dir.path(), &v)
    }

    fn height(&self) -> u64 {
        self.lode("chain", &["info", "--json"]).json()["blockchain"]["blocks"]
            .as_u64()
            .expect("height")
    }

    /// Its balances in base units, from `lode wallet balance --json` (Core's `getbalances`
    /// shape in decimal coins, with Lode's `lode_reserved`).
    fn balances(&self) -> Value {
        let core = self.lode("wallet", &["balance", "--json"]).json();
        let units = |key: &str| {
            lode_node::common::coins::from_json(&core["mine"][key])
                .map(|a| a.units())
                .unwrap_or_else(|e| panic!("mine.{key} in {core}: {e}"))
        };
        serde_json::json!({
            "spendable": units("trusted"),
            "immature": units("immature"),
            "reserved": units("lode_reserved"),
            "pending_incoming": units("untrusted_pending"),
        })
    }

    /// Its P2P address with /p2p/PEER_ID, from `getnetworkinfo`.
    fn p2p_addr(&self) -> String {
        let url = std::fs::read_to_string(self.data_dir.join("rpc_url")).expect("rpc_url");
        let client = lode_node::client::RpcClient::new(url.trim(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let info = rt
            .block_on(client.call("getnetworkinfo", serde_json::json!([])))
            .expect("getnetworkinfo");
        info["lode_p2p_addrs"][0].as_str().expect("a local address").to_string()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn total(b: &Value) -> u64 {
    ["spendable", "immature", "reserved", "pending_incoming"]
        .iter()
        .map(|k| b[*k].as_u64().expect("an amount"))
        .sum()
}

#[test]
fn wallet_mine_and_chain_commands_against_two_regtest_nodes() {
    let node0 = NodeProc::start(None);
    let node1 = NodeProc::start(Some(&node0.p2p_addr()));
    wait_until("the nodes to connect", Duration::from_secs(30), || {
        node0
            .lode("chain", &["peers", "--json"])
            .json()
            .as_array()
            .is_some_and(|p| !p.is_empty())
    });
    let peers = node0.lode("chain", &["peers"]);
    assert!(peers.ok && peers.stdout.contains("inbound"), "{peers:?}");

    // Coinbase maturity is 10 on regtest: 11 blocks make the first coinbase spendable.
    let generated = node0.lode("mine", &["generate", "11"]);
    assert!(generated.ok, "{}", generated.stderr);
    assert_eq!(generated.stdout.lines().count(), 11, "{}", generated.stdout);
    wait_until("node1 at height 11", Duration::from_secs(30), || node1.height() == 11);
    let info = node0.lode("chain", &["info"]);
    assert!(
        info.stdout.contains("network") && info.stdout.contains("regtest"),
        "{}",
        info.stdout
    );

    let before = node0.balances();
    assert!(
        before["spendable"].as_u64().expect("spendable") >= 1_250_000_000,
        "{before}"
    );
    let human = node0.lode("wallet", &["balance"]);
    assert!(
        human.stdout.contains("spendable") && human.stdout.contains(" coins ("),
        "{}",
        human.stdout
    );

    let address1 = node1.lode("wallet", &["address"]);
    assert!(address1.ok, "{}", address1.stderr);
    let address1 = address1.stdout.trim().to_string();
    assert!(address1.starts_with("lreg1"), "{address1}");

    // send --wait runs until a block confirms the payment; the test mines that block (paid
    // to an outside address, so node0's own coins change only by the payment) once the
    // transaction is in node0's mempool.
    let dir0 = node0.data_dir.to_str().expect("utf-8").to_string();
    let send = lode_cmd(
        node0._dir.path(),
        &[
            "wallet",
            "--data-dir",
            &dir0,
            "send",
            &address1,
            "12.5",
            "--wait",
            "--json",
            "--timeout",
            "60",
        ],
    )
    .spawn()
    .expect("spawn send");
    wait_until("the payment in node0's mempool", Duration::from_secs(30), || {
        node0.lode("chain", &["mempool", "--json"]).json()["info"]["size"].as_u64() == Some(1)
    });
    let outside = regtest_address(9);
    let mined = node0
        .lode("mine", &["generate", "1", "--address", &outside, "--json"])
        .json();
    assert_eq!(mined.as_array().map(Vec::len), Some(1), "{mined}");
    let sent = finish(send, Duration::from_secs(60)).json();
    let txid = sent["txid"].as_str().expect("txid").to_string();
    // Lode's extras to Core's sendtoaddress, in base units and bytes.
    let fee = lode_node::common::coins::from_json(&sent["lode_fee"])
        .expect("fee")
        .units();
    assert!(fee > 0 && sent["lode_size"].as_u64().expect("size") > 0, "{sent}");
    assert!(sent["confirmations"].as_u64().expect("confirmations") >= 1, "{sent}");

    // node1 received exactly 12.5 coins once it has the block.
    wait_until("node1's wallet to see the payment", Duration::from_secs(30), || {
        node1.balances()["spendable"].as_u64() == Some(1_250_000_000)
    });
    let b1 = node1.balances();
    assert_eq!(total(&b1), 1_250_000_000, "{b1}");
    // node0 paid the amount and the fee, nothing else.
    let after = node0.balances();
    assert_eq!(
        total(&before) - total(&after),
        1_250_000_000 + fee,
        "before {before}, after {after}"
    );

    // The transaction as the chain, the block and the wallet history show it.
    let tx = node0.lode("chain", &["tx", &txid, "--json"]).json();
    assert_eq!(tx["txid"], txid.as_str());
    let block = node0.lode("chain", &["block", "12", "--json"]).json();
    // Core's getrawtransaction names the block by hash (no height).
    assert_eq!(tx["blockhash"], block["hash"], "{tx}");
    assert!(
        block["tx"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == txid.as_str())),
        "{block}"
    );
    let by_hash = node0.lode("chain", &["block", block["hash"].as_str().expect("hash")]);
    assert!(by_hash.ok && by_hash.stdout.contains(&txid), "{by_hash:?}");
    let history = node0.lode("wallet", &["history", "--json"]).json();
    let entry = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["txid"] == txid.as_str()))
        .expect("the payment in node0's history");
    assert_eq!(entry["category"], "send", "{entry}");
    let history1 = node1.lode("wallet", &["history"]);
    assert!(
        history1.stdout.contains(&txid) && history1.stdout.contains("+12.50000000"),
        "{history1:?}"
    );
    let verify = node0.lode("chain", &["verify"]);
    assert!(verify.ok && verify.stdout.contains("ok"), "{verify:?}");

    // Refusals by the node, each one line.
    node0
        .lode("wallet", &["send", &regtest_address(3), "1000000"])
        .refused("sendtoaddress");
    let devnet_address = PubkeyHash([3; 20]).to_address("ldev").expect("encodes");
    node0
        .lode("wallet", &["send", &devnet_address, "1"])
        .refused("\"lreg\"");
    node0
        .lode("chain", &["tx", &"ab".repeat(32)])
        .refused("getrawtransaction");
    node0.lode("chain", &["block", "999"]).refused("getblockhash");

    // A wait that runs out still prints the payment (one JSON document) and fails.
    let timed_out = node0.lode(
        "wallet",
        &["send", &address1, "1", "--wait", "--timeout", "1", "--json"],
    );
    assert!(!timed_out.ok, "{timed_out:?}");
    assert!(
        serde_json::from_str::<Value>(&timed_out.stdout).is_ok_and(|v| v["txid"].is_string()),
        "{timed_out:?}"
    );
    let last = timed_out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: gave up waiting after"), "{}", timed_out.stderr);

    let started = node0.lode("mine", &["start", "--threads", "1", "--json"]).json();
    assert_eq!(started, serde_json::json!({"generate": true, "threads": 1}));
    let stopped = node0.lode("mine", &["stop"]);
    assert_eq!(stopped.stdout.trim(), "mining stopped", "{stopped:?}");

    // A stopped node is named by its URL.
    let url1 = std::fs::read_to_string(node1.data_dir.join("rpc_url")).expect("rpc_url");
    let mut node1 = node1;
    node1.stop();
    node1
        .lode("chain", &["info"])
        .refused(&format!("cannot reach the node at {}", url1.trim()));
}

#[test]
fn wallet_encrypt_unlock_and_lock_from_the_command_line() {
    let node = NodeProc::start(None);
    assert!(node.lode("mine", &["generate", "11"]).ok);
    let to = regtest_address(9);
    let pass_file = node._dir.path().join("pass.txt");
    std::fs::write(&pass_file, "battery staple\n").expect("write");
    let pf = pass_file.to_str().expect("utf-8");
    // An empty passphrase (stdin is /dev/null here) is refused before any call.
    node.lode("wallet", &["encrypt"]).refused("passphrase");
    let enc = node.lode("wallet", &["encrypt", "--passphrase-file", pf]);
    assert!(enc.ok, "{}", enc.stderr);
    node.lode("wallet", &["send", &to, "1"]).refused("locked");
    node.lode("wallet", &["mnemonic"]).refused("locked");
    // A wrong passphrase, read from stdin as a script would pipe it.
    let mut child = lode_cmd(
        node._dir.path(),
        &["wallet", "--data-dir", node.data_dir.to_str().expect("utf-8"), "unlock"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"wrong horse\n").expect("write");
    }
    finish(child, COMMAND_DEADLINE).refused("passphrase");
    let unlocked = node.lode("wallet", &["unlock", "--passphrase-file", pf, "--timeout", "60"]);
    assert!(unlocked.ok, "{}", unlocked.stderr);
    assert!(unlocked.stdout.contains("unlocked for 60 s"), "{}", unlocked.stdout);
    let sent = node.lode("wallet", &["send", &to, "1", "--json"]).json();
    assert!(sent["txid"].is_string(), "{sent}");
    assert!(node.lode("wallet", &["lock"]).ok);
    node.lode("wallet", &["send", &to, "1"]).refused("locked");
}
