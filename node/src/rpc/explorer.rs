//! `GET /`: the explorer and mining dashboard every node serves — a page of vanilla ES
//! modules embedded in the binary (`node/assets/`), reading only the public REST API and
//! the event stream of this node. No CDN, no inline script or style: the
//! `Content-Security-Policy` allows this origin alone.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::app::App;

/// The page's policy: everything from this origin, nothing inline, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// One embedded file: URL name, content type, bytes.
pub type Asset = (&'static str, &'static str, &'static [u8]);

/// The node page's files.
pub const ASSETS: &[Asset] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/views.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/live.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/charts.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/format.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
    ),
];

/// The node page.
pub const INDEX: &[u8] = include_bytes!("../../assets/index.html");

/// `GET /` and `GET /assets/{name}`.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/", get(|| async { page(INDEX) })).route(
        "/assets/{name}",
        get(|Path(name): Path<String>| async move { asset(ASSETS, &name) }),
    )
}

/// The HTML page with its headers.
pub fn page(html: &'static [u8]) -> Response {
    with_headers(html, "text/html; charset=utf-8")
}

/// An embedded file by name, or a JSON 404.
pub fn asset(table: &[Asset], name: &str) -> Response {
    match table.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => with_headers(bytes, kind),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such asset"}))).into_response(),
    }
}

fn with_headers(bytes: &'static [u8], kind: &'static str) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // Revalidate every time: a rebuilt node serves its own page, never a cached older one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}
