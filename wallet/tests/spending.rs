//! Tracking and spending: coin selection, fees, maturity, pending reservations, reorgs.

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use lode_chain::params::DEVNET_MNEMONIC;
use lode_chain::{
    Amount, Block, BlockHeader, ChainEvent, ChainParams, CoinbaseData, Hash256, Height, OutPoint, PubkeyHash,
    Transaction, TxIn, TxOut, Unlock,
};
use lode_wallet::builder::{build_payment, Payment};
use lode_wallet::coinselect::tx_size;
use lode_wallet::tracker::Tracker;
use lode_wallet::{Chain, CreateOptions, KdfParams, Mnemonic, Wallet, WalletError};
use tempfile::TempDir;
use zeroize::Zeroizing;

const OTHER: PubkeyHash = PubkeyHash([0xee; 20]);

fn other_address(params: &ChainParams) -> String {
    OTHER.to_address(&params.hrp).expect("address")
}

fn coinbase(height: u32, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::NULL,
            unlock: Unlock::Coinbase(CoinbaseData {
                height: Height(height),
                extra_nonce: [0; 8],
                message: Vec::new(),
            }),
        }],
        outputs,
        lock_time: 0,
    }
}

fn pay(pkh: PubkeyHash, coins: u64) -> Vec<TxOut> {
    vec![TxOut {
        value: Amount::coins(coins),
        pubkey_hash: pkh,
    }]
}

/// A toy best chain: the tracker does not validate, so headers only need distinct hashes.
struct TestChain {
    blocks: Vec<(Hash256, Height, Arc<Block>)>,
}

impl TestChain {
    fn new(params: &ChainParams, tracker: &mut Tracker) -> TestChain {
        let genesis = Arc::new(params.genesis_block());
        let hash = genesis.hash();
        tracker
            .apply(&ChainEvent::BlockConnected {
                hash,
                height: Height(0),
                block: genesis.clone(),
            })
            .expect("connect genesis");
        TestChain {
            blocks: vec![(hash, Height(0), genesis)],
        }
    }

    fn tip_height(&self) -> u32 {
        self.blocks.last().map_or(0, |b| b.1 .0)
    }

    /// Connects a block with a coinbase paying `reward_to` and the given transactions.
    /// `salt` makes sibling blocks on different branches differ.
    fn connect(&mut self, tracker: &mut Tracker, reward_to: PubkeyHash, txs: Vec<Transaction>, salt: u32) -> Hash256 {
        let (prev, h, _) = self.blocks.last().cloned().expect("genesis");
        let height = h.0 + 1;
        let mut transactions = vec![coinbase(height, pay(reward_to, 50))];
        transactions.extend(txs);
        let block = Arc::new(Block {
            header: BlockHeader {
                version: 1,
                prev_hash: prev,
                merkle_root: Hash256::ZERO,
                time: height,
                bits: 0x207f_ffff,
                nonce: salt,
            },
            transactions,
        });
        let hash = block.hash();
        tracker
            .apply(&ChainEvent::BlockConnected {
                hash,
                height: Height(height),
                block: block.clone(),
            })
            .expect("connect");
        self.blocks.push((hash, Height(height), block));
        hash
    }

    fn disconnect(&mut self, tracker: &mut Tracker) {
        let (hash, height, block) = self.blocks.pop().expect("a block to disconnect");
        tracker
            .apply(&ChainEvent::BlockDisconnected { hash, height, block })
            .expect("disconnect");
    }
}

struct Setup {
    _dir: TempDir,
    params: ChainParams,
    wallet: Wallet,
    tracker: Tracker,
    chain: TestChain,
}

/// Devnet, account 0 of the test mnemonic: the genesis premine pays it 10 000 coins.
fn devnet_setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::devnet();
    let wallet = Wallet::from_mnemonic(dir.path(), DEVNET_MNEMONIC, 0, &params).expect("wallet");
    let mut tracker = Tracker::new(wallet.watched_pkhs(), params.coinbase_maturity);
    let chain = TestChain::new(&params, &mut tracker);
    Setup {
        _dir: dir,
        params,
        wallet,
        tracker,
        chain,
    }
}

