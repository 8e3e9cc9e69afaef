//! Network parameters: every consensus constant lives here, with its rationale, and the
//! chain-spec TOML loader that defines any other network.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::address::PubkeyHash;
use crate::amount::{Amount, COIN};
use crate::block::Block;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::merkle::merkle_root;
use crate::pow::{target_from_bits, ChainWork, U256};
use crate::transaction::{CoinbaseData, OutPoint, Transaction, TxIn, TxOut, Unlock};

/// How the next block's target is chosen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DifficultyAlgorithm {
    /// aserti3-2d (Bitcoin Cash, Nov 2020), evaluated every block, anchored at height 1
    /// (see `pow::next`).
    Asert {
        /// Seconds of schedule drift that double or halve the target.
        half_life: u64,
    },
    /// Bitcoin's retarget every 2016 blocks, clamped to a factor of 4.
    Bitcoin,
    /// Every block uses the pow limit.
    Fixed,
}

/// The parameters that define a network.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// Network name (`devnet`, `regtest`, or a chain spec's).
    pub name: String,
    /// bech32m human-readable prefix of addresses.
    pub hrp: String,
    /// SLIP-44 coin type the wallet derives keys under.
    pub coin_type: u32,
    /// Genesis header time.
    pub genesis_time: u32,
    /// Genesis header bits (and the ASERT reference bits).
    pub genesis_bits: u32,
    /// Free text in the genesis coinbase.
    pub genesis_message: String,
    /// The premine: outputs of the genesis coinbase, spendable at once.
    pub genesis_outputs: Vec<TxOut>,
    /// Target seconds between blocks.
    pub target_spacing: u64,
    /// Difficulty algorithm.
    pub difficulty: DifficultyAlgorithm,
    /// Easiest allowed target, as compact bits.
    pub pow_limit_bits: u32,
    /// Confirmations before a coinbase output may be spent (a coinbase at height h is
    /// spendable in a block at height ≥ h + maturity).
    pub coinbase_maturity: u32,
    /// Largest encoded block, bytes.
    pub max_block_size: usize,
    /// Largest encoded transaction, bytes (policy and consensus).
    pub max_tx_size: usize,
    /// Block subsidy at height 1.
    pub initial_subsidy: Amount,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
    /// Seconds a header's time may run ahead of the node's clock.
    pub max_future_block_time: u64,
    /// Minimum fee rate, base units per byte, for relay and mining (policy).
    pub min_relay_fee_rate: u64,
    /// Least total work a peer's header chain must show before its blocks are downloaded
    /// while the node's own chain has less (Bitcoin Core's `nMinimumChainWork`): a cheap
    /// low-work chain cannot lead a syncing node astray or fill it. Zero on devnet and
    /// regtest, where every chain starts from nothing.
    pub min_chain_work: ChainWork,
}

/// Accounts 0–9 of the published, insecure test mnemonic
/// `test test test test test test test test test test test junk`: the devnet premine pays
/// each 10 000 coins. Derived with BIP39 (empty passphrase) → SLIP-0010 Ed25519 at
/// `m/44'/1'/I'/0'/0'`, public-key hash = SHA-256(pubkey)[..20]. `lode-wallet`'s tests
/// re-derive them and must agree.
pub const DEVNET_PREMINE_PKH: [&str; 10] = [
    "098a8672bc66ec7177f82cd529ed8e5bbdc28a27",
    "e3ec4a3291a2afef136a1f347e8f5a596ae48497",
    "71393e106f41647667d267fff96bc8baa7c98d56",
    "5995772c3e6cf3812876b4539487afa4aa33058f",
    "a5d3672707cb79e81ce1c4f2bf15f395bf482875",
    "a553a76d91cc7694a50e36ef3691fac44907be2f",
    "cb82a24af5f0546f7bd305cbf820f047709a9112",
    "b70c520f68e3dd186f2ee5274a2acfb9e3db8895",
    "55df11b2bcb7701669ee4f2483b2757691e86a2a",
    "532e6a9a999dc9817e657b6d5aae663c1ea18642",
];

/// The published devnet test mnemonic.
pub const DEVNET_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Premine per devnet account.
pub const DEVNET_PREMINE_EACH: Amount = Amount::coins(10_000);

