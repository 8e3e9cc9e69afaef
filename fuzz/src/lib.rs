//! Lode's fuzz targets as plain functions, one per decoder a peer, a client or a file on disk
//! can feed (docs/FUZZING.md).
//!
//! Each function takes the raw bytes, runs them through the node's own public entry point
//! (never a copy of its code) and then through what the node does next with a decoded value
//! (the context-free rules, the header-chain check, re-encoding). It returns `Ok(())` when the
//! input was accepted, `Err(message)` when it was refused — the message the node would give
//! — and panics only when an invariant breaks: a crash is a bug.
//!
//! The same file is compiled twice: as the `lode-fuzz` library behind the libFuzzer
//! binaries in `fuzz/fuzz_targets/`, and as a module of `node/tests/fuzz_inputs.rs`, which
//! runs every seed and regression input on each `cargo nextest run --workspace`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use futures::executor::block_on;
use libp2p::gossipsub;
use libp2p::request_response::Codec;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use lode_chain::validation::header_chain::check_header_chain;
use lode_chain::validation::{check_block, check_block_unmined, check_transaction, HeaderChainBase};
use lode_chain::{encoding, BlockHeader, ChainParams, Height, PubkeyHash, Transaction};
use lode_node::client::devnet_file::{DevnetFile, DEVNET_FILE_NAME};
use lode_node::common::node_key::{load_or_create_key, NODE_KEY_FILE};
use lode_node::network::compact::CompactBlock;
use lode_node::network::gossip::{self, Names};
use lode_node::network::protocol::{RequestFrame, SyncCodec, SyncResponse, MAX_REQUEST_BYTES};
use lode_node::rpc::jsonrpc::{self, Body, Params};
use lode_node::rpc::methods::{self, chain::decode_raw_block, chain::decode_raw_tx};

/// What a target says about one input: accepted, or refused with a one-line reason.
pub type Outcome = Result<(), String>;

/// A target: the bytes in, the outcome out.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target by name (the name of its binary in `fuzz/fuzz_targets/` and of its seed and
/// regression folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("block", block),
    ("transaction", transaction),
    ("header", header),
    ("header_chain", header_chain_batch),
    ("gossip", gossip_message),
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("rpc", rpc),
    ("chain_spec", chain_spec),
    ("wallet_file", wallet_file),
    ("devnet_file", devnet_file),
    ("node_key", node_key),
];

/// The devnet's parameters: the largest limits among the built-in networks.
fn params() -> &'static ChainParams {
    static PARAMS: OnceLock<ChainParams> = OnceLock::new();
    PARAMS.get_or_init(ChainParams::devnet)
}

/// A fixed clock for the header rules: inputs must not behave differently tomorrow.
const NOW: u64 = 1_900_000_000;

/// Asserts that a decoded value re-encodes to the input: the encoding is canonical, so
/// anything else means two byte strings decode to one value (two hashes for one block).
fn assert_canonical<T: bincode::Encode>(value: &T, input: &[u8], what: &str) {
    assert!(
        encoding::encode(value) == input,
        "{what}: decode → encode changed the bytes"
    );
    assert_eq!(
        encoding::encoded_len(value),
        input.len(),
        "{what}: encoded_len disagrees"
    );
}

/// A block as gossip, sync and `submitblock` decode it, then the context-free rules.
pub fn block(data: &[u8]) -> Outcome {
    let p = params();
    let block = lode_chain::Block::from_bytes(data, p.max_block_size).map_err(|e| e.to_string())?;
    assert_canonical(&block, data, "block");
    assert_eq!(block.size(), data.len());
    let _ = block.compute_merkle_root();
    let block = Arc::new(block);
    if let Ok(checked) = check_block_unmined(block.clone(), p) {
        assert_eq!(checked.txids().len(), block.transactions.len());
    }
    let _ = check_block(block, p);
    Ok(())
}

/// A transaction as gossip decodes it, then the context-free rules and its hashes.
pub fn transaction(data: &[u8]) -> Outcome {
    let p = params();
    let tx: Transaction = encoding::decode(data, p.max_tx_size).map_err(|e| e.to_string())?;
    assert_canonical(&tx, data, "transaction");
    let _ = (
        tx.txid(),
        tx.sighash(&p.genesis_hash()),
        tx.output_total(),
        tx.coinbase_data(),
    );
    let _ = check_transaction(&tx, p);
    Ok(())
}

