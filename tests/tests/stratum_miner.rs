//! `lode miner` (the real binary) against a real `lode node --stratum --pool`: it finds
//! blocks that pay its address, prints its hash-rate line, and every share the pool
//! acknowledged survives a SIGKILL of the node.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lode_tests::{lode_bin, wait_until};
use serde_json::{json, Value};

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_node(dir: &Path, log: &str) -> Guard {
    let log = std::fs::File::create(dir.join(log)).expect("log");
    let child = Command::new(lode_bin())
        .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
        .args(["--stratum", "127.0.0.1:0", "--pool", "--pool-min-payout", "1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lode");
    Guard(child)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The Stratum address the node logged (it listens on an OS-chosen port).
fn stratum_addr(dir: &Path, log: &str) -> String {
    let mut found = None;
    wait_until("the Stratum server to listen", Duration::from_secs(30), || {
        found = read(dir, log)
            .lines()
            .find(|l| l.contains("Stratum server listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        found.is_some()
    });
    found.expect("address")
}

fn rpc_url(dir: &Path) -> String {
    let file = dir.join("data").join("rpc_url");
    wait_until("rpc_url", Duration::from_secs(30), || file.exists());
    std::fs::read_to_string(file).expect("rpc_url").trim().to_string()
}

async fn call(url: &str, method: &str, params: Value) -> Value {
    let r: Value = reqwest::Client::new()
        .post(format!("{url}/rpc"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("rpc")
        .json()
        .await
        .expect("json");
    r["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lode_miner_finds_blocks_and_acknowledged_shares_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = spawn_node(dir.path(), "node.log");
    let stratum = stratum_addr(dir.path(), "node.log");
    let url = rpc_url(dir.path());
    let address = lode_chain::PubkeyHash([7; 20]).to_address("lreg").expect("address");

    let miner_log = std::fs::File::create(dir.path().join("miner.log")).expect("log");
    let mut miner = Guard(
        Command::new(lode_bin())
            .args(["miner", "--url", &format!("stratum+tcp://{stratum}")])
            .args([
                "--user",
                &format!("{address}.rig"),
                "--threads",
                "1",
                "--report-secs",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(miner_log)
            .spawn()
            .expect("spawn lode miner"),
    );
    // Blocks on regtest's easiest target: the miner's shares are blocks.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = call(&url, "getpoolinfo", json!([])).await;
        let blocks = info["blocks_found"].as_u64().unwrap_or(0);
        if blocks >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lode miner found no blocks: {}",
            read(dir.path(), "miner.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("a hash-rate line", Duration::from_secs(10), || {
        read(dir.path(), "miner.log").contains("H/s")
    });

    // After the window has its shares, the pool's blocks pay the miner's address.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    'paid: loop {
        let info = call(&url, "getpoolinfo", json!([])).await;
        for b in info["recent_blocks"].as_array().cloned().unwrap_or_default() {
            let rec = call(&url, "getpoolblock", json!([b["hash"]])).await;
            if rec["outputs"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["address"] == json!(address)))
            {
                break 'paid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pool block paid the miner: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stratum_info = call(&url, "getstratuminfo", json!([])).await;
    assert_eq!(stratum_info["mode"], "pool");
    assert!(stratum_info["accepted"].as_u64().unwrap_or(0) >= 3, "{stratum_info}");

    // Stop the miner, note what the pool acknowledged, then SIGKILL the node.
    let _ = miner.0.kill();
    let _ = miner.0.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acknowledged = call(&url, "getpoolinfo", json!([])).await["shares_accepted"]
        .as_u64()
        .expect("shares_accepted");
    assert!(acknowledged >= 3);
    let mut node = node;
    let _ = node.0.kill();
    let _ = node.0.wait();

    // The killed node left its URL file behind: the restarted one writes a fresh one.
    let _ = std::fs::remove_file(dir.path().join("data").join("rpc_url"));
    let _node = spawn_node(dir.path(), "node2.log");
    stratum_addr(dir.path(), "node2.log");
    let url = rpc_url(dir.path());
    let mut logged = 0;
    wait_until("the restarted pool to answer", Duration::from_secs(30), || {
        let url = url.clone();
        logged = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("rt")
                .block_on(async move { call(&url, "getpoolinfo", json!([])).await["shares_logged"].as_u64() })
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or(0);
        logged > 0
    });
    assert!(
        logged >= acknowledged,
        "{logged} shares logged after SIGKILL, {acknowledged} acknowledged before"
    );
}
