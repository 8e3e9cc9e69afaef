//! A wallet takes a mempool transaction that spends its coins as its own pending one even
//! when it did not send it itself (ADR 0011, amendment 12): the relay path of the fix the
//! crash loop needed. Two nodes hold the same wallet (one restored from the other's
//! mnemonic); a payment sent by the first reaches the second by gossip, and the second
//! reserves the coin it spends instead of offering it to a new payment.

use std::time::Duration;

use lode_node::common::coins;
use lode_tests::local::LocalNode;
use lode_tests::wait_until;
use serde_json::{json, Value};

/// Base units of a decimal-coins JSON amount.
fn units(v: &Value) -> u64 {
    coins::from_json(v).unwrap_or_else(|e| panic!("{v}: {e}")).0
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn a_relayed_payment_of_the_same_wallet_reserves_its_coins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = LocalNode::new(&dir.path().join("a"), &dir.path().join("a.log"), &[]);
    a.start();
    let words = text(&a.rpc("dumpmnemonic", json!([]))["mnemonic"]);
    let phrase = dir.path().join("mnemonic.txt");
    std::fs::write(&phrase, words).expect("mnemonic file");
    let a_addr = text(&a.rpc("getnetworkinfo", json!([]))["lode_p2p_addrs"][0]);
    let phrase_arg = phrase.display().to_string();
    let mut b = LocalNode::new(
        &dir.path().join("b"),
        &dir.path().join("b.log"),
        &["--peer", &a_addr, "--wallet-mnemonic-file", &phrase_arg],
    );
    b.start();
    // Coinbases to A's first address, which B's wallet (same keys) watches too.
    let first = text(&a.rpc("getwalletinfo", json!([]))["lode_first_address"]);
    a.rpc("generatetoaddress", json!([12, first]));
    let tip = a.rpc("getbestblockhash", json!([]));
    wait_until("B has the chain", Duration::from_secs(60), || {
        b.rpc("getbestblockhash", json!([])) == tip
    });
    let before = b.rpc("getbalances", json!([]));
    assert_eq!(units(&before["mine"]["lode_reserved"]), 0, "{before}");

    let to = b.rpc("getnewaddress", json!([]));
    let txid = text(&a.rpc("sendtoaddress", json!([to, 1.0])));
    wait_until("B's mempool has A's payment", Duration::from_secs(60), || {
        b.rpc("getrawmempool", json!([]))
            .as_array()
            .is_some_and(|p| p.contains(&json!(txid)))
    });
    // B took it as its own: in its history, its coin reserved and not offered again.
    let entry = b.rpc("gettransaction", json!([txid]));
    assert_eq!(entry["confirmations"], json!(0), "{entry}");
    let tx = b.rpc("getrawtransaction", json!([txid, true]));
    let input = &tx["vin"][0];
    let coin = b
        .rpc("listunspent", json!([0]))
        .as_array()
        .expect("coins")
        .iter()
        .find(|c| c["txid"] == input["txid"] && c["vout"] == input["vout"])
        .cloned()
        .expect("the spent coin is B's");
    assert_eq!(coin["spendable"], json!(false), "{coin}");
    let after = b.rpc("getbalances", json!([]));
    assert_eq!(
        units(&after["mine"]["lode_reserved"]),
        units(&coin["amount"]),
        "{after}"
    );
}
