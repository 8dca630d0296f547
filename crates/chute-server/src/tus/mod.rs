//! tus 1.0 at `/files/` (DESIGN.md §4): the HTTP side of resumable
//! uploads. Each request is parsed into an [`Endpoint`], checked for
//! `Tus-Resumable`, then dispatched: creation and concatenation in
//! `create.rs`, HEAD/PATCH/DELETE and completion in `upload.rs`. Upload
//! state, parts and locks come from `chute-tus` (the lock is a lease in
//! the store, so instances sharing a store serialise their writers too);
//! grants, receipts and hooks
//! from the [`Lifecycle`](crate::lifecycle::Lifecycle), exactly as for
//! direct uploads.
//!
//! The upload URL is the capability: it carries a random 128-bit id, and
//! the grant is checked once, at creation. Errors are plain text with the
//! status codes the tus specification gives.

mod create;
mod reap;
mod upload;

pub use reap::{TusReaped, reap_expired};

use crate::app::{AppState, Origins};
use crate::lifecycle::{ApiError, ServerUpload};
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chute_tus::headers::{TUS_VERSION, TusChecksumAlgorithm};
use chute_tus::{HeaderError, LockError, StoreLeases, TusStore, UploadGuard, UploadInfo, UploadLocks};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::CorsLayer;

/// The slowest average a PATCH body may keep up over each
/// `body_idle_timeout` window spent waiting for the client before it is
/// cut off (its bytes are kept); see [`crate::pace`].
pub use crate::pace::MIN_BODY_RATE;

/// Where tus uploads are created; an upload lives at `<this><id>`.
pub const BASE_PATH: &str = "/files/";

/// The receipt of a completed upload, on the PATCH that completes it and
/// on every later HEAD.
pub const RECEIPT_HEADER: &str = "chute-receipt";

/// Tunables of the tus endpoint.
#[derive(Debug, Clone)]
pub struct TusSettings {
    /// The smallest multipart part (raised for large uploads).
    pub part_size: u64,
    /// Parts of one PATCH uploading at once (memory: about this many
    /// parts plus one per PATCH).
    pub parts_in_flight: usize,
    /// How long a request body may send nothing before it is cut off.
    pub body_idle_timeout: Duration,
    /// How long a PATCH waits for another one on the same upload before
    /// it is refused with 423.
    pub lock_wait: Duration,
    /// The store lease serialising instances on one upload (renewed every
    /// third of it; a crashed holder blocks the upload for two).
    pub lock_lease: Duration,
}

impl Default for TusSettings {
    fn default() -> Self {
        Self {
            part_size: chute_tus::DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            body_idle_timeout: Duration::from_secs(60),
            lock_wait: Duration::from_secs(10),
            lock_lease: chute_tus::lease::DEFAULT_LEASE,
        }
    }
}

/// Parts of one PATCH uploading at once unless configured.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 4;

/// What the tus handlers share besides [`AppState`].
#[derive(Debug, Clone)]
pub struct Tus {
    store: TusStore,
    locks: UploadLocks,
    settings: TusSettings,
}

/// The `/files/` routes with their CORS rules.
pub fn routes(state: &AppState, settings: TusSettings) -> Router<AppState> {
    let store = state.lifecycle.store().clone();
    let tus = Arc::new(Tus {
        store: TusStore::new(store.clone()),
        locks: UploadLocks::shared(StoreLeases::new(store, settings.lock_lease)),
        settings,
    });
    Router::new()
        .route("/files", any(collection))
        .route("/files/", any(collection))
        .route("/files/{id}", any(resource))
        .route("/files/{id}/{*rest}", any(no_such_upload))
        .layer(Extension(tus))
        .layer(axum::middleware::map_response(with_tus_headers))
        .layer(cors_layer(&state.origins))
        .layer(axum::middleware::from_fn_with_state(state.clone(), discovery))
}

/// `OPTIONS` without `Access-Control-Request-Method` is tus discovery, not
/// a CORS preflight (which the CORS layer would otherwise answer).
async fn discovery(State(state): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    if req.method() == Method::OPTIONS && !req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return options(&state);
    }
    next.run(req).await
}

/// A tus request, by what it acts on.
#[derive(Debug)]
enum Endpoint {
    Options,
    Create,
    Head(String),
    Patch(String),
    Delete(String),
}

