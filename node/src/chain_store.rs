//! The chain store's admin side: opening it with a recovery hint when it is damaged, and
//! `lode chain reindex` (rebuild the UTXO set and indexes from the stored blocks).
//! docs/DURABILITY.md says what to do when.

use std::path::{Path, PathBuf};

use lode_chain::error::ChainError;
use lode_chain::store::ReindexReport;
use lode_chain::{ChainParams, ChainState};

use crate::error::NodeError;

/// The chain store's directory inside a data dir.
pub const CHAIN_DIR: &str = "chain";

/// Opens the chain in `data_dir`. A damaged store is never changed; the error names the
/// commands that recover (reindex when sled can read it, else move it aside and resync).
pub fn open(data_dir: &Path, params: ChainParams) -> Result<ChainState, NodeError> {
    let network = params.name.clone();
    ChainState::open(&data_dir.join(CHAIN_DIR), params).map_err(|e| with_fix(e, data_dir, &network))
}

/// Adds the recovery hint to a damaged store's error; other errors pass unchanged.
pub fn with_fix(error: ChainError, data_dir: &Path, network: &str) -> NodeError {
    let chain = data_dir.join(CHAIN_DIR);
    let resync = format!(
        "move {} aside (mv {0} {0}.damaged) and start the node again: it resyncs from its peers",
        chain.display()
    );
    let fix = match &error {
        ChainError::Unopenable { .. } => Some(resync),
        ChainError::Corrupt(_) | ChainError::Decode(_) | ChainError::VerifyFailed { .. } => Some(format!(
            "run `lode chain reindex --network {network} --data-dir {}` to rebuild it from its stored blocks, or {resync}",
            data_dir.display()
        )),
        _ => None,
    };
    match fix {
        Some(fix) => NodeError::DamagedStore {
            error: Box::new(error),
            fix,
        },
        None => NodeError::Chain(error),
    }
}

/// `lode chain reindex`: rebuilds the chain in `data_dir` (the node must be stopped) from
/// its stored blocks.
pub fn reindex(data_dir: &Path, params: ChainParams) -> Result<ReindexReport, NodeError> {
    let network = params.name.clone();
    let path: PathBuf = data_dir.join(CHAIN_DIR);
    match ChainState::reindex(&path, params) {
        Ok((_, report)) => Ok(report),
        Err(ChainError::Store(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
            Err(NodeError::Config(format!(
                "{} is in use: stop the node running on it first",
                path.display()
            )))
        }
        Err(e @ ChainError::Unopenable { .. }) => Err(with_fix(e, data_dir, &network)),
        Err(e) => Err(NodeError::Chain(e)),
    }
}
