//! The flags of `lode node` and their validation into a [`NodeConfig`]: the daemon's
//! configuration as the command line gives it. The `lode` binary's top-level command (which
//! also holds the client subcommands) lives in `main.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use libp2p::Multiaddr;
use lode_chain::ChainParams;

use crate::common::parse::parse_block_time;
use crate::config::{LogFormat, NodeConfig};
use crate::error::NodeError;

/// Default libp2p port.
pub const DEFAULT_P2P_PORT: u16 = 18444;

/// Default `--dbcache` (MB): the chain crate's default cache budget.
pub const DEFAULT_DBCACHE_MB: u64 = (lode_chain::store::DEFAULT_CACHE_BYTES >> 20) as u64;
/// Largest `--dbcache` (MB): 64 GiB, far past any machine this runs on.
const MAX_DBCACHE_MB: u64 = 64 << 10;

/// Log format flag values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// JSON lines.
    Json,
}

/// Flags of `lode node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Network: `devnet`, `regtest`, or the path of a chain-spec TOML file.
    #[arg(long, default_value = "devnet")]
    pub network: String,
    /// Data directory (default: ~/.lode/NETWORK).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// libp2p listen address (repeatable).
    #[arg(long = "p2p-listen", value_name = "MULTIADDR")]
    pub p2p_listen: Vec<String>,
    /// Peer to connect to, with or without /p2p/PEER_ID (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// RPC/HTTP listen address (IP:PORT; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = crate::rpc::DEFAULT_RPC_ADDR)]
    pub rpc_listen: String,
    /// Run without the RPC/HTTP port.
    #[arg(long)]
    pub no_rpc: bool,
    /// Public RPC requests per second per client address (burst: twice that; 0: no limit).
    #[arg(long, value_name = "N", default_value_t = crate::rpc::DEFAULT_RATE_LIMIT)]
    pub rpc_rate_limit: u32,
    /// An API key: NAME:SCOPES:SHA256HEX, scopes from read,wallet,mine,admin (repeatable).
    #[arg(long = "rpc-api-key", value_name = "KEY")]
    pub rpc_api_keys: Vec<String>,
    /// A Bitcoin Core rpcauth user: USER:SALT$HMAC as share/rpcauth/rpcauth.py prints it,
    /// optionally :SCOPES (default: every scope) (repeatable).
    #[arg(long = "rpc-auth", value_name = "USER:SALT$HMAC[:SCOPES]")]
    pub rpc_auth: Vec<String>,
    /// Mine with the embedded miner.
    #[arg(long)]
    pub mine: bool,
    /// Miner threads (default: all cores but one, at least one).
    #[arg(long, value_name = "N")]
    pub miner_threads: Option<usize>,
    /// Pay the coinbase to this address instead of a fresh address of the built-in wallet.
    #[arg(long, value_name = "ADDRESS")]
    pub mining_address: Option<String>,
    /// Create the built-in wallet from the BIP39 mnemonic in this file (first start only).
    #[arg(long, value_name = "PATH")]
    pub wallet_mnemonic_file: Option<PathBuf>,
    /// Account of that mnemonic the wallet uses.
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub wallet_account: u32,
    /// Do not discover LAN peers with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Devnet only: target block time (`N` or `Ns`, whole seconds; default 2 s). Every node
    /// of a devnet must use the same value: blocks mined under one are invalid under another.
    #[arg(long, value_name = "SECS")]
    pub block_time: Option<String>,
    /// Megabytes of UTXO-set and index writes kept in memory between atomic flushes to the
    /// store (0: write every block through). A kill loses none of it: blocks are on disk
    /// first and are re-connected at the next start (ADR 0006).
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_DBCACHE_MB, value_parser = clap::value_parser!(u64).range(0..=MAX_DBCACHE_MB))]
    pub dbcache: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormatArg,
    /// Serve Stratum v1 miners on this IP:PORT (off by default; solo mode unless --pool).
    #[arg(long, value_name = "ADDR")]
    pub stratum: Option<String>,
    /// Stratum pool mode: usernames are ADDRESS[.worker], blocks pay the PPLNS window.
    #[arg(long, requires = "stratum")]
    pub pool: bool,
    /// Pool fee in basis points of each block's reward, paid to the node's wallet.
    #[arg(long, value_name = "BPS", default_value_t = 0, requires = "pool")]
    pub pool_fee_bps: u32,
    /// Smallest coinbase output to a pool miner (base units); smaller balances carry over.
    #[arg(long, value_name = "UNITS", requires = "pool")]
    pub pool_min_payout: Option<u64>,
    /// PPLNS window in network difficulties (the N of "last N shares" in block units).
    #[arg(long, value_name = "X", requires = "pool")]
    pub pool_window: Option<f64>,
    /// Most outputs in a pool coinbase (the smallest balances past it carry over).
    #[arg(long, value_name = "N", requires = "pool")]
    pub pool_max_outputs: Option<usize>,
}

