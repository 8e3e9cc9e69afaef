//! Block bodies in pieces of at most [`PIECE_BYTES`], each its own sled entry
//! (`hash ‖ piece number`), so no sled page ever holds more than a few tens of KiB of them.
//!
//! Why: sled 0.34 writes a page larger than a quarter of its 512 KiB segment as a blob of its
//! own and its page cache counts such a page by its log reservation — the size of the blob's
//! pointer — so once read it is never evicted for size. A leaf of whole bodies (sled splits a
//! leaf past 16 entries) was such a blob as soon as it held two 500-transaction blocks:
//! storing each new body pulled a random leaf of the tree into memory for good (heaptrack of
//! a 2,000-block sync at `--dbcache 64`: 107 MB of the 337 MB heap peak, issue 16's sixth
//! pass), and a node serving its blocks would have pulled them all. Pieces keep every
//! leaf (at most 17 pieces plus keys, ≈ 70 KiB) under the blob threshold, so the page cache
//! counts and evicts them like any other page. Storage format 2 (ADR 0006).

use sled::{Batch, Tree};

use crate::error::ChainError;
use crate::hash::Hash256;

/// Bytes per piece: 17 pieces and their keys stay under sled's blob threshold (128 KiB).
pub const PIECE_BYTES: usize = 4096;

/// Key of piece `i` of the body of `hash`.
pub fn piece_key(hash: &Hash256, i: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(&hash.0);
    k[32..].copy_from_slice(&i.to_be_bytes());
    k
}

/// The entries that store `bytes` as the body of `hash`: (key, piece).
pub fn pieces<'a>(hash: &'a Hash256, bytes: &'a [u8]) -> impl Iterator<Item = ([u8; 36], &'a [u8])> + 'a {
    // An empty body still gets its piece 0, so "stored" and "absent" stay apart.
    let empty = bytes.is_empty().then_some(([].as_slice(), 0u32));
    bytes
        .chunks(PIECE_BYTES)
        .zip(0u32..)
        .chain(empty)
        .map(move |(piece, i)| (piece_key(hash, i), piece))
}

/// Adds the writes that store `bytes` as the body of `hash` to `batch`.
pub fn put(batch: &mut Batch, hash: &Hash256, bytes: &[u8]) {
    for (k, piece) in pieces(hash, bytes) {
        batch.insert(&k[..], piece);
    }
}

/// The body of `hash`, its pieces joined; `None` if it is not stored.
pub fn get(tree: &Tree, hash: &Hash256) -> Result<Option<Vec<u8>>, ChainError> {
    let mut bytes: Option<Vec<u8>> = None;
    for (i, item) in tree.scan_prefix(hash.0).enumerate() {
        let (k, v) = item?;
        if piece_number(&k) != Some(i as u32) {
            return Err(ChainError::Corrupt(format!(
                "block body {hash}: piece {i} missing or misnamed (key {})",
                hex::encode(&k)
            )));
        }
        bytes.get_or_insert_with(Vec::new).extend_from_slice(&v);
    }
    Ok(bytes)
}

/// The piece number of a piece key; `None` if `k` is not one.
fn piece_number(k: &[u8]) -> Option<u32> {
    let n: [u8; 4] = k.get(32..)?.try_into().ok()?;
    Some(u32::from_be_bytes(n))
}

/// One item of [`iter`]: a body (its key's hash and bytes), or the first key of entries that
/// are not a well-formed run of pieces.
pub type Stored = Result<(Hash256, Vec<u8>), Vec<u8>>;

