//! `lode miner`: `lode-miner`'s nonce search (SHA-NI kernels) against a Stratum v1 server.
//! N search threads share the newest job; each rolls its own extranonce2 lane
//! (thread + threads × round) over the full nonce space and hands every share it finds to
//! the connection task, which submits it. A new job stops stale work at once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lode_miner::{HeaderHasher, SearchOutcome, Target};
use tokio::sync::{mpsc, watch};

use super::{parse_url, Connection, Event, Job, StratumClientError};

/// How `lode miner` runs.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// `stratum+tcp://HOST:PORT`.
    pub url: String,
    /// Username (for Lode: `ADDRESS[.worker]`).
    pub user: String,
    /// Password (most pools ignore it).
    pub pass: String,
    /// Search threads.
    pub threads: usize,
    /// How often the status callback runs.
    pub report_every: Duration,
}

/// What the status line shows.
#[derive(Clone, Debug, Default)]
pub struct MinerStatus {
    /// Hashes per second since the last report.
    pub hashrate: f64,
    /// Hashes since start.
    pub hashes: u64,
    /// Shares the server accepted.
    pub accepted: u64,
    /// Shares it refused.
    pub rejected: u64,
    /// The current share difficulty.
    pub difficulty: f64,
    /// Whether connected now.
    pub connected: bool,
}

struct Work {
    job: Job,
    en1: Vec<u8>,
    en2_size: usize,
    target: Target,
    stale: AtomicBool,
}

struct Board {
    work: Mutex<Option<Arc<Work>>>,
    wake: Condvar,
    shutdown: AtomicBool,
    counters: Vec<AtomicU64>,
}

impl Board {
    fn set(&self, work: Option<Arc<Work>>) {
        let mut slot = self.work.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.stale.store(true, Ordering::Relaxed);
        }
        *slot = work;
        drop(slot);
        self.wake.notify_all();
    }

    fn hashes(&self) -> u64 {
        self.counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// A share a thread found.
struct Found {
    job: String,
    en2: Vec<u8>,
    ntime: u32,
    nonce: u32,
}

fn search_thread(w: usize, threads: usize, board: &Board, found: &mpsc::Sender<Found>) {
    let mut last: Option<Arc<Work>> = None;
    loop {
        let work = {
            let mut slot = board.work.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if board.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                match slot.as_ref() {
                    Some(j)
                        if !j.stale.load(Ordering::Relaxed) && !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, j)) =>
                    {
                        break j.clone()
                    }
                    _ => slot = board.wake.wait(slot).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        last = Some(work.clone());
        let counter = &board.counters[w];
        'rounds: for round in 0u64.. {
            let lane = (w as u64).wrapping_add(threads as u64 * round);
            let en2: Vec<u8> = lane
                .to_le_bytes()
                .iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(work.en2_size)
                .collect();
            let header = work.job.header(&work.en1, &en2, work.job.ntime, 0, work.job.version);
            let hasher = HeaderHasher::from_header(&header);
            let mut start = 0u32;
            loop {
                match hasher.search_with_progress(start..=u32::MAX, &work.target, &work.stale, counter) {
                    SearchOutcome::Found(nonce) => {
                        let share = Found {
                            job: work.job.id.clone(),
                            en2: en2.clone(),
                            ntime: work.job.ntime,
                            nonce,
                        };
                        if found.blocking_send(share).is_err() {
                            return;
                        }
                        match nonce.checked_add(1) {
                            Some(n) => start = n,
                            None => break,
                        }
                    }
                    SearchOutcome::Exhausted => break,
                    SearchOutcome::Stopped { .. } => break 'rounds,
                }
            }
            if work.stale.load(Ordering::Relaxed) || board.shutdown.load(Ordering::Relaxed) {
                break;
            }
        }
    }
}

