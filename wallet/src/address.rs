//! Addresses: bech32m (BIP350) of a 20-byte public-key hash with the network's prefix.
//!
//! The chain crate owns the address format; this module adds the checks a wallet wants on
//! hostile user input (the BIP173 90-character limit, surrounding whitespace) and a generic
//! bech32m decoder used to prove the `bech32` crate against BIP350's vectors.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::primitives::iter::Fe32IterExt;
use bech32::{Bech32m, Fe32, Hrp};
use lode_chain::{ChainParams, PubkeyHash};

use crate::error::{Result, WalletError};

/// BIP173/BIP350: a bech32(m) string is at most 90 characters.
pub const MAX_BECH32_LENGTH: usize = 90;

/// Decodes a payment address for `params`' network. Refuses other networks' prefixes, bad
/// checksums (including plain bech32), wrong payload lengths and over-long strings.
pub fn parse_address(s: &str, params: &ChainParams) -> Result<PubkeyHash> {
    let s = s.trim();
    if s.len() > MAX_BECH32_LENGTH {
        return Err(WalletError::Bech32(format!(
            "{} characters, at most {MAX_BECH32_LENGTH}",
            s.len()
        )));
    }
    Ok(PubkeyHash::from_address(s, &params.hrp)?)
}

/// Encodes `pkh` as an address of `params`' network.
pub fn encode_address(pkh: &PubkeyHash, params: &ChainParams) -> Result<String> {
    Ok(pkh.to_address(&params.hrp)?)
}

/// Decodes any bech32m string into its lower-case prefix and its data part as 5-bit values
/// (checksum removed). Generic BIP350 decoding: the payload need not be whole bytes.
pub fn decode_bech32m(s: &str) -> Result<(String, Vec<u8>)> {
    if s.len() > MAX_BECH32_LENGTH {
        return Err(WalletError::Bech32(format!(
            "{} characters, at most {MAX_BECH32_LENGTH}",
            s.len()
        )));
    }
    let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|e| WalletError::Bech32(e.to_string()))?;
    let data = checked
        .data_part_ascii_no_checksum()
        .iter()
        .map(|&c| Fe32::from_char(char::from(c)).map(Fe32::to_u8))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|e| WalletError::Bech32(e.to_string()))?;
    Ok((checked.hrp().to_lowercase(), data))
}

/// Encodes a prefix and 5-bit data values as a lower-case bech32m string.
pub fn encode_bech32m(hrp: &str, data: &[u8]) -> Result<String> {
    let hrp = Hrp::parse(hrp).map_err(|e| WalletError::Bech32(e.to_string()))?;
    let fes = data
        .iter()
        .map(|&v| Fe32::try_from(v))
        .collect::<std::result::Result<Vec<Fe32>, _>>()
        .map_err(|e| WalletError::Bech32(e.to_string()))?;
    let s: String = fes.into_iter().with_checksum::<Bech32m>(&hrp).chars().collect();
    if s.len() > MAX_BECH32_LENGTH {
        return Err(WalletError::Bech32(format!(
            "{} characters, at most {MAX_BECH32_LENGTH}",
            s.len()
        )));
    }
    Ok(s)
}
