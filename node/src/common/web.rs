//! The embedded web pages' files and the headers they are served with — shared by the
//! node's explorer (`GET /` of every node) and the devnet supervisor's page. The files live
//! in `node/assets/` and are compiled into the binary: it works offline, and the
//! `Content-Security-Policy` allows this origin alone (no CDN, nothing inline).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The pages' policy: everything from this origin, nothing inline, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// One embedded file: URL name, content type, bytes.
pub type Asset = (&'static str, &'static str, &'static [u8]);

const JS: &str = "text/javascript; charset=utf-8";

/// Files both pages use.
pub const SHARED: &[Asset] = &[
    ("format.js", JS, include_bytes!("../../assets/format.js")),
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

/// The node page's own files.
pub const EXPLORER: &[Asset] = &[
    ("app.js", JS, include_bytes!("../../assets/app.js")),
    ("views.js", JS, include_bytes!("../../assets/views.js")),
    ("live.js", JS, include_bytes!("../../assets/live.js")),
    ("charts.js", JS, include_bytes!("../../assets/charts.js")),
];

/// The node page.
pub const EXPLORER_HTML: &[u8] = include_bytes!("../../assets/index.html");

/// The devnet page's own files.
pub const DEVNET: &[Asset] = &[("devnet.js", JS, include_bytes!("../../assets/devnet.js"))];

/// The devnet page.
pub const DEVNET_HTML: &[u8] = include_bytes!("../../assets/devnet.html");

/// An HTML page with its headers.
pub fn page(html: &'static [u8]) -> Response {
    with_headers(html, "text/html; charset=utf-8")
}

/// A file of `own` or [`SHARED`] by name, or a JSON 404.
pub fn asset(own: &[Asset], name: &str) -> Response {
    match own.iter().chain(SHARED).find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => with_headers(bytes, kind),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such asset"}))).into_response(),
    }
}

fn with_headers(bytes: &'static [u8], kind: &'static str) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // Revalidate every time: a rebuilt binary serves its own page, never a cached older one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_reference_only_embedded_files() {
        for (html, own) in [(EXPLORER_HTML, EXPLORER), (DEVNET_HTML, DEVNET)] {
            let text = std::str::from_utf8(html).expect("utf-8");
            for part in text.split("/assets/").skip(1) {
                let name = part.split('"').next().unwrap_or_default();
                assert!(
                    own.iter().chain(SHARED).any(|(n, _, _)| *n == name),
                    "{name} is referenced but not embedded"
                );
            }
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no outside URL"
            );
            assert!(!text.contains("<script>") && !text.contains("style="), "nothing inline");
        }
        for (name, _, bytes) in EXPLORER.iter().chain(DEVNET).chain(SHARED) {
            let text = String::from_utf8_lossy(bytes);
            // ES module imports must name embedded files.
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let file = line
                    .rsplit("'./")
                    .next()
                    .and_then(|s| s.split('\'').next())
                    .unwrap_or_default();
                assert!(
                    EXPLORER.iter().chain(DEVNET).chain(SHARED).any(|(n, _, _)| *n == file),
                    "{name} imports {file}, which is not embedded"
                );
            }
        }
    }

    #[test]
    fn assets_carry_the_policy_and_unknown_ones_are_404() {
        let r = asset(EXPLORER, "app.js");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/javascript"));
        assert_eq!(asset(EXPLORER, "devnet.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset(DEVNET, "../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
