//! `DIR/devnet.lock`: one `devnet up` per directory.
//!
//! `up` holds an exclusive `flock` on the file for its whole life and writes its pid into
//! it. The kernel drops the lock when the process dies, however it dies, so a stale file
//! never blocks the next `up`. The descriptor is close-on-exec: node processes never
//! inherit it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::DevnetError;

/// File name inside the devnet directory.
pub const LOCK_FILE: &str = "devnet.lock";

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct DevnetLock {
    _file: File,
}

/// Tries a non-blocking exclusive flock; `Ok(false)` when another process holds it.
fn try_flock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock only reads the descriptor number, which `file` owns and keeps open
    // for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}

impl DevnetLock {
    /// Takes the lock of `dir` for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DevnetLock, DevnetError> {
        let path = lock_path(dir);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DevnetError::io(&path, e))?;
        if !try_flock(&file).map_err(|e| DevnetError::io(&path, e))? {
            return Err(DevnetError::AlreadyRunning {
                dir: dir.display().to_string(),
                pid: read_pid(&mut file).unwrap_or(0),
            });
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| DevnetError::io(&path, e))?;
        Ok(DevnetLock { _file: file })
    }
}

/// The pid of the `up` holding `dir`'s lock, if one does.
pub fn holder(dir: &Path) -> Result<Option<u32>, DevnetError> {
    let path = lock_path(dir);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DevnetError::io(&path, e)),
    };
    if try_flock(&file).map_err(|e| DevnetError::io(&path, e))? {
        // Nobody held it; closing the file releases our probe.
        return Ok(None);
    }
    Ok(Some(read_pid(&mut file).unwrap_or(0)))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(holder(dir.path()).ok(), Some(None));
        let lock = DevnetLock::acquire(dir.path()).expect("first");
        assert_eq!(holder(dir.path()).ok(), Some(Some(std::process::id())));
        let e = DevnetLock::acquire(dir.path()).expect_err("second");
        assert!(e.to_string().contains(&std::process::id().to_string()), "{e}");
        drop(lock);
        assert_eq!(holder(dir.path()).ok(), Some(None));
        assert!(DevnetLock::acquire(dir.path()).is_ok());
    }
}