/// The easiest target any built-in network allows (Bitcoin regtest's limit): about one
/// hash in two meets it.
pub const EASIEST_BITS: u32 = 0x207f_ffff;

/// Bitcoin mainnet's pow limit and genesis bits (difficulty 1).
pub const BITCOIN_POW_LIMIT_BITS: u32 = 0x1d00_ffff;

/// Bitcoin mainnet's genesis time, 2009-01-03T18:15:05Z.
pub const BITCOIN_GENESIS_TIME: u32 = 1_231_006_505;

/// Bitcoin mainnet's genesis block hash, display order.
pub const BITCOIN_GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

/// Bitcoin mainnet's genesis header: the trusted base of every Bitcoin header chain. Its
/// hash is [`BITCOIN_GENESIS_HASH`].
pub fn bitcoin_genesis_header() -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_hash: Hash256::ZERO,
        // 4a5e1e4b…eda33b in display order; internal order here.
        merkle_root: Hash256([
            0x3b, 0xa3, 0xed, 0xfd, 0x7a, 0x7b, 0x12, 0xb2, 0x7a, 0xc7, 0x2c, 0x3e, 0x67, 0x76, 0x8f, 0x61, 0x7f, 0xc8,
            0x1b, 0xc3, 0x88, 0x8a, 0x51, 0x32, 0x3a, 0x9f, 0xb8, 0xaa, 0x4b, 0x1e, 0x5e, 0x4a,
        ]),
        time: BITCOIN_GENESIS_TIME,
        bits: BITCOIN_POW_LIMIT_BITS,
        nonce: 2_083_236_893,
    }
}

fn hex20(s: &str) -> PubkeyHash {
    let mut out = [0u8; 20];
    // The constants above are valid hex; a bad edit shows up in every test at once.
    hex::decode_to_slice(s, &mut out).expect("premine constant is 40 hex chars");
    PubkeyHash(out)
}

