//! `lode devnet` end to end: the real `lode` binary supervising real node processes in a
//! temp dir, on free ports found here. Every wait has a deadline; every process started is
//! killed by a guard when the test ends, however it ends.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lode_node::client::devnet::file::DevnetFile;
use lode_node::client::RpcClient;
use lode_node::common::coins;
use lode_tests::devnet::{alive, free_base, DevnetUp, READY, STOP};
use lode_tests::{lode_bin, wait_until};
use serde_json::{json, Value};

async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `lode ARGS` to completion (bounded) and returns its output.
fn lode(args: &[&str]) -> Output {
    let mut child = Command::new(lode_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lode");
    let deadline = Instant::now() + STOP + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lode {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn height(rpc: &str) -> Option<u64> {
    RpcClient::new(rpc, None)
        .call("getblockcount", json!([]))
        .await
        .ok()?
        .as_u64()
}

async fn call(rpc: &str, method: &str, params: Value) -> Option<Value> {
    RpcClient::new(rpc, None).call(method, params).await.ok()
}

#[test]
fn a_taken_port_fails_fast_and_a_second_up_on_the_same_dir_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = free_base(3, 0);
    // node1's P2P port taken.
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, base + 2)).expect("bind");
    let out = lode(&[
        "devnet",
        "up",
        "--dir",
        &tmp.path().join("a").display().to_string(),
        "--base-port",
        &base.to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("port {}", base + 2)) && err.contains("node1 P2P"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    drop(squatter);

    let dir = tmp.path().join("b");
    let mut first = DevnetUp::start(&dir, &["--nodes", "2", "--base-port", &base.to_string()]);
    first.wait_ready();
    let out = lode(&[
        "devnet",
        "up",
        "--dir",
        &dir.display().to_string(),
        "--nodes",
        "2",
        "--base-port",
        &(base + 100).to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("already running") && err.contains(&first.pid().to_string()),
        "{err}"
    );
    assert!(first.stop_with("-TERM"), "{}", first.output());
}

#[tokio::test]
async fn up_status_ctrl_c_resume_and_death_of_the_supervisor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    let base = free_base(3, 0).to_string();
    let args = ["--nodes", "3", "--block-time", "1s", "--base-port", base.as_str()];
    let mut up = DevnetUp::start(&dir, &args);
    up.wait_ready();

    // devnet.json: the spec's fields, ports from the documented scheme.
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).expect("read")).expect("json");
    assert_eq!(raw["network"], "devnet");
    let nodes = raw["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        for key in ["name", "rpc", "p2p", "data_dir", "cookie", "mining", "pid"] {
            assert!(n.get(key).is_some(), "node {i} lacks {key}: {n}");
        }
        assert_eq!(n["name"], format!("node{i}"));
        assert_eq!(n["mining"], i == 0);
        let p2p = n["p2p"].as_str().expect("p2p");
        assert!(p2p.contains("/p2p/12D3KooW"), "{p2p}");
    }
    let file = up.file();
    let pids: Vec<u32> = file.nodes.iter().filter_map(|n| n.pid).collect();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|p| alive(*p)));

    // status lists the three nodes, all answering.
    let out = lode(&["devnet", "status", "--dir", &dir.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for name in ["node0", "node1", "node2"] {
        assert!(
            text.lines().any(|l| l.starts_with(name) && !l.contains(" down ")),
            "{name}: {text}"
        );
    }

    // Let the chain grow a little, then Ctrl-C: up exits 0 and no node is left.
    let rpc0 = file.nodes[0].rpc.clone();
    wait_until_async("node0 at height 2", READY, || async {
        height(&rpc0).await.is_some_and(|h| h >= 2)
    })
    .await;
    let before = height(&rpc0).await.expect("height");
    assert!(up.stop_with("-INT"), "{}", up.output());
    for pid in &pids {
        wait_until("node process gone", STOP, || !alive(*pid));
    }

    // Running up again resumes the same chain; the node keys (peer ids) are unchanged.
    let mut again = DevnetUp::start(&dir, &args);
    again.wait_ready();
    let resumed = again.file();
    assert_eq!(
        resumed.nodes.iter().map(|n| &n.p2p).collect::<Vec<_>>(),
        file.nodes.iter().map(|n| &n.p2p).collect::<Vec<_>>()
    );
    let after = height(&rpc0).await.expect("height after resume");
    assert!(after >= before, "resumed at {after}, was {before}");

    // SIGKILL of up: the nodes die with it (parent-death signal).
    let pids: Vec<u32> = resumed.nodes.iter().filter_map(|n| n.pid).collect();
    let mut child = again.take_child();
    child.kill().expect("kill");
    let _ = child.wait();
    for pid in &pids {
        wait_until("orphaned node to exit", STOP, || !alive(*pid));
    }
    // And `down` on a stopped devnet says so, successfully.
    let out = lode(&["devnet", "down", "--dir", &dir.display().to_string()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no devnet running"));
}

/// Chain work as a comparable number (hex of up to 256 bits; devnet work fits in u128).
fn work(info: &Value) -> u128 {
    let hex = info["chainwork"].as_str().unwrap_or("0").trim_start_matches('0');
    u128::from_str_radix(if hex.is_empty() { "0" } else { hex }, 16).unwrap_or(0)
}

#[tokio::test]
async fn partition_forks_and_heal_reorgs_the_minority_onto_one_tip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    let dir_s = dir.display().to_string();
    let base = free_base(3, 0).to_string();
    let mut up = DevnetUp::start(
        &dir,
        &[
            "--nodes",
            "3",
            "--miners",
            "3",
            "--block-time",
            "1s",
            "--base-port",
            &base,
        ],
    );
    up.wait_ready();
    let file = up.file();
    let rpc: Vec<String> = file.nodes.iter().map(|n| n.rpc.clone()).collect();

    let out = lode(&["devnet", "partition", "--dir", &dir_s, "node0,node1", "/", "node2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fork = height(&rpc[2]).await.expect("node2 height");

    // Both sides mine: node2 alone builds two blocks of its own past the cut …
    wait_until_async("node2 to mine 2 blocks alone", READY, || async {
        height(&rpc[2]).await.is_some_and(|h| h >= fork + 2)
    })
    .await;
    // … then stops, so the two-miner side surely ends with more work.
    RpcClient::with_cookie(&rpc[2], &file.nodes[2].cookie)
        .expect("cookie")
        .call("setgenerate", json!([false]))
        .await
        .expect("setgenerate false");
    wait_until_async("the majority to out-work node2", READY, || async {
        let (Some(a), Some(b)) = (
            call(&rpc[0], "getblockchaininfo", json!([])).await,
            call(&rpc[2], "getblockchaininfo", json!([])).await,
        ) else {
            return false;
        };
        work(&a) > work(&b) && a["blocks"].as_u64() > b["blocks"].as_u64()
    })
    .await;
    // The first height where the sides differ (a block in flight at the cut may have made
    // it to node2, so start looking at the height read then).
    let top = height(&rpc[2]).await.expect("node2 height");
    let mut diverged = None;
    for h in fork..=top {
        let (Some(a), Some(b)) = (
            call(&rpc[0], "getblockhash", json!([h])).await,
            call(&rpc[2], "getblockhash", json!([h])).await,
        ) else {
            panic!("getblockhash {h} failed");
        };
        if a != b {
            diverged = Some((h, a, b));
            break;
        }
    }
    let (fork_height, majority_block, minority_block) = diverged.expect("the sides forked");

    let out = lode(&["devnet", "heal", "--dir", &dir_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // All nodes converge on one tip, and node2's own block at the fork was replaced.
    wait_until_async("one tip everywhere", READY, || async {
        let mut tips = Vec::new();
        for r in &rpc {
            tips.push(call(r, "getbestblockhash", json!([])).await);
        }
        tips.iter().all(|t| t.is_some() && *t == tips[0])
    })
    .await;
    let now = call(&rpc[2], "getblockhash", json!([fork_height])).await.expect("hash");
    assert_ne!(now, minority_block, "node2 reorganised away from its own branch");
    assert_eq!(now, majority_block);
    assert!(up.stop_with("-TERM"), "{}", up.output());
}

/// The lines of README.md's walkthrough that a user pastes into the second terminal.
fn readme_walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let after = readme
        .split_once("Terminal 2")
        .map(|(_, rest)| rest)
        .expect("README has a 'Terminal 2' walkthrough");
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("a sh block after 'Terminal 2'");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A README command's words: split on blanks, double quotes removed, `$ADDR` replaced.
fn words(command: &str, addr: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| w.trim_matches('"').replace("$ADDR", addr))
        .collect()
}

/// Runs `lode ARGS` in `cwd` (bounded) and returns (success, stdout, stderr).
fn lode_in(cwd: &Path, args: &[String]) -> (bool, String, String) {
    let mut child = Command::new(lode_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lode");
    let deadline = Instant::now() + READY;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lode {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn admin_call(file: &DevnetFile, name: &str, method: &str, params: Value) -> Value {
    let node = file.node(name).expect("node");
    RpcClient::with_cookie(&node.rpc, &node.cookie)
        .expect("cookie")
        .call(method, params)
        .await
        .unwrap_or_else(|e| panic!("{name} {method}: {e}"))
}

async fn tips(file: &DevnetFile) -> Vec<Option<Value>> {
    let mut tips = Vec::new();
    for n in &file.nodes {
        tips.push(call(&n.rpc, "getbestblockhash", json!([])).await);
    }
    tips
}

/// README.md's walkthrough, command by command as written (the binary stands in for the
/// `lode` alias; `sleep`s become bounded waits for what the README says follows them).
#[tokio::test]
async fn the_readme_walkthrough_works_as_written() {
    let lines = readme_walkthrough();
    assert!(lines[0].starts_with("alias lode="), "{lines:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    let dir = cwd.join("devnet");
    let base = free_base(3, 0).to_string();
    // Terminal 1 (`devnet up` with defaults but free ports and 1-second blocks).
    let mut up = DevnetUp::start(&dir, &["--block-time", "1s", "--base-port", &base]);
    up.wait_ready();
    let file = up.file();
    let premine: u64 = 10_000 * 100_000_000;

    let mut addr = String::new();
    let mut txid = String::new();
    let mut fork: Option<(u64, Value, Value)> = None;
    for line in &lines[1..] {
        for command in line.split(';').map(str::trim) {
            if command.starts_with("sleep ") {
                continue;
            }
            let (capture, command) = match command.split_once("=$(") {
                Some((var, rest)) => (Some(var), rest.trim_end_matches(')')),
                None => (None, command),
            };
            let argv = words(command, &addr);
            assert_eq!(argv[0], "lode", "{line}");
            let (ok, out, err) = lode_in(cwd, &argv[1..]);
            assert!(ok, "`{line}` failed: {err}\n{out}");
            if capture == Some("ADDR") {
                addr = out.trim().to_string();
                assert!(addr.starts_with("ldev1"), "{out}");
            }
            match (
                argv.get(1).map(String::as_str),
                argv.get(2).map(String::as_str),
                argv.get(4).map(String::as_str),
            ) {
                (Some("devnet"), Some("status"), _) => {
                    for name in ["node0", "node1", "node2"] {
                        assert!(out.lines().any(|l| l.starts_with(name)), "{out}");
                    }
                }
                (Some("wallet"), _, Some("send")) => {
                    let line = out.lines().find(|l| l.starts_with("txid")).expect("txid line");
                    txid = line.split_whitespace().last().expect("txid").to_string();
                    // Sender: exactly the amount out, and the fee.
                    let tx = admin_call(&file, "node0", "gettransaction", json!([txid])).await;
                    // Core's shape: decimal coins, the fee negative, a send's amount
                    // negative and without the fee.
                    let fee = -coins::signed_from_json(&tx["fee"]).expect("fee");
                    assert!(fee > 0 && out.contains(&format!("({fee} units)")), "{out}");
                    assert_eq!(
                        coins::signed_from_json(&tx["amount"]).ok(),
                        Some(-1_250_000_000),
                        "{tx}"
                    );
                    assert!(tx["confirmations"].as_u64() >= Some(1), "{tx}");
                }
                (Some("wallet"), _, Some("balance")) => {
                    // Receiver: exactly the amount in (node1 does not mine).
                    let b = admin_call(&file, "node1", "getbalances", json!([])).await;
                    let spendable = coins::from_json(&b["mine"]["trusted"]).map(|a| a.units());
                    assert_eq!(spendable.ok(), Some(premine + 1_250_000_000), "{b}");
                    assert!(out.contains("10012.50000000"), "{out}");
                }
                (Some("devnet"), Some("partition"), _) => {
                    // Both sides mine: the first height where node0 and node2 differ (a block
                    // in flight at the cut may still have reached node2).
                    let start = height(&file.nodes[2].rpc).await.expect("height");
                    let deadline = Instant::now() + READY;
                    while fork.is_none() {
                        assert!(Instant::now() < deadline, "no fork after the partition");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let (Some(h0), Some(h2)) = (height(&file.nodes[0].rpc).await, height(&file.nodes[2].rpc).await)
                        else {
                            continue;
                        };
                        for h in start..=h0.min(h2) {
                            let a = call(&file.nodes[0].rpc, "getblockhash", json!([h])).await;
                            let b = call(&file.nodes[2].rpc, "getblockhash", json!([h])).await;
                            if let (Some(a), Some(b)) = (a, b) {
                                if a != b {
                                    fork = Some((h, a, b));
                                    break;
                                }
                            }
                        }
                    }
                }
                (Some("devnet"), Some("heal"), _) => {
                    wait_until_async("one tip after heal", READY, || async {
                        let t = tips(&file).await;
                        t.iter().all(|x| x.is_some() && *x == t[0])
                    })
                    .await;
                    // Whichever side had less work gave up its block at the fork height.
                    let (h, side_a, side_b) = fork.clone().expect("forked before heal");
                    let now = call(&file.nodes[1].rpc, "getblockhash", json!([h]))
                        .await
                        .expect("hash");
                    assert!(now == side_a || now == side_b, "{now} is neither side's block");
                    let loser = if now == side_a { 2 } else { 0 };
                    let replaced = call(&file.nodes[loser].rpc, "getblockhash", json!([h])).await;
                    assert_eq!(replaced, Some(now), "node{loser} reorganised onto the other side");
                }
                _ => {}
            }
        }
    }
    assert!(
        !txid.is_empty() && fork.is_some(),
        "the walkthrough sends and partitions"
    );
    // The last line was `lode devnet down`: up has exited cleanly and no node is left.
    let mut child = up.take_child();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{}", up.output());
    let pids: Vec<u32> = file.nodes.iter().filter_map(|n| n.pid).collect();
    for pid in &pids {
        wait_until("node gone", STOP, || !alive(*pid));
    }
    // Running up again resumes at the same height or above.
    let before = fork.map_or(0, |(h, _, _)| h);
    let mut again = DevnetUp::start(&dir, &["--block-time", "1s", "--base-port", &base]);
    again.wait_ready();
    let after = height(&file.nodes[1].rpc).await.expect("height");
    assert!(after >= before, "resumed at {after}, below {before}");
    assert!(again.stop_with("-INT"), "{}", again.output());
}

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `stratum+tcp://HOST:PORT` URLs `devnet up` printed, in order of appearance, once each.
fn printed_stratum_urls(out: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for (i, _) in out.match_indices("stratum+tcp://") {
        let url: String = out[i..].chars().take_while(|c| !c.is_whitespace()).collect();
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_up_stratum_prints_ports_that_answer_and_lode_miner_mines_a_block_every_node_sees() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    // Ten free ports: P2P and RPC of three nodes, then their Stratum ports.
    let base = free_base(5, 0);
    let stratum_base = base + 6;
    let mut up = DevnetUp::start(
        &dir,
        &[
            "--nodes",
            "3",
            "--miners",
            "0",
            "--block-time",
            "1s",
            "--base-port",
            &base.to_string(),
            "--stratum",
            "--stratum-base-port",
            &stratum_base.to_string(),
        ],
    );
    up.wait_ready();
    // The table with the ports follows the ready line.
    wait_until("the Stratum ports printed", Duration::from_secs(30), || {
        printed_stratum_urls(&up.output()).len() >= 3
    });
    let urls = printed_stratum_urls(&up.output());
    let expected: Vec<String> = (0..3)
        .map(|i| format!("stratum+tcp://127.0.0.1:{}", stratum_base + i))
        .collect();
    assert_eq!(urls, expected, "{}", up.output());
    // Every printed port answers a subscribe.
    for url in &urls {
        let at = lode_node::client::stratum::parse_url(url).expect("url");
        let mut c = lode_node::client::stratum::Connection::connect(&at)
            .await
            .expect("connect");
        c.subscribe("devnet-test").await.expect("subscribe answered");
        assert_eq!(c.en1.len() + c.en2_size, 8, "{url}");
    }

    // `lode miner` against node0's printed port mines a block paying its address.
    let address = lode_chain::PubkeyHash([0x5a; 20]).to_address("ldev").expect("address");
    let log = std::fs::File::create(tmp.path().join("miner.log")).expect("log");
    let miner = Command::new(lode_bin())
        .args([
            "miner",
            "--url",
            &urls[0],
            "--user",
            &format!("{address}.devnet"),
            "--threads",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lode miner");
    let _miner = Killed(miner);
    let file = up.file();
    for node in &file.nodes {
        let url = format!("{}/api/v1/address/{address}", node.rpc);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let received = match reqwest::get(&url).await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["received"].as_u64()),
                Err(_) => None,
            };
            if received.unwrap_or(0) > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} holds no block paying the Stratum miner; miner log:\n{}",
                node.name,
                std::fs::read_to_string(tmp.path().join("miner.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let info = call(&file.nodes[0].rpc, "getstratuminfo", json!([]))
        .await
        .expect("getstratuminfo");
    assert_eq!(info["mode"], "solo");
    assert!(info["blocks_found"].as_u64().unwrap_or(0) >= 1, "{info}");
    assert!(up.stop_with("-INT"), "devnet up exits cleanly");
}
