//! Real Bitcoin mainnet headers (`shared/testdata/bitcoin`) validated as header chains under
//! Bitcoin's difficulty rule: every file must pass, its Electrum checkpoints must match, and
//! the same file with any single header altered must fail.

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lode_chain::pow::{check_proof_of_work, decode_compact, next_bits, U256};
use lode_chain::{BlockHeader, ChainParams, ConsensusError, DifficultyAlgorithm, Height};

const RETARGET_INTERVAL: u32 = 2016;
/// Headers whose median time a new header must exceed.
const MTP_WINDOW: usize = 11;
const BITCOIN_GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/bitcoin")
}

/// Bitcoin mainnet, as far as header validation goes.
fn bitcoin_mainnet() -> ChainParams {
    let mut p = ChainParams::regtest();
    p.name = "bitcoin".into();
    p.difficulty = DifficultyAlgorithm::Bitcoin;
    p.target_spacing = 600;
    p.pow_limit_bits = 0x1d00_ffff;
    p.genesis_bits = 0x1d00_ffff;
    p.genesis_time = 1_231_006_505;
    p
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

/// What a validation pass checked, so a pass that silently skipped rules is noticed.
#[derive(Default, Debug)]
struct Checked {
    pow: usize,
    links: usize,
    mtp: usize,
    bits: usize,
    retargets: usize,
}

/// Which rules a check applies: all of them, or the contextual ones alone (to show each
/// catches what it should even where proof of work would have caught it first).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rules {
    All,
    ContextOnly,
}