/// Errors of a chain spec.
#[derive(Debug, Error)]
pub enum ParamsError {
    /// The chain-spec file could not be read.
    #[error("cannot read chain spec {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The chain spec is not valid TOML or has unknown fields.
    #[error("chain spec is not valid TOML: {0}")]
    Toml(String),
    /// A field's value is out of range or inconsistent.
    #[error("chain spec field {field}: {reason}")]
    Invalid {
        /// The field's name in the spec.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Devnet ASERT half-life in blocks (× the block time in seconds).
pub const DEVNET_HALF_LIFE_BLOCKS: u64 = 60;
/// Devnet future-time limit in seconds: how far ahead of a node's clock a block may be dated.
pub const DEVNET_FUTURE_LIMIT: u64 = 15;

impl ChainParams {
    /// The default network: 2 s blocks, ASERT every block, premine to the test mnemonic.
    pub fn devnet() -> ChainParams {
        ChainParams {
            name: "devnet".into(),
            hrp: "ldev".into(),
            coin_type: 1,
            // 2026-01-01T00:00:00Z. Fixed so every devnet shares one genesis.
            genesis_time: 1_767_225_600,
            // About 2^22 expected hashes: a fraction of a second for one CPU thread, so the
            // first blocks come quickly and ASERT raises the difficulty from there.
            genesis_bits: 0x1e04_0000,
            genesis_message: "lode devnet genesis".into(),
            genesis_outputs: DEVNET_PREMINE_PKH
                .iter()
                .map(|h| TxOut {
                    value: DEVNET_PREMINE_EACH,
                    pubkey_hash: hex20(h),
                })
                .collect(),
            target_spacing: 2,
            // A two-minute half-life lets a devnet adapt within ~60 blocks to how many
            // threads mine. Together with the 15 s future limit below, a block dated as far
            // ahead as allowed eases the next target by at most 2^(15/120) ≈ 1.09× (ADR 0012).
            difficulty: DifficultyAlgorithm::Asert {
                half_life: DEVNET_HALF_LIFE_BLOCKS * 2,
            },
            pow_limit_bits: EASIEST_BITS,
            coinbase_maturity: 10,
            max_block_size: 2_000_000,
            max_tx_size: 100_000,
            initial_subsidy: Amount::coins(50),
            halving_interval: 210_000,
            // Devnet nodes share a machine or a LAN clock; see the half-life above.
            max_future_block_time: DEVNET_FUTURE_LIMIT,
            min_relay_fee_rate: 1,
            min_chain_work: ChainWork::default(),
        }
    }

    /// A devnet with another block time (`lode devnet up --block-time`).
    pub fn devnet_with_spacing(seconds: u64) -> ChainParams {
        let mut p = ChainParams::devnet();
        p.target_spacing = seconds.max(1);
        // The half-life in blocks stays the same, so a future-dated block eases the target
        // by at most 2^(15 / (60 × spacing)) ≤ 1.19× (at 1 s blocks).
        p.difficulty = DifficultyAlgorithm::Asert {
            half_life: DEVNET_HALF_LIFE_BLOCKS * p.target_spacing,
        };
        p
    }

    /// Regression-test network: fixed minimum difficulty, blocks on demand, no premine.
    pub fn regtest() -> ChainParams {
        ChainParams {
            name: "regtest".into(),
            hrp: "lreg".into(),
            coin_type: 1,
            genesis_time: 1_767_225_600,
            genesis_bits: EASIEST_BITS,
            genesis_message: "lode regtest genesis".into(),
            genesis_outputs: Vec::new(),
            target_spacing: 2,
            difficulty: DifficultyAlgorithm::Fixed,
            pow_limit_bits: EASIEST_BITS,
            coinbase_maturity: 10,
            max_block_size: 2_000_000,
            max_tx_size: 100_000,
            initial_subsidy: Amount::coins(50),
            halving_interval: 150,
            max_future_block_time: 7200,
            min_relay_fee_rate: 1,
            min_chain_work: ChainWork::default(),
        }
    }

    /// Bitcoin mainnet's header rules: 600 s blocks, Bitcoin's 2016-block retarget, pow limit
    /// `0x1d00ffff`, median time past, a two-hour future limit. For validating real Bitcoin
    /// header chains from [`bitcoin_genesis_header`] (see
    /// [`check_header_chain`](crate::validation::check_header_chain)); the body rules are
    /// Bitcoin's in number only.
    ///
    /// Bitcoin's genesis *block* is not one Lode can build (its transactions have another
    /// format), so [`ChainParams::genesis_block`] and [`ChainParams::genesis_hash`] are not
    /// Bitcoin's here and these parameters must not open a chain state; that is also why
    /// [`ChainParams::by_name`] does not offer them.
    pub fn bitcoin_mainnet() -> ChainParams {
        ChainParams {
            name: "bitcoin".into(),
            hrp: "bc".into(),
            coin_type: 0,
            genesis_time: BITCOIN_GENESIS_TIME,
            genesis_bits: BITCOIN_POW_LIMIT_BITS,
            genesis_message: String::new(),
            genesis_outputs: Vec::new(),
            target_spacing: 600,
            difficulty: DifficultyAlgorithm::Bitcoin,
            pow_limit_bits: BITCOIN_POW_LIMIT_BITS,
            coinbase_maturity: 100,
            max_block_size: 1_000_000,
            max_tx_size: 100_000,
            initial_subsidy: Amount::coins(50),
            halving_interval: 210_000,
            // Bitcoin's MAX_FUTURE_BLOCK_TIME.
            max_future_block_time: 2 * 60 * 60,
            min_relay_fee_rate: 1,
            min_chain_work: ChainWork::default(),
        }
    }

    /// A built-in network by name.
    pub fn by_name(name: &str) -> Option<ChainParams> {
        match name {
            "devnet" => Some(ChainParams::devnet()),
            "regtest" => Some(ChainParams::regtest()),
            _ => None,
        }
    }

    /// Loads a chain-spec TOML file.
    pub fn from_toml_file(path: &Path) -> Result<ChainParams, ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ChainParams::from_toml_str(&text)
    }

    /// Parses and validates a chain spec.
    pub fn from_toml_str(text: &str) -> Result<ChainParams, ParamsError> {
        let spec: SpecFile = toml::from_str(text).map_err(|e| ParamsError::Toml(e.message().to_string()))?;
        spec.into_params()
    }

    /// The chain spec TOML of these parameters; [`ChainParams::from_toml_str`] reads it back
    /// to equal parameters (`lode devnet up` writes a devnet's calibrated spec with it).
    pub fn to_toml_string(&self) -> Result<String, ParamsError> {
        let mut outputs = Vec::with_capacity(self.genesis_outputs.len());
        for o in &self.genesis_outputs {
            outputs.push(SpecOutput {
                address: o
                    .pubkey_hash
                    .to_address(&self.hrp)
                    .map_err(|e| invalid("hrp", e.to_string()))?,
                value: o.value.0,
            });
        }
        let spec = SpecFile {
            name: self.name.clone(),
            hrp: self.hrp.clone(),
            coin_type: self.coin_type,
            genesis_time: self.genesis_time,
            genesis_bits: self.genesis_bits,
            genesis_message: self.genesis_message.clone(),
            genesis_outputs: outputs,
            target_spacing: self.target_spacing,
            difficulty: match self.difficulty {
                DifficultyAlgorithm::Asert { half_life } => SpecDifficulty::Asert { half_life },
                DifficultyAlgorithm::Bitcoin => SpecDifficulty::Bitcoin,
                DifficultyAlgorithm::Fixed => SpecDifficulty::Fixed,
            },
            pow_limit_bits: self.pow_limit_bits,
            coinbase_maturity: self.coinbase_maturity,
            max_block_size: self.max_block_size,
            max_tx_size: self.max_tx_size,
            initial_subsidy: self.initial_subsidy.0,
            halving_interval: self.halving_interval,
            max_future_block_time: self.max_future_block_time,
            min_relay_fee_rate: self.min_relay_fee_rate,
            min_chain_work: (self.min_chain_work != ChainWork::default()).then(|| self.min_chain_work.to_string()),
        };
        toml::to_string(&spec).map_err(|e| ParamsError::Toml(e.to_string()))
    }

    /// The easiest allowed target.
    pub fn pow_limit(&self) -> U256 {
        // Validated at construction; built-in values are constants.
        target_from_bits(self.pow_limit_bits).unwrap_or_else(U256::zero)
    }

    /// Block subsidy at `height` (genesis has none: its outputs are the premine).
    pub fn subsidy(&self, height: Height) -> Amount {
        if height == Height::GENESIS {
            return Amount::ZERO;
        }
        let halvings = (height.0 - 1) / self.halving_interval.max(1);
        if halvings >= 64 {
            Amount::ZERO
        } else {
            Amount(self.initial_subsidy.0 >> halvings)
        }
    }

    /// The total money supply: premine plus every subsidy ever paid. Every value and sum is
    /// checked against it (the lesson of CVE-2010-5139).
    pub fn max_money(&self) -> Amount {
        let premine: u64 = self
            .genesis_outputs
            .iter()
            .map(|o| o.value.0)
            .fold(0u64, u64::saturating_add);
        let interval = u64::from(self.halving_interval.max(1));
        let mut total = premine;
        for halvings in 0..64u32 {
            let s = self.initial_subsidy.0 >> halvings;
            if s == 0 {
                break;
            }
            total = total.saturating_add(s.saturating_mul(interval));
        }
        Amount(total)
    }

    /// The genesis block, built deterministically from the parameters. It is never checked
    /// for proof of work: like Bitcoin's, it is fixed by the software, not mined.
    pub fn genesis_block(&self) -> Block {
        let coinbase = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint::NULL,
                unlock: Unlock::Coinbase(CoinbaseData {
                    height: Height::GENESIS,
                    extra_nonce: [0; 8],
                    message: self.genesis_message.as_bytes().to_vec(),
                }),
            }],
            outputs: self.genesis_outputs.clone(),
            lock_time: 0,
        };
        let (root, _) = merkle_root(&[coinbase.txid()]);
        Block {
            header: BlockHeader {
                version: 1,
                prev_hash: Hash256::ZERO,
                merkle_root: root,
                time: self.genesis_time,
                bits: self.genesis_bits,
                nonce: 0,
            },
            transactions: vec![coinbase],
        }
    }

    /// Hash of the genesis block (identifies the network).
    pub fn genesis_hash(&self) -> Hash256 {
        self.genesis_block().hash()
    }
}

