//! Ed25519 signature verification for consensus.
//!
//! There is exactly one validity rule: ed25519-dalek's `verify_strict` (S canonical, A and R not of
//! small order, and the cofactorless equation `[S]B - [k]A == R` checked on R's encoding, so a
//! non-canonical R fails). Every other entry point here must give the same verdict on every input.
//!
//! [`verify_all`] checks many signatures at once. A plain random-linear-combination batch is *not*
//! equivalent to `verify_strict`: the combination only sees each item's torsion part multiplied by
//! `z_i mod 8`, so a signature whose error is a small-order point passes with probability up to 1/2
//! (a consensus split). The batched path here is exact instead:
//!
//! * Let `Q = [S]B - [k]A - R`; strict accepts iff `Q` is the identity (given the encoding checks).
//!   `Q` splits into a prime-order part and a torsion part, and both must vanish.
//! * The torsion part of `Q` is minus the torsion part of `W = [k mod 8]A + R` (the two differ by
//!   `[8m]A`, which has no torsion), so it vanishes iff `W` is torsion-free: one exact check per
//!   item, needed only because a random combination cannot test a group of order 8.
//! * The prime-order parts are checked together by a *cofactored* random combination with 128-bit
//!   random coefficients (false accept probability below 2^-127).
//!
//! Any item that fails a cheap precondition is settled by a single `verify_strict`, and a failed
//! batch falls back to single strict checks, so a rejection is always decided by `verify_strict`
//! itself. Whether the batched path is used at all depends on measured speed (see
//! [`verify_all`]).

use std::iter::once;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

/// Why a signature was rejected. The verdict is always `verify_strict`'s; the variant only names
/// the first reason found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The public key bytes do not decode to a curve point.
    #[error("bad public key encoding")]
    BadPublicKey,
    /// The public key is a point of small order (any signature would be forgeable).
    #[error("small-order public key")]
    WeakPublicKey,
    /// The signature's S is not reduced modulo the group order (malleable form).
    #[error("non-canonical signature scalar")]
    NonCanonicalScalar,
    /// The signature does not verify under the strict rule.
    #[error("invalid signature")]
    InvalidSignature,
}

/// Verifies an Ed25519 signature with exactly `verify_strict` semantics. Never panics.
pub fn verify(pubkey: &[u8; 32], signature: &[u8; 64], msg: &[u8]) -> Result<(), SigError> {
    let key = VerifyingKey::from_bytes(pubkey).map_err(|_| SigError::BadPublicKey)?;
    // The two checks below only name the reason: verify_strict rejects these inputs too, so
    // they never change the verdict.
    if key.is_weak() {
        return Err(SigError::WeakPublicKey);
    }
    if !bool::from(Scalar::from_canonical_bytes(s_bytes(signature)).is_some()) {
        return Err(SigError::NonCanonicalScalar);
    }
    key.verify_strict(msg, &Signature::from_bytes(signature))
        .map_err(|_| SigError::InvalidSignature)
}

/// One signature to check in a batch: a key, a signature and the message it signs. Consensus
/// signs 32-byte digests (a transaction's sighash), the default; other message types exist so the
/// test vectors, whose messages have other lengths, run through the same code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SigItem<M = [u8; 32]> {
    /// Ed25519 public key (compressed Edwards point, as carried in the input).
    pub pubkey: [u8; 32],
    /// Signature `R || S`.
    pub signature: [u8; 64],
    /// The signed message.
    pub msg: M,
}

impl<M: AsRef<[u8]>> SigItem<M> {
    /// Strict single verification of this item.
    pub fn verify(&self) -> Result<(), SigError> {
        verify(&self.pubkey, &self.signature, self.msg.as_ref())
    }
}

/// Below this many items the batch set-up does not pay for itself.
const MIN_BATCH: usize = 4;

/// Checks every item and returns the index of the first one `verify_strict` rejects.
///
/// This runs [`verify_each`]: measured with `benches/sig.rs` on 2,000 signatures, the exact
/// batched path ([`verify_all_batched`], ~17.6k/s) is slower than single strict checks
/// (~19.9k/s), because proving each item's torsion part zero costs a scalar multiplication by
/// the group order, about as much as a whole single verification; only the inexact dalek batch
/// (~68k/s) is faster. Switch here if a cheaper exact torsion test makes the batched path win.
/// To skip work on block connect, use [`SigCache`].
pub fn verify_all<M: AsRef<[u8]>>(items: &[SigItem<M>]) -> Result<(), usize> {
    verify_each(items)
}

