//! `GET /api/v1/events`: the event log as server-sent events, resumable with
//! `Last-Event-ID`; a stream ends when the node stops.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use super::app::App;
use super::auth::Principal;
use super::events::LoggedEvent;

fn to_sse(e: &LoggedEvent) -> Event {
    Event::default().id(e.id.to_string()).event(e.kind).data(e.data.clone())
}

/// The SSE handler. Anonymous streams are capped in total and per address (a stream holds
/// its slot until it ends); a credentialed caller's are bounded by its connections.
pub async fn stream(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ticket = match principal.bucket() {
        Some(_) => None,
        None => match app.streams.try_take(remote.ip()) {
            Some(t) => Some(t),
            None => {
                app.api.metrics().count_refusal("stream_limit");
                let body =
                    serde_json::json!({"error": "too many event streams from this address or in total; retry later"});
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5u32));
                return r;
            }
        },
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let (rx, backlog) = app.events.subscribe_after(last);
    let floor = backlog.last().map(|e| e.id).or(last).unwrap_or(0);
    let mut shutdown = app.shutdown.clone();
    // The slot is the stream's: given back when the client goes or the node stops.
    let live = stream::unfold((rx, floor, ticket), |(mut rx, floor, ticket)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.id <= floor => continue,
                Ok(e) => {
                    let id = e.id;
                    return Some((Ok::<Event, Infallible>(to_sse(&e)), (rx, id, ticket)));
                }
                // A client too slow to keep up misses events; it can resume by id.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let ended = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let events = stream::iter(backlog.iter().map(|e| Ok(to_sse(e))).collect::<Vec<_>>())
        .chain(live)
        .take_until(ended);
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
