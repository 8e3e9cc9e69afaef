//! The Stratum server's own configuration (`lode node --stratum ADDR [--pool …]`).

use std::net::SocketAddr;
use std::time::Duration;

use lode_chain::Amount;

use crate::common::stratum::ShareDifficulty;

/// How the Stratum server runs.
#[derive(Clone, Debug)]
pub struct StratumConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Pool mode (`None`: solo, every block pays one address).
    pub pool: Option<PoolConfig>,
    /// Connections at once, in total.
    pub max_connections: usize,
    /// Connections at once from one IP address.
    pub max_per_ip: usize,
    /// A connection that has not subscribed after this long is dropped.
    pub subscribe_timeout: Duration,
    /// A connection that sent no line for this long is dropped.
    pub idle_timeout: Duration,
    /// A fresh job id (same tip) at least this often: miners stop work older than 120 s.
    pub job_interval: Duration,
    /// Longest line accepted (bytes, newline included); a longer one drops the connection.
    pub max_line: usize,
    /// The first share difficulty of a connection (clamped to the network difficulty).
    pub start_difficulty: ShareDifficulty,
    /// The lowest share difficulty vardiff or a miner's suggestion may reach.
    pub min_difficulty: ShareDifficulty,
    /// Vardiff aims at one share per this long.
    pub share_interval: Duration,
    /// Per-connection vardiff on (off: every connection keeps `start_difficulty`, or what it
    /// suggests).
    pub vardiff: bool,
    /// Score at which a miner is disconnected and its IP banned (each invalid share costs
    /// [`StratumConfig::invalid_share_cost`], each valid one gains 1).
    pub ban_score: i64,
    /// What an invalid share costs.
    pub invalid_share_cost: i64,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// How far past the node's clock a share's ntime may be (seconds; also bounded by the
    /// network's future-block limit).
    pub ntime_ahead: u32,
}

/// Pool-mode settings: payouts by PPLNS in the coinbase.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The window, in network-difficulty units: shares are walked back until their scores
    /// (share difficulty ÷ network difficulty) sum to this.
    pub window: f64,
    /// Pool fee in basis points, paid to the node's wallet.
    pub fee_bps: u32,
    /// Balances below this are carried over to a later block instead of paid.
    pub min_payout: Amount,
    /// Most outputs in a coinbase; the smallest balances past it carry over.
    pub max_outputs: usize,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            window: 2.0,
            fee_bps: 0,
            min_payout: Amount(10_000),
            max_outputs: 50,
        }
    }
}

impl StratumConfig {
    /// Defaults listening on `listen` (solo mode).
    pub fn new(listen: SocketAddr) -> StratumConfig {
        StratumConfig {
            listen,
            pool: None,
            max_connections: 1_024,
            max_per_ip: 256,
            subscribe_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(600),
            job_interval: Duration::from_secs(45),
            max_line: 4_096,
            start_difficulty: ShareDifficulty::from_log2(-16),
            min_difficulty: ShareDifficulty::from_log2(crate::common::stratum::MIN_LOG2),
            share_interval: Duration::from_secs(12),
            vardiff: true,
            ban_score: -50,
            invalid_share_cost: 5,
            ban_duration: Duration::from_secs(600),
            ntime_ahead: 7_000,
        }
    }
}
