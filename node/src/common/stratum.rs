//! Stratum v1's wire transforms, shared by the server (`stratum/`) and the client
//! (`client/`), pure and exact: the prevhash word order, the coinbase split
//! around the extra-nonce region, the merkle branch of the coinbase, the header a submit
//! describes, and share difficulty ↔ target.
//!
//! Lode's header is Bitcoin's 80 bytes and its txid is sha256d of the canonical encoding,
//! so `sha256d(coinb1 ‖ en1 ‖ en2 ‖ coinb2)` is the coinbase txid whenever the split falls
//! on the coinbase's 8-byte `extra_nonce` field (fixed width in the encoding).

use lode_chain::pow::U256;
use lode_chain::{encoding, Hash256, Transaction, Unlock};

/// A malformed Stratum field or an unusable coinbase.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A field of a message is malformed.
    #[error("{field}: {reason}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The coinbase cannot be split around its extra-nonce.
    #[error("coinbase: {0}")]
    Coinbase(String),
}

/// Bytes of the coinbase's extra-nonce region: extranonce1 ‖ extranonce2.
pub const EXTRA_NONCE_REGION: usize = 8;

/// Longest wait a `client.reconnect` may ask for (seconds): a server cannot park a miner
/// for longer.
pub const MAX_RECONNECT_WAIT: u64 = 600;

/// The difficulty-1 target, `0xFFFF · 2^208` (Bitcoin's and every miner's share unit).
pub fn diff1_target() -> U256 {
    U256::from(0xFFFFu64) << 208
}

