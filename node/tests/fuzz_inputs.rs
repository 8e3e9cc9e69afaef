//! The fuzz targets' seeds and regression inputs as ordinary tests, so every
//! `cargo nextest run --workspace` replays them without cargo-fuzz (docs/FUZZING.md).
//!
//! The targets are the fuzz crate's own functions (`fuzz/src/lib.rs`, compiled here as a
//! module): a seed must be accepted, and no input — seed, truncated seed or a crash the
//! fuzzer once found — may panic; a refused one must say why in one line.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fuzz_targets::{Outcome, Target, TARGETS};

fn fuzz_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(kind)
}

/// The files of `fuzz/<kind>/<target>/`, sorted (missing folder: none).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Removes the file targets' scratch dir when a test ends (each test is its own process
/// under nextest; the dir is per process).
struct Scratch;

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(fuzz_targets::scratch_root());
    }
}

/// Runs `f` on `data`, turning a panic into a test failure that names the input.
fn run(name: &str, f: Target, data: &[u8], what: &str) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| f(data))) {
        Ok(outcome) => {
            if let Err(reason) = &outcome {
                assert!(
                    !reason.is_empty() && !reason.contains('\n'),
                    "{name}: {what} was refused without a one-line reason: {reason:?}"
                );
            }
            outcome
        }
        Err(_) => panic!("{name}: {what} panicked"),
    }
}

#[test]
fn every_target_has_seeds_and_every_seed_is_accepted() {
    let _scratch = Scratch;
    for (name, f) in TARGETS {
        let seeds = inputs("seeds", name);
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ has no seed");
        for path in seeds {
            let data = std::fs::read(&path).expect("read seed");
            let shown = path.display().to_string();
            if let Err(reason) = run(name, *f, &data, &shown) {
                panic!("{name}: seed {shown} is refused: {reason}");
            }
        }
    }
}

#[test]
fn truncated_seeds_never_panic_and_binary_ones_are_refused() {
    let _scratch = Scratch;
    // The binary encodings are exact: any prefix of a valid input is invalid.
    let binary = [
        "block",
        "transaction",
        "header",
        "gossip",
        "sync_request",
        "sync_response",
    ];
    for (name, f) in TARGETS {
        for path in inputs("seeds", name) {
            let data = std::fs::read(&path).expect("read seed");
            let mut cuts = vec![0, 1, data.len() / 2, data.len().saturating_sub(1)];
            cuts.retain(|&c| c < data.len());
            for cut in cuts {
                let what = format!("{} cut to {cut} bytes", path.display());
                let outcome = run(name, *f, &data[..cut], &what);
                if binary.contains(name) {
                    assert!(outcome.is_err(), "{name}: {what} was accepted");
                }
            }
        }
    }
}

#[test]
fn regression_inputs_are_handled_without_panic() {
    let _scratch = Scratch;
    let known: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    if let Ok(dirs) = std::fs::read_dir(fuzz_dir("regressions")) {
        for dir in dirs.filter_map(|d| d.ok()) {
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(
                !dir.path().is_dir() || known.contains(&name.as_str()),
                "fuzz/regressions/{name}/ names no target"
            );
        }
    }
    for (name, f) in TARGETS {
        for path in inputs("regressions", name) {
            let data = std::fs::read(&path).expect("read regression input");
            let _ = run(name, *f, &data, &path.display().to_string());
        }
    }
}

/// Writes the seed corpus from real encodings (`LODE_WRITE_SEEDS=1`, run with
/// `--run-ignored only`); the committed seeds were made by it.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand when an encoding changes"]
fn write_seeds() {
    if std::env::var_os("LODE_WRITE_SEEDS").is_none() {
        return;
    }
    seeds::write_all(&fuzz_dir("seeds"));
}

mod seeds {
    use std::path::Path;

    use lode_chain::build::{assemble, coinbase, key_hash, pay, seeded_key, spend};
    use lode_chain::{encoding, Amount, ChainParams, Hash256, Height, OutPoint};
    use lode_node::client::devnet_file::{DevnetFile, DevnetNode};
    use lode_node::network::protocol::{SyncRequest, SyncResponse};
    use lode_wallet::{CreateOptions, KdfParams, Mnemonic, Wallet};
    use serde_json::json;
    use zeroize::Zeroizing;

