//! Signed requests (HMAC): API keys the node's admin creates and revokes at run time
//! (`createapikey`, `listapikeys`, `revokeapikey`; `lode api-key`), kept with their secrets
//! in `DATA_DIR/api_keys.json` (0600; a secret is shown once, when created, and never logged),
//! and the check of a request's `X-Lode-*` headers ([`crate::common::signing`]): the key
//! exists, the timestamp is within ±[`WINDOW_SECS`] of the node's clock, the signature
//! matches (constant-time), and it was not used before ([`ReplayCache`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use hmac::Mac;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::auth::Scope;
use crate::common::signing;

/// The key file in the data dir.
pub const KEYS_FILE: &str = "api_keys.json";
/// A signature is accepted this many seconds either side of the node's clock.
pub const WINDOW_SECS: i64 = 30;
/// Most keys a node keeps.
pub const MAX_KEYS: usize = 1000;
/// Most signatures remembered (each for twice the window); beyond, signed requests are
/// refused until old ones expire, rather than forgetting one early (a replay window).
pub const MAX_REPLAY: usize = 100_000;

/// Why a signed request was refused (also its `/metrics` reason label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such key, or revoked.
    UnknownKey,
    /// The timestamp is not a number or outside the window.
    StaleTimestamp,
    /// The signature is not hex or does not match.
    BadSignature,
    /// This signature was used before.
    Replay,
    /// The replay cache is full.
    Busy,
}

impl Refusal {
    /// The metric label and the message's key word.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::UnknownKey => "unknown_key",
            Refusal::StaleTimestamp => "stale_timestamp",
            Refusal::BadSignature => "bad_signature",
            Refusal::Replay => "replay",
            Refusal::Busy => "replay_cache_full",
        }
    }

    /// One line for the client.
    pub fn message(self) -> String {
        match self {
            Refusal::UnknownKey => "unauthorized: unknown or revoked API key".into(),
            Refusal::StaleTimestamp => {
                format!("unauthorized: X-Lode-Timestamp is not within {WINDOW_SECS} s of the node's clock")
            }
            Refusal::BadSignature => "unauthorized: X-Lode-Signature does not match the request".into(),
            Refusal::Replay => "unauthorized: this signature was already used".into(),
            Refusal::Busy => "too many signed requests in the last minute; retry".into(),
        }
    }
}

/// A stored key.
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    secret: String,
    scopes: Vec<String>,
    rate: Option<u32>,
    created: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<StoredKey>,
}

/// What a listing shows of a key (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    /// Its id (`X-Lode-Key`).
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its own requests per second, if limited apart.
    pub rate: Option<u32>,
    /// Unix time of creation.
    pub created: i64,
}

struct LiveKey {
    stored: StoredKey,
    secret: Vec<u8>,
    scopes: Vec<Scope>,
    limiter: Option<KeyLimiter>,
}

type KeyLimiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// What a signed request's check reads: its three `X-Lode-*` headers and what they cover.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// `X-Lode-Key`.
    pub key: &'a [u8],
    /// `X-Lode-Timestamp`.
    pub timestamp: &'a [u8],
    /// `X-Lode-Signature`.
    pub signature: &'a [u8],
    /// HTTP method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// A verified signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// Key id.
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

/// The node's signing keys.
pub struct SignedKeys {
    path: PathBuf,
    keys: RwLock<Vec<LiveKey>>,
    replay: ReplayCache,
}

/// Why the key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the format this node writes.
    #[error("{path}: not an API key file ({reason})")]
    Format {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Too many keys.
    #[error("at most {MAX_KEYS} API keys")]
    Full,
}

fn live(stored: StoredKey) -> Result<LiveKey, String> {
    let secret = hex::decode(&stored.secret).map_err(|_| format!("key {}: secret not hex", stored.id))?;
    let scopes = Scope::parse_list(&stored.scopes.join(","))?;
    let limiter = stored.rate.and_then(NonZeroU32::new).map(|r| {
        RateLimiter::direct(Quota::per_second(r).allow_burst(r.saturating_mul(NonZeroU32::MIN.saturating_add(1))))
            .with_middleware::<StateInformationMiddleware>()
    });
    Ok(LiveKey {
        stored,
        secret,
        scopes,
        limiter,
    })
}

