//! Real Bitcoin blocks (../shared/testdata/merkle): our merkle tree over their txids gives
//! the roots their headers commit to. The txids come from both the JSON cases and from
//! parsing each raw block independently (pre-segwit serialization).

use std::path::{Path, PathBuf};

use lode_chain::merkle::merkle_root;
use lode_chain::{BlockHeader, Hash256};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/merkle")
}

/// A Bitcoin CompactSize integer.
fn varint(b: &[u8], pos: &mut usize) -> usize {
    let first = b[*pos];
    *pos += 1;
    let (len, v) = match first {
        0xfd => (2, u16::from_le_bytes([b[*pos], b[*pos + 1]]) as u64),
        0xfe => (
            4,
            u32::from_le_bytes(b[*pos..*pos + 4].try_into().expect("4 bytes")) as u64,
        ),
        0xff => (8, u64::from_le_bytes(b[*pos..*pos + 8].try_into().expect("8 bytes"))),
        n => (0, u64::from(n)),
    };
    *pos += len;
    v as usize
}

/// Parses a raw pre-segwit Bitcoin block into its header and txids.
fn parse_block(b: &[u8]) -> (BlockHeader, Vec<Hash256>) {
    let header = BlockHeader::from_bytes(&b[..80]).expect("header");
    let mut pos = 80;
    let n = varint(b, &mut pos);
    let mut txids = Vec::with_capacity(n);
    for _ in 0..n {
        let start = pos;
        pos += 4;
        let inputs = varint(b, &mut pos);
        for _ in 0..inputs {
            pos += 36;
            let script = varint(b, &mut pos);
            pos += script + 4;
        }
        let outputs = varint(b, &mut pos);
        for _ in 0..outputs {
            pos += 8;
            let script = varint(b, &mut pos);
            pos += script;
        }
        pos += 4;
        txids.push(Hash256::sha256d(&b[start..pos]));
    }
    assert_eq!(pos, b.len(), "block fully consumed");
    (header, txids)
}

#[test]
fn json_cases_roots_from_txids() {
    let text = std::fs::read_to_string(data_dir().join("merkle_cases.json")).expect("merkle_cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    assert!(!cases.is_empty(), "no merkle cases");
    for case in &cases {
        let txids: Vec<Hash256> = case["txids"]
            .as_array()
            .expect("txids")
            .iter()
            .map(|t| Hash256::from_hex(t.as_str().expect("str")).expect("hex"))
            .collect();
        assert_eq!(txids.len() as u64, case["tx_count"].as_u64().expect("count"));
        let expected = Hash256::from_hex(case["merkle_root"].as_str().expect("root")).expect("hex");
        let (root, mutated) = merkle_root(&txids);
        assert_eq!(root, expected, "block {}", case["block_hash"]);
        assert!(!mutated);
        let header = BlockHeader::from_bytes(&hex::decode(case["header_hex"].as_str().expect("hex")).expect("hex"))
            .expect("80 bytes");
        assert_eq!(header.merkle_root, expected);
        assert_eq!(header.hash().to_hex(), case["block_hash"].as_str().expect("hash"));
    }
}

#[test]
fn every_raw_block_matches_its_header() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("merkle dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("block_") && n.ends_with(".hex"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6, "expected the six raw blocks, found {}", files.len());
    for file in files {
        let hex_text = std::fs::read_to_string(&file).expect("read");
        let bytes = hex::decode(hex_text.trim()).expect("hex");
        let (header, txids) = parse_block(&bytes);
        let name = file.file_stem().and_then(|s| s.to_str()).expect("name");
        let hash = name.rsplit('_').next().expect("hash in name");
        assert_eq!(header.hash().to_hex(), hash, "{name}");
        let (root, mutated) = merkle_root(&txids);
        assert_eq!(root, header.merkle_root, "{name}: {} txs", txids.len());
        assert!(!mutated);
        // Mutation check on real data: duplicating the last txid of an odd level keeps the
        // root but is flagged (for an odd count), or changes the root (for an even count).
        let mut dup = txids.clone();
        dup.push(*txids.last().expect("non-empty"));
        let (dup_root, dup_mutated) = merkle_root(&dup);
        if txids.len() % 2 == 1 && txids.len() > 1 {
            assert_eq!(dup_root, root);
            assert!(dup_mutated, "{name}");
        }
    }
}
