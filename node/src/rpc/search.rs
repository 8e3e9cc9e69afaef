//! `GET /api/v1/search?q=…`: what a search box's text names — a block (height or hash), a
//! transaction (mempool or chain) or an address of this network — answered with 200 even
//! when nothing matches, so a page can search without provoking 404s.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, MethodRouter};
use axum::Json;
use lode_chain::{Hash256, Height, PubkeyHash};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::app::App;
use super::rest::{ErrorBody, RestError, Q};

/// Longest query looked at (an address is ~60 characters).
pub const MAX_QUERY: usize = 128;

/// The routes of this module.
pub fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![("/api/v1/search", get(search))]
}

/// The OpenAPI part of this route.
#[derive(OpenApi)]
#[openapi(paths(search))]
pub struct SearchDoc;

/// The search text.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// A height, a block hash, a txid or an address.
    pub q: Option<String>,
}

/// What the text names.
#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    /// `block`, `tx`, `address` or `none`.
    pub kind: String,
    /// The block hash, txid or address found (absent for `none`).
    pub id: Option<String>,
}

fn found(kind: &str, id: String) -> SearchResult {
    SearchResult {
        kind: kind.into(),
        id: Some(id),
    }
}

/// Finds the block, transaction or address a search text names.
#[utoipa::path(get, path = "/api/v1/search", params(SearchQuery),
    responses((status = 200, body = SearchResult), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn search(State(app): State<Arc<App>>, Q(q): Q<SearchQuery>) -> Result<Json<SearchResult>, RestError> {
    let text: String = q.q.unwrap_or_default().trim().chars().take(MAX_QUERY).collect();
    let none = SearchResult {
        kind: "none".into(),
        id: None,
    };
    if text.is_empty() {
        return Ok(Json(none));
    }
    if PubkeyHash::from_address(&text, &app.api.params().hrp).is_ok() {
        return Ok(Json(found("address", text)));
    }
    let height = (text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u32>().ok())
        .flatten();
    let hash = Hash256::from_hex(&text).ok();
    if height.is_none() && hash.is_none() {
        return Ok(Json(none));
    }
    let result = app
        .api
        .chain()
        .read(move |v| {
            let chain = v.chain();
            if let Some(h) = height {
                if let Some(hash) = chain.hash_at(Height(h)) {
                    return found("block", hash.to_hex());
                }
            }
            if let Some(hash) = hash {
                if chain.entry(&hash).is_some() {
                    return found("block", hash.to_hex());
                }
                let in_pool = v.mempool().is_some_and(|m| m.contains(&hash));
                if in_pool || matches!(chain.store().tx_location(&hash), Ok(Some(_))) {
                    return found("tx", hash.to_hex());
                }
            }
            none
        })
        .await?;
    Ok(Json(result))
}
