//! Headers-first sync: which peer is ahead, which headers to ask for, which bodies to fetch
//! from whom, and the order to hand them to the chain.
//!
//! A state machine without I/O. The event loop feeds it peer events, responses and the
//! chain's verdicts; it sends requests through [`SyncNet`] and leaves work for the chain
//! task and penalties in [`SyncManager::take_outputs`].
//!
//! One round: ask a peer with more work for headers after our locator (one headers request
//! at a time) → the chain task checks linkage, PoW, bits and time → the missing bodies are
//! queued and fetched from every peer that has them, at most [`WINDOW`] blocks in flight
//! and [`PER_PEER_REQUESTS`] requests per peer, failed or timed-out requests re-queued →
//! received bodies go to the chain task in chain order, a batch at a time → when the round
//! is done, ask again until no peer has more work.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use lode_chain::pow::ChainWork;
use lode_chain::{Block, Hash256};

use super::peers::Misbehaviour;
use super::protocol::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS};
use crate::chain_task::{BlockVerdict, HeadersVerdict, TipInfo};

/// Most blocks requested and not yet received.
pub const WINDOW: usize = 512;
/// Most outstanding block requests per peer: 8 × 16 blocks keeps one peer's pipe full while
/// the chain connects (at 4, a sync from one peer reached 0.86–0.87 of the connect rate
/// once connecting got faster; at 8, 0.91–0.94: BENCHMARKS.md, issue 16 seventh pass).
pub const PER_PEER_REQUESTS: usize = 8;
/// Most memory held by downloaded blocks (decoded, [`Block::memory_size`]) from their
/// arrival until the chain task's verdict on them: past it, no new requests go out (the
/// window in blocks alone would allow 512 max-size blocks ≈ 1 GB). The buffer only has to
/// hide download latency behind connecting, which is the slower side: 32 MiB of decoded
/// 500-transaction blocks is ≈ 9 s of connect work on the bench machine (BENCHMARKS.md).
pub const MAX_BUFFERED_BYTES: usize = 32 * 1024 * 1024;
/// Most blocks handed to the chain task at once (keeps its queue short and verdicts quick).
pub const SUBMIT_BATCH: usize = 64;
/// How often each peer is asked for its tip (repairs anything gossip missed).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// A round with blocks queued but nobody to fetch them from is dropped after this.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A headers request unanswered this long is given up (the peer backs off) and the next
/// peer asked: a silent peer must not hold sync up for the transport's whole timeout.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(4);
/// First back-off after a failed or refused request; doubles per failure in a row.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(64);

/// Sending requests (the event loop's request-response behaviour).
pub trait SyncNet<Id = OutboundRequestId> {
    /// Sends `req` to `peer`, returning the request's id.
    fn send(&mut self, peer: &PeerId, req: SyncRequest) -> Id;
}

/// Work for others that sync produced.
#[derive(Debug)]
pub enum SyncOutput {
    /// Ask the chain task to check these headers from `peer`.
    CheckHeaders {
        /// Who sent them.
        peer: PeerId,
        /// The headers.
        headers: Vec<lode_chain::header::BlockHeader>,
    },
    /// Hand these blocks (in chain order) to the chain task.
    Submit(Vec<Arc<Block>>),
    /// A block arrived and waits for its turn: its signatures can be checked meanwhile.
    Precheck(Arc<Block>),
    /// Penalise a peer.
    Penalise(PeerId, Misbehaviour),
    /// A round ended with this block as our new tip: gossip it, so peers that only talk to
    /// us learn of the branch at once (to them it is an orphan, which starts their sync).
    Announce(Arc<Block>),
}

#[derive(Debug)]
struct PeerState {
    /// Height the peer claims (its status answer): drives whom we ask, never readiness.
    height: u32,
    /// The highest of its headers that passed the chain's checks (valid proof of work):
    /// only this counts for readiness and progress.
    proven_height: u32,
    /// Failed or refused requests in a row.
    failures: u32,
    /// Not asked for headers or blocks before this.
    backoff_until: Option<Instant>,
    work: ChainWork,
    status_pending: bool,
    last_status: Option<Instant>,
    block_requests: usize,
    /// Hashes this peer answered "unknown" for in the current round.
    lacks: HashSet<Hash256>,
}

#[derive(Debug)]
enum Pending {
    Status(PeerId),
    Headers(PeerId),
    Blocks(PeerId, Vec<Hash256>),
}

/// Sync progress for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Our height.
    pub height: u32,
    /// Best height a peer has proven with headers that passed our checks (a claim alone
    /// does not count).
    pub target: u32,
}

