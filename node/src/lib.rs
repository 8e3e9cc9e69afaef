//! lode-node: the Lode node as a library; `main.rs` only parses flags and waits for signals.
//!
//! # Layout
//!
//! | side | modules | may use |
//! |---|---|---|
//! | the daemon (`lode node`) | [`node`], [`chain_task`], [`network`], [`rpc`], [`api`], [`mining`], [`config`], [`node_args`], [`error`], [`metrics`], [`progress`] | [`common`], `lode-chain`, `lode-miner`, `lode-wallet` |
//! | its clients (`lode wallet\|mine\|chain\|devnet`) — [`client`] | [`client::http`] (`RpcClient`), [`client::commands`], [`client::devnet`], [`client::devnet_file`] | [`common`], `lode-chain`, `lode-wallet`; nodes only over HTTP |
//! | shared — [`common`] | [`common::defaults`], [`common::node_key`], [`common::parse`] | `lode-chain` and outside crates; nothing of either side |
//!
//! The daemon never imports [`client`] and the client never imports the daemon's modules.
//!
//! # Tasks and ownership
//!
//! | task | runs on | owns | talks through |
//! |---|---|---|---|
//! | chain task ([`chain_task`]) | its own OS thread (`lode-chain`) | the [`ChainState`](lode_chain::ChainState) (sled) — its **only writer** — and the mempool (behind the [`chain_task::TxSink`] seam; the wallet tracker goes here too) | a bounded `mpsc` of [`chain_task::ChainCommand`]s with oneshot replies; publishes the tip on a `watch`, chain events on a `broadcast`, and transactions to announce (returned by reorgs, unlocked orphans) on another `broadcast` — it never blocks on the network |
//! | network event loop ([`network`]) | one tokio task | the libp2p `Swarm` (gossipsub, sync request-response, identify, ping, mDNS, Kademlia, bans), the sync manager, peer scores | a bounded `mpsc` of [`network::NetCommand`]s; sends work to the chain task with `try_send` and awaits verdicts as futures polled by its `select!`, never inside an event handler |
//! | node handle ([`NodeHandle`]) | the caller | the senders, the tip receiver, the join handles | `submit_block`, `submit_tx`, `dial`, `peers`, `shutdown` … |
//! | `main` | the tokio runtime | the handle | Ctrl-C / SIGTERM → [`NodeHandle::shutdown`]; a second Ctrl-C exits at once |
//!
//! | built-in wallet ([`mining::NodeWallet`]) | inside the chain task | keys (`DATA_DIR/wallet/`) and the coin view | fed every chain event by the chain task |
//! | miner workers ([`mining::NodeMiner`]) | N low-priority OS threads | nonce search only | templates from the chain task; found blocks on a std channel to a bridge thread, which submits them like any block and gossips them |
//! | tick | one tokio task | nothing | sends `Tick` to the chain task every second (template refresh for fees) |
//! | RPC server ([`rpc`]) | tokio tasks (accept loop, one per connection, event log) | the cookie, rate-limit buckets, recent events | a [`NodeApi`] with *weak* senders: closures run on the chain thread ([`chain_task::ChainCommand::Run`]), commands to the event loop; never keeps the node alive at shutdown |
//!
//! # Shutdown
//! The shutdown signal stops the event loop, which closes its connections; the chain task
//! then sees its command queue close, finishes every command already queued (so a block
//! being written is written whole), flushes sled and exits; [`NodeHandle::shutdown`]
//! returns when both have.

pub mod api;
pub mod chain_task;
pub mod client;
pub mod common;
pub mod config;
pub mod error;
pub mod metrics;
pub mod mining;
pub mod network;
pub mod node;
pub mod node_args;
pub mod progress;
pub mod rpc;

pub use api::NodeApi;
pub use config::{LogFormat, NodeConfig};
pub use error::NodeError;
pub use node::{start, NodeHandle};
