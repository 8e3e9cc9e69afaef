//! One miner's connection: the Stratum state machine (subscribe, authorize, configure,
//! jobs, submits) and its loop over lines, new templates, vardiff and timeouts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lode_chain::build::pay;
use lode_chain::{PubkeyHash, TxOut};
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::chain_task::Origin;
use crate::common::stratum::{difficulty_of_hash, prevhash_to_stratum, u32_hex, ShareDifficulty, EXTRA_NONCE_REGION};

use super::jobs::Template;
use super::messages::{self, parse_request, ErrorCode, Request};
use super::pool::ShareRecord;
use super::share::{self, SeenShares, SessionJob, Submit};
use super::shared::Shared;
use super::stats::Reject;
use super::vardiff::Vardiff;
use crate::common::lines::LineReader;

/// extranonce1 bytes per connection.
pub const EN1_SIZE: usize = 4;
/// extranonce2 bytes the miner rolls.
pub const EN2_SIZE: usize = EXTRA_NONCE_REGION - EN1_SIZE;
/// The version-rolling mask the server offers (BIP320's bits 13–28).
pub const VERSION_MASK: u32 = 0x1fff_e000;
/// Jobs a connection remembers (older ones are "job not found").
const JOBS_KEPT: usize = 8;
/// Worker names one connection may authorize.
const MAX_WORKERS: usize = 8;
/// Longest username accepted.
const MAX_USERNAME: usize = 128;
/// A write that takes longer drops the connection (a miner that does not read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

struct Worker {
    name: String,
    payee: Option<PubkeyHash>,
}

