//! The SHA-NI nonce kernel: both compressions of a nonce inlined into the search loop, with
//! `N` nonces interleaved so one nonce's `sha256rnds2` latency hides behind another's.
//!
//! Why interleave: on the project's Zen 3 VMs `sha256rnds2` has about 4 cycles of latency
//! but issues about once a cycle, so a single nonce's chain of 62 dependent `sha256rnds2`
//! leaves the unit mostly idle. Interleaving only pays once the lanes are kept in lock-step
//! (see `lockstep!`): measured one thread, 16.5 M nonces/s with one lane, 25.7 M with two,
//! 28 M with three or four (BENCHMARKS.md).
//!
//! Every function here is compiled for `sha,sse2,ssse3,sse4.1`; callers must have checked
//! the CPU (see [`super::Kernel::is_supported`]). No function takes a pointer; the only
//! `unsafe` inside is the instruction-free `asm!` of `lockstep!`.

use core::arch::x86_64::*;

use super::{Template, H0, K};

/// `K[4g..4g + 4]` as a vector, lane 0 = `K[4g]` (folds to a constant).
macro_rules! k4 {
    ($g:expr) => {
        _mm_set_epi32(
            K[4 * $g + 3] as i32,
            K[4 * $g + 2] as i32,
            K[4 * $g + 1] as i32,
            K[4 * $g] as i32,
        )
    };
}

/// Rounds `4g..4g + 4` on every lane, message words `$w` (lane 0 = W[4g]).
macro_rules! rounds4 {
    ($abef:ident, $cdgh:ident, $w:ident, $g:expr) => {
        let mut wk = $w;
        // `sha256rnds2(cdgh, abef, wk)` runs two rounds and returns the new ABEF; the old
        // ABEF is then the new CDGH, so the two names simply swap roles. With `ALTERNATE`,
        // every lane's first pair of rounds comes before any lane's second (measured slower
        // for the nonce kernel, so only the bound tries it).
        if ALTERNATE {
            for j in 0..$abef.len() {
                wk[j] = _mm_add_epi32(wk[j], k4!($g));
                $cdgh[j] = _mm_sha256rnds2_epu32($cdgh[j], $abef[j], wk[j]);
            }
            for j in 0..$abef.len() {
                $abef[j] = _mm_sha256rnds2_epu32($abef[j], $cdgh[j], _mm_shuffle_epi32::<0x0E>(wk[j]));
            }
        } else {
            for j in 0..$abef.len() {
                wk[j] = _mm_add_epi32(wk[j], k4!($g));
                $cdgh[j] = _mm_sha256rnds2_epu32($cdgh[j], $abef[j], wk[j]);
                $abef[j] = _mm_sha256rnds2_epu32($abef[j], $cdgh[j], _mm_shuffle_epi32::<0x0E>(wk[j]));
            }
        }
        if LOCKSTEP {
            lockstep!($abef);
        }
    };
}

/// Keeps the lanes in step: without it LLVM's register-pressure scheduling runs one lane's
/// whole hash before the next one's, which leaves the lanes too far apart for the CPU to
/// overlap them. Each `asm!` (a comment, no instruction) makes a lane's next rounds depend (for the compiler only:
/// no instruction is emitted) on its neighbour's.
macro_rules! lockstep {
    ($abef:ident) => {
        for j in 1..$abef.len() {
            let (mut x, mut y) = ($abef[j - 1], $abef[j]);
            // SAFETY: the template is only a comment; the block passes two values through registers.
            unsafe {
                core::arch::asm!(
                    "/* lockstep {0} {1} */",
                    inout(xmm_reg) x,
                    inout(xmm_reg) y,
                    options(pure, nomem, nostack, preserves_flags)
                )
            };
            $abef[j - 1] = x;
            $abef[j] = y;
        }
    };
}

/// Next four schedule words `$w4` from the previous sixteen (`$w0` oldest).
macro_rules! schedule {
    ($w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident) => {
        for j in 0..$w0.len() {
            let t = _mm_add_epi32(
                _mm_sha256msg1_epu32($w0[j], $w1[j]),
                _mm_alignr_epi8::<4>($w3[j], $w2[j]),
            );
            $w4[j] = _mm_sha256msg2_epu32(t, $w3[j]);
        }
    };
}

