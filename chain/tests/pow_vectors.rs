//! External proof-of-work vectors (`shared/testdata/asert`, `shared/testdata/pow`): the
//! official aserti3-2d runs, BCHN's `calculate_asert_test` edge cases and Bitcoin Core's
//! compact, retarget and proof-of-work unit-test facts. Nobody on the team wrote them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use lode_chain::pow::{
    asert_next_bits, asert_next_target, check_proof_of_work, decode_compact, encode_compact, encode_compact_signed,
    next_bits, retarget_bits, target_timespan, U256,
};
use lode_chain::{BlockHeader, ChainParams, ConsensusError, DifficultyAlgorithm, Hash256, Height};

const SPACING: i64 = 600;
const HALF_LIFE: i64 = 172_800;

fn testdata(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(sub)
}

/// 2^224 - 1, the limit the BCHN and Bitcoin Core tests use.
fn limit_224() -> U256 {
    (U256::one() << 224) - 1
}

/// Every file in `dir` whose name starts with `prefix`, sorted; fails if there is none.
fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}* files in {}", dir.display());
    files
}

fn parse_bits(s: &str) -> u32 {
    let hex = s
        .trim()
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("bits {s:?} lack 0x"));
    u32::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad bits {s:?}: {e}"))
}

fn parse_u256(s: &str) -> U256 {
    U256::from_str_radix(s.trim(), 16).unwrap_or_else(|e| panic!("bad 256-bit hex {s:?}: {e:?}"))
}

fn parse_i64(s: &str) -> i64 {
    s.trim().parse().unwrap_or_else(|e| panic!("bad integer {s:?}: {e}"))
}

fn parse_bool(s: &str) -> bool {
    match s.trim() {
        "true" => true,
        "false" => false,
        other => panic!("bad boolean {other:?}"),
    }
}

/// A CSV file as rows of column name → field (no quoting in these files); fails if it has
/// no data rows or a row has the wrong number of fields.
fn read_csv(name: &str) -> Vec<HashMap<String, String>> {
    let path = testdata("pow").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let columns: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("{name} is empty"))
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    let rows: Vec<HashMap<String, String>> = lines
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), columns.len(), "{name} row {}: {line:?}", i + 1);
            columns
                .iter()
                .cloned()
                .zip(fields.iter().map(|f| f.trim().to_string()))
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "{name} has no data rows");
    rows
}

fn field<'a>(row: &'a HashMap<String, String>, column: &str) -> &'a str {
    row.get(column).unwrap_or_else(|| panic!("no column {column:?}"))
}

fn header(time: u32, bits: u32) -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_hash: Hash256::ZERO,
        merkle_root: Hash256::ZERO,
        time,
        bits,
        nonce: 0,
    }
}

/// Parameters of the chain the vectors describe, for checking through `next_bits`.
fn params(difficulty: DifficultyAlgorithm) -> ChainParams {
    let mut p = ChainParams::regtest();
    p.difficulty = difficulty;
    p.target_spacing = 600;
    // Not exactly 2^224 - 1, but every target between the two encodes as 0x1d00ffff, so the
    // bits `next_bits` returns are the same.
    p.pow_limit_bits = 0x1d00_ffff;
    p
}

/// One `asert/run*` file.
struct AsertRun {
    anchor_height: i128,
    anchor_parent_time: i64,
    anchor_bits: u32,
    iterations: Option<usize>,
    /// (iteration, height, time, expected bits of the next block)
    rows: Vec<(u64, i128, i64, u32)>,
}

