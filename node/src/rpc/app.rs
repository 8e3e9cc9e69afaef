//! [`App`]: what every handler of the HTTP port shares.

use std::sync::Arc;

use tokio::sync::watch;

use super::auth::Authenticator;
use super::caps::Caps;
use super::events::EventLog;
use super::limit::RateLimits;
use super::signed::SignedKeys;
use crate::api::NodeApi;

/// What every handler shares.
pub struct App {
    /// The node.
    pub api: NodeApi,
    pub(crate) auth: Authenticator,
    pub(crate) limits: RateLimits,
    /// API keys for signed requests.
    pub(crate) signed: SignedKeys,
    /// Recent events for the SSE stream.
    pub events: Arc<EventLog>,
    /// Anonymous event streams open (capped in total and per address).
    pub(crate) streams: Arc<Caps>,
    /// Set when the node stops (ends event streams).
    pub shutdown: watch::Receiver<bool>,
}
