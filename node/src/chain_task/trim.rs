//! [`Trimmer`]: hands the allocator's free memory back to the OS while blocks connect.
//!
//! Connecting blocks allocates and frees a great deal on several threads (sled's tree nodes,
//! decoded blocks, the write-back cache). glibc keeps what is freed in its arenas for reuse,
//! and only gives memory back from the top of each heap, so a syncing node's RSS kept growing
//! with the chain while its live heap did not (BENCHMARKS.md, issue 16 fifth pass: 320 MiB
//! RSS over a ≈ 210 MB heap after 2,000 blocks of 500 transactions). `malloc_trim(0)` returns
//! every free page of every arena. It costs milliseconds, so it runs at most once per
//! [`TRIM_EVERY`] and only after the chain task did work.

use std::time::{Duration, Instant};

/// Least time between two trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Trims the allocator at most once per [`TRIM_EVERY`].
pub struct Trimmer {
    last: Instant,
}

impl Default for Trimmer {
    fn default() -> Trimmer {
        Trimmer { last: Instant::now() }
    }
}

impl Trimmer {
    /// Returns free memory to the OS if the last trim was [`TRIM_EVERY`] ago or more.
    pub fn maybe_trim(&mut self) {
        if self.last.elapsed() < TRIM_EVERY {
            return;
        }
        let started = Instant::now();
        release_free_memory();
        self.last = Instant::now();
        tracing::trace!(us = started.elapsed().as_micros() as u64, "allocator trimmed");
    }
}

/// Gives the allocator's free pages back to the OS (glibc only; elsewhere nothing to do).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer and
    // may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives the allocator's free pages back to the OS (glibc only; elsewhere nothing to do).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
