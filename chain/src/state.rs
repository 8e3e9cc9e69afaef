//! The chain state: the block index in memory, fork choice, reorganisations and the best
//! chain's UTXO set in the store. One writer owns it (the node's chain task).
//!
//! Accepting a block: context-free checks → parent lookup (unknown parent → orphan pool) →
//! contextual header checks → body stored, unless nobody asked for the block and its branch
//! has no more work than the tip (then only its header is remembered, in memory: see
//! [`crate::side_headers`]) → the best chain is activated: the stored,
//! not-invalid block with the most cumulative work (first seen wins ties) becomes the tip,
//! disconnecting and connecting blocks one atomic store transaction at a time. A block that
//! fails its spend checks during activation is marked invalid with its descendants, and
//! activation continues with the next best candidate.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::block::{Block, CheckedBlock};
use crate::error::{ChainError, ConsensusError};
use crate::event::ChainEvent;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::invalid::InvalidSet;
use crate::orphan::OrphanPool;
use crate::params::ChainParams;
use crate::pow::{next_bits, ChainWork};
use crate::side_headers::{SideHeader, SideHeaders};
use crate::sig::SigCache;
use crate::store::{BlockStatus, CacheStats, IndexEntry, ReindexReport, Store};
use crate::utxo::{UtxoEntry, UtxoView};
use crate::validation::{
    check_block, check_block_spends, check_header_chain, check_header_contextual, median_time_past, HeaderChainBase,
    HeaderChainStop, HeaderContext, HeadersVerdict,
};

mod invalidate;

/// Seconds since the Unix epoch; injectable so tests control time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// What happened to an accepted block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptStatus {
    /// It is now on the best chain (possibly after a reorganisation).
    Connected,
    /// Stored on a side branch with less work than the tip.
    SideBranch,
    /// Already known (stored, waiting as an orphan, or a remembered side header).
    AlreadyKnown,
    /// Not requested, and its branch has no more work than the tip: its header passed the
    /// checks and is remembered in memory; the body was not stored (and must not be relayed).
    HeaderOnly,
    /// Its parent is unknown; held in the orphan pool. `missing` is the block to fetch.
    Orphan {
        /// The block to fetch: the missing ancestor.
        missing: Hash256,
    },
    /// Stored, but found invalid when the chain tried to connect it.
    Invalid {
        /// The broken rule.
        rule: ConsensusError,
    },
}

/// The result of [`ChainState::accept_block`].
#[derive(Clone, Debug)]
pub struct AcceptOutcome {
    /// The block's hash.
    pub hash: Hash256,
    /// What happened to it.
    pub status: AcceptStatus,
    /// Best-chain changes, in order (including those caused by orphans it unlocked).
    pub events: Vec<ChainEvent>,
}

/// What [`ChainState::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blocks re-validated (including genesis).
    pub blocks: u64,
    /// Transactions re-validated.
    pub transactions: u64,
    /// Unspent outputs, equal in the store and in the rebuilt set.
    pub utxos: u64,
}

/// The chain state. See the module doc.
pub struct ChainState {
    params: ChainParams,
    genesis: Hash256,
    store: Store,
    index: HashMap<Hash256, IndexEntry>,
    children: HashMap<Hash256, Vec<Hash256>>,
    /// Candidate tips ordered by (work, earliest arrival): every stored, not-invalid block.
    candidates: BTreeSet<(ChainWork, Reverse<u64>, Hash256)>,
    best: Vec<Hash256>,
    next_seq: u64,
    orphans: OrphanPool,
    clock: Clock,
    /// Rules broken by blocks marked invalid during the current activation.
    invalid_rules: HashMap<Hash256, ConsensusError>,
    /// Blocks whose header broke a rule: in memory only, bounded.
    invalid: InvalidSet,
    /// Headers of unrequested side-branch blocks whose bodies were not stored.
    side_headers: SideHeaders,
    /// Signatures already verified (by the mempool), skipped when connecting blocks.
    sig_cache: Arc<Mutex<SigCache>>,
    /// Workers for signature checks; `None` uses rayon's global pool (one thread per core,
    /// or the pool of a caller running inside `ThreadPool::install`).
    verify_pool: Option<Arc<rayon::ThreadPool>>,
    /// Seconds between flushes of the store's write-back cache by [`ChainState::flush_if_due`].
    flush_interval: u64,
    /// When the cache was last flushed by this handle (clock seconds).
    last_flush: AtomicU64,
}

/// Entries of the signature cache (32 bytes each, 6.1 MiB in all: `SigCache::heap_bytes`):
/// room for a full mempool.
pub const SIG_CACHE_ENTRIES: usize = 200_000;