/// Rounds 16..60, scheduling as it goes; leaves W[60..64] in `$w0`.
macro_rules! rounds_16_to_60 {
    ($abef:ident, $cdgh:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident) => {
        schedule!($w0, $w1, $w2, $w3, $w4);
        rounds4!($abef, $cdgh, $w4, 4);
        schedule!($w1, $w2, $w3, $w4, $w0);
        rounds4!($abef, $cdgh, $w0, 5);
        schedule!($w2, $w3, $w4, $w0, $w1);
        rounds4!($abef, $cdgh, $w1, 6);
        schedule!($w3, $w4, $w0, $w1, $w2);
        rounds4!($abef, $cdgh, $w2, 7);
        schedule!($w4, $w0, $w1, $w2, $w3);
        rounds4!($abef, $cdgh, $w3, 8);
        schedule!($w0, $w1, $w2, $w3, $w4);
        rounds4!($abef, $cdgh, $w4, 9);
        schedule!($w1, $w2, $w3, $w4, $w0);
        rounds4!($abef, $cdgh, $w0, 10);
        schedule!($w2, $w3, $w4, $w0, $w1);
        rounds4!($abef, $cdgh, $w1, 11);
        schedule!($w3, $w4, $w0, $w1, $w2);
        rounds4!($abef, $cdgh, $w2, 12);
        schedule!($w4, $w0, $w1, $w2, $w3);
        rounds4!($abef, $cdgh, $w3, 13);
        schedule!($w0, $w1, $w2, $w3, $w4);
        rounds4!($abef, $cdgh, $w4, 14);
        schedule!($w1, $w2, $w3, $w4, $w0);
    };
}

/// State words a..h in the (ABEF, CDGH) lane order `sha256rnds2` works on (lane 3 = A).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn pack(s: &[u32; 8]) -> (__m128i, __m128i) {
    let v = |i: usize| s[i] as i32;
    (
        _mm_set_epi32(v(0), v(1), v(4), v(5)),
        _mm_set_epi32(v(2), v(3), v(6), v(7)),
    )
}

/// The template's per-search constants, loaded into vectors once per scan.
struct Vectors {
    /// State after rounds 0 and 1 of the tail block.
    after2: (__m128i, __m128i),
    /// The midstate, for the tail block's feed-forward.
    mid: (__m128i, __m128i),
    /// Tail words W0..W2 in lanes 0..2; the nonce goes into lane 3.
    tail: __m128i,
}

impl Vectors {
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(t: &Template) -> Vectors {
        Vectors {
            after2: pack(&t.after2),
            mid: pack(&t.midstate),
            tail: _mm_set_epi32(0, t.tail[2] as i32, t.tail[1] as i32, t.tail[0] as i32),
        }
    }
}

/// Double SHA-256 of nonces `nonce..nonce + N`, one per lane.
///
/// With `FULL` it returns the final (ABEF, CDGH). Without, it stops after rounds 60 and 61 of
/// the second hash and returns only the ABEF then, whose lane 0 (F) plus `H0[7]` is already the
/// final word 7: it only shifts from e to f, g and h in the last rounds.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn double_sha<const N: usize, const FULL: bool>(v: &Vectors, nonce: u32) -> ([__m128i; N], [__m128i; N]) {
    const ALTERNATE: bool = false;
    const LOCKSTEP: bool = true;
    let zero = _mm_setzero_si128();

    // First SHA-256, tail block: W0..W2 from the header, W3 the nonce, then fixed padding.
    let mut w0 = [zero; N];
    for (j, w) in w0.iter_mut().enumerate() {
        // The header stores the nonce little-endian; SHA-256 reads big-endian words.
        *w = _mm_insert_epi32::<3>(v.tail, nonce.wrapping_add(j as u32).swap_bytes() as i32);
    }
    let mut w1 = [_mm_set_epi32(0, 0, 0, 0x8000_0000_u32 as i32); N];
    let mut w2 = [zero; N];
    let mut w3 = [_mm_set_epi32(640, 0, 0, 0); N];
    let mut w4 = [zero; N];

    // Rounds 0 and 1 see only W0 and W1: the template ran them. Rounds 2 and 3 come next.
    let mut abef = [v.after2.0; N];
    let mut cdgh = [v.after2.1; N];
    for j in 0..N {
        let wk = _mm_add_epi32(w0[j], k4!(0));
        cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], _mm_shuffle_epi32::<0x0E>(wk));
    }
    core::mem::swap(&mut abef, &mut cdgh);
    rounds4!(abef, cdgh, w1, 1);
    rounds4!(abef, cdgh, w2, 2);
    rounds4!(abef, cdgh, w3, 3);
    rounds_16_to_60!(abef, cdgh, w0, w1, w2, w3, w4);
    rounds4!(abef, cdgh, w0, 15);

    // Feed-forward, then the first hash becomes W0..W7 of the second SHA-256's only block.
    for j in 0..N {
        let abef_j = _mm_add_epi32(abef[j], v.mid.0);
        let cdgh_j = _mm_add_epi32(cdgh[j], v.mid.1);
        let feba = _mm_shuffle_epi32::<0x1B>(abef_j);
        let dchg = _mm_shuffle_epi32::<0xB1>(cdgh_j);
        w0[j] = _mm_blend_epi16::<0xF0>(feba, dchg); // a b c d
        w1[j] = _mm_alignr_epi8::<8>(dchg, feba); // e f g h
    }
    w2 = [_mm_set_epi32(0, 0, 0, 0x8000_0000_u32 as i32); N];
    w3 = [_mm_set_epi32(256, 0, 0, 0); N];

    let h0 = pack(&H0);
    abef = [h0.0; N];
    cdgh = [h0.1; N];
    rounds4!(abef, cdgh, w0, 0);
    rounds4!(abef, cdgh, w1, 1);
    rounds4!(abef, cdgh, w2, 2);
    rounds4!(abef, cdgh, w3, 3);
    rounds_16_to_60!(abef, cdgh, w0, w1, w2, w3, w4);
    for j in 0..N {
        let wk = _mm_add_epi32(w0[j], k4!(15));
        cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], wk);
        if FULL {
            abef[j] = _mm_sha256rnds2_epu32(abef[j], cdgh[j], _mm_shuffle_epi32::<0x0E>(wk));
            abef[j] = _mm_add_epi32(abef[j], h0.0);
            cdgh[j] = _mm_add_epi32(cdgh[j], h0.1);
        }
    }
    if FULL {
        (abef, cdgh)
    } else {
        // After the first pair of rounds 60..62, the new ABEF sits in `cdgh`.
        (cdgh, abef)
    }
}

