//! The explorer (`GET /` of every node) and the devnet page in a real browser: Debian's
//! `chromium` driven by `playwright-core` (scripts in `tests/browser/`, installed by
//! `.ci/run`), against a real devnet of `lode` processes. Screenshots of every view go to
//! `target/screenshots/`.
//!
//! Without chromium, node or the npm packages the test prints SKIP and passes — except on
//! CI (`CI=true`), where a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_tests::devnet::{free_base, DevnetUp};
use lode_tests::lode_bin;

/// Start-up of a debug build on a busy two-core machine: generous, never a timing claim.
const READY: Duration = Duration::from_secs(120);
/// The longest one browser script may run.
const SCRIPT: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The scripts' directory when chromium, node and the npm packages are all there; else why
/// not — a SKIP locally, a failure on CI.
fn tools() -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let dir = browser_dir();
    let missing = if !chromium.exists() {
        Some(format!(
            "{} is not installed (apt-get install chromium)",
            chromium.display()
        ))
    } else if Command::new("node")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        Some("node is not installed".to_string())
    } else if !dir.join("node_modules/playwright-core").exists() || !dir.join("node_modules/axe-core").exists() {
        Some(format!("npm packages missing: run `npm ci` in {}", dir.display()))
    } else {
        None
    };
    match missing {
        None => Some(dir),
        Some(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("browser tests cannot run on CI: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIP: browser test not run: {reason}");
            None
        }
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

/// Runs `node SCRIPT` in the scripts' directory with `env`, bounded; panics with its output
/// unless it succeeds.
fn run_script(dir: &Path, script: &str, env: &[(&str, String)]) {
    let log = std::env::temp_dir().join(format!("lode-browser-{}-{script}.log", std::process::id()));
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node");
    let deadline = Instant::now() + SCRIPT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} ran longer than {SCRIPT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    eprintln!("{output}");
    assert!(status.success(), "{script} failed ({status}):\n{output}");
}

fn address_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("ldev1"))
        .unwrap_or_else(|| panic!("no address in {text:?}"))
        .to_string()
}

fn txid_in(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v["txid"]
        .as_str()
        .unwrap_or_else(|| panic!("no txid in {json}"))
        .to_string()
}

/// One devnet for both pages (start-up is the slow part): two nodes, both mining, so a
/// partition forks the chain.
#[test]
fn the_explorer_and_the_devnet_page_show_a_live_devnet_in_a_real_browser() {
    let Some(scripts) = tools() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = free_base(3, 250);
    let devnet = DevnetUp::ready(
        &tmp.path().join("dn"),
        &["--nodes", "2", "--miners", "2", "--base-port", &base.to_string()],
    );
    let file = devnet.file();
    let to = address_in(&devnet.lode(&["wallet", "--devnet", "node1", "address"]));
    let txid = txid_in(&devnet.lode(&["wallet", "--devnet", "node0", "--json", "send", &to, "1.5"]));
    run_script(
        &scripts,
        "explorer.mjs",
        &[
            ("LODE_URL", file.nodes[0].rpc.clone()),
            ("LODE_TXID", txid),
            ("LODE_SCREENSHOTS", screenshots().display().to_string()),
        ],
    );
    let page = devnet
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("devnet page: ").map(str::trim).map(str::to_string))
        .unwrap_or_else(|| panic!("no devnet page URL in the output:\n{}", devnet.output()));
    run_script(
        &scripts,
        "devnet.mjs",
        &[
            ("LODE_DEVNET_PAGE", page),
            ("LODE_BIN", lode_bin().display().to_string()),
            ("LODE_DIR", devnet.dir.display().to_string()),
            ("LODE_NODES", "2".to_string()),
            ("LODE_SCREENSHOTS", screenshots().display().to_string()),
        ],
    );
}

/// A lone process (a node or a miner), killed on drop; `pidfile` names a process the
/// script started in its place (the restarted node), killed too.
struct Proc {
    child: Child,
    pidfile: Option<PathBuf>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = self
            .pidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// A free port on 127.0.0.1 (the node's HTTP port must stay the same across its restart:
/// the page's origin).
fn free_port() -> u16 {
    let base = free_base(1, 250);
    base + 1
}

/// Waits until `f` gives something, panicking with `what` and the log after `READY`.
fn wait_for<T>(what: &str, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + READY;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen after {READY:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// JSON-RPC `method` (a public read) at `url`, its result, or `None` when the node does not
/// answer yet.
fn public_call(
    rt: &tokio::runtime::Runtime,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Option<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let v: serde_json::Value = client
            .post(format!("{url}/rpc"))
            .json(&body)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let r = v.get("result")?.clone();
        (!r.is_null()).then_some(r)
    })
}

/// A node running a Stratum pool with a real `lode miner` on it: the explorer's pool panel
/// appears and its figures are `getpoolinfo`'s; then the node is killed and started again
/// while the page is open (the script does both): the indicator shows the drop and the
/// return, and a block mined meanwhile appears without a reload.
#[test]
fn the_pool_panel_matches_getpoolinfo_and_the_page_rides_out_a_restart_of_its_node() {
    let Some(scripts) = tools() else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let args: Vec<String> = [
        "node",
        "--network",
        "regtest",
        "--p2p-listen",
        "/ip4/127.0.0.1/tcp/0",
        "--rpc-listen",
        &format!("127.0.0.1:{port}"),
        "--no-mdns",
        "--rpc-rate-limit",
        "0",
        "--stratum",
        "127.0.0.1:0",
        "--pool",
        "--pool-min-payout",
        "1",
        "--data-dir",
        &data.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let node = Proc {
        child: Command::new(lode_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn lode node"),
        pidfile: Some(tmp.path().join("restarted.pid")),
    };
    let stratum = wait_for("the Stratum server", &log, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("Stratum server listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    });
    let address = lode_chain::PubkeyHash([7; 20]).to_address("lreg").expect("address");
    let miner_log = tmp.path().join("miner.log");
    let mut miner = Proc {
        child: Command::new(lode_bin())
            .args(["miner", "--url", &format!("stratum+tcp://{stratum}")])
            .args(["--user", &format!("{address}.rig"), "--threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&miner_log).expect("log"))
            .spawn()
            .expect("spawn lode miner"),
        pidfile: None,
    };
    // On regtest's easiest target the miner's shares are blocks: wait until a pool block
    // paid the miner's address, so the panel has miners, shares, a window and payouts.
    wait_for("a pool block paying the miner", &miner_log, || {
        let info = public_call(&rt, &url, "getpoolinfo", serde_json::json!([]))?;
        info["recent_blocks"].as_array()?.iter().find_map(|b| {
            let rec = public_call(&rt, &url, "getpoolblock", serde_json::json!([b["hash"]]))?;
            rec["outputs"]
                .as_array()?
                .iter()
                .any(|o| o["address"] == serde_json::json!(address))
                .then_some(())
        })
    });
    // The miner stops so the figures hold still while the page and the RPC are compared.
    let _ = miner.child.kill();
    let _ = miner.child.wait();
    run_script(
        &scripts,
        "pool.mjs",
        &[
            ("LODE_URL", url.clone()),
            ("LODE_BIN", lode_bin().display().to_string()),
            ("LODE_NODE_ARGS", serde_json::to_string(&args).expect("json")),
            ("LODE_NODE_PID", node.child.id().to_string()),
            ("LODE_DATA", data.display().to_string()),
            ("LODE_PIDFILE", tmp.path().join("restarted.pid").display().to_string()),
            ("LODE_MINER_ADDRESS", address),
            ("LODE_SCREENSHOTS", screenshots().display().to_string()),
        ],
    );
    drop(node);
}
