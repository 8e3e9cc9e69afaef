//! lode-chain: the reference implementation of Lode's consensus rules.
//!
//! Types and their one canonical encoding (`encoding`, `header`, `transaction`, `block`),
//! the rules (`pow`, `merkle`, `sig`, `validation`), network parameters (`params`), and the
//! durable chain state in sled (`store`, `state`). Nothing here knows about networking.

#![warn(missing_docs)]

pub mod address;
pub mod amount;
pub mod atomic_file;
pub mod block;
pub mod build;
pub mod encoding;
pub mod error;
pub mod event;
pub mod hash;
pub mod header;
pub mod height;
pub mod invalid;
pub mod mempool;
pub mod merkle;
pub mod orphan;
pub mod params;
pub mod pow;
pub mod side_headers;
pub mod sig;
pub mod state;
pub mod store;
pub mod transaction;
pub mod utxo;
pub mod validation;

pub use address::{AddressError, PubkeyHash};
pub use amount::{Amount, ParseAmountError, COIN};
pub use block::{Block, CheckedBlock};
pub use error::{ConsensusError, DecodeError};
pub use event::ChainEvent;
pub use hash::{Hash256, ParseHashError};
pub use header::BlockHeader;
pub use height::Height;
pub use params::{bitcoin_genesis_header, ChainParams, DifficultyAlgorithm};
pub use state::{AcceptOutcome, AcceptStatus, ChainState};
pub use transaction::{CoinbaseData, KeyUnlock, OutPoint, Transaction, TxIn, TxOut, Unlock};
pub use validation::{HeaderChainBase, HeaderChainOutcome, HeadersVerdict};
