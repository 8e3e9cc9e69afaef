//! The one announce path: what the chain task took in that peers have not seen from us.
//!
//! The chain task sends an [`Announcement`] for every block or transaction it accepted from a
//! local origin, every transaction a reorg returned to the mempool or an arriving parent
//! unlocked, and a sync round's new tip when the sync manager asks. The network event loop
//! is the only subscriber that publishes them. A broadcast channel, not an mpsc: the chain
//! task never blocks on the network, which itself waits on the chain task.

use std::sync::Arc;

use lode_chain::{Block, Transaction};
use tokio::sync::broadcast;

/// Capacity of the announce channel; a subscriber that falls further behind loses the
/// oldest (peers still get those transactions in blocks, and blocks through sync).
pub const ANNOUNCE_QUEUE: usize = 4096;

/// Something to gossip.
#[derive(Clone, Debug)]
pub enum Announcement {
    /// A block stored on a valid branch.
    Block(Arc<Block>),
    /// A transaction in the mempool.
    Tx(Arc<Transaction>),
}

/// A new announce channel (sender kept by the chain task; the network subscribes).
pub fn channel() -> broadcast::Sender<Announcement> {
    broadcast::channel(ANNOUNCE_QUEUE).0
}