/// Mines until `stop` turns true, reconnecting when the server goes away; `status` is
/// called every `report_every`.
pub async fn run(
    config: MinerConfig,
    mut status: impl FnMut(&MinerStatus),
    mut stop: watch::Receiver<bool>,
) -> Result<MinerStatus, StratumClientError> {
    let mut addr = parse_url(&config.url)?;
    let threads = config.threads.max(1);
    let board = Arc::new(Board {
        work: Mutex::new(None),
        wake: Condvar::new(),
        shutdown: AtomicBool::new(false),
        counters: (0..threads).map(|_| AtomicU64::new(0)).collect(),
    });
    let (found_tx, mut found_rx) = mpsc::channel::<Found>(1_024);
    let mut handles = Vec::new();
    for w in 0..threads {
        let board = board.clone();
        let tx = found_tx.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("stratum-miner-{w}"))
                .spawn(move || search_thread(w, threads, &board, &tx))?,
        );
    }
    drop(found_tx);
    let mut st = MinerStatus::default();
    let mut last_report = (Instant::now(), 0u64);
    let mut report = tokio::time::interval(config.report_every.max(Duration::from_millis(100)));
    let mut backoff = Duration::from_secs(1);
    let result = 'outer: loop {
        let mut conn = match connect(&addr, &config).await {
            Ok(c) => {
                backoff = Duration::from_secs(1);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the Stratum server; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break 'outer Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        st.connected = true;
        let mut pending: HashSet<u64> = HashSet::new();
        let mut reconnect: Option<(Option<String>, u64)> = None;
        let mut current_job: Option<String> = None;
        loop {
            if let Some(job) = &conn.job {
                if current_job.as_deref() != Some(job.id.as_str()) {
                    current_job = Some(job.id.clone());
                    st.difficulty = job.difficulty;
                    board.set(Some(Arc::new(Work {
                        target: Target::from_u256(&job.share_target()),
                        job: job.clone(),
                        en1: conn.en1.clone(),
                        en2_size: conn.en2_size,
                        stale: AtomicBool::new(false),
                    })));
                }
            }
            tokio::select! {
                ev = conn.read_event() => match ev {
                    Ok(Event::Reply { id, result }) => {
                        if pending.remove(&id) {
                            match result {
                                Ok(serde_json::Value::Bool(true)) => st.accepted += 1,
                                Ok(_) => st.rejected += 1,
                                Err(e) => {
                                    st.rejected += 1;
                                    tracing::debug!(code = e.code, message = %e.message, "share refused");
                                }
                            }
                        }
                    }
                    Ok(Event::Reconnect { to, wait }) => {
                        reconnect = Some((to, wait));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "Stratum connection lost");
                        break;
                    }
                },
                Some(share) = found_rx.recv() => {
                    // Shares of an older job are dropped here, not sent as stale.
                    if current_job.as_deref() == Some(share.job.as_str()) {
                        let params = serde_json::json!([config.user, share.job, hex::encode(&share.en2), format!("{:08x}", share.ntime), format!("{:08x}", share.nonce)]);
                        match conn.send("mining.submit", params).await {
                            Ok(id) => {
                                if pending.len() < 10_000 {
                                    pending.insert(id);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "Stratum connection lost");
                                // A server that closed after `client.reconnect` makes the
                                // write fail before that line is read: look for it.
                                reconnect = pending_reconnect(&mut conn).await;
                                break;
                            }
                        }
                    }
                }
                _ = report.tick() => {
                    let now = Instant::now();
                    let hashes = board.hashes();
                    let secs = now.duration_since(last_report.0).as_secs_f64().max(1e-3);
                    st.hashrate = (hashes - last_report.1) as f64 / secs;
                    st.hashes = hashes;
                    last_report = (now, hashes);
                    status(&st);
                }
                _ = stop.changed() => break 'outer Ok(()),
            }
        }
        st.connected = false;
        board.set(None);
        if let Some((to, wait)) = reconnect {
            if let Some(to) = to {
                addr = to;
            }
            tracing::info!(to = %addr, wait, "the server asked to reconnect");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = stop.changed() => break 'outer Ok(()),
            }
        }
    };
    board.shutdown.store(true, Ordering::Relaxed);
    board.set(None);
    // Threads blocked on a full share channel need it drained to see the shutdown.
    found_rx.close();
    for h in handles {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    st.hashes = board.hashes();
    result.map(|()| st)
}

/// Reads what the server sent before closing (at most 1 s) for a `client.reconnect`.
async fn pending_reconnect(conn: &mut Connection) -> Option<(Option<String>, u64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(deadline, conn.read_event()).await {
            Ok(Ok(Event::Reconnect { to, wait })) => return Some((to, wait)),
            Ok(Ok(_)) => continue,
            _ => return None,
        }
    }
}

async fn connect(addr: &str, config: &MinerConfig) -> Result<Connection, StratumClientError> {
    let mut conn = Connection::connect(addr).await?;
    conn.subscribe(concat!("lode-miner/", env!("CARGO_PKG_VERSION")))
        .await?;
    match conn.authorize(&config.user, &config.pass).await? {
        Ok(serde_json::Value::Bool(true)) => {}
        Ok(other) => return Err(StratumClientError::Protocol(format!("authorize answered {other}"))),
        Err(e) => {
            return Err(StratumClientError::Protocol(format!(
                "authorize refused: {}",
                e.message
            )))
        }
    }
    conn.wait_job(None, Duration::from_secs(30)).await?;
    Ok(conn)
}