/// Default seconds between time-driven flushes of the write-back cache: a kill then costs at
/// most a minute of blocks to connect again at restart (from blocks already on disk).
pub const DEFAULT_FLUSH_INTERVAL_SECS: u64 = 60;

impl ChainState {
    /// Opens the chain at `path` with the system clock.
    pub fn open(path: &Path, params: ChainParams) -> Result<ChainState, ChainError> {
        ChainState::open_with_clock(path, params, system_clock())
    }

    /// Opens the chain at `path`, creating genesis if new; finishes any reorganisation a
    /// crash interrupted.
    pub fn open_with_clock(path: &Path, params: ChainParams, clock: Clock) -> Result<ChainState, ChainError> {
        let (store, _fresh) = Store::open(path, &params)?;
        ChainState::from_store(store, params, clock)
    }

    fn from_store(store: Store, params: ChainParams, clock: Clock) -> Result<ChainState, ChainError> {
        let genesis = params.genesis_hash();
        let mut state = ChainState {
            params,
            genesis,
            store,
            index: HashMap::new(),
            children: HashMap::new(),
            candidates: BTreeSet::new(),
            best: Vec::new(),
            next_seq: 1,
            orphans: OrphanPool::default(),
            clock,
            invalid_rules: HashMap::new(),
            invalid: InvalidSet::default(),
            side_headers: SideHeaders::default(),
            sig_cache: Arc::new(Mutex::new(SigCache::new(SIG_CACHE_ENTRIES))),
            verify_pool: None,
            flush_interval: DEFAULT_FLUSH_INTERVAL_SECS,
            last_flush: AtomicU64::new(0),
        };
        state.last_flush.store(state.now(), Ordering::Relaxed);
        for (hash, entry) in state.store.load_index()? {
            state.next_seq = state.next_seq.max(entry.seq + 1);
            state.insert_index(hash, entry);
        }
        state.best = state.store.load_best_chain()?;
        let tip = state.store.tip()?;
        if state.best.first() != Some(&genesis) || tip.as_ref() != state.best.last() {
            return Err(ChainError::Corrupt(
                "best chain does not run from genesis to the stored tip".into(),
            ));
        }
        // A kill during a reorganisation, or before the write-back cache was flushed, leaves a
        // consistent but not-best tip (the last flush's) and the later blocks stored: connect
        // them again now.
        let flushed = state.height();
        // A kill between `invalidateblock`'s status write and its flush leaves the tip on
        // a block the index calls invalid: step back off it first.
        state.leave_invalid_tip()?;
        state.activate_best_chain(None)?;
        if state.height() != flushed {
            tracing::info!(
                from = flushed.0,
                to = state.height().0,
                "connected the stored blocks after the last flushed tip"
            );
        }
        Ok(state)
    }

    /// Rebuilds the chain at `path` from its stored block bodies (`lode chain reindex`): the
    /// block index from the bodies, then the UTXO set, undo data, tx and address indexes and
    /// the best chain by connecting every block again from genesis, each re-validated. Bodies
    /// are never removed; unreadable ones are counted and left out. The store must exist
    /// and be openable by sled (if it is not, only a resync from peers helps).
    pub fn reindex(path: &Path, params: ChainParams) -> Result<(ChainState, ReindexReport), ChainError> {
        if !path.is_dir() {
            return Err(ChainError::Unopenable {
                path: path.display().to_string(),
                reason: "no chain store there".into(),
            });
        }
        let (store, _fresh) = Store::open(path, &params)?;
        let mut report = store.reset_from_bodies(&params)?;
        // The same handle: sled frees its lock only some time after a drop.
        let state = ChainState::from_store(store, params, system_clock())?;
        state.flush()?;
        report.height = state.height().0;
        report.tip = state.tip_hash();
        tracing::info!(
            blocks = report.blocks,
            unreadable = report.unreadable,
            unlinked = report.unlinked,
            height = report.height,
            "reindexed the chain from its stored blocks"
        );
        Ok((state, report))
    }

