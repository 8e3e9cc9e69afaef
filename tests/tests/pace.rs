//! Bench, ignored in ordinary runs (minutes of mining, and a figure that depends on the
//! machine's load): a fresh default devnet — `lode devnet up` with 3 nodes, node0 mining one
//! thread, `--block-time 2s`, its starting difficulty calibrated at creation (ADR 0010) —
//! mines from block 20 on at a mean interval within 2× of the block time.
//!
//! Run on purpose, once, and read the printed figure:
//! `cargo nextest run -p lode-tests --test pace --run-ignored ignored-only --no-capture`
//! (`LODE_PACE_HEIGHT` sets the last height measured, default 80).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_tests::lode_bin;
use serde_json::Value;

/// The block time the devnet is created with.
const BLOCK_TIME: u64 = 2;
/// Intervals before this height are ASERT's settling, not the pace (issue 15).
const FROM: u64 = 20;

/// `lode devnet up`, killed with its nodes on drop.
struct Up {
    child: Child,
    dir: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(file) = lode_node::client::devnet::file::read(&self.dir) {
            for pid in file.nodes.iter().filter_map(|n| n.pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

fn free_base(nodes: u16) -> u16 {
    let seed = (std::process::id() + 120) % 500;
    for attempt in 0..500u32 {
        let base = 20_000 + u16::try_from(((seed + attempt * 37) % 500) * 20).unwrap_or(0);
        if (base..base + 2 * nodes).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range found");
}

fn up(dir: &Path) -> Up {
    let out = dir.with_extension("up.out");
    let stdout = std::fs::File::create(&out).expect("stdout file");
    let stderr = stdout.try_clone().expect("clone");
    let base = free_base(3).to_string();
    let child = Command::new(lode_bin())
        .args(["devnet", "up", "--dir"])
        .arg(dir)
        .args(["--block-time", &format!("{BLOCK_TIME}s"), "--base-port", &base])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn devnet up");
    let up = Up {
        child,
        dir: dir.to_path_buf(),
        out,
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !std::fs::read_to_string(&up.out)
        .unwrap_or_default()
        .contains("devnet ready:")
    {
        assert!(Instant::now() < deadline, "devnet not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    up
}

async fn get(base: &str, path: &str) -> Option<Value> {
    reqwest::get(format!("{base}{path}")).await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bench: minutes of mining on a fresh devnet; run on purpose and read the figure"]
async fn a_fresh_default_devnet_keeps_its_block_time_from_block_20_on() {
    let last: u64 = std::env::var("LODE_PACE_HEIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80)
        .max(FROM + 10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let devnet = up(&tmp.path().join("dn"));
    let file = lode_node::client::devnet::file::read(&devnet.dir).expect("devnet.json");
    let rpc = file.nodes[0].rpc.trim_end_matches('/').to_string();
    // Generous: four times the expected time, plus start-up.
    let deadline = Instant::now() + Duration::from_secs(last * BLOCK_TIME * 4 + 60);
    loop {
        let height = get(&rpc, "/api/v1/tip").await.and_then(|t| t["height"].as_u64());
        if height.is_some_and(|h| h >= last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "height {height:?} of {last} before the deadline"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let series = get(&rpc, &format!("/api/v1/series/blocks?count={}", last + 1))
        .await
        .expect("series");
    let time_at = |h: u64| -> i64 {
        series["blocks"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["height"].as_u64() == Some(h)))
            .and_then(|b| b["time"].as_i64())
            .unwrap_or_else(|| panic!("no block {h} in {series}"))
    };
    let settling = (time_at(FROM) - time_at(1)) as f64 / (FROM - 1) as f64;
    let mean = (time_at(last) - time_at(FROM)) as f64 / (last - FROM) as f64;
    let calibration = std::fs::read_to_string(&devnet.out).unwrap_or_default();
    let calibrated = calibration
        .lines()
        .find(|l| l.contains("calibrat"))
        .unwrap_or("(no calibration line)");
    eprintln!(
        "pace: --block-time {BLOCK_TIME}s, mean interval blocks 1–{FROM} {settling:.2} s, \
         blocks {FROM}–{last} {mean:.2} s ({:.2}× the block time); {calibrated}",
        mean / BLOCK_TIME as f64
    );
    let target = BLOCK_TIME as f64;
    assert!(
        mean >= target / 2.0 && mean <= target * 2.0,
        "mean interval {mean:.2} s from block {FROM} to {last} is not within 2× of {target} s"
    );
}