fn parse_run(path: &Path) -> AsertRun {
    let name = path.display();
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
    let (mut height, mut time, mut bits, mut iterations) = (None, None, None, None);
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(meta) = line.strip_prefix("##") {
            if let Some((key, value)) = meta.split_once(':') {
                let value = value.trim();
                match key.trim() {
                    "anchor height" => height = Some(value.parse::<i128>().expect("anchor height")),
                    "anchor parent time" => time = Some(parse_i64(value)),
                    "anchor nBits" => bits = Some(parse_bits(value)),
                    "iterations" => iterations = Some(value.parse::<usize>().expect("iterations")),
                    _ => {}
                }
            }
        } else if line.starts_with('#') {
            // The legend line.
        } else {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{name}: bad row {line:?}");
            rows.push((
                f[0].parse::<u64>().expect("iteration"),
                f[1].parse::<i128>().expect("height"),
                parse_i64(f[2]),
                parse_bits(f[3]),
            ));
        }
    }
    assert!(!rows.is_empty(), "{name} has no rows");
    AsertRun {
        anchor_height: height.unwrap_or_else(|| panic!("{name}: no anchor height")),
        anchor_parent_time: time.unwrap_or_else(|| panic!("{name}: no anchor parent time")),
        anchor_bits: bits.unwrap_or_else(|| panic!("{name}: no anchor nBits")),
        iterations,
        rows,
    }
}

#[test]
fn asert_official_runs() {
    let files = files_with_prefix(&testdata("asert"), "run");
    let asert = params(DifficultyAlgorithm::Asert {
        half_life: HALF_LIFE as u64,
    });
    let (mut rows, mut through_next_bits) = (0usize, 0usize);
    for path in &files {
        let run = parse_run(path);
        let name = path.display();
        if let Some(n) = run.iterations {
            assert_eq!(run.rows.len(), n, "{name}: row count differs from its header");
        }
        // Runs anchored at height 1 also go through `next_bits`, whose anchor is block 1 and
        // whose anchor parent time is block 1's time minus the spacing.
        let anchor_time = run.anchor_parent_time + SPACING;
        let via_next_bits = run.anchor_height == 1 && u32::try_from(anchor_time).is_ok();
        let anchor = header(u32::try_from(anchor_time).unwrap_or(0), run.anchor_bits);
        for &(iteration, height, time, expected) in &run.rows {
            let height_diff = i64::try_from(height - run.anchor_height).expect("height difference fits in i64");
            let got = asert_next_bits(
                run.anchor_bits,
                time - run.anchor_parent_time,
                height_diff,
                SPACING,
                HALF_LIFE,
                &limit_224(),
            )
            .expect("anchor bits are valid");
            assert_eq!(
                got, expected,
                "{name} iteration {iteration}: {got:#010x} != {expected:#010x}"
            );
            rows += 1;
            if let (true, Ok(h), Ok(t)) = (via_next_bits, u32::try_from(height), u32::try_from(time)) {
                let parent = header(t, 0);
                let at_one = |x: Height| (x == Height(1)).then_some(anchor);
                let got = next_bits(&asert, Height(h), &parent, &at_one).expect("next_bits");
                assert_eq!(got, expected, "{name} iteration {iteration} via next_bits");
                through_next_bits += 1;
            }
        }
    }
    assert!(rows > 0);
    assert!(through_next_bits > 0, "no run exercised next_bits");
}

#[test]
fn bch_asert_calculate_cases() {
    let rows = read_csv("bch_asert_calculate_cases.csv");
    for (i, row) in rows.iter().enumerate() {
        let got = asert_next_target(
            &parse_u256(field(row, "ref_target_hex_be")),
            parse_i64(field(row, "time_diff_s")),
            parse_i64(field(row, "height_diff")),
            parse_i64(field(row, "target_spacing_s")),
            parse_i64(field(row, "half_life_s")),
            &parse_u256(field(row, "pow_limit_hex_be")),
        );
        let expected = parse_u256(field(row, "expected_target_hex_be"));
        assert_eq!(got, expected, "row {}: {got:#x} != {expected:#x}", i + 1);
        assert_eq!(
            encode_compact(&got),
            parse_bits(field(row, "expected_nbits")),
            "row {}",
            i + 1
        );
    }
}