/// The on-disk chain-spec format.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    hrp: String,
    #[serde(default = "default_coin_type")]
    coin_type: u32,
    genesis_time: u32,
    genesis_bits: u32,
    #[serde(default)]
    genesis_message: String,
    #[serde(default)]
    genesis_outputs: Vec<SpecOutput>,
    target_spacing: u64,
    difficulty: SpecDifficulty,
    pow_limit_bits: u32,
    coinbase_maturity: u32,
    max_block_size: usize,
    #[serde(default = "default_max_tx_size")]
    max_tx_size: usize,
    initial_subsidy: u64,
    halving_interval: u32,
    max_future_block_time: u64,
    #[serde(default = "default_min_relay_fee_rate")]
    min_relay_fee_rate: u64,
    /// Hex, up to 64 digits; absent means zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_chain_work: Option<String>,
}

fn default_coin_type() -> u32 {
    1
}
fn default_max_tx_size() -> usize {
    100_000
}
fn default_min_relay_fee_rate() -> u64 {
    1
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SpecOutput {
    /// bech32m address with the spec's HRP.
    address: String,
    /// Base units.
    value: u64,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "algorithm", rename_all = "lowercase")]
enum SpecDifficulty {
    Asert { half_life: u64 },
    Bitcoin,
    Fixed,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ParamsError {
    ParamsError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl SpecFile {
    fn into_params(self) -> Result<ChainParams, ParamsError> {
        if self.name.is_empty() || self.name.len() > 32 {
            return Err(invalid("name", "must be 1 to 32 characters"));
        }
        if !self.hrp.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            || self.hrp.is_empty()
            || self.hrp.len() > 16
        {
            return Err(invalid("hrp", "must be 1 to 16 lower-case letters or digits"));
        }
        let pow_limit = target_from_bits(self.pow_limit_bits)
            .ok_or_else(|| invalid("pow_limit_bits", "not a valid positive compact target"))?;
        let genesis_target = target_from_bits(self.genesis_bits)
            .ok_or_else(|| invalid("genesis_bits", "not a valid positive compact target"))?;
        if genesis_target > pow_limit {
            return Err(invalid("genesis_bits", "easier than pow_limit_bits"));
        }
        if self.target_spacing == 0 || self.target_spacing > 86_400 {
            return Err(invalid("target_spacing", "must be 1 to 86400 seconds"));
        }
        let difficulty = match self.difficulty {
            SpecDifficulty::Asert { half_life } => {
                if half_life == 0 || half_life > 365 * 86_400 {
                    return Err(invalid("difficulty.half_life", "must be 1 second to 1 year"));
                }
                DifficultyAlgorithm::Asert { half_life }
            }
            SpecDifficulty::Bitcoin => DifficultyAlgorithm::Bitcoin,
            SpecDifficulty::Fixed => DifficultyAlgorithm::Fixed,
        };
        if !(1_000..=32_000_000).contains(&self.max_block_size) {
            return Err(invalid("max_block_size", "must be 1000 to 32000000 bytes"));
        }
        if self.max_tx_size == 0 || self.max_tx_size > self.max_block_size {
            return Err(invalid("max_tx_size", "must be positive and at most max_block_size"));
        }
        if self.halving_interval == 0 {
            return Err(invalid("halving_interval", "must be positive"));
        }
        // Spending a coinbase in the block after it would let any reorg of one block turn
        // every payment built on it invalid for good.
        if self.coinbase_maturity == 0 {
            return Err(invalid("coinbase_maturity", "must be at least 1"));
        }
        if self.initial_subsidy > 1_000_000 * COIN {
            return Err(invalid("initial_subsidy", "must be at most 1000000 coins"));
        }
        let mut outputs = Vec::with_capacity(self.genesis_outputs.len().min(10_000));
        if self.genesis_outputs.len() > 10_000 {
            return Err(invalid("genesis_outputs", "at most 10000 outputs"));
        }
        let mut premine: u64 = 0;
        for o in &self.genesis_outputs {
            let pkh = PubkeyHash::from_address(&o.address, &self.hrp)
                .map_err(|e| invalid("genesis_outputs.address", e.to_string()))?;
            premine = premine
                .checked_add(o.value)
                .ok_or_else(|| invalid("genesis_outputs.value", "total overflows"))?;
            outputs.push(TxOut {
                value: Amount(o.value),
                pubkey_hash: pkh,
            });
        }
        if premine > 1_000_000_000 * COIN {
            return Err(invalid("genesis_outputs.value", "premine exceeds 1e9 coins"));
        }
        if self.genesis_message.len() > crate::transaction::MAX_COINBASE_MESSAGE {
            return Err(invalid("genesis_message", "at most 64 bytes"));
        }
        let min_chain_work = match &self.min_chain_work {
            Some(text) => parse_chain_work(text)?,
            None => ChainWork::default(),
        };
        Ok(ChainParams {
            name: self.name,
            hrp: self.hrp,
            coin_type: self.coin_type,
            genesis_time: self.genesis_time,
            genesis_bits: self.genesis_bits,
            genesis_message: self.genesis_message,
            genesis_outputs: outputs,
            target_spacing: self.target_spacing,
            difficulty,
            pow_limit_bits: self.pow_limit_bits,
            coinbase_maturity: self.coinbase_maturity,
            max_block_size: self.max_block_size,
            max_tx_size: self.max_tx_size,
            initial_subsidy: Amount(self.initial_subsidy),
            halving_interval: self.halving_interval,
            max_future_block_time: self.max_future_block_time,
            min_relay_fee_rate: self.min_relay_fee_rate,
            min_chain_work,
        })
    }
}

/// Reads a chain spec's `min_chain_work`: hex digits (an optional `0x`), at most 64.
fn parse_chain_work(text: &str) -> Result<ChainWork, ParamsError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("min_chain_work", "1 to 64 hex digits"));
    }
    U256::from_str_radix(digits, 16)
        .map(ChainWork)
        .map_err(|_| invalid("min_chain_work", "1 to 64 hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_written_reads_back_to_the_same_network() {
        let mut d = ChainParams::devnet_with_spacing(3);
        d.genesis_bits = 0x1d7f_0000;
        let text = d.to_toml_string().expect("serializes");
        let back = ChainParams::from_toml_str(&text).expect("parses");
        assert_eq!(back.genesis_hash(), d.genesis_hash());
        assert_eq!(back.difficulty, d.difficulty);
        assert_eq!(back.target_spacing, 3);
        assert_eq!(back.genesis_bits, 0x1d7f_0000);
        assert_eq!(back.max_money(), d.max_money());
        assert_eq!(back.max_future_block_time, d.max_future_block_time);
        assert_eq!(back.min_chain_work, ChainWork::default());
        assert!(!text.contains("min_chain_work"), "zero is the default, not written");
    }

    #[test]
    fn min_chain_work_reads_back_and_bad_values_are_named() {
        let mut d = ChainParams::devnet();
        d.min_chain_work = ChainWork(U256::from(0x1234_5678u64));
        let text = d.to_toml_string().expect("serializes");
        let back = ChainParams::from_toml_str(&text).expect("parses");
        assert_eq!(back.min_chain_work, d.min_chain_work);
        let long = format!("\"{}\"", "f".repeat(65));
        for bad in ["\"xyz\"", "\"\"", long.as_str()] {
            let spec = text.replace(&format!("\"{}\"", d.min_chain_work), bad);
            let err = ChainParams::from_toml_str(&spec).expect_err(bad);
            assert!(err.to_string().contains("min_chain_work"), "{err}");
        }
    }

    #[test]
    fn builtin_networks_have_distinct_genesis() {
        let d = ChainParams::devnet();
        let r = ChainParams::regtest();
        assert_ne!(d.genesis_hash(), r.genesis_hash());
        assert_eq!(d.genesis_hash(), ChainParams::devnet().genesis_hash(), "deterministic");
        assert_eq!(d.genesis_block().transactions[0].outputs.len(), 10);
    }

    #[test]
    fn bitcoin_genesis_header_is_bitcoins() {
        let header = bitcoin_genesis_header();
        assert_eq!(header.hash().to_hex(), BITCOIN_GENESIS_HASH);
        let p = ChainParams::bitcoin_mainnet();
        assert_eq!(p.genesis_time, header.time);
        assert_eq!(p.genesis_bits, header.bits);
        assert_eq!(p.difficulty, DifficultyAlgorithm::Bitcoin);
        assert!(ChainParams::by_name(&p.name).is_none());
    }

    #[test]
    fn subsidy_halves_and_supply_is_bounded() {
        let r = ChainParams::regtest();
        assert_eq!(r.subsidy(Height(0)), Amount::ZERO);
        assert_eq!(r.subsidy(Height(1)), Amount::coins(50));
        assert_eq!(r.subsidy(Height(150)), Amount::coins(50));
        assert_eq!(r.subsidy(Height(151)), Amount::coins(25));
        assert_eq!(r.subsidy(Height(u32::MAX)), Amount::ZERO);
        let d = ChainParams::devnet();
        assert!(d.max_money() > Amount::coins(100_000));
        assert!(d.max_money() < Amount::coins(21_200_000));
    }

    #[test]
    fn chain_spec_loads_and_rejects_nonsense() {
        let addr = PubkeyHash([7; 20]).to_address("ltest").expect("addr");
        let spec = format!(
            r#"
name = "testnet"
hrp = "ltest"
genesis_time = 1700000000
genesis_bits = 0x207fffff
target_spacing = 1
pow_limit_bits = 0x207fffff
coinbase_maturity = 5
max_block_size = 1000000
initial_subsidy = 5000000000
halving_interval = 1000
max_future_block_time = 60
difficulty = {{ algorithm = "asert", half_life = 30 }}
genesis_outputs = [{{ address = "{addr}", value = 100 }}]
"#
        );
        let p = ChainParams::from_toml_str(&spec).expect("valid spec");
        assert_eq!(p.difficulty, DifficultyAlgorithm::Asert { half_life: 30 });
        assert_eq!(p.genesis_outputs[0].pubkey_hash, PubkeyHash([7; 20]));
        let bad = spec.replace("genesis_bits = 0x207fffff", "genesis_bits = 0x1d80ffff");
        assert!(matches!(
            ChainParams::from_toml_str(&bad),
            Err(ParamsError::Invalid {
                field: "genesis_bits",
                ..
            })
        ));
        let wrong_net = spec.replace("hrp = \"ltest\"", "hrp = \"lother\"");
        assert!(ChainParams::from_toml_str(&wrong_net).is_err());
        let no_maturity = spec.replace("coinbase_maturity = 5", "coinbase_maturity = 0");
        assert!(matches!(
            ChainParams::from_toml_str(&no_maturity),
            Err(ParamsError::Invalid {
                field: "coinbase_maturity",
                ..
            })
        ));
        let unknown = format!("{spec}\nbogus = 1\n");
        assert!(matches!(
            ChainParams::from_toml_str(&unknown),
            Err(ParamsError::Toml(_))
        ));
    }

    /// ADR 0012: on the devnet, a parent dated as far ahead as the future limit allows
    /// eases its child's target by at most 2^(limit / half-life), well under 2×.
    #[test]
    fn a_future_dated_devnet_block_eases_the_next_target_only_slightly() {
        use crate::header::BlockHeader;
        use crate::pow::{next_bits, target_from_bits};
        for p in [
            ChainParams::devnet(),
            ChainParams::devnet_with_spacing(1),
            ChainParams::devnet_with_spacing(10),
        ] {
            let anchor = BlockHeader {
                version: 1,
                prev_hash: p.genesis_hash(),
                merkle_root: crate::hash::Hash256::ZERO,
                time: p.genesis_time + p.target_spacing as u32,
                bits: p.genesis_bits,
                nonce: 0,
            };
            let lookup = |h: Height| (h == Height(1)).then_some(anchor);
            let parent_at = |offset: u32| BlockHeader {
                time: anchor.time + 99 * p.target_spacing as u32 + offset,
                ..anchor
            };
            let on_time = next_bits(&p, Height(100), &parent_at(0), &lookup).expect("bits");
            let future = next_bits(&p, Height(100), &parent_at(p.max_future_block_time as u32), &lookup).expect("bits");
            let (t0, t1) = (
                target_from_bits(on_time).expect("target"),
                target_from_bits(future).expect("target"),
            );
            // t1 / t0 ≤ 1.25, in integers: 4·t1 ≤ 5·t0.
            let ease = t1.saturating_mul(4u8.into());
            assert!(
                ease <= t0.saturating_mul(5u8.into()),
                "{}: future-dated parent eases the target too much ({on_time:#x} → {future:#x})",
                p.name
            );
            assert!(t1 >= t0, "a later parent never makes the next block harder");
        }
    }
}
