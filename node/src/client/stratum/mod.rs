//! The miner side of Stratum v1: a connection to any Stratum server (Lode's or another
//! SHA-256d pool's), the jobs it sends, and `lode miner`'s search ([`mine`]). Uses only TCP
//! and the shared wire transforms in [`crate::common::stratum`].

pub mod mine;

use std::time::Duration;

use lode_chain::pow::U256;
use lode_chain::{BlockHeader, Hash256};
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::common::lines::{CodecError, LineReader};
use crate::common::stratum::{
    coinbase_txid, diff1_target, hex_exact, parse_u32_hex, prevhash_from_stratum, root_from_branch, u32_hex,
    ShareDifficulty, WireError, MAX_RECONNECT_WAIT,
};

/// Longest line accepted from a server (a notify with a deep merkle branch is a few KB).
pub const MAX_SERVER_LINE: usize = 256 * 1024;

/// What can go wrong talking to a Stratum server.
#[derive(Debug, thiserror::Error)]
pub enum StratumClientError {
    /// The URL is not `stratum+tcp://HOST:PORT`.
    #[error("bad URL {0:?}: expected stratum+tcp://HOST:PORT")]
    BadUrl(String),
    /// Connecting or writing failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Reading failed.
    #[error("reading from the server: {0}")]
    Read(#[from] CodecError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server sent something malformed.
    #[error("the server sent {0}")]
    Protocol(String),
    /// A field was malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// An error the server answered with: `[code, message]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// Stratum's code (20–25).
    pub code: i64,
    /// Its message.
    pub message: String,
}

/// A job from `mining.notify`, with the difficulty in force when it arrived.
#[derive(Clone, Debug)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Parent hash (internal order).
    pub prev_hash: Hash256,
    /// Coinbase before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase after them.
    pub coinb2: Vec<u8>,
    /// Merkle branch.
    pub branch: Vec<Hash256>,
    /// Header version.
    pub version: u32,
    /// Compact network target.
    pub bits: u32,
    /// Header time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean: bool,
    /// Share difficulty for this job.
    pub difficulty: f64,
}

impl Job {
    /// The header for these extranonces, time, nonce and version.
    pub fn header(&self, en1: &[u8], en2: &[u8], ntime: u32, nonce: u32, version: u32) -> BlockHeader {
        let txid = coinbase_txid(&self.coinb1, en1, en2, &self.coinb2);
        BlockHeader {
            version,
            prev_hash: self.prev_hash,
            merkle_root: root_from_branch(txid, &self.branch),
            time: ntime,
            bits: self.bits,
            nonce,
        }
    }

    /// The share target (see [`target_for_difficulty`]).
    pub fn share_target(&self) -> U256 {
        target_for_difficulty(self.difficulty)
    }

    fn from_params(p: &[Value], difficulty: f64) -> Result<Job, StratumClientError> {
        let s = |i: usize, what: &'static str| -> Result<&str, StratumClientError> {
            p.get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| StratumClientError::Protocol(format!("a notify without {what}")))
        };
        let hexv = |i: usize, what: &'static str| -> Result<Vec<u8>, StratumClientError> {
            hex::decode(s(i, what)?)
                .map_err(|_| StratumClientError::Protocol(format!("a notify whose {what} is not hex")))
        };
        let branch = p
            .get(4)
            .and_then(Value::as_array)
            .ok_or_else(|| StratumClientError::Protocol("a notify without a merkle branch".into()))?
            .iter()
            .map(|b| {
                b.as_str()
                    .ok_or_else(|| StratumClientError::Protocol("a branch entry that is not a string".into()))
                    .and_then(|b| Ok(Hash256(hex_exact::<32>(b, "merkle branch")?)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Job {
            id: s(0, "job id")?.to_string(),
            prev_hash: prevhash_from_stratum(s(1, "prevhash")?)?,
            coinb1: hexv(2, "coinb1")?,
            coinb2: hexv(3, "coinb2")?,
            branch,
            version: parse_u32_hex(s(5, "version")?, "version")?,
            bits: parse_u32_hex(s(6, "nbits")?, "nbits")?,
            ntime: parse_u32_hex(s(7, "ntime")?, "ntime")?,
            clean: p.get(8) == Some(&Value::Bool(true)),
            difficulty,
        })
    }
}

/// The share target of difficulty `d`: exact for powers of two (within a JSON round trip's
/// last-digit error, which some float parsers make), else ⌊diff1 / d⌋ to 40 bits of
/// precision (as miners derive it in floating point).
pub fn target_for_difficulty(d: f64) -> U256 {
    if !(d.is_finite() && d > 0.0) {
        return diff1_target();
    }
    let k = d.log2().round() as i32;
    if (d / 2f64.powi(k) - 1.0).abs() < 1e-9 {
        let p = ShareDifficulty::from_log2(k);
        if p.log2() == k {
            return p.target();
        }
    }
    // 0xFFFF·2^208 / d = (0xFFFF·2^40 / d) · 2^168.
    let m = 65_535.0 * 1_099_511_627_776.0 / d;
    if m >= 2f64.powi(88) {
        return U256::MAX;
    }
    U256::from(m as u128) << 168
}

/// Something the server sent.
#[derive(Debug)]
pub enum Event {
    /// A reply to request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// Its result or error.
        result: Result<Value, ServerError>,
    },
    /// A new job (also stored as [`Connection::job`]).
    Notify,
    /// A new difficulty (for the next job).
    Difficulty(f64),
    /// `client.reconnect`: reconnect to `HOST:PORT` (`None`: the same server) after
    /// `wait` seconds.
    Reconnect {
        /// Where to, when the server names a place.
        to: Option<String>,
        /// Seconds to wait first (capped at [`crate::common::stratum::MAX_RECONNECT_WAIT`]).
        wait: u64,
    },
    /// `client.show_message` or anything else.
    Other(String),
}

