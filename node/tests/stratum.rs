//! The Stratum v1 server against a miner of our own (real hashing with `lode-miner`'s
//! kernel, the client side `lode miner` uses): solo shares judged by the rules, a block
//! found through Stratum accepted by a 3-node network, pool payouts split exactly as the
//! window says and surviving a restart, and hostile miners cut off.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{addr, mine, start_with, wait_for};
use lode_chain::pow::{hash_to_u256, target_from_bits};
use lode_chain::{Amount, ChainParams, Hash256, Height, PubkeyHash, Transaction};
use lode_miner::HeaderHasher;
use lode_node::client::stratum::mine::{self, MinerConfig};
use lode_node::client::stratum::{Connection, Event, Job, ServerError, StratumClientError};
use lode_node::common::stratum::ShareDifficulty;
use lode_node::stratum::{PoolConfig, StratumConfig};
use lode_node::NodeHandle;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Regtest with a fixed target of 0xffff·2^232 (network difficulty 2^-24): one hash in
/// about 256 is a block, so blocks and shares (difficulty 2^-30: one hash in 4) are both
/// quick to find and easy to tell apart.
fn params() -> ChainParams {
    let mut p = ChainParams::regtest();
    p.genesis_bits = 0x2000_ffff;
    p.pow_limit_bits = 0x2000_ffff;
    p
}

fn stratum_config() -> StratumConfig {
    let mut c = StratumConfig::new("127.0.0.1:0".parse().expect("addr"));
    c.start_difficulty = ShareDifficulty::from_log2(-30);
    c.vardiff = false;
    c
}

async fn start_node(dir: &std::path::Path, config: StratumConfig) -> NodeHandle {
    start_with(dir, |c| {
        c.params = params();
        c.stratum = Some(config);
    })
    .await
}

fn stratum_addr(node: &NodeHandle) -> String {
    node.stratum_addr().expect("stratum runs").to_string()
}

fn address(n: u8) -> (PubkeyHash, String) {
    let pkh = PubkeyHash([n; 20]);
    (pkh, pkh.to_address("lreg").expect("address"))
}

/// Subscribed, version rolling negotiated, authorized as `user`, first job received.
async fn miner(node: &NodeHandle, user: &str) -> (Connection, Job) {
    let mut c = Connection::connect(&stratum_addr(node)).await.expect("connect");
    c.subscribe("test-miner/1").await.expect("subscribe");
    assert_eq!(
        c.configure_version_rolling(0xffff_ffff).await.expect("configure"),
        Some(0x1fff_e000)
    );
    assert_eq!(c.authorize(user, "x").await.expect("authorize"), Ok(Value::Bool(true)));
    let job = c.wait_job(None, Duration::from_secs(10)).await.expect("a job");
    (c, job)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    /// Meets the share target but not the block target.
    Share,
    /// Meets the block target.
    Block,
    /// Misses the share target.
    Low,
}

/// Searches nonces of `job` with extranonce2 = `en2` (real hashing) for one of the kind
/// wanted; returns the nonce and the header hash.
fn find(job: &Job, en1: &[u8], en2: &[u8], version: u32, want: Want) -> (u32, Hash256) {
    let header = job.header(en1, en2, job.ntime, 0, version);
    let hasher = HeaderHasher::from_header(&header);
    let share = job.share_target();
    let block = target_from_bits(job.bits).expect("bits");
    for nonce in 0..=u32::MAX {
        let h = Hash256(hasher.hash(nonce));
        let v = hash_to_u256(&h);
        let kind = if v <= block {
            Want::Block
        } else if v <= share {
            Want::Share
        } else {
            Want::Low
        };
        if kind == want {
            let mut full = header;
            full.nonce = nonce;
            assert_eq!(full.hash(), h, "the kernel hashes the header the job describes");
            return (nonce, h);
        }
    }
    panic!("nonce space exhausted")
}

fn code(r: Result<Value, ServerError>) -> i64 {
    match r {
        Ok(v) => panic!("expected a refusal, got {v}"),
        Err(e) => e.code,
    }
}

