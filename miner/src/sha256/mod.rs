//! Double SHA-256 of block headers, specialised for the nonce search.
//!
//! A header is 80 bytes: SHA-256 reads it as two 64-byte blocks, and only the second one
//! holds the nonce. [`HeaderHasher`] compresses the first block once per template (the
//! midstate), so each nonce costs one compression for the 16-byte tail and one for the
//! second SHA-256 of the 32-byte digest. On x86_64 CPUs with SHA-NI a kernel built on
//! `sha256rnds2` runs both compressions inline, several nonces interleaved; elsewhere a
//! scalar kernel does the same work.

mod portable;
#[cfg(target_arch = "x86_64")]
mod shani;

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lode_chain::header::HEADER_SIZE;
use lode_chain::pow::{target_from_bits, U256};
use lode_chain::BlockHeader;

/// SHA-256 initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// The header's second block as words: 16 tail bytes (words 0..4), then SHA-256 padding for
/// an 80-byte message: the 0x80 terminator and the length in bits (640).
const TAIL_BLOCK_PAD: [u32; 16] = [0, 0, 0, 0, 0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 640];

/// The second SHA-256's only block: the 32-byte first hash (words 0..8), then padding for
/// 32 bytes (256 bits).
const SECOND_BLOCK_PAD: [u32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0x8000_0000, 0, 0, 0, 0, 0, 0, 256];

/// Nonces hashed between two looks at the stop flag: about 0.5 ms with SHA-NI and a few ms
/// on the portable kernel, far inside the 50 ms a new tip may take to abort a search.
const CHUNK: u64 = 8192;

/// Everything about a header that does not depend on the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Template {
    /// State after compressing header bytes 0..64.
    midstate: [u32; 8],
    /// Big-endian words of header bytes 64..76 (merkle root tail, time, bits).
    tail: [u32; 3],
    /// State after rounds 0 and 1 of the tail block, which see only `tail[0]` and `tail[1]`.
    after2: [u32; 8],
}

impl Template {
    fn new(header: &[u8; HEADER_SIZE]) -> Template {
        let word =
            |i: usize| u32::from_be_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]);
        let mut first_block = [0u32; 16];
        for (i, w) in first_block.iter_mut().enumerate() {
            *w = word(i);
        }
        let mut midstate = H0;
        portable::compress(&mut midstate, &first_block);
        let tail = [word(16), word(17), word(18)];
        let mut schedule = [0u32; 64];
        schedule[..3].copy_from_slice(&tail);
        let mut after2 = midstate;
        portable::rounds(&mut after2, &schedule, 0, 2);
        Template { midstate, tail, after2 }
    }
}

/// A nonce-hashing implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Scalar Rust: any CPU.
    Portable,
    /// SHA-NI, one nonce at a time.
    ShaNi1,
    /// SHA-NI, two nonces interleaved.
    ShaNi2,
    /// SHA-NI, three nonces interleaved.
    ShaNi3,
    /// SHA-NI, four nonces interleaved.
    ShaNi4,
}

impl Kernel {
    /// Every kernel, supported here or not.
    pub const ALL: [Kernel; 5] = [
        Kernel::Portable,
        Kernel::ShaNi1,
        Kernel::ShaNi2,
        Kernel::ShaNi3,
        Kernel::ShaNi4,
    ];

    /// The fastest kernel this CPU supports.
    pub fn best() -> Kernel {
        // Three and four interleaved nonces measured fastest (a tie) on the project's Zen 3
        // VMs; four also divides the search chunk (BENCHMARKS.md).
        if Kernel::ShaNi4.is_supported() {
            Kernel::ShaNi4
        } else {
            Kernel::Portable
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::ShaNi1 | Kernel::ShaNi2 | Kernel::ShaNi3 | Kernel::ShaNi4 => has_sha_ni(),
        }
    }

