//! Real Bitcoin mainnet headers (`shared/testdata/bitcoin`) validated by the chain's own
//! header-chain validation ([`check_header_chain`]) under [`ChainParams::bitcoin_mainnet`]:
//! every file must pass, its Electrum checkpoints must match, and the same file with any
//! single header altered must fail. The test holds no rule of its own: it reads files and
//! builds the bases and ancestor lists the chain's validation asks for.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lode_chain::params::BITCOIN_GENESIS_HASH;
use lode_chain::pow::{decode_compact, target_timespan, ChainWork, RETARGET_INTERVAL, U256};
use lode_chain::validation::{
    check_header_chain, check_header_contextual, median_time_past, HeaderAncestors, HeaderChainBase,
    HeaderChainOutcome, HeaderContext, HeaderList,
};
use lode_chain::{bitcoin_genesis_header, BlockHeader, ChainParams, ConsensusError, Height};

/// Headers whose median time a new header must exceed.
const MTP_WINDOW: usize = 11;

/// The node's clock for every check: past any time a header can carry, so the future limit
/// never cuts a file short.
const NOW: u64 = u32::MAX as u64;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/bitcoin")
}

/// Whether the block at `height` is the first of a retarget period.
fn starts_period(height: u32) -> bool {
    height.checked_rem(RETARGET_INTERVAL) == Some(0)
}

/// A run of consecutive headers starting at `first_height`.
struct HeaderFile {
    name: String,
    first_height: u32,
    headers: Vec<BlockHeader>,
}

impl HeaderFile {
    fn height(&self, index: usize) -> u32 {
        self.first_height + u32::try_from(index).expect("index fits in u32")
    }
}

/// Every `btc_headers_<first>-<last>.hex` file; fails if there is none.
fn load_header_files() -> Vec<HeaderFile> {
    let dir = testdata();
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("btc_headers_") && n.ends_with(".hex"))
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no btc_headers_*.hex files in {}", dir.display());
    paths
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_string();
            let range = name
                .strip_prefix("btc_headers_")
                .and_then(|r| r.strip_suffix(".hex"))
                .expect("name pattern");
            let (first, last) = range.split_once('-').unwrap_or((range, ""));
            let first_height: u32 = first.parse().unwrap_or_else(|e| panic!("{name}: first height: {e}"));
            let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            let headers: Vec<BlockHeader> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .enumerate()
                .map(|(i, line)| {
                    let bytes = hex::decode(line).unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1));
                    BlockHeader::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1))
                })
                .collect();
            assert!(!headers.is_empty(), "{name} has no headers");
            if let Ok(last) = last.parse::<usize>() {
                assert_eq!(headers.len(), last - first_height as usize + 1, "{name}: count vs name");
            }
            HeaderFile {
                name,
                first_height,
                headers,
            }
        })
        .collect()
}

/// The trusted base of a file's header chain: its first header.
///
/// For the file that starts at height 0 that is Bitcoin's genesis header, which must be the
/// one the chain spec names. A file that starts mid-chain (822528-830592) has no ancestors
/// before its first header, so that header is taken as a trusted checkpoint, the way a
/// genesis is; every later header's ancestors then come from the file. That checks every
/// rule on every later header, with one difference from a node that has the whole chain: the
/// first 10 headers after the checkpoint have fewer than 11 ancestors in the file, so their
/// median time past is over the times there are (as Bitcoin computes it near genesis). The
/// difficulty rule needs nothing before the file as long as the file starts a retarget
/// period (822528 = 408 × 2016): every retarget inside it then reads a period start inside
/// it. The base's cumulative work counts from the file's start.
fn file_base(file: &HeaderFile) -> HeaderChainBase {
    let first = file.headers[0];
    if file.first_height == 0 {
        assert_eq!(first, bitcoin_genesis_header(), "{}: genesis header", file.name);
        return HeaderChainBase::genesis(bitcoin_genesis_header());
    }
    HeaderChainBase::new(first, Height(file.first_height), ChainWork::from_bits(first.bits))
}

/// The whole file as one header chain on its first header, through the chain's validation.
fn validate_file(params: &ChainParams, file: &HeaderFile) -> (HeaderChainBase, HeaderChainOutcome) {
    let base = file_base(file);
    let below = HeaderList::new(base.height, &file.headers[..1]);
    let outcome = check_header_chain(params, &base, &below, NOW, &file.headers[1..]);
    (base, outcome)
}

/// The first invalid header, as an index into `headers`, when the chain's validation runs
/// `headers[from..=to]` on `headers[from - 1]` as base (ancestors from `headers` itself).
fn first_invalid(
    params: &ChainParams,
    file: &HeaderFile,
    headers: &[BlockHeader],
    from: usize,
    to: usize,
) -> Option<(usize, ConsensusError)> {
    let base = HeaderChainBase::new(headers[from - 1], Height(file.height(from - 1)), ChainWork::default());
    let list = HeaderList::new(Height(file.first_height), headers);
    let outcome = check_header_chain(params, &base, &list, NOW, &headers[from..=to]);
    outcome.invalid().map(|(i, rule)| (from + i, rule.clone()))
}