async fn submit(
    c: &mut Connection,
    user: &str,
    job: &Job,
    en2: &[u8],
    nonce: u32,
    version: Option<u32>,
) -> Result<Value, ServerError> {
    c.submit(user, &job.id, en2, job.ntime, nonce, version)
        .await
        .expect("submit answered")
}

async fn coinbase_of(node: &NodeHandle, hash: Hash256) -> Transaction {
    node.chain()
        .read(move |v| v.chain().block(&hash).ok().flatten())
        .await
        .expect("read")
        .expect("block stored")
        .transactions[0]
        .clone()
}

/// A template published while a connection is subscribed but not yet authorized reaches it
/// once, as its first job: not that job and then a second clean notify of the same work
/// (which made a miner drop its work, and made the next job look stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_published_before_authorize_is_sent_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path(), stratum_config()).await;
    let (mut watcher, first_seen) = miner(&node, "watcher").await;
    let (_, user) = address(7);
    let mut c = Connection::connect(&stratum_addr(&node)).await.expect("connect");
    c.subscribe("test-miner/1").await.expect("subscribe");

    // A new tip, and its template published (the watcher has its job), while `c` waits.
    mine(&node, 1, 1).await;
    let tip1 = node.tip().hash;
    let mut last = first_seen.id;
    loop {
        let j = watcher
            .wait_job(Some(&last), Duration::from_secs(10))
            .await
            .expect("the new tip's job");
        if j.prev_hash == tip1 {
            break;
        }
        last = j.id;
    }

    assert_eq!(c.authorize(&user, "x").await.expect("authorize"), Ok(Value::Bool(true)));
    let first = c.wait_job(None, Duration::from_secs(10)).await.expect("a job");
    assert_eq!(first.prev_hash, tip1);
    assert!(first.clean);

    // The next job `c` hears of is the next tip's, not the same template again.
    mine(&node, 1, 2).await;
    let tip2 = node.tip().hash;
    let next = c
        .wait_job(Some(&first.id), Duration::from_secs(10))
        .await
        .expect("the next tip's job");
    assert_eq!(next.prev_hash, tip2, "a job of the same template came first");
    assert!(next.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_shares_are_judged_by_the_rules_and_a_block_pays_the_miner() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = start_node(dir.path(), stratum_config()).await;
    let (pkh, user) = address(3);
    let user = format!("{user}.rig1");

    // Before subscribing: unknown methods get an error and the connection stays; a submit
    // is refused with 25.
    let mut raw = Connection::connect(&stratum_addr(&node)).await.expect("connect");
    assert_eq!(
        code(raw.call("mining.nonsense", json!([])).await.expect("answered")),
        20
    );
    assert_eq!(
        code(
            raw.call("mining.submit", json!(["u", "1", "00000000", "00000000", "00000000"]))
                .await
                .expect("answered")
        ),
        25
    );
    raw.subscribe("x").await.expect("still open after the errors");
    assert_eq!(
        code(
            raw.call("mining.submit", json!(["u", "1", "00000000", "00000000", "00000000"]))
                .await
                .expect("answered")
        ),
        24
    );
    assert_eq!(
        raw.call("mining.extranonce.subscribe", json!([]))
            .await
            .expect("answered"),
        Ok(Value::Bool(true))
    );

    let (mut c, job) = miner(&node, &user).await;
    let tip = node.tip();
    assert_eq!(job.prev_hash, tip.hash);
    assert_eq!(job.bits, 0x2000_ffff);
    // 2^-30 (the last digit may differ after a JSON round trip); the target is exact.
    assert!((job.difficulty / ShareDifficulty::from_log2(-30).value() - 1.0).abs() < 1e-12);
    assert_eq!(job.share_target(), ShareDifficulty::from_log2(-30).target());
    assert!(job.clean);
    assert_eq!(
        c.en1.len() + c.en2_size,
        8,
        "the extranonces fill the coinbase's extra-nonce field"
    );
    let en1 = c.en1.clone();

    // An accepted share, then the same again: duplicate.
    let en2 = [0, 0, 0, 1];
    let (nonce, _) = find(&job, &en1, &en2, job.version, Want::Share);
    assert_eq!(
        submit(&mut c, &user, &job, &en2, nonce, None).await,
        Ok(Value::Bool(true))
    );
    assert_eq!(code(submit(&mut c, &user, &job, &en2, nonce, None).await), 22);
    // Low difficulty.
    let (low, _) = find(&job, &en1, &en2, job.version, Want::Low);
    assert_eq!(code(submit(&mut c, &user, &job, &en2, low, None).await), 23);
    // ntime far in the future.
    let r = c
        .submit(&user, &job.id, &en2, job.ntime + 100_000, nonce, None)
        .await
        .expect("answered");
    assert_eq!(code(r.clone()), 20);
    assert!(r.expect_err("refused").message.contains("ntime"));
    // Version bits outside the negotiated mask.
    let r = submit(&mut c, &user, &job, &en2, nonce, Some(0x4000_0000)).await;
    assert!(
        r.as_ref().expect_err("refused").message.contains("bad-version"),
        "{r:?}"
    );
    // Version bits inside the mask: a different header, accepted.
    let rolled = job.version | 0x0000_2000;
    let (vn, _) = find(&job, &en1, &en2, rolled, Want::Share);
    assert_eq!(
        submit(&mut c, &user, &job, &en2, vn, Some(0x0000_2000)).await,
        Ok(Value::Bool(true))
    );
    // A job id never sent: 21.
    let r = c
        .submit(&user, "ffffff", &en2, job.ntime, nonce, None)
        .await
        .expect("answered");
    assert_eq!(code(r), 21);

    // A block: accepted, stored as the tip, paying the authorized address.
    let en2 = [0, 0, 0, 2];
    let (bn, bh) = find(&job, &en1, &en2, job.version, Want::Block);
    assert_eq!(submit(&mut c, &user, &job, &en2, bn, None).await, Ok(Value::Bool(true)));
    wait_for("the Stratum block to be the tip", Duration::from_secs(10), || async {
        node.tip().hash == bh
    })
    .await;
    let cb = coinbase_of(&node, bh).await;
    assert_eq!(cb.outputs.len(), 1);
    assert_eq!(cb.outputs[0].pubkey_hash, pkh);
    assert_eq!(cb.outputs[0].value, params().subsidy(Height(1)));

    // The tip moved: a new clean job at once, and shares of the old job are stale.
    let next = c
        .wait_job(Some(&job.id), Duration::from_secs(10))
        .await
        .expect("new job");
    assert!(next.clean);
    assert_eq!(next.prev_hash, bh);
    let en2 = [0, 0, 0, 3];
    let (sn, _) = find(&job, &en1, &en2, job.version, Want::Share);
    assert_eq!(code(submit(&mut c, &user, &job, &en2, sn, None).await), 21);

    // A username that is not an address mines for the node's wallet.
    let (mut w, wjob) = miner(&node, "rig-without-address").await;
    let en1w = w.en1.clone();
    let en2 = [0, 0, 0, 4];
    let (bn, bh) = find(&wjob, &en1w, &en2, wjob.version, Want::Block);
    assert_eq!(
        submit(&mut w, "rig-without-address", &wjob, &en2, bn, None).await,
        Ok(Value::Bool(true))
    );
    wait_for("the second block", Duration::from_secs(10), || async {
        node.tip().hash == bh
    })
    .await;
    let cb = coinbase_of(&node, bh).await;
    let info = node.wallet_info().await.expect("ask").expect("wallet");
    let paid = cb.outputs[0].pubkey_hash.to_address("lreg").expect("address");
    assert_eq!(
        Some(paid),
        info.first_address,
        "solo blocks of non-address users pay the node wallet"
    );

    let stats = node.api().stratum().expect("stratum").clone();
    let (accepted, rejected, blocks, _) = stats.stats.totals();
    assert_eq!(accepted, 4);
    assert_eq!(blocks, 2);
    let by = |name: &str| rejected.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or(0);
    assert_eq!(
        (
            by("duplicate"),
            by("low_difficulty"),
            by("bad_ntime"),
            by("bad_version")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(by("stale"), 2);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_found_through_stratum_is_accepted_by_every_node_of_three() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let a = start_node(dirs[0].path(), stratum_config()).await;
    let b = start_with(dirs[1].path(), |c| {
        c.params = params();
        c.network.peers = vec![addr(&a)];
    })
    .await;
    let c3 = start_with(dirs[2].path(), |c| {
        c.params = params();
        c.network.peers = vec![addr(&a), addr(&b)];
    })
    .await;
    wait_for("peers", Duration::from_secs(20), || async {
        a.peers().await.map(|p| p.len() >= 2).unwrap_or(false)
    })
    .await;
    let (pkh, user) = address(9);
    let (mut c, job) = miner(&a, &user).await;
    let en1 = c.en1.clone();
    let en2 = [1, 2, 3, 4];
    let (nonce, hash) = find(&job, &en1, &en2, job.version, Want::Block);
    assert_eq!(
        submit(&mut c, &user, &job, &en2, nonce, None).await,
        Ok(Value::Bool(true))
    );
    for (name, node) in [("a", &a), ("b", &b), ("c", &c3)] {
        wait_for(
            &format!("node {name} to hold the Stratum block"),
            Duration::from_secs(30),
            || async { node.hash_at(Height(1)).await.ok().flatten() == Some(hash) },
        )
        .await;
        let cb = coinbase_of(node, hash).await;
        assert_eq!(cb.outputs[0].pubkey_hash, pkh, "node {name}");
    }
    for n in [c3, b, a] {
        n.shutdown().await.expect("shutdown");
    }
}

fn pool_config() -> StratumConfig {
    let mut c = stratum_config();
    c.job_interval = Duration::from_millis(500);
    c.pool = Some(PoolConfig {
        window: 2.0,
        fee_bps: 0,
        min_payout: Amount(10_000),
        max_outputs: 50,
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_coinbase_splits_exactly_as_the_window_says_and_the_log_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = start_node(dir.path(), pool_config()).await;
    // Pool mode wants an address as the username.
    let mut bad = Connection::connect(&stratum_addr(&node)).await.expect("connect");
    bad.subscribe("x").await.expect("subscribe");
    assert_eq!(code(bad.authorize("not-an-address", "x").await.expect("answered")), 24);

    // Three miners of different rates: 6, 3 and 1 shares of the same difficulty.
    let miners = [(1u8, 6usize), (2, 3), (3, 1)];
    let mut conns = Vec::new();
    for (n, shares) in miners {
        let (pkh, a) = address(n);
        let user = format!("{a}.w{n}");
        let (mut c, job) = miner(&node, &user).await;
        let en1 = c.en1.clone();
        for i in 0..shares {
            let en2 = [0, 0, n, i as u8];
            let (nonce, _) = find(&job, &en1, &en2, job.version, Want::Share);
            assert_eq!(
                submit(&mut c, &user, &job, &en2, nonce, None).await,
                Ok(Value::Bool(true))
            );
        }
        conns.push((pkh, user, c, job));
    }
    let pool = node.api().stratum().expect("stratum").pool.clone().expect("pool mode");
    assert_eq!(pool.share_count(), 10, "every acknowledged share is in the log");

    // A template built after the shares (one every 500 ms here) carries the split.
    let (pkh1, user1, mut c1, job1) = conns.remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let job = loop {
        let j = c1.wait_job(Some(&job1.id), Duration::from_secs(5)).await.expect("job");
        let cb_len = j.coinb2.len();
        // Three outputs of 28 bytes each once the window holds all three miners.
        if cb_len >= 3 * 28 || tokio::time::Instant::now() > deadline {
            break j;
        }
        c1.job = None;
    };
    let en1 = c1.en1.clone();
    let en2 = [9, 9, 9, 9];
    let (nonce, hash) = find(&job, &en1, &en2, job.version, Want::Block);
    assert_eq!(
        submit(&mut c1, &user1, &job, &en2, nonce, None).await,
        Ok(Value::Bool(true))
    );
    wait_for("the pool block", Duration::from_secs(10), || async {
        node.tip().hash == hash
    })
    .await;

    let cb = coinbase_of(&node, hash).await;
    let paid = |p: PubkeyHash| {
        cb.outputs
            .iter()
            .filter(|o| o.pubkey_hash == p)
            .map(|o| o.value.0)
            .sum::<u64>()
    };
    // 50 coins split 6 : 3 : 1 with nothing left over.
    assert_eq!(paid(pkh1), 3_000_000_000);
    assert_eq!(paid(address(2).0), 1_500_000_000);
    assert_eq!(paid(address(3).0), 500_000_000);
    assert_eq!(cb.output_total(), Some(params().subsidy(Height(1))));

    // The audit record holds the window the coinbase was built from.
    let record = pool.block(&hash).expect("read").expect("audit record");
    assert_eq!(record.window.len(), 10);
    assert_eq!(record.reward, 5_000_000_000);
    let outputs: Vec<(PubkeyHash, u64)> = record.outputs.iter().map(|(p, v)| (PubkeyHash(*p), *v)).collect();
    let coinbase: Vec<(PubkeyHash, u64)> = cb.outputs.iter().map(|o| (o.pubkey_hash, o.value.0)).collect();
    assert_eq!(outputs, coinbase);
    assert_eq!(pool.blocks_found(), 1);
    drop(pool);
    drop(conns);
    drop(c1);

    // A restart keeps the share log (10 shares + the block's own) and the audit record.
    node.shutdown().await.expect("shutdown");
    let node = restart(dir.path()).await;
    let pool = node.api().stratum().expect("stratum").pool.clone().expect("pool");
    assert_eq!(pool.share_count(), 11);
    assert!(pool.block(&hash).expect("read").is_some());
    drop(pool);
    node.shutdown().await.expect("shutdown");
}

/// Starts the pool node again in `dir`; the previous run's database may take a moment to
/// release its lock after the old tasks wind down.
async fn restart(dir: &std::path::Path) -> NodeHandle {
    for _ in 0..50 {
        let mut config = lode_node::NodeConfig::local(params(), dir.to_path_buf());
        config.stratum = Some(pool_config());
        match lode_node::start(config).await {
            Ok(n) => return n,
            Err(e) => {
                tracing::debug!(error = %e, "restart attempt");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("the pool node did not restart")
}

/// Reads until EOF or error; true if the server closed the connection within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_miners_are_cut_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = stratum_config();
    config.subscribe_timeout = Duration::from_secs(1);
    config.max_per_ip = 1_100;
    config.max_connections = 1_100;
    config.ban_score = -20;
    let node = start_node(dir.path(), config).await;
    let at: SocketAddr = node.stratum_addr().expect("stratum");
    let shared = node.api().stratum().expect("stratum").clone();

    // A line without a newline past the cap: dropped.
    let mut flood = tokio::net::TcpStream::connect(at).await.expect("connect");
    let _ = flood.write_all(&vec![b'a'; 64 * 1024]).await;
    assert!(
        closed_within(&mut flood, Duration::from_secs(5)).await,
        "no-newline flood dropped"
    );

    // No subscribe within the timeout: dropped.
    let mut silent = tokio::net::TcpStream::connect(at).await.expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "silent connection dropped"
    );

    // 1,000 idle connections open, a miner's shares are still judged and answered.
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        let mut s = tokio::net::TcpStream::connect(at).await.expect("connect");
        s.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .await
            .expect("write");
        idle.push(s);
    }
    wait_for(
        "1,000 idle connections to be served",
        Duration::from_secs(20),
        || async { shared.connections() >= 1_000 },
    )
    .await;
    let (_, user) = address(5);
    let (mut c, job) = miner(&node, &user).await;
    let en1 = c.en1.clone();
    for i in 0..5u8 {
        let en2 = [0, 0, 0, i];
        let (nonce, _) = find(&job, &en1, &en2, job.version, Want::Share);
        assert_eq!(
            submit(&mut c, &user, &job, &en2, nonce, None).await,
            Ok(Value::Bool(true))
        );
    }
    drop(idle);

    // A flood of invalid shares: cut off and banned; the next connection is refused.
    let mut refused = 0;
    let en2 = [0, 0, 1, 0];
    let (low, _) = find(&job, &en1, &en2, job.version, Want::Low);
    for _ in 0..20 {
        match c.submit(&user, &job.id, &en2, job.ntime, low, None).await {
            Ok(Err(_)) => refused += 1,
            _ => break,
        }
    }
    assert!(
        (4..20).contains(&refused),
        "cut off after a few invalid shares ({refused})"
    );
    assert!(
        c.call("mining.subscribe", json!([])).await.is_err(),
        "connection closed"
    );
    assert_eq!(shared.banned_count(), 1);
    let mut again = tokio::net::TcpStream::connect(at).await.expect("tcp accept");
    assert!(
        closed_within(&mut again, Duration::from_secs(5)).await,
        "banned address refused"
    );
    let _ = Arc::clone(&shared);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = stratum_config();
    config.max_per_ip = 2;
    let node = start_node(dir.path(), config).await;
    let (_, user) = address(6);
    let (_c1, _) = miner(&node, &user).await;
    let (_c2, _) = miner(&node, &user).await;
    let mut third = tokio::net::TcpStream::connect(node.stratum_addr().expect("addr"))
        .await
        .expect("tcp accept");
    assert!(
        closed_within(&mut third, Duration::from_secs(5)).await,
        "third connection from one address refused"
    );
    // `mine` is the harness's block maker: the node still works for others.
    mine(&node, 1, 1).await;
    node.shutdown().await.expect("shutdown");
}

/// The pool's carried balances as they stand.
fn carried(pool: &lode_node::stratum::pool::Pool) -> Vec<(PubkeyHash, u64)> {
    pool.carried()
        .expect("carried")
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// A job built after everything the miner did so far (the template rebuilt twice since).
async fn fresh_job(c: &mut Connection, after: &Job) -> Job {
    let j1 = c.wait_job(Some(&after.id), Duration::from_secs(10)).await.expect("job");
    c.wait_job(Some(&j1.id), Duration::from_secs(10)).await.expect("job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_reverses_the_credits_of_an_orphaned_pool_block() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let mut config = pool_config();
    // Every due carries over, so the ledger holds each block's credits.
    config.pool.as_mut().expect("pool").min_payout = Amount(u64::MAX / 4);
    let a = start_node(dirs[0].path(), config).await;
    // A node the pool does not know of yet, on its own branch.
    let b = start_with(dirs[1].path(), |c| c.params = params()).await;
    let pool = a.api().stratum().expect("stratum").pool.clone().expect("pool mode");

    let (pkh, user) = address(4);
    let (mut c, job) = miner(&a, &user).await;
    let en1 = c.en1.clone();
    for i in 0..2u8 {
        let en2 = [0, 0, 1, i];
        let (nonce, _) = find(&job, &en1, &en2, job.version, Want::Share);
        assert_eq!(
            submit(&mut c, &user, &job, &en2, nonce, None).await,
            Ok(Value::Bool(true))
        );
    }
    // The pool finds block 1 on a template holding those shares: all 50 coins carried.
    let job = fresh_job(&mut c, &job).await;
    let en2 = [0, 0, 2, 0];
    let (nonce, orphan) = find(&job, &en1, &en2, job.version, Want::Block);
    assert_eq!(
        submit(&mut c, &user, &job, &en2, nonce, None).await,
        Ok(Value::Bool(true))
    );
    wait_for("the pool block", Duration::from_secs(10), || async {
        a.tip().hash == orphan
    })
    .await;
    let credit = params().subsidy(Height(1)).0;
    wait_for("its credit to be carried", Duration::from_secs(10), || async {
        carried(&pool) == vec![(pkh, credit)]
    })
    .await;

    // A longer branch arrives: block 1 is orphaned and its credit reversed.
    mine(&b, 3, 41).await;
    a.dial(addr(&b)).await.expect("dial");
    let b_tip = b.tip().hash;
    wait_for("the reorg to the longer branch", Duration::from_secs(30), || async {
        a.tip().hash == b_tip
    })
    .await;
    wait_for(
        "the orphaned block's credit to be reversed",
        Duration::from_secs(10),
        || async { carried(&pool).is_empty() },
    )
    .await;
    let p = pool.clone();
    let head = a
        .chain()
        .read(move |v| p.ledger_head(|h| v.chain().hash_at(h)))
        .await
        .expect("read")
        .expect("ledger");
    assert_eq!((head.head, head.orphaned), (None, 1));
    assert!(pool.block(&orphan).expect("read").is_some(), "the audit record stays");

    // The next pool block, on the new branch, carries only its own part: the orphaned
    // block's credit is not counted twice. (Its shares still count: PPLNS windows overlap.)
    let job = loop {
        let j = c.wait_job(None, Duration::from_secs(10)).await.expect("job");
        if j.prev_hash == b_tip {
            break j;
        }
        c.job = None;
    };
    let job = fresh_job(&mut c, &job).await;
    let en2 = [0, 0, 3, 0];
    let (nonce, found) = find(&job, &en1, &en2, job.version, Want::Block);
    assert_eq!(
        submit(&mut c, &user, &job, &en2, nonce, None).await,
        Ok(Value::Bool(true))
    );
    wait_for("the second pool block", Duration::from_secs(10), || async {
        a.tip().hash == found
    })
    .await;
    let record = pool.block(&found).expect("read").expect("audit record");
    assert_eq!(record.height, 4);
    assert_eq!(record.carried, vec![(pkh.0, credit)]);
    wait_for("the ledger to follow", Duration::from_secs(10), || async {
        carried(&pool) == vec![(pkh, credit)]
    })
    .await;
    drop(pool);
    drop(c);
    for n in [b, a] {
        n.shutdown().await.expect("shutdown");
    }
}

/// Reads until `client.reconnect` arrives; its (to, wait).
async fn next_reconnect(c: &mut Connection) -> (Option<String>, u64) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read_event()).await {
            Ok(Ok(Event::Reconnect { to, wait })) => return (to, wait),
            Ok(Ok(_)) => continue,
            other => panic!("no client.reconnect: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnect_moves_miners_on_request_and_precedes_a_shutdown() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let a = start_node(dirs[0].path(), stratum_config()).await;
    let b = start_node(dirs[1].path(), stratum_config()).await;
    let (_, user) = address(8);
    let shared_a = a.api().stratum().expect("stratum").clone();
    let shared_b = b.api().stratum().expect("stratum").clone();

    // The operator's request: the miner is told where to go, then the connection closes.
    let (mut c, _) = miner(&a, &user).await;
    assert_eq!(shared_a.reconnect_all(Some(("127.0.0.1".into(), 3334, 5))), 1);
    assert_eq!(next_reconnect(&mut c).await, (Some("127.0.0.1:3334".into()), 5));
    assert!(matches!(c.read_event().await, Err(StratumClientError::Closed)));

    // `lode miner`'s loop follows it: mining at a, redirected to b, its shares go to b.
    let b_at = b.stratum_addr().expect("stratum");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let miner_task = tokio::spawn(mine::run(
        MinerConfig {
            url: format!("stratum+tcp://{}", stratum_addr(&a)),
            user: user.clone(),
            pass: "x".into(),
            threads: 1,
            report_every: Duration::from_secs(1),
        },
        |_| {},
        stop_rx,
    ));
    wait_for("shares at a", Duration::from_secs(20), || async {
        shared_a.stats.totals().0 > 0
    })
    .await;
    wait_for("the miner to be connected", Duration::from_secs(10), || async {
        shared_a.connections() == 1
    })
    .await;
    shared_a.reconnect_all(Some((b_at.ip().to_string(), b_at.port(), 0)));
    wait_for("shares at b after the redirect", Duration::from_secs(20), || async {
        shared_b.stats.totals().0 > 0
    })
    .await;
    wait_for("the miner to have left a", Duration::from_secs(10), || async {
        shared_a.connections() == 0
    })
    .await;
    let _ = stop_tx.send(true);
    let status = miner_task.await.expect("join").expect("miner ran");
    assert!(status.accepted >= 1, "{status:?}");

    // A shutdown sends `client.reconnect []` (come back here) before closing.
    let (mut d, _) = miner(&b, &user).await;
    let stopping = tokio::spawn(b.shutdown());
    assert_eq!(next_reconnect(&mut d).await, (None, 0));
    stopping.await.expect("join").expect("shutdown");
    drop((shared_a, shared_b));
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vardiff_moves_a_miners_difficulty_by_powers_of_two_toward_the_share_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = params();
    // Network difficulty 2^-8: well above every share difficulty this test reaches.
    p.genesis_bits = 0x1e00_ffff;
    p.pow_limit_bits = 0x1e00_ffff;
    let mut config = stratum_config();
    config.vardiff = true;
    config.share_interval = Duration::from_secs(2);
    let node = start_with(dir.path(), |c| {
        c.params = p;
        c.stratum = Some(config);
    })
    .await;
    let (_, user) = address(10);
    let (mut c, mut job) = miner(&node, &user).await;
    let en1 = c.en1.clone();
    let log2 = |d: f64| {
        let k = d.log2();
        assert!((k - k.round()).abs() < 1e-9, "difficulty {d} is a power of two");
        k.round() as i32
    };
    let mut k = log2(job.difficulty);
    assert_eq!(k, -30);
    // A miner far faster than one share per 2 s: after each 8 shares (well under 16 s) its
    // difficulty rises by a whole power of two, twice.
    for round in 0..2u8 {
        for i in 0..8u8 {
            let en2 = [round, 0, 4, i];
            let (nonce, _) = find(&job, &en1, &en2, job.version, Want::Share);
            assert_eq!(
                submit(&mut c, &user, &job, &en2, nonce, None).await,
                Ok(Value::Bool(true))
            );
        }
        // A job that only refreshed the template (a new tip, the periodic refresh) can come
        // before the retarget: skip those, within 10 s in all.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut next = c
            .wait_job(Some(&job.id), Duration::from_secs(10))
            .await
            .expect("retarget job");
        while next.difficulty == job.difficulty {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match c.wait_job(Some(&next.id), left).await {
                Ok(j) => next = j,
                Err(_) => break,
            }
        }
        let nk = log2(next.difficulty);
        assert!(nk > k, "round {round}: 2^{k} → 2^{nk} rises");
        // A share meeting the old difficulty but not the new one is now low difficulty.
        let en2 = [round, 0, 5, 0];
        let old = Job {
            difficulty: job.difficulty,
            ..next.clone()
        };
        let (weak, _) = loop_find_weak(&old, &next, &en1, &en2);
        assert_eq!(code(submit(&mut c, &user, &next, &en2, weak, None).await), 23);
        k = nk;
        job = next;
    }
    // Then silent: after a few intervals without a share, it halves.
    let next = c.wait_job(Some(&job.id), Duration::from_secs(30)).await.expect("job");
    let next = if log2(next.difficulty) == k {
        // A job that only refreshed the template: wait for the retarget.
        c.wait_job(Some(&next.id), Duration::from_secs(30)).await.expect("job")
    } else {
        next
    };
    assert_eq!(log2(next.difficulty), k - 1, "an idle miner's difficulty halves");
    node.shutdown().await.expect("shutdown");
}

/// A nonce whose hash meets `old`'s share target but not `new`'s.
fn loop_find_weak(old: &Job, new: &Job, en1: &[u8], en2: &[u8]) -> (u32, Hash256) {
    let header = new.header(en1, en2, new.ntime, 0, new.version);
    let hasher = HeaderHasher::from_header(&header);
    let (weak, strong) = (old.share_target(), new.share_target());
    for nonce in 0..=u32::MAX {
        let h = Hash256(hasher.hash(nonce));
        let v = hash_to_u256(&h);
        if v <= weak && v > strong {
            return (nonce, h);
        }
    }
    panic!("nonce space exhausted")
}