/// One 80-byte header, then the header-chain check sync runs on it (linkage, proof of work
/// from its compact bits, time and difficulty rules) on top of the devnet genesis.
pub fn header(data: &[u8]) -> Outcome {
    let header = BlockHeader::from_bytes(data).map_err(|e| e.to_string())?;
    assert_eq!(header.to_bytes().as_slice(), data, "header: to_bytes changed the bytes");
    assert_canonical(&header, data, "header");
    header_chain(&[header]);
    Ok(())
}

fn header_chain(headers: &[BlockHeader]) {
    let p = params();
    let base = HeaderChainBase::genesis(p.genesis_block().header);
    let outcome = check_header_chain(p, &base, &|_: Height| None, NOW, headers);
    assert!(outcome.checked.len() <= headers.len());
}

/// A network whose pow limit is met by every other hash, so a harness can grind a nonce.
fn easy(difficulty: lode_chain::DifficultyAlgorithm) -> ChainParams {
    let mut p = ChainParams::devnet();
    p.difficulty = difficulty;
    p.pow_limit_bits = 0x207f_ffff;
    p.genesis_bits = 0x207f_ffff;
    p
}

fn easy_networks() -> &'static [ChainParams; 3] {
    use lode_chain::DifficultyAlgorithm as D;
    static NETS: OnceLock<[ChainParams; 3]> = OnceLock::new();
    NETS.get_or_init(|| [easy(D::Asert { half_life: 3600 }), easy(D::Fixed), easy(D::Bitcoin)])
}

/// A batch of headers as a peer's headers answer brings it, through the header-chain check
/// sync runs, with the difficulty rules in play. Input: a byte picking the algorithm (ASERT
/// from genesis, fixed, or Bitcoin's retarget with the batch starting at height 2016), four
/// bytes of the first ancestor's time, then 80 bytes per header. The harness links each
/// header to the one before (a fuzzer cannot find hashes) and grinds a few nonces (the pow
/// limit is easy), and when a header's version is odd it gets the bits the rule wants: so
/// hostile times and bits reach the contextual rules instead of stopping at linkage or PoW.
pub fn header_chain_batch(data: &[u8]) -> Outcome {
    let [pick, t0, t1, t2, t3, rest @ ..] = data else {
        return Err("shorter than the 5-byte preamble".into());
    };
    let p = &easy_networks()[usize::from(*pick % 3)];
    let base_height = match p.difficulty {
        lode_chain::DifficultyAlgorithm::Bitcoin => lode_chain::pow::RETARGET_INTERVAL - 1,
        _ => 0,
    };
    let start = u32::from_le_bytes([*t0, *t1, *t2, *t3]);
    let spacing = u32::try_from(p.target_spacing).unwrap_or(u32::MAX);
    let synthetic = |h: Height| BlockHeader {
        version: 1,
        prev_hash: lode_chain::Hash256::ZERO,
        merkle_root: lode_chain::Hash256::ZERO,
        time: start.wrapping_add(h.0.wrapping_mul(spacing)),
        bits: p.pow_limit_bits,
        nonce: 0,
    };
    let ancestors = |h: Height| (h.0 <= base_height).then(|| synthetic(h));
    let base_header = synthetic(Height(base_height));
    let base = HeaderChainBase::new(
        base_header,
        Height(base_height),
        lode_chain::pow::ChainWork::from_bits(p.pow_limit_bits),
    );
    let mut headers = Vec::with_capacity(rest.len() / 80);
    let mut parent = base_header;
    let mut parent_hash = base.hash;
    let pow_limit = p.pow_limit();
    for (i, chunk) in rest.chunks_exact(80).enumerate() {
        let mut h = BlockHeader::from_bytes(chunk).map_err(|e| e.to_string())?;
        h.prev_hash = parent_hash;
        if h.version % 2 == 1 {
            let height = Height(base_height).0 + u32::try_from(i).unwrap_or(u32::MAX);
            let lookup = |x: Height| {
                if x.0 <= base_height {
                    ancestors(x)
                } else {
                    headers.get(usize::try_from(x.0 - base_height - 1).ok()?).copied()
                }
            };
            if let Ok(bits) = lode_chain::pow::next_bits(p, Height(height), &parent, &lookup) {
                h.bits = bits;
            }
        }
        for _ in 0..32 {
            if lode_chain::pow::check_proof_of_work(&h.hash(), h.bits, &pow_limit).is_ok() {
                break;
            }
            h.nonce = h.nonce.wrapping_add(1);
        }
        parent = h;
        parent_hash = h.hash();
        headers.push(h);
    }
    if headers.is_empty() {
        return Err("no header".into());
    }
    let outcome = check_header_chain(p, &base, &ancestors, NOW, &headers);
    assert!(outcome.checked.len() <= headers.len());
    assert_eq!(outcome.is_complete(), outcome.checked.len() == headers.len());
    let mut work = base.work;
    for (i, c) in outcome.checked.iter().enumerate() {
        assert_eq!(c.hash, headers[i].hash());
        assert_eq!(u64::from(c.height.0), u64::from(base_height) + i as u64 + 1);
        assert!(c.work > work, "work must grow with every header");
        work = c.work;
    }
    assert_eq!(outcome.work, work);
    Ok(())
}

