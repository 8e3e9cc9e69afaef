//! What every connection shares: settings, the chain, templates, the pool, statistics,
//! connection counts and bans.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lode_chain::ChainParams;
use tokio::sync::watch;

use crate::chain_task::{ChainHandle, TipInfo};

use super::config::StratumConfig;
use super::jobs::Template;
use super::pool::Pool;
use super::stats::Stats;

/// Where `client.reconnect` sends miners: `None` back to this server (params `[]`), else
/// `(host, port, wait seconds)`.
pub type ReconnectTo = Option<(String, u16, u32)>;

/// Banned IPs remembered at most (the oldest ban is forgotten first).
const MAX_BANS: usize = 10_000;

/// What every connection shares.
pub struct Shared {
    /// Settings.
    pub config: StratumConfig,
    /// Network parameters (address prefix, future-time limit).
    pub params: ChainParams,
    /// The chain task (weak).
    pub chain: ChainHandle,
    /// The chain tip (stale shares).
    pub tip: watch::Receiver<TipInfo>,
    /// The newest template.
    pub templates: watch::Receiver<Option<Arc<Template>>>,
    /// Pool mode.
    pub pool: Option<Arc<Pool>>,
    /// Statistics.
    pub stats: Stats,
    pub(super) next_en1: AtomicU32,
    /// Each send asks every connection open then to reconnect (the sequence number makes
    /// two requests with the same target both count).
    pub(super) reconnect: watch::Sender<(u64, ReconnectTo)>,
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    bans: Mutex<HashMap<IpAddr, Instant>>,
}

impl Shared {
    /// Shared state for a server.
    pub fn new(
        config: StratumConfig,
        params: ChainParams,
        chain: ChainHandle,
        tip: watch::Receiver<TipInfo>,
        templates: watch::Receiver<Option<Arc<Template>>>,
        pool: Option<Arc<Pool>>,
    ) -> Shared {
        Shared {
            config,
            params,
            chain,
            tip,
            templates,
            pool,
            stats: Stats::default(),
            next_en1: AtomicU32::new(rand::random()),
            reconnect: watch::channel((0, None)).0,
            connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            bans: Mutex::new(HashMap::new()),
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Sends `client.reconnect` to every connection open now (to `to`, or back here) and
    /// closes them once it is written; returns how many were asked. The operator's way to
    /// move miners to another server, or to make them reconnect before maintenance.
    pub fn reconnect_all(&self, to: ReconnectTo) -> usize {
        self.reconnect.send_modify(|(seq, target)| {
            *seq += 1;
            *target = to;
        });
        self.connections()
    }

    /// Bans `ip` for the configured time.
    pub fn ban(&self, ip: IpAddr) {
        let mut bans = self.bans.lock().unwrap_or_else(|e| e.into_inner());
        if bans.len() >= MAX_BANS {
            if let Some(oldest) = bans.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                bans.remove(&oldest);
            }
        }
        bans.insert(ip, Instant::now() + self.config.ban_duration);
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let mut bans = self.bans.lock().unwrap_or_else(|e| e.into_inner());
        match bans.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                bans.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// IPs banned now.
    pub fn banned_count(&self) -> usize {
        let now = Instant::now();
        self.bans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|t| **t > now)
            .count()
    }

    pub(super) fn admit(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.is_banned(ip) {
            return Err("banned");
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.connections.load(Ordering::Relaxed) >= self.config.max_connections {
            return Err("server full");
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.config.max_per_ip {
            return Err("too many connections from this address");
        }
        *n += 1;
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn release(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
