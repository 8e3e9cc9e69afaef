//! `lode node` processes on this machine (127.0.0.1 only), each with a data dir kept across
//! restarts and one log file appended to by every run: the harness of the durability
//! tests (full disk, damaged store, crash loop).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lode_node::client::http::RpcClient;
use serde_json::Value;

use crate::lode_bin;

/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One node process (or none, between runs) and its files.
pub struct LocalNode {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log (stderr of every run, appended).
    pub log: PathBuf,
    /// Flags after `lode node --network regtest --data-dir DIR` and the local listeners.
    extra: Vec<String>,
    url: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl LocalNode {
    /// A regtest node on `data_dir` logging to `log`, not started yet.
    ///
    /// # Panics
    /// When no tokio runtime can be built.
    pub fn new(data_dir: &Path, log: &Path, extra: &[&str]) -> LocalNode {
        LocalNode {
            child: None,
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            url: None,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// Starts it and waits for its RPC.
    ///
    /// # Panics
    /// When it exits or does not listen in time (with its log).
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}\n{}", self.log_tail(40));
        }
    }

    /// Starts it; `Err` with why when it exits before its RPC listens.
    ///
    /// # Panics
    /// When the process cannot be spawned.
    pub fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        // A killed run leaves its rpc_url behind.
        let url_file = self.data_dir.join("rpc_url");
        let _ = std::fs::remove_file(&url_file);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(lode_bin())
            .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lode");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("lode node exited at start: {status}"));
            }
            if let Ok(url) = std::fs::read_to_string(&url_file) {
                if !url.trim().is_empty() {
                    self.url = Some(url.trim().to_string());
                    return Ok(());
                }
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(format!("no RPC within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while its process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for it to exit on its own; its exit code (`None`: killed by a signal).
    ///
    /// # Panics
    /// When it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            let c = self.child.as_mut().expect("running");
            if let Some(status) = c.try_wait().expect("wait") {
                self.child = None;
                return status.code();
            }
            assert!(
                start.elapsed() < timeout,
                "did not exit within {timeout:?}\n{}",
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its RPC base URL (of the current run).
    ///
    /// # Panics
    /// When it was never started.
    pub fn url(&self) -> &str {
        self.url.as_deref().expect("started")
    }

    fn client(&self) -> Result<RpcClient, String> {
        RpcClient::with_cookie(self.url(), &self.data_dir.join(".cookie")).map_err(|e| e.to_string())
    }

    /// A JSON-RPC call; `Err` with the error text (refusals and transport failures).
    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let client = self.client()?;
        let fut = async { tokio::time::timeout(Duration::from_secs(30), client.call(method, params)).await };
        match self.rt.block_on(fut) {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 30 s".into()),
        }
    }

    /// A JSON-RPC call that must succeed.
    ///
    /// # Panics
    /// When it fails.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", self.log_tail(30)))
    }

    /// `GET path`: status and JSON body.
    pub fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let client = self.client()?;
        self.rt.block_on(client.get(path)).map_err(|e| e.to_string())
    }

    /// Every run's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A running regtest peer and a running node dialling it, both in `dir` (`peer/`, `node/`
/// and their logs): `(peer, node, the peer's P2P address)`.
///
/// # Panics
/// When either cannot start or the peer reports no P2P address.
pub fn peer_and_node(dir: &Path) -> (LocalNode, LocalNode, String) {
    let mut peer = LocalNode::new(&dir.join("peer"), &dir.join("peer.log"), &[]);
    peer.start();
    let peer_addr = peer.rpc("getnetworkinfo", serde_json::json!([]))["lode_p2p_addrs"][0]
        .as_str()
        .expect("peer address")
        .to_string();
    let mut node = LocalNode::new(&dir.join("node"), &dir.join("node.log"), &["--peer", &peer_addr]);
    node.start();
    (peer, node, peer_addr)
}

/// On `node`: 30 blocks, three payments of 1 coin to `peer`, a block confirming them; returns
/// their txids and the tip once `peer` has it too.
///
/// # Panics
/// When a call fails or the peer does not catch up within a minute.
pub fn three_confirmed_payments(peer: &LocalNode, node: &LocalNode) -> (Vec<String>, Value) {
    node.rpc("generate", serde_json::json!([30]));
    let to = peer.rpc("getnewaddress", serde_json::json!([]));
    let paid: Vec<String> = (0..3)
        .map(|_| {
            node.rpc("sendtoaddress", serde_json::json!([to, 1.0]))
                .as_str()
                .expect("txid")
                .to_string()
        })
        .collect();
    node.rpc("generate", serde_json::json!([1]));
    let tip = node.rpc("getbestblockhash", serde_json::json!([]));
    crate::wait_until("the peer has the chain", Duration::from_secs(60), || {
        peer.rpc("getbestblockhash", serde_json::json!([])) == tip
    });
    (paid, tip)
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `lode ARGS` to completion (a client or admin command).
///
/// # Panics
/// When it cannot be spawned.
pub fn lode(args: &[&str]) -> Output {
    Command::new(lode_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run lode")
}

/// True if a skip must fail instead (CI, or `LODE_REQUIRE_NETNS=1` as for the lab tests).
pub fn skips_forbidden() -> bool {
    std::env::var("LODE_REQUIRE_NETNS").ok().as_deref() == Some("1")
        || std::env::var("CI").ok().as_deref() == Some("true")
}

/// A tmpfs of a chosen size mounted on a temporary directory (root only), unmounted when
/// dropped: a small disk a test can fill up and grow again.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `16m`). Where that is not permitted,
    /// prints `SKIP: <reason>` and returns `None`.
    ///
    /// # Panics
    /// When mounting fails and skips are forbidden ([`skips_forbidden`]).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "lode-test"])
            .arg(dir.path())
            .output();
        let reason = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir }),
            Ok(o) => format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("cannot run mount: {e}"),
        };
        assert!(!skips_forbidden(), "CI/LODE_REQUIRE_NETNS forbid skipping: {reason}");
        eprintln!("SKIP: {reason}");
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grows (or shrinks) it to `size` in place, keeping its files.
    ///
    /// # Panics
    /// When the remount fails.
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("mount")
            .success();
        assert!(ok, "remount to {size}");
    }

    /// Fills what is free with a file (`filler`) until the file system refuses; returns
    /// how many bytes it took.
    ///
    /// # Panics
    /// On an error other than "no space".
    pub fn fill(&self, leave: u64) -> u64 {
        use std::io::Write;
        let mut f = File::create(self.dir.path().join("filler")).expect("filler");
        let chunk = vec![0x5au8; 4096];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        let _ = f.sync_all();
        // Give back `leave` bytes: room for a few more writes before the disk is full.
        let keep = written.saturating_sub(leave);
        f.set_len(keep).expect("trim filler");
        keep
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there does not keep the mount alive.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
