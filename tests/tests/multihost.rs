//! Lode as separate hosts: each node a real `lode node` process in its own network namespace,
//! the namespaces joined by a bridge whose links are shaped like a LAN, a WAN (≈80 ms round
//! trip, 1% loss) or a bad WAN (≈300 ms, 5% loss, one host at 1 Mbit/s); partitions and cable
//! pulls happen at the bridge. Needs root; elsewhere each test prints `SKIP: <reason>` and
//! passes, unless `LODE_REQUIRE_NETNS=1` (CI), where that is a failure.
//!
//! Every wait is bounded (`Net::wait`); timings are printed, never asserted.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use lode_node::netlab::WanProfile;
use lode_tests::netns::{
    fill_mempool, measure_propagation, percentile, start_from_one_bootstrap, wait_full_mesh, wait_same_tip, Net,
};

const N: usize = 5;

/// Discovery through Kademlia from one bootstrap, propagation (reported), and a node of
/// another chain that never joins — over the `wan` profile.
#[test]
fn wan_discovery_propagation_and_a_foreign_chain() {
    let Some(mut net) = Net::new(N + 1, &WanProfile::wan()) else {
        return;
    };
    start_from_one_bootstrap(&mut net, N);
    let nodes: Vec<usize> = (1..=N).collect();
    let took = wait_full_mesh(&net, &nodes, Duration::from_secs(60));
    eprintln!("wan: {N} nodes fully connected from one bootstrap in {took:?}");

    let arrivals = measure_propagation(&net, &nodes, 5, Duration::from_secs(30));
    eprintln!(
        "wan propagation over {} arrivals: median {:?}, p99 {:?}",
        arrivals.len(),
        percentile(&arrivals, 0.5),
        percentile(&arrivals, 0.99)
    );

    // Host 6 runs the devnet (another genesis) and knows node 1 only.
    net.start(N + 1, "devnet", Some(1));
    let foreign = net.peer_id(N + 1);
    // Whichever side reads the other's identify first refuses (and bans) the other.
    net.wait(
        "node 1 and the devnet node to meet and refuse each other",
        Duration::from_secs(30),
        |net| net.log(1).contains("peer is of another chain") || net.log(N + 1).contains("peer is of another chain"),
    );
    // The ban keeps later dials out too. Mining more
    // on our chain gives it every chance to sync if it had joined.
    let (_, before) = net.tip(1);
    net.mine(1, 1);
    wait_same_tip(&net, &nodes, &net.tip(1).1, Duration::from_secs(30));
    assert_ne!(net.tip(1).1, before);
    for i in 1..=N {
        assert!(
            !net.peers(i).contains(&foreign),
            "node {i} has the devnet node as a peer"
        );
    }
    let f = net.try_status(N + 1).expect("devnet node answers");
    assert_eq!(f["height"], 0, "the devnet node took blocks of another chain: {f}");
    assert!(
        net.peers(N + 1).is_empty(),
        "the devnet node has peers: {:?}",
        net.peers(N + 1)
    );
}