fn my_pkh(s: &Setup) -> PubkeyHash {
    s.params.genesis_outputs[0].pubkey_hash
}

/// Every input spends a coin of ours, names the right key and carries a strict-valid
/// signature over the genesis-bound digest.
fn assert_signed(p: &Payment, wallet: &Wallet) {
    let digest = p.tx.sighash(&wallet.genesis_hash());
    for input in &p.tx.inputs {
        let Unlock::Key(k) = &input.unlock else {
            panic!("key unlock expected")
        };
        assert!(wallet.key_for(&PubkeyHash::from_pubkey(&k.pubkey)).is_some());
        let vk = VerifyingKey::from_bytes(&k.pubkey).expect("valid point");
        vk.verify_strict(&digest, &Signature::from_bytes(&k.signature))
            .expect("signature verifies");
    }
}

#[test]
fn pays_with_change_to_a_fresh_internal_address_at_an_exact_fee() {
    let mut s = devnet_setup();
    let rate = 3;
    let amount = Amount::parse_coins("12.5").expect("amount");
    let p = build_payment(
        &mut s.wallet,
        &mut s.tracker,
        &other_address(&s.params),
        amount,
        Some(rate),
    )
    .expect("payment");
    assert_signed(&p, &s.wallet);
    assert_eq!(p.tx.inputs.len(), 1);
    assert_eq!(p.tx.outputs.len(), 2);
    assert_eq!(p.tx.size(), 24 + 136 + 2 * 28);
    assert_eq!(p.fee.0, p.tx.size() as u64 * rate, "fee = size × rate");
    let (change_pkh, change) = p.change.expect("change");
    let key = s.wallet.key_for(&change_pkh).expect("change key is ours");
    assert_eq!((key.path.chain, key.path.index), (Chain::Change, 0));
    assert_eq!(
        Amount::coins(10_000).0,
        amount.0 + change.0 + p.fee.0,
        "inputs = payment + change + fee"
    );
    assert!(p.tx.outputs.iter().any(|o| o.pubkey_hash == OTHER && o.value == amount));

    // Once confirmed, the next payment spends the change and pays change to a new key.
    s.tracker.add_pending(&p.tx).expect("pending");
    s.chain.connect(&mut s.tracker, OTHER, vec![p.tx.clone()], 0);
    let p2 = build_payment(
        &mut s.wallet,
        &mut s.tracker,
        &other_address(&s.params),
        amount,
        Some(rate),
    )
    .expect("second payment");
    assert_eq!(
        p2.spent,
        vec![OutPoint {
            txid: p.txid,
            index: p
                .tx
                .outputs
                .iter()
                .position(|o| o.pubkey_hash == change_pkh)
                .expect("change output") as u32
        }]
    );
    let (change2, _) = p2.change.expect("change");
    assert_ne!(change2, change_pkh);
    assert_eq!(s.wallet.key_for(&change2).map(|k| k.path.index), Some(1));
}

#[test]
fn exact_match_spends_without_change() {
    let mut s = devnet_setup();
    let rate = 2;
    let fee = tx_size(1, 1) * rate;
    let amount = Amount(Amount::coins(10_000).0 - fee);
    let p = build_payment(
        &mut s.wallet,
        &mut s.tracker,
        &other_address(&s.params),
        amount,
        Some(rate),
    )
    .expect("payment");
    assert_signed(&p, &s.wallet);
    assert_eq!(p.change, None);
    assert_eq!(p.tx.outputs.len(), 1);
    assert_eq!(p.fee.0, fee);
    assert_eq!(p.fee.0, p.tx.size() as u64 * rate);
}

#[test]
fn insufficient_funds_names_the_missing_amount() {
    let mut s = devnet_setup();
    let err = build_payment(
        &mut s.wallet,
        &mut s.tracker,
        &other_address(&s.params),
        Amount::coins(10_001),
        Some(1),
    )
    .expect_err("too much");
    let WalletError::InsufficientFunds {
        needed,
        available,
        missing,
    } = err
    else {
        panic!("unexpected {err}")
    };
    assert_eq!(available, Amount::coins(10_000));
    assert_eq!(needed.0, Amount::coins(10_001).0 + tx_size(1, 1));
    assert_eq!(missing.0, Amount::coins(1).0 + tx_size(1, 1));
    assert!(err.to_string().contains("missing 1.00000188"), "{err}");
}