/// Checks items one at a time with [`verify`]; returns the index of the first failure.
pub fn verify_each<M: AsRef<[u8]>>(items: &[SigItem<M>]) -> Result<(), usize> {
    match items.iter().position(|item| item.verify().is_err()) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

/// Items handed to one worker at a time: a strict check costs ~50 µs, so a few per task keep
/// rayon's scheduling overhead negligible while still splitting a small block across cores.
const PAR_MIN_ITEMS: usize = 8;

/// [`verify_each`] spread over the current rayon pool (the global one, sized to the machine's
/// cores, unless the caller runs inside `ThreadPool::install`), skipping items found in
/// `cache`. Every item still gets exactly [`verify`] (`verify_strict`), so the verdict is the
/// single-threaded one bit for bit; the index returned is the *first* failing item in slice
/// order whatever the scheduling (`position_first`), as consensus errors must not depend on
/// which core finished first.
pub fn verify_all_parallel<M: AsRef<[u8]> + Sync>(items: &[SigItem<M>], cache: Option<&SigCache>) -> Result<(), usize> {
    let fails = |item: &SigItem<M>| !cache.is_some_and(|c| c.contains(item)) && item.verify().is_err();
    match items.par_iter().with_min_len(PAR_MIN_ITEMS).position_first(fails) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

/// Same verdict as [`verify_each`] (up to a 2^-127 chance of accepting a bad batch), using one
/// cofactored multiscalar check for the prime-order parts plus an exact per-item torsion check.
pub fn verify_all_batched<M: AsRef<[u8]>>(items: &[SigItem<M>]) -> Result<(), usize> {
    if items.len() < MIN_BATCH {
        return verify_each(items);
    }
    let mut prepared = Vec::with_capacity(items.len());
    let mut indices = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match Prepared::new(item) {
            Some(p) => {
                prepared.push(p);
                indices.push(i);
            }
            // Not provably batch-safe: let verify_strict decide. A failure here is the answer
            // unless an earlier batched item fails too.
            None if item.verify().is_err() => return settle(items, &prepared, &indices, Some(i)),
            None => {}
        }
    }
    settle(items, &prepared, &indices, None)
}

/// Resolves a batch whose items precede `known_bad` (the first item already known to fail).
fn settle<M: AsRef<[u8]>>(
    items: &[SigItem<M>],
    prepared: &[Prepared],
    indices: &[usize],
    known_bad: Option<usize>,
) -> Result<(), usize> {
    if prepared.is_empty() || batch_ok(prepared) {
        return known_bad.map_or(Ok(()), Err);
    }
    // Name the culprit with single strict checks: they, not the batch, decide rejections.
    match indices.iter().copied().find(|&i| items[i].verify().is_err()) {
        Some(i) => Err(i),
        None => known_bad.map_or(Ok(()), Err),
    }
}

/// An item that passed every precondition of the batched path, decoded once.
#[derive(Clone, Copy)]
struct Prepared {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Prepared {
    /// Returns `None` unless the item meets everything the batch equation cannot see: S canonical,
    /// A and R decodable and not small-order, R canonically encoded, and the item's torsion part
    /// zero. Each of these failing implies `verify_strict` rejects, but the caller still asks it.
    fn new<M: AsRef<[u8]>>(item: &SigItem<M>) -> Option<Prepared> {
        let r_bytes = r_bytes(&item.signature);
        let s = Option::from(Scalar::from_canonical_bytes(s_bytes(&item.signature)))?;
        // verify_strict compares the recomputed R's canonical encoding with these bytes; with
        // x != 0 (guaranteed once R is not small-order) only y >= p can be non-canonical.
        if !is_canonical_y(&r_bytes) {
            return None;
        }
        let a = CompressedEdwardsY(item.pubkey).decompress()?;
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        if a.is_small_order() || r.is_small_order() {
            return None;
        }
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(item.pubkey);
        h.update(item.msg.as_ref());
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        // W = [k mod 8]A + R carries exactly the torsion part of [k]A + R (k as the reduced
        // integer verify_strict multiplies by), so strict's torsion condition is "W torsion-free".
        let mut w = r;
        for _ in 0..(k.as_bytes()[0] & 7) {
            w += a;
        }
        if !w.is_torsion_free() {
            return None;
        }
        Some(Prepared { a, r, s, k })
    }
}

/// Cofactored random combination: `[8](-(sum z s)B + sum z R + sum z k A) == identity`. Torsion
/// was settled per item, so multiplying by 8 only discards noise from torsion in A (the
/// coefficient `z k mod L` does not preserve `k`'s residue mod 8).
fn batch_ok(items: &[Prepared]) -> bool {
    let mut rng = rand::thread_rng();
    // Odd, so no item's coefficient is zero; drawn after the inputs are fixed.
    let zs: Vec<Scalar> = items.iter().map(|_| Scalar::from(rng.gen::<u128>() | 1)).collect();
    let b_coefficient: Scalar = items.iter().zip(&zs).map(|(it, z)| z * it.s).sum();
    let scalars = once(-b_coefficient)
        .chain(zs.iter().copied())
        .chain(items.iter().zip(&zs).map(|(it, z)| z * it.k));
    let points = once(ED25519_BASEPOINT_POINT)
        .chain(items.iter().map(|it| it.r))
        .chain(items.iter().map(|it| it.a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// True if the 255-bit y in a point encoding is below p = 2^255 - 19.
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    let top_is_max = bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff);
    !(top_is_max && bytes[0] >= 0xed)
}

fn r_bytes(signature: &[u8; 64]) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    r
}

fn s_bytes(signature: &[u8; 64]) -> [u8; 32] {
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    s
}

/// A bounded set of (pubkey, signature, digest) triples already verified, so connecting a block
/// does not re-verify signatures its transactions passed on mempool entry (as Bitcoin Core's
/// signature cache does). Only successes are stored. Wrap in a mutex to share.
///
/// Entries are salted SHA-256 digests of the triple in a fixed table of sets of [`SIG_CACHE_WAYS`]
/// slots (set-associative, like a CPU cache): a digest can only live in the set its first bytes
/// name, and a full set evicts its oldest entry. The memory is exactly 32 bytes per slot plus two
/// bytes per set whatever the traffic — a hash set with an eviction queue grew to more than 2.5×
/// its entries' size under the churn of a long sync (its table doubles past its load factor and
/// the queue keeps its peak). The table is zeroed at allocation, so pages of it not yet written
/// cost no RSS. The salt is random per cache, so nobody can aim entries at one set to push a
/// particular signature out of it.
pub struct SigCache {
    salt: [u8; 16],
    /// `sets × SIG_CACHE_WAYS` digests of 32 bytes; slot `w` of set `s` is digest number
    /// `s * SIG_CACHE_WAYS + w`. Flat bytes, because only `vec![0u8; n]` (not a vector of
    /// arrays) is allocated zeroed.
    slots: Vec<u8>,
    /// Per set, bit `w` set if slot `w` holds a digest (an all-zero digest is a valid one).
    used: Vec<u8>,
    /// Per set, the slot to evict next when the set is full (its oldest entry).
    next: Vec<u8>,
    len: usize,
}

/// Slots per set of a [`SigCache`].
pub const SIG_CACHE_WAYS: usize = 8;
// A set's occupancy is one bit per slot in a u8.
const _: () = assert!(SIG_CACHE_WAYS == u8::BITS as usize);

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SigCache {
    /// A cache holding at most `capacity` entries, rounded up to a multiple of
    /// [`SIG_CACHE_WAYS`]; its memory is [`SigCache::heap_bytes`] of that capacity.
    pub fn new(capacity: usize) -> SigCache {
        let sets = capacity.div_ceil(SIG_CACHE_WAYS);
        SigCache {
            salt: rand::random(),
            // Allocated zeroed (calloc): pages no entry was written to cost no RSS.
            slots: vec![0u8; sets * SIG_CACHE_WAYS * 32],
            used: vec![0u8; sets],
            next: vec![0u8; sets],
            len: 0,
        }
    }

    /// Bytes of heap a cache made by [`SigCache::new`]`(capacity)` holds, at most and for good.
    pub const fn heap_bytes(capacity: usize) -> usize {
        let sets = capacity.div_ceil(SIG_CACHE_WAYS);
        sets * (SIG_CACHE_WAYS * 32 + 2)
    }

    /// The most entries this cache holds.
    pub fn capacity(&self) -> usize {
        self.used.len() * SIG_CACHE_WAYS
    }

    /// The bytes of digest number `slot`.
    fn slot_range(slot: usize) -> std::ops::Range<usize> {
        slot * 32..(slot + 1) * 32
    }

    fn key<M: AsRef<[u8]>>(&self, item: &SigItem<M>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"lode/sigcache/v2");
        h.update(self.salt);
        h.update(item.pubkey);
        h.update(item.signature);
        h.update(item.msg.as_ref());
        h.finalize().into()
    }

    /// The set `key` belongs to (`None` for a cache of capacity 0).
    fn set_of(&self, key: &[u8; 32]) -> Option<usize> {
        let sets = self.used.len();
        if sets == 0 {
            return None;
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&key[..8]);
        // The digest is uniform, so reducing it modulo the set count is uniform too.
        Some((u64::from_le_bytes(first) % sets as u64) as usize)
    }

    /// The slot holding `key` in `set`, if any.
    fn find(&self, set: usize, key: &[u8; 32]) -> Option<usize> {
        let used = self.used[set];
        (0..SIG_CACHE_WAYS)
            .filter(|w| used & (1 << w) != 0)
            .map(|w| set * SIG_CACHE_WAYS + w)
            .find(|&slot| self.slots[Self::slot_range(slot)] == key[..])
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if `item` was recorded as valid.
    pub fn contains<M: AsRef<[u8]>>(&self, item: &SigItem<M>) -> bool {
        let key = self.key(item);
        self.set_of(&key).is_some_and(|set| self.find(set, &key).is_some())
    }

    /// Records `item` as valid. Callers must only insert items that passed [`verify`].
    fn insert<M: AsRef<[u8]>>(&mut self, item: &SigItem<M>) {
        let key = self.key(item);
        let Some(set) = self.set_of(&key) else {
            return;
        };
        if self.find(set, &key).is_some() {
            return;
        }
        let used = self.used[set];
        // Sets fill from slot 0 up and then evict round-robin from slot 0, so the slot named by
        // `next` is always the set's oldest entry.
        let way = if used == u8::MAX {
            let way = usize::from(self.next[set]);
            self.next[set] = ((way + 1) % SIG_CACHE_WAYS) as u8;
            way
        } else {
            self.len += 1;
            used.trailing_ones() as usize
        };
        self.used[set] = used | (1 << way);
        self.slots[Self::slot_range(set * SIG_CACHE_WAYS + way)].copy_from_slice(&key);
    }

    /// [`verify_all`] that skips items already in the cache and records nothing: for
    /// connecting blocks, whose signatures will not be seen again (mempool entries are the
    /// ones worth caching).
    pub fn verify_all_uncached<M: AsRef<[u8]>>(&self, items: &[SigItem<M>]) -> Result<(), usize> {
        let mut todo = Vec::new();
        let mut indices = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if !self.contains(item) {
                todo.push(SigItem {
                    pubkey: item.pubkey,
                    signature: item.signature,
                    msg: item.msg.as_ref(),
                });
                indices.push(i);
            }
        }
        verify_all(&todo).map_err(|j| indices.get(j).copied().unwrap_or(j))
    }

    /// Verifies the items `cache` does not hold yet — outside its lock, so a block being
    /// connected meanwhile is not held up — and records them when all pass. This is how a
    /// node checks the signatures of blocks it will connect next while it connects the
    /// current one. Returns how many were verified, or the index of the first failing item
    /// (nothing is recorded then; the connect reports the failure as consensus does).
    pub fn verify_and_record<M: AsRef<[u8]>>(
        cache: &std::sync::Mutex<SigCache>,
        items: &[SigItem<M>],
    ) -> Result<usize, usize> {
        // While a connect holds the cache, do not wait for it: verify everything (the items
        // of a block still to come are rarely cached anyway).
        let todo: Vec<usize> = match cache.try_lock() {
            Ok(guard) => (0..items.len()).filter(|&i| !guard.contains(&items[i])).collect(),
            Err(_) => (0..items.len()).collect(),
        };
        for &i in &todo {
            if items[i].verify().is_err() {
                return Err(i);
            }
        }
        // A poisoned lock only means another thread panicked mid-insert; the cache holds
        // verified triples only, so its contents are still sound.
        let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
        for &i in &todo {
            guard.insert(&items[i]);
        }
        Ok(todo.len())
    }

    /// [`verify_all`] that skips items already in the cache and, when everything passes, adds the
    /// newly verified ones. Returns the index (into `items`) of the first failing item.
    pub fn verify_all<M: AsRef<[u8]>>(&mut self, items: &[SigItem<M>]) -> Result<(), usize> {
        // Cached items are valid, so the first failure among the rest is the first overall.
        self.verify_all_uncached(items)?;
        for item in items {
            self.insert(item);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch equation alone, without the fallback that would hide a false rejection: on every
    /// CCTV case that passes the preconditions, a batch of that case plus valid signatures must
    /// give exactly the strict verdict (repeated, since the coefficients are random).
    #[test]
    fn batch_equation_alone_matches_strict_on_cctv() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/testdata/ed25519/cctv_ed25519vectors.json");
        let text = std::fs::read_to_string(path).expect("test data present");
        let cases: serde_json::Value = serde_json::from_str(&text).expect("json");
        let valid: Vec<Prepared> = (0u8..3)
            .map(|i| {
                let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
                let msg = [i; 32];
                let item = SigItem {
                    pubkey: key.verifying_key().to_bytes(),
                    signature: ed25519_dalek::Signer::sign(&key, &msg).to_bytes(),
                    msg,
                };
                Prepared::new(&item).expect("valid signature is batch-safe")
            })
            .collect();
        let (mut batched, mut mixed_torsion_accepted) = (0, 0);
        for case in cases.as_array().expect("array") {
            let hex_field = |name: &str| hex::decode(case[name].as_str().expect("field")).expect("hex");
            let item = SigItem {
                pubkey: hex_field("key").try_into().expect("32 bytes"),
                signature: hex_field("sig").try_into().expect("64 bytes"),
                msg: case["msg"].as_str().expect("msg").as_bytes().to_vec(),
            };
            let strict = item.verify().is_ok();
            let Some(p) = Prepared::new(&item) else {
                // Only inputs strict rejects, or accepts with torsion in W, may skip the batch;
                // W carries the full torsion of Q, so an accepted item never does.
                assert!(!strict, "case {} accepted by strict but not batch-safe", case["number"]);
                continue;
            };
            batched += 1;
            let flags = case["flags"].to_string();
            if strict && flags.contains("low_order_component") {
                mixed_torsion_accepted += 1;
            }
            let batch = [valid[0], valid[1], p, valid[2]];
            for _ in 0..8 {
                assert_eq!(batch_ok(&batch), strict, "case {}", case["number"]);
            }
        }
        // All 43 strict-valid cases batch, 42 of them with torsion in A and/or R.
        assert_eq!(mixed_torsion_accepted, 42);
        // No strict-rejected CCTV case gets this far: encoding, small-order and W-torsion checks
        // catch them all (including the 12 a naive batch accepts on torsion alone).
        assert_eq!(batched, 43);
    }

    #[test]
    fn canonical_y_boundary() {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xec; // p - 1
        assert!(is_canonical_y(&p));
        p[0] = 0xed; // p
        assert!(!is_canonical_y(&p));
        p[31] = 0xff; // sign bit does not matter
        assert!(!is_canonical_y(&p));
        assert!(is_canonical_y(&[0u8; 32]));
    }

    /// Under churn far past its capacity the cache keeps its size, holds exactly `len` of the
    /// items it was given, and never claims one it was not given.
    #[test]
    fn sig_cache_is_fixed_size_under_churn() {
        let item = |i: u32| SigItem {
            pubkey: [0u8; 32],
            signature: [0u8; 64],
            msg: {
                let mut m = [0u8; 32];
                m[..4].copy_from_slice(&i.to_le_bytes());
                m
            },
        };
        let mut cache = SigCache::new(1_000);
        assert_eq!(cache.capacity(), 1_000);
        assert_eq!(SigCache::heap_bytes(1_000), 125 * (8 * 32 + 2));
        for i in 0..20_000 {
            cache.insert(&item(i));
            cache.insert(&item(i)); // a repeat is not a second entry
            assert!(cache.contains(&item(i)));
        }
        assert!(cache.len() <= cache.capacity());
        let held = (0..20_000).filter(|&i| cache.contains(&item(i))).count();
        assert_eq!(held, cache.len());
        assert!((20_000..40_000).all(|i| !cache.contains(&item(i))));
        assert_eq!(cache.slots.len(), 1_000 * 32);
        assert!(SigCache::new(0).capacity() == 0 && !SigCache::new(0).contains(&item(0)));
    }
}
