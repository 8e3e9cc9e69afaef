//! Crash safety: a child process imports blocks (with spends and short reorgs) in a loop and
//! is SIGKILLed at random moments; after every kill the store must reopen and `verify()`
//! must pass (the stored UTXO set equals one rebuilt from the stored best chain).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{block_on_state, fixed_clock, matured_spend, retry_lock};
use lode_chain::{ChainParams, ChainState};

const DIR_VAR: &str = "LODE_CRASH_TEST_DIR";

/// Opens the store, waiting up to 10 s for sled's file lock: a store just dropped (or a
/// process just killed) can hold it a moment longer through sled's background threads.
fn open_when_unlocked(dir: &std::path::Path) -> Result<ChainState, lode_chain::error::ChainError> {
    retry_lock(|| ChainState::open_with_clock(dir, ChainParams::regtest(), fixed_clock()))
}

/// The child: import forever; the parent kills it.
fn import_forever(dir: &str) -> ! {
    let mut state = open_when_unlocked(std::path::Path::new(dir)).expect("child open");
    let mut round: u64 = 0;
    loop {
        round += 1;
        let tip = state.tip_hash();
        let (txs, fees) = matured_spend(&state);
        let b = block_on_state(&state, tip, txs, fees, round);
        state.accept_block(Arc::new(b)).expect("child accept");
        // Every fifth round, overtake the tip with a two-block branch from its parent.
        if round.is_multiple_of(5) && state.height().0 > 2 {
            let tip = state.tip_hash();
            let parent = state.entry(&tip).expect("tip").header.prev_hash;
            let s1 = block_on_state(&state, parent, vec![], 0, round + 1_000_000);
            let s1_hash = s1.hash();
            state.accept_block(Arc::new(s1)).expect("side 1");
            let s2 = block_on_state(&state, s1_hash, vec![], 0, round + 2_000_000);
            state.accept_block(Arc::new(s2)).expect("side 2");
        }
    }
}

#[test]
fn crash_child() {
    // Only does anything when spawned by the test below.
    if let Ok(dir) = std::env::var(DIR_VAR) {
        import_forever(&dir);
    }
}

#[test]
fn killed_importer_always_reopens_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    // A small deterministic generator for the kill delays: varied, but reproducible.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut heights = Vec::new();
    let rounds = 24;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(150 + seed % 600);
        let start = Instant::now();
        while start.elapsed() < delay {
            if let Some(status) = child.try_wait().expect("poll child") {
                panic!("child exited early in round {round}: {status}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL child");
        child.wait().expect("reap child");

        let state = open_when_unlocked(dir.path()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let report = state
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: verify failed: {e}"));
        assert_eq!(report.blocks, u64::from(state.height().0) + 1);
        heights.push(state.height().0);
    }
    // The importer made progress across the kills (sled flushes in the background, so some
    // rounds may lose their last unflushed blocks, never consistency).
    eprintln!("heights after each kill: {heights:?}");
    assert!(
        heights.last().copied().unwrap_or(0) > 20,
        "heights after each kill: {heights:?}"
    );
}