#[test]
fn immature_coinbase_is_spent_exactly_at_maturity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::regtest();
    let mut wallet = Wallet::from_mnemonic(dir.path(), DEVNET_MNEMONIC, 0, &params).expect("wallet");
    let me = wallet.watched_pkhs()[0];
    let mut tracker = Tracker::new(wallet.watched_pkhs(), params.coinbase_maturity);
    let mut chain = TestChain::new(&params, &mut tracker);
    chain.connect(&mut tracker, me, vec![], 0); // height 1 pays us 50
    while chain.tip_height() < 9 {
        chain.connect(&mut tracker, OTHER, vec![], 0);
    }
    // Tip 9: the next block is 10, one short of 1 + maturity.
    let b = tracker.balance();
    assert_eq!(b.spendable, Amount::ZERO);
    assert_eq!(b.immature_coins, vec![(Height(11), Amount::coins(50))]);
    let addr = other_address(&params);
    assert!(matches!(
        build_payment(&mut wallet, &mut tracker, &addr, Amount::coins(1), None),
        Err(WalletError::InsufficientFunds { .. })
    ));
    chain.connect(&mut tracker, OTHER, vec![], 0); // tip 10: next block 11 may spend it
    assert_eq!(tracker.balance().spendable, Amount::coins(50));
    assert_eq!(tracker.balance().immature, Amount::ZERO);
    let p = build_payment(&mut wallet, &mut tracker, &addr, Amount::coins(1), None).expect("mature now");
    assert_signed(&p, &wallet);
}

#[test]
fn pending_spends_are_not_reused() {
    let mut s = devnet_setup();
    let addr = other_address(&s.params);
    let p = build_payment(&mut s.wallet, &mut s.tracker, &addr, Amount::coins(5), None).expect("payment");
    s.tracker.add_pending(&p.tx).expect("pending");
    let b = s.tracker.balance();
    assert_eq!(b.spendable, Amount::ZERO);
    assert_eq!(b.reserved, Amount::coins(10_000));
    assert_eq!(b.pending_incoming, p.change.expect("change").1);
    // A second payment does not touch the reserved coin: it spends the first payment's own
    // change (trusted change), and only that.
    let p2 = build_payment(&mut s.wallet, &mut s.tracker, &addr, Amount::coins(5), None).expect("trusted change");
    let first = p.tx.txid();
    assert!(
        p2.tx.inputs.iter().all(|i| i.prev_out.txid == first),
        "the second payment spends only the first one's change"
    );
    // The same coin cannot be reserved twice either.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut twin = Wallet::from_mnemonic(dir2.path(), DEVNET_MNEMONIC, 0, &s.params).expect("twin");
    let mut twin_tracker = Tracker::new(twin.watched_pkhs(), s.params.coinbase_maturity);
    TestChain::new(&s.params, &mut twin_tracker);
    let q = build_payment(&mut twin, &mut twin_tracker, &addr, Amount::coins(6), None).expect("twin payment");
    assert!(matches!(
        s.tracker.add_pending(&q.tx),
        Err(WalletError::AlreadyReserved(_))
    ));
    // Abandoning the pending payment frees the coin.
    assert!(s.tracker.abandon_pending(&p.txid));
    assert_eq!(s.tracker.balance().spendable, Amount::coins(10_000));
}