/// A gossip message: the first byte picks the topic (even: blocks, odd: transactions), the
/// rest is the payload the event loop decodes with `network::gossip::decode_block|decode_tx`.
/// The message id is computed too, as gossipsub does on arrival.
pub fn gossip_message(data: &[u8]) -> Outcome {
    let Some((&topic, payload)) = data.split_first() else {
        return Err("empty message".into());
    };
    let p = params();
    let names = Names::new(&p.genesis_hash());
    if topic == 0xff {
        // The compact blocks topic: decoded and checked as the event loop does, then the
        // rebuild started (short-id map) — no panic, no unbounded allocation.
        let compact = CompactBlock::decode(payload, p.max_block_size + 64 * 1024, p).map_err(|e| e.to_string())?;
        assert_canonical(&compact, payload, "compact block");
        if let Ok(partial) = compact.start_rebuild() {
            assert_eq!(
                partial.missing().len(),
                compact.short_ids.len(),
                "every short id is a missing slot"
            );
        }
        return Ok(());
    }
    let blocks = topic % 2 == 0;
    let message = gossipsub::Message {
        source: None,
        data: payload.to_vec(),
        sequence_number: None,
        topic: if blocks { names.blocks.hash() } else { names.txs.hash() },
    };
    let id = gossip::message_id(&message);
    assert_eq!(
        id,
        gossip::message_id(&message.clone()),
        "message ids are deterministic"
    );
    if blocks {
        // What a block's id covers (its header or the whole payload) is the gossip policy's
        // choice (issue 12); either way it is a content hash, checked above.
        let block = gossip::decode_block(payload, p).map_err(|e| e.to_string())?;
        assert_canonical(&block, payload, "gossip block");
    } else {
        let tx = gossip::decode_tx(payload, p).map_err(|e| e.to_string())?;
        assert_eq!(id.0, tx.txid().0.to_vec(), "a transaction's message id is its txid");
        assert_canonical(&tx, payload, "gossip transaction");
    }
    Ok(())
}

fn protocol() -> StreamProtocol {
    StreamProtocol::new("/lode/fuzz/sync/1")
}

/// The bytes a peer sends on an inbound sync stream, through the real codec.
pub fn sync_request(data: &[u8]) -> Outcome {
    let mut codec = SyncCodec::new(params().max_block_size);
    let mut io = futures::io::Cursor::new(data);
    match block_on(codec.read_request(&protocol(), &mut io)).map_err(|e| e.to_string())? {
        RequestFrame::Request(req) => {
            // The codec read one length-prefixed frame; it must be the request's encoding.
            let encoded = encoding::encode(&req);
            assert!(encoded.len() <= MAX_REQUEST_BYTES);
            assert_eq!(data.get(..4), Some(&(encoded.len() as u32).to_le_bytes()[..]));
            assert_eq!(
                data.get(4..4 + encoded.len()),
                Some(encoded.as_slice()),
                "request frame not canonical"
            );
            Ok(())
        }
        RequestFrame::Malformed(reason) => Err(reason),
        RequestFrame::Raw(_) => panic!("the read side never yields a raw frame"),
    }
}

