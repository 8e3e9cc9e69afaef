//! The accept loop: connection caps (total and per IP), bans, one task per connection.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{Metrics, ShareLabels};

use super::shared::Shared;

/// Releases a connection's slot however its task ends.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.release(self.ip);
    }
}

/// Accepts connections until `shutdown`.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "Stratum accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(why) = shared.admit(peer.ip()) {
            tracing::debug!(peer = %peer, why, "Stratum connection refused");
            drop(stream);
            continue;
        }
        let slot = Slot {
            shared: shared.clone(),
            ip: peer.ip(),
        };
        let en1 = shared.next_en1.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            super::session::run(shared, stream, peer, en1, shutdown).await;
            drop(slot);
        });
    }
}

/// Copies the Stratum server's figures into the node's gauges (before a scrape).
pub fn refresh_metrics(m: &Metrics, s: &Shared) {
    let (accepted, rejected, blocks, _) = s.stats.totals();
    m.stratum_connections.set(s.connections() as i64);
    m.stratum_blocks_found.set(blocks as i64);
    let set = |outcome: &str, v: u64| {
        m.stratum_shares
            .get_or_create(&ShareLabels {
                outcome: outcome.to_string(),
            })
            .set(v as i64);
    };
    set("accepted", accepted);
    for (reason, v) in rejected {
        set(reason, v);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    m.stratum_hashrate
        .set(s.stats.workers().iter().map(|(_, w)| w.hashrate(now, 900)).sum());
}
