//! Events the chain state emits when it accepts a block; the mempool, wallet and node
//! subscribe to them.

use std::sync::Arc;

use crate::block::Block;
use crate::hash::Hash256;
use crate::height::Height;

/// One change to the best chain.
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// `block` became the new tip at `height`.
    BlockConnected {
        /// The block's hash.
        hash: Hash256,
        /// Its height, the new tip's.
        height: Height,
        /// The block.
        block: Arc<Block>,
    },
    /// `block` (at `height`) was removed from the tip during a reorganisation.
    BlockDisconnected {
        /// The block's hash.
        hash: Hash256,
        /// Its height.
        height: Height,
        /// The block.
        block: Arc<Block>,
    },
    /// Summary of a reorganisation, emitted after its disconnects and connects.
    Reorg {
        /// Height of the last block both branches share.
        fork_height: Height,
        /// Tip before the switch.
        old_tip: Hash256,
        /// Tip after the switch.
        new_tip: Hash256,
        /// Blocks removed, tip first.
        disconnected: Vec<Hash256>,
        /// Blocks added, lowest first.
        connected: Vec<Hash256>,
    },
}
