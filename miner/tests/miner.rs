//! The miner against a real regtest chain: templates pass full validation when mined, the
//! coinbase claims exactly subsidy + fees, package selection, and stale work is abandoned.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use lode_chain::build::{assemble, coinbase, key_hash, pay, spend};
use lode_chain::{AcceptStatus, Amount, ChainParams, ChainState, Hash256, Height, OutPoint, PubkeyHash, TxOut};
use lode_miner::template::{build_template, select_packages, BlockTemplate, NoTransactions, TemplateTx, TxSource};
use lode_miner::{mine_blocking, Miner};

const NOW: u64 = 1_767_225_600 + 1_000_000;

fn chain() -> (tempfile::TempDir, ChainState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ChainState::open_with_clock(dir.path(), ChainParams::regtest(), Arc::new(|| NOW)).expect("open");
    (dir, state)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn mine_on_tip(state: &mut ChainState, source: &dyn TxSource, to: PubkeyHash, t: u64) -> BlockTemplate {
    let template = build_template(state, source, to, t, 7).expect("template");
    let block = mine_blocking(&template, 1, &AtomicBool::new(false)).expect("mined");
    let outcome = state.accept_block(Arc::new(block)).expect("accepted");
    assert_eq!(outcome.status, AcceptStatus::Connected);
    template
}

/// Transactions offered to the template, each with its fee computed from the chain.
struct Offer(Vec<TemplateTx>);

impl TxSource for Offer {
    fn template_candidates(&self) -> Vec<TemplateTx> {
        self.0.clone()
    }
}

#[test]
fn mined_blocks_pass_validation_and_claim_exactly_subsidy_plus_fees() {
    let (_dir, mut state) = chain();
    let miner_key = key(1);
    for i in 0..11 {
        mine_on_tip(&mut state, &NoTransactions, key_hash(&miner_key), NOW - 1000 + i);
    }
    let genesis = state.genesis_hash();
    let h1 = state.hash_at(Height(1)).expect("h1");
    let cb = state.block(&h1).expect("read").expect("body").transactions[0].clone();
    let op = OutPoint {
        txid: cb.txid(),
        index: 0,
    };
    let value = cb.outputs[0].value;
    let tx = spend(
        &[op],
        vec![pay(key_hash(&key(2)), Amount(value.0 - 2_500))],
        &miner_key,
        &genesis,
    );
    let offer = Offer(vec![TemplateTx {
        txid: tx.txid(),
        fee: Amount(2_500),
        size: tx.size(),
        parents: vec![],
        tx,
    }]);
    let template = build_template(&state, &offer, key_hash(&miner_key), NOW, 1).expect("template");
    assert_eq!(template.fees, Amount(2_500));
    assert_eq!(
        template.reward,
        Amount(state.params().subsidy(template.height).0 + 2_500)
    );
    assert_eq!(template.block.transactions[0].output_total(), Some(template.reward));

    // One unit more than subsidy + fees: the consensus code refuses it, mined or not.
    let mut greedy = template.block.clone();
    greedy.transactions[0] = coinbase(
        template.height,
        1,
        b"greedy",
        vec![TxOut {
            value: Amount(template.reward.0 + 1),
            pubkey_hash: key_hash(&miner_key),
        }],
    );
    let greedy = assemble(
        greedy.header.prev_hash,
        greedy.header.time,
        greedy.header.bits,
        greedy.transactions,
    );
    let greedy_template = BlockTemplate {
        block: greedy,
        ..template.clone()
    };
    let mined_greedy = mine_blocking(&greedy_template, 1, &AtomicBool::new(false)).expect("mined");
    let err = state.accept_block(Arc::new(mined_greedy)).map(|o| o.status);
    assert!(
        matches!(
            err,
            Ok(AcceptStatus::Invalid {
                rule: lode_chain::ConsensusError::CoinbaseTooLarge { .. }
            })
        ),
        "{err:?}"
    );

    let block = mine_blocking(&template, 2, &AtomicBool::new(false)).expect("mined");
    assert_eq!(
        state.accept_block(Arc::new(block)).expect("accept").status,
        AcceptStatus::Connected
    );
    state.verify().expect("verify");
}

fn synthetic(id: u8, fee: u64, size: usize, parents: &[u8]) -> TemplateTx {
    let tx = coinbase(Height(u32::from(id)), 0, b"", vec![]);
    TemplateTx {
        tx,
        txid: Hash256([id; 32]),
        fee: Amount(fee),
        size,
        parents: parents.iter().map(|p| Hash256([*p; 32])).collect(),
    }
}

#[test]
fn high_fee_child_pulls_its_low_fee_parent_ahead_of_a_medium_single() {
    // Parent 0.5/B, child 5/B (package 2.75/B), single 2.5/B; room for two transactions.
    let parent = synthetic(1, 100, 200, &[]);
    let child = synthetic(2, 1_000, 200, &[1]);
    let single = synthetic(3, 500, 200, &[]);
    let picked = select_packages(vec![single, child, parent], 400);
    let ids: Vec<u8> = picked.iter().map(|t| t.txid.0[0]).collect();
    assert_eq!(ids, vec![1, 2], "parent then child; the single does not fit");
    // With room for all, the single follows the package.
    let picked = select_packages(
        vec![
            synthetic(3, 500, 200, &[]),
            synthetic(2, 1_000, 200, &[1]),
            synthetic(1, 100, 200, &[]),
        ],
        10_000,
    );
    let ids: Vec<u8> = picked.iter().map(|t| t.txid.0[0]).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[test]
fn a_new_template_abandons_the_old_search() {
    let (_dir, state) = chain();
    let template = build_template(&state, &NoTransactions, PubkeyHash([1; 20]), NOW, 0).expect("template");
    // Make the target unreachable so the workers search until told otherwise.
    let mut hard = template.clone();
    hard.block.header.bits = 0x0300_0001;
    let (tx, rx) = std::sync::mpsc::channel();
    let miner = Miner::start(2, tx).expect("miner starts");
    let first = miner.set_template(hard.clone()).expect("job");
    let deadline = Instant::now() + Duration::from_secs(20);
    while miner.started_jobs() != vec![first, first] {
        assert!(
            Instant::now() < deadline,
            "workers never started job {first}: {:?}",
            miner.started_jobs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = miner
        .set_template(BlockTemplate {
            extra_nonce: 99,
            ..hard
        })
        .expect("job");
    let switched = Instant::now();
    while miner.started_jobs() != vec![second, second] {
        assert!(
            Instant::now() < deadline,
            "workers never switched to job {second}: {:?}",
            miner.started_jobs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("both workers switched jobs in {:?}", switched.elapsed());
    assert!(rx.try_recv().is_err(), "no block can meet that target");
    let stats = miner.stats().snapshot();
    assert!(stats.total_hashes > 0);
}

#[test]
fn generate_mines_pool_transactions_through_the_normal_path() {
    let (_dir, mut state) = chain();
    let mut pool = lode_chain::mempool::Mempool::new(state.params(), Arc::new(|| NOW));
    let miner_key = key(1);
    let stop = AtomicBool::new(false);
    let (hashes, events) =
        lode_miner::generate(&mut state, &mut pool, key_hash(&miner_key), 11, 1, &stop).expect("generate");
    assert_eq!(hashes.len(), 11);
    assert_eq!(events.len(), 11);
    assert_eq!(state.height(), Height(11));
    let cb = state.block(&hashes[0]).expect("read").expect("body").transactions[0].clone();
    let tx = spend(
        &[OutPoint {
            txid: cb.txid(),
            index: 0,
        }],
        vec![pay(key_hash(&key(2)), Amount(cb.outputs[0].value.0 - 1_000))],
        &miner_key,
        &state.genesis_hash(),
    );
    let txid = tx.txid();
    pool.accept(Arc::new(tx), &state).expect("pool accepts");
    let (hashes, _) = lode_miner::generate(&mut state, &mut pool, key_hash(&miner_key), 1, 2, &stop).expect("generate");
    let block = state.block(&hashes[0]).expect("read").expect("body");
    assert_eq!(block.transactions[1].txid(), txid);
    assert_eq!(
        block.transactions[0].output_total(),
        Some(Amount(state.params().subsidy(Height(12)).0 + 1_000))
    );
    assert!(pool.is_empty(), "mined transaction left the pool");
    state.verify().expect("verify");
}

#[test]
fn controller_refreshes_on_new_tip_and_on_more_fees_only_after_the_interval() {
    use lode_miner::{MiningController, Refresh};
    let (_dir, mut state) = chain();
    let mut pool = lode_chain::mempool::Mempool::new(state.params(), Arc::new(|| NOW));
    let miner_key = key(1);
    let stop = AtomicBool::new(false);
    lode_miner::generate(&mut state, &mut pool, key_hash(&miner_key), 11, 1, &stop).expect("generate");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut ctl = MiningController::start(1, key_hash(&miner_key), tx)
        .expect("miner starts")
        .with_refresh(Duration::from_secs(3));
    let t0 = Instant::now();
    assert_eq!(ctl.update(&state, &pool, t0).expect("update"), Refresh::NewTip);
    assert_eq!(ctl.update(&state, &pool, t0).expect("update"), Refresh::Kept);
    // Regtest: the workers find a block at once; accepting it moves the tip.
    let found = rx.recv_timeout(Duration::from_secs(20)).expect("a block");
    let outcome = state.accept_block(Arc::new(found.block)).expect("accept");
    assert_eq!(outcome.status, AcceptStatus::Connected);
    assert_eq!(ctl.update(&state, &pool, t0).expect("update"), Refresh::NewTip);
    // More fees in the pool: kept until the interval has passed, then refreshed.
    let h1 = state.hash_at(Height(1)).expect("h1");
    let cb = state.block(&h1).expect("read").expect("body").transactions[0].clone();
    let tx = spend(
        &[OutPoint {
            txid: cb.txid(),
            index: 0,
        }],
        vec![pay(key_hash(&key(2)), Amount(cb.outputs[0].value.0 - 5_000))],
        &miner_key,
        &state.genesis_hash(),
    );
    pool.accept(Arc::new(tx), &state).expect("accepted");
    assert_eq!(
        ctl.update(&state, &pool, t0 + Duration::from_secs(1)).expect("update"),
        Refresh::Kept
    );
    assert_eq!(
        ctl.update(&state, &pool, t0 + Duration::from_secs(4)).expect("update"),
        Refresh::MoreFees
    );
}
