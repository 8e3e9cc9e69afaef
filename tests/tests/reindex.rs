//! `lode chain reindex --from-peers`, with the real binary: a store whose later block bodies
//! are damaged (one garbled, one removed) is rebuilt up to the block before the first bad
//! one, the rest is downloaded from a running peer, and the node starts on the whole chain
//! again: same tip, `lode chain verify` passes, the payments it made are still confirmed.

use std::time::Duration;

use lode_tests::local::{lode, peer_and_node, three_confirmed_payments, LocalNode};
use serde_json::{json, Value};

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn stop(node: &mut LocalNode) {
    node.rpc("stop", json!([]));
    assert_eq!(node.wait_exit(Duration::from_secs(60)), Some(0));
}

/// A block's key in the store (its hash's bytes; the hex shown is the display order).
fn hash_bytes(hex_hash: &str) -> Vec<u8> {
    lode_chain::Hash256::from_hex(hex_hash).expect("hex hash").0.to_vec()
}

#[test]
fn reindex_from_peers_downloads_the_blocks_the_store_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peer, mut node, peer_addr) = peer_and_node(dir.path());
    let (paid, tip) = three_confirmed_payments(&peer, &node);
    let garbled = text(&node.rpc("getblockhash", json!([20])));
    let removed = text(&node.rpc("getblockhash", json!([25])));
    stop(&mut node);

    // A body garbled at height 20, another gone at 25: the chain after 19 is not readable.
    {
        let db = sled::open(node.data_dir.join("chain")).expect("open for damage");
        let bodies = db.open_tree("bodies").expect("bodies");
        // A body is stored in pieces keyed hash ‖ piece number (`lode_chain::store::bodies`).
        let key = hash_bytes(&garbled);
        let first = lode_chain::store::bodies::piece_key(&lode_chain::Hash256::from_hex(&garbled).expect("hash"), 0);
        let len = bodies.get(first).expect("read").expect("body at 20").len();
        bodies
            .insert(first, (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>())
            .expect("garble");
        assert_eq!(&first[..32], key.as_slice());
        let gone: Vec<_> = bodies
            .scan_prefix(hash_bytes(&removed))
            .keys()
            .collect::<Result<_, _>>()
            .expect("pieces of the body at 25");
        assert!(!gone.is_empty());
        for k in gone {
            bodies.remove(k).expect("remove");
        }
        db.flush().expect("flush");
    }
    let data_dir = node.data_dir.display().to_string();

    // Without a peer to ask it refuses before touching anything.
    let out = lode(&[
        "chain",
        "reindex",
        "--network",
        "regtest",
        "--data-dir",
        &data_dir,
        "--from-peers",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("at least one --peer"),
        "{stderr}"
    );

    let out = lode(&[
        "chain",
        "reindex",
        "--network",
        "regtest",
        "--data-dir",
        &data_dir,
        "--from-peers",
        "--peer",
        &peer_addr,
        "--idle-timeout",
        "60",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The rebuild stops before the garbled body; the download brings back the rest.
    assert!(
        stdout.contains("best chain height 19 ") && stdout.contains("1 unreadable"),
        "{stdout}"
    );
    assert!(stdout.contains("best chain height 19 -> 31"), "{stdout}");

    node.start();
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    let out = lode(&["chain", "verify", "--data-dir", &data_dir]);
    let verified = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{verified}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(verified.contains("ok"), "{verified}");
    for txid in &paid {
        let tx = node.rpc("getrawtransaction", json!([txid, true]));
        assert!(tx["confirmations"].as_u64().unwrap_or(0) >= 1, "{tx}");
    }
    // The garbled and the removed bodies were both downloaded again.
    for hash in [&garbled, &removed] {
        let block = node.rpc("getblock", json!([hash, 1]));
        assert!(block["confirmations"].as_u64().unwrap_or(0) >= 1, "{block}");
    }
}