    /// Runs the signature checks of blocks on `threads` workers of a pool of this chain's own
    /// (`None`: rayon's global pool, one worker per core, the default). Verdicts and the
    /// error reported for a block do not depend on it; tests use it to prove that.
    pub fn set_verify_threads(&mut self, threads: Option<usize>) -> Result<(), rayon::ThreadPoolBuildError> {
        self.verify_pool = match threads {
            None => None,
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .thread_name(|i| format!("lode-verify-{i}"))
                    .build()?,
            )),
        };
        Ok(())
    }

    /// Runs `f` (signature checks inside) on the chain's verify pool if it has one.
    fn on_verify_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.verify_pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn insert_index(&mut self, hash: Hash256, entry: IndexEntry) {
        if entry.height != Height::GENESIS {
            let siblings = self.children.entry(entry.header.prev_hash).or_default();
            if !siblings.contains(&hash) {
                siblings.push(hash);
            }
        }
        if !entry.status.is_invalid() {
            self.candidates.insert((entry.work(), Reverse(entry.seq), hash));
        }
        self.index.insert(hash, entry);
    }

    /// Network parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Genesis hash.
    pub fn genesis_hash(&self) -> Hash256 {
        self.genesis
    }

    /// The store (read access for RPC and wallets).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tip hash.
    pub fn tip_hash(&self) -> Hash256 {
        // `best` always holds genesis at least (checked at open).
        self.best.last().copied().unwrap_or(self.genesis)
    }

    /// Tip height.
    pub fn height(&self) -> Height {
        Height(self.best.len().saturating_sub(1) as u32)
    }

    /// Tip index entry.
    pub fn tip_entry(&self) -> &IndexEntry {
        &self.index[&self.tip_hash()]
    }

    /// Best-chain block hash at `height`.
    pub fn hash_at(&self, height: Height) -> Option<Hash256> {
        self.best.get(height.0 as usize).copied()
    }

    /// Index entry of any known block.
    pub fn entry(&self, hash: &Hash256) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// True if the block is on the best chain.
    pub fn is_on_best_chain(&self, hash: &Hash256) -> bool {
        self.index
            .get(hash)
            .is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    /// A stored block.
    pub fn block(&self, hash: &Hash256) -> Result<Option<Block>, ChainError> {
        self.store.block(hash)
    }

    /// Orphan blocks held.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// The node's clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The header at `height` on the branch ending at `from`.
    pub fn ancestor(&self, from: &Hash256, height: Height) -> Option<BlockHeader> {
        let mut cur = *from;
        loop {
            let e = self.index.get(&cur)?;
            if e.height < height {
                return None;
            }
            if e.height == height {
                return Some(e.header);
            }
            // Once on the best chain, jump straight to the height.
            if self.hash_at(e.height) == Some(cur) {
                return self.hash_at(height).and_then(|h| self.index.get(&h)).map(|e| e.header);
            }
            cur = e.header.prev_hash;
        }
    }

    fn header_context<'a>(
        &'a self,
        parent: &'a IndexEntry,
        lookup: &'a dyn Fn(Height) -> Option<BlockHeader>,
    ) -> HeaderContext<'a> {
        HeaderContext {
            parent_height: parent.height,
            parent: &parent.header,
            ancestor: lookup,
        }
    }

    /// Median time past of the tip (a new block's time must exceed it).
    pub fn tip_median_time_past(&self) -> u32 {
        let tip = self.tip_hash();
        let entry = self.tip_entry();
        let lookup = |h: Height| self.ancestor(&tip, h);
        median_time_past(&self.header_context(entry, &lookup))
    }

    /// Bits the next block on the tip must carry.
    pub fn next_bits(&self) -> Result<u32, ConsensusError> {
        self.next_bits_on(&self.tip_hash())
    }

    /// Bits a block on `parent` (any known block) must carry.
    pub fn next_bits_on(&self, parent: &Hash256) -> Result<u32, ConsensusError> {
        let entry = self.index.get(parent).ok_or(ConsensusError::UnknownParent(*parent))?;
        let lookup = |h: Height| self.ancestor(parent, h);
        next_bits(&self.params, entry.height, &entry.header, &lookup)
    }

    /// Headers-first: checks a batch of headers from a peer before any body is asked for —
    /// linkage, proof of work and the contextual header rules ([`check_header_chain`]) on
    /// top of the first header's parent, which must be indexed. A header too far ahead of
    /// the clock ends the batch without condemning it; an indexed header known to be invalid
    /// condemns it. An empty batch is valid and ends at the tip.
    pub fn check_header_batch(&self, headers: &[BlockHeader]) -> HeadersVerdict {
        let Some(first) = headers.first() else {
            return HeadersVerdict::Valid {
                missing: Vec::new(),
                work: self.tip_entry().work(),
                last_height: self.height(),
            };
        };
        let base_hash = first.prev_hash;
        let Some(entry) = self.index.get(&base_hash) else {
            return HeadersVerdict::Unconnected;
        };
        let base = HeaderChainBase {
            hash: base_hash,
            height: entry.height,
            header: entry.header,
            work: entry.work(),
        };
        let ancestors = |h: Height| self.ancestor(&base_hash, h);
        let outcome = check_header_chain(&self.params, &base, &ancestors, self.now(), headers);
        let mut missing = Vec::new();
        // Every indexed block has its body; an indexed invalid one condemns the batch, at
        // its own position (before any later rule the batch breaks).
        for (index, header) in outcome.checked.iter().enumerate() {
            if self.invalid.contains(&header.hash) {
                return HeadersVerdict::Invalid {
                    index,
                    reason: ConsensusError::KnownInvalid(header.hash),
                };
            }
            match self.index.get(&header.hash) {
                Some(e) if e.status.is_invalid() => {
                    return HeadersVerdict::Invalid {
                        index,
                        reason: ConsensusError::KnownInvalid(header.hash),
                    }
                }
                Some(_) => {}
                None => missing.push(header.hash),
            }
        }
        match outcome.stop {
            Some(HeaderChainStop::Invalid { index, rule }) => HeadersVerdict::Invalid { index, reason: rule },
            Some(HeaderChainStop::TooNew { .. }) | None => HeadersVerdict::Valid {
                missing,
                work: outcome.work,
                last_height: outcome.checked.last().map_or(base.height, |h| h.height),
            },
        }
    }

    /// Block locator of the best chain: dense for the last 10, then exponentially sparser,
    /// ending at genesis (Bitcoin's `GetLocator`).
    pub fn locator(&self) -> Vec<Hash256> {
        let mut out = Vec::new();
        let mut h = self.best.len() as i64 - 1;
        let mut step = 1i64;
        while h > 0 {
            out.push(self.best[h as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            h -= step;
        }
        out.push(self.genesis);
        out
    }

    /// Best-chain headers after the first locator hash found on the best chain, at most
    /// `max`, stopping after `stop` if given.
    pub fn headers_after(&self, locator: &[Hash256], max: usize, stop: Option<Hash256>) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find_map(|h| {
                self.index
                    .get(h)
                    .filter(|e| self.hash_at(e.height) == Some(*h))
                    .map(|e| e.height.0 + 1)
            })
            .unwrap_or(1);
        let mut out = Vec::new();
        for h in (start as usize)..self.best.len() {
            if out.len() >= max {
                break;
            }
            let hash = self.best[h];
            out.push(self.index[&hash].header);
            if Some(hash) == stop {
                break;
            }
        }
        out
    }

    /// Accepts a block that was asked for (a sync download, the miner, RPC): validates it,
    /// stores it, and moves the best chain if it now has the most work. Errors are rejections
    /// before storage (the sender broke a rule, or storage failed); see [`AcceptStatus`] for
    /// the rest.
    pub fn accept_block(&mut self, block: Arc<Block>) -> Result<AcceptOutcome, ChainError> {
        self.accept_block_as(block, true)
    }

    /// Accepts a block nobody asked for (gossip): as [`ChainState::accept_block`], except
    /// that it is stored only if its branch then has more work than the tip (Bitcoin Core's
    /// rule for unrequested blocks). Otherwise its header is checked and remembered in
    /// memory and the status is [`AcceptStatus::HeaderOnly`]; if the branch later wins on
    /// work, sync fetches the bodies as requested blocks.
    pub fn accept_unrequested_block(&mut self, block: Arc<Block>) -> Result<AcceptOutcome, ChainError> {
        self.accept_block_as(block, false)
    }

    fn accept_block_as(&mut self, block: Arc<Block>, requested: bool) -> Result<AcceptOutcome, ChainError> {
        let hash = block.hash();
        let mut outcome = self.accept_one(block, requested)?;
        // Blocks waiting for this one can now be tried, breadth first. They came unasked
        // (orphans are gossip), so they are stored only if their branch wins on work.
        let mut ready = vec![hash];
        while let Some(parent) = ready.pop() {
            for child in self.orphans.take_children(&parent) {
                let child_hash = child.hash();
                match self.accept_one(child, false) {
                    Ok(o) => {
                        outcome.events.extend(o.events);
                        ready.push(child_hash);
                    }
                    Err(e) => tracing::debug!(block = %child_hash, error = %e, "orphan rejected"),
                }
            }
        }
        self.side_headers.prune(self.height());
        // Bound what a kill costs even when nothing calls flush_if_due: while blocks arrive,
        // the cache is flushed once per interval. A failed flush keeps the cache (the next
        // one retries), and the block is accepted either way: report it, do not fail it.
        if let Err(e) = self.flush_if_due(self.now()) {
            tracing::warn!(error = %e, "flushing the chain store's cache failed");
        }
        Ok(outcome)
    }

    /// Side-branch headers remembered without their bodies.
    pub fn side_header_count(&self) -> usize {
        self.side_headers.len()
    }

    /// Blocks remembered (in memory) as invalid by their header.
    pub fn invalid_header_count(&self) -> usize {
        self.invalid.len()
    }

    fn accept_one(&mut self, block: Arc<Block>, requested: bool) -> Result<AcceptOutcome, ChainError> {
        let hash = block.hash();
        let done = |status| {
            Ok(AcceptOutcome {
                hash,
                status,
                events: Vec::new(),
            })
        };
        if self.invalid.contains(&hash) {
            return Err(ChainError::InvalidBlock {
                hash,
                rule: ConsensusError::KnownInvalid(hash),
            });
        }
        if let Some(entry) = self.index.get(&hash) {
            if entry.status.is_invalid() {
                return Err(ChainError::InvalidBlock {
                    hash,
                    rule: ConsensusError::InvalidParent(hash),
                });
            }
            return done(AcceptStatus::AlreadyKnown);
        }
        if self.orphans.contains(&hash) || (!requested && self.side_headers.get(&hash).is_some()) {
            return done(AcceptStatus::AlreadyKnown);
        }
        if hash == self.genesis {
            return done(AcceptStatus::AlreadyKnown);
        }
        let checked = check_block(block, &self.params).map_err(|rule| ChainError::InvalidBlock { hash, rule })?;
        let prev = checked.header().prev_hash;
        if self.invalid.contains(&prev) {
            self.invalid.insert(hash);
            return Err(ChainError::InvalidBlock {
                hash,
                rule: ConsensusError::InvalidParent(prev),
            });
        }
        let Some(parent) = self.index.get(&prev).copied() else {
            // Unknown parent, or a side header whose body was not stored: held (bounded)
            // until it arrives; the caller's sync fetches the branch if it has more work.
            let size = checked.size();
            self.orphans.insert(hash, checked.block().clone(), size);
            let missing = self.orphans.missing_root(&hash).unwrap_or(prev);
            return done(AcceptStatus::Orphan { missing });
        };
        if parent.status.is_invalid() {
            self.invalid.insert(hash);
            return Err(ChainError::InvalidBlock {
                hash,
                rule: ConsensusError::InvalidParent(prev),
            });
        }
        let now = self.now();
        let header_result = {
            let lookup = |h: Height| self.ancestor(&prev, h);
            check_header_contextual(
                &self.params,
                checked.header(),
                &self.header_context(&parent, &lookup),
                now,
            )
        };
        if let Err(rule) = header_result {
            // A block from the future may become valid later: do not remember it as invalid.
            if !matches!(rule, ConsensusError::TimeTooNew { .. }) {
                self.invalid.insert(hash);
            }
            return Err(ChainError::InvalidBlock { hash, rule });
        }
        let height = Height(parent.height.0 + 1);
        let work = parent
            .work()
            .saturating_add(ChainWork::from_bits(checked.header().bits));
        if !requested && work <= self.tip_entry().work() {
            // Nobody asked for it and it does not beat the tip: keep the header, not the body.
            self.side_headers.insert(
                hash,
                SideHeader {
                    header: *checked.header(),
                    height,
                    work,
                },
            );
            return done(AcceptStatus::HeaderOnly);
        }
        self.side_headers.remove(&hash);
        let entry = IndexEntry {
            header: *checked.header(),
            height,
            chain_work: work.to_be_bytes(),
            status: BlockStatus::Stored,
            seq: self.take_seq(),
        };
        self.store.put_block(&hash, checked.block(), &entry)?;
        self.insert_index(hash, entry);
        self.invalid_rules.clear();
        let events = self.activate_best_chain(Some(&checked))?;
        let status = match self.index.get(&hash).map(|e| e.status) {
            Some(s) if s.is_invalid() => AcceptStatus::Invalid {
                rule: self
                    .invalid_rules
                    .remove(&hash)
                    .unwrap_or(ConsensusError::InvalidParent(prev)),
            },
            _ if self.is_on_best_chain(&hash) => AcceptStatus::Connected,
            _ => AcceptStatus::SideBranch,
        };
        Ok(AcceptOutcome { hash, status, events })
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }
}