/// A connection's state.
pub struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    en1: [u8; EN1_SIZE],
    subscribed: bool,
    workers: Vec<Worker>,
    version_mask: Option<u32>,
    difficulty: ShareDifficulty,
    floor: ShareDifficulty,
    sent_difficulty: Option<ShareDifficulty>,
    jobs: VecDeque<SessionJob>,
    next_job: u64,
    seen: SeenShares,
    vardiff: Vardiff,
    score: i64,
    /// Set when the connection must close after the replies are written.
    pub close: bool,
    /// Set when it closes after `client.reconnect` (closed gracefully, see [`run`]).
    reconnecting: bool,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Session {
    /// A fresh connection from `peer` with extranonce1 `en1`.
    pub fn new(shared: Arc<Shared>, peer: SocketAddr, en1: u32) -> Session {
        let c = &shared.config;
        Session {
            en1: en1.to_be_bytes(),
            subscribed: false,
            workers: Vec::new(),
            version_mask: None,
            difficulty: c.start_difficulty.max(c.min_difficulty),
            floor: c.min_difficulty,
            sent_difficulty: None,
            jobs: VecDeque::new(),
            next_job: 0,
            seen: SeenShares::default(),
            vardiff: Vardiff::new(c.share_interval, Instant::now()),
            score: 0,
            close: false,
            reconnecting: false,
            peer,
            shared,
        }
    }

    fn ready(&self) -> bool {
        self.subscribed && !self.workers.is_empty()
    }

    /// Handles one line; returns the lines to send.
    pub async fn handle(&mut self, line: &str) -> Vec<String> {
        let req = match parse_request(line) {
            Ok(r) => r,
            Err(e) => {
                self.penalise(None, Reject::Malformed);
                return vec![messages::error(
                    &Value::Null,
                    ErrorCode::Other,
                    &format!("malformed request: {e}"),
                )];
            }
        };
        let mut out = Vec::new();
        match req.method.as_str() {
            "mining.subscribe" => {
                self.subscribed = true;
                let sid = hex::encode(self.en1);
                out.push(messages::reply(
                    &req.id,
                    json!([
                        [["mining.set_difficulty", sid], ["mining.notify", sid]],
                        hex::encode(self.en1),
                        EN2_SIZE
                    ]),
                ));
                if self.ready() && self.jobs.is_empty() {
                    out.extend(self.job_from_current(true));
                }
            }
            "mining.authorize" => out.extend(self.authorize(&req)),
            "mining.configure" => out.push(self.configure(&req)),
            "mining.suggest_difficulty" => {
                if let Some(d) = req
                    .params
                    .first()
                    .and_then(Value::as_f64)
                    .and_then(ShareDifficulty::at_most)
                {
                    let d = d.max(self.shared.config.min_difficulty);
                    self.floor = d;
                    self.difficulty = d;
                }
                out.push(messages::reply(&req.id, json!(true)));
                if self.ready() {
                    out.extend(self.job_from_current(false));
                }
            }
            "mining.extranonce.subscribe" => out.push(messages::reply(&req.id, json!(true))),
            "mining.submit" => out.extend(self.submit(&req).await),
            other => {
                let name: String = other.chars().take(64).collect();
                out.push(messages::error(
                    &req.id,
                    ErrorCode::Other,
                    &format!("unknown method {name}"),
                ));
            }
        }
        out
    }

    fn authorize(&mut self, req: &Request) -> Vec<String> {
        let user = match messages::str_param(&req.params, 0, "username") {
            Ok(u) if u.len() <= MAX_USERNAME && !u.is_empty() => u.to_string(),
            _ => {
                return vec![messages::refused(
                    &req.id,
                    ErrorCode::Unauthorized,
                    &format!("username must be 1 to {MAX_USERNAME} characters"),
                )]
            }
        };
        let address = user.split('.').next().unwrap_or_default();
        let payee = PubkeyHash::from_address(address, &self.shared.params.hrp).ok();
        if self.shared.pool.is_some() && payee.is_none() {
            return vec![messages::refused(
                &req.id,
                ErrorCode::Unauthorized,
                &format!(
                    "pool mode: username must be ADDRESS[.worker] with an address of {}",
                    self.shared.params.hrp
                ),
            )];
        }
        let first = self.workers.is_empty();
        if !self.workers.iter().any(|w| w.name == user) {
            if self.workers.len() >= MAX_WORKERS {
                return vec![messages::refused(
                    &req.id,
                    ErrorCode::Unauthorized,
                    "too many workers on one connection",
                )];
            }
            self.workers.push(Worker { name: user, payee });
        }
        let mut out = vec![messages::reply(&req.id, json!(true))];
        if first && self.subscribed {
            out.extend(self.job_from_current(true));
        }
        out
    }

    fn configure(&mut self, req: &Request) -> String {
        let exts: Vec<&str> = req
            .params
            .first()
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).take(16).collect())
            .unwrap_or_default();
        let opts = req.params.get(1).and_then(Value::as_object);
        let mut result = serde_json::Map::new();
        for ext in exts {
            if ext == "version-rolling" {
                let theirs = opts
                    .and_then(|o| o.get("version-rolling.mask"))
                    .and_then(Value::as_str)
                    .and_then(|s| u32::from_str_radix(s, 16).ok())
                    .unwrap_or(u32::MAX);
                let mask = theirs & VERSION_MASK;
                self.version_mask = Some(mask);
                result.insert("version-rolling".into(), json!(true));
                result.insert("version-rolling.mask".into(), json!(u32_hex(mask)));
            } else {
                result.insert(ext.chars().take(64).collect(), json!(false));
            }
        }
        messages::reply(&req.id, Value::Object(result))
    }

    fn payee_outputs(&self, t: &Template) -> Option<Vec<TxOut>> {
        if let Some(outputs) = &t.pool_outputs {
            return Some(outputs.as_ref().clone());
        }
        let payee = self.workers.first().and_then(|w| w.payee).or(t.node_payout)?;
        Some(vec![pay(payee, t.reward)])
    }

    /// A job from the newest template, if there is one.
    fn job_from_current(&mut self, clean: bool) -> Vec<String> {
        let t = self.shared.templates.borrow().clone();
        match t {
            Some(t) => self.new_job(t, clean),
            None => Vec::new(),
        }
    }

    /// A job for a template the template task just published, unless this connection's
    /// newest job is already built on it: a template published between the connection's
    /// start and its authorize reaches it twice (the authorize's first job, then the
    /// watch), and a second clean notify of the same work would make the miner drop it.
    pub fn job_for_published(&mut self, t: Arc<Template>) -> Vec<String> {
        if self.jobs.back().is_some_and(|j| Arc::ptr_eq(&j.template, &t)) {
            return Vec::new();
        }
        self.new_job(t, false)
    }

    /// set_difficulty (when it changed) and notify for `t`.
    pub fn new_job(&mut self, t: Arc<Template>, clean: bool) -> Vec<String> {
        let mut out = Vec::new();
        let Some(outputs) = self.payee_outputs(&t) else {
            tracing::warn!(peer = %self.peer, "no payout address for a Stratum job (no wallet and no address username)");
            return out;
        };
        let coinbase = match t.job_coinbase(outputs) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a Stratum coinbase");
                return out;
            }
        };
        // A share never needs to be harder than a block.
        let cap = ShareDifficulty::at_most(t.net_diff).unwrap_or(self.difficulty);
        let difficulty = self.difficulty.min(cap).max(self.shared.config.min_difficulty);
        if self.sent_difficulty != Some(difficulty) {
            out.push(messages::notification(
                "mining.set_difficulty",
                json!([difficulty.value()]),
            ));
            self.sent_difficulty = Some(difficulty);
        }
        self.next_job += 1;
        let id = format!("{:x}", self.next_job);
        let clean = clean || t.clean;
        if clean {
            self.seen.clear();
        }
        out.push(messages::notification(
            "mining.notify",
            json!([
                id,
                prevhash_to_stratum(&t.prev_hash),
                hex::encode(&coinbase.coinb1),
                hex::encode(&coinbase.coinb2),
                t.branch.iter().map(|h| hex::encode(h.0)).collect::<Vec<_>>(),
                u32_hex(t.version),
                u32_hex(t.bits),
                u32_hex(t.time),
                clean,
            ]),
        ));
        if self.jobs.len() >= JOBS_KEPT {
            self.jobs.pop_front();
        }
        self.jobs.push_back(SessionJob {
            id,
            template: t,
            coinbase,
            difficulty,
        });
        out
    }

    fn penalise(&mut self, worker: Option<&str>, reason: Reject) {
        self.shared.stats.rejected(worker, reason);
        if reason != Reject::Stale {
            self.score -= self.shared.config.invalid_share_cost;
        }
        if self.score <= self.shared.config.ban_score {
            tracing::info!(peer = %self.peer, score = self.score, "banning a Stratum miner for invalid shares");
            self.shared.ban(self.peer.ip());
            self.close = true;
        }
    }

    async fn submit(&mut self, req: &Request) -> Vec<String> {
        let id = &req.id;
        if !self.subscribed {
            self.penalise(None, Reject::NotSubscribed);
            return vec![messages::refused(id, ErrorCode::NotSubscribed, "Not subscribed")];
        }
        let p = &req.params;
        let worker_name = messages::str_param(p, 0, "worker").unwrap_or_default().to_string();
        let Some(worker_idx) = self.workers.iter().position(|w| w.name == worker_name) else {
            self.penalise(None, Reject::Unauthorized);
            return vec![messages::refused(id, ErrorCode::Unauthorized, "Unauthorized worker")];
        };
        let fields = (|| -> Result<_, String> {
            Ok((
                messages::str_param(p, 1, "job_id")?,
                Submit {
                    en2: messages::str_param(p, 2, "extranonce2")?,
                    ntime: messages::str_param(p, 3, "ntime")?,
                    nonce: messages::str_param(p, 4, "nonce")?,
                    version_bits: p.get(5).and_then(Value::as_str),
                },
            ))
        })();
        let (job_id, submit) = match fields {
            Ok(f) => f,
            Err(e) => {
                self.penalise(Some(&worker_name), Reject::Malformed);
                return vec![messages::refused(id, ErrorCode::Other, &e)];
            }
        };
        let Some(job) = self.jobs.iter().find(|j| j.id == job_id) else {
            self.penalise(Some(&worker_name), Reject::Stale);
            return vec![messages::refused(id, ErrorCode::Stale, "Job not found")];
        };
        if job.template.prev_hash != self.shared.tip.borrow().hash {
            self.penalise(Some(&worker_name), Reject::Stale);
            return vec![messages::refused(id, ErrorCode::Stale, "Stale share")];
        }
        let max_future = u32::try_from(self.shared.params.max_future_block_time).unwrap_or(u32::MAX);
        let ctx = share::Context {
            en1: &self.en1,
            en2_size: EN2_SIZE,
            version_mask: self.version_mask,
            now: unix_now(),
            ntime_ahead: self.shared.config.ntime_ahead.min(max_future),
        };
        let checked = share::check(job, &submit, &ctx, &mut self.seen);
        let share = match checked {
            Ok(s) => s,
            Err(r) => {
                let code = match r.reason {
                    Reject::Duplicate => ErrorCode::Duplicate,
                    Reject::LowDifficulty => ErrorCode::LowDifficulty,
                    Reject::Stale => ErrorCode::Stale,
                    _ => ErrorCode::Other,
                };
                self.penalise(Some(&worker_name), r.reason);
                return vec![messages::refused(id, code, &r.message)];
            }
        };
        let template = job.template.clone();
        let difficulty = job.difficulty;
        let outputs = job.coinbase.outputs.clone();
        let now = unix_now();
        if share.is_block {
            let block = template.block(share.header, &outputs, share.extra_nonce);
            // The audit record goes to disk before the block can reach the chain: the
            // ledger then never sees a pool block on the chain without its record.
            let recorded = match &self.shared.pool {
                Some(pool) => match pool.commit_block(template.id, share.hash, now) {
                    Ok(r) => r.is_some(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record the pool's found block");
                        false
                    }
                },
                None => false,
            };
            let verdict = self.shared.chain.submit_block(Arc::new(block), Origin::Local).await;
            let stored = matches!(&verdict, Ok(v) if v.is_stored_valid());
            self.shared.stats.block(&worker_name, stored);
            tracing::info!(height = template.height.0, hash = %share.hash, worker = %worker_name, ?verdict, "Stratum block found");
            if recorded && !stored {
                if let Some(pool) = &self.shared.pool {
                    if let Err(e) = pool.forget_block(template.height, &share.hash) {
                        tracing::warn!(error = %e, "cannot forget a refused pool block");
                    }
                }
            }
        }
        if let Some(pool) = &self.shared.pool {
            let payee = self.workers[worker_idx].payee.map(|p| p.0).unwrap_or_default();
            let worker = worker_name.split_once('.').map(|(_, w)| w).unwrap_or_default();
            let record = ShareRecord {
                payee,
                worker: worker.chars().take(64).collect(),
                diff_log2: difficulty.log2(),
                net_diff: template.net_diff,
                time: now,
                height: template.height.0,
            };
            if let Err(e) = pool.record(record).await {
                tracing::warn!(error = %e, "share log write failed");
                return vec![messages::refused(id, ErrorCode::Other, "share log unavailable")];
            }
        }
        self.score = self.score.saturating_add(1).min(1_000);
        self.shared
            .stats
            .accepted(&worker_name, now, difficulty.value(), difficulty_of_hash(&share.hash));
        let mut out = vec![messages::reply(id, json!(true))];
        if self.shared.config.vardiff {
            if let Some(next) = self.vardiff.on_share(Instant::now(), self.difficulty) {
                out.extend(self.retarget(next));
            }
        }
        out
    }

    fn retarget(&mut self, next: ShareDifficulty) -> Vec<String> {
        // Never above the network difficulty (where the next job would cap it anyway), so
        // a later halving is seen at once.
        let cap = self
            .shared
            .templates
            .borrow()
            .as_ref()
            .and_then(|t| ShareDifficulty::at_most(t.net_diff));
        let next = cap.map_or(next, |c| next.min(c)).max(self.floor);
        if next == self.difficulty {
            return Vec::new();
        }
        self.difficulty = next;
        // The new difficulty takes effect with the next notify: send one now.
        self.job_from_current(false)
    }

    /// `client.reconnect` to `to`, then close (a connection that has not subscribed yet is
    /// just closed: miners take the first line they get for the subscribe reply).
    pub fn reconnect(&mut self, to: &super::shared::ReconnectTo) -> Vec<String> {
        self.close = true;
        self.reconnecting = self.subscribed;
        if self.subscribed {
            vec![reconnect_line(to)]
        } else {
            Vec::new()
        }
    }

    /// Periodic vardiff check (a miner finding nothing gets an easier difficulty).
    pub fn tick(&mut self) -> Vec<String> {
        if !self.ready() || !self.shared.config.vardiff {
            return Vec::new();
        }
        match self.vardiff.on_tick(Instant::now(), self.difficulty) {
            Some(next) => self.retarget(next),
            None => Vec::new(),
        }
    }
}

