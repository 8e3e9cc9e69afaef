//! The RPC server's own configuration.

use std::net::SocketAddr;

use super::auth::{ApiKey, RpcAuthUser};

/// Default RPC address.
pub use crate::common::defaults::DEFAULT_RPC_ADDR;
/// Default public requests per second per client address.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// RPC server settings.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Public requests per second per client address (0: unlimited).
    pub rate_limit: u32,
    /// API keys.
    pub api_keys: Vec<ApiKey>,
    /// Core-style `rpcauth` users (`--rpc-auth`).
    pub rpc_auth: Vec<RpcAuthUser>,
}

impl RpcConfig {
    /// Loopback on the default port with the default limits and no keys.
    pub fn local(listen: SocketAddr) -> RpcConfig {
        RpcConfig {
            listen,
            rate_limit: DEFAULT_RATE_LIMIT,
            api_keys: Vec::new(),
            rpc_auth: Vec::new(),
        }
    }
}
