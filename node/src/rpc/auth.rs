//! Who is asking: the cookie token (every scope) or an API key (its scopes), compared in
//! constant time against SHA-256 hashes, so a memory dump shows no usable token.

use std::fmt;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a credential may do beyond the public methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Public reads, with the authenticated (higher) quota.
    Read,
    /// Wallet methods.
    Wallet,
    /// Mining methods.
    Mine,
    /// Node administration (peers, bans, stop, mnemonic, verify).
    Admin,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "wallet" => Some(Scope::Wallet),
            "mine" => Some(Scope::Mine),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Wallet => "wallet",
            Scope::Mine => "mine",
            Scope::Admin => "admin",
        })
    }
}

/// A configured API key: its name, scopes and the SHA-256 of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Name (logs, rate-limit bucket).
    pub name: String,
    /// Scopes granted.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
}

impl ApiKey {
    /// Parses `NAME:SCOPES:SHA256HEX` (`--rpc-api-key`), scopes comma-separated.
    pub fn parse(s: &str) -> Result<ApiKey, String> {
        let mut parts = s.splitn(3, ':');
        let (Some(name), Some(scopes), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("expected NAME:SCOPES:SHA256HEX".into());
        };
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("key name {name:?} must be 1–64 of [A-Za-z0-9._-]"));
        }
        let scopes = scopes
            .split(',')
            .map(|sc| Scope::parse(sc).ok_or_else(|| format!("unknown scope {sc:?} (read, wallet, mine, admin)")))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = hex::decode(hash).map_err(|_| "the key hash is not hex".to_string())?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the key hash must be 32 bytes (SHA-256, 64 hex digits)".to_string())?;
        Ok(ApiKey {
            name: name.to_string(),
            scopes,
            hash,
        })
    }
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credential.
    Anonymous,
    /// The cookie holder: every scope.
    Cookie,
    /// An API key.
    Key {
        /// Its name.
        name: String,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
    /// A credential that matches nothing (401, counted against the IP's quota).
    Invalid,
}

impl Principal {
    /// True if the caller may use methods of `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Principal::Cookie => true,
            Principal::Key { scopes, .. } => scopes.contains(&scope),
            Principal::Anonymous | Principal::Invalid => false,
        }
    }

    /// The rate-limit bucket of an authenticated caller.
    pub fn bucket(&self) -> Option<String> {
        match self {
            Principal::Cookie => Some("cookie".into()),
            Principal::Key { name, .. } => Some(format!("key:{name}")),
            Principal::Anonymous | Principal::Invalid => None,
        }
    }
}

/// Checks bearer tokens.
pub struct Authenticator {
    cookie_hash: [u8; 32],
    keys: Vec<ApiKey>,
}

impl Authenticator {
    /// Accepts the cookie token and the keys.
    pub fn new(cookie_token: &str, keys: Vec<ApiKey>) -> Authenticator {
        Authenticator {
            cookie_hash: Sha256::digest(cookie_token.as_bytes()).into(),
            keys,
        }
    }

    /// Who sent this `Authorization` header value (`None`: no header).
    pub fn identify(&self, authorization: Option<&[u8]>) -> Principal {
        let Some(value) = authorization else {
            return Principal::Anonymous;
        };
        let Some(token) = value.strip_prefix(b"Bearer ") else {
            return Principal::Invalid;
        };
        let hash: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        // Compare against every credential, whatever matches, so timing says nothing.
        let mut found = Principal::Invalid;
        if bool::from(hash.ct_eq(&self.cookie_hash)) {
            found = Principal::Cookie;
        }
        for k in &self.keys {
            if bool::from(hash.ct_eq(&k.hash)) && found == Principal::Invalid {
                found = Principal::Key {
                    name: k.name.clone(),
                    scopes: k.scopes.clone(),
                };
            }
        }
        found
    }
}

/// Writes a fresh random 32-byte token (hex) to `DATA_DIR/.cookie`, mode 0600, and returns it.
pub fn write_cookie(data_dir: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    lode_chain::atomic_file::write_private(&data_dir.join(COOKIE_FILE), token.as_bytes())?;
    Ok(token)
}

/// Name of the cookie file in the data dir.
pub use crate::common::defaults::COOKIE_FILE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_tokens_map_to_principals() {
        let key = "s3cret-key";
        let spec = format!("ci:read,mine:{}", hex::encode(Sha256::digest(key.as_bytes())));
        let k = ApiKey::parse(&spec).expect("valid");
        assert_eq!(k.scopes, vec![Scope::Read, Scope::Mine]);
        let auth = Authenticator::new("cookie-token", vec![k]);
        assert_eq!(auth.identify(None), Principal::Anonymous);
        assert_eq!(auth.identify(Some(b"Bearer cookie-token")), Principal::Cookie);
        let p = auth.identify(Some(format!("Bearer {key}").as_bytes()));
        assert!(p.allows(Scope::Mine) && !p.allows(Scope::Wallet));
        assert_eq!(auth.identify(Some(b"Bearer nope")), Principal::Invalid);
        assert_eq!(auth.identify(Some(b"Basic abc")), Principal::Invalid);
        for bad in ["x", "a:read", "a:root:00", "a:read:zz", "a:read:00", ":read:00"] {
            assert!(ApiKey::parse(bad).is_err(), "{bad}");
        }
    }
}
