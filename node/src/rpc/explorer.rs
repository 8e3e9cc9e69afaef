//! `GET /` and `GET /assets/{name}`: the explorer and mining dashboard every node serves —
//! vanilla ES modules embedded in the binary ([`crate::common::web`]), reading only this
//! node's public REST API and its event stream.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

use super::app::App;
use crate::common::web;

/// The page and its files.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { web::page(web::EXPLORER_HTML) }))
        .route(
            "/assets/{name}",
            get(|Path(name): Path<String>| async move { web::asset(web::EXPLORER, &name) }),
        )
}