/// The `client.reconnect` notification: `[]` (back to the same server) or
/// `[host, port, wait]`.
pub fn reconnect_line(to: &super::shared::ReconnectTo) -> String {
    let params = match to {
        Some((host, port, wait)) => json!([host, port, wait]),
        None => json!([]),
    };
    messages::notification("client.reconnect", params)
}

/// Runs one connection until it closes, times out, misbehaves or the server stops. When
/// the server stops (or the operator asks, [`Shared::reconnect_all`]) the miner is sent
/// `client.reconnect` before the connection closes, so it comes back (or goes where told)
/// instead of treating the close as a failure.
pub async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    en1: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = LineReader::new(BufReader::with_capacity(1_024, read), shared.config.max_line);
    let mut templates = shared.templates.clone();
    templates.borrow_and_update();
    let mut reconnect = shared.reconnect.subscribe();
    reconnect.borrow_and_update();
    let mut session = Session::new(shared.clone(), peer, en1);
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut vardiff_tick = tokio::time::interval(shared.config.share_interval.max(Duration::from_millis(100)));
    loop {
        let deadline = if session.subscribed {
            last_line + shared.config.idle_timeout
        } else {
            (started + shared.config.subscribe_timeout).min(last_line + shared.config.idle_timeout)
        };
        let out = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    last_line = Instant::now();
                    session.handle(&l).await
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(peer = %peer, error = %e, "Stratum connection dropped");
                    break;
                }
            },
            changed = templates.changed(), if session.ready() => {
                if changed.is_err() {
                    // The template task ended: the server is stopping.
                    session.reconnect(&None)
                } else {
                    let t = templates.borrow_and_update().clone();
                    match t {
                        Some(t) => session.job_for_published(t),
                        None => Vec::new(),
                    }
                }
            }
            _ = vardiff_tick.tick() => session.tick(),
            _ = tokio::time::sleep_until(deadline.into()) => {
                tracing::debug!(peer = %peer, subscribed = session.subscribed, "Stratum connection timed out");
                break;
            }
            _ = shutdown.changed() => session.reconnect(&None),
            changed = reconnect.changed() => {
                if changed.is_err() {
                    break;
                }
                let to = reconnect.borrow_and_update().1.clone();
                tracing::debug!(peer = %peer, ?to, "asking a Stratum miner to reconnect");
                session.reconnect(&to)
            }
        };
        if !out.is_empty() {
            let mut bytes = Vec::new();
            for l in out {
                bytes.extend_from_slice(l.as_bytes());
                bytes.push(b'\n');
            }
            match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        if session.close {
            break;
        }
    }
    let _ = write.shutdown().await;
    if session.reconnecting {
        // Closing with the miner's unread submits queued would reset the connection, and a
        // miner whose write fails first may never read the reconnect line: half-close and
        // drain what it still sends until it hangs up (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = lines.next_line().await {}
        })
        .await;
    }
}
