//! Keystore: round trips, passphrases, permissions, damaged files, lock state.

use std::time::Duration;

use lode_chain::params::DEVNET_MNEMONIC;
use lode_chain::ChainParams;
use lode_wallet::{CreateOptions, KdfParams, Mnemonic, Wallet, WalletError};
use zeroize::Zeroizing;

fn encrypted(pass: &str) -> CreateOptions {
    CreateOptions {
        bip39_passphrase: Zeroizing::new(String::new()),
        encryption: Some((Zeroizing::new(pass.to_string()), KdfParams::insecure_fast())),
    }
}

#[test]
fn round_trip_without_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::regtest();
    let mut w = Wallet::create_fresh(dir.path(), &params).expect("create");
    let phrase = w.mnemonic().expect("unencrypted wallet shows its mnemonic");
    assert_eq!(phrase.split(' ').count(), 24);
    let a0 = w.new_receive_address().expect("address");
    let a1 = w.new_receive_address().expect("address");
    assert_ne!(a0, a1);
    assert!(a0.starts_with("lreg1"));
    let created = w.created_at();
    drop(w);

    let mut w = Wallet::open(dir.path(), &params).expect("open");
    assert!(!w.is_locked());
    assert_eq!(w.mnemonic().expect("mnemonic").as_str(), phrase.as_str());
    assert_eq!(w.issued_addresses(), vec![a0, a1.clone()]);
    assert_eq!(w.created_at(), created);
    // Indexes were persisted: the next address is new.
    assert_ne!(w.new_receive_address().expect("address"), a1);
}

#[test]
fn round_trip_with_passphrase_and_lock_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::devnet();
    let m = Mnemonic::parse(DEVNET_MNEMONIC).expect("mnemonic");
    let w = Wallet::create(dir.path(), &params, m, 3, encrypted("correct horse")).expect("create");
    assert!(w.is_encrypted() && w.is_locked());
    drop(w);

    let mut w = Wallet::open(dir.path(), &params).expect("open");
    assert!(w.is_locked());
    // Locked, it still knows its addresses and can hand out receive addresses.
    let expected = params.genesis_outputs[3].pubkey_hash.to_address("ldev").expect("addr");
    assert_eq!(w.receive_address(0), Some(expected.clone()));
    assert!(w.watched_pkhs().contains(&params.genesis_outputs[3].pubkey_hash));
    assert_eq!(w.new_receive_address().expect("from the pool"), expected);
    assert!(matches!(w.mnemonic(), Err(WalletError::Locked)));

    assert!(matches!(
        w.unlock("wrong horse", None),
        Err(WalletError::WrongPassphrase)
    ));
    assert!(w.is_locked());
    w.unlock("correct horse", None).expect("unlock");
    assert_eq!(w.mnemonic().expect("mnemonic").as_str(), DEVNET_MNEMONIC);
    w.lock();
    assert!(matches!(w.mnemonic(), Err(WalletError::Locked)));

    // An unlock with a timeout expires by itself.
    w.unlock("correct horse", Some(Duration::ZERO)).expect("unlock");
    assert!(w.is_locked());
    assert!(matches!(w.mnemonic(), Err(WalletError::Locked)));

    // The plaintext mnemonic is nowhere in the file.
    let text = std::fs::read_to_string(w.path()).expect("read");
    assert!(!text.contains("junk"));
}

#[test]
fn bip39_passphrase_changes_the_keys_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::devnet();
    let opts = CreateOptions {
        bip39_passphrase: Zeroizing::new("extra".into()),
        encryption: None,
    };
    let m = Mnemonic::parse(DEVNET_MNEMONIC).expect("mnemonic");
    let w = Wallet::create(dir.path(), &params, m, 0, opts).expect("create");
    let plain_addr = params.genesis_outputs[0].pubkey_hash.to_address("ldev").expect("addr");
    assert_ne!(w.receive_address(0), Some(plain_addr));
    let addr = w.receive_address(0);
    drop(w);
    assert_eq!(
        Wallet::open(dir.path(), &params).expect("open").receive_address(0),
        addr
    );
}