/// A partition {1,2,3}|{4,5} at the bridge: both sides mine, the minority pays from its own
/// coins; on heal everyone follows the most-work tip, the minority reorganises, and the
/// payment is back in the mempools.
#[test]
fn lan_partition_both_sides_mine_then_heal_reorganises_the_minority() {
    let Some(mut net) = Net::new(N, &WanProfile::lan()) else {
        return;
    };
    start_from_one_bootstrap(&mut net, N);
    let all: Vec<usize> = (1..=N).collect();
    wait_full_mesh(&net, &all, Duration::from_secs(30));
    // Node 4 gets mature coins (regtest coinbase maturity is 10).
    net.mine(4, 12);
    wait_same_tip(&net, &all, &net.tip(4).1, Duration::from_secs(30));
    let (fork_height, _) = net.tip(4);

    net.lab()
        .set_partition(&[vec![1, 2, 3], vec![4, 5]])
        .expect("partition");
    net.mine(1, 3);
    let majority_tip = net.tip(1).1;
    wait_same_tip(&net, &[1, 2, 3], &majority_tip, Duration::from_secs(30));
    let to = net.rpc(5, "getnewaddress", serde_json::json!([]));
    let txid = net.pay(4, &to).expect("payment from the minority side");
    net.mine(4, 1);
    let minority_tip = net.tip(4).1;
    wait_same_tip(&net, &[4, 5], &minority_tip, Duration::from_secs(30));
    assert_ne!(majority_tip, minority_tip);
    assert_eq!(net.tip(1).0, fork_height + 3, "the partition leaked a block");
    assert_eq!(net.tip(5).0, fork_height + 1, "the partition leaked a block");
    for i in [4, 5] {
        let block = net.get(i, &format!("/api/v1/block/{minority_tip}")).expect("block");
        let txs = block["tx"].to_string();
        assert!(txs.contains(&txid), "the payment is not in node {i}'s minority block");
    }

    net.lab().heal().expect("heal");
    wait_same_tip(&net, &all, &majority_tip, Duration::from_secs(60));
    for i in [4, 5] {
        assert_eq!(net.tip(i).1, majority_tip, "node {i} did not reorganise");
        assert!(
            net.get(i, &format!("/api/v1/block/{minority_tip}")).is_none()
                || net
                    .get(i, "/api/v1/status")
                    .is_some_and(|s| s["tip"] != minority_tip.as_str()),
            "node {i} still follows the minority block"
        );
    }
    net.wait("the payment back in every mempool", Duration::from_secs(60), |net| {
        all.iter().all(|&i| {
            net.get(i, "/api/v1/mempool")
                .is_some_and(|m| m["txids"].to_string().contains(&txid))
        })
    });

    // A cable pull: node 5 is cut off entirely (even the test's control traffic), and
    // catches up once plugged back in.
    net.lab().set_cable(5, false).expect("unplug");
    assert!(net.try_status(5).is_none(), "node 5 answers through a pulled cable");
    net.mine(1, 2);
    let (_, tip) = net.tip(1);
    wait_same_tip(&net, &[1, 2, 3, 4], &tip, Duration::from_secs(30));
    net.lab().set_cable(5, true).expect("plug");
    wait_same_tip(&net, &[5], &tip, Duration::from_secs(60));
}

/// On the `bad` profile (host 5 at 1 Mbit/s): a late joiner syncs 200+ blocks, one of them
/// large; a large block gossiped live reaches the slow host without a disconnect or ban;
/// a node SIGKILLed and restarted with the same key and data dir catches up.
#[test]
fn bad_wan_late_joiner_large_blocks_and_churn() {
    let Some(mut net) = Net::new(N, &WanProfile::bad()) else {
        return;
    };
    start_from_one_bootstrap(&mut net, N - 1);
    let first: Vec<usize> = (1..N).collect();
    wait_full_mesh(&net, &first, Duration::from_secs(90));
    // 200 blocks, then a block of payments (each spends one mature coinbase).
    net.mine(1, 200);
    let payments = fill_mempool(&net, 1, 120);
    net.mine(1, 1);
    let (height, tip) = net.tip(1);
    let big = net.get(1, &format!("/api/v1/block/{tip}")).expect("block");
    eprintln!("bad: block {height} holds {} payments, {} bytes", payments, big["size"]);
    assert!(payments >= 50, "only {payments} payments went through");

    let started = Instant::now();
    net.start(N, "regtest", Some(1));
    wait_same_tip(&net, &[N], &tip, Duration::from_secs(180));
    let took = started.elapsed();
    eprintln!("bad: late joiner (1 Mbit/s) synced {height} blocks in {took:?}");

    // A large block live, over the slow link.
    let more = fill_mempool(&net, 1, 80);
    net.mine(1, 1);
    let (_, tip) = net.tip(1);
    let started = Instant::now();
    wait_same_tip(&net, &(1..=N).collect::<Vec<_>>(), &tip, Duration::from_secs(120));
    eprintln!(
        "bad: a block of {more} payments reached every node in {:?}",
        started.elapsed()
    );
    let one = net.peer_id(1);
    assert!(net.peers(N).contains(&one), "the slow node lost its bootstrap peer");
    for i in 1..=N {
        let log = net.log(i);
        assert!(
            !log.contains("banning peer"),
            "node {i} banned someone:\n{}",
            net.log_tails()
        );
    }

    // Churn: SIGKILL node 3, mine while it is away, restart it with the same key and data.
    net.kill(3);
    net.mine(2, 5);
    let (_, tip) = net.tip(2);
    net.restart(3);
    wait_same_tip(&net, &[3], &tip, Duration::from_secs(120));
    let three = net.peer_id(3);
    net.wait("node 3 back among node 1's peers", Duration::from_secs(60), |net| {
        net.peers(1).contains(&three)
    });
}

