//! The public REST API as one whole: the routes of [`rest`](super::rest) (chain, mempool,
//! peers), [`series`](super::series) (the explorer's charts and panels) and
//! [`search`](super::search), [`pool`](super::pool) (the pool panel), and the one OpenAPI document that lists exactly them
//! (`GET /api/v1/openapi.json`).

use std::sync::Arc;

use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::app::App;
use super::{pool, rest, search, series};

/// Every public REST route: (path, handler).
fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    rest::table()
        .into_iter()
        .chain(series::table())
        .chain(search::table())
        .chain(pool::table())
        .collect()
}

/// Every public REST route and the OpenAPI document, with the state the handlers share.
pub fn routes() -> Router<Arc<App>> {
    table()
        .into_iter()
        .fold(Router::new(), |r, (path, handler)| r.route(path, handler))
        .route("/api/v1/openapi.json", get(openapi))
}

/// The whole REST document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = rest::ApiDoc::openapi();
    doc.merge(series::SeriesDoc::openapi());
    doc.merge(search::SearchDoc::openapi());
    doc.merge(pool::PoolDoc::openapi());
    doc
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc = document();
        let mut documented: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        let mut routed: Vec<&str> = table().into_iter().map(|(p, _)| p).collect();
        documented.sort_unstable();
        routed.sort_unstable();
        assert_eq!(documented, routed);
        let json = serde_json::to_value(&doc).expect("serializes");
        assert!(json["components"]["schemas"]["BlockView"].is_object(), "{json}");
        assert!(json["components"]["schemas"]["MiningInfo"].is_object(), "{json}");
    }
}
