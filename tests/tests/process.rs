//! The `lode node` process: a clean exit on Ctrl-C or RPC `stop`, and a forced exit on a
//! second Ctrl-C while the graceful shutdown still waits for the chain.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_tests::{lode_bin, wait_until};

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_node(dir: &Path) -> Guard {
    let log = std::fs::File::create(dir.join("node.log")).expect("log");
    let child = Command::new(lode_bin())
        .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lode");
    Guard(child)
}

fn rpc_url(dir: &Path) -> String {
    let file = dir.join("data").join("rpc_url");
    wait_until("rpc_url", Duration::from_secs(30), || file.exists());
    std::fs::read_to_string(file).expect("rpc_url").trim().to_string()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

fn exit_code(guard: &mut Guard, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
}

async fn post(url: &str, token: &str, body: serde_json::Value) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{url}/rpc"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_rpc_stop_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = spawn_node(dir.path());
    rpc_url(dir.path());
    signal(&node.0, "-INT");
    assert_eq!(
        exit_code(&mut node, Duration::from_secs(30)),
        Some(0),
        "{}",
        log(dir.path())
    );
    assert!(log(dir.path()).contains("node stopped"));

    // Again, stopped through the RPC: the chain it had is still there.
    let mut node = spawn_node(dir.path());
    let url = rpc_url(dir.path());
    let token = cookie_token(dir.path());
    let r = post(
        &url,
        &token,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "stop"}),
    )
    .await
    .expect("stop");
    assert!(r.status().is_success());
    assert_eq!(
        exit_code(&mut node, Duration::from_secs(30)),
        Some(0),
        "{}",
        log(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_forces_the_exit_while_the_chain_is_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = spawn_node(dir.path());
    let url = rpc_url(dir.path());
    let token = cookie_token(dir.path());
    // Queue thousands of blocks of work on the chain thread: a graceful shutdown would wait
    // for all of it.
    for _ in 0..5 {
        let (url, token) = (url.clone(), token.clone());
        tokio::spawn(async move {
            let _ = post(
                &url,
                &token,
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "generate", "params": [1000]}),
            )
            .await;
        });
    }
    // Wait until the chain is visibly busy.
    let started = Instant::now();
    loop {
        let r = reqwest::get(format!("{url}/api/v1/tip")).await;
        if let Ok(r) = r {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            if v["height"].as_u64().unwrap_or(0) > 0 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "generate never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&node.0, "-INT");
    wait_until("the shutdown message", Duration::from_secs(10), || {
        log(dir.path()).contains("Ctrl-C again to force")
    });
    signal(&node.0, "-INT");
    assert_eq!(
        exit_code(&mut node, Duration::from_secs(10)),
        Some(130),
        "{}",
        log(dir.path())
    );
    assert!(log(dir.path()).contains("forced exit"));
}

/// The token of the node's cookie file (Core's format, `__cookie__:TOKEN`), for `Bearer`.
fn cookie_token(dir: &Path) -> String {
    let line = std::fs::read_to_string(dir.join("data/.cookie")).expect("cookie");
    let (user, token) = line.trim().split_once(':').expect("__cookie__:TOKEN");
    assert_eq!(user, "__cookie__");
    token.to_string()
}