/// The header-chain checker (to be replaced by the crate's contextual header validation):
/// validates `headers[index]`, at height `first_height + index`, against the headers before
/// it in the slice — proof of work against its own bits, linkage to its parent, time above
/// the median of the previous 11 (fewer only at the start of the chain, as Bitcoin), and the
/// bits `next_bits` expects whenever the ancestors that rule reads are in the slice.
fn check_header(
    params: &ChainParams,
    rules: Rules,
    headers: &[BlockHeader],
    first_height: u32,
    index: usize,
    checked: &mut Checked,
) -> Result<(), ConsensusError> {
    let header = &headers[index];
    if rules == Rules::All {
        check_proof_of_work(&header.hash(), header.bits, &params.pow_limit())?;
        checked.pow += 1;
    }
    if index == 0 {
        return Ok(());
    }
    let parent = &headers[index - 1];
    let parent_hash = parent.hash();
    if header.prev_hash != parent_hash {
        return Err(ConsensusError::UnknownParent(header.prev_hash));
    }
    checked.links += 1;

    let available = index.min(MTP_WINDOW);
    if available == MTP_WINDOW || first_height == 0 {
        let mut times: Vec<u32> = headers[index - available..index].iter().map(|h| h.time).collect();
        times.sort_unstable();
        let median = times[times.len() / 2];
        if header.time <= median {
            return Err(ConsensusError::TimeTooOld {
                time: header.time,
                median,
            });
        }
        checked.mtp += 1;
    }

    let parent_height = Height(first_height + u32::try_from(index - 1).expect("index fits"));
    let ancestor = |h: Height| {
        h.0.checked_sub(first_height)
            .and_then(|i| headers.get(i as usize))
            .filter(|_| h < parent_height)
            .copied()
    };
    match next_bits(params, parent_height, parent, &ancestor) {
        Ok(expected) => {
            if header.bits != expected {
                return Err(ConsensusError::BadDifficulty {
                    expected,
                    found: header.bits,
                });
            }
            checked.bits += 1;
            if starts_period(parent_height.0 + 1) {
                checked.retargets += 1;
            }
            Ok(())
        }
        // The rule reads a header before the file: not checkable here.
        Err(ConsensusError::MissingAncestor { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Validates every header of `indices`; the first failure, with its index.
fn check_headers(
    params: &ChainParams,
    rules: Rules,
    file: &HeaderFile,
    headers: &[BlockHeader],
    indices: impl IntoIterator<Item = usize>,
    checked: &mut Checked,
) -> Result<(), (usize, ConsensusError)> {
    for i in indices {
        check_header(params, rules, headers, file.first_height, i, checked).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// The headers whose validity can depend on `headers[index]`: itself, the next 11 (its
/// child's linkage and bits, their median time past), and the retarget that reads it as the
/// first block of a period.
fn affected_by(file: &HeaderFile, index: usize) -> impl Iterator<Item = usize> {
    let n = file.headers.len();
    let window: RangeInclusive<usize> = index..=(index + MTP_WINDOW).min(n - 1);
    let period_start = starts_period(file.height(index));
    let retarget = index + RETARGET_INTERVAL as usize;
    window.chain((period_start && retarget < n).then_some(retarget))
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
    let params = bitcoin_mainnet();
    let files = load_header_files();
    let checkpoints = electrum_checkpoints();
    let mut checkpoints_checked = 0;

    for file in &files {
        let start = Instant::now();
        let n = file.headers.len();
        let name = &file.name;

        if file.first_height == 0 {
            assert_eq!(
                file.headers[0].hash().to_hex(),
                BITCOIN_GENESIS_HASH,
                "{name}: genesis hash"
            );
        }

        // The whole file is a valid chain.
        let mut checked = Checked::default();
        if let Err((i, e)) = check_headers(&params, Rules::All, file, &file.headers, 0..n, &mut checked) {
            panic!("{name}: header at height {} is invalid: {e}", file.height(i));
        }
        assert_eq!(checked.pow, n, "{name}: {checked:?}");
        assert_eq!(checked.links, n - 1, "{name}: {checked:?}");
        assert!(checked.mtp >= n - MTP_WINDOW - 1, "{name}: {checked:?}");
        assert!(
            checked.bits >= n - 1 - RETARGET_INTERVAL as usize,
            "{name}: {checked:?}"
        );
        let boundaries = (1..n)
            .filter(|&i| starts_period(file.height(i)) && i >= RETARGET_INTERVAL as usize)
            .count();
        assert_eq!(
            checked.retargets, boundaries,
            "{name}: every retarget inside the file checked"
        );

        // Electrum checkpoints inside the file.
        for (i, (hash, target)) in checkpoints.iter().enumerate() {
            let boundary = (i as u64 + 1) * u64::from(RETARGET_INTERVAL);
            let last_of_period = boundary - 1;
            let first = u64::from(file.first_height);
            if last_of_period < first || boundary >= first + n as u64 {
                continue;
            }
            let last_index = (last_of_period - first) as usize;
            assert_eq!(
                &file.headers[last_index].hash().to_hex(),
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

        // Any single altered header makes the chain invalid. Validation is local, so only
        // the headers an alteration can affect are re-checked.
        type Alteration = (&'static str, fn(&mut BlockHeader));
        let alterations: [Alteration; 5] = [
            ("nonce", |h| h.nonce = h.nonce.wrapping_add(1)),
            ("time", |h| h.time = h.time.wrapping_add(1)),
            ("bits", |h| h.bits ^= 1),
            ("merkle root", |h| h.merkle_root.0[0] ^= 1),
            ("version", |h| h.version ^= 1 << 28),
        ];
        let mut headers = file.headers.clone();
        let mut scratch = Checked::default();
        for (field, alter) in alterations {
            for i in 0..n {
                let original = headers[i];
                alter(&mut headers[i]);
                assert_ne!(headers[i], original);
                let result = check_headers(&params, Rules::All, file, &headers, affected_by(file, i), &mut scratch);
                headers[i] = original;
                assert!(
                    result.is_err(),
                    "{name}: altering the {field} of the header at height {} went unnoticed",
                    file.height(i)
                );
            }
        }
        eprintln!(
            "{name}: {n} headers valid ({checked:?}), 5 x {n} alterations rejected in {:.2?}",
            start.elapsed()
        );
    }
    assert!(
        checkpoints_checked > 0,
        "no Electrum checkpoint fell inside a header file"
    );
}

/// Each contextual rule on its own, without proof of work: a header changed in any field
/// breaks its child's link, wrong bits break the difficulty rule, an old time the median-time
/// rule, and a moved first-of-period time the retarget that reads it.
#[test]
fn contextual_rules_alone_reject_alterations() {
    let params = bitcoin_mainnet();
    let rules = Rules::ContextOnly;
    let mut retargets_probed = 0;
    for file in &load_header_files() {
        let name = &file.name;
        let n = file.headers.len();
        let first = file.first_height;
        let mut headers = file.headers.clone();
        let mut checked = Checked::default();
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
                    let result = check_headers(&params, rules, file, &headers, affected_by(file, i), &mut checked);
                    headers[i] = original;
                    assert!(
                        matches!(result, Err((j, ConsensusError::UnknownParent(_))) if j == i + 1),
                        "{name} index {i}: {result:?}"
                    );
                }
            }

            // Bits other than the rule's, wherever the rule is checkable here.
            headers[i].bits = original.bits.wrapping_add(1);
            let result = check_header(&params, rules, &headers, first, i, &mut checked);
            headers[i] = original;
            if i > 0 && !(starts_period(file.height(i)) && i < RETARGET_INTERVAL as usize) {
                assert!(
                    matches!(result, Err(ConsensusError::BadDifficulty { .. })),
                    "{name} index {i}: {result:?}"
                );
            }

            // A time no later than the median of the previous 11.
            if i >= MTP_WINDOW {
                let mut times: Vec<u32> = headers[i - MTP_WINDOW..i].iter().map(|h| h.time).collect();
                times.sort_unstable();
                headers[i].time = times[MTP_WINDOW / 2];
                let result = check_header(&params, rules, &headers, first, i, &mut checked);
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
                let timespan = 2016 * 600;
                // The fastest and the slowest clamped spans: at most one can be the real one.
                let rejected = [last_time - timespan / 4, last_time - timespan * 4]
                    .into_iter()
                    .filter(|&t| {
                        headers[i].time = t;
                        let r = check_header(&params, rules, &headers, first, retarget, &mut checked);
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
