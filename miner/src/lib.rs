//! lode-miner: block templates and the nonce search.
//!
//! - [`template`]: the best tip plus mempool transactions chosen by ancestor fee rate, a
//!   coinbase paying subsidy + fees, validated with the chain's consensus code before any
//!   search.
//! - [`sha256`]: header hashing for the search (midstate, SHA-NI kernel, portable fallback).
//! - [`worker`]: N low-priority search threads; a new template abandons stale work at once.
//! - [`stats`]: hash rate per thread over a sliding window, blocks found/stale, rewards.

#![warn(missing_docs)]

pub mod controller;
pub mod error;
pub mod generate;
pub mod sha256;
pub mod stats;
pub mod template;
pub mod worker;

pub use controller::{MiningController, Refresh};
pub use error::MinerError;
pub use generate::generate;
pub use sha256::{kernel_name, HeaderHasher, Kernel, SearchOutcome, Target};
pub use stats::{MinerStats, StatsSnapshot};
pub use template::{build_template, BlockTemplate, TemplateTx, TxSource};
pub use worker::{mine_blocking, FoundBlock, Miner};

/// Free text every coinbase of this miner carries.
pub const COINBASE_MESSAGE: &[u8] = b"lode";
