//! Opening sled so that a damaged store is an error, never a crash: sled 0.34 can panic
//! while recovering a damaged log (reported after crashes), and a panic trace tells a user
//! nothing about how to recover. The panic is caught, its message kept, and the store is
//! left exactly as it was found.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use crate::error::ChainError;

thread_local! {
    /// Set while this thread runs [`catch_quietly`]: the panic's message goes here instead
    /// of being printed.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that stays silent for a thread inside
/// [`catch_quietly`] and hands every other panic to the hook that was there before.
fn install_hook() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let quiet = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        let msg = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_string())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
                        *slot = Some(format!("{msg}{}", at.unwrap_or_default()));
                        true
                    }
                    None => false,
                }
            });
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err(message)` with nothing printed.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CAUGHT.with(|c| c.borrow_mut().replace(None));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let message = CAUGHT
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
        .flatten();
    result.map_err(|_| message.unwrap_or_else(|| "unknown panic".into()))
}

/// Sled's own page cache (`sled::Config::cache_capacity`): 16 MiB, fixed. Sled's default is
/// 1 GiB, and sled keeps every page written in it until that fills, so a syncing node grew by
/// everything it stored (ADR 0006). Hot UTXO reads are served by the write-back cache above
/// sled and by the OS page cache below it.
pub const SLED_PAGE_CACHE_BYTES: u64 = 16 << 20;

/// Opens the sled database at `path`; an error or a panic of sled becomes
/// [`ChainError::Unopenable`].
pub(super) fn open_db(path: &Path) -> Result<sled::Db, ChainError> {
    let unopenable = |reason: String| ChainError::Unopenable {
        path: path.display().to_string(),
        reason,
    };
    let opened = catch_quietly(|| {
        sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(SLED_PAGE_CACHE_BYTES)
            .open()
    })
    .map_err(|panic| unopenable(format!("sled panicked while opening it: {panic}")))?;
    opened.map_err(|e| match e {
        // Out of space or permission problems are not damage: report them as they are.
        sled::Error::Io(io)
            if !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            ChainError::Store(sled::Error::Io(io))
        }
        other => unopenable(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_later_panics_still_unwind() {
        let r: Result<(), String> = catch_quietly(|| panic!("bad segment header"));
        let msg = r.expect_err("caught");
        assert!(msg.starts_with("bad segment header at "), "{msg}");
        assert_eq!(catch_quietly(|| 7), Ok(7));
        // Outside, panics behave as ever (caught here by catch_unwind, so the test passes).
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }
}
