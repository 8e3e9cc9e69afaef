//! Following one node's event stream (`GET /api/v1/events`, server-sent events) for the
//! devnet page: every `tip` and `reorg` the node announces reaches the supervisor as it
//! happens, so a reorganisation that starts and ends between two reads of the node's state
//! is still logged. A dropped stream is reopened with `Last-Event-ID` (the node replays what
//! was missed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::file::DevnetNode;

/// Longest event (one `data` field) kept; a longer one is skipped, not buffered.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// A stream with nothing (not even the node's keep-alive, every 15 s) for this long is
/// taken for dead and reopened.
const SILENCE: Duration = Duration::from_secs(40);
/// Pause before reopening a dropped stream.
const RETRY: Duration = Duration::from_millis(500);

/// What a node announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// A new best block.
    Tip,
    /// A reorganisation: blocks replaced, old tip and new tip as (height, hash).
    Reorg {
        /// Blocks it replaced.
        depth: u64,
        /// Tip before.
        old: (u64, String),
        /// Tip after.
        new: (u64, String),
    },
    /// The stream (re)opened: events may have been missed before it.
    Opened,
}

/// One complete server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sse {
    /// `event:` (empty: `message`).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:`, if any.
    pub id: Option<String>,
}

/// The `text/event-stream` framing, fed chunk by chunk, bounded: a line longer than
/// [`MAX_EVENT_BYTES`] is dropped whole and so is the event it belongs to.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    skipping_line: bool,
    current: Sse,
    broken: bool,
}

impl SseParser {
    /// The events completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Sse> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                if self.skipping_line {
                    self.skipping_line = false;
                } else {
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, &mut out);
                }
                continue;
            }
            if self.skipping_line {
                continue;
            }
            if self.line.len() >= MAX_EVENT_BYTES {
                self.line.clear();
                self.skipping_line = true;
                self.broken = true;
                continue;
            }
            self.line.push(b);
        }
        out
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Sse>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            if !std::mem::take(&mut self.broken) && (!ev.data.is_empty() || !ev.event.is_empty()) {
                out.push(ev);
            }
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.current.event = value.to_string(),
            "id" => self.current.id = Some(value.to_string()),
            "data" => {
                if self.current.data.len() + value.len() > MAX_EVENT_BYTES {
                    self.broken = true;
                    return;
                }
                if !self.current.data.is_empty() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// The node event of one server-sent event, if it is one the page cares about.
pub fn node_event(ev: &Sse) -> Option<NodeEvent> {
    match ev.event.as_str() {
        "tip" => Some(NodeEvent::Tip),
        "reorg" => {
            let v: Value = serde_json::from_str(&ev.data).ok()?;
            let fork = v.get("fork_height")?.as_u64()?;
            let hashes = |k: &str| -> Option<Vec<String>> {
                v.get(k)?
                    .as_array()?
                    .iter()
                    .map(|h| h.as_str().map(str::to_string))
                    .collect()
            };
            // The node lists disconnected blocks tip first, connected ones lowest first.
            let gone = hashes("disconnected")?;
            let came = hashes("connected")?;
            Some(NodeEvent::Reorg {
                depth: gone.len() as u64,
                old: (fork + gone.len() as u64, gone.first().cloned().unwrap_or_default()),
                new: (fork + came.len() as u64, came.last().cloned().unwrap_or_default()),
            })
        }
        _ => None,
    }
}

/// Follows `node`'s events for ever (until the task is aborted), calling `on_event` for
/// each; `live` tells whether the stream is open right now.
pub async fn follow(node: DevnetNode, live: Arc<AtomicBool>, on_event: impl Fn(NodeEvent) + Send + 'static) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "cannot follow the node's events");
            return;
        }
    };
    let url = format!("{}/api/v1/events", node.rpc.trim_end_matches('/'));
    let mut last_id: Option<String> = None;
    loop {
        let mut req = client.get(&url).header("accept", "text/event-stream");
        if let Some(id) = &last_id {
            req = req.header("last-event-id", id.as_str());
        }
        if let Ok(Ok(mut resp)) = tokio::time::timeout(SILENCE, req.send()).await {
            if resp.status().is_success() {
                live.store(true, Ordering::Relaxed);
                on_event(NodeEvent::Opened);
                let mut parser = SseParser::default();
                while let Ok(Ok(Some(chunk))) = tokio::time::timeout(SILENCE, resp.chunk()).await {
                    for ev in parser.feed(&chunk) {
                        if ev.id.is_some() {
                            last_id.clone_from(&ev.id);
                        }
                        if let Some(e) = node_event(&ev) {
                            on_event(e);
                        }
                    }
                }
                live.store(false, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_together() {
        let mut p = SseParser::default();
        assert!(p.feed(b"id: 7\nevent: ti").is_empty());
        let evs = p.feed(b"p\ndata: {\"height\":3}\n\n: keep-alive\n\nevent: tx\r\ndata: x\r\n\r\n");
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(evs[0].event, "tip");
        assert_eq!(evs[0].id.as_deref(), Some("7"));
        assert_eq!(evs[0].data, "{\"height\":3}");
        assert_eq!(node_event(&evs[0]), Some(NodeEvent::Tip));
        assert_eq!(evs[1].event, "tx");
        assert_eq!(node_event(&evs[1]), None);
    }

    #[test]
    fn a_reorg_event_names_depth_and_both_tips() {
        let ev = Sse {
            event: "reorg".into(),
            data: r#"{"fork_height":10,"disconnected":["c","b"],"connected":["x","y","z"]}"#.into(),
            id: None,
        };
        assert_eq!(
            node_event(&ev),
            Some(NodeEvent::Reorg {
                depth: 2,
                old: (12, "c".into()),
                new: (13, "z".into()),
            })
        );
    }

    #[test]
    fn an_oversized_event_is_dropped_and_the_next_one_still_parses() {
        let mut p = SseParser::default();
        let mut big = b"event: tip\ndata: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_EVENT_BYTES + 10));
        big.extend_from_slice(b"\n\nevent: tip\ndata: ok\n\n");
        let evs = p.feed(&big);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].data, "ok");
        assert!(p.line.capacity() <= 2 * MAX_EVENT_BYTES);
    }
}
