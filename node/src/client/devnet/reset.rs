//! `lode devnet reset`: stop the devnet if it runs, then delete its directory — after a
//! y/N question on a terminal, or with `--yes`.

use std::io::IsTerminal;
use std::path::Path;

use super::down;
use super::error::DevnetError;
use super::file::DEVNET_FILE;
use super::lock::LOCK_FILE;
use super::output;

/// Flags of `lode devnet reset`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResetArgs {
    /// Directory of the devnet.
    #[arg(long, default_value = "./devnet")]
    pub dir: std::path::PathBuf,
    /// Delete without asking (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Stops and deletes the devnet directory.
pub async fn reset(args: &ResetArgs) -> Result<(), DevnetError> {
    let dir = &args.dir;
    if !dir.exists() {
        output::line(&format!("nothing to reset: {} does not exist", dir.display()));
        return Ok(());
    }
    // Never delete a directory that is not a devnet's (a mistyped --dir).
    if !dir.join(DEVNET_FILE).exists() && !dir.join(LOCK_FILE).exists() {
        return Err(DevnetError::NoDevnet {
            dir: dir.display().to_string(),
            file: DEVNET_FILE.into(),
        });
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(DevnetError::NeedsConfirmation {
                dir: dir.display().to_string(),
            });
        }
        if !output::confirm(&format!("delete {} with every node's chain and wallet?", dir.display())) {
            output::line("nothing deleted");
            return Ok(());
        }
    }
    if down::stop(dir).await? == down::Stopped::Stopped {
        output::line("devnet stopped");
    }
    remove(dir)?;
    output::line(&format!("deleted {}", dir.display()));
    Ok(())
}

fn remove(dir: &Path) -> Result<(), DevnetError> {
    std::fs::remove_dir_all(dir).map_err(|e| DevnetError::io(dir, e))
}
