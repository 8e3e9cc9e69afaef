//! Scalar SHA-256 compression: the fallback on CPUs without SHA-NI, and an independent
//! oracle for the SHA-NI kernel in tests.
//!
//! Our own code rather than `sha2::compress256`: where this path runs (no SHA-NI), sha2 also
//! falls back to scalar code, and an out-of-line call per block cannot be inlined into the
//! nonce loop.

use super::{Template, H0, K, SECOND_BLOCK_PAD, TAIL_BLOCK_PAD};

#[inline(always)]
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

#[inline(always)]
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

#[inline(always)]
fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

#[inline(always)]
fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One round, with the working variables named in their current roles: instead of moving
/// eight values per round, the next round is called with the names rotated.
macro_rules! round {
    ($w:ident, $t:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        let t = $t;
        let t1 = $h
            .wrapping_add(big_sigma1($e))
            .wrapping_add(($e & $f) ^ (!$e & $g))
            .wrapping_add(K[t])
            .wrapping_add($w[t]);
        let t2 = big_sigma0($a).wrapping_add(($a & $b) ^ ($a & $c) ^ ($b & $c));
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(t2);
    }};
}

/// Rounds `from..to` of one compression on `s` (a..h), with the expanded schedule `w`.
#[inline(always)]
pub(super) fn rounds(s: &mut [u32; 8], w: &[u32; 64], from: usize, to: usize) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *s;
    let mut t = from;
    // Eight rounds bring the names back to their places.
    while t + 8 <= to {
        round!(w, t, a, b, c, d, e, f, g, h);
        round!(w, t + 1, h, a, b, c, d, e, f, g);
        round!(w, t + 2, g, h, a, b, c, d, e, f);
        round!(w, t + 3, f, g, h, a, b, c, d, e);
        round!(w, t + 4, e, f, g, h, a, b, c, d);
        round!(w, t + 5, d, e, f, g, h, a, b, c);
        round!(w, t + 6, c, d, e, f, g, h, a, b);
        round!(w, t + 7, b, c, d, e, f, g, h, a);
        t += 8;
    }
    while t < to {
        round!(w, t, a, b, c, d, e, f, g, h);
        (a, b, c, d, e, f, g, h) = (h, a, b, c, d, e, f, g);
        t += 1;
    }
    *s = [a, b, c, d, e, f, g, h];
}

/// The 64-word message schedule of one block.
#[inline(always)]
fn schedule(block: &[u32; 16]) -> [u32; 64] {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for t in 16..64 {
        w[t] = small_sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(small_sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
    w
}

/// One full SHA-256 compression (with the feed-forward) of a block given as big-endian words.
#[inline(always)]
pub(super) fn compress(state: &mut [u32; 8], block: &[u32; 16]) {
    let w = schedule(block);
    let mut s = *state;
    rounds(&mut s, &w, 0, 64);
    for (out, x) in state.iter_mut().zip(s) {
        *out = out.wrapping_add(x);
    }
}

/// The 16 words of the header's second block (tail, nonce, padding for 80 bytes).
#[inline(always)]
fn tail_block(t: &Template, nonce: u32) -> [u32; 16] {
    let mut block = TAIL_BLOCK_PAD;
    block[..3].copy_from_slice(&t.tail);
    // The nonce is stored little-endian in the header, SHA-256 reads words big-endian.
    block[3] = nonce.swap_bytes();
    block
}

/// The first compression's output for `nonce`: the second SHA-256's message words 0..8.
#[inline(always)]
fn first_hash(t: &Template, nonce: u32) -> [u32; 8] {
    let w = schedule(&tail_block(t, nonce));
    // Rounds 0 and 1 only see tail words 0 and 1: the template already ran them.
    let mut s = t.after2;
    rounds(&mut s, &w, 2, 64);
    let mut first = t.midstate;
    for (out, x) in first.iter_mut().zip(s) {
        *out = out.wrapping_add(x);
    }
    first
}

/// The second SHA-256's schedule, from the first hash.
#[inline(always)]
fn second_schedule(first: &[u32; 8]) -> [u32; 64] {
    let mut block = SECOND_BLOCK_PAD;
    block[..8].copy_from_slice(first);
    schedule(&block)
}

/// The double SHA-256 state words for `nonce` (the digest is their big-endian bytes).
pub(super) fn hash_words(t: &Template, nonce: u32) -> [u32; 8] {
    let w = second_schedule(&first_hash(t, nonce));
    let mut s = H0;
    rounds(&mut s, &w, 0, 64);
    let mut out = H0;
    for (o, x) in out.iter_mut().zip(s) {
        *o = o.wrapping_add(x);
    }
    out
}

/// The first nonce of `start..start + count` whose hash's top 32 bits (as a little-endian
/// number) are at most `top`; the caller confirms it against the full target.
pub(super) fn scan(t: &Template, start: u32, count: u32, top: u32) -> Option<u32> {
    (0..count).map(|i| start.wrapping_add(i)).find(|&nonce| {
        let w = second_schedule(&first_hash(t, nonce));
        let mut s = H0;
        // The final word h is e after round 61 (it only shifts through f, g, h afterwards),
        // so the last three rounds are skipped.
        rounds(&mut s, &w, 0, 61);
        // Word 7 holds digest bytes 28..32, the most significant of the little-endian number.
        s[4].wrapping_add(H0[7]).swap_bytes() <= top
    })
}