#[cfg(unix)]
#[test]
fn file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = Wallet::create_fresh(dir.path(), &ChainParams::regtest()).expect("create");
    let mode = |w: &Wallet| std::fs::metadata(w.path()).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&w), 0o600);
    w.new_receive_address().expect("rewrite");
    assert_eq!(mode(&w), 0o600, "rewrites keep the mode");
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn existing_wallet_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::regtest();
    let w = Wallet::create_fresh(dir.path(), &params).expect("create");
    let before = std::fs::read(w.path()).expect("read");
    assert!(matches!(
        Wallet::create_fresh(dir.path(), &params),
        Err(WalletError::AlreadyExists(_))
    ));
    assert!(matches!(
        Wallet::open_or_create(dir.path(), &params),
        Ok(ref o) if o.receive_address(0) == w.receive_address(0)
    ));
    assert_eq!(std::fs::read(w.path()).expect("read"), before);
}

#[test]
fn fresh_dir_gets_a_wallet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = Wallet::open_or_create(&dir.path().join("data"), &ChainParams::regtest()).expect("created");
    assert!(w.path().exists());
    assert!(matches!(
        Wallet::open(&dir.path().join("elsewhere"), &ChainParams::regtest()),
        Err(WalletError::NotFound(_))
    ));
}

#[test]
fn truncated_or_corrupted_file_is_reported_and_left_unchanged() {
    let params = ChainParams::regtest();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Wallet::create_fresh(dir.path(), &params)
        .expect("create")
        .path()
        .to_path_buf();
    let good = std::fs::read(&path).expect("read");

    let mut damaged: Vec<Vec<u8>> = vec![good[..good.len() / 2].to_vec(), Vec::new()];
    // A flipped digit inside the body (valid JSON, wrong content).
    let text = String::from_utf8(good.clone()).expect("utf8");
    let flipped = text.replacen("\"next_receive\": 0", "\"next_receive\": 1", 1);
    assert_ne!(flipped, text);
    damaged.push(flipped.into_bytes());
    damaged.push(text.replacen("lode-wallet", "lode-wallex", 1).into_bytes());

    for bytes in damaged {
        std::fs::write(&path, &bytes).expect("write damage");
        for attempt in [
            Wallet::open(dir.path(), &params),
            Wallet::open_or_create(dir.path(), &params),
        ] {
            let err = attempt.expect_err("damaged file must not open");
            assert!(matches!(err, WalletError::Corrupted { .. }), "{err}");
            assert!(err.to_string().contains("corrupted"), "{err}");
        }
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "file left as it was");
    }

    let newer = text.replacen("\"version\": 1", "\"version\": 9", 1);
    std::fs::write(&path, &newer).expect("write");
    assert!(matches!(
        Wallet::open(dir.path(), &params),
        Err(WalletError::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn wallet_of_another_network_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    Wallet::create_fresh(dir.path(), &ChainParams::regtest()).expect("create");
    let err = Wallet::open(dir.path(), &ChainParams::devnet()).expect_err("wrong network");
    assert!(matches!(err, WalletError::WrongNetwork { .. }), "{err}");
}

#[test]
fn encrypting_later_seals_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::regtest();
    let mut w = Wallet::create_fresh(dir.path(), &params).expect("create");
    let phrase = w.mnemonic().expect("mnemonic");
    w.encrypt("pw", KdfParams::insecure_fast()).expect("encrypt");
    assert!(w.is_locked());
    let text = std::fs::read_to_string(w.path()).expect("read");
    assert!(!text.contains(phrase.as_str()), "mnemonic no longer in the clear");
    let mut w = Wallet::open(dir.path(), &params).expect("open");
    w.unlock("pw", None).expect("unlock");
    assert_eq!(w.mnemonic().expect("mnemonic").as_str(), phrase.as_str());
}

#[test]
fn debug_output_never_shows_secrets() {
    let m = Mnemonic::parse(DEVNET_MNEMONIC).expect("mnemonic");
    assert!(!format!("{m:?}").contains("test"));
    assert!(!format!("{:?}", m.to_seed("")).contains(&hex::encode(&m.to_seed("").as_bytes()[..4])));
    let dir = tempfile::tempdir().expect("tempdir");
    let w = Wallet::from_mnemonic(dir.path(), DEVNET_MNEMONIC, 0, &ChainParams::devnet()).expect("wallet");
    assert!(!format!("{w:?}").contains("junk"));
}
