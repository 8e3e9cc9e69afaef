//! Prometheus metrics of a node (`GET /metrics`).
//!
//! Counters and histograms are updated where things happen (chain task, RPC); gauges of
//! state owned elsewhere (height, peers, mempool, hash rate) are set just before each
//! scrape, so they cost nothing between scrapes.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an RPC request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// JSON-RPC method, or the REST route (`GET /api/v1/status`).
    pub method: String,
    /// `ok`, or the JSON-RPC error code / HTTP status of the failure.
    pub status: String,
}

/// Labels of a refused request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why: `rate_limited`, `bad_credentials`, `no_credential`, `missing_scope`, or a signed
    /// request's refusal (`unknown_key`, `stale_timestamp`, `bad_signature`, `replay`, …).
    pub reason: String,
}

/// Labels of a Stratum share count: `accepted` or one refusal reason (a fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShareLabels {
    /// `accepted`, `stale`, `duplicate`, `low_difficulty`, `bad_ntime`, `bad_version`,
    /// `unauthorized`, `not_subscribed` or `malformed`.
    pub outcome: String,
}

/// Labels of a gossip block that met a full chain queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueFullLabels {
    /// `deferred` (waited for room) or `fetch_later` (left for sync to download).
    pub outcome: String,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// Best-chain height.
    pub height: Gauge,
    /// Connected peers of our chain.
    pub peers: Gauge,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge,
    /// Bytes of transactions in the mempool.
    pub mempool_bytes: Gauge,
    /// Embedded miner's hash rate (nonces per second, sliding window).
    pub hash_rate: Gauge<f64, AtomicU64>,
    /// Blocks the embedded miner found since start.
    pub blocks_found: Gauge,
    /// Seconds spent validating and storing each block.
    pub block_validation: Histogram,
    /// RPC and REST requests by method and outcome.
    pub rpc_requests: Family<RpcLabels, Counter>,
    /// Requests refused with 429.
    pub rate_limited: Counter,
    /// Requests refused (401, 403, 429), by reason.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Requests refused with 401.
    pub auth_failures: Counter,
    /// Gossip blocks that found the chain queue full, by what became of them.
    pub chain_queue_full: Family<QueueFullLabels, Counter>,
    /// Stratum connections open.
    pub stratum_connections: Gauge,
    /// Stratum shares since start by outcome.
    pub stratum_shares: Family<ShareLabels, Gauge>,
    /// Blocks found through Stratum since start.
    pub stratum_blocks_found: Gauge,
    /// Stratum miners' hash rate over 15 minutes (Σ accepted difficulty × 2^32 / s).
    pub stratum_hashrate: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// A registry with every metric registered under the `lode_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lode");
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            peers: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            hash_rate: Gauge::default(),
            blocks_found: Gauge::default(),
            // 0.1 ms … ~1.6 s.
            block_validation: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            rpc_requests: Family::default(),
            rate_limited: Counter::default(),
            refusals: Family::default(),
            auth_failures: Counter::default(),
            chain_queue_full: Family::default(),
            stratum_connections: Gauge::default(),
            stratum_shares: Family::default(),
            stratum_blocks_found: Gauge::default(),
            stratum_hashrate: Gauge::default(),
        };
        registry.register("chain_height", "Best-chain height", m.height.clone());
        registry.register("peers", "Connected peers of this chain", m.peers.clone());
        registry.register(
            "mempool_transactions",
            "Transactions in the mempool",
            m.mempool_txs.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Bytes of transactions in the mempool",
            m.mempool_bytes.clone(),
        );
        registry.register(
            "miner_hashrate",
            "Embedded miner hash rate in nonces per second",
            m.hash_rate.clone(),
        );
        registry.register(
            "miner_blocks_found",
            "Blocks found by the embedded miner since start",
            m.blocks_found.clone(),
        );
        registry.register(
            "block_validation_seconds",
            "Time to validate and store a block",
            m.block_validation.clone(),
        );
        registry.register("rpc_requests", "RPC and REST requests", m.rpc_requests.clone());
        registry.register(
            "rpc_rate_limited",
            "Requests refused by the rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "rpc_auth_failures",
            "Requests refused for a wrong token",
            m.auth_failures.clone(),
        );
        registry.register("rpc_refused", "Requests refused, by reason", m.refusals.clone());
        registry.register(
            "chain_queue_full_blocks",
            "Gossip blocks that found the chain queue full, by outcome (deferred, fetch_later)",
            m.chain_queue_full.clone(),
        );
        registry.register(
            "stratum_connections",
            "Stratum connections open",
            m.stratum_connections.clone(),
        );
        registry.register(
            "stratum_shares",
            "Stratum shares since start by outcome",
            m.stratum_shares.clone(),
        );
        registry.register(
            "stratum_blocks_found",
            "Blocks found through Stratum since start",
            m.stratum_blocks_found.clone(),
        );
        registry.register(
            "stratum_hashrate",
            "Stratum miners' hash rate over 15 minutes",
            m.stratum_hashrate.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one refused request.
    pub fn count_refusal(&self, reason: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a gossip block that found the chain queue full.
    pub fn count_queue_full(&self, outcome: &str) {
        self.chain_queue_full
            .get_or_create(&QueueFullLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one request.
    pub fn count_request(&self, method: &str, status: &str) {
        self.rpc_requests
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
