//! External test vectors (../shared/testdata/wallet, see its README): BIP39 English,
//! SLIP-0010 Ed25519 vectors 1 and 2, BIP350 bech32m; and the devnet premine derivation.
//! Files are found by name pattern so more vectors can be dropped in without code changes.

use std::path::{Path, PathBuf};

use lode_chain::params::{DEVNET_MNEMONIC, DEVNET_PREMINE_PKH};
use lode_chain::ChainParams;
use lode_wallet::address::{decode_bech32m, encode_bech32m};
use lode_wallet::slip10::{parse_path, ExtendedKey};
use lode_wallet::{Chain, KeyPair, KeyPath, Mnemonic, Wallet};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/wallet")
}

/// Every `PREFIX*.json` in the wallet test-data folder, parsed.
fn vector_files(prefix: &str) -> Vec<(PathBuf, Value)> {
    let dir = testdata();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("test data folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}*.json in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable vector file");
            let v = serde_json::from_str(&text).expect("vector file is JSON");
            (p, v)
        })
        .collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("field {key} missing in {v}"))
}

#[test]
fn bip39_english_vectors() {
    let mut n = 0;
    for (path, file) in vector_files("bip39") {
        let passphrase = s(&file, "passphrase");
        for v in file["vectors"].as_array().expect("vectors array") {
            let entropy = hex::decode(s(v, "entropy_hex")).expect("hex");
            let m = Mnemonic::from_entropy(&entropy).expect("valid entropy");
            assert_eq!(m.phrase().as_str(), s(v, "mnemonic"), "{}", path.display());
            let parsed = Mnemonic::parse(s(v, "mnemonic")).expect("vector mnemonic parses");
            assert_eq!(hex::encode(parsed.to_seed(passphrase).as_bytes()), s(v, "seed_hex"));
            n += 1;
        }
    }
    assert_eq!(n, 24, "the README promises 24 English vectors");
}

#[test]
fn bip39_word_list_matches_the_published_one() {
    let list = std::fs::read_to_string(testdata().join("english.txt")).expect("english.txt");
    let words: Vec<&str> = list.lines().collect();
    assert_eq!(words.len(), 2048);
    // Entropy of all ones in 11-bit groups walks to the last word; index i → word i is
    // checked by building mnemonics whose first word is each word in turn.
    for (i, w) in words.iter().enumerate() {
        let mut entropy = [0u8; 16];
        let idx = i as u16;
        entropy[0] = (idx >> 3) as u8;
        entropy[1] = ((idx & 0x7) << 5) as u8;
        let m = Mnemonic::from_entropy(&entropy).expect("valid");
        assert_eq!(m.phrase().split(' ').next(), Some(*w));
    }
}

#[test]
fn bad_mnemonics_are_refused_without_echoing_words() {
    let bad_checksum =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
    let e = Mnemonic::parse(bad_checksum).expect_err("checksum");
    assert!(e.to_string().contains("checksum"), "{e}");
    let e = Mnemonic::parse("abandon zzzsecretword about").expect_err("count");
    assert!(!e.to_string().contains("zzzsecretword"));
    let e = Mnemonic::parse(&"abandon ".repeat(11).replace("abandon abandon", "abandon zzzsecret"))
        .expect_err("unknown word");
    assert!(!e.to_string().contains("zzzsecret"), "{e}");
    // Case and spacing are forgiven.
    assert!(Mnemonic::parse("  TEST test test test test test test test test test test junk ").is_ok());
}

#[test]
fn slip10_ed25519_vectors() {
    let mut chains = 0;
    for (_, file) in vector_files("slip10") {
        assert_eq!(s(&file, "curve"), "ed25519");
        for tv in file["test_vectors"].as_array().expect("test_vectors") {
            let seed = hex::decode(s(tv, "seed_hex")).expect("hex");
            let master = ExtendedKey::master(&seed);
            for c in tv["chains"].as_array().expect("chains") {
                let path = parse_path(s(c, "path")).expect("vector path");
                let node = master.derive(&path).expect("derives");
                assert_eq!(hex::encode(node.secret_bytes()), s(c, "private"), "{}", s(c, "path"));
                assert_eq!(hex::encode(node.chain_code()), s(c, "chain_code"), "{}", s(c, "path"));
                let public = KeyPair::from_secret(node.secret_bytes()).public_key();
                assert_eq!(format!("00{}", hex::encode(public)), s(c, "public"), "{}", s(c, "path"));
                chains += 1;
            }
        }
    }
    assert_eq!(chains, 12, "two seeds × six chains");
}

#[test]
fn bech32m_vectors() {
    for (_, file) in vector_files("bech32m") {
        let valid = file["valid"].as_array().expect("valid");
        assert!(!valid.is_empty());
        for v in valid {
            let text = v.as_str().expect("string");
            let (hrp, data) = decode_bech32m(text).unwrap_or_else(|e| panic!("{text} should decode: {e}"));
            assert_eq!(encode_bech32m(&hrp, &data).expect("re-encodes"), text.to_lowercase());
        }
        let invalid = file["invalid"].as_array().expect("invalid");
        assert!(!invalid.is_empty());
        for v in invalid {
            let text = s(v, "string");
            assert!(
                decode_bech32m(text).is_err(),
                "{text:?} must be refused ({})",
                s(v, "reason")
            );
        }
    }
}

#[test]
fn devnet_accounts_derive_the_premine() {
    let seed = Mnemonic::parse(DEVNET_MNEMONIC).expect("devnet mnemonic").to_seed("");
    let params = ChainParams::devnet();
    for (account, expected) in DEVNET_PREMINE_PKH.iter().enumerate() {
        let path = KeyPath {
            coin_type: params.coin_type,
            account: account as u32,
            chain: Chain::Receive,
            index: 0,
        };
        assert_eq!(path.to_string(), format!("m/44'/1'/{account}'/0'/0'"));
        let key = KeyPair::derive(&seed, &path).expect("derives");
        assert_eq!(key.pubkey_hash().to_hex(), *expected, "account {account}");
        assert_eq!(params.genesis_outputs[account].pubkey_hash, key.pubkey_hash());
    }
    // And through the wallet as devnet node I builds it.
    let dir = tempfile::tempdir().expect("tempdir");
    for account in [0u32, 9] {
        let w = Wallet::from_mnemonic(
            &dir.path().join(format!("node{account}")),
            DEVNET_MNEMONIC,
            account,
            &params,
        )
        .expect("wallet");
        let pkh = params.genesis_outputs[account as usize].pubkey_hash;
        assert_eq!(w.receive_address(0), pkh.to_address("ldev").ok());
    }
}