impl ChainState {
    /// Makes the best candidate the tip. `fresh` is the block just accepted (already checked,
    /// saving a re-hash when it is connected).
    fn activate_best_chain(&mut self, fresh: Option<&CheckedBlock>) -> Result<Vec<ChainEvent>, ChainError> {
        let mut events = Vec::new();
        while let Some(&(work, _, candidate)) = self.candidates.iter().next_back() {
            let tip = self.tip_hash();
            // The best candidate by (work, first seen) is the tip's rightful place. Equal
            // work with an earlier arrival only happens after a branch failed part-way
            // through a reorganisation: then the tip the node had first comes back.
            if candidate == tip || work < self.tip_entry().work() {
                break;
            }
            // Path from the fork point up to the candidate.
            let mut path = Vec::new();
            let mut cur = candidate;
            while !self.is_on_best_chain(&cur) {
                path.push(cur);
                cur = match self.index.get(&cur) {
                    Some(e) => e.header.prev_hash,
                    None => {
                        return Err(ChainError::Corrupt(format!(
                            "block index misses an ancestor of {candidate}"
                        )))
                    }
                };
            }
            path.reverse();
            let fork = cur;
            let fork_height = self.index[&fork].height;
            let mut disconnected = Vec::new();
            while self.tip_hash() != fork {
                let (hash, ev) = self.disconnect_tip()?;
                disconnected.push(hash);
                events.push(ev);
            }
            let mut connected = Vec::new();
            for hash in path {
                match self.connect_block(hash, fresh)? {
                    Some(ev) => {
                        connected.push(hash);
                        events.push(ev);
                    }
                    // Invalid: marked with its descendants; choose again.
                    None => break,
                }
            }
            if !disconnected.is_empty() {
                events.push(ChainEvent::Reorg {
                    fork_height,
                    old_tip: tip,
                    new_tip: self.tip_hash(),
                    disconnected,
                    connected,
                });
            }
        }
        Ok(events)
    }

