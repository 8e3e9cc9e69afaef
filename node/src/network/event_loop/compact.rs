//! Compact blocks in the event loop: publishing our blocks compactly, rebuilding a peer's
//! compact block from the mempool, fetching what is missing (`getblocktxn`) or the whole
//! block, and serving `getblocktxn`. The gossip message is held (neither forwarded nor
//! dropped) until the rebuilt block's verdict, exactly like a full block's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::FutureExt;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use lode_chain::{Block, Hash256};

use super::{Completion, EventLoop};
use crate::network::compact::{
    pick_txs, CompactBlock, CompactCounts, CompactError, CompactStats, PartialBlock, MAX_BLOCKTXN_INDEXES,
};
use crate::network::gossip::TopicKind;
use crate::network::peers::Misbehaviour;
use crate::network::protocol::{RequestFrame, SyncRequest, SyncResponse, BLOCKS_RESPONSE_BUDGET};

/// `getblocktxn` requests that may time out in a row before the full block is asked for: a
/// timeout says the link is slow or busy, and the full block is the largest thing to ask
/// a slow link for.
const TXN_TRIES: u32 = 4;
/// Compact blocks rebuilt at once; more are ignored (sync fetches what gossip drops).
const MAX_REBUILDS: usize = 16;
/// Bytes of transactions in one `blocktxn` answer (at least one transaction is sent): 0.5 s
/// at 1 Mbit/s, and a few seconds on a lossy long path where TCP gets ~25 kB/s, so every
/// answer stays inside the request timeout however large the block.
pub(super) const BLOCKTXN_BUDGET: usize = 64 * 1024;

/// A compact block being rebuilt.
struct Rebuild {
    msg_id: MessageId,
    source: PeerId,
    /// `None` while the mempool match runs on the chain thread.
    partial: Option<PartialBlock>,
}

/// What an outstanding request of ours fetches.
enum Fetch {
    /// Missing transactions: this many were asked for, on this try (0-based).
    Txn(usize, u32),
    /// The whole block.
    Full,
}

/// The event loop's compact-block state; bounded by [`MAX_REBUILDS`].
#[derive(Default)]
pub(super) struct CompactState {
    pub(super) stats: Arc<CompactStats>,
    rebuilds: HashMap<Hash256, Rebuild>,
    requests: HashMap<OutboundRequestId, (Hash256, Fetch)>,
    /// Our last announced block, and the connected peers not yet subscribed to a block
    /// topic when it went out (bounded by connections): a peer's subscription can reach us
    /// after its connection, and a block published in between reaches nobody there. When
    /// such a peer subscribes, the block is announced again.
    last_announced: Option<Arc<Block>>,
    missed: HashSet<PeerId>,
}

