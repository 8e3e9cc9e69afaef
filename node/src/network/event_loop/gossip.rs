//! Gossip in: decode a block or transaction (bounded), hand it to the chain task, and report
//! the verdict to gossipsub — the policy of what is forwarded, ignored or punished.

use std::sync::Arc;

use futures::FutureExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::PeerId;
use lode_chain::AcceptStatus;
use tokio::sync::oneshot;

use super::{Completion, EventLoop, Requests};
use crate::chain_task::{BlockVerdict, GossipSubmission, Origin, TxVerdict};
use crate::network::gossip::{self, TopicKind};
use crate::network::peers::Misbehaviour;

impl EventLoop {
    pub(super) fn report(&mut self, msg_id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(msg_id, source, acceptance);
    }

    /// Hands a block a peer relayed (whole or rebuilt from a compact announcement) to the
    /// chain task. A full chain queue never drops it silently: it waits for room, or (too
    /// many waiting) its sender is asked for its tip and sync fetches it.
    pub(super) fn submit_peer_block(
        &mut self,
        source: PeerId,
        block: lode_chain::Block,
    ) -> Option<tokio::sync::oneshot::Receiver<crate::chain_task::BlockVerdict>> {
        match self.chain.submit_gossip_block(Arc::new(block)) {
            GossipSubmission::Verdict(rx) => Some(rx),
            GossipSubmission::FetchLater => {
                self.sync
                    .on_orphan(source, &mut Requests(&mut self.swarm.behaviour_mut().sync));
                None
            }
            GossipSubmission::Stopped => None,
        }
    }

    pub(super) fn on_gossip(&mut self, source: PeerId, msg_id: MessageId, message: gossipsub::Message) {
        match self.names.kind(&message.topic) {
            Some(TopicKind::Blocks) => match gossip::decode_block(&message.data, &self.params) {
                Err(e) => {
                    self.report(&msg_id, &source, MessageAcceptance::Reject);
                    self.penalise(source, Misbehaviour::Undecodable(format!("gossip block: {e}")));
                }
                Ok(block) => {
                    crate::network::compact::CompactStats::bump(&self.compact.stats.full_gossip_received, 1);
                    let rx = self.submit_peer_block(source, block);
                    self.await_verdict(msg_id, source, rx, |msg_id, source, verdict| Completion::GossipBlock {
                        msg_id,
                        source,
                        verdict,
                    });
                }
            },
            Some(TopicKind::Txs) => match gossip::decode_tx(&message.data, &self.params) {
                Err(e) => {
                    self.report(&msg_id, &source, MessageAcceptance::Reject);
                    self.penalise(source, Misbehaviour::Undecodable(format!("gossip tx: {e}")));
                }
                Ok(tx) => {
                    let rx = self.chain.try_submit_tx(tx, Origin::Peer);
                    self.await_verdict(msg_id, source, rx, |msg_id, source, verdict| Completion::GossipTx {
                        msg_id,
                        source,
                        verdict,
                    });
                }
            },
            Some(TopicKind::Compact) => self.on_compact(source, msg_id, &message.data),
            None => self.report(&msg_id, &source, MessageAcceptance::Ignore),
        }
    }

    /// Holds the message until the chain task's verdict comes back; when the chain task had
    /// no room (`None`), ignores it at once: sync fetches what gossip drops.
    pub(super) fn await_verdict<V: Send + 'static>(
        &mut self,
        msg_id: MessageId,
        source: PeerId,
        verdict: Option<oneshot::Receiver<V>>,
        done: fn(MessageId, PeerId, Option<V>) -> Completion,
    ) {
        match verdict {
            Some(rx) => self
                .pending
                .push(async move { done(msg_id, source, rx.await.ok()) }.boxed()),
            None => self.report(&msg_id, &source, MessageAcceptance::Ignore),
        }
    }

    /// Reports a gossip block's verdict to gossipsub: forwarded if stored on a valid branch
    /// (which, for a block nobody asked for, means its branch beat the tip); a side-branch
    /// block kept as a header only is ignored (never relayed); ignored too if it says nothing
    /// about the sender; rejected (and the sender penalised) if it broke a rule.
    pub(super) fn on_block_verdict(&mut self, msg_id: MessageId, source: PeerId, verdict: Option<BlockVerdict>) {
        let acceptance = match &verdict {
            Some(BlockVerdict::Accepted(AcceptStatus::Connected | AcceptStatus::SideBranch)) => {
                // A useful peer: protected from eviction for a while.
                self.swarm
                    .behaviour_mut()
                    .gate
                    .note_block(&source, std::time::Instant::now());
                MessageAcceptance::Accept
            }
            // No more work than our tip: not stored, so not ours to pass on.
            Some(BlockVerdict::Accepted(AcceptStatus::HeaderOnly | AcceptStatus::AlreadyKnown)) => {
                MessageAcceptance::Ignore
            }
            Some(BlockVerdict::Accepted(AcceptStatus::Orphan { .. })) => {
                self.sync
                    .on_orphan(source, &mut Requests(&mut self.swarm.behaviour_mut().sync));
                MessageAcceptance::Ignore
            }
            Some(v) => match v.broken_rule() {
                // A clock ahead of ours is not a lie.
                Some(lode_chain::ConsensusError::TimeTooNew { .. }) => MessageAcceptance::Ignore,
                Some(rule) => {
                    let rule = rule.to_string();
                    tracing::warn!(peer = %source, %rule, "invalid block from gossip");
                    self.penalise(source, Misbehaviour::InvalidBlock(rule));
                    MessageAcceptance::Reject
                }
                None => MessageAcceptance::Ignore,
            },
            None => MessageAcceptance::Ignore,
        };
        self.report(&msg_id, &source, acceptance);
    }

    /// Reports a gossip transaction's verdict to gossipsub.
    pub(super) fn on_tx_verdict(&mut self, msg_id: MessageId, source: PeerId, verdict: Option<TxVerdict>) {
        let acceptance = match verdict {
            Some(TxVerdict::Accepted { .. }) => {
                self.swarm
                    .behaviour_mut()
                    .gate
                    .note_tx(&source, std::time::Instant::now());
                MessageAcceptance::Accept
            }
            Some(TxVerdict::Rejected { txid, reason }) => {
                tracing::debug!(peer = %source, %txid, %reason, "invalid transaction from gossip");
                self.penalise(source, Misbehaviour::InvalidTx(reason));
                MessageAcceptance::Reject
            }
            Some(TxVerdict::Ignored { .. }) | None => MessageAcceptance::Ignore,
        };
        self.report(&msg_id, &source, acceptance);
    }
}
