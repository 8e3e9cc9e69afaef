//! The client side of the `lode` binary: everything that talks to nodes from outside.
//! `lode wallet|mine|chain` call one node; `lode devnet` runs several `lode node` processes
//! and drives them.
//!
//! The client reaches a node only over its HTTP port (JSON-RPC and REST, `docs/API.md`) and
//! the files a node publishes in its data dir ([`crate::common`]); it never imports the
//! daemon's modules, and no daemon module imports it. It may use `lode-chain` and
//! `lode-wallet` types.
//!
//! | module | what |
//! |---|---|
//! | [`http`] | [`RpcClient`]: JSON-RPC calls and REST `GET`s to one node, cookie reading |
//! | [`commands`] | `lode wallet|mine|chain`: pick a node, call it, print a report |
//! | [`devnet`] | `lode devnet up|down|status|partition|heal|reset`: the devnet supervisor |
//! | [`stratum`] | Stratum v1's miner side: a connection to any Stratum server, and `lode miner` (over TCP) |
//! | [`devnet_file`] | `devnet.json`: how the client commands find a devnet's nodes by name |

pub mod commands;
pub mod devnet;
pub mod devnet_file;
pub mod http;
pub mod stratum;

pub use http::{ClientError, Credential, RpcClient};
