//! `GET /api/v1/events`: the event log as server-sent events, resumable with
//! `Last-Event-ID`; a stream ends when the node stops.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use super::app::App;
use super::events::LoggedEvent;

fn to_sse(e: &LoggedEvent) -> Event {
    Event::default().id(e.id.to_string()).event(e.kind).data(e.data.clone())
}

/// The SSE handler.
pub async fn stream(State(app): State<Arc<App>>, headers: HeaderMap) -> impl IntoResponse {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let (rx, backlog) = app.events.subscribe_after(last);
    let floor = backlog.last().map(|e| e.id).or(last).unwrap_or(0);
    let mut shutdown = app.shutdown.clone();
    let live = stream::unfold((rx, floor), |(mut rx, floor)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.id <= floor => continue,
                Ok(e) => {
                    let id = e.id;
                    return Some((Ok::<Event, Infallible>(to_sse(&e)), (rx, id)));
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
    Sse::new(events).keep_alive(KeepAlive::default())
}
