//! Uploads whose bytes stream through the server (DESIGN.md §7):
//! `POST /api/stream` (a `multipart/form-data` form with files and plain
//! fields) and `PUT /api/stream/{filename}` (a raw body, the
//! ajax-uploader style).
//!
//! Both resolve a grant before reading the body, begin each file with
//! [`Lifecycle::begin_server_upload`](crate::lifecycle::Lifecycle::begin_server_upload),
//! stream it into the store with bounded memory ([`write`]), and finish
//! it with a receipt. Limits (size, type by magic bytes, field count and
//! size, files per form) are enforced while the body streams. A failure
//! anywhere leaves nothing: multipart uploads are aborted, stored objects
//! deleted, `max_files` uses given back ([`pending`]); a crash is cleaned
//! up at the next start ([`recovery`]). Grants, receipts and the checks
//! on stored objects are the lifecycle's; this module owns only the
//! streaming.

mod form;
mod pending;
mod raw;
pub mod recovery;
mod settings;
mod write;

pub use recovery::Instance;
pub use settings::{StreamSettings, part_size_for};

use crate::app::AppState;
use crate::lifecycle::{ApiError, Completed};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{post, put};
// One bounded drain of a refused body for every route (the form guard's).
use chute_s3::post_object::drain;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the stream routes share: their settings, the process-wide
/// memory budget, and this process's identity for crash recovery.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Limits and tunables.
    pub settings: StreamSettings,
    /// This process, as named in the store's in-progress markers.
    pub instance: Arc<Instance>,
    /// The part buffers of all requests, in MiB permits
    /// ([`StreamSettings::memory_mib`]).
    pub memory: Arc<tokio::sync::Semaphore>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new(StreamSettings::default(), Instance::default())
    }
}

impl StreamState {
    /// The stream state of a server run with `config`: takes the instance
    /// id in the data directory and undoes what a crashed predecessor
    /// left ([`Instance::recover`]) before any request is served.
    pub async fn start(config: &crate::Config, lifecycle: &crate::lifecycle::Lifecycle) -> Self {
        let instance = Instance::open(&config.data_dir);
        match instance.recover(lifecycle).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "undid streamed uploads a stopped process left"),
            Err(e) => {
                tracing::warn!(error = %e, "could not look for streamed uploads a stopped process left")
            }
        }
        let instance = Arc::new(instance);
        if let Some(every) = config.reap_interval {
            tokio::spawn(reap_stale_markers(
                lifecycle.clone(),
                Arc::clone(&instance),
                every,
            ));
        }
        Self {
            memory: Arc::new(tokio::sync::Semaphore::new(config.stream.memory_mib)),
            settings: config.stream.clone(),
            instance,
        }
    }

    /// Stream state with `settings` under `instance`.
    pub fn new(settings: StreamSettings, instance: Instance) -> Self {
        Self {
            memory: Arc::new(tokio::sync::Semaphore::new(settings.memory_mib)),
            settings,
            instance: Arc::new(instance),
        }
    }
}

/// Every `every`, undoes uploads whose markers outlived `upload_ttl`.
/// Ends with the runtime (the server's process).
async fn reap_stale_markers(
    lifecycle: crate::lifecycle::Lifecycle,
    instance: Arc<Instance>,
    every: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match instance.reap_stale(&lifecycle).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                uploads = n,
                "undid streamed uploads whose process never came back"
            ),
            Err(e) => tracing::warn!(error = %e, "could not look for stale streamed uploads"),
        }
    }
}

/// The `/api/stream` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/stream", post(form::post_form))
        .route("/api/stream/{filename}", put(raw::put_raw))
}

/// One stored file in a stream response (s3chunkuploader's names).
#[derive(Debug, Clone, Serialize)]
pub struct StreamedFile {
    /// The form field the file came in (`file` for a raw body).
    pub field: String,
    /// The file name as the client sent it.
    pub original_name: String,
    /// Bytes stored.
    pub file_size: u64,
    /// The receipt JWT.
    pub receipt: String,
    /// The receipt's claims.
    pub object: chute_core::ReceiptClaims,
}

/// The answer to a stream upload: a receipt per file and the form's
/// plain fields (a name sent more than once maps to an array).
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamResponse {
    /// The stored files, in the order they were sent.
    pub files: Vec<StreamedFile>,
    /// The plain (non-file) fields.
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl StreamedFile {
    fn new(field: String, original_name: String, file_size: u64, done: Completed) -> Self {
        Self {
            field,
            original_name,
            file_size,
            receipt: done.receipt,
            object: done.object,
        }
    }
}

/// The error for a request body that failed while being read.
fn body_failed(err: &(dyn std::error::Error + 'static)) -> ApiError {
    if chute_s3::error::is_body_timeout(err) {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body was too slow ({err}): it paused longer than body_idle_timeout_seconds \
                 or averaged under 1 KiB/s; send it again at a steady pace"
            ),
        )
    } else {
        ApiError::bad_request(
            "body_incomplete",
            format!("the request body ended early or could not be read: {err}"),
        )
    }
}

/// The answer `err` to a request refused before its body was read. A
/// client that sent `Expect: 100-continue` waits for our word and has
/// sent nothing: reading would invite the body. Any other client is
/// sending already: a bounded remainder is read, as in [`drain`].
async fn refuse_unread(headers: &axum::http::HeaderMap, body: axum::body::Body, err: ApiError) -> ApiError {
    let expects = headers
        .get(axum::http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !expects {
        let mut data = body.into_data_stream();
        drain(&mut data).await;
    }
    err
}
