//! Amounts in base units, with checked arithmetic that never wraps.

use std::fmt;
use std::iter::Sum;

use bincode::{Decode, Encode};

use thiserror::Error;

/// Text that is not a decimal coin amount (user input at the edges: RPC, CLI, wallet).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseAmountError {
    /// Nothing to parse.
    #[error("amount is empty")]
    Empty,
    /// A leading minus sign: amounts are never negative.
    #[error("amount must not be negative")]
    Negative,
    /// More decimals than base units can hold.
    #[error("amount has {0} decimals; at most 8 are allowed")]
    Precision(usize),
    /// More base units than a `u64` holds.
    #[error("amount is too large")]
    Overflow,
    /// Not digits with at most one decimal point.
    #[error("amount {0:?} is not a decimal number")]
    Syntax(String),
}

/// Base units per coin.
pub const COIN: u64 = 100_000_000;

/// An amount of base units. Arithmetic is checked: overflow is an error, never a wrap.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u64);

impl Amount {
    /// Zero units.
    pub const ZERO: Amount = Amount(0);

    /// `n` whole coins (saturating: only used for constants).
    pub const fn coins(n: u64) -> Amount {
        Amount(n.saturating_mul(COIN))
    }

    /// Base units.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// Checked addition.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Checked sum of an iterator; `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(iter: I) -> Option<Amount> {
        iter.into_iter().try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
    }

    /// Parses a decimal coin amount with at most 8 decimals (`"12.5"`, `"0.00000001"`).
    pub fn parse_coins(s: &str) -> Result<Amount, ParseAmountError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ParseAmountError::Empty);
        }
        if s.starts_with('-') {
            return Err(ParseAmountError::Negative);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(ParseAmountError::Syntax(s.to_string()));
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseAmountError::Syntax(s.to_string()));
        }
        if frac.len() > 8 {
            return Err(ParseAmountError::Precision(frac.len()));
        }
        let whole_units: u64 = if whole.is_empty() {
            0
        } else {
            whole
                .parse::<u64>()
                .ok()
                .and_then(|w| w.checked_mul(COIN))
                .ok_or(ParseAmountError::Overflow)?
        };
        let mut frac_units: u64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_units += u64::from(b - b'0') * 10u64.pow(7 - i as u32);
        }
        whole_units
            .checked_add(frac_units)
            .map(Amount)
            .ok_or(ParseAmountError::Overflow)
    }

    /// Formats as decimal coins, trimming trailing zeros (`12.5`, `0.00000001`, `3`).
    pub fn to_coin_string(self) -> String {
        let whole = self.0 / COIN;
        let frac = self.0 % COIN;
        if frac == 0 {
            return whole.to_string();
        }
        let mut f = format!("{frac:08}");
        while f.ends_with('0') {
            f.pop();
        }
        format!("{whole}.{f}")
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_coin_string())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl<'a> Sum<&'a Amount> for Option<Amount> {
    fn sum<I: Iterator<Item = &'a Amount>>(iter: I) -> Self {
        Amount::checked_sum(iter.copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_coins() {
        assert_eq!(Amount::parse_coins("12.5"), Ok(Amount(1_250_000_000)));
        assert_eq!(Amount::parse_coins("0.00000001"), Ok(Amount(1)));
        assert_eq!(Amount::parse_coins("3"), Ok(Amount(300_000_000)));
        assert_eq!(Amount::parse_coins(".5"), Ok(Amount(50_000_000)));
        assert_eq!(Amount::parse_coins("5."), Ok(Amount(500_000_000)));
    }

    #[test]
    fn refuses_bad_amounts() {
        assert_eq!(Amount::parse_coins("-1"), Err(ParseAmountError::Negative));
        assert_eq!(Amount::parse_coins("1.000000001"), Err(ParseAmountError::Precision(9)));
        assert_eq!(Amount::parse_coins("184467440738"), Err(ParseAmountError::Overflow));
        assert!(matches!(Amount::parse_coins("1e5"), Err(ParseAmountError::Syntax(_))));
        assert!(matches!(Amount::parse_coins("."), Err(ParseAmountError::Syntax(_))));
        assert_eq!(Amount::parse_coins(""), Err(ParseAmountError::Empty));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["12.5", "0.00000001", "3", "21000000.12345678"] {
            let a = Amount::parse_coins(s).expect("valid");
            assert_eq!(a.to_coin_string(), s);
        }
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(0).checked_sub(Amount(1)), None);
        assert_eq!(Amount::checked_sum([Amount(u64::MAX), Amount(1)]), None);
    }
}
