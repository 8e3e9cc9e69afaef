//! The mining ledger's file in the data dir (`mining_ledger.bin`): a magic, then the
//! canonical encoding of [`SavedLedger`]. Written whole (temp file, fsync, rename) by the
//! one-second sampler when the ledger changed and once more when the node stops; at most
//! [`super::ledger::MAX_TRACKED`] blocks, so the file stays under [`MAX_FILE_BYTES`].

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ledger::{SavedLedger, MAX_TRACKED};

/// The file's name in the data dir.
pub const LEDGER_FILE: &str = "mining_ledger.bin";
const MAGIC: &[u8; 8] = b"LODELDG1";
/// Largest file read back: every tracked block at its encoded size, plus the header.
pub const MAX_FILE_BYTES: usize = MAX_TRACKED * 48 + 1024;

/// Why the ledger file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerFileError {
    /// The file system refused.
    #[error("mining ledger {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are not a ledger.
    #[error("mining ledger {path} is not a ledger file: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

fn io(path: &Path, source: std::io::Error) -> LedgerFileError {
    LedgerFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The saved ledger at `path`, or `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<SavedLedger>, LedgerFileError> {
    let corrupt = |reason: String| LedgerFileError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    // Size first: nothing is read, let alone allocated, for a file this ledger never writes.
    if len > MAX_FILE_BYTES as u64 {
        return Err(corrupt(format!("{len} bytes, more than {MAX_FILE_BYTES}")));
    }
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("wrong magic".into()))?;
    let saved: SavedLedger = lode_chain::encoding::decode(body, MAX_FILE_BYTES).map_err(|e| corrupt(e.to_string()))?;
    if saved.blocks.len() > MAX_TRACKED {
        return Err(corrupt(format!(
            "{} blocks, more than {MAX_TRACKED}",
            saved.blocks.len()
        )));
    }
    Ok(Some(saved))
}

/// Writes `saved` to `path` whole: a crash leaves the old file or the new one.
pub fn save(path: &Path, saved: &SavedLedger) -> Result<(), LedgerFileError> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&lode_chain::encoding::encode(saved));
    let tmp: PathBuf = path.with_extension("bin.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::super::ledger::SavedBlock;
    use super::*;

    fn sample() -> SavedLedger {
        SavedLedger {
            genesis: [9; 32],
            blocks_found: 2,
            blocks_stale: 1,
            rewards: 50,
            blocks: vec![
                SavedBlock {
                    hash: [1; 32],
                    reward: 50,
                    on_best: true,
                },
                SavedBlock {
                    hash: [2; 32],
                    reward: 50,
                    on_best: false,
                },
            ],
        }
    }

    #[test]
    fn a_saved_ledger_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LEDGER_FILE);
        assert_eq!(load(&path).expect("no file is fine"), None);
        save(&path, &sample()).expect("save");
        assert_eq!(load(&path).expect("load"), Some(sample()));
    }

    #[test]
    fn foreign_and_oversized_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LEDGER_FILE);
        std::fs::write(&path, b"not a ledger").expect("write");
        let e = load(&path).expect_err("wrong magic");
        assert!(e.to_string().contains("wrong magic"), "{e}");
        std::fs::write(&path, vec![0u8; MAX_FILE_BYTES + 1]).expect("write");
        let e = load(&path).expect_err("too big");
        assert!(e.to_string().contains("more than"), "{e}");
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&lode_chain::encoding::encode(&sample())[..10]);
        std::fs::write(&path, truncated).expect("write");
        assert!(load(&path).is_err());
    }
}