    const PHRASE: &str =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("seed dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }

    fn frame(bytes: Vec<u8>) -> Vec<u8> {
        let mut out = u32::try_from(bytes.len()).expect("small").to_le_bytes().to_vec();
        out.extend(bytes);
        out
    }

    pub fn write_all(root: &Path) {
        let devnet = ChainParams::devnet();
        let genesis = devnet.genesis_block();
        let key = seeded_key(1);
        let to = key_hash(&seeded_key(2));
        let cb = coinbase(
            Height(1),
            7,
            b"fuzz seed",
            vec![pay(key_hash(&key), devnet.subsidy(Height(1)))],
        );
        let prev = OutPoint {
            txid: cb.txid(),
            index: 0,
        };
        let other = OutPoint {
            txid: Hash256([9; 32]),
            index: 1,
        };
        let tx = spend(
            &[prev, other],
            vec![pay(to, Amount(1_000)), pay(key_hash(&key), Amount(2_000))],
            &key,
            &devnet.genesis_hash(),
        );
        let block = assemble(
            genesis.hash(),
            genesis.header.time + 60,
            devnet.pow_limit_bits,
            vec![cb.clone(), tx.clone()],
        );

        put(root, "block", "devnet-genesis", &genesis.to_bytes());
        put(
            root,
            "block",
            "regtest-genesis",
            &ChainParams::regtest().genesis_block().to_bytes(),
        );
        put(root, "block", "coinbase-and-spend", &block.to_bytes());

        put(root, "transaction", "coinbase", &encoding::encode(&cb));
        put(root, "transaction", "spend-2-in-2-out", &encoding::encode(&tx));

        put(root, "header", "devnet-genesis", &genesis.header.to_bytes());
        put(root, "header", "on-devnet-genesis", &block.header.to_bytes());
        put(
            root,
            "header",
            "bitcoin-genesis",
            &lode_chain::bitcoin_genesis_header().to_bytes(),
        );

        // Header batches on each easy network: on-schedule times, odd versions (the harness
        // sets the bits the rule wants), zero nonces (it grinds).
        for (pick, name) in [(0u8, "asert"), (1, "fixed"), (2, "bitcoin-retarget")] {
            let start = genesis.header.time;
            let mut batch = vec![pick];
            batch.extend(start.to_le_bytes());
            let spacing = u32::try_from(devnet.target_spacing).expect("spacing");
            let base = if pick == 2 { 2015 } else { 0 };
            for k in 1..=6u32 {
                let h = lode_chain::BlockHeader {
                    version: 1,
                    prev_hash: Hash256::ZERO,
                    merkle_root: Hash256([u8::try_from(k).expect("small"); 32]),
                    time: start + (base + k) * spacing,
                    bits: 0x207f_ffff,
                    nonce: 0,
                };
                batch.extend(h.to_bytes());
            }
            put(root, "header_chain", name, &batch);
        }

        let mut g = vec![0u8];
        g.extend(block.to_bytes());
        put(root, "gossip", "block", &g);
        let mut g = vec![1u8];
        g.extend(encoding::encode(&tx));
        put(root, "gossip", "tx", &g);

        put(
            root,
            "sync_request",
            "status",
            &frame(encoding::encode(&SyncRequest::Status)),
        );
        let locator = SyncRequest::Headers {
            locator: vec![block.hash(), genesis.hash()],
        };
        put(root, "sync_request", "headers", &frame(encoding::encode(&locator)));
        let blocks = SyncRequest::Blocks {
            hashes: vec![block.hash(), Hash256([3; 32])],
        };
        put(root, "sync_request", "blocks", &frame(encoding::encode(&blocks)));

        let status = SyncResponse::Status {
            height: 1,
            work: [0x01; 32],
            tip: block.hash(),
        };
        put(root, "sync_response", "status", &frame(encoding::encode(&status)));
        let headers = SyncResponse::Headers(vec![block.header, genesis.header]);
        put(root, "sync_response", "headers", &frame(encoding::encode(&headers)));
        let bodies = SyncResponse::Blocks(vec![block.to_bytes(), Vec::new()]);
        put(root, "sync_response", "blocks", &frame(encoding::encode(&bodies)));
        put(
            root,
            "sync_response",
            "error",
            &frame(encoding::encode(&SyncResponse::Error("busy".into()))),
        );

        let address = to.to_address(&devnet.hrp).expect("address");
        let peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let rpc = [
            (
                "getblockhash",
                json!({"jsonrpc": "2.0", "id": 1, "method": "getblockhash", "params": [0]}),
            ),
            (
                "getblock-named",
                json!({"jsonrpc": "2.0", "id": "a", "method": "getblock", "params": {"blockhash": genesis.hash().to_hex(), "verbosity": 2}}),
            ),
            (
                "sendrawtransaction",
                json!({"jsonrpc": "2.0", "id": 2, "method": "sendrawtransaction", "params": [hex::encode(encoding::encode(&tx))]}),
            ),
            (
                "submitblock",
                json!({"jsonrpc": "2.0", "id": 3, "method": "submitblock", "params": [hex::encode(block.to_bytes())]}),
            ),
            (
                "batch",
                json!([
                    {"jsonrpc": "2.0", "id": 4, "method": "sendtoaddress", "params": [address, 1000, 2]},
                    {"jsonrpc": "2.0", "id": 5, "method": "setban", "params": [peer, "add", 60]},
                    {"jsonrpc": "2.0", "id": 6, "method": "addnode", "params": [format!("/ip4/127.0.0.1/tcp/18444/p2p/{peer}"), "onetry"]},
                    {"jsonrpc": "2.0", "method": "listtransactions", "params": {"count": 5, "skip": 1}},
                    {"jsonrpc": "2.0", "id": null, "method": "getblockheader", "params": [genesis.hash().to_hex(), false]}
                ]),
            ),
        ];
        for (name, v) in rpc {
            put(root, "rpc", name, v.to_string().as_bytes());
        }

        let spec_addr = to.to_address("fuzz").expect("address");
        let spec = format!(
            r#"name = "fuzznet"
hrp = "fuzz"
coin_type = 7
genesis_time = 1700000000
genesis_bits = 0x207fffff
genesis_message = "fuzz seed"
target_spacing = 30
pow_limit_bits = 0x207fffff
coinbase_maturity = 10
max_block_size = 1000000
max_tx_size = 100000
initial_subsidy = 5000000000
halving_interval = 210000
max_future_block_time = 120
min_relay_fee_rate = 1

[difficulty]
algorithm = "asert"
half_life = 3600

[[genesis_outputs]]
address = "{spec_addr}"
value = 100000000
"#
        );
        put(root, "chain_spec", "asert-with-premine.toml", spec.as_bytes());
        let fixed = r#"name = "fixednet"
hrp = "fx"
genesis_time = 1700000000
genesis_bits = 0x207fffff
target_spacing = 600
pow_limit_bits = 0x207fffff
coinbase_maturity = 100
max_block_size = 2000000
initial_subsidy = 5000000000
halving_interval = 150
max_future_block_time = 7200
difficulty = { algorithm = "fixed" }
"#;
        put(root, "chain_spec", "fixed-minimal.toml", fixed.as_bytes());

        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        Wallet::from_mnemonic(&plain, PHRASE, 0, &devnet).expect("plain wallet");
        put(
            root,
            "wallet_file",
            "plain.json",
            &std::fs::read(plain.join("wallet.json")).expect("read"),
        );
        let sealed = dir.path().join("sealed");
        let options = CreateOptions {
            encryption: Some((Zeroizing::new("fuzz".to_string()), KdfParams::insecure_fast())),
            ..CreateOptions::default()
        };
        Wallet::create(&sealed, &devnet, Mnemonic::parse(PHRASE).expect("phrase"), 1, options).expect("sealed wallet");
        put(
            root,
            "wallet_file",
            "encrypted.json",
            &std::fs::read(sealed.join("wallet.json")).expect("read"),
        );

        let node = |i: u16, mining: bool| DevnetNode {
            name: format!("node{i}"),
            rpc: format!("http://127.0.0.1:{}", 18443 + 10 * i),
            p2p: format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", 18444 + 10 * i),
            data_dir: format!("devnet/node{i}").into(),
            cookie: format!("devnet/node{i}/.cookie").into(),
            mining,
            pid: Some(4242 + u32::from(i)),
            wallet_account: Some(u32::from(i)),
            stratum: None,
        };
        let devnet_file = DevnetFile {
            network: "devnet".into(),
            nodes: vec![node(0, true), node(1, false)],
            supervisor_pid: Some(4000),
            block_time: Some(10),
            base_port: Some(18443),
            ..DevnetFile::default()
        };
        let text = serde_json::to_string_pretty(&devnet_file).expect("json");
        put(root, "devnet_file", "two-nodes.json", text.as_bytes());

        put(
            root,
            "node_key",
            "hex-secret",
            format!("{}\n", hex::encode([0x42u8; 32])).as_bytes(),
        );
    }
}
