//! Checking one submit against its own job: fields, ntime window, version bits, the header
//! it describes, duplicates and the share target. Pure apart from the duplicate set.

use std::collections::{HashSet, VecDeque};

use lode_chain::pow::hash_to_u256;
use lode_chain::{BlockHeader, Hash256};

use crate::common::stratum::{coinbase_txid, parse_u32_hex, rolled_version, root_from_branch, ShareDifficulty};

use super::jobs::Template;
use super::stats::Reject;

/// A job as one session sent it.
#[derive(Debug)]
pub struct SessionJob {
    /// Its id on this connection.
    pub id: String,
    /// The template.
    pub template: std::sync::Arc<Template>,
    /// The coinbase around the extra-nonce region.
    pub coinbase: super::jobs::JobCoinbase,
    /// The difficulty shares on this job are judged at (the one sent before its notify).
    pub difficulty: ShareDifficulty,
}

/// A submit's fields, raw.
pub struct Submit<'a> {
    /// extranonce2, hex.
    pub en2: &'a str,
    /// ntime, 8 hex.
    pub ntime: &'a str,
    /// nonce, 8 hex.
    pub nonce: &'a str,
    /// BIP310 version bits, 8 hex, if sent.
    pub version_bits: Option<&'a str>,
}

/// A valid share.
#[derive(Debug)]
pub struct Share {
    /// The header it describes.
    pub header: BlockHeader,
    /// Its hash.
    pub hash: Hash256,
    /// extranonce1 ‖ extranonce2 as the coinbase's extra-nonce.
    pub extra_nonce: u64,
    /// Whether it also meets the network target.
    pub is_block: bool,
}

/// Why a share was refused, with its one-line message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The reason.
    pub reason: Reject,
    /// What to tell the miner.
    pub message: String,
}

