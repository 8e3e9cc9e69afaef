//! A full disk, for real: the node's data dir on a small tmpfs that fills up while it mines
//! and pays. The node must stop accepting work (RPC refusals naming the reason, `/health`
//! 503, one log line), exit non-zero (3) after its grace period, and — once the file system
//! has grown — restart with every block and transaction it acknowledged, its chain
//! verifying. Root only (mounting); elsewhere it prints SKIP, and under CI a skip fails.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use lode_tests::local::{LocalNode, Tmpfs};
use serde_json::{json, Value};

/// Exit status of a halted node (`lode node`'s contract, docs/DURABILITY.md).
const EXIT_HALTED: i32 = 3;

#[test]
fn a_full_disk_halts_the_node_and_nothing_acknowledged_is_lost() {
    let Some(fs) = Tmpfs::mount("32m") else { return };
    let logs = tempfile::tempdir().expect("tempdir");
    let mut node = LocalNode::new(&fs.path().join("data"), &logs.path().join("node.log"), &[]);
    node.start();

    // Coins to pay with: regtest coinbases mature after 10 blocks.
    let mut blocks: Vec<String> = Vec::new();
    let mut txids: Vec<String> = Vec::new();
    for h in node.rpc("generate", json!([12])).as_array().expect("hashes") {
        blocks.push(h.as_str().expect("hash").to_string());
    }
    let to = node.rpc("getnewaddress", json!([]));

    // Leave a little room, then mine and pay until a write fails.
    fs.fill(256 * 1024);
    let started = Instant::now();
    let refusal = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the disk never filled up\n{}",
            node.log_tail(30)
        );
        match node.try_rpc("sendtoaddress", json!([to, 0.001])) {
            Ok(v) => txids.push(v.as_str().expect("txid").to_string()),
            Err(e) => break e,
        }
        match node.try_rpc("generate", json!([1])) {
            Ok(v) => blocks.extend(
                v.as_array()
                    .expect("hashes")
                    .iter()
                    .map(|h| h.as_str().expect("hash").to_string()),
            ),
            Err(e) => break e,
        }
    };
    // The requests of the group whose commit failed get no answer (their writes may not be
    // on disk): their connection ends. Everything after is refused with the reason.
    assert!(!blocks.is_empty() && !txids.is_empty());

    // Halted: still answering, refusing work with the reason; /health says it.
    eprintln!("first refusal: {refusal}");
    let (status, health) = node.get("/health").expect("/health while halted");
    assert_eq!(status, 503, "{health}");
    let reason = health["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("disk full"), "{health}");
    for (method, params) in [("generate", json!([1])), ("sendtoaddress", json!([to, 0.001]))] {
        let e = node.try_rpc(method, params).expect_err("refused while halted");
        assert!(
            e.contains("stopped accepting work") && e.contains("disk full"),
            "{method}: {e}"
        );
    }
    // Then it shuts down by itself, exiting non-zero.
    assert_eq!(
        node.wait_exit(Duration::from_secs(60)),
        Some(EXIT_HALTED),
        "{}",
        node.log_tail(30)
    );
    let log = node.log_text();
    let halt_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the node stops accepting work"))
        .collect();
    assert_eq!(halt_lines.len(), 1, "one line says why: {halt_lines:#?}");
    assert!(halt_lines[0].contains("disk full"), "{}", halt_lines[0]);
    assert!(!log.contains("panicked"), "no panic:\n{log}");

    // Room again: everything acknowledged is there, and the chain verifies.
    fs.resize("96m");
    node.start();
    for hash in &blocks {
        node.try_rpc("getblockheader", json!([hash]))
            .unwrap_or_else(|e| panic!("acknowledged block {hash} lost: {e}"));
    }
    let pool: HashSet<String> = node
        .rpc("getrawmempool", json!([]))
        .as_array()
        .expect("txids")
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    for txid in &txids {
        let found = pool.contains(txid) || node.try_rpc("getrawtransaction", json!([txid])).is_ok();
        assert!(found, "acknowledged transaction {txid} lost\n{}", node.log_tail(30));
    }
    let v = node.rpc("verifychain", json!([]));
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    // And it works again.
    node.rpc("generate", json!([1]));
    eprintln!(
        "full disk: {} blocks and {} transactions acknowledged before the halt, all kept; refusal: {refusal}",
        blocks.len(),
        txids.len()
    );
}
