//! Signed API requests (HMAC), what both the node and the `lode` client compute:
//! `X-Lode-Signature = hex(HMAC-SHA256(secret, timestamp ‖ method ‖ path ‖ hex(sha256(body))))`,
//! the four parts concatenated as text (`1733500000POST/rpc9f86d0…`), `path` with its
//! query string, `timestamp` in Unix seconds (`X-Lode-Timestamp`), the key's id in
//! `X-Lode-Key`. The key file a client signs with holds one line `ID:SECRETHEX`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header naming the key.
pub const KEY_HEADER: &str = "x-lode-key";
/// Header with the Unix time of signing.
pub const TIMESTAMP_HEADER: &str = "x-lode-timestamp";
/// Header with the signature, hex.
pub const SIGNATURE_HEADER: &str = "x-lode-signature";
/// Bytes of a key's secret.
pub const SECRET_LEN: usize = 32;

/// The signed message.
pub fn message(timestamp: &str, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{timestamp}{method}{path}{body_hash}").into_bytes()
}

/// The MAC over `message` with `secret`, ready to finalize or verify.
pub fn mac(secret: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(message);
    m
}

/// `X-Lode-Signature` for a request.
pub fn sign(secret: &[u8], timestamp: &str, method: &str, path: &str, body: &[u8]) -> String {
    hex::encode(
        mac(secret, &message(timestamp, method, path, body))
            .finalize()
            .into_bytes(),
    )
}

/// A key file's one line, `ID:SECRETHEX`.
pub fn parse_key_file(text: &str) -> Result<(String, Vec<u8>), String> {
    let (id, secret) = text.trim().split_once(':').ok_or("expected ID:SECRETHEX")?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("the key id must be 1–64 of [A-Za-z0-9_-]".into());
    }
    let secret = hex::decode(secret).map_err(|_| "the secret is not hex".to_string())?;
    if secret.len() != SECRET_LEN {
        return Err(format!("the secret must be {SECRET_LEN} bytes"));
    }
    Ok((id.to_string(), secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_every_part() {
        let s = sign(b"k", "1700000000", "POST", "/rpc", b"{}");
        // Python: hmac.new(b"k", b"1700000000POST/rpc" + sha256(b"{}").hexdigest().encode(), "sha256")
        assert_eq!(s, "b2f6c35ec62d66c463ceba859807c2a58271af74bcd725c1b5b44e59639ff9e7");
        for other in [
            sign(b"k2", "1700000000", "POST", "/rpc", b"{}"),
            sign(b"k", "1700000001", "POST", "/rpc", b"{}"),
            sign(b"k", "1700000000", "GET", "/rpc", b"{}"),
            sign(b"k", "1700000000", "POST", "/", b"{}"),
            sign(b"k", "1700000000", "POST", "/rpc", b"{ }"),
        ] {
            assert_ne!(s, other);
        }
        let line = format!("ci-1:{}", "ab".repeat(32));
        assert_eq!(
            parse_key_file(&line).map(|(id, s)| (id, s.len())),
            Ok(("ci-1".into(), 32))
        );
        for bad in ["x", "a:zz", "a:abab", ":abab"] {
            assert!(parse_key_file(bad).is_err(), "{bad}");
        }
    }
}
