//! A JSON-RPC / REST client of a node's HTTP port: what `lode wallet|mine|chain|devnet`
//! speak. See `docs/API.md` for the methods.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// Why a call to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached (not running, wrong URL, timeout).
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc {
        /// JSON-RPC error code (see docs/API.md).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The node answered with an HTTP error status.
    #[error("HTTP {status} from {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The body's error message, if any.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the node: {0}")]
    Malformed(String),
    /// The cookie file could not be read.
    #[error("cannot read the cookie {path}: {reason}")]
    Cookie {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// How a client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer TOKEN` (the cookie's token or an API key).
    Bearer(String),
    /// HTTP Basic `USER:PASSWORD` (Core's cookie `__cookie__:TOKEN`, or an rpcauth user).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    // Never print a secret (a client in a log line must not leak it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(…)"),
            Credential::Basic { user, .. } => write!(f, "Basic({user}:…)"),
        }
    }
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct RpcClient {
    base: String,
    credential: Option<Credential>,
    signer: Option<Signer>,
    http: reqwest::Client,
}

/// An API key that signs every request (`X-Lode-*`, `crate::common::signing`).
#[derive(Clone)]
struct Signer {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}:…)", self.id)
    }
}

impl RpcClient {
    /// A client of the node at `base` (`http://127.0.0.1:18443`), authenticating with
    /// `token` (`Bearer`) when given.
    pub fn new(base: &str, token: Option<String>) -> RpcClient {
        RpcClient::with_credential(base, token.map(Credential::Bearer))
    }

    /// A client of the node at `base` with any credential.
    pub fn with_credential(base: &str, credential: Option<Credential>) -> RpcClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        RpcClient {
            base: base.trim_end_matches('/').to_string(),
            credential,
            signer: None,
            http,
        }
    }

    /// This client signing every request with the key in `key_file` (`ID:SECRETHEX`, as
    /// `lode api-key create --out` writes it) instead of sending a credential.
    pub fn signing_with(mut self, key_file: &Path) -> Result<RpcClient, ClientError> {
        let text = std::fs::read_to_string(key_file).map_err(|e| ClientError::Cookie {
            path: key_file.display().to_string(),
            reason: e.to_string(),
        })?;
        let (id, secret) = crate::common::signing::parse_key_file(&text).map_err(|reason| ClientError::Cookie {
            path: key_file.display().to_string(),
            reason,
        })?;
        self.credential = None;
        self.signer = Some(Signer { id, secret });
        Ok(self)
    }

    /// Adds the signature headers for `method path` with `body`.
    fn sign(&self, req: reqwest::RequestBuilder, method: &str, path: &str, body: &[u8]) -> reqwest::RequestBuilder {
        use crate::common::signing;
        let Some(s) = &self.signer else { return req };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let sig = signing::sign(&s.secret, &ts, method, path, body);
        req.header(signing::KEY_HEADER, &s.id)
            .header(signing::TIMESTAMP_HEADER, ts)
            .header(signing::SIGNATURE_HEADER, sig)
    }

    /// A client authenticating with a cookie file (Core's `__cookie__:TOKEN`).
    pub fn with_cookie(base: &str, cookie: &Path) -> Result<RpcClient, ClientError> {
        let credential = read_cookie(cookie)?;
        Ok(RpcClient::with_credential(base, Some(credential)))
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credential {
            Some(Credential::Bearer(t)) => req.bearer_auth(t),
            Some(Credential::Basic { user, password }) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    /// The node's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls a JSON-RPC method with positional params and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let url = format!("{}/rpc", self.base);
        let bytes = serde_json::to_vec(&body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let req = self.authorize(
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
        );
        let req = self.sign(req, "POST", "/rpc", &bytes);
        let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| unreachable(&url, &e))?;
        let value: Value = serde_json::from_str(&text).map_err(|_| ClientError::Http {
            url: url.clone(),
            status: status.as_u16(),
            message: text.chars().take(200).collect(),
        })?;
        if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
            return Err(ClientError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string(),
            });
        }
        if !status.is_success() {
            return Err(ClientError::Http {
                url,
                status: status.as_u16(),
                message: text.chars().take(200).collect(),
            });
        }
        value
            .get("result")
            .cloned()
            .ok_or_else(|| ClientError::Malformed(format!("{method}: no result")))
    }

    /// `GET` a path (`/api/v1/status`, `/health`) and parse the JSON body, whatever the
    /// status (`/health` answers 503 with a reason when not ready).
    pub async fn get(&self, path: &str) -> Result<(u16, Value), ClientError> {
        let url = format!("{}{}", self.base, path);
        let req = self.sign(self.authorize(self.http.get(&url)), "GET", path, b"");
        let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| unreachable(&url, &e))?;
        let value = serde_json::from_str(&text).map_err(|_| {
            ClientError::Malformed(format!(
                "{path}: not JSON: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        Ok((status, value))
    }
}

/// Reads a node's cookie file: Core's `__cookie__:TOKEN` (HTTP Basic), or a bare token
/// (`Bearer`, as nodes before 0.2 wrote it).
pub fn read_cookie(path: &Path) -> Result<Credential, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClientError::Cookie {
        path: path.display().to_string(),
        // The node writes it at start and removes it at a clean stop.
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "no such file (is the node running?)".to_string()
        } else {
            e.to_string()
        },
    })?;
    let token = text.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(ClientError::Cookie {
            path: path.display().to_string(),
            reason: "not a cookie file".into(),
        });
    }
    Ok(match token.split_once(':') {
        Some((user, password)) => Credential::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
        None => Credential::Bearer(token.to_string()),
    })
}

fn unreachable(url: &str, e: &reqwest::Error) -> ClientError {
    // reqwest's Display omits the cause ("error sending request for url (URL)", the URL
    // being named already); the sources say why.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let reason = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    ClientError::Unreachable {
        url: url.to_string(),
        reason,
    }
}