/// One connection to a Stratum server.
pub struct Connection {
    lines: LineReader<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    next_id: u64,
    /// extranonce1 from the subscribe reply.
    pub en1: Vec<u8>,
    /// extranonce2's size.
    pub en2_size: usize,
    /// The difficulty in force for the next job.
    pub difficulty: f64,
    /// The newest job.
    pub job: Option<Job>,
    /// The negotiated version-rolling mask.
    pub version_mask: Option<u32>,
}

/// `HOST:PORT` from `stratum+tcp://HOST:PORT` (or a bare `HOST:PORT`).
pub fn parse_url(url: &str) -> Result<String, StratumClientError> {
    let rest = url.strip_prefix("stratum+tcp://").unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() && !rest.contains('/') => {
            Ok(rest.to_string())
        }
        _ => Err(StratumClientError::BadUrl(url.to_string())),
    }
}

/// `client.reconnect [host, port, wait]` (every part optional; a host without a valid port,
/// or one too long to be a host name, means the same server).
fn reconnect_event(params: &[Value]) -> Event {
    let host = params
        .first()
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty() && h.len() <= 255);
    let port = params.get(1).and_then(|p| match p {
        Value::String(s) => s.parse::<u16>().ok(),
        other => other.as_u64().and_then(|p| u16::try_from(p).ok()),
    });
    let wait = params
        .get(2)
        .and_then(|w| match w {
            Value::String(s) => s.parse::<u64>().ok(),
            other => other.as_u64(),
        })
        .unwrap_or(0)
        .min(MAX_RECONNECT_WAIT);
    let to = match (host, port) {
        (Some(h), Some(p)) if p != 0 => Some(if h.contains(':') {
            format!("[{h}]:{p}")
        } else {
            format!("{h}:{p}")
        }),
        _ => None,
    };
    Event::Reconnect { to, wait }
}

