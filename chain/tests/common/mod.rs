//! Shared harness for chain integration tests: a regtest chain in a temp dir with a fixed
//! clock, and helpers to mine blocks on any parent.
#![allow(dead_code)]

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lode_chain::build::{assemble, coinbase, grind, key_hash, pay, spend};
use lode_chain::state::Clock;
use lode_chain::{Amount, Block, ChainParams, ChainState, Hash256, Height, OutPoint, Transaction};

/// Fixed "now" for tests: far enough after genesis for thousands of 1-second blocks.
pub const NOW: u64 = 1_767_225_600 + 10_000_000;

/// Runs `open` (of a store, or of sled itself) again while it fails on sled's file lock, for
/// up to 10 s: sled releases the lock when its background flusher lets go of a dropped
/// handle, or a killed process's, which can be a moment later.
pub fn retry_lock<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Fields drop in order: the state (which flushes its store) before its directory.
pub struct Harness {
    pub state: ChainState,
    pub dir: tempfile::TempDir,
    pub params: ChainParams,
    pub miner_key: SigningKey,
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn fixed_clock() -> Clock {
    Arc::new(|| NOW)
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_params(ChainParams::regtest())
    }

    pub fn with_params(params: ChainParams) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = ChainState::open_with_clock(dir.path(), params.clone(), fixed_clock()).expect("open");
        Harness {
            dir,
            params,
            state,
            miner_key: key(1),
        }
    }

    pub fn reopen(&mut self) {
        self.close();
        if let Err(e) = self.open_again() {
            panic!("reopen: {e:?}");
        }
    }

    /// Drops the state (which flushes what it may), leaving a placeholder on another
    /// directory in its place until [`Harness::open_again`].
    pub fn close(&mut self) {
        // Drop the old handle first: sled allows one open per process per path.
        let placeholder_dir = tempfile::tempdir().expect("tempdir");
        let placeholder =
            ChainState::open_with_clock(placeholder_dir.path(), self.params.clone(), fixed_clock()).expect("open");
        drop(std::mem::replace(&mut self.state, placeholder));
    }

    /// Opens the state at the harness's directory again, after [`Harness::close`].
    pub fn open_again(&mut self) -> Result<(), lode_chain::error::ChainError> {
        self.state = retry_lock(|| ChainState::open_with_clock(self.dir.path(), self.params.clone(), fixed_clock()))?;
        Ok(())
    }

    pub fn genesis(&self) -> Hash256 {
        self.state.genesis_hash()
    }

    /// Builds (does not accept) a block on `parent` with `txs`, the coinbase claiming
    /// subsidy + `fees` + `extra` for the miner key; `tag` makes sibling blocks differ.
    pub fn block_on(&self, parent: Hash256, txs: Vec<Transaction>, fees: Amount, extra: u64, tag: u64) -> Block {
        let entry = *self.state.entry(&parent).expect("parent known");
        let height = Height(entry.height.0 + 1);
        let value = Amount(self.params.subsidy(height).0 + fees.0 + extra);
        let cb = coinbase(height, tag, b"test", vec![pay(key_hash(&self.miner_key), value)]);
        let mut all = vec![cb];
        all.extend(txs);
        let bits = self.state.next_bits_on(&parent).expect("bits");
        let mut block = assemble(parent, entry.header.time + 1, bits, all);
        assert!(grind(&mut block.header, &self.params.pow_limit()));
        block
    }

    /// Mines and accepts an empty block on the tip.
    pub fn mine(&mut self) -> Block {
        let block = self.block_on(self.state.tip_hash(), vec![], Amount::ZERO, 0, 0);
        self.state.accept_block(Arc::new(block.clone())).expect("accept");
        block
    }

    /// Mines `n` empty blocks on `parent`, returning their hashes.
    pub fn branch(&mut self, parent: Hash256, n: usize, tag: u64) -> Vec<Hash256> {
        let mut out = Vec::new();
        let mut p = parent;
        for _ in 0..n {
            let b = self.block_on(p, vec![], Amount::ZERO, 0, tag);
            p = b.hash();
            self.state.accept_block(Arc::new(b)).expect("accept");
            out.push(p);
        }
        out
    }
}

/// A block on `parent` of a chain opened outside a [`Harness`] (the crash tests' child
/// processes), carrying `txs`, its coinbase claiming subsidy + `fees` to `key(1)`; `tag`
/// makes blocks of different branches differ.
pub fn block_on_state(state: &ChainState, parent: Hash256, txs: Vec<Transaction>, fees: u64, tag: u64) -> Block {
    let params = state.params();
    let entry = *state.entry(&parent).expect("parent");
    let height = Height(entry.height.0 + 1);
    let value = Amount(params.subsidy(height).0 + fees);
    let mut all = vec![coinbase(height, tag, b"test", vec![pay(key_hash(&key(1)), value)])];
    all.extend(txs);
    let mut b = assemble(parent, entry.header.time + 1, params.pow_limit_bits, all);
    assert!(grind(&mut b.header, &params.pow_limit()));
    b
}

/// A spend of the coinbase that matured at the tip, if still unspent, and its fee: every
/// block then changes the UTXO set both ways. (Regtest halves every 150 blocks; past ~64
/// halvings coinbases are worthless and nothing is spent.)
pub fn matured_spend(state: &ChainState) -> (Vec<Transaction>, u64) {
    let height = state.height().0;
    if height < 11 {
        return (Vec::new(), 0);
    }
    let src_hash = state.hash_at(Height(height - 10)).expect("hash");
    let src = state.block(&src_hash).expect("read").expect("body");
    let op = OutPoint {
        txid: src.transactions[0].txid(),
        index: 0,
    };
    let v = src.transactions[0].outputs[0].value.0;
    if v <= 1_000 || state.utxo(&op).expect("read").is_none() {
        return (Vec::new(), 0);
    }
    let tx = spend(
        &[op],
        vec![
            pay(key_hash(&key(2)), Amount(v / 2)),
            pay(key_hash(&key(3)), Amount(v / 2 - 100)),
        ],
        &key(1),
        &state.genesis_hash(),
    );
    (vec![tx], 100 + v % 2)
}
