//! The app listener's router. This surface is small: a
//! placeholder page, `/healthz` (the process is up) and `/readyz` (the
//! store answers). The upload API, widget and tus mount here later.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use chute_core::BucketName;
use chute_store::fs::FsStore;

/// What the app's handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The embedded store.
    pub store: FsStore,
    /// The bucket uploads go to.
    pub bucket: BucketName,
    /// The S3 endpoint's public base URL, shown on the placeholder page.
    pub s3_url: String,
}

/// Builds the app router over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn index(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Chute</title>\
         <h1>Chute is running</h1>\
         <p>The embedded S3-compatible store listens at <code>{url}</code>, bucket <code>{bucket}</code>.</p>\
         <p>The upload widget and demo arrive with the upload API.</p></html>",
        url = html_escape(&state.s3_url),
        bucket = html_escape(state.bucket.as_str()),
    ))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.head_bucket(&state.bucket).await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store not ready: {e}")),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
