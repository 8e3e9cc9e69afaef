//! Benchmarks of Lode over emulated networks (ignored: run them on purpose, as root):
//!
//! ```text
//! cargo nextest run -p lode-tests --test multihost_bench --run-ignored only --no-capture
//! ```
//!
//! Per profile and node count: block propagation median and p99 against the physical bound
//! (one hop in a full mesh × the one-way delay, plus validation time — the `lan` median of
//! the same run); and a late joiner's sync rate against its link's bandwidth. Figures are
//! printed (BENCHMARKS.md carries a table), never asserted.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use lode_node::netlab::WanProfile;
use lode_tests::netns::{
    fill_mempool, measure_propagation, percentile, start_from_one_bootstrap, wait_full_mesh, wait_same_tip, Net,
};

/// Blocks mined per measurement.
const BLOCKS: usize = 20;

fn propagation(profile: &WanProfile, n: usize) -> Option<(Duration, Duration)> {
    let mut net = Net::new(n, profile)?;
    start_from_one_bootstrap(&mut net, n);
    let nodes: Vec<usize> = (1..=n).collect();
    wait_full_mesh(&net, &nodes, Duration::from_secs(120));
    // Warm up (first block after start pays for connection setup).
    measure_propagation(&net, &nodes, 1, Duration::from_secs(60));
    let arrivals = measure_propagation(&net, &nodes, BLOCKS, Duration::from_secs(60));
    Some((percentile(&arrivals, 0.5), percentile(&arrivals, 0.99)))
}

#[test]
#[ignore = "benchmark: minutes of 5- and 8-node runs; needs root"]
fn propagation_per_profile_against_the_physical_bound() {
    for n in [5, 8] {
        let Some((lan_median, lan_p99)) = propagation(&WanProfile::lan(), n) else {
            return;
        };
        eprintln!("BENCH n={n} lan: median {lan_median:?} p99 {lan_p99:?} (validation bound)");
        for profile in [WanProfile::wan(), WanProfile::bad()] {
            let Some((median, p99)) = propagation(&profile, n) else {
                return;
            };
            // Full mesh: the miner is one hop from everyone.
            let bound = profile.link.delay + lan_median;
            eprintln!(
                "BENCH n={n} {}: median {median:?} p99 {p99:?} bound {bound:?} ratio {:.2}",
                profile.name,
                median.as_secs_f64() / bound.as_secs_f64()
            );
        }
    }
}

/// Compact blocks of payments every node already holds, mined at node 1: the bytes all
/// hosts received while one crosses over (block size × receiving nodes), and, on separate
/// blocks, the arrival times (polled every 5 ms; the byte blocks are polled every 250 ms so
/// the test's RPC is noise, not signal, in the counters).
fn compact_blocks(profile: &WanProfile, n: usize, rounds: usize, payments: usize) -> Option<(f64, Duration, Duration)> {
    let mut net = Net::new(n, profile)?;
    start_from_one_bootstrap(&mut net, n);
    let nodes: Vec<usize> = (1..=n).collect();
    wait_full_mesh(&net, &nodes, Duration::from_secs(120));
    // One mature coinbase per payment (regtest maturity 10).
    net.mine(1, (2 * rounds * payments + 11) as u64);
    wait_same_tip(&net, &nodes, &net.tip(1).1, Duration::from_secs(300));
    let fill = |net: &Net| {
        let sent = fill_mempool(net, 1, payments) as u64;
        net.wait("the payments in every mempool", Duration::from_secs(120), |net| {
            nodes.iter().all(|&i| {
                net.try_rpc(i, "getmempoolinfo", serde_json::json!([]))
                    .is_ok_and(|m| m["size"].as_u64() >= Some(sent))
            })
        });
    };
    let (mut wire, mut blocks) = (0u64, 0u64);
    let mut arrivals = Vec::new();
    for _ in 0..rounds {
        fill(&net);
        let before = net.bytes_received();
        let hash = net.mine(1, 1).pop().expect("a block");
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if nodes
                .iter()
                .all(|&i| net.try_status(i).is_some_and(|s| s["tip"] == hash.as_str()))
            {
                break;
            }
        }
        wire += net.bytes_received() - before;
        let size = net.get(1, &format!("/api/v1/block/{hash}")).expect("block")["size"]
            .as_u64()
            .unwrap_or(0);
        blocks += size * (n as u64 - 1);

        fill(&net);
        let hash = net.mine(1, 1).pop().expect("a block");
        let start = Instant::now();
        let mut pending: Vec<usize> = nodes.iter().copied().filter(|&i| i != 1).collect();
        while !pending.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(120), "block {hash} stuck");
            pending.retain(|&i| {
                let arrived = net.try_status(i).is_some_and(|s| s["tip"] == hash.as_str());
                if arrived {
                    arrivals.push(start.elapsed());
                }
                !arrived
            });
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    arrivals.sort();
    Some((
        wire as f64 / blocks.max(1) as f64,
        percentile(&arrivals, 0.5),
        percentile(&arrivals, 0.99),
    ))
}

