//! `generate(n)`: mine n blocks now, on the caller's thread pool, through the same acceptance
//! path as blocks from the network. On regtest (fixed minimum difficulty) this is immediate;
//! on devnet it searches until n blocks are found.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lode_chain::mempool::Mempool;
use lode_chain::{AcceptStatus, ChainEvent, ChainState, Hash256, PubkeyHash};

use crate::error::MinerError;
use crate::template::build_template;
use crate::worker::mine_blocking;

/// Mines `n` blocks on the tip paying `pay_to`, each with the mempool's best transactions,
/// accepting each through [`ChainState::accept_block`] and updating the mempool. Returns
/// the block hashes and every chain event (for the wallet and the network). Stops early,
/// with the blocks found so far, when `stop` is set.
pub fn generate(
    state: &mut ChainState,
    pool: &mut Mempool,
    pay_to: PubkeyHash,
    n: usize,
    threads: usize,
    stop: &AtomicBool,
) -> Result<(Vec<Hash256>, Vec<ChainEvent>), MinerError> {
    let mut hashes = Vec::with_capacity(n);
    let mut events = Vec::new();
    for i in 0..n {
        let extra_nonce = rand_extra_nonce(i);
        let template = build_template(state, pool, pay_to, state.now(), extra_nonce)?;
        let block = match mine_blocking(&template, threads, stop) {
            Ok(b) => b,
            Err(MinerError::Stopped) => break,
            Err(e) => return Err(e),
        };
        let outcome = state.accept_block(Arc::new(block))?;
        if let AcceptStatus::Invalid { rule } = outcome.status {
            return Err(MinerError::Chain(lode_chain::error::ChainError::InvalidBlock {
                hash: outcome.hash,
                rule,
            }));
        }
        pool.apply_all(&outcome.events, state);
        hashes.push(outcome.hash);
        events.extend(outcome.events);
    }
    Ok((hashes, events))
}

/// Extra-nonce start for the i-th generated block: distinct per call and per block so two
/// nodes generating to one address never search identical templates.
fn rand_extra_nonce(i: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t.rotate_left(17) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
