//! Local checks of what the user typed, before anything is sent: amounts (lode-chain's coin
//! parser), addresses (bech32m checksum and length; the network prefix once the network is
//! known), hashes and heights.

use lode_chain::{Amount, ChainParams, Hash256, PubkeyHash};

use super::CommandError;

/// A decimal coin amount (at most 8 decimals), refused with the parser's reason.
pub fn amount(s: &str) -> Result<Amount, CommandError> {
    let a = Amount::parse_coins(s).map_err(|e| bad("amount", s, e.to_string()))?;
    if a == Amount::ZERO {
        return Err(bad("amount", s, "amount must be more than zero".into()));
    }
    Ok(a)
}

/// An address whose checksum and payload are valid, whatever its network prefix.
pub fn address_syntax(s: &str) -> Result<(), CommandError> {
    // bech32's separator is the last '1'; what comes before it is the prefix.
    let hrp = match s.rfind('1') {
        Some(i) if i > 0 => &s[..i],
        _ => {
            return Err(bad(
                "address",
                s,
                "not a bech32m address (no prefix and separator '1')".into(),
            ))
        }
    };
    PubkeyHash::from_address(s, hrp).map_err(|e| bad("address", s, e.to_string()))?;
    Ok(())
}

/// An address of `network`, when lode knows that network's prefix (`devnet`, `regtest`);
/// for other networks only the syntax is checked and the node checks the rest.
pub fn address_for(s: &str, network: &str) -> Result<(), CommandError> {
    address_syntax(s)?;
    if let Some(params) = ChainParams::by_name(network) {
        PubkeyHash::from_address(s, &params.hrp).map_err(|e| bad("address", s, format!("{e} ({network})")))?;
    }
    Ok(())
}

/// A block, by height or hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRef {
    /// A height.
    Height(u32),
    /// A hash (display-order hex, as given).
    Hash(String),
}

/// `HASH_OR_HEIGHT`: digits are a height, 64 hex characters a hash.
pub fn block_ref(s: &str) -> Result<BlockRef, CommandError> {
    let what = "block hash or height";
    if !s.is_empty() && s.len() < 64 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u32>()
            .map(BlockRef::Height)
            .map_err(|_| bad(what, s, "height is too large".into()));
    }
    if s.len() != 64 {
        return Err(bad(
            what,
            s,
            format!("neither a height nor a 64-hex-digit hash ({} characters)", s.len()),
        ));
    }
    hash(what, s).map(BlockRef::Hash)
}

/// A txid or block hash: 64 hex digits, returned lower-case.
pub fn hash(what: &'static str, s: &str) -> Result<String, CommandError> {
    Hash256::from_hex(s).map_err(|e| bad(what, s, e.to_string()))?;
    Ok(s.to_ascii_lowercase())
}

fn bad(what: &'static str, input: &str, reason: String) -> CommandError {
    CommandError::BadInput {
        what,
        input: input.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<impl std::fmt::Debug, CommandError>) -> String {
        let e = r.expect_err("refused").to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn amounts_are_refused_naming_the_problem() {
        assert_eq!(amount("12.5").expect("valid"), Amount(1_250_000_000));
        assert_eq!(amount("0.00000001").expect("valid"), Amount(1));
        assert!(reason(amount("-1")).contains("negative"));
        assert!(reason(amount("1.123456789")).contains("9 decimals"));
        assert!(reason(amount("184467440738")).contains("too large"));
        assert!(reason(amount("12,5")).contains("not a decimal number"));
        assert!(reason(amount("abc")).contains("invalid amount \"abc\""));
        assert!(reason(amount("0")).contains("more than zero"));
    }

    #[test]
    fn addresses_are_checked_locally() {
        let reg = PubkeyHash([7; 20]).to_address("lreg").expect("encodes");
        let dev = PubkeyHash([7; 20]).to_address("ldev").expect("encodes");
        address_syntax(&reg).expect("valid");
        address_for(&reg, "regtest").expect("regtest address");
        address_for(&reg, "some-custom-net").expect("unknown network: syntax only");
        assert!(reason(address_for(&dev, "regtest")).contains("\"lreg\""));
        let mut broken = reg.clone();
        broken.pop();
        broken.push(if reg.ends_with('q') { 'p' } else { 'q' });
        assert!(reason(address_syntax(&broken)).contains("invalid address"));
        assert!(reason(address_syntax("hello")).contains("bech32m"));
        assert!(reason(address_syntax("1abc")).contains("bech32m"));
    }

    #[test]
    fn heights_and_hashes() {
        assert_eq!(block_ref("0").expect("height"), BlockRef::Height(0));
        assert_eq!(block_ref("123").expect("height"), BlockRef::Height(123));
        let h = "AB".repeat(32);
        assert_eq!(block_ref(&h).expect("hash"), BlockRef::Hash("ab".repeat(32)));
        assert!(reason(block_ref("99999999999")).contains("too large"));
        assert!(reason(block_ref("xyz")).contains("neither a height nor"));
        assert!(reason(block_ref(&"zz".repeat(32))).contains("hex"));
        assert!(reason(hash("txid", "abc")).contains("invalid txid"));
    }
}