/// A ~1.9 MB block of 20 transactions of ~95 kB that no mempool has seen, mined at node 1,
/// reaches the node behind the 1 Mbit/s link (`bad`: 300 ms round trips, 5% loss) through
/// its compact announcement and `getblocktxn` answers of at most 64 KiB each; nobody
/// disconnects or bans. Ignored: it takes minutes over the lossy path.
#[test]
#[ignore = "a 2 MB block over the bad profile's 1 Mbit/s link takes minutes; needs root"]
fn bad_wan_a_2_mb_block_reaches_the_1_mbit_node() {
    use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, spend};
    use lode_chain::{encoding, Amount, Block, ChainParams, Hash256, Height, OutPoint, Transaction};

    const TXS: usize = 20;
    const OUTPUTS: usize = 3400;
    let n = 3;
    let Some(mut net) = Net::new(n, &WanProfile::bad()) else {
        return;
    };
    start_from_one_bootstrap(&mut net, n);
    wait_full_mesh(&net, &(1..=n).collect::<Vec<_>>(), Duration::from_secs(120));
    let params = ChainParams::regtest();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    // A block on node 1's tip (as its block template describes it) with `txs`.
    let block_with = |txs: Vec<Transaction>, fees: u64| -> Block {
        let t = net.rpc(1, "getblocktemplate", serde_json::json!([]));
        let prev = Hash256::from_hex(t["previousblockhash"].as_str().expect("prev")).expect("hash");
        let height = Height(t["height"].as_u64().expect("height") as u32);
        let bits = u32::from_str_radix(t["bits"].as_str().expect("bits"), 16).expect("bits");
        let time = t["curtime"].as_u64().expect("time") as u32;
        let value = Amount(params.subsidy(height).0 + fees);
        let mut all = vec![coinbase(height, 0, b"big block test", vec![pay(key_hash(&key), value)])];
        all.extend(txs);
        let mut block = assemble(prev, time, bits, all);
        let target = lode_chain::pow::compact::target_from_bits(bits).expect("target");
        assert!(grind(&mut block.header, &target));
        block
    };
    let submit = |block: &Block| {
        let v = net.rpc(1, "submitblock", serde_json::json!([hex::encode(block.to_bytes())]));
        assert!(v.is_null(), "submitblock: {v}");
    };
    let mut coins = Vec::new();
    for _ in 0..TXS {
        let b = block_with(Vec::new(), 0);
        coins.push(b.transactions[0].clone());
        submit(&b);
    }
    net.mine(1, 11);
    let (_, tip) = net.tip(1);
    wait_same_tip(&net, &[2, 3], &tip, Duration::from_secs(180));

    let fee = 200_000;
    let txs: Vec<Transaction> = coins
        .iter()
        .enumerate()
        .map(|(i, cb)| {
            let each = Amount((cb.outputs[0].value.0 - fee) / OUTPUTS as u64);
            let outputs = (0..OUTPUTS)
                .map(|o| pay(lode_chain::PubkeyHash([(i + o) as u8; 20]), each))
                .collect();
            spend(
                &[OutPoint {
                    txid: cb.txid(),
                    index: 0,
                }],
                outputs,
                &key,
                &params.genesis_hash(),
            )
        })
        .collect();
    let big = block_with(txs, fee * TXS as u64);
    let size = encoding::encoded_len(&big);
    assert!(size > 1_800_000, "only {size} bytes");
    let hash = big.hash().to_hex();
    let started = Instant::now();
    submit(&big);
    wait_same_tip(&net, &[2, 3], &hash, Duration::from_secs(600));
    eprintln!(
        "bad: a {size}-byte block reached every node, the 1 Mbit/s one included, in {:?}",
        started.elapsed()
    );
    assert!(net.peers(n).contains(&net.peer_id(1)), "the slow node lost node 1");
    for i in 1..=n {
        let log = net.log(i);
        // Sync may be fetching the same block over the same slow link at the same time, so
        // a getblocktxn answer can time out; it is asked again (reported, not asserted).
        eprintln!(
            "bad: node {i}: {} compact requests timed out",
            log.matches("compact block request failed").count()
        );
        assert!(
            !log.contains("banning peer"),
            "node {i} banned someone:\n{}",
            net.log_tails()
        );
    }
}

/// Every number found between `before` and `after` in `text`.
fn measured(text: &str, before: &str, after: &str) -> Vec<f64> {
    text.split(before)
        .skip(1)
        .filter_map(|rest| rest.split(after).next()?.trim().parse().ok())
        .collect()
}