#[test]
#[ignore = "benchmark: minutes of 5- and 8-node runs; needs root"]
fn compact_block_bytes_and_propagation_per_profile() {
    // `LODE_BENCH_NODES=5` and `LODE_BENCH_PROFILES=wan` pick a subset (default: all).
    let list = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_string());
    let counts: Vec<usize> = list("LODE_BENCH_NODES", "5,8")
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let profiles: Vec<WanProfile> = list("LODE_BENCH_PROFILES", "lan,wan,bad")
        .split(',')
        .filter_map(|p| WanProfile::parse(p.trim()).ok())
        .collect();
    for &n in &counts {
        for profile in &profiles {
            let Some((ratio, median, p99)) = compact_blocks(profile, n, 3, 60) else {
                return;
            };
            let bound = profile.link.delay;
            eprintln!(
                "BENCH compact n={n} {}: bytes received by all hosts / (block size x receivers) {ratio:.3}; blocks of 60 known payments: median {median:?} p99 {p99:?} (one-way delay {bound:?})",
                profile.name
            );
        }
    }
}

#[test]
#[ignore = "benchmark: a late joiner over a 1 Mbit/s link; needs root"]
fn late_joiner_sync_rate_against_link_bandwidth() {
    for profile_text in ["rate=1mbit", "delay=150ms,jitter=40ms,loss=5%,rate=1mbit"] {
        let profile = WanProfile::parse(profile_text).expect("profile");
        let Some(mut net) = Net::new(2, &WanProfile::lan()) else {
            return;
        };
        net.start(1, "regtest", None);
        net.mine(1, 600);
        // Blocks of payments (each spends one mature coinbase), so the bytes are not only
        // headers and coinbases.
        for _ in 0..5 {
            fill_mempool(&net, 1, 100);
            net.mine(1, 1);
        }
        let (height, tip) = net.tip(1);
        let mut bytes = 0u64;
        let mut from = Some(height);
        while let Some(h) = from {
            let page = net
                .get(1, &format!("/api/v1/blocks?from={h}&limit=100"))
                .expect("blocks");
            for b in page["blocks"].as_array().into_iter().flatten() {
                bytes += b["size"].as_u64().unwrap_or(0);
            }
            from = page["next"].as_u64();
        }
        net.reshape(&profile.shapes(2).iter().map(|_| profile.link).collect::<Vec<_>>());
        let started = Instant::now();
        net.start(2, "regtest", Some(1));
        wait_same_tip(&net, &[2], &tip, Duration::from_secs(300));
        let took = started.elapsed();
        let rate_kbit = bytes as f64 * 8.0 / 1000.0 / took.as_secs_f64();
        eprintln!(
            "BENCH sync {profile_text}: {height} blocks, {bytes} bytes in {took:?}: {rate_kbit:.0} kbit/s of a 1000 kbit/s link ({:.0}%)",
            rate_kbit / 10.0
        );
    }
}