    /// A short name for logs and stats.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::ShaNi1 => "sha-ni x1",
            Kernel::ShaNi2 => "sha-ni x2",
            Kernel::ShaNi3 => "sha-ni x3",
            Kernel::ShaNi4 => "sha-ni x4",
        }
    }
}

/// The name of the kernel [`HeaderHasher::new`] picks on this CPU.
pub fn kernel_name() -> &'static str {
    Kernel::best().name()
}

#[cfg(target_arch = "x86_64")]
fn has_sha_ni() -> bool {
    // std caches the CPUID answer, so this is cheap enough to ask per hasher.
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_sha_ni() -> bool {
    false
}

/// A 256-bit target a hash must not exceed, both read as little-endian numbers (Bitcoin's
/// `UintToArith256` order, the internal byte order of [`lode_chain::Hash256`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    le: [u8; 32],
    /// The most significant 32 bits: the kernels' cheap first test.
    top: u32,
}

impl Target {
    /// A target from its 32 little-endian bytes.
    pub fn from_le_bytes(le: [u8; 32]) -> Target {
        let top = u32::from_le_bytes([le[28], le[29], le[30], le[31]]);
        Target { le, top }
    }

    /// A target from a number, as [`lode_chain::pow::target_from_bits`] returns it.
    pub fn from_u256(target: &U256) -> Target {
        Target::from_le_bytes(target.to_little_endian())
    }

    /// The target encoded by compact `bits`; `None` if negative, zero or overflowing.
    pub fn from_bits(bits: u32) -> Option<Target> {
        target_from_bits(bits).map(|t| Target::from_u256(&t))
    }

    /// Whether `hash` (internal byte order) is at most the target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        for i in (0..32).rev() {
            if hash[i] != self.le[i] {
                return hash[i] < self.le[i];
            }
        }
        true
    }
}

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchOutcome {
    /// The first nonce of the range whose hash meets the target.
    Found(u32),
    /// No nonce in the range meets the target.
    Exhausted,
    /// The stop flag was raised; nonces from `next` on were not tried.
    Stopped {
        /// The first nonce not tried.
        next: u32,
    },
}

/// Hashes one header template for any nonce: midstate computed once, kernel chosen once.
#[derive(Clone, Copy, Debug)]
pub struct HeaderHasher {
    template: Template,
    kernel: Kernel,
}

impl HeaderHasher {
    /// A hasher for the canonical 80 header bytes (the nonce bytes are ignored), using the
    /// fastest kernel this CPU supports.
    pub fn new(header: &[u8; HEADER_SIZE]) -> HeaderHasher {
        HeaderHasher {
            template: Template::new(header),
            kernel: Kernel::best(),
        }
    }

    /// A hasher for `header`, whatever its nonce.
    pub fn from_header(header: &BlockHeader) -> HeaderHasher {
        HeaderHasher::new(&header.to_bytes())
    }

    /// A hasher forced onto `kernel`, or `None` if this CPU cannot run it.
    pub fn with_kernel(header: &[u8; HEADER_SIZE], kernel: Kernel) -> Option<HeaderHasher> {
        kernel.is_supported().then(|| HeaderHasher {
            template: Template::new(header),
            kernel,
        })
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The kernel's name, for logs and stats.
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }

    /// The block hash with `nonce`, in internal byte order: equal to
    /// `BlockHeader::hash().0` for the header with that nonce.
    pub fn hash(&self, nonce: u32) -> [u8; 32] {
        let words = match self.kernel {
            Kernel::Portable => portable::hash_words(&self.template, nonce),
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi1 | Kernel::ShaNi2 | Kernel::ShaNi3 | Kernel::ShaNi4 => {
                // SAFETY: a hasher holds a SHA-NI kernel only if `with_kernel` or `new` found
                // the CPU features the kernel is compiled for.
                unsafe { shani::hash_words(&self.template, nonce) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi1 | Kernel::ShaNi2 | Kernel::ShaNi3 | Kernel::ShaNi4 => {
                portable::hash_words(&self.template, nonce)
            }
        };
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(words) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Searches `nonces` in order for the first hash at most `target`, looking at `stop`
    /// every few thousand nonces.
    pub fn search(&self, nonces: RangeInclusive<u32>, target: &Target, stop: &AtomicBool) -> SearchOutcome {
        self.search_with_progress(nonces, target, stop, &AtomicU64::new(0))
    }

    /// [`search`](Self::search), also adding the number of nonces hashed to `progress` as it
    /// goes (once per chunk of a few thousand), for hash-rate accounting.
    pub fn search_with_progress(
        &self,
        nonces: RangeInclusive<u32>,
        target: &Target,
        stop: &AtomicBool,
        progress: &AtomicU64,
    ) -> SearchOutcome {
        if nonces.is_empty() {
            return SearchOutcome::Exhausted;
        }
        // u64 so that a range ending at u32::MAX needs no wrapping arithmetic.
        let end = u64::from(*nonces.end()) + 1;
        let mut next = u64::from(*nonces.start());
        while next < end {
            if stop.load(Ordering::Relaxed) {
                return SearchOutcome::Stopped { next: next as u32 };
            }
            let chunk_end = end.min(next + CHUNK);
            let mut from = next;
            while from < chunk_end {
                // The kernel only tests the hash's top word; confirm candidates in full.
                let Some(candidate) = self.scan(from as u32, (chunk_end - from) as u32, target.top) else {
                    break;
                };
                if target.is_met_by(&self.hash(candidate)) {
                    progress.fetch_add(u64::from(candidate) + 1 - next, Ordering::Relaxed);
                    return SearchOutcome::Found(candidate);
                }
                from = u64::from(candidate) + 1;
            }
            progress.fetch_add(chunk_end - next, Ordering::Relaxed);
            next = chunk_end;
        }
        SearchOutcome::Exhausted
    }

    /// The first nonce of `start..start + count` whose hash's top word passes `top`.
    fn scan(&self, start: u32, count: u32, top: u32) -> Option<u32> {
        let t = &self.template;
        match self.kernel {
            Kernel::Portable => portable::scan(t, start, count, top),
            // SAFETY (all four): a hasher holds a SHA-NI kernel only if `with_kernel` or `new`
            // found the CPU features the kernel is compiled for.
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi1 => unsafe { shani::scan::<1>(t, start, count, top) },
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi2 => unsafe { shani::scan::<2>(t, start, count, top) },
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi3 => unsafe { shani::scan::<3>(t, start, count, top) },
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi4 => unsafe { shani::scan::<4>(t, start, count, top) },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi1 | Kernel::ShaNi2 | Kernel::ShaNi3 | Kernel::ShaNi4 => portable::scan(t, start, count, top),
        }
    }
}

/// Runs `iterations` × `streams` independent SHA-NI compressions and returns a checksum, or
/// `None` without SHA-NI or for a variant that does not exist. `streams` is 2, 3 or 4;
/// `alternate` orders each pair of rounds lane by lane (see `shani.rs`). Benchmark support:
/// the bound the nonce kernel is judged against, built from the same instruction sequence.
#[doc(hidden)]
pub fn shani_compression_bound(streams: usize, alternate: bool, iterations: u64) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if has_sha_ni() {
        // SAFETY: the CPU features the kernel is compiled for were just detected.
        return unsafe {
            match (streams, alternate) {
                (2, false) => Some(shani::independent_compressions::<2, false>(iterations)),
                (2, true) => Some(shani::independent_compressions::<2, true>(iterations)),
                (3, false) => Some(shani::independent_compressions::<3, false>(iterations)),
                (3, true) => Some(shani::independent_compressions::<3, true>(iterations)),
                (4, false) => Some(shani::independent_compressions::<4, false>(iterations)),
                (4, true) => Some(shani::independent_compressions::<4, true>(iterations)),
                _ => None,
            }
        };
    }
    let _ = (streams, alternate, iterations);
    None
}
