//! When to hand the workers a new template: at once on a new tip (stale work is wasted
//! work), and every few seconds when the mempool offers more fees than the current template
//! collects. The chain task calls [`MiningController::update`] after every change and on a
//! timer.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use lode_chain::mempool::Mempool;
use lode_chain::{Amount, ChainState, Hash256, PubkeyHash};

use crate::error::MinerError;
use crate::stats::MinerStats;
use crate::template::build_template;
use crate::worker::{FoundBlock, Miner};

/// How often a template may be rebuilt for better fees on the same tip.
pub const FEE_REFRESH: Duration = Duration::from_secs(3);

/// What the controller did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The template is current.
    Kept,
    /// A new template on a new tip.
    NewTip,
    /// A new template on the same tip with more fees.
    MoreFees,
}

struct Current {
    tip: Hash256,
    pool_fees: Amount,
    built: Instant,
}

/// Owns the worker threads and decides when their template is stale.
pub struct MiningController {
    miner: Miner,
    pay_to: PubkeyHash,
    current: Option<Current>,
    refresh: Duration,
    extra_nonce: u64,
}

impl MiningController {
    /// Starts `threads` workers paying `pay_to`; found blocks go to `found`.
    pub fn start(
        threads: usize,
        pay_to: PubkeyHash,
        found: Sender<FoundBlock>,
    ) -> Result<MiningController, MinerError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(MiningController {
            miner: Miner::start(threads, found)?,
            pay_to,
            current: None,
            refresh: FEE_REFRESH,
            extra_nonce: seed << 16,
        })
    }

    /// Sets the fee-refresh interval (tests use a short one).
    pub fn with_refresh(mut self, refresh: Duration) -> MiningController {
        self.refresh = refresh;
        self
    }

    /// Rebuilds the template if the tip moved, or if `refresh` has passed and the pool's fees
    /// grew since the last template.
    pub fn update(&mut self, state: &ChainState, pool: &Mempool, now: Instant) -> Result<Refresh, MinerError> {
        let tip = state.tip_hash();
        let pool_fees = pool.total_fees();
        let why = match &self.current {
            None => Refresh::NewTip,
            Some(c) if c.tip != tip => Refresh::NewTip,
            Some(c) if now.duration_since(c.built) >= self.refresh && pool_fees > c.pool_fees => Refresh::MoreFees,
            Some(_) => return Ok(Refresh::Kept),
        };
        // A fresh extra-nonce lane per template: never search the same header twice.
        self.extra_nonce = self.extra_nonce.wrapping_add(1 << 16);
        let template = build_template(state, pool, self.pay_to, state.now(), self.extra_nonce)?;
        self.miner.set_template(template)?;
        self.current = Some(Current {
            tip,
            pool_fees,
            built: now,
        });
        Ok(why)
    }

    /// Stops searching until the next update (mining switched off or shutting down).
    pub fn pause(&mut self) {
        self.miner.pause();
        self.current = None;
    }

    /// The accounting handle.
    pub fn stats(&self) -> std::sync::Arc<MinerStats> {
        self.miner.stats()
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.miner.threads()
    }

    /// The address the coinbase pays.
    pub fn pay_to(&self) -> PubkeyHash {
        self.pay_to
    }
}