    /// Validates the spends of the child of the tip `hash` and connects it. `Ok(None)` if it
    /// broke a rule (it and its descendants are then marked invalid).
    fn connect_block(&mut self, hash: Hash256, fresh: Option<&CheckedBlock>) -> Result<Option<ChainEvent>, ChainError> {
        let checked = match fresh.filter(|c| c.hash() == hash) {
            Some(c) => c.clone(),
            None => {
                let block = self
                    .store
                    .block(&hash)?
                    .ok_or_else(|| ChainError::Corrupt(format!("body of {hash} missing")))?;
                // Re-check: cheap next to the spend checks, and the store is not trusted blindly.
                check_block(Arc::new(block), &self.params)
                    .map_err(|rule| ChainError::Corrupt(format!("stored block {hash} fails {rule}")))?
            }
        };
        let mut entry = self.index[&hash];
        let spends = {
            // A poisoned lock only means another thread panicked mid-insert; the cache holds
            // verified triples only, so its contents are still sound.
            let cache = self.sig_cache.lock().unwrap_or_else(|e| e.into_inner());
            let (store, params, genesis) = (&self.store, &self.params, &self.genesis);
            self.on_verify_pool(|| {
                let view = Prefetched::new(&checked, store)?;
                check_block_spends(&checked, entry.height, &view, params, genesis, Some(&cache))
            })
        };
        let spends = match spends {
            Ok(s) => s,
            Err(ChainError::InvalidBlock { rule, .. }) => {
                tracing::warn!(block = %hash, %rule, "block failed validation while connecting");
                self.mark_invalid(hash, BlockStatus::Invalid, Some(rule))?;
                return Ok(None);
            }
            Err(other) => return Err(other),
        };
        entry.status = BlockStatus::Valid;
        self.store
            .connect(&hash, entry.height, checked.block(), checked.txids(), &spends, &entry)?;
        self.index.insert(hash, entry);
        self.best.push(hash);
        Ok(Some(ChainEvent::BlockConnected {
            hash,
            height: entry.height,
            block: checked.block().clone(),
        }))
    }