/// A refused tus request: a status and a plain-text reason (`code:
/// message` for the API's errors, so the stable code comes first).
#[derive(Debug)]
pub(crate) struct TusError {
    status: StatusCode,
    message: String,
    /// Extra headers (`Tus-Version` on 412, `Upload-Offset` on 409).
    headers: Vec<(HeaderName, String)>,
}

impl TusError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((HeaderName::from_static(name), value));
        self
    }

    fn store(context: &str, e: &chute_store::StoreError) -> Self {
        Self::from(ApiError::store(context, e))
    }
}

impl Tus {
    /// Takes upload `id`'s lock (this process, then the store lease):
    /// 423 with `busy` when another request holds it for the whole wait.
    /// 404 for what cannot be an upload id (no lease is written for it).
    async fn lock(&self, id: &str, busy: &str) -> Result<UploadGuard, TusError> {
        if !chute_tus::headers::is_upload_id(id) {
            return Err(TusError::new(StatusCode::NOT_FOUND, "no such upload"));
        }
        self.locks
            .lock(id, self.settings.lock_wait)
            .await
            .map_err(|e| match e {
                LockError::Locked => TusError::new(StatusCode::LOCKED, busy),
                LockError::Store(e) => TusError::store("taking the upload's lock", &e),
            })
    }
}

/// `Ok` while every guard still holds its upload; 503 once a lease ran
/// out (another instance may write the upload now): call before each
/// commit point.
fn held(guards: &[UploadGuard]) -> Result<(), TusError> {
    for guard in guards {
        guard.check().map_err(lease_lost)?;
    }
    Ok(())
}

fn lease_lost(e: chute_tus::LeaseLost) -> TusError {
    TusError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

impl From<ApiError> for TusError {
    fn from(e: ApiError) -> Self {
        let unavailable = e.status == StatusCode::SERVICE_UNAVAILABLE;
        let err = Self::new(e.status, format!("{}: {}", e.code, e.message));
        // As the API's 503: the store is down, try again in a moment.
        if unavailable {
            err.header("retry-after", "5".into())
        } else {
            err
        }
    }
}

impl From<HeaderError> for TusError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::UnsupportedVersion => Self::new(StatusCode::PRECONDITION_FAILED, e.to_string())
                .header("tus-version", TUS_VERSION.into()),
            HeaderError::MetadataTooLong => Self::new(StatusCode::BAD_REQUEST, e.to_string()),
            _ => Self::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

impl IntoResponse for TusError {
    fn into_response(self) -> Response {
        let mut res = (self.status, format!("{}\n", self.message)).into_response();
        let h = res.headers_mut();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::try_from(value) {
                h.insert(name, v);
            }
        }
        tus_headers(h);
        res
    }
}