impl NodeArgs {
    /// The log format asked for.
    pub fn log_format(&self) -> LogFormat {
        match self.log_format {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }

    /// Validates every flag into a [`NodeConfig`]; errors name the flag and the value.
    pub fn into_config(self) -> Result<NodeConfig, NodeError> {
        let mut params = network_params(&self.network)?;
        if let Some(text) = &self.block_time {
            let secs = parse_block_time(text).map_err(|e| NodeError::Config(format!("--block-time: {e}")))?;
            if params.name != "devnet" || self.network != "devnet" {
                return Err(NodeError::Config(format!(
                    "--block-time: only the devnet takes a block time (network is {:?})",
                    self.network
                )));
            }
            params = ChainParams::devnet_with_spacing(secs);
        }
        let data_dir = match self.data_dir {
            Some(d) => d,
            None => default_data_dir(&params.name),
        };
        let p2p_listen = if self.p2p_listen.is_empty() {
            vec![parse_multiaddr(
                "--p2p-listen",
                &format!("/ip4/0.0.0.0/tcp/{DEFAULT_P2P_PORT}"),
            )?]
        } else {
            self.p2p_listen
                .iter()
                .map(|a| parse_multiaddr("--p2p-listen", a))
                .collect::<Result<_, _>>()?
        };
        let peers = self
            .peers
            .iter()
            .map(|a| parse_multiaddr("--peer", a))
            .collect::<Result<_, _>>()?;
        let rpc = if self.no_rpc {
            None
        } else {
            let a = &self.rpc_listen;
            let listen = a
                .parse::<SocketAddr>()
                .map_err(|_| NodeError::Config(format!("--rpc-listen: {a:?} is not an IP:PORT address")))?;
            let api_keys = self
                .rpc_api_keys
                .iter()
                .map(|k| {
                    crate::rpc::auth::ApiKey::parse(k).map_err(|e| NodeError::Config(format!("--rpc-api-key: {e}")))
                })
                .collect::<Result<_, _>>()?;
            let rpc_auth = self
                .rpc_auth
                .iter()
                .map(|u| {
                    crate::rpc::auth::RpcAuthUser::parse(u).map_err(|e| NodeError::Config(format!("--rpc-auth: {e}")))
                })
                .collect::<Result<_, _>>()?;
            Some(crate::rpc::RpcConfig {
                listen,
                rate_limit: self.rpc_rate_limit,
                api_keys,
                rpc_auth,
            })
        };
        let miner_threads = match self.miner_threads {
            Some(0) => return Err(NodeError::Config("--miner-threads: must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
        };
        let mining_address = self
            .mining_address
            .as_deref()
            .map(|a| {
                lode_chain::PubkeyHash::from_address(a, &params.hrp)
                    .map_err(|e| NodeError::Config(format!("--mining-address: {e}")))
            })
            .transpose()?;
        if self.wallet_account >= 1 << 31 {
            return Err(NodeError::Config("--wallet-account: must be below 2^31".into()));
        }
        if let Some(f) = &self.wallet_mnemonic_file {
            if !f.is_file() {
                return Err(NodeError::Config(format!(
                    "--wallet-mnemonic-file: {} is not a readable file",
                    f.display()
                )));
            }
        }
        let stratum = self
            .stratum
            .as_deref()
            .map(|a| -> Result<_, NodeError> {
                let listen = a
                    .parse::<SocketAddr>()
                    .map_err(|_| NodeError::Config(format!("--stratum: {a:?} is not an IP:PORT address")))?;
                let mut config = crate::stratum::StratumConfig::new(listen);
                if self.pool {
                    let mut pool = crate::stratum::PoolConfig::default();
                    if self.pool_fee_bps > 10_000 {
                        return Err(NodeError::Config("--pool-fee-bps: at most 10000".into()));
                    }
                    pool.fee_bps = self.pool_fee_bps;
                    if let Some(m) = self.pool_min_payout {
                        pool.min_payout = lode_chain::Amount(m);
                    }
                    if let Some(w) = self.pool_window {
                        if !(w.is_finite() && (0.01..=1_000.0).contains(&w)) {
                            return Err(NodeError::Config("--pool-window: must be 0.01 to 1000".into()));
                        }
                        pool.window = w;
                    }
                    if let Some(n) = self.pool_max_outputs {
                        if !(2..=1_000).contains(&n) {
                            return Err(NodeError::Config("--pool-max-outputs: must be 2 to 1000".into()));
                        }
                        pool.max_outputs = n;
                    }
                    config.pool = Some(pool);
                }
                Ok(config)
            })
            .transpose()?;
        Ok(NodeConfig {
            stratum,
            params,
            data_dir,
            chain: crate::chain_task::ChainConfig {
                cache_bytes: usize::try_from(self.dbcache << 20).unwrap_or(usize::MAX),
                ..Default::default()
            },
            network: crate::network::NetworkConfig {
                listen: p2p_listen,
                peers,
                mdns: !self.no_mdns,
                kademlia: true,
                progress_bar: true,
                ban_duration: Duration::from_secs(3600),
                ..crate::network::NetworkConfig::default()
            },
            rpc,
            mining: crate::miner::MiningConfig {
                enabled: self.mine,
                threads: miner_threads,
                address: mining_address,
            },
            wallet: crate::wallet::WalletConfig {
                mnemonic_file: self.wallet_mnemonic_file,
                account: self.wallet_account,
            },
        })
    }
}

/// A multiaddr flag's value; the error names the flag.
pub fn parse_multiaddr(flag: &str, s: &str) -> Result<Multiaddr, NodeError> {
    s.parse::<Multiaddr>()
        .map_err(|e| NodeError::Config(format!("{flag}: {s:?} is not a multiaddr ({e})")))
}

/// `devnet`, `regtest`, or a chain-spec file.
pub fn network_params(network: &str) -> Result<ChainParams, NodeError> {
    if let Some(p) = ChainParams::by_name(network) {
        return Ok(p);
    }
    let path = PathBuf::from(network);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        return Ok(ChainParams::from_toml_file(&path)?);
    }
    Err(NodeError::Config(format!(
        "--network: {network:?} is neither devnet, regtest nor a chain-spec .toml file"
    )))
}

/// The data dir a node of `network` uses without `--data-dir`: `~/.lode/NETWORK`.
pub fn default_data_dir(network: &str) -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".lode").join(network),
        None => PathBuf::from(".lode").join(network),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `lode node` as the binary parses it (the top-level command lives in `main.rs`).
    #[derive(Debug, Parser)]
    #[command(name = "lode")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Node(NodeArgs),
    }

    fn args(extra: &[&str]) -> Result<NodeConfig, String> {
        let mut v = vec!["lode", "node"];
        v.extend_from_slice(extra);
        let cli = Cli::try_parse_from(v).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Node(a) => a.into_config().map_err(|e| e.to_string()),
        }
    }

    #[test]
    fn dbcache_sets_the_chain_cache_budget() {
        assert_eq!(
            args(&[]).expect("valid").chain.cache_bytes,
            lode_chain::store::DEFAULT_CACHE_BYTES
        );
        assert_eq!(args(&["--dbcache", "16"]).expect("valid").chain.cache_bytes, 16 << 20);
        assert_eq!(args(&["--dbcache", "0"]).expect("valid").chain.cache_bytes, 0);
        let e = args(&["--dbcache", "70000"]).expect_err("too large");
        assert!(e.contains("--dbcache"), "{e}");
    }

    #[test]
    fn block_time_selects_the_devnet_spacing() {
        let c = args(&["--block-time", "1s"]).expect("valid");
        assert_eq!(c.params.target_spacing, 1);
        assert_eq!(c.params.genesis_hash(), ChainParams::devnet().genesis_hash());
        let c = args(&["--block-time", "5"]).expect("valid");
        assert_eq!(c.params.target_spacing, 5);
        assert_eq!(args(&[]).expect("valid").params.target_spacing, 2);
    }

    #[test]
    fn flags_parse_and_bad_values_get_one_line_errors() {
        let c = args(&[
            "--network",
            "regtest",
            "--peer",
            "/ip4/127.0.0.1/tcp/1",
            "--peer",
            "/ip4/127.0.0.1/tcp/2",
            "--no-mdns",
            "--rpc-listen",
            "127.0.0.1:18443",
        ])
        .expect("valid");
        assert_eq!(c.params.name, "regtest");
        assert_eq!(c.network.peers.len(), 2);
        assert!(!c.network.mdns);
        for (flags, needle) in [
            (vec!["--peer", "nonsense"], "--peer"),
            (vec!["--network", "mainnet"], "--network"),
            (vec!["--rpc-listen", "localhost"], "--rpc-listen"),
            (vec!["--rpc-api-key", "k:root:00"], "--rpc-api-key"),
            (vec!["--miner-threads", "0"], "--miner-threads"),
            (vec!["--p2p-listen", "/ip4/1.2.3.4/tcpx/1"], "--p2p-listen"),
            (vec!["--block-time", "0s"], "--block-time"),
            (vec!["--block-time", "1.5s"], "--block-time"),
            (vec!["--network", "regtest", "--block-time", "1s"], "--block-time"),
        ] {
            let e = args(&flags).expect_err("refused");
            assert!(e.contains(needle), "{e}");
            assert!(!e.trim().contains('\n'), "one line: {e}");
        }
    }
}