/// Runs `lode ARGS` to completion; (success, stdout + stderr).
fn lode(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(lode_tests::lode_bin())
        .args(args)
        .output()
        .expect("run lode");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn namespaces() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Height of the devnet node at `rpc` (REST), if it answers.
fn height_at(rt: &tokio::runtime::Runtime, rpc: &str) -> Option<u64> {
    let client = lode_node::client::http::RpcClient::new(rpc, None);
    let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), client.get("/api/v1/status")).await });
    match got {
        Ok(Ok((200, v))) => v["height"].as_u64(),
        _ => None,
    }
}

/// Waits for `cond`, bounded, polling.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `lode devnet up --wan wan`: nodes in namespaces, the links' figures in `status`, a
/// partition and heal at the bridge, a crashed `up`'s namespaces removed by the next `up`,
/// and nothing left after `down`.
#[test]
fn devnet_up_wan_partitions_at_the_bridge_and_removes_everything() {
    if lode_tests::netns::skip_reason().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("devnet");
    let d_str = d.to_str().expect("utf-8 path").to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start_up = |log: &str| {
        let out = std::fs::File::create(dir.path().join(log)).expect("log");
        let err = out.try_clone().expect("log");
        let child = std::process::Command::new(lode_tests::lode_bin())
            .args(["devnet", "up", "--wan", "wan", "--nodes", "3", "--dir", &d_str])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn devnet up");
        let log_path = dir.path().join(log);
        wait_for("devnet ready", Duration::from_secs(120), || {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("devnet ready")
        });
        child
    };
    let mut up = start_up("up1.log");
    let ns = namespaces();
    for name in ["lode-dn-sw", "lode-dn-h1", "lode-dn-h2", "lode-dn-h3"] {
        assert!(ns.contains(name), "{name} missing: {ns}");
    }
    let (ok, status) = lode(&["devnet", "status", "--dir", &d_str]);
    assert!(ok && status.contains("delay 40±10 ms, loss 1.0%"), "{status}");
    // Measured figures too: each node's libp2p ping through the delayer (two 40±10 ms
    // legs, so never under 60 ms) and the bytes its cable carried.
    let mut last = String::new();
    wait_for("status to show measured pings", Duration::from_secs(60), || {
        last = lode(&["devnet", "status", "--dir", &d_str]).1;
        let pings = measured(&last, "| ping ", " ms");
        pings.len() == 3 && pings.iter().all(|&ms| ms >= 50.0)
    });
    assert!(
        !last.contains("bytes -") && last.matches("received ").count() == 3,
        "{last}"
    );

    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("devnet.json")).expect("devnet.json")).expect("json");
    let rpc = |i: usize| file["nodes"][i]["rpc"].as_str().expect("rpc").to_string();
    let (ok, out) = lode(&["devnet", "partition", "--dir", &d_str, "node0,node1", "/", "node2"]);
    assert!(ok && out.contains("at the bridge"), "{out}");
    // node0 mines; node2, cut off, falls behind.
    wait_for("node2 to fall behind node0", Duration::from_secs(90), || {
        match (height_at(&rt, &rpc(0)), height_at(&rt, &rpc(2))) {
            (Some(a), Some(c)) => a >= c + 3,
            _ => false,
        }
    });
    let (ok, out) = lode(&["devnet", "heal", "--dir", &d_str]);
    assert!(ok && out.contains("healed at the bridge"), "{out}");
    wait_for("node2 to catch up", Duration::from_secs(90), || {
        match (height_at(&rt, &rpc(0)), height_at(&rt, &rpc(2))) {
            (Some(a), Some(c)) => c + 1 >= a,
            _ => false,
        }
    });

    // A crashed `up` leaves its namespaces; the next `up` removes them and starts afresh.
    up.kill().expect("kill up");
    let _ = up.wait();
    assert!(namespaces().contains("lode-dn-sw"), "namespaces gone already?");
    let mut up = start_up("up2.log");
    let (ok, out) = lode(&["devnet", "down", "--dir", &d_str]);
    assert!(ok, "{out}");
    let _ = up.wait();
    let ns = namespaces();
    assert!(!ns.contains("lode-dn-"), "left behind: {ns}");
    let links = std::process::Command::new("ip")
        .args(["link"])
        .output()
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("lode-dn-r"),
        "root veth left behind"
    );
}