#[test]
fn bitcoin_core_compact_cases() {
    let rows = read_csv("btc_core_compact_cases.csv");
    for (i, row) in rows.iter().enumerate() {
        let what = format!("row {} {:?}", i + 1, field(row, "nbits_in"));
        let target_hex = field(row, "decoded_target_hex_be");
        let reencoded = field(row, "reencoded_nbits");
        if field(row, "nbits_in").is_empty() {
            // No input bits: the decoded integer itself must encode to `reencoded_nbits`
            // (0x80 → 0x02008000, the sign bit moved into the exponent).
            assert_eq!(encode_compact(&parse_u256(target_hex)), parse_bits(reencoded), "{what}");
            continue;
        }
        let decoded = decode_compact(parse_bits(field(row, "nbits_in")));
        assert_eq!(
            decoded.negative,
            parse_bool(field(row, "negative")),
            "{what}: negative flag"
        );
        assert_eq!(
            decoded.overflow,
            parse_bool(field(row, "overflow")),
            "{what}: overflow flag"
        );
        // Overflowing values have no 256-bit target and no re-encoding.
        if !target_hex.is_empty() {
            assert_eq!(decoded.target, parse_u256(target_hex), "{what}: target");
        }
        if !reencoded.is_empty() {
            assert_eq!(
                encode_compact_signed(&decoded.target, decoded.negative),
                parse_bits(reencoded),
                "{what}: re-encoding"
            );
        }
    }
}

#[test]
fn bitcoin_core_retarget_cases() {
    let rows = read_csv("btc_core_retarget_cases.csv");
    let bitcoin = params(DifficultyAlgorithm::Bitcoin);
    let timespan = target_timespan(600);
    for row in &rows {
        let case = field(row, "case");
        let first_time: u32 = field(row, "first_block_time_of_period").parse().expect("first time");
        let last_time: u32 = field(row, "last_block_time").parse().expect("last time");
        let last_height: u32 = field(row, "last_block_height").parse().expect("last height");
        let last_bits = parse_bits(field(row, "last_block_nbits"));
        let expected = parse_bits(field(row, "expected_next_nbits"));
        assert_eq!(
            i64::from(last_time) - i64::from(first_time),
            parse_i64(field(row, "actual_timespan_s")),
            "{case}: timespan column"
        );
        let got = retarget_bits(last_bits, first_time, last_time, timespan, &limit_224()).expect("valid bits");
        assert_eq!(got, expected, "{case}: {got:#010x} != {expected:#010x}");
        // The same through the difficulty rule, reading the period's first block.
        let first_height = Height(last_height + 1 - 2016);
        let first = |h: Height| (h == first_height).then(|| header(first_time, last_bits));
        let got = next_bits(&bitcoin, Height(last_height), &header(last_time, last_bits), &first).expect("next_bits");
        assert_eq!(got, expected, "{case} via next_bits");
    }
}

#[test]
fn bitcoin_core_checkpow_reject_cases() {
    let rows = read_csv("btc_core_checkpow_reject_cases.csv");
    for row in &rows {
        let case = field(row, "case");
        assert!(
            !parse_bool(field(row, "expected_valid")),
            "{case}: only reject cases expected"
        );
        let hash = Hash256(parse_u256(field(row, "hash_as_uint256_hex_be")).to_little_endian());
        let bits = parse_bits(field(row, "nbits"));
        let limit = match row.get("pow_limit_hex_be") {
            Some(l) if !l.is_empty() => parse_u256(l),
            _ => limit_224(),
        };
        let result = check_proof_of_work(&hash, bits, &limit);
        assert!(result.is_err(), "{case}: accepted");
        // Where the case names the reason, the error must name the same rule.
        let expected = match case {
            "negative_target" | "overflow_target" | "zero_target" => Some(ConsensusError::BadCompactBits { bits }),
            "too_easy_target" => Some(ConsensusError::TargetAboveLimit { bits }),
            "bigger_hash_than_target" => Some(ConsensusError::InsufficientProofOfWork { hash, bits }),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(result, Err(expected), "{case}");
        }
    }
}
