//! The OpenAPI 3.1 document of the app listener's `/api` and `/s3/`
//! routes, served at `GET /api/openapi.json`.
//!
//! `openapi.json` is written by hand, next to this file, so it can say
//! what the code cannot (why a call fails, what a grant is);
//! `tests/it/openapi.rs` keeps it true by sending every documented
//! operation to the router and comparing the router's routes with the
//! document's.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The route serving [`DOCUMENT`].
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