impl EventLoop {
    /// Publishes one of our blocks compactly; peers subscribed to full blocks only (another
    /// version) get the full block too.
    pub(super) fn publish_block(&mut self, block: &Arc<Block>) {
        let (full, cmpct) = (self.names.blocks.hash(), self.names.compact.hash());
        let subscribed: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&full) || topics.contains(&&cmpct))
            .map(|(peer, _)| *peer)
            .collect();
        self.compact.missed = self.conns.keys().filter(|p| !subscribed.contains(p)).copied().collect();
        self.compact.last_announced = Some(block.clone());
        self.announce_block(block);
    }

    /// A peer subscribed to a block topic: if it missed our last announcement, announce it
    /// again (a fresh salt makes a fresh gossip message; peers that have it ignore it).
    pub(super) fn on_block_topic_subscribed(&mut self, peer: PeerId) {
        if !self.compact.missed.remove(&peer) {
            return;
        }
        if let Some(block) = self.compact.last_announced.clone() {
            tracing::debug!(%peer, hash = %block.hash(), "announcing our last block again for a late subscriber");
            self.announce_block(&block);
        }
    }

    /// A connection is gone: it no longer waits for an announcement.
    pub(super) fn forget_missed(&mut self, peer: &PeerId) {
        self.compact.missed.remove(peer);
    }

    fn announce_block(&mut self, block: &Block) {
        let compact = CompactBlock::from_block(block, rand::random());
        let bytes = compact.to_bytes();
        let stats = &self.compact.stats;
        CompactStats::bump(&stats.announced, 1);
        CompactStats::bump(&stats.announced_bytes, bytes.len() as u64);
        CompactStats::bump(&stats.announced_block_bytes, block.size() as u64);
        self.publish_quietly(TopicKind::Compact, bytes);
        let (full, cmpct) = (self.names.blocks.hash(), self.names.compact.hash());
        let legacy = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(_, topics)| topics.contains(&&full) && !topics.contains(&&cmpct));
        if legacy {
            self.publish_quietly(TopicKind::Blocks, block.to_bytes());
        }
    }

    /// The compact counters now.
    pub(super) fn compact_counts(&self) -> CompactCounts {
        self.compact.stats.snapshot()
    }

    /// A compact block from gossip: checked (size, structure, proof of work) before any
    /// work is done for it, then matched against the mempool on the chain thread.
    pub(super) fn on_compact(&mut self, source: PeerId, msg_id: MessageId, data: &[u8]) {
        let max = self.params.max_block_size.saturating_add(64 * 1024);
        let compact = match CompactBlock::decode(data, max, &self.params) {
            Ok(c) => c,
            Err(e) => {
                self.report(&msg_id, &source, MessageAcceptance::Reject);
                let what = match e {
                    CompactError::Undecodable(_) => Misbehaviour::Undecodable(e.to_string()),
                    _ => Misbehaviour::InvalidBlock(e.to_string()),
                };
                self.penalise(source, what);
                return;
            }
        };
        let hash = compact.hash();
        if let Err(e) = lode_chain::pow::check_proof_of_work(&hash, compact.header.bits, &self.params.pow_limit()) {
            self.report(&msg_id, &source, MessageAcceptance::Reject);
            self.penalise(source, Misbehaviour::InvalidBlock(format!("compact block: {e}")));
            return;
        }
        CompactStats::bump(&self.compact.stats.received, 1);
        if self.compact.rebuilds.contains_key(&hash) || self.compact.rebuilds.len() >= MAX_REBUILDS {
            self.report(&msg_id, &source, MessageAcceptance::Ignore);
            return;
        }
        let rebuild = Rebuild {
            msg_id,
            source,
            partial: None,
        };
        self.compact.rebuilds.insert(hash, rebuild);
        let partial = match compact.start_rebuild() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%hash, error = %e, "compact block: fetching the full block");
                self.fetch_full(hash);
                return;
            }
        };
        let chain = self.chain.clone();
        self.pending.push(
            async move {
                let result = chain
                    .read(move |v| {
                        let mut partial = partial;
                        let known = v.chain().entry(&partial.hash()).is_some();
                        if let (false, Some(pool)) = (known, v.mempool()) {
                            partial.fill_from(pool.iter().map(|e| (e.txid(), e.tx())));
                        }
                        (known, partial)
                    })
                    .await
                    .ok();
                Completion::CompactMatched { hash, result }
            }
            .boxed(),
        );
    }

    /// The mempool match is back: done, ask for what is missing, or forget a known block.
    pub(super) fn on_compact_matched(&mut self, hash: Hash256, result: Option<(bool, PartialBlock)>) {
        let Some(rebuild) = self.compact.rebuilds.get_mut(&hash) else {
            return;
        };
        match result {
            // Known already, or the chain task is gone.
            Some((true, _)) | None => self.drop_rebuild(hash, MessageAcceptance::Ignore),
            Some((false, partial)) => {
                let complete = partial.missing().is_empty();
                rebuild.partial = Some(partial);
                if complete {
                    CompactStats::bump(&self.compact.stats.rebuilt_from_mempool, 1);
                    self.finish_rebuild(hash);
                } else {
                    self.request_txn(hash, 0);
                }
            }
        }
    }

    fn finish_rebuild(&mut self, hash: Hash256) {
        let done = self
            .compact
            .rebuilds
            .get(&hash)
            .and_then(|r| r.partial.as_ref())
            .map(PartialBlock::finish);
        match done {
            Some(Ok(block)) => self.submit_rebuilt(hash, block),
            Some(Err(e)) => {
                tracing::debug!(%hash, error = %e, "compact block: fetching the full block");
                self.fetch_full(hash);
            }
            None => {}
        }
    }

    fn request_txn(&mut self, hash: Hash256, try_no: u32) {
        let Some(rebuild) = self.compact.rebuilds.get(&hash) else {
            return;
        };
        let mut indexes = rebuild.partial.as_ref().map(PartialBlock::missing).unwrap_or_default();
        indexes.truncate(MAX_BLOCKTXN_INDEXES);
        let asked = indexes.len();
        let source = rebuild.source;
        let id = self.swarm.behaviour_mut().sync.send_request(
            &source,
            RequestFrame::Request(SyncRequest::BlockTxn { block: hash, indexes }),
        );
        self.compact.requests.insert(id, (hash, Fetch::Txn(asked, try_no)));
        CompactStats::bump(&self.compact.stats.txn_requests, 1);
    }

    fn fetch_full(&mut self, hash: Hash256) {
        let Some(rebuild) = self.compact.rebuilds.get(&hash) else {
            return;
        };
        let source = rebuild.source;
        let id = self.swarm.behaviour_mut().sync.send_request(
            &source,
            RequestFrame::Request(SyncRequest::Blocks { hashes: vec![hash] }),
        );
        self.compact.requests.insert(id, (hash, Fetch::Full));
        CompactStats::bump(&self.compact.stats.full_fallbacks, 1);
    }

    /// Hands a rebuilt block to the chain task; its verdict settles the gossip message
    /// (forwarded, ignored, or rejected with the sender penalised like for a full block).
    fn submit_rebuilt(&mut self, hash: Hash256, block: Block) {
        let Some(rebuild) = self.compact.rebuilds.remove(&hash) else {
            return;
        };
        let rx = self.submit_peer_block(rebuild.source, block);
        self.await_verdict(rebuild.msg_id, rebuild.source, rx, |msg_id, source, verdict| {
            Completion::GossipBlock {
                msg_id,
                source,
                verdict,
            }
        });
    }

    fn drop_rebuild(&mut self, hash: Hash256, acceptance: MessageAcceptance) {
        if let Some(r) = self.compact.rebuilds.remove(&hash) {
            self.report(&r.msg_id, &r.source, acceptance);
        }
    }

    /// An answer to one of our compact requests; `Some(response)` back if it is not ours.
    pub(super) fn on_compact_response(
        &mut self,
        id: OutboundRequestId,
        peer: PeerId,
        response: SyncResponse,
    ) -> Option<SyncResponse> {
        let Some((hash, fetch)) = self.compact.requests.remove(&id) else {
            return Some(response);
        };
        match (fetch, response) {
            (Fetch::Txn(asked, _), SyncResponse::BlockTxn { block, txs }) if block == hash => {
                CompactStats::bump(&self.compact.stats.txs_fetched, txs.len() as u64);
                let filled = self
                    .compact
                    .rebuilds
                    .get_mut(&hash)
                    .and_then(|r| r.partial.as_mut())
                    .map(|p| p.fill_missing(txs, asked));
                match filled {
                    Some(Ok(0)) => self.finish_rebuild(hash),
                    Some(Ok(_)) => self.request_txn(hash, 0),
                    Some(Err(e)) => {
                        tracing::debug!(%peer, %hash, error = %e, "bad blocktxn answer; fetching the full block");
                        self.fetch_full(hash);
                    }
                    None => {}
                }
            }
            // Refused, or the wrong kind: the full block instead.
            (Fetch::Txn(..), _) => self.fetch_full(hash),
            (Fetch::Full, SyncResponse::Blocks(mut bodies)) if !bodies.is_empty() && !bodies[0].is_empty() => {
                let bytes = bodies.swap_remove(0);
                match Block::from_bytes(&bytes, self.params.max_block_size) {
                    Ok(block) if block.hash() == hash => self.submit_rebuilt(hash, block),
                    Ok(_) => {
                        self.penalise(peer, Misbehaviour::WrongBlock);
                        self.drop_rebuild(hash, MessageAcceptance::Ignore);
                    }
                    Err(e) => {
                        self.penalise(peer, Misbehaviour::Undecodable(format!("compact fallback block: {e}")));
                        self.drop_rebuild(hash, MessageAcceptance::Ignore);
                    }
                }
            }
            // The peer does not have it after all: sync fetches it if it is worth having.
            (Fetch::Full, _) => self.drop_rebuild(hash, MessageAcceptance::Ignore),
        }
        None
    }

    /// A failed compact request (timeout, connection gone); `false` if it is not ours.
    pub(super) fn on_compact_failure(&mut self, id: OutboundRequestId, error: &dyn std::fmt::Display) -> bool {
        let Some((hash, fetch)) = self.compact.requests.remove(&id) else {
            return false;
        };
        tracing::info!(%hash, %error, "compact block request failed");
        match fetch {
            Fetch::Txn(_, try_no) if try_no + 1 < TXN_TRIES => self.request_txn(hash, try_no + 1),
            Fetch::Txn(..) => self.fetch_full(hash),
            Fetch::Full => self.drop_rebuild(hash, MessageAcceptance::Ignore),
        }
        true
    }

    /// Serves `getblocktxn` from the stored block, through the chain task like other
    /// block requests.
    pub(super) fn serve_block_txn(
        &mut self,
        channel: ResponseChannel<SyncResponse>,
        block: Hash256,
        indexes: Vec<u32>,
    ) {
        if indexes.len() > MAX_BLOCKTXN_INDEXES {
            self.respond(
                channel,
                SyncResponse::Error(format!("at most {MAX_BLOCKTXN_INDEXES} transactions per getblocktxn")),
            );
            return;
        }
        let max = self.params.max_block_size;
        let rx = self.chain.try_block_bytes(vec![block], BLOCKS_RESPONSE_BUDGET);
        let answer = rx.map(|rx| {
            rx.map(move |r| {
                let bytes = match r {
                    Ok(mut v) => v.pop().flatten(),
                    Err(_) => return SyncResponse::Error("node is shutting down".into()),
                };
                let Some(bytes) = bytes else {
                    return SyncResponse::Error(format!("unknown block {block}"));
                };
                match Block::from_bytes(&bytes, max) {
                    Ok(b) => match pick_txs(&b, &indexes, BLOCKTXN_BUDGET) {
                        Ok(txs) => SyncResponse::BlockTxn { block, txs },
                        Err(e) => SyncResponse::Error(e),
                    },
                    Err(e) => SyncResponse::Error(format!("stored block {block} does not decode: {e}")),
                }
            })
        });
        self.serve_via_chain(channel, answer);
    }
}
