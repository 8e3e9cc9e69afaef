//! [`MiningMonitor`]: what the node knows about its own mining, shared between the chain
//! task (the only writer of the [`Ledger`]), a one-second sampler (the only writer of the
//! [`RateHistory`]) and the RPC (readers). Readers never queue behind the chain task.
//! The sampler also saves the ledger to the data dir when it changed (`super::store`), and
//! the node saves it once more when it stops.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lode_chain::{ChainEvent, ChainState, Hash256};
use lode_miner::MinerStats;
use tokio::sync::watch;

use super::history::{Range, RateHistory, RateSample};
use super::ledger::{Ledger, LedgerFigures};
use super::store;

/// How often the hash-rate history is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// See the module doc.
#[derive(Debug, Default)]
pub struct MiningMonitor {
    ledger: Mutex<Ledger>,
    history: Mutex<RateHistory>,
    /// The running miner's counters, if one runs.
    current: Mutex<Option<Arc<MinerStats>>>,
    /// Where the ledger is saved, and the chain's genesis it belongs to.
    file: Option<(PathBuf, Hash256)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent data: plain counters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MiningMonitor {
    /// An empty monitor.
    pub fn new() -> Arc<MiningMonitor> {
        Arc::new(MiningMonitor::default())
    }

    /// The monitor of a node whose data dir is `data_dir`: the ledger saved there is read
    /// back and re-checked against `chain` (an unreadable file is logged and replaced).
    pub fn open(data_dir: &Path, chain: &ChainState) -> Arc<MiningMonitor> {
        let path = data_dir.join(store::LEDGER_FILE);
        let genesis = chain.genesis_hash();
        let ledger = match store::load(&path) {
            Ok(Some(saved)) if saved.genesis == genesis.0 => {
                let l = Ledger::restore(saved, |h| chain.is_on_best_chain(h));
                tracing::info!(figures = ?l.figures(), "mining ledger read back");
                l
            }
            Ok(Some(_)) => {
                tracing::warn!(path = %path.display(), "mining ledger of another chain: starting afresh");
                Ledger::default()
            }
            Ok(None) => Ledger::default(),
            Err(e) => {
                tracing::warn!(error = %e, "starting a fresh mining ledger");
                Ledger::default()
            }
        };
        Arc::new(MiningMonitor {
            ledger: Mutex::new(ledger),
            file: Some((path, genesis)),
            ..MiningMonitor::default()
        })
    }

    /// Writes the ledger to the data dir if it changed since the last save (a failed write
    /// is logged and tried again next time).
    pub fn save(&self) {
        let Some((path, genesis)) = &self.file else { return };
        let saved = {
            let mut l = lock(&self.ledger);
            if !l.is_dirty() {
                return;
            }
            l.snapshot(*genesis)
        };
        if let Err(e) = store::save(path, &saved) {
            tracing::warn!(error = %e, "cannot save the mining ledger");
            lock(&self.ledger).mark_dirty();
        }
    }

    /// The miner started (`Some`) or stopped (`None`).
    pub fn set_miner(&self, stats: Option<Arc<MinerStats>>) {
        *lock(&self.current) = stats;
    }

    /// A block this node mined is about to be submitted.
    pub fn expect(&self, hash: Hash256, reward: u64) {
        lock(&self.ledger).expect(hash, reward);
    }

    /// The chain's verdict on it.
    pub fn settle(&self, hash: &Hash256, stored_valid: bool) {
        lock(&self.ledger).settle(hash, stored_valid);
    }

    /// A chain event (the chain task calls it for every one).
    pub fn on_chain_event(&self, event: &ChainEvent) {
        lock(&self.ledger).on_chain_event(event);
    }

    /// Blocks found, stale, rewards.
    pub fn figures(&self) -> LedgerFigures {
        lock(&self.ledger).figures()
    }

    /// Takes one hash-rate sample now.
    pub fn sample(&self) {
        let counts = lock(&self.current).as_ref().map(|s| s.counts());
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        lock(&self.history).record(t, Instant::now(), counts);
    }

    /// The hash-rate history of `range`, oldest first.
    pub fn history(&self, range: Range) -> Vec<RateSample> {
        lock(&self.history).samples(range)
    }

    /// Samples every second (and saves a changed ledger) until `shutdown` turns true (or
    /// the monitor is dropped).
    pub fn spawn_sampler(monitor: &Arc<MiningMonitor>, mut shutdown: watch::Receiver<bool>) {
        let weak = Arc::downgrade(monitor);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = shutdown.changed() => break,
                }
                let Some(m) = weak.upgrade() else { break };
                m.sample();
                // The file write (up to a few hundred kB) stays off the async threads.
                if tokio::task::spawn_blocking(move || m.save()).await.is_err() {
                    break;
                }
            }
        });
    }
}
