//! The embedded miner in a running node: its blocks pay a fresh address of the node's
//! built-in wallet (immature first), reach a peer over libp2p, and mining stops cleanly with
//! the node.

mod common;

use std::time::Duration;

use common::{addr, start_with, wait_for};
use lode_chain::{ChainParams, Height};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_blocks_pay_the_wallet_and_reach_peers() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    // Devnet rules with 1-second blocks: real ASERT difficulty, found in well under a second.
    let params = ChainParams::devnet_with_spacing(1);
    let a = start_with(dir_a.path(), |c| {
        c.params = params.clone();
        c.mining.enabled = true;
        c.mining.threads = 1;
    })
    .await;
    let b = start_with(dir_b.path(), |c| {
        c.params = params.clone();
        c.network.peers = vec![addr(&a)];
    })
    .await;

    wait_for("A to mine 3 blocks", Duration::from_secs(120), || async {
        a.tip().height >= Height(3)
    })
    .await;
    let info = a.wallet_info().await.expect("ask").expect("a wallet");
    assert!(!info.addresses.is_empty(), "the coinbase paid a fresh wallet address");
    assert!(
        info.balance.immature.0 > 0,
        "rewards show at once, as immature: {:?}",
        info.balance
    );
    assert!(
        info.balance
            .immature_coins
            .iter()
            .all(|(h, _)| h.0 > params.coinbase_maturity),
        "each immature coin names the height it matures at: {:?}",
        info.balance.immature_coins
    );
    // Devnet's premine goes to the test mnemonic, not this fresh wallet.
    assert_eq!(info.balance.spendable.0, 0);
    // The node's ledger of its mined blocks counts what it found (every block here is A's);
    // getmininginfo and /metrics read the same figures.
    let found = a.api().mining().figures().blocks_found;
    let height = u64::from(a.tip().height.0);
    assert!(
        found >= 3 && found <= height + 1,
        "blocks found {found} at height {height}"
    );

    let target = a.tip().hash;
    wait_for("B to follow A's mined chain", Duration::from_secs(60), || async {
        b.hash_at(a.tip().height).await.ok().flatten() == Some(a.tip().hash) || b.tip().height >= a.tip().height
    })
    .await;
    assert!(b.hash_at(Height(3)).await.expect("ask").is_some());
    let _ = target;

    a.shutdown().await.expect("A stops cleanly with its miner");
    b.shutdown().await.expect("B stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_from_the_devnet_mnemonic_sees_its_premine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let words = dir.path().join("mnemonic.txt");
    std::fs::write(&words, lode_chain::params::DEVNET_MNEMONIC).expect("write mnemonic");
    let node = start_with(&dir.path().join("node"), |c| {
        c.params = ChainParams::devnet();
        c.wallet = lode_node::wallet::WalletConfig {
            mnemonic_file: Some(words.clone()),
            account: 3,
        };
    })
    .await;
    let info = node.wallet_info().await.expect("ask").expect("a wallet");
    assert_eq!(info.balance.spendable, lode_chain::params::DEVNET_PREMINE_EACH);
    node.shutdown().await.expect("stop");
}

/// The mining ledger lives in the data dir: a restarted node still reports the blocks it
/// found and their rewards, and a reorg after the restart still moves them to stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mining_figures_survive_a_restart_and_a_later_reorg_still_corrects_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::regtest();
    let a = common::start(dir.path(), vec![]).await;
    let pay = lode_chain::PubkeyHash([3; 20]);
    let mined = a
        .api()
        .chain()
        .generate(3, Some(pay))
        .await
        .expect("ask")
        .expect("generate");
    assert_eq!(mined.len(), 3);
    let before = a.api().mining().figures();
    let subsidy: u64 = (1..=3).map(|h| params.subsidy(Height(h)).0).sum();
    assert_eq!(
        (before.blocks_found, before.blocks_stale, before.rewards),
        (3, 0, subsidy)
    );
    a.shutdown().await.expect("stops");
    assert!(
        dir.path().join("mining_ledger.bin").exists(),
        "the ledger is saved on stop"
    );

    let a = common::start(dir.path(), vec![]).await;
    assert_eq!(a.api().mining().figures(), before, "read back after the restart");

    // Someone else's longer branch from genesis takes our three blocks away.
    let genesis = params.genesis_block();
    let (mut parent, mut time) = (genesis.hash(), genesis.header.time);
    for h in 0..4 {
        let block = common::block_on(&params, parent, Height(h), time, 99);
        parent = block.hash();
        time = block.header.time;
        a.submit_block(block).await.expect("submit");
    }
    assert_eq!(a.tip().hash, parent, "the longer branch won");
    let after = a.api().mining().figures();
    assert_eq!((after.blocks_found, after.blocks_stale, after.rewards), (3, 3, 0));
    a.shutdown().await.expect("stops");
    let a = common::start(dir.path(), vec![]).await;
    assert_eq!(a.api().mining().figures(), after, "the correction was saved too");
    a.shutdown().await.expect("stops");
}
