//! The address index in groups: one sled entry holds up to [`ROWS_PER_ENTRY`] rows of one
//! address at one height, keyed `pkh ‖ height ‖ group number` (storage format 2).
//!
//! Why: format 1 had one sled entry per row (an output received, an output spent), two or
//! more per transaction, and sled 0.34 keeps a page-table entry in memory for every page
//! of the database whether cached or not (≈ 110 bytes each, spacejam/sled#1093); a leaf holds
//! at most 16 entries, and appended keys leave leaves half full. A 2,000-block sync of
//! 500-transaction blocks held ≈ 41 MB of those entries, two thirds of them for this index,
//! and wrote a thousand index entries per block (issue 16, sixth pass). Grouped, a block
//! writes one entry per address it touches and per 32 of its rows. 32 rows (≈ 2.6 KiB) keep
//! a leaf of such entries far under sled's blob threshold (see `bodies.rs` for why that
//! matters).

use std::collections::BTreeMap;

use bincode::{Decode, Encode};

use super::keys::AddrKind;
use super::{AddrEvent, AddrRecord};
use crate::address::PubkeyHash;
use crate::encoding;
use crate::error::ChainError;
use crate::hash::Hash256;
use crate::height::Height;

/// Rows per entry, at most.
pub const ROWS_PER_ENTRY: usize = 32;

/// One row of a block for the index: whose, and what.
pub(super) struct Row {
    pub pkh: PubkeyHash,
    pub txid: Hash256,
    pub kind: AddrKind,
    pub index: u32,
    pub record: AddrRecord,
}

/// A row as stored inside an entry (the address and height are in the key).
#[derive(Encode, Decode)]
struct StoredRow {
    txid: Hash256,
    /// [`AddrKind`] as a number.
    kind: u8,
    index: u32,
    record: AddrRecord,
}

/// Key of group `group` of the rows of `pkh` at `height`.
pub fn key(pkh: &PubkeyHash, height: Height, group: u32) -> [u8; 28] {
    let mut k = [0u8; 28];
    k[..20].copy_from_slice(&pkh.0);
    k[20..24].copy_from_slice(&height.to_be_bytes());
    k[24..].copy_from_slice(&group.to_be_bytes());
    k
}

fn kind_from(n: u8) -> Option<AddrKind> {
    match n {
        0 => Some(AddrKind::Received),
        1 => Some(AddrKind::Spent),
        _ => None,
    }
}

/// The entries of one block's rows at `height`: per address, its rows in (txid, kind, index)
/// order — the order format 1's keys gave them — in groups of [`ROWS_PER_ENTRY`]. The same
/// rows always give the same keys, which is how a disconnect finds what to remove.
pub(super) fn entries(height: Height, rows: Vec<Row>) -> Vec<([u8; 28], Vec<u8>)> {
    let mut by_pkh: BTreeMap<PubkeyHash, Vec<StoredRow>> = BTreeMap::new();
    for r in rows {
        by_pkh.entry(r.pkh).or_default().push(StoredRow {
            txid: r.txid,
            kind: r.kind as u8,
            index: r.index,
            record: r.record,
        });
    }
    let mut out = Vec::new();
    for (pkh, mut rows) in by_pkh {
        rows.sort_by_key(|r| (r.txid.0, r.kind, r.index));
        for (group, chunk) in rows.chunks(ROWS_PER_ENTRY).enumerate() {
            out.push((key(&pkh, height, group as u32), encoding::encode(&chunk)));
        }
    }
    out
}

/// The keys [`entries`] gives for the same rows, without encoding them (what a disconnect
/// removes): each address's rows make ⌈rows / [`ROWS_PER_ENTRY`]⌉ groups.
pub(super) fn keys(height: Height, rows: &[Row]) -> Vec<[u8; 28]> {
    let mut per_pkh: BTreeMap<PubkeyHash, usize> = BTreeMap::new();
    for r in rows {
        *per_pkh.entry(r.pkh).or_default() += 1;
    }
    per_pkh
        .into_iter()
        .flat_map(|(pkh, n)| (0..n.div_ceil(ROWS_PER_ENTRY) as u32).map(move |g| key(&pkh, height, g)))
        .collect()
}

/// The rows of one entry as events, appended to `out`.
pub(super) fn decode_entry(k: &[u8], v: &[u8], out: &mut Vec<AddrEvent>) -> Result<(), ChainError> {
    let corrupt = |why: &str| ChainError::Corrupt(format!("address index entry {}: {why}", hex::encode(k)));
    let height: [u8; 4] = k
        .get(20..24)
        .and_then(|h| h.try_into().ok())
        .filter(|_| k.len() == 28)
        .ok_or_else(|| corrupt("key is not pkh ‖ height ‖ group"))?;
    let height = Height(u32::from_be_bytes(height));
    let rows: Vec<StoredRow> = encoding::decode(v, encoding::MAX_DECODE_BYTES).map_err(|e| corrupt(&e.to_string()))?;
    for r in rows {
        out.push(AddrEvent {
            height,
            txid: r.txid,
            kind: kind_from(r.kind).ok_or_else(|| corrupt("row of an unknown kind"))?,
            index: r.index,
            record: r.record,
        });
    }
    Ok(())
}

