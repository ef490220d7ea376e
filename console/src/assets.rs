//! The page: its HTML, CSS and JavaScript live in `console/assets/` and
//! are embedded at build time, so the console is one binary that downloads
//! nothing at run time and needs no build step for its page.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const CONSOLE_CSS: &str = include_str!("../assets/console.css");
const CONSOLE_JS: &str = include_str!("../assets/console.js");

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/`, `/console.css` and `/console.js`.
pub(crate) fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console.css",
            get(|| async { file("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route(
            "/console.js",
            get(|| async { file("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
}
