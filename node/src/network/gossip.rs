//! Gossipsub set-up: topics, content-hash message ids, validation and scoring parameters.

use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, Message, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use lode_chain::{encoding, Block, ChainParams, DecodeError, Hash256, Transaction};

use crate::error::NodeError;

/// Which of our topics a message came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind {
    /// `/lode/<genesis-prefix>/blocks/1`
    Blocks,
    /// `/lode/<genesis-prefix>/txs/1`
    Txs,
    /// `/lode/<genesis-prefix>/cmpct/1`: compact blocks (see `compact`).
    Compact,
}

/// The network's topics and protocol names, all derived from the genesis hash so nodes of
/// different chains never share one.
#[derive(Clone, Debug)]
pub struct Names {
    /// First 16 hex characters of the genesis hash.
    pub prefix: String,
    /// Blocks topic.
    pub blocks: IdentTopic,
    /// Transactions topic.
    pub txs: IdentTopic,
    /// Compact blocks topic.
    pub compact: IdentTopic,
}

impl Names {
    /// Names for the chain with this genesis.
    pub fn new(genesis: &Hash256) -> Names {
        let prefix: String = genesis.to_hex().chars().take(16).collect();
        Names {
            blocks: IdentTopic::new(format!("/lode/{prefix}/blocks/1")),
            txs: IdentTopic::new(format!("/lode/{prefix}/txs/1")),
            compact: IdentTopic::new(format!("/lode/{prefix}/cmpct/1")),
            prefix,
        }
    }

    /// Identify's protocol version: peers announcing another are of another chain.
    pub fn identify_version(&self) -> String {
        format!("/lode/{}/1.0.0", self.prefix)
    }

    /// The sync request-response protocol.
    pub fn sync_protocol(&self) -> String {
        format!("/lode/{}/sync/1", self.prefix)
    }

    /// Kademlia's protocol (own name per chain, so DHTs of different chains never mix).
    pub fn kad_protocol(&self) -> String {
        format!("/lode/{}/kad/1.0.0", self.prefix)
    }

    /// The kind of a topic hash, if it is one of ours.
    pub fn kind(&self, topic: &gossipsub::TopicHash) -> Option<TopicKind> {
        if *topic == self.blocks.hash() {
            Some(TopicKind::Blocks)
        } else if *topic == self.txs.hash() {
            Some(TopicKind::Txs)
        } else if *topic == self.compact.hash() {
            Some(TopicKind::Compact)
        } else {
            None
        }
    }
}

/// Content-hash message ids over the whole payload: the double SHA-256 of the message's
/// bytes (for a transaction, its txid). Not a block's header hash: a peer relaying the real
/// header with a tampered body first would otherwise use up the honest block's id, and
/// gossipsub's duplicate cache would drop the honest copy for a minute. The same bytes
/// relayed by different peers are still one message.
pub fn message_id(message: &Message) -> MessageId {
    MessageId::from(Hash256::sha256d(&message.data).0.to_vec())
}

/// Decodes a message of the blocks topic: at most the network's max block size, strictly.
/// The event loop's only block decoder for gossip; public so the fuzz targets (`fuzz/`) run
/// exactly this code.
pub fn decode_block(data: &[u8], params: &ChainParams) -> Result<Block, DecodeError> {
    Block::from_bytes(data, params.max_block_size)
}

/// Decodes a message of the transactions topic: at most the network's max transaction size,
/// strictly. Public for the fuzz targets, like [`decode_block`].
pub fn decode_tx(data: &[u8], params: &ChainParams) -> Result<Transaction, DecodeError> {
    encoding::decode(data, params.max_tx_size)
}

/// Builds the gossipsub behaviour.
/// `frame_max` bounds every frame; `(blocks, txs)` are the per-topic message limits.
pub fn behaviour(
    key: &Keypair,
    names: &Names,
    frame_max: usize,
    (blocks_max, txs_max): (usize, usize),
) -> Result<gossipsub::Behaviour, NodeError> {
    let config = gossipsub::ConfigBuilder::default()
        // Hold every message until the chain task's verdict; forward only accepted ones.
        .validate_messages()
        .validation_mode(ValidationMode::Strict)
        .message_id_fn(message_id)
        .max_transmit_size(frame_max)
        // Over these, a message is an invalid delivery that costs its sender score (P4).
        .max_transmit_size_for_topic(blocks_max, names.blocks.hash())
        .max_transmit_size_for_topic(txs_max, names.txs.hash())
        // A compact block is never larger than the block it stands for.
        .max_transmit_size_for_topic(blocks_max, names.compact.hash())
        // Mesh sized for devnets of 2–8 nodes: keep whoever we have, graft quickly.
        .mesh_n_low(1)
        .mesh_n(4)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .gossip_lazy(4)
        .heartbeat_interval(Duration::from_millis(500))
        .heartbeat_initial_delay(Duration::from_millis(100))
        .build()
        .map_err(|e| NodeError::Network(format!("gossipsub config: {e}")))?;
    let mut gs = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| NodeError::Network(format!("gossipsub: {e}")))?;
    gs.with_peer_score(score_params(names), PeerScoreThresholds::default())
        .map_err(|e| NodeError::Network(format!("gossipsub scoring: {e}")))?;
    Ok(gs)
}

/// Scoring: invalid messages (P4) cost heavily; delivery-rate penalties (P3) are off
/// because blocks come seconds apart and a small mesh cannot meet a delivery quota; IP
/// colocation is off because devnets run on one machine.
fn score_params(names: &Names) -> PeerScoreParams {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        // Slow enough that one invalid delivery still scores ≤ -80 two decays (seconds)
        // later, when the event loop's once-a-second check bans the sender.
        invalid_message_deliveries_decay: 0.95,
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    // An invalid transaction may be an honest mistake (a race with a block): gossipsub
    // graylists only after a few, so our own three-strikes ban (see `peers`) sees them.
    let txs = TopicScoreParams {
        invalid_message_deliveries_weight: -5.0,
        ..topic.clone()
    };
    params.topics.insert(names.compact.hash(), topic.clone());
    params.topics.insert(names.blocks.hash(), topic);
    params.topics.insert(names.txs.hash(), txs);
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &IdentTopic, data: Vec<u8>) -> Message {
        Message {
            source: None,
            data,
            sequence_number: None,
            topic: topic.hash(),
        }
    }

    #[test]
    fn a_tampered_body_under_the_same_header_is_another_message() {
        let names = Names::new(&Hash256([7; 32]));
        let mut honest = vec![1u8; 80];
        honest.extend_from_slice(b"honest body");
        let mut tampered = honest[..80].to_vec();
        tampered.extend_from_slice(b"tampered body");
        let a = message_id(&message(&names.blocks, honest.clone()));
        let b = message_id(&message(&names.blocks, tampered));
        assert_ne!(a, b, "same header, different body: different ids");
        assert_eq!(a, message_id(&message(&names.blocks, honest)), "same bytes: same id");
    }
}
