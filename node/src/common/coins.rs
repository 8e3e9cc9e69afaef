//! Amounts on the JSON-RPC API, as Bitcoin Core writes them: decimal coins, a JSON number
//! with always 8 places (`1.50000000`). Both the node (answers, params) and the `lode` client (reading
//! answers) convert through here; the REST API keeps integer base units.

use lode_chain::{Amount, COIN};
use serde_json::Value;

/// Base units as a JSON number of coins with Core's 8 places (`150000000` → `1.50000000`).
///
/// The number keeps its text exactly (serde_json's `arbitrary_precision`, on for the
/// workspace), so it is written as Core's `ValueFromAmount` writes it; any JSON reader gets
/// the exact amount (Python's `parse_float=Decimal` gets `Decimal("1.50000000")`).
pub fn to_json(units: u64) -> Value {
    exact(format!("{}.{:08}", units / COIN, units % COIN))
}

/// A signed amount (a wallet entry's net effect) as coins, 8 places.
pub fn signed_to_json(units: i64) -> Value {
    let sign = if units < 0 { "-" } else { "" };
    let m = units.unsigned_abs();
    exact(format!("{sign}{}.{:08}", m / COIN, m % COIN))
}

/// A decimal written by us as a JSON number, kept as written.
fn exact(text: String) -> Value {
    // Our own digits always parse; the fallback only guards against a future change.
    text.parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Why a JSON amount was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoinsError {
    /// Not a number or a numeric string.
    #[error("amount is not a number")]
    NotANumber,
    /// Negative, more than 8 decimals, or too large.
    #[error("invalid amount {0}")]
    Invalid(String),
}

/// Decimal coins (a JSON number or a numeric string, as Core accepts) as base units.
pub fn from_json(v: &Value) -> Result<Amount, CoinsError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 64 => s.clone(),
        _ => return Err(CoinsError::NotANumber),
    };
    let plain = expand_exponent(&text).ok_or_else(|| CoinsError::Invalid(text.clone()))?;
    Amount::parse_coins(&plain).map_err(|_| CoinsError::Invalid(text))
}

/// A signed JSON amount (a wallet entry, a fee written negative) as base units.
pub fn signed_from_json(v: &Value) -> Result<i64, CoinsError> {
    let (negative, magnitude) = match v {
        Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => {
            (true, Value::String(n.to_string()[1..].to_string()))
        }
        other => (false, other.clone()),
    };
    let units = i64::try_from(from_json(&magnitude)?.0).map_err(|_| CoinsError::Invalid(v.to_string()))?;
    Ok(if negative { -units } else { units })
}

/// `1.5e-7` → `0.00000015`: JSON writers use exponents for small numbers.
fn expand_exponent(s: &str) -> Option<String> {
    let Some((mantissa, exp)) = s.split_once(['e', 'E']) else {
        return Some(s.to_string());
    };
    let exp: i32 = exp.parse().ok()?;
    if !(-32..=32).contains(&exp) {
        return None;
    }
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.starts_with('-') {
        return None;
    }
    let digits = format!("{whole}{frac}");
    let point = i32::try_from(whole.len()).ok()? + exp;
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    })
}

/// A fee rate in base units per byte as Core's BTC/kvB (`1` → `0.00001`).
pub fn rate_to_json(units_per_byte: u64) -> Value {
    to_json(units_per_byte.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_go_out_as_coins_and_come_back_exactly() {
        for units in [
            0u64,
            1,
            10,
            12_345,
            100_000_000,
            150_000_000,
            2_099_999_999_999_999,
            5_000_000_001,
        ] {
            let text = to_json(units).to_string();
            let back: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(from_json(&back), Ok(Amount(units)), "{units} → {text}");
        }
        assert_eq!(to_json(150_000_000).to_string(), "1.50000000");
        assert_eq!(to_json(0).to_string(), "0.00000000");
        assert_eq!(to_json(2_099_999_999_999_999).to_string(), "20999999.99999999");
        assert_eq!(signed_to_json(-7).to_string(), "-0.00000007");
        // A whole response keeps the text when serialized.
        let body = serde_json::to_string(&json!({"amount": to_json(1)})).expect("json");
        assert_eq!(body, r#"{"amount":0.00000001}"#);
        assert_eq!(from_json(&json!("0.1")), Ok(Amount(10_000_000)));
        assert_eq!(from_json(&json!(1e-8)), Ok(Amount(1)));
        assert_eq!(signed_from_json(&json!(-1.5)), Ok(-150_000_000));
        assert_eq!(signed_from_json(&signed_to_json(-7)), Ok(-7));
        assert!(matches!(from_json(&json!(0.123456789)), Err(CoinsError::Invalid(_))));
        assert!(matches!(from_json(&json!(-1)), Err(CoinsError::Invalid(_))));
        assert_eq!(from_json(&json!(true)), Err(CoinsError::NotANumber));
        assert_eq!(rate_to_json(1).to_string(), "0.00001000");
    }
}