impl SignedKeys {
    /// Loads `DATA_DIR/api_keys.json` (none yet: no keys).
    pub fn load(data_dir: &Path) -> Result<SignedKeys, KeysError> {
        let path = data_dir.join(KEYS_FILE);
        let shown = path.display().to_string();
        let file: KeysFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeysError::Format {
                path: shown.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeysFile::default(),
            Err(source) => return Err(KeysError::Io { path: shown, source }),
        };
        let keys = file
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .map(live)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| KeysError::Format { path: shown, reason })?;
        Ok(SignedKeys {
            path,
            keys: RwLock::new(keys),
            replay: ReplayCache::default(),
        })
    }

    fn save(&self, keys: &[LiveKey]) -> Result<(), KeysError> {
        let file = KeysFile {
            keys: keys.iter().map(|k| k.stored.clone()).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| KeysError::Format {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        lode_chain::atomic_file::write_private(&self.path, &bytes).map_err(|source| KeysError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// Creates a key; returns its id and secret (hex), the only time the secret is shown.
    pub fn create(&self, scopes: &[Scope], rate: Option<u32>, now: i64) -> Result<(String, String), KeysError> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS {
            return Err(KeysError::Full);
        }
        let mut id_bytes = [0u8; 6];
        let mut secret = [0u8; signing::SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let stored = StoredKey {
            id: format!("lk_{}", hex::encode(id_bytes)),
            secret: hex::encode(secret),
            scopes: scopes.iter().map(ToString::to_string).collect(),
            rate,
            created: now,
        };
        let out = (stored.id.clone(), stored.secret.clone());
        let key = live(stored).map_err(|reason| KeysError::Format {
            path: self.path.display().to_string(),
            reason,
        })?;
        keys.push(key);
        if let Err(e) = self.save(&keys) {
            keys.pop();
            return Err(e);
        }
        Ok(out)
    }

    /// Every key, without secrets.
    pub fn list(&self) -> Vec<KeyInfo> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|k| KeyInfo {
                id: k.stored.id.clone(),
                scopes: k.stored.scopes.clone(),
                rate: k.stored.rate,
                created: k.stored.created,
            })
            .collect()
    }

    /// Revokes a key; false if there was none of that id.
    pub fn revoke(&self, id: &str) -> Result<bool, KeysError> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let Some(i) = keys.iter().position(|k| k.stored.id == id) else {
            return Ok(false);
        };
        let removed = keys.remove(i);
        if let Err(e) = self.save(&keys) {
            keys.insert(i, removed);
            return Err(e);
        }
        Ok(true)
    }

    /// Checks a signed request. `now`: the node's Unix time.
    pub fn verify(&self, req: &SignedRequest<'_>, now: i64) -> Result<Signer, Refusal> {
        let SignedRequest {
            key,
            timestamp,
            signature,
            method,
            path,
            body,
        } = *req;
        let ts_text = std::str::from_utf8(timestamp).map_err(|_| Refusal::StaleTimestamp)?;
        let ts: i64 = ts_text.parse().map_err(|_| Refusal::StaleTimestamp)?;
        if (now - ts).abs() > WINDOW_SECS {
            return Err(Refusal::StaleTimestamp);
        }
        let sig = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let k = keys
            .iter()
            .find(|k| k.stored.id.as_bytes() == key)
            .ok_or(Refusal::UnknownKey)?;
        // `verify_slice` compares in constant time.
        signing::mac(&k.secret, &signing::message(ts_text, method, path, body))
            .verify_slice(&sig)
            .map_err(|_| Refusal::BadSignature)?;
        self.replay.insert(&sig, ts, now)?;
        Ok(Signer {
            id: k.stored.id.clone(),
            scopes: k.scopes.clone(),
        })
    }

    /// The burst of a key's own quota (0: none).
    pub fn burst_of(&self, id: &str) -> u32 {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .find(|k| k.stored.id == id)
            .and_then(|k| k.stored.rate)
            .map_or(0, |r| r.saturating_mul(2))
    }

    /// Charges the key's own quota, if it has one: `Some(Ok((burst, remaining)))`,
    /// `Some(Err(wait seconds))`, or `None` (the key shares the authenticated quota).
    pub fn charge(&self, id: &str) -> Option<Result<(u32, u32), u64>> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let k = keys.iter().find(|k| k.stored.id == id)?;
        let limiter = k.limiter.as_ref()?;
        let burst = k.stored.rate.unwrap_or(1).saturating_mul(2);
        Some(match limiter.check() {
            Ok(snapshot) => Ok((burst, snapshot.remaining_burst_capacity())),
            Err(not_until) => {
                use governor::clock::Clock;
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        })
    }
}

/// Signatures seen recently, each until its timestamp leaves the window.
#[derive(Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<Vec<u8>, i64>>,
}

impl ReplayCache {
    /// Remembers `sig` (signed at `ts`); `Err(Replay)` if it was seen.
    pub fn insert(&self, sig: &[u8], ts: i64, now: i64) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(sig) {
            return Err(Refusal::Replay);
        }
        if seen.len() >= MAX_REPLAY {
            seen.retain(|_, t| now - *t <= WINDOW_SECS);
            if seen.len() >= MAX_REPLAY {
                return Err(Refusal::Busy);
            }
        }
        seen.insert(sig.to_vec(), ts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_verify_once_and_revoke() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SignedKeys::load(dir.path()).expect("empty");
        let (id, secret) = store.create(&[Scope::Read], None, 1000).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEYS_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let secret = hex::decode(secret).expect("hex");
        let sig = signing::sign(&secret, "1000", "POST", "/rpc", b"{}");
        let check = |s: &SignedKeys, sig: &str, ts: &str, body: &[u8], now| {
            let req = SignedRequest {
                key: id.as_bytes(),
                timestamp: ts.as_bytes(),
                signature: sig.as_bytes(),
                method: "POST",
                path: "/rpc",
                body,
            };
            s.verify(&req, now)
        };
        assert_eq!(check(&store, &sig, "1000", b"{ }", 1000), Err(Refusal::BadSignature));
        assert_eq!(check(&store, &sig, "1000", b"{}", 1031), Err(Refusal::StaleTimestamp));
        assert!(check(&store, &sig, "1000", b"{}", 1010).is_ok());
        assert_eq!(check(&store, &sig, "1000", b"{}", 1010), Err(Refusal::Replay));
        // A new store reads the same key from the file.
        let again = SignedKeys::load(dir.path()).expect("load");
        assert_eq!(again.list().len(), 1);
        let sig2 = signing::sign(&secret, "1001", "POST", "/rpc", b"{}");
        assert!(check(&again, &sig2, "1001", b"{}", 1001).is_ok());
        assert_eq!(again.revoke(&id).ok(), Some(true));
        let sig3 = signing::sign(&secret, "1002", "POST", "/rpc", b"{}");
        assert_eq!(check(&again, &sig3, "1002", b"{}", 1002), Err(Refusal::UnknownKey));
        assert!(SignedKeys::load(dir.path()).expect("load").list().is_empty());
    }
}
