//! What a node keeps across restarts (ADR 0011, docs/DURABILITY.md): the wallet's own
//! unconfirmed payments and the coins they reserve, payments in a row on trusted change,
//! the mempool; and what group-committed acknowledgements cost (an ignored bench).

mod common;

use std::path::Path;
use std::time::Instant;

use lode_chain::{Amount, Hash256, PubkeyHash};
use lode_node::NodeHandle;

/// Not the wallet's: blocks that should not pay the wallet pay here.
const ELSEWHERE: PubkeyHash = PubkeyHash([7; 20]);

async fn generate(node: &NodeHandle, n: u64, to: PubkeyHash) -> Vec<Hash256> {
    node.chain()
        .generate(n, Some(to))
        .await
        .expect("chain task")
        .expect("generate")
}

async fn wallet_pkh(node: &NodeHandle) -> PubkeyHash {
    let addr = node.chain().new_address().await.expect("chain task").expect("address");
    PubkeyHash::from_address(&addr, &node.params().hrp).expect("own address")
}

/// A wallet holding exactly one mature coin: one block pays it, maturity more pay others.
async fn one_mature_coin(node: &NodeHandle) {
    let pkh = wallet_pkh(node).await;
    generate(node, 1, pkh).await;
    generate(node, u64::from(node.params().coinbase_maturity), ELSEWHERE).await;
    let info = node.wallet_info().await.expect("chain task").expect("wallet");
    assert_eq!(info.balance.spendable, node.params().subsidy(lode_chain::Height(1)));
}

async fn send(node: &NodeHandle, to: &str) -> Hash256 {
    node.chain()
        .send_to_address(to.to_string(), Amount::coins(1), None)
        .await
        .expect("chain task")
        .expect("payment accepted")
        .txid
}

async fn restart(node: NodeHandle, dir: &Path) -> NodeHandle {
    node.shutdown().await.expect("shutdown");
    common::start(dir, vec![]).await
}

