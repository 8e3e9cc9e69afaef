//! Consensus rules as small named checks, split by what they need:
//!
//! - [`tx`]: context-free transaction rules (shape, sizes, value ranges).
//! - [`block`]: context-free block rules (size, coinbase position, merkle root, PoW against
//!   the stated bits); produces a [`CheckedBlock`](crate::block::CheckedBlock).
//! - [`header`]: contextual header rules (expected difficulty, median time past, future
//!   limit).
//! - [`header_chain`]: a batch of headers as a chain on a trusted base (linkage, PoW and the
//!   contextual header rules), as headers-first sync checks it before asking for bodies.
//! - [`spend`]: contextual transaction rules (inputs exist and are unspent, maturity, keys,
//!   signatures, fees) and the block-level coinbase and fee rules.
//! - [`precheck`]: what can run ahead of a block's connect (its signatures, into the cache).

pub mod block;
pub mod header;
pub mod header_chain;
pub mod precheck;
pub mod spend;
pub mod tx;

pub use block::{check_block, check_block_unmined};
pub use header::{check_header_contextual, median_time_past, HeaderContext};
pub use header_chain::{
    check_header_chain, CheckedHeader, HeaderAncestors, HeaderChainBase, HeaderChainOutcome, HeaderChainStop,
    HeaderList, HeadersVerdict,
};
pub use spend::{check_block_spends, check_tx_inputs, BlockSpends, TxInputs};
pub use tx::check_transaction;