/// Re-validates, through the chain's validation, the headers whose validity can depend on
/// `headers[index]`: itself, the next 11 (its child's link, their median time past), and the
/// retarget that reads it as the first block of a period. Validation is local, so this finds
/// what a run over the whole file would, without 5 × n runs over the whole file. An altered
/// first header is the base itself: its child's link is what shows it.
fn recheck_around(
    params: &ChainParams,
    file: &HeaderFile,
    headers: &[BlockHeader],
    index: usize,
) -> Option<(usize, ConsensusError)> {
    let n = headers.len();
    let from = index.max(1);
    let to = (index + MTP_WINDOW).min(n - 1);
    if let Some(found) = first_invalid(params, file, headers, from, to) {
        return Some(found);
    }
    let retarget = index + RETARGET_INTERVAL as usize;
    if starts_period(file.height(index)) && retarget < n {
        return first_invalid(params, file, headers, retarget, retarget);
    }
    None
}

/// The contextual header rules alone (no proof of work, no linkage) for `headers[index]`, its
/// parent and ancestors from `headers`; `f` gets the context the chain's rules read.
fn with_context<R>(
    file: &HeaderFile,
    headers: &[BlockHeader],
    index: usize,
    f: impl FnOnce(&HeaderContext<'_>) -> R,
) -> R {
    let list = HeaderList::new(Height(file.first_height), headers);
    let ancestor = |h: Height| list.header_at(h);
    let ctx = HeaderContext {
        parent_height: Height(file.height(index - 1)),
        parent: &headers[index - 1],
        ancestor: &ancestor,
    };
    f(&ctx)
}

fn check_contextual(
    params: &ChainParams,
    file: &HeaderFile,
    headers: &[BlockHeader],
    index: usize,
) -> Result<(), ConsensusError> {
    with_context(file, headers, index, |ctx| {
        check_header_contextual(params, &headers[index], ctx, NOW)
    })
}

/// Electrum's checkpoints: `[display hash of block (i+1)*2016-1, target of the next 2016]`.
/// Parsed by hand: the targets exceed what JSON numbers parse to without precision loss.
fn electrum_checkpoints() -> Vec<(String, U256)> {
    let path = testdata().join("electrum_checkpoints.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).expect("checkpoints are JSON");
    let pairs = value.as_array().expect("a JSON array").len();
    // Segments alternate outside/inside quotes: each hash is followed by its integer.
    let parts: Vec<&str> = text.split('"').collect();
    let checkpoints: Vec<(String, U256)> = parts
        .iter()
        .skip(1)
        .step_by(2)
        .zip(parts.iter().skip(2).step_by(2))
        .map(|(hash, rest)| {
            let digits: String = rest
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            let target = U256::from_dec_str(&digits).unwrap_or_else(|e| panic!("target {digits:?}: {e:?}"));
            (hash.to_string(), target)
        })
        .collect();
    assert_eq!(checkpoints.len(), pairs, "one hash and target per pair");
    assert!(!checkpoints.is_empty(), "no checkpoints");
    checkpoints
}

#[test]
fn bitcoin_header_files_validate_and_any_alteration_fails() {
    let params = ChainParams::bitcoin_mainnet();
    let files = load_header_files();
    let checkpoints = electrum_checkpoints();
    let mut checkpoints_checked = 0;

    for file in &files {
        let start = Instant::now();
        let n = file.headers.len();
        let name = &file.name;
        assert!(
            starts_period(file.first_height),
            "{name}: a file must start a retarget period, or its first retarget reads a header before it"
        );

        if file.first_height == 0 {
            assert_eq!(
                file.headers[0].hash().to_hex(),
                BITCOIN_GENESIS_HASH,
                "{name}: genesis hash"
            );
        }

        // The whole file is a valid chain.
        let (base, outcome) = validate_file(&params, file);
        if let Some(stop) = &outcome.stop {
            panic!("{name}: stopped at {stop:?}");
        }
        assert_eq!(
            outcome.checked.len(),
            n - 1,
            "{name}: every header after the base checked"
        );
        let mut work = base.work;
        for (i, checked) in outcome.checked.iter().enumerate() {
            work = work.saturating_add(ChainWork::from_bits(file.headers[i + 1].bits));
            assert_eq!(checked.height, Height(file.height(i + 1)), "{name}: height");
            assert_eq!(checked.hash, file.headers[i + 1].hash(), "{name}: hash");
            assert_eq!(checked.work, work, "{name}: cumulative work");
        }
        assert_eq!(outcome.work, work, "{name}: work at the last header");
        let retargets = (1..n).filter(|&i| starts_period(file.height(i))).count();
        assert!(retargets > 0, "{name}: no retarget inside the file");

        // Electrum checkpoints inside the file, against the hashes the validation computed.
        let hash_at = |index: usize| match index {
            0 => base.hash,
            i => outcome.checked[i - 1].hash,
        };
        for (i, (hash, target)) in checkpoints.iter().enumerate() {
            let boundary = (i as u64 + 1) * u64::from(RETARGET_INTERVAL);
            let last_of_period = boundary - 1;
            let first = u64::from(file.first_height);
            if last_of_period < first || boundary >= first + n as u64 {
                continue;
            }
            let last_index = (last_of_period - first) as usize;
            assert_eq!(
                &hash_at(last_index).to_hex(),
                hash,
                "{name}: checkpoint {i} hash at height {last_of_period}"
            );
            let bits = file.headers[last_index + 1].bits;
            assert_eq!(
                decode_compact(bits).target,
                *target,
                "{name}: checkpoint {i} target at height {boundary}"
            );
            checkpoints_checked += 1;
        }

        // Any single altered header makes the chain invalid.
        type Alteration = (&'static str, fn(&mut BlockHeader));
        let alterations: [Alteration; 5] = [
            ("nonce", |h| h.nonce = h.nonce.wrapping_add(1)),
            ("time", |h| h.time = h.time.wrapping_add(1)),
            ("bits", |h| h.bits ^= 1),
            ("merkle root", |h| h.merkle_root.0[0] ^= 1),
            ("version", |h| h.version ^= 1 << 28),
        ];
        let mut headers = file.headers.clone();
        for (field, alter) in alterations {
            for i in 0..n {
                let original = headers[i];
                alter(&mut headers[i]);
                assert_ne!(headers[i], original);
                let result = recheck_around(&params, file, &headers, i);
                headers[i] = original;
                assert!(
                    result.is_some(),
                    "{name}: altering the {field} of the header at height {} went unnoticed",
                    file.height(i)
                );
            }
        }
        eprintln!(
            "{name}: {n} headers valid ({retargets} retargets), 5 x {n} alterations rejected in {:.2?}",
            start.elapsed()
        );
    }
    assert!(
        checkpoints_checked > 0,
        "no Electrum checkpoint fell inside a header file"
    );
}

/// Each rule on its own: a header changed in any field breaks its child's link (shown with
/// the changed header as a trusted base, so proof of work does not catch it first), wrong
/// bits break the difficulty rule, an old time the median-time rule, and a moved
/// first-of-period time the retarget that reads it.
#[test]
fn each_rule_alone_rejects_alterations() {
    let params = ChainParams::bitcoin_mainnet();
    let mut retargets_probed = 0;
    for file in &load_header_files() {
        let name = &file.name;
        let n = file.headers.len();
        let mut headers = file.headers.clone();
        for i in 0..n {
            let original = headers[i];

            // Fields only the hash commits to: the child's link is the one rule that sees them.
            if i + 1 < n {
                for alter in [
                    |h: &mut BlockHeader| h.nonce ^= 1,
                    |h: &mut BlockHeader| h.merkle_root.0[31] ^= 0x80,
                    |h: &mut BlockHeader| h.version ^= 2,
                ] {
                    alter(&mut headers[i]);
                    let result = first_invalid(&params, file, &headers, i + 1, i + 1);
                    headers[i] = original;
                    assert!(
                        matches!(result, Some((j, ConsensusError::BrokenLink { .. })) if j == i + 1),
                        "{name} index {i}: {result:?}"
                    );
                }
            }

            // Bits other than the rule's, wherever the rule is checkable here.
            if i > 0 && !(starts_period(file.height(i)) && i < RETARGET_INTERVAL as usize) {
                headers[i].bits = original.bits.wrapping_add(1);
                let result = check_contextual(&params, file, &headers, i);
                headers[i] = original;
                assert!(
                    matches!(result, Err(ConsensusError::BadDifficulty { .. })),
                    "{name} index {i}: {result:?}"
                );
            }

            // A time no later than the median of the previous 11.
            if i >= MTP_WINDOW {
                headers[i].time = with_context(file, &headers, i, median_time_past);
                let result = check_contextual(&params, file, &headers, i);
                headers[i] = original;
                assert!(
                    matches!(result, Err(ConsensusError::TimeTooOld { .. })),
                    "{name} index {i}: {result:?}"
                );
            }

            // The first block of a period: its time decides the retarget 2016 blocks later.
            let retarget = i + RETARGET_INTERVAL as usize;
            if starts_period(file.height(i)) && retarget < n {
                let last_time = headers[retarget - 1].time;
                let timespan = u32::try_from(target_timespan(params.target_spacing)).expect("two weeks fit in u32");
                // The fastest and the slowest clamped spans: at most one can be the real one.
                let rejected = [last_time - timespan / 4, last_time - timespan * 4]
                    .into_iter()
                    .filter(|&t| {
                        headers[i].time = t;
                        let r = check_contextual(&params, file, &headers, retarget);
                        headers[i] = original;
                        matches!(r, Err(ConsensusError::BadDifficulty { .. }))
                    })
                    .count();
                assert!(
                    rejected >= 1,
                    "{name}: retarget at index {retarget} ignores the period's first time"
                );
                retargets_probed += 1;
            }
        }
    }
    assert!(retargets_probed > 0, "no retarget with its whole period inside a file");
}