/// The sync state machine. See the module doc. `Id` is the transport's request id
/// (libp2p's in the node, plain numbers in unit tests).
#[derive(Debug)]
pub struct SyncManager<Id = OutboundRequestId> {
    peers: HashMap<PeerId, PeerState>,
    local: TipInfo,
    pending: HashMap<Id, Pending>,
    headers_from: Option<PeerId>,
    /// When the outstanding headers request went out.
    headers_since: Option<Instant>,
    /// How often peers are asked for their tip.
    status_interval: Duration,
    /// Headers sent to the chain task, verdict awaited.
    checking: bool,
    /// The round's blocks in chain order, not yet connected.
    order: VecDeque<Hash256>,
    /// Blocks waiting to be requested.
    queue: VecDeque<Hash256>,
    in_flight: HashMap<Hash256, PeerId>,
    received: HashMap<Hash256, (Arc<Block>, PeerId)>,
    /// Memory held by the blocks in `received` and in the submitted batch
    /// ([`Block::memory_size`]).
    held_bytes: usize,
    /// The part of `held_bytes` that is the submitted batch (released at its verdicts).
    submitted_bytes: usize,
    /// Blocks handed to the chain task, verdicts awaited, with who delivered them.
    submitted: Vec<(Hash256, PeerId)>,
    /// The last block handed to the chain task.
    last_submitted: Option<Arc<Block>>,
    round_source: Option<PeerId>,
    round_work: ChainWork,
    last_progress: Instant,
    outputs: Vec<SyncOutput>,
    max_block_size: usize,
    /// The network's minimum chain work (see [`SyncManager::with_min_chain_work`]).
    min_chain_work: ChainWork,
    /// Whether the headers answer awaiting its verdict was a full batch (more may follow).
    checking_full: bool,
}

impl<Id: Copy + Eq + std::hash::Hash + std::fmt::Debug> SyncManager<Id> {
    /// A manager starting from our current tip.
    pub fn new(local: TipInfo, max_block_size: usize) -> SyncManager<Id> {
        SyncManager {
            peers: HashMap::new(),
            local,
            pending: HashMap::new(),
            headers_from: None,
            headers_since: None,
            status_interval: STATUS_INTERVAL,
            checking: false,
            order: VecDeque::new(),
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            received: HashMap::new(),
            held_bytes: 0,
            submitted_bytes: 0,
            submitted: Vec::new(),
            last_submitted: None,
            round_source: None,
            round_work: ChainWork::default(),
            last_progress: Instant::now(),
            outputs: Vec::new(),
            max_block_size,
            min_chain_work: ChainWork::default(),
            checking_full: false,
        }
    }

    /// While our chain has less than `work`, peers whose chain shows less are neither asked
    /// for headers (by their claim) nor downloaded from (by the work their headers prove, when
    /// the answer holds their whole chain past our tip). A full answer ([`MAX_HEADERS`]) may
    /// continue past the minimum and is fetched as before: headers are not kept across
    /// answers, so the rule cannot judge a chain longer than one answer.
    pub fn with_min_chain_work(mut self, work: ChainWork) -> SyncManager<Id> {
        self.min_chain_work = work;
        self
    }

    /// True while our own chain has less than the minimum chain work (initial download).
    fn below_min_work(&self) -> bool {
        self.local.work < self.min_chain_work
    }

    /// Asks peers for their tip every `interval` instead of [`STATUS_INTERVAL`].
    pub fn with_status_interval(mut self, interval: Duration) -> SyncManager<Id> {
        self.status_interval = interval;
        self
    }

    /// Work for the chain task and penalties accumulated since the last call.
    pub fn take_outputs(&mut self) -> Vec<SyncOutput> {
        std::mem::take(&mut self.outputs)
    }

    /// Our height and the best height peers told us of.
    pub fn progress(&self) -> Progress {
        let target = self.peers.values().map(|p| p.proven_height).max().unwrap_or(0);
        Progress {
            height: self.local.height.0,
            target: target.max(self.local.height.0),
        }
    }

    /// The best height `peer` has told us of, if it has.
    pub fn peer_height(&self, peer: &PeerId) -> Option<u32> {
        self.peers.get(peer).map(|p| p.height)
    }

    /// True while a round is under way.
    pub fn is_syncing(&self) -> bool {
        !self.order.is_empty() || self.headers_from.is_some() || self.checking
    }

    /// Records the chain's tip without acting on it (before handing over chain verdicts).
    pub fn set_local(&mut self, tip: TipInfo) {
        self.local = tip;
    }

    /// The chain's tip moved (any cause).
    pub fn on_local_tip(&mut self, tip: TipInfo, net: &mut dyn SyncNet<Id>) {
        self.local = tip;
        self.maybe_request_headers(net);
    }

    /// A peer of our chain is ready (identified): ask for its tip.
    pub fn on_peer_ready(&mut self, peer: PeerId, net: &mut dyn SyncNet<Id>) {
        self.peers.entry(peer).or_insert(PeerState {
            height: 0,
            proven_height: 0,
            failures: 0,
            backoff_until: None,
            work: ChainWork::default(),
            status_pending: false,
            last_status: None,
            block_requests: 0,
            lacks: HashSet::new(),
        });
        self.request_status(peer, net);
    }

