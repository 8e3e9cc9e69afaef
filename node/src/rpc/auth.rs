//! Who is asking. As Bitcoin Core: HTTP Basic with the cookie (`__cookie__:<token>`, every
//! scope) or an `rpcauth` user (`USER:SALT$HMAC`, the password checked as
//! HMAC-SHA256(key = salt, message = password), its scopes). As Lode always did: `Bearer`
//! with the cookie token or an API key (its scopes). Secrets are compared in constant time
//! against hashes, so a memory dump shows no usable token.

use std::fmt;
use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The user name of the cookie credential (Core's).
pub const COOKIE_USER: &str = "__cookie__";
/// Longest `Authorization` value looked at (a longer one is refused unread).
const MAX_AUTH_HEADER: usize = 4096;

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
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Wallet, Scope::Mine, Scope::Admin];

    /// Parses a comma-separated list (`read,wallet`).
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for sc in s.split(',') {
            let scope = Scope::parse(sc).ok_or_else(|| format!("unknown scope {sc:?} (read, wallet, mine, admin)"))?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        Ok(out)
    }

    /// One scope by name.
    pub fn parse(s: &str) -> Option<Scope> {
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
        check_name(name, "key name")?;
        let scopes = Scope::parse_list(scopes)?;
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

/// A name for a key or user: 1–64 of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("{what} {name:?} must be 1–64 of [A-Za-z0-9._-]"));
    }
    Ok(())
}

/// A Core `rpcauth` user: `USER:SALT$HMAC` exactly as Core's `share/rpcauth/rpcauth.py`
/// prints it, optionally followed by `:SCOPES` (default: every scope, as in Core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcAuthUser {
    /// User name.
    pub name: String,
    /// The salt (used as the HMAC key, as text, as Core uses it).
    salt: String,
    /// HMAC-SHA256(salt, password).
    hmac: [u8; 32],
    /// Scopes granted.
    pub scopes: Vec<Scope>,
}

impl RpcAuthUser {
    /// Parses `USER:SALT$HMAC[:SCOPES]` (`--rpc-auth`).
    pub fn parse(s: &str) -> Result<RpcAuthUser, String> {
        let (name, rest) = s
            .split_once(':')
            .ok_or("expected USER:SALT$HMAC[:SCOPES] (as share/rpcauth/rpcauth.py prints it)")?;
        check_name(name, "user name")?;
        if name == COOKIE_USER {
            return Err(format!("the user name {COOKIE_USER} is the cookie's"));
        }
        let (salt_hash, scopes) = match rest.split_once(':') {
            Some((sh, sc)) => (sh, Scope::parse_list(sc)?),
            None => (rest, Scope::ALL.to_vec()),
        };
        let (salt, hash) = salt_hash
            .split_once('$')
            .ok_or("expected SALT$HMAC after the user name")?;
        if salt.is_empty() || salt.len() > 256 {
            return Err("the salt must be 1–256 characters".into());
        }
        let bytes = hex::decode(hash).map_err(|_| "the HMAC is not hex".to_string())?;
        let hmac: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the HMAC must be 32 bytes (HMAC-SHA256, 64 hex digits)".to_string())?;
        Ok(RpcAuthUser {
            name: name.to_string(),
            salt: salt.to_string(),
            hmac,
            scopes,
        })
    }

    /// True if `password` is this user's (constant time in the comparison).
    fn password_matches(&self, password: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.salt.as_bytes()) else {
            return false;
        };
        mac.update(password);
        let got: [u8; 32] = mac.finalize().into_bytes().into();
        bool::from(got.ct_eq(&self.hmac))
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
    /// An `rpcauth` user.
    User {
        /// Its name.
        name: String,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
    /// A request signed with an API key (`X-Lode-*`, [`super::signed`]).
    Signed {
        /// The key's id.
        id: String,
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
            Principal::Key { scopes, .. } | Principal::User { scopes, .. } | Principal::Signed { scopes, .. } => {
                scopes.contains(&scope)
            }
            Principal::Anonymous | Principal::Invalid => false,
        }
    }

    /// The rate-limit bucket of an authenticated caller.
    pub fn bucket(&self) -> Option<String> {
        match self {
            Principal::Cookie => Some("cookie".into()),
            Principal::Key { name, .. } => Some(format!("key:{name}")),
            Principal::User { name, .. } => Some(format!("user:{name}")),
            Principal::Signed { id, .. } => Some(format!("signed:{id}")),
            Principal::Anonymous | Principal::Invalid => None,
        }
    }
}

/// Checks `Authorization` headers.
pub struct Authenticator {
    cookie_hash: [u8; 32],
    keys: Vec<ApiKey>,
    users: Vec<RpcAuthUser>,
}

impl Authenticator {
    /// Accepts the cookie token, the bearer keys and the `rpcauth` users.
    pub fn new(cookie_token: &str, keys: Vec<ApiKey>, users: Vec<RpcAuthUser>) -> Authenticator {
        Authenticator {
            cookie_hash: Sha256::digest(cookie_token.as_bytes()).into(),
            keys,
            users,
        }
    }

