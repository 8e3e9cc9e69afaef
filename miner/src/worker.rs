//! The nonce search on N worker threads.
//!
//! The node hands the miner a [`BlockTemplate`]; every worker searches its own extra-nonce
//! lane (worker index + threads × round) over the full 32-bit nonce space, rolling to its
//! next lane when the space is exhausted. A new template marks the current job stale: each
//! worker checks that flag between small nonce chunks, so a new tip stops stale work within
//! milliseconds. Workers run at low priority (nice 10) so the node stays responsive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use lode_chain::{Amount, Block};

use crate::error::MinerError;
use crate::sha256::{HeaderHasher, SearchOutcome, Target};
use crate::stats::MinerStats;
use crate::template::BlockTemplate;

/// A block a worker found.
#[derive(Clone, Debug)]
pub struct FoundBlock {
    /// The job (template) it was found for.
    pub job_id: u64,
    /// The block, ready to submit like any block from the network.
    pub block: Block,
    /// Its coinbase value.
    pub reward: Amount,
}

struct Job {
    id: u64,
    template: BlockTemplate,
    target: Target,
    stale: AtomicBool,
}

struct Shared {
    job: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    shutdown: AtomicBool,
    next_id: AtomicU64,
    stats: Arc<MinerStats>,
    /// Jobs each worker has started, for tests and diagnostics.
    started: Vec<AtomicU64>,
}

/// A running miner. Dropping it stops and joins the workers.
pub struct Miner {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

impl Miner {
    /// Starts `threads` idle workers that send found blocks to `found`.
    pub fn start(threads: usize, found: Sender<FoundBlock>) -> Result<Miner, MinerError> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            stats: Arc::new(MinerStats::new(threads)),
            started: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        });
        let mut miner = Miner {
            shared: shared.clone(),
            handles: Vec::with_capacity(threads),
            threads,
        };
        for w in 0..threads {
            let shared = shared.clone();
            let found = found.clone();
            let handle = std::thread::Builder::new()
                .name(format!("miner-{w}"))
                .spawn(move || worker(w, threads, &shared, &found))
                // Returning drops `miner`, which stops and joins the workers already started.
                .map_err(|e| MinerError::Spawn(e.to_string()))?;
            miner.handles.push(handle);
        }
        Ok(miner)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Replaces the current job with `template`; returns its job id. The previous job is
    /// abandoned at once.
    pub fn set_template(&self, template: BlockTemplate) -> Result<u64, MinerError> {
        let target = Target::from_bits(template.header().bits).ok_or(MinerError::Difficulty(
            lode_chain::ConsensusError::BadCompactBits {
                bits: template.header().bits,
            },
        ))?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Job {
            id,
            template,
            target,
            stale: AtomicBool::new(false),
        });
        let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(job) {
            old.stale.store(true, Ordering::Relaxed);
        }
        drop(slot);
        self.shared.wake.notify_all();
        Ok(id)
    }

    /// Stops searching until the next template (e.g. mining switched off).
    pub fn pause(&self) {
        let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.stale.store(true, Ordering::Relaxed);
        }
    }

    /// The accounting handle.
    pub fn stats(&self) -> Arc<MinerStats> {
        self.shared.stats.clone()
    }

    /// The id of the last job each worker started (0 = none yet).
    pub fn started_jobs(&self) -> Vec<u64> {
        self.shared.started.iter().map(|s| s.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.pause();
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(w: usize, threads: usize, shared: &Shared, found: &Sender<FoundBlock>) {
    lower_priority();
    let mut last_job = 0u64;
    loop {
        // Wait for a job this worker has not worked on yet.
        let job = {
            let mut slot = shared.job.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if shared.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                match slot.as_ref() {
                    Some(j) if j.id != last_job && !j.stale.load(Ordering::Relaxed) => break j.clone(),
                    _ => slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        last_job = job.id;
        if let Some(s) = shared.started.get(w) {
            s.store(job.id, Ordering::Relaxed);
        }
        let Some(counter) = shared.stats.worker_counter(w) else {
            return;
        };
        for round in 0u64.. {
            if job.stale.load(Ordering::Relaxed) || shared.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let lane = job.template.extra_nonce.wrapping_add(w as u64 + threads as u64 * round);
            let t = if lane == job.template.extra_nonce {
                job.template.clone()
            } else {
                job.template.with_extra_nonce(lane)
            };
            let hasher = HeaderHasher::from_header(&t.header());
            match hasher.search_with_progress(0..=u32::MAX, &job.target, &job.stale, counter) {
                SearchOutcome::Found(nonce) => {
                    // This template is done: stop the other workers' search on it.
                    job.stale.store(true, Ordering::Relaxed);
                    let block = t.with_nonce(nonce);
                    if found
                        .send(FoundBlock {
                            job_id: job.id,
                            block,
                            reward: t.reward,
                        })
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
                SearchOutcome::Exhausted => continue,
                SearchOutcome::Stopped { .. } => break,
            }
        }
    }
}

/// Mines `template` on `threads` threads until a block is found or `stop` is set: regtest's
/// `generate`, and tests.
pub fn mine_blocking(template: &BlockTemplate, threads: usize, stop: &AtomicBool) -> Result<Block, MinerError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let miner = Miner::start(threads, tx)?;
    miner.set_template(template.clone())?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(MinerError::Stopped);
        }
        match rx.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(found) => return Ok(found.block),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(MinerError::Stopped),
        }
    }
}

/// Nice 10 for the calling thread, so mining yields to the node's own work.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread with constant arguments; on Linux the
        // nice value is per thread and `who` = the thread id selects only this one.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10)
        };
        if result != 0 {
            tracing::debug!("could not lower the miner thread's priority");
        }
    }
}