    /// A peer is gone. Its pending requests fail separately (connection closed).
    pub fn on_peer_gone(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// A gossip block from `peer` did not connect (parent unknown): the peer is ahead of us.
    pub fn on_orphan(&mut self, peer: PeerId, net: &mut dyn SyncNet<Id>) {
        if self.peers.contains_key(&peer) {
            self.request_status(peer, net);
        }
    }

    fn request_status(&mut self, peer: PeerId, net: &mut dyn SyncNet<Id>) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if p.status_pending {
            return;
        }
        p.status_pending = true;
        p.last_status = Some(Instant::now());
        let id = net.send(&peer, SyncRequest::Status);
        self.pending.insert(id, Pending::Status(peer));
    }

    /// Once a second: poll peers' tips, drop a stalled round, schedule downloads.
    pub fn tick(&mut self, now: Instant, net: &mut dyn SyncNet<Id>) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.status_pending
                    && p.last_status
                        .is_none_or(|t| now.duration_since(t) >= self.status_interval)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            self.request_status(peer, net);
        }
        // A headers request unanswered too long: forget it (a late answer is then ignored),
        // back the peer off and ask the next one.
        if let (Some(peer), Some(since)) = (self.headers_from, self.headers_since) {
            if now.duration_since(since) >= HEADERS_TIMEOUT {
                tracing::debug!(%peer, "headers request unanswered; asking another peer");
                self.pending
                    .retain(|_, p| !matches!(p, Pending::Headers(q) if *q == peer));
                self.headers_from = None;
                self.headers_since = None;
                self.back_off(peer, now);
                self.outputs.push(SyncOutput::Penalise(peer, Misbehaviour::Timeout));
            }
        }
        if !self.order.is_empty() && self.in_flight.is_empty() && self.submitted.is_empty() {
            if now.duration_since(self.last_progress) > STALL_TIMEOUT {
                tracing::info!(queued = self.order.len(), "sync round stalled; starting over");
                self.reset_round();
            }
        } else {
            self.last_progress = now;
        }
        self.schedule(net);
        self.maybe_request_headers(net);
    }

    fn reset_round(&mut self) {
        self.order.clear();
        self.queue.clear();
        self.received.clear();
        // A submitted batch is still held until its verdicts arrive.
        self.held_bytes = self.submitted_bytes;
        self.round_source = None;
        for p in self.peers.values_mut() {
            p.lacks.clear();
        }
        // In-flight requests still complete; their blocks are then simply not wanted.
        self.in_flight.clear();
    }

    fn maybe_request_headers(&mut self, net: &mut dyn SyncNet<Id>) {
        if self.headers_from.is_some() || self.checking || !self.order.is_empty() {
            return;
        }
        // Peers that failed us lately wait; among the rest, the fewest failures in a row
        // first, then the most work claimed.
        let now = Instant::now();
        let best = self
            .peers
            .iter()
            .filter(|(_, p)| p.work > self.local.work && p.backoff_until.is_none_or(|t| now >= t))
            // During initial download, a chain claimed below the minimum is not worth asking.
            .filter(|(_, p)| !self.below_min_work() || p.work >= self.min_chain_work)
            .max_by_key(|(_, p)| (std::cmp::Reverse(p.failures), p.work))
            .map(|(id, _)| *id);
        let Some(peer) = best else { return };
        self.headers_from = Some(peer);
        self.headers_since = Some(now);
        let id = net.send(
            &peer,
            SyncRequest::Headers {
                locator: self.local.locator.clone(),
            },
        );
        self.pending.insert(id, Pending::Headers(peer));
    }

    /// A response arrived.
    pub fn on_response(&mut self, id: Id, peer: PeerId, response: SyncResponse, net: &mut dyn SyncNet<Id>) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match (pending, response) {
            (Pending::Status(p), SyncResponse::Status { height, work, .. }) => {
                if let Some(ps) = self.peers.get_mut(&p) {
                    ps.status_pending = false;
                    ps.height = height;
                    ps.work = ChainWork::from_be_bytes(&work);
                }
                self.maybe_request_headers(net);
            }
            (Pending::Headers(p), SyncResponse::Headers(headers)) => {
                self.headers_from = None;
                self.headers_since = None;
                if headers.len() > MAX_HEADERS {
                    self.outputs.push(SyncOutput::Penalise(
                        p,
                        Misbehaviour::Oversized(format!("{} headers", headers.len())),
                    ));
                } else if headers.is_empty() {
                    // Nothing after our locator: its work claim was stale; ask again later.
                    if let Some(ps) = self.peers.get_mut(&p) {
                        ps.work = self.local.work;
                    }
                } else {
                    self.checking = true;
                    self.checking_full = headers.len() == MAX_HEADERS;
                    self.outputs.push(SyncOutput::CheckHeaders { peer: p, headers });
                }
            }
            (Pending::Blocks(p, hashes), SyncResponse::Blocks(bodies)) => {
                self.on_blocks(p, hashes, bodies);
            }
            (pending, other) => {
                // An error answer, or an answer of the wrong kind.
                let wrong_kind = !matches!(other, SyncResponse::Error(_));
                if wrong_kind {
                    self.outputs.push(SyncOutput::Penalise(
                        peer,
                        Misbehaviour::Undecodable("answer of the wrong kind".into()),
                    ));
                } else {
                    tracing::debug!(%peer, ?other, "sync request refused");
                }
                // Refused: ask it again only after a back-off (a peer that answers every
                // request with an error would otherwise be asked in a tight loop).
                let refused_data = !matches!(pending, Pending::Status(_));
                self.on_failed(pending, false);
                if refused_data {
                    self.back_off(peer, Instant::now());
                    self.outputs.push(SyncOutput::Penalise(peer, Misbehaviour::Refused));
                }
            }
        }
        self.schedule(net);
        self.try_submit();
        self.maybe_request_headers(net);
    }

    /// A request failed (timeout, connection closed, protocol error).
    pub fn on_failure(&mut self, id: Id, timeout: bool, net: &mut dyn SyncNet<Id>) {
        if let Some(pending) = self.pending.remove(&id) {
            self.on_failed(pending, timeout);
        }
        self.schedule(net);
        self.maybe_request_headers(net);
    }

    fn on_failed(&mut self, pending: Pending, timeout: bool) {
        let peer = match pending {
            Pending::Status(p) => {
                if let Some(ps) = self.peers.get_mut(&p) {
                    ps.status_pending = false;
                }
                p
            }
            Pending::Headers(p) => {
                if self.headers_from == Some(p) {
                    self.headers_from = None;
                    self.headers_since = None;
                }
                p
            }
            Pending::Blocks(p, hashes) => {
                if let Some(ps) = self.peers.get_mut(&p) {
                    ps.block_requests = ps.block_requests.saturating_sub(1);
                }
                for h in hashes.into_iter().rev() {
                    if self.in_flight.remove(&h).is_some() {
                        self.queue.push_front(h);
                    }
                }
                p
            }
        };
        if timeout {
            self.back_off(peer, Instant::now());
            self.outputs.push(SyncOutput::Penalise(peer, Misbehaviour::Timeout));
        }
    }

    /// One more failure in a row for `peer`: it is not asked for headers or blocks again
    /// before [`BACKOFF_BASE`] × 2^(failures − 1), at most [`BACKOFF_MAX`].
    fn back_off(&mut self, peer: PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.failures = p.failures.saturating_add(1);
            let wait = BACKOFF_BASE
                .saturating_mul(1u32 << p.failures.saturating_sub(1).min(6))
                .min(BACKOFF_MAX);
            p.backoff_until = Some(now + wait);
        }
    }

    /// True if `peer` exists and is backing off at `now`.
    pub fn is_backing_off(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get(peer)
            .and_then(|p| p.backoff_until)
            .is_some_and(|t| now < t)
    }

    fn on_blocks(&mut self, peer: PeerId, hashes: Vec<Hash256>, bodies: Vec<Vec<u8>>) {
        if let Some(ps) = self.peers.get_mut(&peer) {
            ps.block_requests = ps.block_requests.saturating_sub(1);
        }
        if bodies.len() > hashes.len() {
            self.outputs.push(SyncOutput::Penalise(
                peer,
                Misbehaviour::Oversized(format!("{} blocks for {} hashes", bodies.len(), hashes.len())),
            ));
        }
        let mut unserved = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            let wanted = self.in_flight.get(hash) == Some(&peer);
            match bodies.get(i) {
                Some(bytes) if !bytes.is_empty() => {
                    if !wanted {
                        continue;
                    }
                    self.in_flight.remove(hash);
                    match Block::from_bytes(bytes, self.max_block_size) {
                        Ok(block) if block.hash() == *hash => {
                            self.held_bytes += block.memory_size();
                            let block = Arc::new(block);
                            self.outputs.push(SyncOutput::Precheck(block.clone()));
                            self.received.insert(*hash, (block, peer));
                        }
                        Ok(_) => {
                            self.outputs.push(SyncOutput::Penalise(peer, Misbehaviour::WrongBlock));
                            unserved.push(*hash);
                        }
                        Err(e) => {
                            self.outputs
                                .push(SyncOutput::Penalise(peer, Misbehaviour::Undecodable(e.to_string())));
                            unserved.push(*hash);
                        }
                    }
                }
                Some(_) => {
                    // Unknown to this peer: fetch it elsewhere.
                    if wanted {
                        self.in_flight.remove(hash);
                        if let Some(ps) = self.peers.get_mut(&peer) {
                            ps.lacks.insert(*hash);
                        }
                        unserved.push(*hash);
                    }
                }
                None => {
                    // Past the server's byte budget: ask again.
                    if wanted {
                        self.in_flight.remove(hash);
                        unserved.push(*hash);
                    }
                }
            }
        }
        for h in unserved.into_iter().rev() {
            self.queue.push_front(h);
        }
    }

    /// The chain task's verdict on headers from `peer`.
    pub fn on_headers_verdict(&mut self, peer: PeerId, verdict: HeadersVerdict, net: &mut dyn SyncNet<Id>) {
        self.checking = false;
        match verdict {
            HeadersVerdict::Valid {
                missing,
                work,
                last_height,
            } => {
                // Headers with valid proof of work: the peer's claim holds this far.
                if let Some(ps) = self.peers.get_mut(&peer) {
                    ps.proven_height = ps.proven_height.max(last_height.0);
                    ps.failures = 0;
                    ps.backoff_until = None;
                }
                let under_minimum = self.below_min_work() && work < self.min_chain_work && !self.checking_full;
                if under_minimum {
                    tracing::info!(%peer, %work, minimum = %self.min_chain_work, "header chain below the minimum chain work; not downloaded");
                }
                if missing.is_empty() || work <= self.local.work || under_minimum {
                    // Nothing new worth having (known, or not more work than ours).
                    if let Some(ps) = self.peers.get_mut(&peer) {
                        ps.work = ps.work.min(self.local.work);
                    }
                } else {
                    tracing::debug!(%peer, blocks = missing.len(), "headers valid; fetching bodies");
                    self.order = missing.iter().copied().collect();
                    self.queue = missing.into_iter().collect();
                    self.round_source = Some(peer);
                    self.round_work = work;
                    self.last_progress = Instant::now();
                    for p in self.peers.values_mut() {
                        p.lacks.clear();
                    }
                }
            }
            HeadersVerdict::Unconnected => {
                self.outputs
                    .push(SyncOutput::Penalise(peer, Misbehaviour::UnconnectedHeaders));
            }
            HeadersVerdict::Invalid { index, reason } => {
                self.outputs.push(SyncOutput::Penalise(
                    peer,
                    Misbehaviour::InvalidHeaders(format!("header {index}: {reason}")),
                ));
            }
        }
        self.schedule(net);
        self.maybe_request_headers(net);
    }

    /// Sends block requests while the window and the peers allow.
    fn schedule(&mut self, net: &mut dyn SyncNet<Id>) {
        while !self.queue.is_empty() && self.in_flight.len() < WINDOW && self.held_bytes < MAX_BUFFERED_BYTES {
            // Peers that can serve this round: at least the round's work, or its source.
            let source = self.round_source;
            let round_work = self.round_work;
            let front = self.queue[0];
            let chosen = self
                .peers
                .iter()
                .filter(|(id, p)| {
                    p.backoff_until.is_none_or(|t| Instant::now() >= t)
                        && p.block_requests < PER_PEER_REQUESTS
                        && (Some(**id) == source || p.work >= round_work)
                        && !p.lacks.contains(&front)
                })
                .min_by_key(|(_, p)| p.block_requests)
                .map(|(id, _)| *id);
            let Some(peer) = chosen else { break };
            let mut hashes = Vec::with_capacity(MAX_BLOCKS_PER_REQUEST);
            while hashes.len() < MAX_BLOCKS_PER_REQUEST && self.in_flight.len() < WINDOW {
                let Some(h) = self.queue.pop_front() else { break };
                if self.received.contains_key(&h) || !self.order.contains(&h) {
                    continue;
                }
                self.in_flight.insert(h, peer);
                hashes.push(h);
            }
            if hashes.is_empty() {
                continue;
            }
            if let Some(ps) = self.peers.get_mut(&peer) {
                ps.block_requests += 1;
            }
            let id = net.send(&peer, SyncRequest::Blocks { hashes: hashes.clone() });
            self.pending.insert(id, Pending::Blocks(peer, hashes));
        }
        // Every peer lacks the front block: forget what they lacked and try again later.
        if !self.queue.is_empty() && self.in_flight.is_empty() {
            let front = self.queue[0];
            if self.peers.values().all(|p| p.lacks.contains(&front)) {
                for p in self.peers.values_mut() {
                    p.lacks.clear();
                }
            }
        }
    }

    /// Hands the next received blocks, in chain order, to the chain task.
    fn try_submit(&mut self) {
        if !self.submitted.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        for h in self.order.iter() {
            if batch.len() >= SUBMIT_BATCH {
                break;
            }
            let Some((block, peer)) = self.received.remove(h) else {
                break;
            };
            self.submitted_bytes += block.memory_size();
            self.submitted.push((*h, peer));
            self.last_submitted = Some(block.clone());
            batch.push(block);
        }
        if !batch.is_empty() {
            self.outputs.push(SyncOutput::Submit(batch));
        }
    }

    /// Memory held by downloaded blocks not yet judged by the chain task (bounded by
    /// [`MAX_BUFFERED_BYTES`] plus one response's blocks).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The chain task's verdicts on the last submitted batch.
    pub fn on_submitted(&mut self, verdicts: Vec<BlockVerdict>, net: &mut dyn SyncNet<Id>) {
        let submitted = std::mem::take(&mut self.submitted);
        self.held_bytes = self
            .held_bytes
            .saturating_sub(std::mem::take(&mut self.submitted_bytes));
        let mut failed = false;
        for (i, (hash, peer)) in submitted.iter().enumerate() {
            match verdicts.get(i) {
                Some(v) if v.broken_rule().is_some() => {
                    let rule = v.broken_rule().map(|r| r.to_string()).unwrap_or_default();
                    tracing::warn!(%peer, block = %hash, %rule, "peer served an invalid block");
                    self.outputs
                        .push(SyncOutput::Penalise(*peer, Misbehaviour::InvalidBlock(rule)));
                    failed = true;
                    break;
                }
                Some(BlockVerdict::Failed(e)) => {
                    tracing::warn!(block = %hash, error = %e, "chain could not store a synced block");
                    failed = true;
                    break;
                }
                Some(BlockVerdict::Accepted(lode_chain::AcceptStatus::Orphan { .. })) | None => {
                    failed = true;
                    break;
                }
                Some(_) => {
                    if self.order.front() == Some(hash) {
                        self.order.pop_front();
                    }
                }
            }
        }
        if failed {
            self.reset_round();
        }
        self.last_progress = Instant::now();
        if self.order.is_empty() && !failed {
            if let Some(block) = self.last_submitted.take() {
                if block.hash() == self.local.hash {
                    self.outputs.push(SyncOutput::Announce(block));
                }
            }
        }
        self.try_submit();
        self.schedule(net);
        self.maybe_request_headers(net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_chain::{ChainParams, Height, PubkeyHash};

    /// Records requests; ids are their positions.
    #[derive(Default)]
    struct Recorder(Vec<(PeerId, SyncRequest)>);

    impl SyncNet<usize> for Recorder {
        fn send(&mut self, peer: &PeerId, req: SyncRequest) -> usize {
            self.0.push((*peer, req));
            self.0.len() - 1
        }
    }

    fn chain(n: usize) -> (ChainParams, Vec<Block>) {
        let params = ChainParams::regtest();
        let blocks = lode_chain::build::empty_chain(&params, n as u32, PubkeyHash([1; 20]));
        (params, blocks)
    }

    fn genesis_tip(params: &ChainParams) -> TipInfo {
        let g = params.genesis_block();
        TipInfo {
            hash: g.hash(),
            height: Height(0),
            work: ChainWork::from_bits(g.header.bits),
            header: g.header,
            locator: vec![g.hash()],
        }
    }

    fn status(height: u32) -> SyncResponse {
        let work = ChainWork::from_bits(lode_chain::params::EASIEST_BITS);
        let mut total = work;
        for _ in 0..height {
            total = total.saturating_add(work);
        }
        SyncResponse::Status {
            height,
            work: total.to_be_bytes(),
            tip: Hash256::ZERO,
        }
    }

    /// The chain work `status(height)` claims.
    fn status_work(height: u32) -> ChainWork {
        match status(height) {
            SyncResponse::Status { work, .. } => ChainWork::from_be_bytes(&work),
            _ => unreachable!(),
        }
    }

    /// The chain task's verdict that `blocks` are valid headers, all bodies missing, up to
    /// `height` with the work `status(height)` claims.
    fn all_missing(blocks: &[Block], height: u32) -> HeadersVerdict {
        HeadersVerdict::Valid {
            missing: blocks.iter().map(Block::hash).collect(),
            work: status_work(height),
            last_height: Height(height),
        }
    }

    #[test]
    fn headers_first_then_bodies_from_both_peers_then_blocks_in_order() {
        let (params, blocks) = chain(40);
        let mut sync: SyncManager<usize> = SyncManager::new(genesis_tip(&params), params.max_block_size);
        let mut net = Recorder::default();
        let (p1, p2) = (PeerId::random(), PeerId::random());
        sync.on_peer_ready(p1, &mut net);
        sync.on_peer_ready(p2, &mut net);
        assert!(net.0.iter().all(|(_, r)| *r == SyncRequest::Status));

        // Both are ahead; headers are asked of one only.
        sync.on_response(0, p1, status(40), &mut net);
        sync.on_response(1, p2, status(40), &mut net);
        let headers_reqs: Vec<_> = net
            .0
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| matches!(r, SyncRequest::Headers { .. }))
            .collect();
        assert_eq!(headers_reqs.len(), 1);
        let (hid, hpeer) = (headers_reqs[0].0, headers_reqs[0].1 .0);
        let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
        sync.on_response(hid, hpeer, SyncResponse::Headers(headers.clone()), &mut net);
        let outs = sync.take_outputs();
        assert!(matches!(&outs[..], [SyncOutput::CheckHeaders { headers: h, .. }] if *h == headers));

        // No body is asked for before the chain's verdict on the headers.
        assert!(!net.0.iter().any(|(_, r)| matches!(r, SyncRequest::Blocks { .. })));
        let missing: Vec<Hash256> = blocks.iter().map(Block::hash).collect();
        sync.on_headers_verdict(hpeer, all_missing(&blocks, 40), &mut net);
        let block_reqs: Vec<(usize, PeerId, Vec<Hash256>)> = net
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, (p, r))| match r {
                SyncRequest::Blocks { hashes } => Some((i, *p, hashes.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(block_reqs.iter().map(|r| r.2.len()).sum::<usize>(), 40);
        assert!(block_reqs.iter().any(|r| r.1 == p1) && block_reqs.iter().any(|r| r.1 == p2));

        // Answer in reverse order: the chain still gets them parents first.
        let by_hash: HashMap<Hash256, &Block> = blocks.iter().map(|b| (b.hash(), b)).collect();
        for (id, peer, hashes) in block_reqs.iter().rev() {
            let bodies = hashes.iter().map(|h| by_hash[h].to_bytes()).collect();
            sync.on_response(*id, *peer, SyncResponse::Blocks(bodies), &mut net);
        }
        let mut submitted = Vec::new();
        loop {
            let outs = sync.take_outputs();
            let Some(SyncOutput::Submit(batch)) = outs.into_iter().find(|o| matches!(o, SyncOutput::Submit(_))) else {
                break;
            };
            let n = batch.len();
            submitted.extend(batch.iter().map(|b| b.hash()));
            // The chain task's tip moves before its verdicts come back (as in the loop).
            let last = batch[n - 1].clone();
            let height = submitted.len() as u32;
            let SyncResponse::Status { work, .. } = status(height) else {
                unreachable!()
            };
            sync.set_local(TipInfo {
                hash: last.hash(),
                height: Height(height),
                work: ChainWork::from_be_bytes(&work),
                header: last.header,
                locator: vec![last.hash()],
            });
            sync.on_submitted(
                vec![BlockVerdict::Accepted(lode_chain::AcceptStatus::Connected); n],
                &mut net,
            );
        }
        assert_eq!(submitted, missing);
        // Caught up with both peers: no further round.
        assert!(!sync.is_syncing());
    }

    #[test]
    fn downloaded_blocks_count_against_the_buffer_until_their_verdicts() {
        let (params, blocks) = chain(20);
        let mut sync: SyncManager<usize> = SyncManager::new(genesis_tip(&params), params.max_block_size);
        let mut net = Recorder::default();
        let p = PeerId::random();
        sync.on_peer_ready(p, &mut net);
        sync.on_response(0, p, status(20), &mut net);
        let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
        sync.on_response(1, p, SyncResponse::Headers(headers), &mut net);
        sync.on_headers_verdict(p, all_missing(&blocks, 20), &mut net);
        let by_hash: HashMap<Hash256, &Block> = blocks.iter().map(|b| (b.hash(), b)).collect();
        let reqs: Vec<(usize, Vec<Hash256>)> = net
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, (_, r))| match r {
                SyncRequest::Blocks { hashes } => Some((i, hashes.clone())),
                _ => None,
            })
            .collect();
        for (id, hashes) in reqs {
            let bodies = hashes.iter().map(|h| by_hash[h].to_bytes()).collect();
            sync.on_response(id, p, SyncResponse::Blocks(bodies), &mut net);
        }
        let all: usize = blocks.iter().map(Block::memory_size).sum();
        assert!(
            all > blocks.iter().map(Block::size).sum::<usize>(),
            "decoded is larger than encoded"
        );
        // Every block received, some handed to the chain task: all still held until their
        // verdicts, then released batch by batch.
        assert_eq!(sync.held_bytes(), all);
        let mut judged = 0;
        let mut batches = 0;
        loop {
            let outs = sync.take_outputs();
            let Some(SyncOutput::Submit(batch)) = outs.into_iter().find(|o| matches!(o, SyncOutput::Submit(_))) else {
                break;
            };
            assert_eq!(sync.held_bytes(), all - judged, "a submitted batch is still held");
            judged += batch.iter().map(|b| b.memory_size()).sum::<usize>();
            batches += 1;
            sync.on_submitted(
                vec![BlockVerdict::Accepted(lode_chain::AcceptStatus::Connected); batch.len()],
                &mut net,
            );
            assert_eq!(sync.held_bytes(), all - judged);
        }
        assert!(batches >= 1);
        assert_eq!(judged, all);
        assert_eq!(sync.held_bytes(), 0);
    }

    /// Runs one round against a peer whose chain is `blocks`, with `minimum` chain work:
    /// the block requests it led to.
    fn round_with_minimum(blocks: &[Block], params: &ChainParams, minimum: ChainWork) -> usize {
        let mut sync: SyncManager<usize> =
            SyncManager::new(genesis_tip(params), params.max_block_size).with_min_chain_work(minimum);
        let mut net = Recorder::default();
        let p = PeerId::random();
        let n = blocks.len() as u32;
        sync.on_peer_ready(p, &mut net);
        // The peer claims exactly what its headers prove.
        sync.on_response(0, p, status(n), &mut net);
        let Some(hid) = net.0.iter().position(|(_, r)| matches!(r, SyncRequest::Headers { .. })) else {
            return 0;
        };
        sync.on_response(
            hid,
            p,
            SyncResponse::Headers(blocks.iter().map(|b| b.header).collect()),
            &mut net,
        );
        let SyncResponse::Status { work, .. } = status(n) else {
            unreachable!()
        };
        sync.on_headers_verdict(
            p,
            HeadersVerdict::Valid {
                missing: blocks.iter().map(Block::hash).collect(),
                work: ChainWork::from_be_bytes(&work),
                last_height: Height(n),
            },
            &mut net,
        );
        net.0
            .iter()
            .filter(|(_, r)| matches!(r, SyncRequest::Blocks { .. }))
            .count()
    }

    #[test]
    fn a_header_chain_below_the_minimum_chain_work_is_not_downloaded() {
        let (params, blocks) = chain(5);
        let work_of = status_work;
        // Default (devnet, regtest): zero, so any chain with more work than ours is fetched.
        assert!(round_with_minimum(&blocks, &params, ChainWork::default()) > 0);
        // Exactly the minimum: fetched.
        assert!(round_with_minimum(&blocks, &params, work_of(5)) > 0);
        // One block's work short of the minimum: headers checked, no body asked for.
        assert_eq!(round_with_minimum(&blocks, &params, work_of(6)), 0);
        // A status claim below the minimum: not even asked for headers.
        let mut sync: SyncManager<usize> =
            SyncManager::new(genesis_tip(&params), params.max_block_size).with_min_chain_work(work_of(100));
        let mut net = Recorder::default();
        let p = PeerId::random();
        sync.on_peer_ready(p, &mut net);
        sync.on_response(0, p, status(5), &mut net);
        assert!(!net.0.iter().any(|(_, r)| matches!(r, SyncRequest::Headers { .. })));
    }

    #[test]
    fn a_peer_serving_a_different_block_is_penalised_and_the_block_refetched() {
        let (params, blocks) = chain(2);
        let mut sync: SyncManager<usize> = SyncManager::new(genesis_tip(&params), params.max_block_size);
        let mut net = Recorder::default();
        let p = PeerId::random();
        sync.on_peer_ready(p, &mut net);
        sync.on_response(0, p, status(2), &mut net);
        let missing: Vec<Hash256> = blocks.iter().map(Block::hash).collect();
        sync.on_response(
            1,
            p,
            SyncResponse::Headers(blocks.iter().map(|b| b.header).collect()),
            &mut net,
        );
        let _ = sync.take_outputs();
        sync.on_headers_verdict(
            p,
            HeadersVerdict::Valid {
                missing,
                work: ChainWork::from_bits(0x207f_ffff),
                last_height: Height(2),
            },
            &mut net,
        );
        // The work claim in the verdict is below ours: nothing is fetched.
        assert!(!net.0.iter().any(|(_, r)| matches!(r, SyncRequest::Blocks { .. })));
        let _ = sync.take_outputs();

        // Now with real work: bodies are asked for; a wrong body costs a ban-level penalty.
        sync.on_headers_verdict(p, all_missing(&blocks, 2), &mut net);
        let (id, hashes) = net
            .0
            .iter()
            .enumerate()
            .find_map(|(i, (_, r))| match r {
                SyncRequest::Blocks { hashes } => Some((i, hashes.clone())),
                _ => None,
            })
            .expect("blocks requested");
        let wrong = vec![blocks[1].to_bytes(), blocks[0].to_bytes()];
        sync.on_response(id, p, SyncResponse::Blocks(wrong), &mut net);
        let outs = sync.take_outputs();
        assert!(outs
            .iter()
            .any(|o| matches!(o, SyncOutput::Penalise(peer, Misbehaviour::WrongBlock) if *peer == p)));
        // Re-requested.
        let again = net
            .0
            .iter()
            .skip(id + 1)
            .any(|(_, r)| matches!(r, SyncRequest::Blocks { hashes: h } if h.contains(&hashes[0])));
        assert!(again);
    }
}