/// Every stored body in key order (for the reindex, which skips what it cannot read).
pub fn iter(tree: &Tree) -> impl Iterator<Item = Result<Stored, ChainError>> + '_ {
    let mut items = tree.iter().peekable();
    std::iter::from_fn(move || {
        let (k, v) = match items.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e.into())),
        };
        let Some(hash) = <[u8; 32]>::try_from(&k[..k.len().min(32)]).ok().map(Hash256) else {
            return Some(Ok(Err(k.to_vec())));
        };
        let mut bytes = v.to_vec();
        let mut well_formed = piece_number(&k) == Some(0);
        let mut next = 1u32;
        // The rest of this hash's entries, whatever they are, belong to this item.
        while let Some(Ok((k2, _))) = items.peek() {
            if !k2.starts_with(&hash.0) {
                break;
            }
            well_formed &= piece_number(k2) == Some(next);
            next = next.wrapping_add(1);
            match items.next() {
                Some(Ok((_, v2))) => bytes.extend_from_slice(&v2),
                Some(Err(e)) => return Some(Err(e.into())),
                None => break,
            }
        }
        Some(Ok(if well_formed {
            Ok((hash, bytes))
        } else {
            Err(k.to_vec())
        }))
    })
}

/// Rewrites the bodies of a format-1 store (one entry per body, keyed by its hash) as
/// pieces: writing a body's pieces and removing its whole entry is one sled batch, so a kill
/// leaves each body in one form or the other, and running it again finishes the rest.
/// Returns how many bodies it rewrote.
pub fn migrate_whole_bodies(tree: &Tree) -> Result<u64, ChainError> {
    let mut moved = 0u64;
    // Collect the keys first: the tree changes under the iteration otherwise.
    let whole: Vec<sled::IVec> = tree
        .iter()
        .keys()
        .filter(|k| k.as_ref().map_or(true, |k| k.len() == 32))
        .collect::<Result<_, _>>()?;
    for key in whole {
        let Some(bytes) = tree.get(&key)? else { continue };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&key);
        let mut batch = Batch::default();
        put(&mut batch, &Hash256(hash), &bytes);
        batch.remove(key);
        tree.apply_batch(batch)?;
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (sled::Db, Tree) {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let t = db.open_tree("bodies").expect("tree");
        (db, t)
    }

    #[test]
    fn a_body_is_stored_in_pieces_and_read_back_whole() {
        let (_db, t) = tree();
        let a = Hash256([1; 32]);
        let b = Hash256([2; 32]);
        let body: Vec<u8> = (0..3 * PIECE_BYTES + 17).map(|i| (i % 251) as u8).collect();
        let mut batch = Batch::default();
        put(&mut batch, &a, &body);
        put(&mut batch, &b, &[]);
        t.apply_batch(batch).expect("write");
        assert_eq!(t.scan_prefix(a.0).count(), 4);
        assert_eq!(get(&t, &a).expect("read"), Some(body.clone()));
        assert_eq!(get(&t, &b).expect("read"), Some(vec![]));
        assert_eq!(get(&t, &Hash256([3; 32])).expect("read"), None);
        let all: Vec<_> = iter(&t).map(|r| r.expect("read")).collect();
        assert_eq!(all, vec![Ok((a, body)), Ok((b, vec![]))]);
    }

    #[test]
    fn a_missing_piece_is_an_error_and_the_reindex_skips_the_body() {
        let (_db, t) = tree();
        let a = Hash256([1; 32]);
        let b = Hash256([2; 32]);
        let body = vec![7u8; 2 * PIECE_BYTES + 1];
        let mut batch = Batch::default();
        put(&mut batch, &a, &body);
        put(&mut batch, &b, &body);
        t.apply_batch(batch).expect("write");
        t.remove(piece_key(&a, 1)).expect("remove");
        let err = get(&t, &a).expect_err("a gap");
        assert!(err.to_string().contains("piece 1 missing"), "{err}");
        let all: Vec<_> = iter(&t).map(|r| r.expect("read")).collect();
        assert_eq!(all, vec![Err(piece_key(&a, 0).to_vec()), Ok((b, body))]);
    }

    #[test]
    fn whole_bodies_of_format_1_become_pieces() {
        let (_db, t) = tree();
        let a = Hash256([1; 32]);
        let body = vec![9u8; PIECE_BYTES + 5];
        t.insert(a.0, body.clone()).expect("format-1 body");
        assert_eq!(migrate_whole_bodies(&t).expect("migrate"), 1);
        assert_eq!(t.get(a.0).expect("read"), None);
        assert_eq!(get(&t, &a).expect("read"), Some(body));
        assert_eq!(migrate_whole_bodies(&t).expect("again"), 0);
    }
}