/// `Tus-Resumable` and `Cache-Control: no-store` on every answer.
fn tus_headers(h: &mut HeaderMap) {
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An answer with `status` and `headers`, no body.
fn reply(status: StatusCode, headers: Vec<(&'static str, String)>) -> Response {
    let mut res = status.into_response();
    let h = res.headers_mut();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::try_from(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    tus_headers(h);
    res
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The method a request means: `X-HTTP-Method-Override` on a POST wins.
fn effective_method(req: &Request) -> Method {
    if req.method() == Method::POST
        && let Some(m) = header_str(req.headers(), "x-http-method-override")
        && let Ok(m) = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
    {
        return m;
    }
    req.method().clone()
}

fn endpoint(method: &Method, id: Option<String>) -> Result<Endpoint, TusError> {
    Ok(match (method.as_str(), id) {
        ("OPTIONS", _) => Endpoint::Options,
        ("POST", None) => Endpoint::Create,
        ("HEAD" | "GET", Some(id)) => Endpoint::Head(id),
        ("PATCH", Some(id)) => Endpoint::Patch(id),
        ("DELETE", Some(id)) => Endpoint::Delete(id),
        _ => {
            return Err(TusError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here",
            ));
        }
    })
}

async fn collection(
    State(state): State<AppState>,
    Extension(tus): Extension<Arc<Tus>>,
    req: Request,
) -> Response {
    dispatch(&state, &tus, None, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn resource(
    State(state): State<AppState>,
    Extension(tus): Extension<Arc<Tus>>,
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    let Ok(axum::extract::Path(id)) = id else {
        // Not a decodable id (bad percent-encoding): no such upload.
        return no_such_upload().await;
    };
    dispatch(&state, &tus, Some(id), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Below `/files/<id>` there is nothing.
async fn no_such_upload() -> Response {
    TusError::new(StatusCode::NOT_FOUND, "no such upload").into_response()
}

/// Every answer under `/files/`, including those no handler made (CORS
/// preflights, the router's own refusals), says which tus it speaks.
async fn with_tus_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    if !h.contains_key("tus-resumable") {
        h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    }
    res
}

async fn dispatch(
    state: &AppState,
    tus: &Tus,
    id: Option<String>,
    req: Request,
) -> Result<Response, TusError> {
    let method = effective_method(&req);
    let endpoint = endpoint(&method, id)?;
    if matches!(endpoint, Endpoint::Options) {
        return Ok(options(state));
    }
    chute_tus::headers::check_resumable(header_str(req.headers(), "tus-resumable"))?;
    let (parts, body) = req.into_parts();
    let body = Body::new(crate::pace::PacedBody::new(
        body,
        tus.settings.body_idle_timeout,
        MIN_BODY_RATE,
    ));
    match endpoint {
        Endpoint::Options => Ok(options(state)),
        Endpoint::Create => create::create(state, tus, parts, body).await,
        Endpoint::Head(id) => upload::head(state, tus, &id, method == Method::GET).await,
        Endpoint::Patch(id) => upload::patch(state, tus, &id, &parts.headers, body).await,
        Endpoint::Delete(id) => upload::delete(state, tus, &id).await,
    }
}

/// A request body (paced by [`crate::pace::PacedBody`] in `dispatch`:
/// it fails once its client stalls or trickles) as a stream of chunks.
fn body_stream(
    body: Body,
) -> impl futures::Stream<Item = Result<bytes::Bytes, String>> + Send + Unpin + use<> {
    use futures::StreamExt as _;
    body.into_data_stream()
        .map(|item| item.map_err(|e| e.to_string()))
}

/// What this server offers: version, size limit, extensions (from the
/// store's capabilities) and checksum algorithms.
fn options(state: &AppState) -> Response {
    let store = state.lifecycle.store();
    reply(
        StatusCode::NO_CONTENT,
        vec![
            ("tus-version", TUS_VERSION.into()),
            (
                "tus-max-size",
                state.lifecycle.settings().max_object_size.to_string(),
            ),
            (
                "tus-extension",
                chute_tus::extensions(store.capabilities()).join(","),
            ),
            ("tus-checksum-algorithm", TusChecksumAlgorithm::header_value()),
        ],
    )
}

/// `Upload-Expires` as tus wants it (RFC 7231 date).
fn http_date(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// The server's description of an upload, kept in its tus info.
fn ticket(info: &UploadInfo) -> Result<ServerUpload, TusError> {
    serde_json::from_value(info.ticket.clone()).map_err(|e| {
        tracing::warn!(upload = %info.id, error = %e, "tus info holds an unreadable ticket");
        TusError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload's state is unreadable",
        )
    })
}

fn expired(info: &UploadInfo) -> bool {
    time::OffsetDateTime::now_utc().unix_timestamp() > info.expires_at
}

/// Browser CORS for `/files/`: the API's origins, the tus request headers
/// and every tus response header exposed.
fn cors_layer(origins: &Origins) -> CorsLayer {
    let request_headers = [
        "authorization",
        "content-type",
        "tus-resumable",
        "upload-length",
        "upload-offset",
        "upload-metadata",
        "upload-defer-length",
        "upload-concat",
        "upload-checksum",
        "x-http-method-override",
        "x-requested-with",
    ];
    let exposed = [
        "location",
        "upload-offset",
        "upload-length",
        "upload-expires",
        "upload-metadata",
        "upload-defer-length",
        "upload-concat",
        "tus-resumable",
        "tus-version",
        "tus-max-size",
        "tus-extension",
        "tus-checksum-algorithm",
        RECEIPT_HEADER,
    ];
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(request_headers.map(HeaderName::from_static))
        .expose_headers(exposed.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600));
    origins.allow_in(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_is_an_http_date() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_445_412_480), "Wed, 21 Oct 2015 07:28:00 GMT");
    }

    #[test]
    fn endpoints() {
        assert!(matches!(endpoint(&Method::POST, None), Ok(Endpoint::Create)));
        assert!(matches!(
            endpoint(&Method::PATCH, Some("a".into())),
            Ok(Endpoint::Patch(_))
        ));
        assert!(endpoint(&Method::PATCH, None).is_err());
        assert!(endpoint(&Method::POST, Some("a".into())).is_err());
    }
}