impl Connection {
    /// Connects to `addr` (`HOST:PORT`).
    pub async fn connect(addr: &str) -> Result<Connection, StratumClientError> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| StratumClientError::Timeout("the TCP connection"))??;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok(Connection {
            lines: LineReader::new(BufReader::new(r), MAX_SERVER_LINE),
            write: w,
            next_id: 1,
            en1: Vec::new(),
            en2_size: 4,
            difficulty: 1.0,
            job: None,
            version_mask: None,
        })
    }

    /// Sends a raw line (tests of hostile input use this too).
    pub async fn send_line(&mut self, line: &str) -> Result<(), StratumClientError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.write.write_all(&bytes).await?;
        Ok(())
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> Result<u64, StratumClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_line(&json!({"id": id, "method": method, "params": params}).to_string())
            .await?;
        Ok(id)
    }

    /// Reads one message and applies it to the connection's state.
    pub async fn read_event(&mut self) -> Result<Event, StratumClientError> {
        let line = self.lines.next_line().await?.ok_or(StratumClientError::Closed)?;
        let v: Value =
            serde_json::from_str(&line).map_err(|e| StratumClientError::Protocol(format!("non-JSON: {e}")))?;
        if let Some(method) = v.get("method").and_then(Value::as_str) {
            let params = v.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
            return match method {
                "mining.set_difficulty" => {
                    let d = params
                        .first()
                        .and_then(Value::as_f64)
                        .filter(|d| d.is_finite() && *d > 0.0)
                        .ok_or_else(|| StratumClientError::Protocol("a bad set_difficulty".into()))?;
                    self.difficulty = d;
                    Ok(Event::Difficulty(d))
                }
                "mining.notify" => {
                    self.job = Some(Job::from_params(&params, self.difficulty)?);
                    Ok(Event::Notify)
                }
                "client.reconnect" => Ok(reconnect_event(&params)),
                other => Ok(Event::Other(other.chars().take(64).collect())),
            };
        }
        let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
        let result = match v.get("error") {
            Some(e) if !e.is_null() => Err(ServerError {
                code: e.get(0).and_then(Value::as_i64).unwrap_or(20),
                message: e
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            }),
            _ => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
        };
        Ok(Event::Reply { id, result })
    }

    /// Sends a request and reads until its reply (applying notifications on the way).
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, ServerError>, StratumClientError> {
        let id = self.send(method, params).await?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), self.read_event())
                .await
                .map_err(|_| StratumClientError::Timeout("a reply"))??;
            if let Event::Reply { id: got, result } = event {
                if got == id {
                    return Ok(result);
                }
            }
        }
    }

    /// `mining.subscribe`: stores extranonce1 and extranonce2's size.
    pub async fn subscribe(&mut self, agent: &str) -> Result<(), StratumClientError> {
        let r = self
            .call("mining.subscribe", json!([agent]))
            .await?
            .map_err(|e| StratumClientError::Protocol(format!("a subscribe error: {}", e.message)))?;
        let en1 = r
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| StratumClientError::Protocol("a subscribe reply without extranonce1".into()))?;
        self.en1 =
            hex::decode(en1).map_err(|_| StratumClientError::Protocol("an extranonce1 that is not hex".into()))?;
        let size = r.get(2).and_then(Value::as_u64).unwrap_or(0);
        if !(1..=32).contains(&size) {
            return Err(StratumClientError::Protocol(format!("extranonce2 size {size}")));
        }
        self.en2_size = size as usize;
        Ok(())
    }

    /// `mining.configure` with version rolling; stores the granted mask.
    pub async fn configure_version_rolling(&mut self, mask: u32) -> Result<Option<u32>, StratumClientError> {
        let r = self
            .call(
                "mining.configure",
                json!([["version-rolling"], {"version-rolling.mask": u32_hex(mask), "version-rolling.min-bit-count": 2}]),
            )
            .await?;
        let granted = r
            .ok()
            .filter(|v| v.get("version-rolling") == Some(&Value::Bool(true)))
            .and_then(|v| {
                v.get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .and_then(|m| u32::from_str_radix(&m, 16).ok());
        self.version_mask = granted;
        Ok(granted)
    }

    /// `mining.authorize`.
    pub async fn authorize(
        &mut self,
        user: &str,
        pass: &str,
    ) -> Result<Result<Value, ServerError>, StratumClientError> {
        self.call("mining.authorize", json!([user, pass])).await
    }

    /// Reads until a job newer than `after` (by id) has arrived.
    pub async fn wait_job(&mut self, after: Option<&str>, timeout: Duration) -> Result<Job, StratumClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(j) = &self.job {
                if Some(j.id.as_str()) != after {
                    return Ok(j.clone());
                }
            }
            tokio::time::timeout_at(deadline, self.read_event())
                .await
                .map_err(|_| StratumClientError::Timeout("a job"))??;
        }
    }

    /// `mining.submit`; `Ok(Ok(true))` when accepted.
    pub async fn submit(
        &mut self,
        worker: &str,
        job: &str,
        en2: &[u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
    ) -> Result<Result<Value, ServerError>, StratumClientError> {
        let mut params = vec![
            json!(worker),
            json!(job),
            json!(hex::encode(en2)),
            json!(u32_hex(ntime)),
            json!(u32_hex(nonce)),
        ];
        if let Some(v) = version_bits {
            params.push(json!(u32_hex(v)));
        }
        self.call("mining.submit", Value::Array(params)).await
    }

    /// Splits into the raw halves (for a loop that reads and writes independently).
    pub fn into_parts(self) -> (LineReader<BufReader<OwnedReadHalf>>, OwnedWriteHalf) {
        (self.lines, self.write)
    }
}
