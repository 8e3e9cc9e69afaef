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

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("VmRSS")
}

/// One miner connection from `from`: subscribed, authorized, its first job received.
async fn connected_miner(at: std::net::SocketAddr, from: std::net::IpAddr, user: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::new(from, 0)).expect("bind");
    let mut stream = socket.connect(at).await.expect("connect");
    let hello = format!(
        "{}\n{}\n",
        json!({"id": 1, "method": "mining.subscribe", "params": ["bench/1"]}),
        json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]})
    );
    stream.write_all(hello.as_bytes()).await.expect("write");
    let mut reader = tokio::io::BufReader::new(&mut stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .expect("read");
        assert!(n > 0, "the server closed a miner connection");
        if line.contains("mining.notify") {
            break;
        }
    }
    stream
}

/// Benchmark: the node's added resident memory per connected miner, 1,000 real TCP
/// connections (from five loopback addresses, under the per-address cap), each subscribed,
/// authorized and sent its job. Goal: under 50 MB for 1,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo nextest run -p lode-tests --test stratum_miner --run-ignored only bench_ --no-capture"]
async fn bench_memory_per_connected_miner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
    let node = Guard(
        Command::new(lode_bin())
            .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--stratum", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lode"),
    );
    let at: std::net::SocketAddr = stratum_addr(dir.path(), "node.log").parse().expect("addr");
    let user = format!(
        "{}.bench",
        lode_chain::PubkeyHash([3; 20]).to_address("lreg").expect("address")
    );
    let ips: Vec<std::net::IpAddr> = (2..7u8).map(|i| std::net::Ipv4Addr::new(127, 0, 0, i).into()).collect();
    // Warm-up: the first connections' one-time allocations (runtime, template) are not
    // per-miner memory.
    let mut warm = Vec::new();
    for ip in &ips {
        warm.push(connected_miner(at, *ip, &user).await);
    }
    drop(warm);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = node.0.id();
    let before = rss_kib(pid);
    let mut miners = Vec::new();
    for i in 0..1_000 {
        miners.push(connected_miner(at, ips[i % ips.len()], &user).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let url = rpc_url(dir.path());
    let info = call(&url, "getstratuminfo", json!([])).await;
    assert!(info["connections"].as_u64().unwrap_or(0) >= 1_000, "{info}");
    let delta = after.saturating_sub(before);
    eprintln!(
        "stratum memory: RSS {before} KiB idle → {after} KiB with 1,000 miners: {delta} KiB added, {:.1} KiB per miner ({:.1} MB per 1,000; goal < 50 MB)",
        delta as f64 / 1_000.0,
        delta as f64 / 1_024.0
    );
    assert!(delta < 50 * 1_024, "{delta} KiB for 1,000 miners");
    drop(miners);
}

/// The hash rates on `lode miner`'s status lines (`1.23 MH/s  accepted …`), in H/s.
fn status_rates(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let value: f64 = words.next()?.parse().ok()?;
            let scale = match words.next()? {
                "GH/s" => 1e9,
                "MH/s" => 1e6,
                "kH/s" => 1e3,
                "H/s" => 1.0,
                _ => return None,
            };
            Some(value * scale)
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Benchmark: `lode miner --threads 1` through the node's Stratum port against the embedded
/// miner with one thread, on a chain too hard for either to find a block (so both only
/// hash), alternating twice in one run. Goal: ratio ≥ 0.95.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo nextest run -p lode-tests --test stratum_miner --run-ignored only bench_ --no-capture"]
async fn bench_lode_miner_hashrate_against_the_embedded_miner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut params = lode_chain::ChainParams::devnet_with_spacing(600);
    // About 2^48 hashes a block: none found while measuring.
    params.genesis_bits = 0x1b00_ffff;
    let spec = dir.path().join("chain.toml");
    std::fs::write(&spec, params.to_toml_string().expect("toml")).expect("spec");
    let spec = spec.display().to_string();
    let address = lode_chain::PubkeyHash([4; 20])
        .to_address(&params.hrp)
        .expect("address");
    let node = |run: &str, extra: &[&str]| {
        let data = dir.path().join(run);
        let log = std::fs::File::create(dir.path().join(format!("{run}.log"))).expect("log");
        Guard(
            Command::new(lode_bin())
                .args(["node", "--network", &spec, "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
                .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
                .args(extra)
                .arg("--data-dir")
                .arg(&data)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn lode"),
        )
    };
    let (mut embedded, mut stratum) = (Vec::new(), Vec::new());
    for round in 0..2 {
        // The embedded miner, one thread: its own rate over the last seconds.
        let run = format!("embedded{round}");
        let n = node(&run, &["--mine", "--miner-threads", "1", "--mining-address", &address]);
        let url = {
            let file = dir.path().join(&run).join("rpc_url");
            wait_until("rpc_url", Duration::from_secs(60), || file.exists());
            std::fs::read_to_string(file).expect("rpc_url").trim().to_string()
        };
        tokio::time::sleep(Duration::from_secs(8)).await;
        let mut rates = Vec::new();
        for _ in 0..3 {
            let info = call(&url, "getmininginfo", json!([])).await;
            rates.push(info["hashespersec"].as_f64().expect("hashespersec"));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        drop(n);
        embedded.push(mean(&rates));

        // `lode miner`, one thread, through the Stratum port of a node that does not mine.
        let run = format!("stratum{round}");
        let _n = node(&run, &["--stratum", "127.0.0.1:0"]);
        let at = stratum_addr(dir.path(), &format!("{run}.log"));
        let log = dir.path().join(format!("miner{round}.log"));
        let miner = Guard(
            Command::new(lode_bin())
                .args(["miner", "--url", &format!("stratum+tcp://{at}"), "--user", &address])
                .args(["--threads", "1", "--report-secs", "2"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("spawn lode miner"),
        );
        wait_until("five status lines", Duration::from_secs(60), || {
            status_rates(&std::fs::read_to_string(&log).unwrap_or_default()).len() >= 5
        });
        drop(miner);
        let rates = status_rates(&std::fs::read_to_string(&log).unwrap_or_default());
        // The first lines include connecting and the first job.
        stratum.push(mean(&rates[2..]));
    }
    let (e, s) = (mean(&embedded), mean(&stratum));
    eprintln!(
        "hash rate, one thread: embedded {:.2} MH/s (runs {:?}), lode miner via Stratum {:.2} MH/s (runs {:?}); ratio {:.3} (goal ≥ 0.95)",
        e / 1e6,
        embedded.iter().map(|r| format!("{:.2}", r / 1e6)).collect::<Vec<_>>(),
        s / 1e6,
        stratum.iter().map(|r| format!("{:.2}", r / 1e6)).collect::<Vec<_>>(),
        s / e
    );
    assert!(e > 0.0 && s > 0.0);
}