fn mempool_files(dir: &Path) -> [std::path::PathBuf; 2] {
    [
        dir.join(lode_chain::mempool::persist::SNAPSHOT_FILE),
        dir.join(lode_chain::mempool::persist::JOURNAL_FILE),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_payments_in_a_row_from_one_coin_survive_restarts() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = common::start(dir.path(), vec![]).await;
    one_mature_coin(&node).await;
    let to = lode_wallet::address::encode_address(&PubkeyHash([9; 20]), node.params()).expect("address");

    let mut sent = Vec::new();
    for _ in 0..10 {
        sent.push(send(&node, &to).await);
    }
    // Restart with the mempool files gone: only the wallet file remembers the payments.
    node.shutdown().await.expect("shutdown");
    for f in mempool_files(dir.path()) {
        std::fs::remove_file(&f).expect("mempool file exists after a clean shutdown");
    }
    node = common::start(dir.path(), vec![]).await;
    let pool = node.mempool_txids().await.expect("mempool");
    for txid in &sent {
        assert!(
            pool.contains(txid),
            "payment {txid} back in the mempool from the wallet file"
        );
    }
    let info = node.wallet_info().await.expect("chain task").expect("wallet");
    assert!(info.balance.reserved > Amount::ZERO, "the coin stays reserved");
    assert_eq!(
        info.balance.spendable,
        Amount::ZERO,
        "nothing confirmed is spendable twice"
    );

    for _ in 0..10 {
        sent.push(send(&node, &to).await);
    }
    // Restart with the mempool files kept: they and the wallet file agree.
    node = restart(node, dir.path()).await;
    let pool = node.mempool_txids().await.expect("mempool");
    assert_eq!(pool.len(), 20);
    for txid in &sent {
        assert!(pool.contains(txid), "payment {txid} in the mempool after the restart");
    }

    let block = generate(&node, 1, ELSEWHERE).await[0];
    let body = node
        .chain()
        .read(move |v| v.chain().block(&block))
        .await
        .expect("read")
        .expect("store")
        .expect("block");
    let mined: Vec<Hash256> = body.transactions.iter().map(|t| t.txid()).collect();
    for txid in &sent {
        assert!(mined.contains(txid), "payment {txid} mined");
    }
    assert!(node.mempool_txids().await.expect("mempool").is_empty());
    let info = node.wallet_info().await.expect("chain task").expect("wallet");
    assert_eq!(info.balance.reserved, Amount::ZERO);
    assert_eq!(info.balance.pending_incoming, Amount::ZERO);
    assert!(info.released.is_empty(), "{:?}", info.released);
    let subsidy = node.params().subsidy(lode_chain::Height(1));
    assert!(info.balance.spendable < subsidy.checked_sub(Amount::coins(20)).expect("enough"));
    assert!(info.balance.spendable > subsidy.checked_sub(Amount::coins(21)).expect("enough"));

    // A rescan from the chain alone (a fresh start) gives the same balance.
    let spendable = info.balance.spendable;
    node = restart(node, dir.path()).await;
    let info = node.wallet_info().await.expect("chain task").expect("wallet");
    assert_eq!(info.balance.spendable, spendable);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_conflicted_while_down_is_released_with_the_reason() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::start(dir.path(), vec![]).await;
    one_mature_coin(&node).await;
    let to = lode_wallet::address::encode_address(&PubkeyHash([9; 20]), node.params()).expect("address");
    let first = send(&node, &to).await;
    let child = send(&node, &to).await;
    // The same coin spent otherwise and mined elsewhere: a copy of this wallet paying
    // someone else, here built by a second node opened on the same mnemonic.
    let words = node
        .chain()
        .wallet_mnemonic()
        .await
        .expect("chain task")
        .expect("mnemonic")
        .0;
    node.shutdown().await.expect("shutdown");

    let twin_dir = tempfile::tempdir().expect("tempdir");
    let mnemonic_file = twin_dir.path().join("words");
    std::fs::write(&mnemonic_file, words.as_bytes()).expect("write");
    // The twin starts from a copy of the chain (without the payments' mempool or wallet).
    copy_dir(
        &dir.path().join(lode_node::node::CHAIN_DIR),
        &twin_dir.path().join(lode_node::node::CHAIN_DIR),
    );
    let twin = common::start_with(twin_dir.path(), |c| {
        c.wallet.mnemonic_file = Some(mnemonic_file.clone());
    })
    .await;
    let other = lode_wallet::address::encode_address(&PubkeyHash([10; 20]), twin.params()).expect("address");
    let conflict = send(&twin, &other).await;
    generate(&twin, 1, ELSEWHERE).await;
    twin.shutdown().await.expect("shutdown");
    // Our node gets the twin's chain (with the conflict), then restarts on it.
    std::fs::remove_dir_all(dir.path().join(lode_node::node::CHAIN_DIR)).expect("rm");
    copy_dir(
        &twin_dir.path().join(lode_node::node::CHAIN_DIR),
        &dir.path().join(lode_node::node::CHAIN_DIR),
    );
    let node = common::start(dir.path(), vec![]).await;

    let info = node.wallet_info().await.expect("chain task").expect("wallet");
    let released: Vec<Hash256> = info.released.iter().map(|(t, _)| *t).collect();
    assert!(released.contains(&first), "{:?}", info.released);
    assert!(released.contains(&child), "{:?}", info.released);
    assert_eq!(info.balance.reserved, Amount::ZERO, "the coins are released");
    let pool = node.mempool_txids().await.expect("mempool");
    assert!(!pool.contains(&first) && !pool.contains(&child));
    let _ = conflict;
    node.shutdown().await.expect("shutdown");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Blocks per second of `generate 1`, one RPC-like request at a time, with and without
/// the sync before each acknowledgement, measured in the same run. Run with
/// `cargo nextest run -p lode-node --test durable --run-ignored only ack_cost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bench: prints blocks/s with and without durable acknowledgements"]
async fn ack_cost() {
    const BLOCKS: usize = 300;
    let mut rates = Vec::new();
    for durable in [false, true, false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = common::start_with(dir.path(), |c| c.chain.durable_acks = durable).await;
        let started = Instant::now();
        for _ in 0..BLOCKS {
            generate(&node, 1, ELSEWHERE).await;
        }
        let secs = started.elapsed().as_secs_f64();
        rates.push((durable, BLOCKS as f64 / secs));
        node.shutdown().await.expect("shutdown");
    }
    let mean = |d: bool| {
        let v: Vec<f64> = rates.iter().filter(|(x, _)| *x == d).map(|(_, r)| *r).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (fast, safe) = (mean(false), mean(true));
    eprintln!(
        "generate 1 x {BLOCKS}: without sync {fast:.1} blocks/s, with sync {safe:.1} blocks/s, ratio {:.3}",
        safe / fast
    );
}
