//! The dashboard: `GET /_mock/ui`, one page that shows what a test did to
//! the clouds (resources and their states, the request journal, fault
//! rules, configuration), updated live from `GET /_mock/events`.
//!
//! The page is plain HTML, CSS and JavaScript modules embedded in the
//! binary (no build step, nothing fetched from elsewhere: its
//! Content-Security-Policy allows this origin only). It reads the same
//! JSON endpoints as any other client of the control API; it is a client,
//! not a second API.

pub mod events;
pub mod feed;

use std::sync::Arc;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::Shared;

/// The page's Content-Security-Policy: scripts, styles, images and
/// connections from this origin only; no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One embedded file: path under `/_mock/ui/`, content type, bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $path)),
        }
    };
}

/// Everything the page loads.
const ASSETS: &[Asset] = &[
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/errors.js", JS),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/live.js", JS),
    asset!("js/token.js", JS),
    asset!("js/resources.js", JS),
    asset!("js/journal.js", JS),
    asset!("js/faults.js", JS),
    asset!("js/fault_form.js", JS),
    asset!("js/config.js", JS),
];

const INDEX: &[u8] = include_bytes!("assets/index.html");

/// The dashboard's routes: the page, its files and the event stream.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_mock/ui", get(page))
        .route("/_mock/ui/{*file}", get(file))
        .route("/_mock/events", get(events::events))
        .with_state(shared)
}

async fn page() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

async fn file(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == file) {
        Some(a) => serve(a.content_type, a.body),
        None => crate::control::json_error(404, "no such dashboard file"),
    }
}

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, content_type),
            (
                http::header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY,
            ),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::X_FRAME_OPTIONS, "DENY"),
            (http::header::REFERRER_POLICY, "no-referrer"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_or_a_module_names_is_embedded() {
        let index = std::str::from_utf8(INDEX).unwrap();
        let mut named: Vec<String> = Vec::new();
        for part in index.split("/_mock/ui/").skip(1) {
            named.push(part.split('"').next().unwrap().to_string());
        }
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for part in text.split("from './").skip(1) {
                named.push(format!("js/{}", part.split('\'').next().unwrap()));
            }
        }
        assert!(named.len() > 5, "{named:?}");
        for n in named {
            assert!(ASSETS.iter().any(|a| a.path == n), "{n} is not embedded");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_foreign_source() {
        let text_assets = ASSETS.iter().filter(|a| !a.path.ends_with(".svg"));
        for body in text_assets.map(|a| a.body).chain([INDEX]) {
            let text = std::str::from_utf8(body).unwrap();
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("<script>"), "inline scripts are refused by the CSP");
        }
    }
}