    /// Who sent this `Authorization` header value (`None`: no header).
    pub fn identify(&self, authorization: Option<&[u8]>) -> Principal {
        let Some(value) = authorization else {
            return Principal::Anonymous;
        };
        if value.len() > MAX_AUTH_HEADER {
            return Principal::Invalid;
        }
        if let Some(b64) = strip_scheme(value, b"basic") {
            return self.basic(b64.trim_ascii());
        }
        let Some(token) = strip_scheme(value, b"bearer") else {
            return Principal::Invalid;
        };
        self.bearer(token.trim_ascii())
    }

    /// `Basic base64(user:password)`: the cookie user or an `rpcauth` user.
    fn basic(&self, b64: &[u8]) -> Principal {
        let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Principal::Invalid;
        };
        let Some(colon) = pair.iter().position(|b| *b == b':') else {
            return Principal::Invalid;
        };
        let (user, password) = (&pair[..colon], &pair[colon + 1..]);
        if user == COOKIE_USER.as_bytes() {
            let hash: [u8; 32] = Sha256::digest(password).into();
            return if bool::from(hash.ct_eq(&self.cookie_hash)) {
                Principal::Cookie
            } else {
                Principal::Invalid
            };
        }
        // Every user of that name is tried (as Core does with several rpcauth lines).
        let mut found = Principal::Invalid;
        for u in self.users.iter().filter(|u| u.name.as_bytes() == user) {
            if u.password_matches(password) && found == Principal::Invalid {
                found = Principal::User {
                    name: u.name.clone(),
                    scopes: u.scopes.clone(),
                };
            }
        }
        found
    }

    /// `Bearer TOKEN`: the cookie token or an API key.
    fn bearer(&self, token: &[u8]) -> Principal {
        let hash: [u8; 32] = Sha256::digest(token).into();
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

/// `value` without its authentication scheme (`Basic `, `Bearer `; case-insensitive).
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..scheme.len())?;
    let rest = &value[scheme.len()..];
    (head.eq_ignore_ascii_case(scheme) && rest.first() == Some(&b' ')).then_some(rest)
}

/// Writes a fresh random 32-byte token (hex) to `DATA_DIR/.cookie` in Core's format
/// (`__cookie__:HEX`), mode 0600, and returns the token.
pub fn write_cookie(data_dir: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let line = format!("{COOKIE_USER}:{token}");
    lode_chain::atomic_file::write_private(&data_dir.join(COOKIE_FILE), line.as_bytes())?;
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
        let auth = Authenticator::new("cookie-token", vec![k], Vec::new());
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

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
        .into_bytes()
    }

    #[test]
    fn basic_auth_takes_the_cookie_and_rpcauth_users_as_core_does() {
        // The line share/rpcauth/rpcauth.py's method gives for user "alice", salt
        // f9a7…b5c7, password "hunter2-pw" (HMAC computed with Python's hmac module).
        let line =
            "alice:f9a7b2c4d6e8f0a1b3c5d7e9f1a3b5c7$f0255c0695b95e84ea23c98a00d61c823147bb61ed93801db0c1e243b6e306c8";
        let alice = RpcAuthUser::parse(line).expect("valid");
        assert_eq!(alice.scopes, Scope::ALL.to_vec());
        let reader = RpcAuthUser::parse(&format!("bob:s${}:read", "00".repeat(32))).expect("valid");
        assert_eq!(reader.scopes, vec![Scope::Read]);
        let auth = Authenticator::new("tok", Vec::new(), vec![alice]);
        assert_eq!(auth.identify(Some(&basic("__cookie__", "tok"))), Principal::Cookie);
        assert_eq!(auth.identify(Some(b"Bearer tok")), Principal::Cookie);
        assert_eq!(auth.identify(Some(&basic("__cookie__", "tok2"))), Principal::Invalid);
        let p = auth.identify(Some(&basic("alice", "hunter2-pw")));
        assert!(matches!(&p, Principal::User { name, .. } if name == "alice"), "{p:?}");
        assert_eq!(auth.identify(Some(&basic("alice", "hunter2"))), Principal::Invalid);
        assert_eq!(auth.identify(Some(&basic("mallory", "hunter2-pw"))), Principal::Invalid);
        assert_eq!(auth.identify(Some(b"Basic !!notbase64")), Principal::Invalid);
        assert_eq!(auth.identify(Some(b"basic X19jb29raWVfXzp0b2s=")), Principal::Cookie);
        for bad in [
            "alice",
            "alice:salt",
            "alice:salt$zz",
            "alice:$00",
            "__cookie__:s$00",
            "a:s$00:root",
        ] {
            assert!(RpcAuthUser::parse(bad).is_err(), "{bad}");
        }
    }
}
