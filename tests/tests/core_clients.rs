//! Real Bitcoin Core RPC client libraries against a real `lode` node process:
//! `tests/python/core_clients.py` drives it with python-bitcoinrpc's `AuthServiceProxy`
//! (cookie file and an rpcauth user) and python-bitcoinlib's `RawProxy` (bitcoin.conf and
//! the cookie), checking every answer against Core's documented shapes.
//!
//! The libraries come from PyPI: `.ci/run` installs them into its venv and sets
//! `LODE_PYTHON`. Locally, without them, the test prints SKIP and why; with `CI=true` a
//! missing library fails it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lode_tests::{lode_bin, wait_until};

/// An rpcauth line as share/rpcauth/rpcauth.py makes it: user alice, password
/// "hunter2-pw", salt f9a7…b5c7, HMAC-SHA256(salt, password) (the script checks it).
const USER: &str = "alice";
const PASSWORD: &str = "hunter2-pw";
const SALT: &str = "f9a7b2c4d6e8f0a1b3c5d7e9f1a3b5c7";
const HMAC: &str = "f0255c0695b95e84ea23c98a00d61c823147bb61ed93801db0c1e243b6e306c8";

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> String {
    std::env::var("LODE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// `None` when both libraries import; else why not.
fn libraries_missing() -> Option<String> {
    let out = Command::new(python())
        .args(["-c", "import bitcoinrpc.authproxy, bitcoin.rpc"])
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{} cannot import python-bitcoinrpc / python-bitcoinlib ({}); `pip install python-bitcoinrpc python-bitcoinlib` or set LODE_PYTHON",
            python(),
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Err(e) => Some(format!("cannot run {}: {e}", python())),
    }
}

#[test]
fn python_bitcoinrpc_and_python_bitcoinlib_drive_a_lode_node_as_core() {
    if let Some(why) = libraries_missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have the client libraries: {why}"
        );
        eprintln!("SKIP: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // DATADIR/regtest: where Core's tools look for a regtest node's cookie.
    let data = tmp.path().join("regtest");
    let log = std::fs::File::create(tmp.path().join("node.log")).expect("log");
    let _node = Guard(
        Command::new(lode_bin())
            .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
            .arg("--rpc-auth")
            .arg(format!("{USER}:{SALT}${HMAC}"))
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lode"),
    );
    let url_file = data.join("rpc_url");
    wait_until("rpc_url", Duration::from_secs(60), || url_file.exists());
    let url = std::fs::read_to_string(&url_file).expect("rpc_url").trim().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/core_clients.py");
    let out = Command::new(python())
        .arg(&script)
        .args(["--url", &url, "--datadir"])
        .arg(tmp.path())
        .args(["--rpcauth", &format!("{USER}:{PASSWORD}:{SALT}:{HMAC}")])
        .output()
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let node_log = std::fs::read_to_string(tmp.path().join("node.log")).unwrap_or_default();
    let tail: String = node_log
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "core_clients.py failed ({}):\n{stdout}\n{stderr}\n--- node log (tail) ---\n{tail}",
        out.status
    );
    assert!(stdout.contains("ok: "), "{stdout}");
    eprintln!("{}", stdout.trim());
}

/// `lode api-key` manages keys on a running node, and `--key-file` signs the client's calls.
#[test]
fn api_keys_from_the_cli_sign_requests_until_revoked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = std::fs::File::create(tmp.path().join("node.log")).expect("log");
    let _node = Guard(
        Command::new(lode_bin())
            .args(["node", "--network", "regtest", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--rpc-listen", "127.0.0.1:0", "--no-mdns", "--rpc-rate-limit", "0"])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lode"),
    );
    let url_file = data.join("rpc_url");
    wait_until("rpc_url", Duration::from_secs(60), || url_file.exists());
    let url = std::fs::read_to_string(&url_file).expect("rpc_url").trim().to_string();
    let lode = |args: &[&str]| {
        let out = Command::new(lode_bin()).args(args).output().expect("run lode");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let both = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), stdout, both)
    };
    let data_s = data.to_string_lossy().to_string();
    let key_file = tmp.path().join("lode.key");
    let key_s = key_file.to_string_lossy().to_string();
    let (ok, stdout, out) = lode(&[
        "api-key",
        "--data-dir",
        &data_s,
        "create",
        "--scopes",
        "read,wallet",
        "--out",
        &key_s,
        "--json",
    ]);
    assert!(ok, "{out}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    let id = created["key"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("lk_"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (ok, _, out) = lode(&["api-key", "--data-dir", &data_s, "list"]);
    assert!(ok && out.contains(&id), "{out}");
    assert!(
        !out.contains(created["secret"].as_str().unwrap_or("-")),
        "list shows no secret: {out}"
    );
    // Signed with the key file (no cookie): a wallet call passes, an admin call is 403.
    let (ok, _, out) = lode(&["wallet", "--node", &url, "--key-file", &key_s, "address"]);
    assert!(ok, "{out}");
    let (ok, _, out) = lode(&["mine", "--node", &url, "--key-file", &key_s, "generate", "1"]);
    assert!(!ok && out.contains("mine scope"), "{out}");
    let (ok, _, out) = lode(&["api-key", "--data-dir", &data_s, "revoke", &id]);
    assert!(ok, "{out}");
    let (ok, _, out) = lode(&["wallet", "--node", &url, "--key-file", &key_s, "address"]);
    assert!(!ok && out.contains("revoked"), "{out}");
}
