//! The workspace's end-to-end suite: `tests/tests/*.rs` run the real `lode` binary (nodes,
//! client commands, devnets) as a user would. This library is their harness: where the
//! binary is ([`lode_bin`]) and bounded waiting ([`wait_until`]).

#![warn(missing_docs)]

pub mod devnet;
pub mod local;
#[cfg(target_os = "linux")]
pub mod netns;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often [`wait_until`] checks its condition.
const POLL: Duration = Duration::from_millis(50);

/// The `lode` binary to test: `$LODE_BIN` when set, else this workspace's, built once per
/// test process.
///
/// `env!("CARGO_BIN_EXE_lode")` exists only inside `lode-node`, the package that owns the
/// binary, so this package builds it itself: `cargo build -p lode-node --bin lode --locked`
/// (`$CARGO`, else `cargo`) in the workspace root, into the target dir and profile of the
/// running test binary (`…/target/<profile>/deps/<test>` → `…/target/<profile>/lode`). When
/// it is up to date, that build is a quick no-op; concurrent test processes wait on cargo's
/// lock.
///
/// # Panics
/// When the build fails (cargo's output is above the one-line message).
pub fn lode_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("LODE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => build_lode(),
    })
    .clone()
}

/// Builds `lode` as [`lode_bin`] describes and returns its path.
fn build_lode() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."));
    let (target_dir, profile) = target_of_this_test();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "lode-node", "--bin", "lode", "--locked", "--target-dir"])
        .arg(&target_dir);
    // The profile directory is named after the profile, except `debug` for dev and test.
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("lode_bin: cannot run {}: {e}", Path::new(&cargo).display()));
    assert!(
        status.success(),
        "lode_bin: `cargo build -p lode-node --bin lode --locked` ({profile}) failed ({status}); its output is above"
    );
    target_dir
        .join(&profile)
        .join(format!("lode{}", std::env::consts::EXE_SUFFIX))
}

/// The target dir and profile directory name the running test binary was built in:
/// `…/target/<profile>/deps/<test>`, else `$CARGO_TARGET_DIR` (or the workspace's `target`)
/// and `debug`.
fn target_of_this_test() -> (PathBuf, String) {
    let exe = std::env::current_exe().ok();
    let profile_dir = exe
        .as_deref()
        .and_then(Path::parent)
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent);
    if let Some((target, profile)) = profile_dir.and_then(|p| Some((p.parent()?, p.file_name()?))) {
        return (target.to_path_buf(), profile.to_string_lossy().into_owned());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    (target, "debug".to_string())
}

/// Polls `cond` until it holds, panicking with `what` once `timeout` has passed: tests wait
/// for a condition with a deadline, never sleep and hope.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
