//! Lab slots: a number held with an exclusive `flock` for a lab's lifetime, so labs built
//! at once (parallel tests) get distinct name prefixes and subnets, and a slot whose holder
//! died (the lock goes with the process, even on SIGKILL) is free again, its leftovers
//! stale and safe to remove.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::NetlabError;

/// Where slot lock files live.
const LOCK_DIR: &str = "/run/lode-netlab";
/// Slots 1..=MAX_SLOT (each a /24 in 10.78.0.0/16).
pub const MAX_SLOT: u8 = 200;

/// A held slot; dropping it releases the lock.
#[derive(Debug)]
pub struct Slot {
    /// The slot number.
    pub n: u8,
    _lock: File,
}

impl Slot {
    /// The first free slot.
    pub fn acquire() -> Result<Slot, NetlabError> {
        let dir = PathBuf::from(LOCK_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| NetlabError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        for n in 1..=MAX_SLOT {
            let path = dir.join(format!("slot-{n}.lock"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| NetlabError::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Slot { n, _lock: file });
            }
        }
        Err(NetlabError::NoSlot(MAX_SLOT))
    }
}