    fn disconnect_tip(&mut self) -> Result<(Hash256, ChainEvent), ChainError> {
        let hash = self.tip_hash();
        let entry = self.index[&hash];
        if entry.height == Height::GENESIS {
            return Err(ChainError::Corrupt("attempt to disconnect genesis".into()));
        }
        let block = self
            .store
            .block(&hash)?
            .ok_or_else(|| ChainError::Corrupt(format!("body of {hash} missing")))?;
        let txids = block.txids();
        self.store
            .disconnect(&hash, entry.height, &block, &txids, &entry.header.prev_hash)?;
        self.best.pop();
        Ok((
            hash,
            ChainEvent::BlockDisconnected {
                hash,
                height: entry.height,
                block: Arc::new(block),
            },
        ))
    }

    /// Marks `hash` with `status` (invalid, or invalidated by the operator) and every stored
    /// descendant invalid-by-ancestry.
    fn mark_invalid(
        &mut self,
        hash: Hash256,
        status: BlockStatus,
        rule: Option<ConsensusError>,
    ) -> Result<(), ChainError> {
        let mut updates = Vec::new();
        let mut stack = vec![(hash, status)];
        while let Some((h, status)) = stack.pop() {
            if let Some(mut e) = self.index.get(&h).copied() {
                self.candidates.remove(&(e.work(), Reverse(e.seq), h));
                e.status = status;
                self.index.insert(h, e);
                updates.push((h, e));
                if let Some(rule) = &rule {
                    self.invalid_rules.entry(h).or_insert_with(|| rule.clone());
                }
            }
            for child in self.children.get(&h).cloned().unwrap_or_default() {
                stack.push((child, BlockStatus::InvalidAncestor));
            }
        }
        self.store.put_index_entries(&updates)
    }

