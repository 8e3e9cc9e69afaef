//! A damaged chain store, with the real binary: the node refuses to start with one line
//! naming the fix and leaves every file as it found it (no panic trace); `lode chain
//! reindex` rebuilds a store whose tables contradict each other from its blocks; a store
//! sled cannot open is moved aside as told and resynced from a peer. `lode chain verify`
//! passes after each recovery and nothing acknowledged is lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lode_tests::local::{lode, peer_and_node, three_confirmed_payments, LocalNode};
use lode_tests::wait_until;
use serde_json::{json, Value};

/// Every file under `dir` with its bytes: to prove nothing was rewritten.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Every key and value of every tree of the sled store in `dir`: sled's own files change
/// when it merely opens and closes a store, so "left as it was" is about its contents.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let db = sled::open(dir).expect("open to compare");
    let mut out = BTreeMap::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).expect("tree");
        for item in tree.iter() {
            let (k, v) = item.expect("row");
            out.insert(format!("{}/{}", String::from_utf8_lossy(&name), hex(&k)), v.to_vec());
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starting must fail with one `error:` line that says `expect` and names `fix`; the
/// store's contents (`readable`: sled can open it) or files are left as they were.
fn refuses_to_start(node: &mut LocalNode, expect: &str, fix: &str, readable: bool) {
    let chain = node.data_dir.join("chain");
    let state = |d: &Path| if readable { contents(d) } else { snapshot(d) };
    let before = state(&chain);
    let log_before = node.log_text().len();
    let err = node.try_start().expect_err("a damaged store must not start");
    let log = node.log_text()[log_before..].to_string();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}: one error line:\n{log}");
    assert!(errors[0].contains(expect) && errors[0].contains(fix), "{}", errors[0]);
    assert!(!log.contains("panicked"), "no panic trace:\n{log}");
    assert!(before == state(&chain), "the store was changed");
}

fn stop(node: &mut LocalNode) {
    node.rpc("stop", json!([]));
    assert_eq!(node.wait_exit(Duration::from_secs(60)), Some(0));
}

fn verify_cli(node: &LocalNode) {
    let out = lode(&["chain", "verify", "--data-dir", &node.data_dir.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn a_damaged_store_is_reported_untouched_and_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peer, mut node, _) = peer_and_node(dir.path());
    let (paid, tip) = three_confirmed_payments(&peer, &node);
    stop(&mut node);

    // 1. Tables that contradict each other: a gap in the best chain, the UTXO set gone.
    {
        let db = sled::open(node.data_dir.join("chain")).expect("open for damage");
        db.open_tree("best")
            .expect("best")
            .remove(9u32.to_be_bytes())
            .expect("gap");
        db.open_tree("utxo").expect("utxo").clear().expect("clear");
        db.flush().expect("flush");
    }
    refuses_to_start(&mut node, "gap at height 9", "lode chain reindex", true);
    let out = lode(&[
        "chain",
        "reindex",
        "--network",
        "regtest",
        "--data-dir",
        &node.data_dir.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("best chain height 31"), "{stdout}");
    node.start();
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    verify_cli(&node);
    for txid in &paid {
        let tx = node.rpc("getrawtransaction", json!([txid, true]));
        assert!(tx["confirmations"].as_u64().unwrap_or(0) >= 1, "{tx}");
    }
    stop(&mut node);

    // 2. A store sled cannot open: garbage over its config file.
    let conf = node.data_dir.join("chain").join("conf");
    let len = std::fs::metadata(&conf).expect("sled's conf file").len() as usize;
    std::fs::write(&conf, (0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>()).expect("garble");
    refuses_to_start(&mut node, "cannot be opened", "aside", false);
    // As the message says: move it aside and start again; the node resyncs from its peer.
    let chain = node.data_dir.join("chain");
    std::fs::rename(&chain, node.data_dir.join("chain.damaged")).expect("move aside");
    node.start();
    wait_until("the resync from the peer", Duration::from_secs(60), || {
        node.rpc("getbestblockhash", json!([])) == tip
    });
    verify_cli(&node);
    let v: Value = node.rpc("verifychain", json!([]));
    assert_eq!(v["height"], json!(31), "{v}");
}
