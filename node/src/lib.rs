//! lode-node: the Lode node as a library; `main.rs` only parses flags and waits for signals.
//! `docs/ARCHITECTURE.md` is the map; this is the summary.
//!
//! # Layout
//!
//! | side | modules | may use |
//! |---|---|---|
//! | the daemon (`lode node`) | [`node`], [`chain_task`], [`network`], [`rpc`], [`api`], [`wallet`], [`miner`], [`config`], [`node_args`], [`error`], [`metrics`], [`progress`] | [`common`], `lode-chain`, `lode-miner`, `lode-wallet` |
//! | its clients (`lode wallet\|mine\|chain\|devnet`) — [`client`] | [`client::http`] (`RpcClient`), [`client::commands`], [`client::devnet`], [`client::devnet_file`] | [`common`], `lode-chain`, `lode-wallet`; nodes only over HTTP |
//! | shared — [`common`] | [`common::defaults`], [`common::node_key`], [`common::parse`] | `lode-chain` and outside crates; nothing of either side |
//!
//! The daemon never imports [`client`] and the client never imports the daemon's modules.
//!
//! # Tasks and ownership
//!
//! | task | runs on | owns | talks through |
//! |---|---|---|---|
//! | chain task ([`chain_task`]) | its own OS thread (`lode-chain`) | the [`ChainState`](lode_chain::ChainState) (sled) — its **only writer** — the mempool (behind the [`chain_task::TxSink`] seam), the built-in wallet ([`wallet::NodeWallet`]) and the embedded miner ([`miner::NodeMiner`]) | typed requests through a [`chain_task::ChainHandle`]; reads see a read-only [`chain_task::ChainView`]; publishes the tip on a `watch`, chain events on a `broadcast`, and everything peers should hear from us on the one announce channel ([`chain_task::Announcement`]) — it never blocks on the network |
//! | network event loop ([`network`]) | one tokio task | the libp2p `Swarm` (gossipsub, sync request-response, identify, ping, mDNS, Kademlia, bans), the sync manager, peer scores | a [`network::NetworkHandle`]; hands gossip and sync work to the chain task without waiting and awaits verdicts as futures polled by its `select!`; the only publisher of announcements |
//! | precheck ([`chain_task::Prechecker`]) | one OS thread | nothing but the signature cache | verifies downloaded blocks' signatures ahead of their connect |
//! | miner workers ([`miner::NodeMiner`]) | N low-priority OS threads | nonce search only | templates from the chain task; found blocks go back into the chain task's queue as local blocks (a bridge thread), which announces them |
//! | tick | one tokio task | nothing | a tick to the chain task every second (template refresh for fees, wallet unlock expiry, the cache's interval flush) |
//! | RPC server ([`rpc`]) | tokio tasks (accept loop, one per connection, event log) | the cookie, rate-limit buckets, recent events | a [`NodeApi`] with *weak* handles; never keeps the node alive at shutdown |
//! | node handle ([`NodeHandle`]) | the caller | the strong handles, the join handles | `submit_block`, `submit_tx`, `dial`, `peers`, `shutdown` … |
//! | `main` | the tokio runtime | the handle | Ctrl-C / SIGTERM → [`NodeHandle::shutdown`]; a second Ctrl-C exits at once |
//!
//! # Shutdown
//! The shutdown signal stops the event loop, which closes its connections; once the last
//! strong [`chain_task::ChainHandle`] is gone the chain task finishes every request already
//! queued (so a block being written is written whole), stops the miner, flushes sled and
//! exits; [`NodeHandle::shutdown`] returns when both have.

#![warn(missing_docs)]

pub mod api;
pub mod chain_store;
pub mod chain_task;
pub mod client;
pub mod common;
pub mod config;
pub mod error;
pub mod metrics;
pub mod miner;
#[cfg(target_os = "linux")]
pub mod netlab;
pub mod network;
pub mod node;
pub mod node_args;
pub mod progress;
pub mod refetch;
pub mod rpc;
pub mod stratum;
mod task_sender;
pub mod wallet;

pub use api::NodeApi;
pub use config::{LogFormat, NodeConfig};
pub use error::NodeError;
pub use node::{start, NodeHandle};