    /// Re-checks the stored best chain from genesis: every block's context-free, header and
    /// spend rules against a UTXO set rebuilt from scratch in memory, its undo data, and
    /// finally that the rebuilt set equals the stored one.
    pub fn verify(&self) -> Result<VerifyReport, ChainError> {
        let fail = |height: Height, reason: String| ChainError::VerifyFailed {
            height: height.0,
            reason,
        };
        let mut utxos: HashMap<crate::transaction::OutPoint, UtxoEntry> = HashMap::new();
        let mut report = VerifyReport {
            blocks: 0,
            transactions: 0,
            utxos: 0,
        };
        let now = u64::MAX / 2;
        for (h, hash) in self.best.iter().enumerate() {
            let height = Height(h as u32);
            let block = self
                .store
                .block(hash)?
                .ok_or_else(|| fail(height, format!("body of {hash} missing")))?;
            if block.hash() != *hash {
                return Err(fail(
                    height,
                    format!("stored body hashes to {}, index says {hash}", block.hash()),
                ));
            }
            report.blocks += 1;
            report.transactions += block.transactions.len() as u64;
            if height == Height::GENESIS {
                if block != self.params.genesis_block() {
                    return Err(fail(height, "genesis differs from the network's".into()));
                }
                let txid = block.transactions[0].txid();
                for (i, out) in block.transactions[0].outputs.iter().enumerate() {
                    let op = crate::transaction::OutPoint { txid, index: i as u32 };
                    utxos.insert(
                        op,
                        UtxoEntry {
                            output: *out,
                            height,
                            is_coinbase: false,
                        },
                    );
                }
                continue;
            }
            let checked = check_block(Arc::new(block), &self.params).map_err(|e| fail(height, e.to_string()))?;
            let parent = self
                .index
                .get(&checked.header().prev_hash)
                .copied()
                .ok_or_else(|| fail(height, "parent not indexed".into()))?;
            if self.best[h - 1] != checked.header().prev_hash {
                return Err(fail(height, "does not link to the previous best block".into()));
            }
            {
                let prev = checked.header().prev_hash;
                let lookup = |hh: Height| self.ancestor(&prev, hh);
                check_header_contextual(
                    &self.params,
                    checked.header(),
                    &self.header_context(&parent, &lookup),
                    now,
                )
                .map_err(|e| fail(height, e.to_string()))?;
            }
            let (params, genesis) = (&self.params, &self.genesis);
            let spends = self
                .on_verify_pool(|| check_block_spends(&checked, height, &utxos, params, genesis, None))
                .map_err(|e| fail(height, e.to_string()))?;
            let stored_undo = self.store.undo(hash)?;
            if stored_undo != spends.inputs {
                return Err(fail(height, "stored undo data differs from the block's spends".into()));
            }
            for (op, _) in &spends.inputs {
                utxos.remove(op);
            }
            for (op, entry) in &spends.created {
                utxos.insert(*op, *entry);
            }
        }
        let tip_height = self.height();
        let mut stored = 0u64;
        for item in self.store.utxo_iter() {
            let (op, entry) = item?;
            stored += 1;
            if utxos.get(&op) != Some(&entry) {
                return Err(fail(
                    tip_height,
                    format!("stored utxo {}:{} is not in the rebuilt set", op.txid, op.index),
                ));
            }
        }
        if stored != utxos.len() as u64 {
            return Err(fail(
                tip_height,
                format!("store has {stored} utxos, rebuilt set has {}", utxos.len()),
            ));
        }
        report.utxos = stored;
        Ok(report)
    }

    /// An unspent output of the best chain.
    pub fn utxo(&self, outpoint: &crate::transaction::OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        self.store.utxo(outpoint)
    }

    /// Checks a block template on the tip with the same consensus code as any block, except
    /// proof of work: every context-free rule, the header rules (bits, time) and every spend.
    /// Returns the total fees.
    pub fn check_template(&self, block: &Block) -> Result<crate::amount::Amount, ChainError> {
        let hash = block.hash();
        let invalid = |rule| ChainError::InvalidBlock { hash, rule };
        let tip = self.tip_hash();
        if block.header.prev_hash != tip {
            return Err(invalid(ConsensusError::UnknownParent(block.header.prev_hash)));
        }
        let checked = crate::validation::check_block_unmined(Arc::new(block.clone()), &self.params).map_err(invalid)?;
        let parent = self.tip_entry();
        {
            let lookup = |h: Height| self.ancestor(&tip, h);
            check_header_contextual(
                &self.params,
                checked.header(),
                &self.header_context(parent, &lookup),
                self.now(),
            )
            .map_err(invalid)?;
        }
        let cache = self.sig_cache.lock().unwrap_or_else(|e| e.into_inner());
        let (store, params, genesis) = (&self.store, &self.params, &self.genesis);
        let height = Height(parent.height.0 + 1);
        let spends = self.on_verify_pool(|| {
            let view = Prefetched::new(&checked, store)?;
            check_block_spends(&checked, height, &view, params, genesis, Some(&cache))
        })?;
        Ok(spends.fees)
    }