/// The first nonce of `start..start + count` (wrapping) whose hash's top 32 bits, as a
/// little-endian number, are at most `top`; the caller confirms it against the full target.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) fn scan<const N: usize>(t: &Template, start: u32, count: u32, top: u32) -> Option<u32> {
    let v = Vectors::load(t);
    let mut nonce = start;
    for _ in 0..count / N as u32 {
        let (abef, _) = double_sha::<N, false>(&v, nonce);
        for (j, x) in abef.iter().enumerate() {
            // Word 7 holds digest bytes 28..32, the most significant of the little-endian number.
            let h7 = (_mm_cvtsi128_si32(*x) as u32).wrapping_add(H0[7]);
            if h7.swap_bytes() <= top {
                return Some(nonce.wrapping_add(j as u32));
            }
        }
        nonce = nonce.wrapping_add(N as u32);
    }
    for _ in 0..count % N as u32 {
        let (abef, _) = double_sha::<1, false>(&v, nonce);
        let h7 = (_mm_cvtsi128_si32(abef[0]) as u32).wrapping_add(H0[7]);
        if h7.swap_bytes() <= top {
            return Some(nonce);
        }
        nonce = nonce.wrapping_add(1);
    }
    None
}

/// The double SHA-256 state words a..h for `nonce`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) fn hash_words(t: &Template, nonce: u32) -> [u32; 8] {
    let (abef, cdgh) = double_sha::<1, true>(&Vectors::load(t), nonce);
    let (abef, cdgh) = (abef[0], cdgh[0]);
    [
        _mm_extract_epi32::<3>(abef) as u32,
        _mm_extract_epi32::<2>(abef) as u32,
        _mm_extract_epi32::<3>(cdgh) as u32,
        _mm_extract_epi32::<2>(cdgh) as u32,
        _mm_extract_epi32::<1>(abef) as u32,
        _mm_extract_epi32::<0>(abef) as u32,
        _mm_extract_epi32::<1>(cdgh) as u32,
        _mm_extract_epi32::<0>(cdgh) as u32,
    ]
}

/// `iterations` rounds of `N` independent full compressions (message schedule and
/// feed-forward included): the throughput bound the nonce kernel is measured against.
/// Returns a value derived from every state so nothing is optimised away.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) fn independent_compressions<const N: usize, const ALTERNATE: bool>(iterations: u64) -> u32 {
    const LOCKSTEP: bool = true;
    let h0 = pack(&H0);
    let mut state = [h0; N];
    for i in 0..iterations {
        let mut w0 = [_mm_setzero_si128(); N];
        let mut w1 = w0;
        let mut w2 = w0;
        let mut w3 = w0;
        let mut w4 = w0;
        for j in 0..N {
            // Messages differ per stream and per iteration, so no schedule work can be hoisted.
            let x = (i as u32).wrapping_mul(0x9e37_79b9) ^ j as u32;
            w0[j] = _mm_set_epi32(x as i32, 1, 2, 3);
            w1[j] = _mm_set_epi32(4, x.rotate_left(7) as i32, 5, 6);
            w2[j] = _mm_set_epi32(7, 8, x.rotate_left(13) as i32, 9);
            w3[j] = _mm_set_epi32(10, 11, 12, x.rotate_left(21) as i32);
        }
        let mut abef = [h0.0; N];
        let mut cdgh = [h0.1; N];
        for j in 0..N {
            abef[j] = state[j].0;
            cdgh[j] = state[j].1;
        }
        rounds4!(abef, cdgh, w0, 0);
        rounds4!(abef, cdgh, w1, 1);
        rounds4!(abef, cdgh, w2, 2);
        rounds4!(abef, cdgh, w3, 3);
        rounds_16_to_60!(abef, cdgh, w0, w1, w2, w3, w4);
        rounds4!(abef, cdgh, w0, 15);
        for j in 0..N {
            state[j] = (_mm_add_epi32(abef[j], state[j].0), _mm_add_epi32(cdgh[j], state[j].1));
        }
    }
    let mut out = 0u32;
    for (abef, cdgh) in state {
        out ^= _mm_cvtsi128_si32(_mm_xor_si128(abef, cdgh)) as u32;
    }
    out
}