/// Rewrites a format-1 address index (one entry per row, 61-byte keys) in groups: the rows
/// of one address at one height become its groups in one batch that also removes them, so a
/// kill leaves each (address, height) in one form or the other and running it again
/// finishes the rest. Returns how many rows it moved.
pub(super) fn migrate_rows(tree: &sled::Tree) -> Result<u64, ChainError> {
    let mut moved = 0u64;
    let mut prefix: Option<[u8; 24]> = None;
    let mut rows: Vec<Row> = Vec::new();
    let mut old: Vec<sled::IVec> = Vec::new();
    let write = |prefix: [u8; 24], rows: &mut Vec<Row>, old: &mut Vec<sled::IVec>| -> Result<(), ChainError> {
        let height = Height(u32::from_be_bytes([prefix[20], prefix[21], prefix[22], prefix[23]]));
        let mut batch = sled::Batch::default();
        for (k, v) in entries(height, std::mem::take(rows)) {
            batch.insert(&k[..], v);
        }
        for k in old.drain(..) {
            batch.remove(k);
        }
        tree.apply_batch(batch)?;
        Ok(())
    };
    for item in tree.iter() {
        let (k, v) = item?;
        // Entries already grouped (this migration's own, or a finished earlier run's).
        let Some((_height, txid, kind, index)) = super::keys::parse_addr_key(&k) else {
            continue;
        };
        let mut this = [0u8; 24];
        this.copy_from_slice(&k[..24]);
        if let Some(p) = prefix.filter(|p| *p != this) {
            write(p, &mut rows, &mut old)?;
        }
        prefix = Some(this);
        let mut pkh = [0u8; 20];
        pkh.copy_from_slice(&k[..20]);
        let record: AddrRecord = encoding::decode(&v, encoding::MAX_DECODE_BYTES)
            .map_err(|e| ChainError::Corrupt(format!("address record {}: {e}", hex::encode(&k))))?;
        rows.push(Row {
            pkh: PubkeyHash(pkh),
            txid,
            kind,
            index,
            record,
        });
        old.push(k);
        moved += 1;
    }
    if let Some(p) = prefix {
        write(p, &mut rows, &mut old)?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Amount;
    use crate::transaction::OutPoint;

    fn row(pkh: u8, txid: u8, kind: AddrKind, index: u32) -> Row {
        Row {
            pkh: PubkeyHash([pkh; 20]),
            txid: Hash256([txid; 32]),
            kind,
            index,
            record: AddrRecord {
                value: Amount(u64::from(index) + 1),
                outpoint: OutPoint {
                    txid: Hash256([txid; 32]),
                    index,
                },
            },
        }
    }

    #[test]
    fn rows_are_grouped_per_address_in_key_order_and_read_back() {
        // 70 rows of address 1 given out of order, and 3 of address 2.
        let mut rows: Vec<Row> = (0..70u32)
            .rev()
            .map(|i| row(1, (i % 7) as u8, AddrKind::Received, i))
            .collect();
        rows.push(row(2, 9, AddrKind::Spent, 0));
        rows.push(row(2, 9, AddrKind::Received, 1));
        rows.push(row(2, 3, AddrKind::Spent, 4));
        let height = Height(42);
        let only_keys = keys(height, &rows);
        let entries = entries(height, rows);
        let keys: Vec<[u8; 28]> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(only_keys, keys, "a disconnect removes exactly what a connect wrote");
        let (a, b) = (PubkeyHash([1; 20]), PubkeyHash([2; 20]));
        assert_eq!(
            keys,
            vec![
                key(&a, height, 0),
                key(&a, height, 1),
                key(&a, height, 2),
                key(&b, height, 0)
            ]
        );
        let mut events = Vec::new();
        for (k, v) in &entries {
            decode_entry(k, v, &mut events).expect("decode");
        }
        assert_eq!(events.len(), 73);
        assert!(events.iter().all(|e| e.height == height));
        let order: Vec<_> = events.iter().map(|e| (e.txid.0[0], e.kind as u8, e.index)).collect();
        let mut sorted_a = order[..70].to_vec();
        sorted_a.sort();
        assert_eq!(
            order[..70],
            sorted_a[..],
            "address 1's rows in (txid, kind, index) order"
        );
        assert_eq!(order[70..], [(3, 1, 4), (9, 0, 1), (9, 1, 0)]);
        assert_eq!(events[70].record.value, Amount(5));
    }

    #[test]
    fn a_damaged_entry_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let k = key(&PubkeyHash([1; 20]), Height(1), 0);
        let err = decode_entry(&k, &[0xff, 0xff, 0xff], &mut out).expect_err("garbage value");
        assert!(err.to_string().contains("address index entry"), "{err}");
        let err = decode_entry(&k[..27], &[], &mut out).expect_err("short key");
        assert!(err.to_string().contains("pkh ‖ height ‖ group"), "{err}");
    }
}
