//! What the daemon and its clients both rely on: the files a node keeps in its data dir
//! and their formats, default addresses, and parsers of values both sides accept.
//!
//! This module imports nothing from the daemon (`node`, `rpc`, `network`, …) nor from the
//! client side (`client`), so either side can use it without depending on the other.
//!
//! | module | what |
//! |---|---|
//! | [`coins`] | amounts on the JSON-RPC API: decimal coins as Core writes them |
//! | [`defaults`] | the RPC URL and cookie file names, the default RPC address |
//! | [`lines`] | newline-delimited lines with a length cap (Stratum's framing, both sides) |
//! | [`node_key`] | the node key file: its name, format, loading and first creation |
//! | [`signing`] | signed API requests: the HMAC message, headers, key files |
//! | [`parse`] | parsers shared by `lode node` flags and `lode devnet` flags |
//! | [`web`] | the embedded web pages (explorer, devnet page) and their security headers |
//! | [`stratum`] | Stratum v1's wire transforms (prevhash order, coinbase split, merkle branch, share targets), for the server and `lode miner` |

pub mod coins;
pub mod defaults;
pub mod lines;
pub mod node_key;
pub mod parse;
pub mod signing;
pub mod stratum;
pub mod web;
