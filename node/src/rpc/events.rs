//! `GET /api/v1/events`: server-sent events for new tips, new mempool transactions and
//! reorgs. Each event has an increasing id; the last [`KEEP`] are kept so a client that
//! reconnects with `Last-Event-ID` gets what it missed first, then the live stream.
//!
//! Ids start at the node's start time in microseconds, not at 1: a client that resumes
//! across a restart of the node sends an id of the old process, and every event of the
//! new one must count as after it (with ids from 1 they would all be skipped as seen).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lode_chain::ChainEvent;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::api::NodeApi;

/// Events kept for resuming clients.
pub const KEEP: usize = 1000;

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Increasing id (from the start time in microseconds; see the module doc).
    pub id: u64,
    /// `tip`, `tx` or `reorg`.
    pub kind: &'static str,
    /// JSON data.
    pub data: String,
}

/// The recent events and the live feed.
pub struct EventLog {
    recent: Mutex<(u64, VecDeque<LoggedEvent>)>,
    live: broadcast::Sender<LoggedEvent>,
}

impl EventLog {
    /// Starts following the node's chain events and accepted transactions.
    pub fn start(api: &NodeApi, mut shutdown: watch::Receiver<bool>) -> Arc<EventLog> {
        let (live, _) = broadcast::channel(KEEP);
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let log = Arc::new(EventLog {
            recent: Mutex::new((first, VecDeque::with_capacity(KEEP))),
            live,
        });
        let mut chain = api.subscribe_events();
        let mut txs = api.subscribe_txs();
        let weak = Arc::downgrade(&log);
        tokio::spawn(async move {
            loop {
                let (kind, data) = tokio::select! {
                    ev = chain.recv() => match ev {
                        Ok(ChainEvent::BlockConnected { hash, height, .. }) => {
                            ("tip", json!({"height": height.0, "hash": hash.to_hex()}))
                        }
                        Ok(ChainEvent::Reorg { fork_height, disconnected, connected, .. }) => (
                            "reorg",
                            json!({
                                "fork_height": fork_height.0,
                                "disconnected": disconnected.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                                "connected": connected.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                            }),
                        ),
                        Ok(ChainEvent::BlockDisconnected { .. }) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(n, "event log lagged behind the chain");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    tx = txs.recv() => match tx {
                        Ok(txid) => ("tx", json!({"txid": txid.to_hex()})),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = shutdown.changed() => break,
                };
                let Some(log) = weak.upgrade() else { break };
                log.push(kind, data.to_string());
            }
        });
        log
    }

    fn push(&self, kind: &'static str, data: String) {
        let ev = {
            let mut guard = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let (next, buf) = &mut *guard;
            *next += 1;
            let ev = LoggedEvent { id: *next, kind, data };
            if buf.len() == KEEP {
                buf.pop_front();
            }
            buf.push_back(ev.clone());
            ev
        };
        // No listener is fine.
        let _ = self.live.send(ev);
    }

    /// Live events from now on, and the stored ones after `last_id` (oldest first).
    pub fn subscribe_after(&self, last_id: Option<u64>) -> (broadcast::Receiver<LoggedEvent>, Vec<LoggedEvent>) {
        // Subscribe under the lock so no event falls between the backlog and the feed.
        let guard = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        let backlog = match last_id {
            Some(after) => guard.1.iter().filter(|e| e.id > after).cloned().collect(),
            None => Vec::new(),
        };
        (rx, backlog)
    }
}
