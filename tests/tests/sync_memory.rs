//! Peak memory of a node during initial sync, with the serving and syncing nodes in separate
//! `lode node` processes (ignored: a benchmark, run on purpose):
//!
//! ```text
//! cargo nextest run -p lode-tests --test sync_memory --run-ignored only --no-capture
//! ```
//!
//! A chain of `LODE_BENCH_SYNC_BLOCKS` (default 2,000, the sync of issue 16) blocks of 500
//! one-input transactions is built with the chain crate into the serving node's data dir;
//! a fresh node then syncs it
//! from that one peer with `--dbcache MB` for each budget in `LODE_BENCH_DBCACHE` (default
//! `4,16,64`). Printed per budget: the syncing process's peak RSS (`VmHWM` of
//! `/proc/PID/status`), the same for an idle node (the process's fixed footprint), and the
//! peak over that footprint against the budget (`LODE_BENCH_TIMELINE=1` also prints the RSS
//! and height at every poll). Asserted: the sync reaches the tip, and the peak stays under
//! the bound ADR 0006 states: idle + 2 × budget + a fixed part + a part per transaction on
//! the chain (sled's), each term measured or capped by the code ([`fixed_bound`]).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_chain::build::{seeded_key, spend_chain};
use lode_chain::{Block, ChainParams, ChainState};
use lode_node::client::RpcClient;
use lode_tests::{lode_bin, wait_until};

/// Transactions per block (besides the coinbase).
const TXS: usize = 500;

/// A `lode node --network regtest` process, killed on drop.
struct NodeProc {
    child: Child,
    data_dir: PathBuf,
    log: PathBuf,
}