fn refuse(reason: Reject, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// Duplicate detection over the last [`SeenShares::CAP`] share hashes of a connection.
#[derive(Default)]
pub struct SeenShares {
    set: HashSet<Hash256>,
    order: VecDeque<Hash256>,
}

impl SeenShares {
    /// Hashes remembered at most.
    pub const CAP: usize = 16_384;

    /// True if new (and remembers it).
    pub fn insert(&mut self, h: Hash256) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets everything (a new tip: older shares are stale anyway).
    pub fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

/// The rules a share is judged by beyond its job.
pub struct Context<'a> {
    /// This connection's extranonce1.
    pub en1: &'a [u8],
    /// Expected extranonce2 length.
    pub en2_size: usize,
    /// The negotiated version-rolling mask (`None`: not negotiated).
    pub version_mask: Option<u32>,
    /// The node's clock, Unix seconds.
    pub now: u64,
    /// Seconds ntime may run ahead of `now`.
    pub ntime_ahead: u32,
}

/// Judges `submit` against `job`.
pub fn check(
    job: &SessionJob,
    submit: &Submit<'_>,
    ctx: &Context<'_>,
    seen: &mut SeenShares,
) -> Result<Share, Refusal> {
    let t = &job.template;
    if submit.en2.len() != 2 * ctx.en2_size {
        return Err(refuse(
            Reject::Malformed,
            format!("extranonce2 must be {} hex digits", 2 * ctx.en2_size),
        ));
    }
    let mut en2 = vec![0u8; ctx.en2_size];
    hex::decode_to_slice(submit.en2, &mut en2).map_err(|_| refuse(Reject::Malformed, "extranonce2 is not hex"))?;
    let ntime = parse_u32_hex(submit.ntime, "ntime").map_err(|e| refuse(Reject::Malformed, e.to_string()))?;
    let nonce = parse_u32_hex(submit.nonce, "nonce").map_err(|e| refuse(Reject::Malformed, e.to_string()))?;
    let latest = ctx.now.saturating_add(u64::from(ctx.ntime_ahead));
    if ntime < t.min_time || u64::from(ntime) > latest {
        return Err(refuse(
            Reject::BadNtime,
            format!("ntime out of range ({ntime} not in {}..={latest})", t.min_time),
        ));
    }
    let version = match submit.version_bits {
        None => t.version,
        Some(bits) => {
            let bits = parse_u32_hex(bits, "version_bits").map_err(|e| refuse(Reject::Malformed, e.to_string()))?;
            let mask = ctx.version_mask.unwrap_or(0);
            rolled_version(t.version, mask, bits).ok_or_else(|| {
                refuse(
                    Reject::BadVersion,
                    format!("bad-version: bits {bits:08x} outside mask {mask:08x}"),
                )
            })?
        }
    };
    let txid = coinbase_txid(&job.coinbase.coinb1, ctx.en1, &en2, &job.coinbase.coinb2);
    let header = BlockHeader {
        version,
        prev_hash: t.prev_hash,
        merkle_root: root_from_branch(txid, &t.branch),
        time: ntime,
        bits: t.bits,
        nonce,
    };
    let hash = header.hash();
    let value = hash_to_u256(&hash);
    if value > job.difficulty.target() {
        return Err(refuse(Reject::LowDifficulty, "Low difficulty share"));
    }
    if !seen.insert(hash) {
        return Err(refuse(Reject::Duplicate, "Duplicate share"));
    }
    let mut extra = [0u8; 8];
    extra[..ctx.en1.len()].copy_from_slice(ctx.en1);
    extra[ctx.en1.len()..ctx.en1.len() + en2.len()].copy_from_slice(&en2);
    Ok(Share {
        header,
        hash,
        extra_nonce: u64::from_le_bytes(extra),
        is_block: value <= t.target,
    })
}

#[cfg(test)]
mod bench {
    use std::sync::Arc;
    use std::time::Instant;

    use lode_chain::build::pay;
    use lode_chain::{Amount, Hash256, Height, PubkeyHash};

    use super::*;
    use crate::common::stratum::{difficulty_of_target, ShareDifficulty};
    use crate::stratum::jobs::Template;

    /// Share validation rate on one core against the raw double-SHA-256 rate of 80-byte
    /// headers in the same run. `cargo nextest run -p lode-node --lib --run-ignored only share_validation_rate --no-capture`
    #[test]
    #[ignore = "benchmark"]
    fn share_validation_rate() {
        let target = ShareDifficulty::from_log2(0).target();
        let template = Arc::new(Template {
            id: 1,
            height: Height(1),
            prev_hash: Hash256([1; 32]),
            version: 1,
            bits: 0x1d00_ffff,
            time: 1_000_000,
            min_time: 0,
            reward: Amount(5_000_000_000),
            txs: Arc::new(Vec::new()),
            // A 1,000-transaction block's branch depth.
            branch: (0..10u8).map(|i| Hash256([i; 32])).collect(),
            target,
            net_diff: difficulty_of_target(&target),
            node_payout: None,
            pool_outputs: None,
            clean: true,
        });
        let coinbase = template
            .job_coinbase(vec![pay(PubkeyHash([3; 20]), Amount(5_000_000_000))])
            .expect("coinbase");
        let job = SessionJob {
            id: "1".into(),
            template,
            coinbase,
            difficulty: ShareDifficulty::from_log2(-32),
        };
        let en1 = [0u8; 4];
        let n = 200_000u32;
        let mut seen = SeenShares::default();
        let start = Instant::now();
        let mut ok = 0u32;
        for i in 0..n {
            let nonce = format!("{i:08x}");
            let submit = Submit {
                en2: "00000000",
                ntime: "000f4240",
                nonce: &nonce,
                version_bits: None,
            };
            let ctx = Context {
                en1: &en1,
                en2_size: 4,
                version_mask: None,
                now: 1_000_000,
                ntime_ahead: 7_000,
            };
            if check(&job, &submit, &ctx, &mut seen).is_ok() {
                ok += 1;
            }
            if i % 10_000 == 0 {
                seen.clear();
            }
        }
        let shares = f64::from(n) / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut h = Hash256([0; 32]);
        let mut header = [0u8; 80];
        for i in 0..n {
            header[76..80].copy_from_slice(&i.to_le_bytes());
            header[..32].copy_from_slice(&h.0);
            h = Hash256::sha256d(&header);
        }
        let hashes = f64::from(n) / start.elapsed().as_secs_f64();
        assert!(ok > 0);
        eprintln!(
            "share validation: {shares:.0}/s; raw sha256d(80 B): {hashes:.0}/s; ratio {:.4} (a share costs the coinbase hash, {} branch hashes and the header hash)",
            shares / hashes,
            job.template.branch.len()
        );
    }
}
