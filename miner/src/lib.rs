//! lode-miner: block templates and the nonce search.
//!
//! [`sha256`] hashes headers for the search (midstate, SHA-NI kernel, portable fallback).

pub mod sha256;

pub use sha256::{kernel_name, HeaderHasher, Kernel, SearchOutcome, Target};