#[test]
fn history_stays_right_across_a_reorg() {
    let mut s = devnet_setup();
    let me = my_pkh(&s);
    let amount = Amount::coins(100);
    let p = build_payment(&mut s.wallet, &mut s.tracker, &other_address(&s.params), amount, None).expect("payment");
    s.tracker.add_pending(&p.tx).expect("pending");
    let genesis_txid = s.chain.blocks[0].2.transactions[0].txid();

    // Branch A: P at height 1, then a block whose coinbase pays us.
    s.chain.connect(&mut s.tracker, OTHER, vec![p.tx.clone()], 1);
    s.chain.connect(&mut s.tracker, me, vec![], 1);
    let h = s.tracker.history();
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[0].txid, h[0].height, h[0].net()),
        (genesis_txid, Some(Height(0)), i128::from(Amount::coins(10_000).0))
    );
    assert_eq!(
        (h[1].txid, h[1].height, h[1].fee),
        (p.txid, Some(Height(1)), Some(p.fee))
    );
    assert_eq!(h[1].net(), -i128::from(amount.0 + p.fee.0));
    assert!(h[2].coinbase && h[2].height == Some(Height(2)));
    assert_eq!(
        s.tracker.balance().immature_coins,
        vec![(Height(12), Amount::coins(50))]
    );
    assert_eq!(s.tracker.pending().count(), 0);

    // Reorg: both blocks leave; P goes back to pending, the reward disappears.
    s.chain.disconnect(&mut s.tracker);
    s.chain.disconnect(&mut s.tracker);
    let h = s.tracker.history();
    assert_eq!(h.len(), 2);
    assert_eq!((h[1].txid, h[1].height, h[1].fee), (p.txid, None, Some(p.fee)));
    assert!(
        s.tracker.is_reserved(&p.spent[0]),
        "P's input stays reserved while it is back in the mempool"
    );
    let b = s.tracker.balance();
    assert_eq!(
        (b.spendable, b.immature, b.reserved),
        (Amount::ZERO, Amount::ZERO, Amount::coins(10_000))
    );

    // Branch B: an empty block, then P at height 2, then one more.
    s.chain.connect(&mut s.tracker, OTHER, vec![], 2);
    s.chain.connect(&mut s.tracker, OTHER, vec![p.tx.clone()], 2);
    s.chain.connect(&mut s.tracker, OTHER, vec![], 2);
    let h = s.tracker.history();
    assert_eq!(h.len(), 2);
    assert_eq!((h[1].txid, h[1].height), (p.txid, Some(Height(2))));
    assert_eq!(s.tracker.confirmations(h[1].height), 2);
    let change = p.change.expect("change").1;
    assert_eq!(s.tracker.balance().spendable, change);

    // Replaying the best chain from scratch gives the same view.
    let mut fresh = Tracker::new(s.wallet.watched_pkhs(), s.params.coinbase_maturity);
    fresh.rescan(s.chain.blocks.iter().map(|(h, n, b)| (*h, *n, b.as_ref())));
    assert_eq!(fresh.history(), s.tracker.history());
    assert_eq!(fresh.balance(), s.tracker.balance());
}

#[test]
fn a_conflicting_block_settles_the_pending_payment() {
    let mut s = devnet_setup();
    let addr = other_address(&s.params);
    let p = build_payment(&mut s.wallet, &mut s.tracker, &addr, Amount::coins(5), None).expect("payment");
    s.tracker.add_pending(&p.tx).expect("pending");
    // Another copy of the wallet spent the same coin differently, and that got mined.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut twin = Wallet::from_mnemonic(dir2.path(), DEVNET_MNEMONIC, 0, &s.params).expect("twin");
    let mut twin_tracker = Tracker::new(twin.watched_pkhs(), s.params.coinbase_maturity);
    TestChain::new(&s.params, &mut twin_tracker);
    let q = build_payment(&mut twin, &mut twin_tracker, &addr, Amount::coins(7), None).expect("twin payment");
    s.chain.connect(&mut s.tracker, OTHER, vec![q.tx.clone()], 0);
    assert_eq!(s.tracker.pending().count(), 0);
    let h = s.tracker.history();
    assert_eq!(h.last().map(|e| e.txid), Some(q.txid));
    // The twin's change key is ours too (same mnemonic and account).
    assert_eq!(s.tracker.balance().spendable, q.change.expect("change").1);
    // Disconnecting it: its spend returns to the mempool, so the coin stays reserved.
    s.chain.disconnect(&mut s.tracker);
    assert!(s.tracker.is_reserved(&p.spent[0]));
    assert_eq!(s.tracker.balance().spendable, Amount::ZERO);
}

