//! [`Prechecker`]: verifies the signatures of blocks sync has downloaded but not yet handed
//! to the chain task, on a thread of its own, into the chain's signature cache — so the
//! connect of one batch overlaps the signature work of the next, and the connect finds
//! those signatures already verified.
//!
//! It writes nothing but the cache (verified triples only, never a verdict): the chain task
//! stays the one writer of chain state and still runs every rule at connect. Blocks are
//! offered without waiting; when the queue is full they are skipped (the connect then
//! verifies them itself), so it never slows sync down or holds memory beyond its queue.

use std::sync::{Arc, Mutex};

use lode_chain::sig::SigCache;
use lode_chain::validation::precheck::precheck_signatures;
use lode_chain::{Block, Hash256};

/// Blocks waiting for their precheck; sync buffers at most 64 MiB of blocks anyway.
const PRECHECK_QUEUE: usize = 256;

/// A cloneable way to offer blocks for a signature precheck.
#[derive(Clone)]
pub struct Prechecker {
    tx: std::sync::mpsc::SyncSender<Arc<Block>>,
}

impl Prechecker {
    /// Starts the precheck thread over `cache`; it ends when every `Prechecker` is dropped.
    pub fn start(cache: Arc<Mutex<SigCache>>, genesis: Hash256) -> Result<Prechecker, crate::NodeError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Block>>(PRECHECK_QUEUE);
        std::thread::Builder::new()
            .name("lode-precheck".into())
            .spawn(move || {
                while let Ok(block) = rx.recv() {
                    if precheck_signatures(&block, &genesis, &cache).is_none() {
                        // Not a verdict: the connect finds and reports it as consensus does.
                        tracing::debug!(block = %block.hash(), "a synced block has a bad signature");
                    }
                }
            })
            .map_err(|e| crate::NodeError::Task(format!("cannot spawn the precheck thread: {e}")))?;
        Ok(Prechecker { tx })
    }

    /// Offers a block; skipped when the queue is full.
    pub fn offer(&self, block: Arc<Block>) {
        let _ = self.tx.try_send(block);
    }
}