/// Stratum's prevhash: the 32 header-order bytes with each 4-byte word byte-swapped.
pub fn prevhash_to_stratum(prev: &Hash256) -> String {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(prev.0.chunks_exact(4)) {
        o.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    hex::encode(out)
}

/// The inverse of [`prevhash_to_stratum`] (the client side).
pub fn prevhash_from_stratum(s: &str) -> Result<Hash256, WireError> {
    let bytes = hex_exact::<32>(s, "prevhash")?;
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(bytes.chunks_exact(4)) {
        o.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    Ok(Hash256(out))
}

/// A u32 as Stratum writes version, nbits, ntime and nonce: 8 hex digits, big-endian.
pub fn u32_hex(v: u32) -> String {
    format!("{v:08x}")
}

/// Parses an 8-hex-digit big-endian u32 (exactly 8 digits).
pub fn parse_u32_hex(s: &str, what: &'static str) -> Result<u32, WireError> {
    if s.len() != 8 {
        return Err(WireError::BadField {
            field: what,
            reason: format!("must be 8 hex digits, got {} characters", s.len()),
        });
    }
    u32::from_str_radix(s, 16).map_err(|_| WireError::BadField {
        field: what,
        reason: "not hex".into(),
    })
}

/// Decodes exactly `N` bytes of hex.
pub fn hex_exact<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], WireError> {
    if s.len() != 2 * N {
        return Err(WireError::BadField {
            field: what,
            reason: format!("must be {} hex digits, got {} characters", 2 * N, s.len()),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| WireError::BadField {
        field: what,
        reason: "not hex".into(),
    })?;
    Ok(out)
}

/// Splits a coinbase's canonical encoding around its 8-byte extra-nonce: `(coinb1, coinb2)`.
/// The region is found by encoding the transaction twice with different extra-nonces, so the
/// split follows the encoding rather than a hard-coded offset.
pub fn split_coinbase(coinbase: &Transaction) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let with = |fill: u8| -> Result<Vec<u8>, WireError> {
        let mut tx = coinbase.clone();
        match tx.inputs.first_mut().map(|i| &mut i.unlock) {
            Some(Unlock::Coinbase(data)) => data.extra_nonce = [fill; EXTRA_NONCE_REGION],
            _ => return Err(WireError::Coinbase("not a coinbase".into())),
        }
        Ok(encoding::encode(&tx))
    };
    let (a, b) = (with(0x00)?, with(0xff)?);
    let start = a.iter().zip(&b).position(|(x, y)| x != y);
    let end = a.iter().zip(&b).rposition(|(x, y)| x != y);
    match (start, end) {
        (Some(s), Some(e)) if e + 1 - s == EXTRA_NONCE_REGION && a.len() == b.len() => {
            Ok((a[..s].to_vec(), a[s + EXTRA_NONCE_REGION..].to_vec()))
        }
        _ => Err(WireError::Coinbase(
            "extra-nonce region not found in the coinbase".into(),
        )),
    }
}

/// The merkle branch of leaf 0: the right-hand siblings on its path, bottom up, in internal
/// byte order. `others` are the txids after the coinbase.
pub fn merkle_branch(others: &[Hash256]) -> Vec<Hash256> {
    let mut branch = Vec::new();
    // Level with the coinbase's slot as `None` (unknown); every other node is known.
    let mut level: Vec<Option<Hash256>> = std::iter::once(None).chain(others.iter().copied().map(Some)).collect();
    let mut buf = [0u8; 64];
    while level.len() > 1 {
        if let Some(Some(sibling)) = level.get(1) {
            branch.push(*sibling);
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        let mut next = vec![None];
        for pair in level[2..].chunks_exact(2) {
            if let (Some(l), Some(r)) = (pair[0], pair[1]) {
                buf[..32].copy_from_slice(&l.0);
                buf[32..].copy_from_slice(&r.0);
                next.push(Some(Hash256::sha256d(&buf)));
            }
        }
        level = next;
    }
    branch
}

/// The merkle root from the coinbase txid and the branch.
pub fn root_from_branch(coinbase_txid: Hash256, branch: &[Hash256]) -> Hash256 {
    let mut root = coinbase_txid;
    let mut buf = [0u8; 64];
    for b in branch {
        buf[..32].copy_from_slice(&root.0);
        buf[32..].copy_from_slice(&b.0);
        root = Hash256::sha256d(&buf);
    }
    root
}

/// The coinbase txid a submit describes: sha256d(coinb1 ‖ en1 ‖ en2 ‖ coinb2).
pub fn coinbase_txid(coinb1: &[u8], en1: &[u8], en2: &[u8], coinb2: &[u8]) -> Hash256 {
    let mut bytes = Vec::with_capacity(coinb1.len() + en1.len() + en2.len() + coinb2.len());
    bytes.extend_from_slice(coinb1);
    bytes.extend_from_slice(en1);
    bytes.extend_from_slice(en2);
    bytes.extend_from_slice(coinb2);
    Hash256::sha256d(&bytes)
}

/// BIP310 version rolling: the job's version with the miner's bits inside `mask`. `None` if
/// the miner set bits outside the mask.
pub fn rolled_version(job_version: u32, mask: u32, bits: u32) -> Option<u32> {
    if bits & !mask != 0 {
        return None;
    }
    Some((job_version & !mask) | (bits & mask))
}

/// A share difficulty: a power of two, `2^log2`, from [`MIN_LOG2`] (sub-1, for CPUs) up.
/// Powers of two make the target exact for every miner (cpuminer derives it in `double`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareDifficulty(i32);

/// The easiest share difficulty: 2^-32 (its target still fits in 256 bits).
pub const MIN_LOG2: i32 = -32;
/// The hardest share difficulty offered: 2^62.
pub const MAX_LOG2: i32 = 62;

impl ShareDifficulty {
    /// `2^log2`, clamped to the supported range.
    pub fn from_log2(log2: i32) -> ShareDifficulty {
        ShareDifficulty(log2.clamp(MIN_LOG2, MAX_LOG2))
    }

    /// The largest power of two not above `d` (clamped); `None` for non-finite or ≤ 0.
    pub fn at_most(d: f64) -> Option<ShareDifficulty> {
        if !d.is_finite() || d <= 0.0 {
            return None;
        }
        Some(ShareDifficulty::from_log2(d.log2().floor() as i32))
    }

    /// The exponent.
    pub fn log2(self) -> i32 {
        self.0
    }

    /// The value Stratum sends in `mining.set_difficulty` (exact in f64).
    pub fn value(self) -> f64 {
        2f64.powi(self.0)
    }

    /// The share target: ⌊0xFFFF·2^208 / 2^log2⌋ = 0xFFFF << (208 − log2).
    pub fn target(self) -> U256 {
        let shift = 208 - self.0;
        if shift >= 0 {
            U256::from(0xFFFFu64) << (shift as usize)
        } else {
            U256::from(0xFFFFu64) >> ((-shift) as usize)
        }
    }

    /// Doubles (vardiff: too many shares).
    pub fn harder(self) -> ShareDifficulty {
        ShareDifficulty::from_log2(self.0 + 1)
    }

    /// Halves (vardiff: too few shares).
    pub fn easier(self) -> ShareDifficulty {
        ShareDifficulty::from_log2(self.0 - 1)
    }
}

/// A U256 as f64 (for difficulty ratios; exact to f64's 53 bits).
pub fn u256_to_f64(v: &U256) -> f64 {
    let bits = v.bits();
    if bits <= 64 {
        return v.low_u64() as f64;
    }
    let shift = bits - 64;
    ((*v >> shift).low_u64() as f64) * 2f64.powi(shift as i32)
}

/// Difficulty of a target: diff1 / target.
pub fn difficulty_of_target(target: &U256) -> f64 {
    if target.is_zero() {
        return f64::INFINITY;
    }
    u256_to_f64(&diff1_target()) / u256_to_f64(target)
}

/// Difficulty a hash achieves: diff1 / hash (the share's "actual" difficulty).
pub fn difficulty_of_hash(hash: &Hash256) -> f64 {
    difficulty_of_target(&lode_chain::pow::hash_to_u256(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_chain::build::{coinbase, pay};
    use lode_chain::merkle::merkle_root;
    use lode_chain::{Amount, BlockHeader, Height, PubkeyHash};

    /// Bitcoin block 1's coinbase, raw (its txid is block 1's merkle root).
    const BLOCK1_COINB1: &str =
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704";
    const BLOCK1_EN1: &str = "ffff001d";
    const BLOCK1_EN2: &str = "0104";
    const BLOCK1_COINB2: &str = "ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000";
    /// Bitcoin block 1's header as the test data has it.
    const BLOCK1_HEADER: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";

    #[test]
    fn bitcoin_block_1_through_the_stratum_transforms() {
        let genesis =
            Hash256::from_hex("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f").expect("hex");
        let prev = prevhash_to_stratum(&genesis);
        assert_eq!(prev, "0a8ce26f72b3f1b646a2a6c14ff763ae65831e939c085ae10019d66800000000");
        assert_eq!(prevhash_from_stratum(&prev).expect("parses"), genesis);
        let h = |s: &str| hex::decode(s).expect("hex");
        let txid = coinbase_txid(&h(BLOCK1_COINB1), &h(BLOCK1_EN1), &h(BLOCK1_EN2), &h(BLOCK1_COINB2));
        let root = root_from_branch(txid, &merkle_branch(&[]));
        // The notify/submit strings a miner would send for block 1.
        let header = BlockHeader {
            version: parse_u32_hex("00000001", "version").expect("v"),
            prev_hash: prevhash_from_stratum(&prev).expect("prev"),
            merkle_root: root,
            time: parse_u32_hex("4966bc61", "ntime").expect("t"),
            bits: parse_u32_hex("1d00ffff", "nbits").expect("b"),
            nonce: parse_u32_hex("9962e301", "nonce").expect("n"),
        };
        assert_eq!(hex::encode(header.to_bytes()), BLOCK1_HEADER);
        assert_eq!(
            header.hash().to_hex(),
            "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
        );
        // It meets difficulty 1 and not difficulty 2.
        let hash = lode_chain::pow::hash_to_u256(&header.hash());
        assert!(hash <= ShareDifficulty::from_log2(0).target());
        assert!(hash > ShareDifficulty::from_log2(1).target());
        // The genesis header's share difficulty, a worked vector of the notes.
        let d = difficulty_of_hash(&genesis);
        assert!((d - 2536.43).abs() < 0.01, "{d}");
    }

    #[test]
    fn lode_coinbase_split_rebuilds_the_txid() {
        let cb = coinbase(
            Height(7),
            0x0102_0304_0506_0708,
            b"lode",
            vec![pay(PubkeyHash([4; 20]), Amount(5_000))],
        );
        let (c1, c2) = split_coinbase(&cb).expect("splits");
        let en = 0x0102_0304_0506_0708u64.to_le_bytes();
        assert_eq!(coinbase_txid(&c1, &en[..4], &en[4..], &c2), cb.txid());
        assert_eq!(c1.len() + c2.len() + EXTRA_NONCE_REGION, cb.size());
    }

    #[test]
    fn merkle_branch_agrees_with_the_chain_root() {
        for n in 0..9u8 {
            let cb = Hash256([0xcb; 32]);
            let others: Vec<Hash256> = (0..n).map(|i| Hash256([i + 1; 32])).collect();
            let mut all = vec![cb];
            all.extend(&others);
            assert_eq!(
                root_from_branch(cb, &merkle_branch(&others)),
                merkle_root(&all).0,
                "{n} others"
            );
        }
    }

    #[test]
    fn difficulty_targets_are_exact_powers_of_two() {
        assert_eq!(ShareDifficulty::from_log2(0).target(), diff1_target());
        assert_eq!(ShareDifficulty::from_log2(-32).target(), U256::from(0xFFFFu64) << 240);
        assert_eq!(ShareDifficulty::at_most(0.001), Some(ShareDifficulty::from_log2(-10)));
        assert_eq!(ShareDifficulty::at_most(16384.0), Some(ShareDifficulty::from_log2(14)));
        assert_eq!(ShareDifficulty::at_most(f64::NAN), None);
        assert_eq!(ShareDifficulty::from_log2(-3).value(), 0.125);
    }

    #[test]
    fn version_rolling_keeps_bits_inside_the_mask() {
        let mask = 0x1fff_e000;
        assert_eq!(rolled_version(0x2000_0000, mask, 0x0000_2000), Some(0x2000_2000));
        assert_eq!(rolled_version(0x2000_0000, mask, 0x4000_0000), None);
        // BIP310's example: miner mask 1fffe000 against a server mask gives the AND.
        assert_eq!(0x1fff_e000u32 & 0x1800_0000, 0x1800_0000);
    }
}