#[test]
fn a_locked_wallet_refuses_to_sign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::devnet();
    let opts = CreateOptions {
        bip39_passphrase: Zeroizing::new(String::new()),
        encryption: Some((Zeroizing::new("pw".into()), KdfParams::insecure_fast())),
    };
    let m = Mnemonic::parse(DEVNET_MNEMONIC).expect("mnemonic");
    let mut wallet = Wallet::create(dir.path(), &params, m, 0, opts).expect("wallet");
    let mut tracker = Tracker::new(wallet.watched_pkhs(), params.coinbase_maturity);
    TestChain::new(&params, &mut tracker);
    // Locked, it still sees its premine.
    assert_eq!(tracker.balance().spendable, Amount::coins(10_000));
    let addr = other_address(&params);
    let err = build_payment(&mut wallet, &mut tracker, &addr, Amount::coins(1), None).expect_err("locked");
    assert!(matches!(err, WalletError::Locked), "{err}");
    assert!(err.to_string().contains("locked"));
    assert!(wallet.unlock("nope", None).is_err());
    assert!(matches!(
        build_payment(&mut wallet, &mut tracker, &addr, Amount::coins(1), None),
        Err(WalletError::Locked)
    ));
    wallet
        .unlock("pw", Some(std::time::Duration::from_secs(60)))
        .expect("unlock");
    let p = build_payment(&mut wallet, &mut tracker, &addr, Amount::coins(1), None).expect("signs");
    assert_signed(&p, &wallet);
}

#[test]
fn bad_addresses_dust_and_low_fee_rates_are_refused() {
    let mut s = devnet_setup();
    let regtest_addr = OTHER.to_address("lreg").expect("address");
    let err = build_payment(&mut s.wallet, &mut s.tracker, &regtest_addr, Amount::coins(1), None).expect_err("network");
    assert!(matches!(err, WalletError::InvalidAddress(_)), "{err}");
    assert!(build_payment(&mut s.wallet, &mut s.tracker, "ldev1garbage", Amount::coins(1), None).is_err());
    let addr = other_address(&s.params);
    assert!(matches!(
        build_payment(&mut s.wallet, &mut s.tracker, &addr, Amount(10), None),
        Err(WalletError::Dust { .. })
    ));
    assert!(matches!(
        build_payment(&mut s.wallet, &mut s.tracker, &addr, Amount::coins(1), Some(0)),
        Err(WalletError::FeeRateTooLow { rate: 0, min: 1 })
    ));
}

#[test]
fn disconnecting_an_unknown_block_asks_for_a_rescan() {
    let mut s = devnet_setup();
    let block = Arc::new(ChainParams::regtest().genesis_block());
    let err = s
        .tracker
        .apply(&ChainEvent::BlockDisconnected {
            hash: block.hash(),
            height: Height(5),
            block,
        })
        .expect_err("unknown block");
    assert!(err.to_string().contains("rescan"), "{err}");
}

#[test]
fn restored_wallet_skips_used_keys_and_extends_its_pool() {
    let mut s = devnet_setup();
    // Pay the wallet's 15th receive key (inside the look-ahead pool, never issued here).
    let far = s.wallet.watched_pkhs()[15];
    assert_eq!(
        s.wallet.key_for(&far).map(|k| (k.path.chain, k.path.index)),
        Some((Chain::Receive, 15))
    );
    s.chain.connect(&mut s.tracker, far, vec![], 0);
    let before = s.wallet.watched_pkhs().len();
    assert!(s.wallet.mark_used(s.tracker.paid_keys()).expect("mark"));
    assert!(s.wallet.watched_pkhs().len() > before, "pool reaches past the used key");
    let next = s.wallet.new_receive_address().expect("address");
    let next_pkh = lode_wallet::address::parse_address(&next, &s.params).expect("ours");
    assert_eq!(s.wallet.key_for(&next_pkh).map(|k| k.path.index), Some(16));
}
