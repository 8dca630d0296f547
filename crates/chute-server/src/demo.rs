//! The page at `/` and its one helper endpoint.
//!
//! In development mode `/` is the demo page (`assets/demo.html`, embedded):
//! a form whose file input the widget (`/chute.js`) upgrades, a drop zone,
//! per-file progress and cancel buttons, receipts, thumbnails and links to
//! the stored objects.
//! The links come from `GET /api/objects/link`, which presigns a GET of a
//! receipt's object; it answers only in development, because a receipt is
//! handed to apps and may be logged, and in production nobody but the app
//! should turn it into read access. In production `/` is a short page that
//! says where the API is.
//!
//! Development mode is read from the router state: it is the mode whose
//! [`Origins`](crate::Origins) trust every loopback origin.

use crate::app::AppState;
use crate::lifecycle::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use chute_core::ObjectKey;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The demo page; `{{endpoint}}` and `{{bucket}}` are filled in, escaped.
const DEMO_PAGE: &str = include_str!("../assets/demo.html");

/// How long an object link stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// `GET /` and `GET /api/objects/link`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/api/objects/link", get(object_link))
}

/// Whether the app runs in development mode (see the module docs).
fn development(state: &AppState) -> bool {
    state.origins.any_loopback
}

async fn index(State(state): State<AppState>) -> Html<String> {
    let signer = state.lifecycle.signer();
    let endpoint = html_escape(&signer.endpoint);
    let bucket = html_escape(signer.bucket.as_str());
    if development(&state) {
        return Html(
            DEMO_PAGE
                .replace("{{endpoint}}", &endpoint)
                .replace("{{bucket}}", &bucket),
        );
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Chute</title>\
         <h1>Chute is running</h1>\
         <p>The store for browser uploads is <code>{endpoint}</code>, bucket <code>{bucket}</code>.</p>\
         <p>Create uploads with <code>POST /api/uploads</code>; the API is described at \
         <a href=\"/api/openapi.json\"><code>/api/openapi.json</code></a>, the widget is \
         <code>/chute.js</code>.</p></html>"
    ))
}

/// The query of `GET /api/objects/link`.
#[derive(Debug, Deserialize)]
struct LinkQuery {
    /// A receipt from `POST /api/uploads/{id}/complete`.
    receipt: Option<String>,
}

/// A presigned GET of a receipt's object.
#[derive(Debug, Serialize)]
struct ObjectLink {
    /// The presigned URL (works without credentials until `expires_at`).
    url: String,
    /// When the URL stops working (RFC 3339).
    expires_at: String,
}

async fn object_link(
    State(state): State<AppState>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Json<ObjectLink>, ApiError> {
    if !development(&state) {
        return Err(ApiError::not_found(
            "not_found",
            "object links are served in development mode only",
        ));
    }
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let receipt = query
        .receipt
        .ok_or_else(|| ApiError::bad_request("missing_receipt", "pass the receipt as ?receipt="))?;
    let claims = state.lifecycle.verify_receipt(&receipt)?;
    let signer = state.lifecycle.signer();
    if claims.bucket != signer.bucket.as_str() {
        return Err(ApiError::not_found(
            "other_bucket",
            "the receipt names another bucket than this server's",
        ));
    }
    // The receipt is signed, so its key was valid when issued; parsing
    // keeps that a checked fact rather than an assumption.
    let key = ObjectKey::parse(&claims.key)
        .map_err(|e| ApiError::bad_request("bad_key", format!("the receipt's key: {e}")))?;
    let now = OffsetDateTime::now_utc();
    let get = signer.get(&key, LINK_TTL, now).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sign_error",
            format!("cannot presign the link: {e}"),
        )
    })?;
    let expires_at = (now + LINK_TTL).format(&Rfc3339).unwrap_or_default();
    Ok(Json(ObjectLink {
        url: get.url,
        expires_at,
    }))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_its_placeholders_and_no_external_resources() {
        assert!(DEMO_PAGE.contains("{{endpoint}}") && DEMO_PAGE.contains("{{bucket}}"));
        assert!(DEMO_PAGE.contains("src=\"/chute.js\""));
        for external in [
            "http://",
            "https://",
            "//cdn",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
        ] {
            assert!(!DEMO_PAGE.contains(external), "demo.html uses {external}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