/// The bytes a peer answers a sync request with, through the real codec, then what the sync
/// manager does with the answer: block bodies decoded, headers run through the header-chain
/// check, the claimed work parsed.
pub fn sync_response(data: &[u8]) -> Outcome {
    let p = params();
    let mut codec = SyncCodec::new(p.max_block_size);
    let mut io = futures::io::Cursor::new(data);
    let response = block_on(codec.read_response(&protocol(), &mut io)).map_err(|e| e.to_string())?;
    let encoded = encoding::encode(&response);
    assert_eq!(
        data.get(4..4 + encoded.len()),
        Some(encoded.as_slice()),
        "response frame not canonical"
    );
    match response {
        SyncResponse::Status { work, .. } => {
            let _ = lode_chain::pow::ChainWork::from_be_bytes(&work);
        }
        SyncResponse::Headers(headers) => header_chain(&headers),
        SyncResponse::Blocks(bodies) => {
            for body in bodies.iter().filter(|b| !b.is_empty()) {
                if let Ok(block) = lode_chain::Block::from_bytes(body, p.max_block_size) {
                    assert_canonical(&block, body, "synced block");
                }
            }
        }
        SyncResponse::Error(_) => {}
        SyncResponse::BlockTxn { txs, .. } => {
            for tx in &txs {
                let _ = tx.txid();
            }
        }
    }
    Ok(())
}

/// Every method's param names, in position order, as `node/src/rpc/methods/` reads them.
const RPC_PARAMS: &[(&str, &[&str])] = &[
    ("getblockhash", &["height"]),
    ("getblock", &["blockhash", "verbosity"]),
    ("getblockheader", &["blockhash", "verbose"]),
    ("getrawtransaction", &["txid", "verbose"]),
    ("sendrawtransaction", &["hexstring"]),
    ("estimatefee", &["nblocks"]),
    ("sendtoaddress", &["address", "amount", "fee_rate"]),
    ("listtransactions", &["count", "skip"]),
    ("listunspent", &["minconf"]),
    ("gettransaction", &["txid"]),
    ("walletpassphrase", &["passphrase", "timeout"]),
    ("encryptwallet", &["passphrase"]),
    ("setgenerate", &["generate", "threads"]),
    ("generate", &["nblocks", "address"]),
    ("getblocktemplate", &["template_request", "address"]),
    ("generateblock", &["output", "transactions", "submit"]),
    ("invalidateblock", &["blockhash"]),
    ("reconsiderblock", &["blockhash"]),
    ("submitblock", &["hexdata"]),
    ("addnode", &["multiaddr", "command"]),
    ("disconnectnode", &["peer_id"]),
    ("setban", &["peer_id", "command", "bantime"]),
];

/// Reads one param the way the methods do, by what its name says it holds.
fn rpc_param(params: &Params, i: usize, name: &str) {
    let p = self::params();
    let _ = (
        params.opt_str(i, name),
        params.opt_u64(i, name),
        params.opt_bool(i, name),
    );
    match name {
        "blockhash" | "txid" => {
            let _ = params.hash(i, name);
        }
        "height" => {
            let _ = params.height(i, name);
        }
        "hexstring" => {
            if let Ok(s) = params.str(i, name) {
                if let Ok(tx) = decode_raw_tx(s, p) {
                    assert_eq!(hex::encode(encoding::encode(&tx)), s.to_ascii_lowercase());
                }
            }
        }
        "hexdata" => {
            if let Ok(s) = params.str(i, name) {
                if let Ok(block) = decode_raw_block(s, p) {
                    assert_eq!(hex::encode(block.to_bytes()), s.to_ascii_lowercase());
                }
            }
        }
        "address" => {
            if let Ok(s) = params.str(i, name) {
                if let Ok(pkh) = PubkeyHash::from_address(s, &p.hrp) {
                    assert!(pkh.to_address(&p.hrp).is_ok());
                }
            }
        }
        "peer_id" => {
            let _ = params.str(i, name).map(|s| s.parse::<PeerId>());
        }
        "multiaddr" => {
            let _ = params.str(i, name).map(|s| s.parse::<Multiaddr>());
        }
        _ => {}
    }
}