impl NodeProc {
    fn start(dir: &Path, extra: &[String]) -> NodeProc {
        let data_dir = dir.join("data");
        let log = dir.join("node.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(lode_bin())
            .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn lode node");
        let mut node = NodeProc { child, data_dir, log };
        let url_file = node.data_dir.join("rpc_url");
        wait_until("the node's rpc_url", Duration::from_secs(60), || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("lode node exited with {status}: {}", node.log());
            }
            std::fs::read_to_string(&url_file).is_ok_and(|s| s.ends_with('\n'))
        });
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self) -> RpcClient {
        let url = std::fs::read_to_string(self.data_dir.join("rpc_url")).expect("rpc_url");
        RpcClient::new(url.trim(), None)
    }

    fn call(&self, rt: &tokio::runtime::Runtime, method: &str) -> Option<serde_json::Value> {
        rt.block_on(self.client().call(method, serde_json::json!([]))).ok()
    }

    /// Its P2P address with /p2p/PEER_ID.
    fn p2p_addr(&self, rt: &tokio::runtime::Runtime) -> String {
        let info = self.call(rt, "getnetworkinfo").expect("getnetworkinfo");
        info["lode_p2p_addrs"][0].as_str().expect("a local address").to_string()
    }

    /// A `kB` field of `/proc/PID/status`, in bytes.
    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
            * 1024
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` blocks of [`TXS`] transactions on regtest (see [`spend_chain`]).
fn chain(params: &ChainParams, n: usize) -> Vec<Block> {
    spend_chain(params, n, TXS, &seeded_key(8))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

const MIB: f64 = (1u64 << 20) as f64;

/// sled counts a cached page at its serialized size, but holds it as a tree node of
/// separately allocated keys and values: ≈ 3 × in memory (heaptrack of a sync at
/// `--dbcache 0`; cutting the capacity from 16 to 4 MiB lowered the peak by ≈ 23 MiB).
const SLED_RESIDENT_FACTOR: u64 = 3;

/// What glibc keeps resident beyond the live heap (freed chunks in partly used pages, which
/// neither `malloc_trim` nor the arena settings give back): measured, not derived. At
/// `--dbcache 16`, the worst budget, peak RSS 209.7 MiB against a heaptrack heap peak of
/// 126.6 MiB touched and ≈ 24 MiB of binary, libraries and stacks: ≈ 59 MiB (issue 16,
/// seventh pass; `MALLOC_ARENA_MAX=1` or `2`, a 32 KiB mmap threshold and mimalloc did not
/// lower the peak).
const ALLOCATOR_SLACK: u64 = 60 << 20;

/// Bytes sled 0.34 keeps in memory per transaction on the chain, cached or not: its page
/// table's entry for every page of the database and the segment accountant's record of
/// where each page lies. Pages follow entries, and the tx index has one per transaction.
/// Measured: 18.3 MB at 1.0 M transactions (heaptrack, issue 16 sixth pass). The one term
/// of the bound that grows with the chain.
const SLED_BYTES_PER_TX: u64 = 20;

/// The part of ADR 0006's process bound that does not depend on `--dbcache` or the chain,
/// each term capped by a constant of the code or measured: sync's buffer of downloaded
/// blocks ([`lode_node::network::sync::MAX_BUFFERED_BYTES`], counted decoded until the chain
/// task's verdict), sled's page cache as held in memory, the signature cache, and the
/// allocator's slack. The budget's own part is 2 × budget: the cache itself, and during a
/// large flush what applying it costs sled (node copies not yet freed, pages it pulled).
/// The chain's part is [`SLED_BYTES_PER_TX`] per transaction.
fn fixed_bound() -> u64 {
    lode_node::network::sync::MAX_BUFFERED_BYTES as u64
        + SLED_RESIDENT_FACTOR * lode_chain::store::SLED_PAGE_CACHE_BYTES
        + lode_chain::sig::SigCache::heap_bytes(lode_chain::state::SIG_CACHE_ENTRIES) as u64
        + ALLOCATOR_SLACK
}

#[test]
#[ignore = "benchmark: builds and syncs a chain of 500-transaction blocks in separate processes"]
fn peak_rss_of_a_syncing_node_against_its_dbcache_budget() {
    let n: usize = env_or("LODE_BENCH_SYNC_BLOCKS", 2_000);
    let budgets: Vec<u64> = std::env::var("LODE_BENCH_DBCACHE")
        .unwrap_or_else(|_| "4,16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let params = ChainParams::regtest();

    let serve_dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let blocks = chain(&params, n);
    let largest = blocks.iter().map(Block::size).max().unwrap_or(0);
    {
        let chain_dir = serve_dir.path().join("data").join(lode_node::node::CHAIN_DIR);
        let mut state = ChainState::open(&chain_dir, params.clone()).expect("open");
        for b in blocks {
            state.accept_block(std::sync::Arc::new(b)).expect("accept");
        }
        state.flush().expect("flush");
    }
    let tip = (n + 12) as u64;
    eprintln!(
        "built and stored {} blocks ({n} × {TXS} txs, largest {largest} bytes) in {:.1?}",
        tip,
        started.elapsed()
    );

    // The fixed footprint: the same binary, idle on an empty regtest chain.
    let idle_dir = tempfile::tempdir().expect("tempdir");
    let idle = NodeProc::start(idle_dir.path(), &[]);
    std::thread::sleep(Duration::from_secs(2));
    let base = idle.status_bytes("VmHWM:");
    drop(idle);

    let server = NodeProc::start(serve_dir.path(), &[]);
    let peer = server.p2p_addr(&rt);
    let mut over = Vec::new();
    for budget in budgets {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let node = NodeProc::start(
            dir.path(),
            &["--peer".into(), peer.clone(), "--dbcache".into(), budget.to_string()],
        );
        let mut rss_max = 0u64;
        let mut timeline = Vec::new();
        wait_until("the syncing node at the tip", Duration::from_secs(1800), || {
            let rss = node.status_bytes("VmRSS:");
            rss_max = rss_max.max(rss);
            let height = node.call(&rt, "getblockcount").and_then(|v| v.as_u64());
            timeline.push((started.elapsed().as_secs_f64(), rss, height));
            height == Some(tip)
        });
        if std::env::var_os("LODE_BENCH_TIMELINE").is_some() {
            for (t, rss, h) in &timeline {
                eprintln!("  t={t:.2}s rss={:.1}MiB height={h:?}", *rss as f64 / MIB);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let hwm = node.status_bytes("VmHWM:");
        let budget_bytes = budget << 20;
        let chain_part = SLED_BYTES_PER_TX * (n * TXS) as u64;
        let bound = base + 2 * budget_bytes + fixed_bound() + chain_part;
        eprintln!(
            "sync of {tip} blocks ({n} × {TXS} txs) with --dbcache {budget}: {secs:.1} s, {:.0} tx/s; \
             peak RSS {:.1} MiB (sampled VmRSS max {:.1} MiB); idle node {:.1} MiB; \
             peak - idle = {:.1} MiB ({}); bound {:.1} MiB (idle + 2 × budget + {:.0} MiB + {:.1} MiB for the chain); load average {}",
            (n * TXS) as f64 / secs,
            hwm as f64 / MIB,
            rss_max as f64 / MIB,
            base as f64 / MIB,
            (hwm - base.min(hwm)) as f64 / MIB,
            if budget_bytes == 0 {
                "no cache".to_string()
            } else {
                format!("{:.2} × budget", (hwm - base.min(hwm)) as f64 / budget_bytes as f64)
            },
            bound as f64 / MIB,
            fixed_bound() as f64 / MIB,
            chain_part as f64 / MIB,
            load_average(),
        );
        if hwm > bound {
            over.push(format!(
                "--dbcache {budget}: peak RSS {hwm} bytes over the bound {bound} bytes"
            ));
        }
    }
    // Every budget measured and printed first; then the verdict.
    assert!(over.is_empty(), "{}", over.join("; "));
}
