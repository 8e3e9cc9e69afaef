//! Node configuration: each subsystem's own config, bundled. `lode node`'s flags become one
//! of these (see `cli`), already validated; each subsystem is started with its part only.

use std::path::PathBuf;

use lode_chain::ChainParams;

use crate::chain_task::ChainConfig;
use crate::miner::MiningConfig;
use crate::network::NetworkConfig;
use crate::rpc::config::RpcConfig;
use crate::wallet::WalletConfig;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (default).
    Human,
    /// One JSON object per line.
    Json,
}

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Network parameters (devnet, regtest or a chain spec): every subsystem's rules.
    pub params: ChainParams,
    /// Data directory (chain store, node key, wallet, cookie).
    pub data_dir: PathBuf,
    /// The chain task (its cache).
    pub chain: ChainConfig,
    /// The P2P side.
    pub network: NetworkConfig,
    /// The RPC server (`None`: no HTTP port).
    pub rpc: Option<RpcConfig>,
    /// The embedded miner.
    pub mining: MiningConfig,
    /// How the built-in wallet is chosen.
    pub wallet: WalletConfig,
    /// The Stratum server (`None`: off).
    pub stratum: Option<crate::stratum::StratumConfig>,
}

impl NodeConfig {
    /// A configuration with defaults for `params` in `data_dir`, listening on an OS-chosen
    /// loopback port with mDNS and Kademlia off and no RPC: what tests and embedders start
    /// from.
    pub fn local(params: ChainParams, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            params,
            data_dir,
            chain: ChainConfig::default(),
            network: NetworkConfig::default(),
            rpc: None,
            mining: MiningConfig::default(),
            wallet: WalletConfig::default(),
            stratum: None,
        }
    }
}