    /// The signature cache shared with the mempool: signatures verified there are not
    /// verified again when their block connects.
    pub fn sig_cache(&self) -> &Arc<Mutex<SigCache>> {
        &self.sig_cache
    }

    /// Makes every block stored so far durable (sled synced) without flushing the
    /// write-back cache: a kill after this reopens with those blocks and connects them
    /// again (the acknowledgement point of ADR 0011; group it, it costs an fsync).
    pub fn sync_stored(&self) -> Result<(), ChainError> {
        self.store.sync()
    }

    /// Writes the store's write-back cache to disk as one transaction and syncs it (call at
    /// shutdown; also done when the cache passes its budget and by
    /// [`ChainState::flush_if_due`]). After it returns, a kill reopens at this tip or later.
    pub fn flush(&self) -> Result<(), ChainError> {
        self.store.flush()?;
        self.last_flush.store(self.now(), Ordering::Relaxed);
        Ok(())
    }

    /// Flushes if [`ChainState::set_flush_interval`] seconds have passed since the last
    /// flush by this handle and something is pending. [`ChainState::accept_block`] calls it
    /// after every block; the node's periodic tick calls it for quiet periods. Returns
    /// whether it flushed.
    pub fn flush_if_due(&self, now: u64) -> Result<bool, ChainError> {
        let last = self.last_flush.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.flush_interval {
            return Ok(false);
        }
        if self.store.cache_stats().entries == 0 {
            self.last_flush.store(now, Ordering::Relaxed);
            return Ok(false);
        }
        self.store.flush()?;
        self.last_flush.store(now, Ordering::Relaxed);
        Ok(true)
    }

    /// Sets the write-back cache budget in bytes (`--dbcache` MB × 2^20): connects and
    /// disconnects stay in memory until their pending writes pass it, then go to disk in one
    /// transaction. 0 writes every block at once. Default [`crate::store::DEFAULT_CACHE_BYTES`].
    pub fn set_cache_budget(&self, bytes: usize) {
        self.store.set_cache_budget(bytes);
    }

    /// Sets the seconds between time-driven flushes (see [`ChainState::flush_if_due`]).
    pub fn set_flush_interval(&mut self, secs: u64) {
        self.flush_interval = secs;
    }

    /// How full the write-back cache is (for metrics and logs).
    pub fn cache_stats(&self) -> CacheStats {
        self.store.cache_stats()
    }
}

impl Drop for ChainState {
    /// A clean close flushes the cache, so dropping the state loses nothing; a failure here
    /// only costs re-connecting the unflushed blocks at the next open.
    fn drop(&mut self) {
        // A directory already removed (a test's temp dir dropped first) cannot take the
        // writes, and sled waits forever on a failed flush: skip it, as a kill would.
        if !self.store.path().exists() {
            return;
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "flushing the chain store on close failed");
        }
    }
}

/// The store's answers for every outpoint a block spends, looked up in parallel on the
/// verify pool before the (sequential) spend checks: each lookup is an independent read of
/// the same state, so the answers are exactly those the checks would have read one by one,
/// and on an idle second core the lookups no longer wait on each other.
struct Prefetched<'a> {
    found: HashMap<crate::transaction::OutPoint, Option<UtxoEntry>>,
    store: &'a Store,
}

impl<'a> Prefetched<'a> {
    fn new(block: &CheckedBlock, store: &'a Store) -> Result<Prefetched<'a>, ChainError> {
        use rayon::prelude::*;
        let outpoints: Vec<_> = block.block().transactions[1..]
            .iter()
            .flat_map(|tx| tx.inputs.iter().map(|i| i.prev_out))
            .collect();
        // Written in place into one vector sized up front: collecting into a map or a
        // `Result` on the pool grows a vector per worker by reallocation, which on a heap
        // full of freed store pages cost more than the lookups themselves (BENCHMARKS.md).
        let mut answers = Vec::with_capacity(outpoints.len());
        outpoints
            .par_iter()
            .with_min_len(64)
            .map(|op| store.utxo(op))
            .collect_into_vec(&mut answers);
        let mut found = HashMap::with_capacity(outpoints.len());
        for (op, answer) in outpoints.into_iter().zip(answers) {
            found.insert(op, answer?);
        }
        Ok(Prefetched { found, store })
    }
}

impl UtxoView for Prefetched<'_> {
    fn utxo(&self, outpoint: &crate::transaction::OutPoint) -> Result<Option<UtxoEntry>, ChainError> {
        match self.found.get(outpoint) {
            Some(entry) => Ok(*entry),
            None => self.store.utxo(outpoint),
        }
    }
}