/// A `POST /rpc` body: the server's body parser, call validation, the method's scope, and
/// every param of the named method read as the method reads it (raw hex decoded, addresses,
/// peer ids and multiaddrs parsed). Refused only when the whole body is.
pub fn rpc(data: &[u8]) -> Outcome {
    let items = match jsonrpc::parse_body(data).map_err(|e| e.message)? {
        Body::Single(v) => vec![v],
        Body::Batch(items) => {
            assert!((1..=jsonrpc::MAX_BATCH).contains(&items.len()));
            items
        }
    };
    for item in items {
        let Ok(call) = jsonrpc::parse_call(item) else {
            continue;
        };
        let _ = methods::scope_of(&call.method);
        let names = RPC_PARAMS
            .iter()
            .find(|(m, _)| *m == call.method)
            .map_or(&[][..], |(_, n)| *n);
        if call.params.expect_at_most(names).is_ok() {
            for (i, name) in names.iter().enumerate() {
                rpc_param(&call.params, i, name);
            }
        }
    }
    Ok(())
}

/// A chain-spec TOML file (`lode node --network FILE.toml`), then what a node computes from
/// the parameters at start: genesis block and hash, pow limit, subsidies, money supply.
pub fn chain_spec(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let p = ChainParams::from_toml_str(text).map_err(|e| e.to_string())?;
    let genesis = p.genesis_block();
    assert_eq!(genesis.hash(), p.genesis_hash());
    let _ = (p.pow_limit(), p.max_money());
    for h in [1, 2, p.halving_interval, p.halving_interval.saturating_add(1), u32::MAX] {
        let _ = p.subsidy(Height(h));
    }
    let _ = Names::new(&p.genesis_hash());
    let _ = check_block(Arc::new(genesis), &p);
    Ok(())
}

/// The process's scratch directory for the file targets (the caller may remove it at exit).
pub fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("lode-fuzz-{}", std::process::id()))
}

/// A scratch directory for the file targets, one per process (libFuzzer exits without
/// running destructors, so it lives in the system temp dir under the process id).
fn scratch(kind: &str) -> PathBuf {
    let dir = scratch_root().join(kind);
    // Failing to create it is the machine's fault, not the input's.
    std::fs::create_dir_all(&dir).expect("create the fuzz scratch dir");
    dir
}

/// A wallet file (`wallet.json`), opened with the wallet's own `Wallet::open` on the devnet.
pub fn wallet_file(data: &[u8]) -> Outcome {
    let dir = scratch("wallet");
    std::fs::write(lode_wallet::keystore::wallet_path(&dir), data).expect("write the wallet file");
    let wallet = lode_wallet::Wallet::open(&dir, params()).map_err(|e| e.to_string())?;
    let _ = (wallet.issued_addresses(), wallet.watched_pkhs(), wallet.is_locked());
    Ok(())
}

/// A `devnet.json`, read with `DevnetFile::load` as the client commands read it.
pub fn devnet_file(data: &[u8]) -> Outcome {
    let path = scratch("devnet").join(DEVNET_FILE_NAME);
    std::fs::write(&path, data).expect("write devnet.json");
    let file = DevnetFile::load(&path).map_err(|e| e.to_string())?;
    let _ = file.node_names();
    for node in &file.nodes {
        let _ = (node.peer_id(), file.node(&node.name));
    }
    let text = serde_json::to_string(&file).expect("a loaded devnet file serializes");
    let again: DevnetFile = serde_json::from_str(&text).expect("a saved devnet file loads");
    assert_eq!(again, file, "devnet.json does not round-trip");
    Ok(())
}

/// A node key file (`DATA_DIR/node_key`), loaded as the daemon loads it at start.
pub fn node_key(data: &[u8]) -> Outcome {
    let dir = scratch("node_key");
    std::fs::write(dir.join(NODE_KEY_FILE), data).expect("write node_key");
    let key = load_or_create_key(&dir).map_err(|e| e.to_string())?;
    let _ = key.public().to_peer_id();
    Ok(())
}
