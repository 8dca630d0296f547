//! chute-axum against a real embedded Chute (fs store, S3 listener on a
//! free port) inside a test app router, called with `oneshot`.
//!
//! Modules:
//! - `extract`: the extractors accept good receipts and refuse tampered,
//!   expired, foreign and constraint-breaking ones with the right status;
//! - `router`: Chute's routes answer inside the app's router, grants mint;
//! - `promote`: promotion and reads from a verified receipt.

#![allow(clippy::unwrap_used)]

mod extract;
mod promote;
mod router;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chute_axum::{
    Chute, ChuteBuilder, Constraints, Receipt, ReceiptForm, ReceiptPolicy, ReceiptRejection, ReceiptVerifier,
    Receipts,
};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The grant secret of the test Chute.
pub const SECRET: &str = "t1:0123456789abcdef0123456789abcdef";

/// A running Chute over a temporary directory.
pub struct TestChute {
    /// The handle under test.
    pub chute: Chute,
    _dir: tempfile::TempDir,
}

/// Starts Chute with a grant secret, both listeners on free ports.
pub async fn start() -> TestChute {
    let dir = tempfile::tempdir().unwrap();
    let raw = chute_server::RawConfig {
        listen: Some("127.0.0.1:0".into()),
        s3_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        grant_secret: Some(SECRET.into()),
        // Only minted grants: development mode's open grant would let anyone upload.
        open_grants: Some(false),
        ..Default::default()
    };
    let chute = ChuteBuilder::from_raw(raw).unwrap().build().await.unwrap();
    TestChute { chute, _dir: dir }
}

#[derive(Clone)]
struct AppState {
    chute: Chute,
}

impl FromRef<AppState> for ReceiptVerifier {
    fn from_ref(s: &AppState) -> Self {
        s.chute.verifier()
    }
}

/// Images up to 1 KiB, in the field `avatar`.
pub struct Avatar;
impl ReceiptPolicy for Avatar {
    const FIELD: Option<&'static str> = Some("avatar");
    fn constraints() -> Constraints {
        Constraints::new().types(["image/*"]).max_size(1024)
    }
}

/// PDF or text documents in `docs`, granted below `docs/`.
pub struct Docs;
impl ReceiptPolicy for Docs {
    const FIELD: Option<&'static str> = Some("docs");
    fn constraints() -> Constraints {
        Constraints::new()
            .types(["application/pdf", "text/plain"])
            .prefix("docs")
    }
}

fn summary(r: &chute_axum::VerifiedReceipt) -> Value {
    json!({"key": r.key(), "size": r.size(), "type": r.content_type(), "sub": r.subject()})
}

/// The test app: a few receipt routes, with Chute's routes merged.
pub fn app(chute: &Chute) -> Router {
    Router::new()
        .route("/any", post(|r: Receipt| async move { Json(summary(&r)) }))
        .route(
            "/avatar",
            post(|r: Receipt<Avatar>| async move { Json(summary(&r)) }),
        )
        .route(
            "/docs",
            post(|r: Receipts<Docs>| async move { Json(r.iter().map(summary).collect::<Vec<_>>()) }),
        )
        .route(
            "/profile",
            post(|form: ReceiptForm| async move {
                // The session user would come from a cookie; here a field.
                let user = form.text("user").unwrap_or_default().to_owned();
                let avatar = form.receipt("avatar", &Constraints::new().subject(user))?;
                Ok::<_, ReceiptRejection>(Json(json!({"avatar": avatar.as_ref().map(summary)})))
            }),
        )
        .route(
            "/custom",
            post(|r: Result<Receipt, ReceiptRejection>| async move {
                match r {
                    Ok(r) => summary(&r).to_string().into_response(),
                    Err(e) => (StatusCode::IM_A_TEAPOT, format!("custom: {}", e.code)).into_response(),
                }
            }),
        )
        .route(
            "/promote",
            post(|State(s): State<AppState>, r: Receipt| async move {
                let user = r.subject().unwrap_or("nobody").to_owned();
                let promoted = s
                    .chute
                    .promote(&r, Some(&format!("docs/{user}/{{uuid}}{{ext}}")))
                    .await?;
                Ok::<_, chute_axum::ChuteError>(Json(promoted))
            }),
        )
        .with_state(AppState { chute: chute.clone() })
        .merge(chute.router())
}

/// Sends `req` to `app`; answers the status and the body (JSON, or the
/// text as a JSON string).
pub async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// A urlencoded form POST to `path`.
pub fn form(path: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(fields).unwrap();
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

/// A JSON POST to `path`.
pub fn json_post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A grant for `user`: documents and images below `docs/<user>`.
pub fn grant(chute: &Chute, user: &str) -> String {
    chute
        .mint(
            &chute
                .grant()
                .subject(user)
                .prefix(format!("docs/{user}"))
                .max_size(1 << 20),
        )
        .unwrap()
}

/// Uploads `bytes` as `name` through Chute's `PUT /api/stream/{name}`
/// under `grant`; answers the receipt.
pub async fn upload(app: &Router, grant: &str, name: &str, content_type: &str, bytes: &[u8]) -> String {
    let req = Request::put(format!("/api/stream/{name}"))
        .header(header::AUTHORIZATION, format!("Bearer {grant}"))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(Body::from(bytes.to_vec()))
        .unwrap();
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["files"][0]["receipt"].as_str().unwrap().to_owned()
}

/// The first bytes of a PNG (enough for type sniffing).
pub fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    b.extend_from_slice(&[0; 16]);
    b
}
