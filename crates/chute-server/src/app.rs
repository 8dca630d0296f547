//! The app listener's router: the upload API (`/api`), tus (`/files/`),
//! health checks, and
//! the page at `/` (the demo in development, see `demo.rs`).
//! Browser CORS for the API is decided here, from the same origins the
//! store's CORS rule allows.

use crate::api;
use crate::companion;
use crate::grants::Grants;
use crate::lifecycle::Lifecycle;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chute_core::ObjectKey;
use chute_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What the app's handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The upload lifecycle (store, signer, tokens, hooks).
    pub lifecycle: Lifecycle,
    /// Where grants come from.
    pub grants: Arc<Grants>,
    /// Browser origins allowed to call the API.
    pub origins: Origins,
    /// The stream routes' settings and crash-recovery identity.
    pub stream: crate::stream::StreamState,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Exact origins (`https://app.example.com`); `*` allows any origin
    /// (without credentials).
    pub exact: Vec<String>,
    /// Whether any `http://localhost:*`, `127.0.0.1` or `[::1]` origin is
    /// allowed (development mode).
    pub any_loopback: bool,
}

impl Origins {
    /// Whether `origin` may call the API.
    pub fn allows(&self, origin: &str) -> bool {
        self.exact.iter().any(|o| o == origin || o == "*")
            || (self.any_loopback && is_loopback_origin(origin))
    }

    /// `layer` answering exactly these origins: any origin without
    /// credentials for `*` (a wildcard with credentials would let any
    /// site act with the user's session), otherwise the listed ones with
    /// credentials.
    pub fn allow_in(&self, layer: CorsLayer) -> CorsLayer {
        if self.exact.iter().any(|o| o == "*") {
            layer.allow_origin(AllowOrigin::any())
        } else {
            let allowed = self.clone();
            layer
                .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                    origin.to_str().is_ok_and(|o| allowed.allows(o))
                }))
                .allow_credentials(true)
        }
    }

    /// The same set as S3 CORS rule patterns (`http://localhost:*`).
    pub fn as_s3_patterns(&self) -> Vec<String> {
        let mut out = self.exact.clone();
        if self.any_loopback {
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                out.push(format!("http://{host}"));
                out.push(format!("http://{host}:*"));
            }
        }
        out
    }
}

/// `http://localhost[:port]`, `http://127.0.0.1[:port]` or `http://[::1][:port]`.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match rest.strip_prefix("[::1]") {
        Some(port) => return port.is_empty() || valid_port(port),
        None => rest,
    };
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    matches!(name, "localhost" | "127.0.0.1") && port.is_none_or(|p| valid_port(&format!(":{p}")))
}

fn valid_port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Builds the app router over `state`, with the tus endpoint's defaults.
pub fn app(state: AppState) -> Router {
    app_with(state, crate::tus::TusSettings::default())
}

/// Builds the app router over `state`, the tus endpoint (`/files/`) with
/// `tus` settings.
pub fn app_with(state: AppState, tus: crate::tus::TusSettings) -> Router {
    Router::new()
        .merge(crate::demo::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(api_with(state, tus))
}

/// The routes an app embedding Chute mounts in its own router: the
/// upload API (`/api`), the Companion routes (`/s3/`), tus (`/files/`)
/// and the widget (`/chute.js`); no page at `/` and no health checks,
/// which belong to the app.
pub fn api_with(state: AppState, tus: crate::tus::TusSettings) -> Router {
    let cors = cors_layer(&state.origins);
    // The JSON routes read small bodies whole: one that sends nothing for
    // `body_idle_timeout` is cut off (the tus and stream routes time
    // their bodies themselves).
    let idle = tower_http::timeout::RequestBodyTimeoutLayer::new(tus.body_idle_timeout);
    let files = crate::tus::routes(&state, tus);
    let api = api::routes()
        .merge(companion::routes())
        .layer(idle)
        .merge(crate::stream::routes())
        .merge(crate::openapi::routes())
        .layer(cors);
    Router::new()
        .merge(crate::widget::routes())
        .merge(api)
        .merge(files)
        .with_state(state)
}

fn cors_layer(origins: &Origins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    origins.allow_in(layer)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let probe = ObjectKey::parse(".chute/readyz").ok();
    let result = match &probe {
        Some(key) => state.lifecycle.store().head(key).await.map(|_| ()),
        None => Ok(()),
    };
    match result {
        Ok(()) | Err(StoreError::NoSuchKey { .. }) => (StatusCode::OK, "ready").into_response(),
        // 503 store_unavailable with Retry-After (507 when the disk is full).
        Err(e) => crate::lifecycle::ApiError::store("readiness probe", &e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "https://localhost:3000",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil:80",
            "http://localhost:80x",
            "http://[::1]evil",
            "null",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
