//! [`Chute`]: Chute as a library inside an axum app. [`ChuteBuilder`]
//! opens the store from a [`Config`], starts the embedded S3 listener
//! (the store browsers upload to) when the embedded store is used, and
//! hands back the router to merge, the verifier for the extractors, grant
//! minting, promotion, reads and image derivatives.

use crate::grant::GrantBuilder;
use crate::verify::{ReceiptVerifier, VerifiedReceipt};
use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chute_core::{KeyError, Keyring, ObjectKey, TokenError};
use chute_server::derivatives::manifest::{Entry, Manifest, Status};
use chute_server::lifecycle::{ApiError, Lifecycle, PromoteRequest, Promoted};
use chute_server::{Config, ConfigError, Embedded, RawConfig, ServeError};
use chute_store::{GetResult, StoreError};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// Why Chute could not start, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ChuteError {
    /// The settings are invalid.
    #[error("invalid Chute setting: {0}")]
    Config(#[from] ConfigError),
    /// The store or the S3 listener could not be opened.
    #[error(transparent)]
    Start(#[from] ServeError),
    /// Grants cannot be minted without a grant secret.
    #[error(
        "no grant secret is configured (grant_secret, CHUTE_GRANT_SECRET); Chute could not verify the grants"
    )]
    NoGrantSecret,
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Token(#[from] TokenError),
    /// A key that is not a valid object key.
    #[error("bad object key: {0}")]
    Key(#[from] KeyError),
    /// The lifecycle refused (promotion).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// A URL could not be presigned.
    #[error("cannot presign a URL: {0}")]
    Sign(#[from] chute_core::SignError),
}

impl IntoResponse for ChuteError {
    /// Chute's JSON error shape; details of store and internal failures
    /// go to the log, not to the client.
    fn into_response(self) -> Response {
        let api = match self {
            Self::Api(e) => e,
            Self::Store(StoreError::NoSuchKey { .. }) => {
                ApiError::not_found("no_such_object", "no object lives at that key")
            }
            Self::Store(e) => ApiError::store("reading the object", &e),
            Self::Key(e) => ApiError::bad_request("bad_key", e.to_string()),
            // Settings, signing, presigning: the server's business; the
            // details (setting names, paths) go to the log only.
            other => {
                tracing::error!(error = %other, "chute operation failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not do this; its log says why",
                )
            }
        };
        api.into_response()
    }
}

/// Builds a [`Chute`] from settings.
#[derive(Debug)]
pub struct ChuteBuilder {
    config: Config,
}

impl ChuteBuilder {
    /// From validated settings (see `chute_server::Config`; `listen` is
    /// ignored: the app binds its own listener). Development mode also
    /// accepts uploads with no grant at all unless `open_grants` is off:
    /// turn it off when the app mints grants.
    pub fn from_config(config: Config) -> Self {
        Self { config }
    }

    /// From raw settings, as `chute.toml` or `CHUTE_*` would give them.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ChuteError> {
        Ok(Self::from_config(Config::try_from(raw)?))
    }

    /// Opens the store, binds and starts the embedded S3 listener (for the
    /// embedded store), and builds the router.
    pub async fn build(self) -> Result<Chute, ChuteError> {
        let audience = self.config.grant_audience.clone();
        let embedded = chute_server::embed(self.config).await?;
        let verifier = ReceiptVerifier::new(embedded.lifecycle.tokens().clone());
        Ok(Chute {
            inner: Arc::new(Inner {
                router: embedded.router.clone(),
                lifecycle: embedded.lifecycle.clone(),
                verifier,
                grant_keys: embedded.grant_keys.clone(),
                audience,
                s3_addr: embedded.s3_addr,
                embedded: Mutex::new(Some(embedded)),
            }),
        })
    }
}

/// Chute inside the app: cheap to clone; put it in the app's state.
/// Dropping the last clone (or [`Chute::shutdown`]) stops the embedded S3
/// listener.
#[derive(Debug, Clone)]
pub struct Chute {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    router: Router,
    lifecycle: Lifecycle,
    verifier: ReceiptVerifier,
    grant_keys: Option<Keyring>,
    audience: String,
    s3_addr: Option<SocketAddr>,
    embedded: Mutex<Option<Embedded>>,
}

impl Chute {
    /// Chute's routes (`/api/...`, `/s3/...`, `/files/...`, `/chute.js`)
    /// for the app's router: `app.merge(chute.router())`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.inner.router.clone().with_state(())
    }

    /// The receipt verifier (signature, audience, expiry) over Chute's keys.
    pub fn verifier(&self) -> ReceiptVerifier {
        self.inner.verifier.clone()
    }

    /// The upload lifecycle, for what this crate does not wrap.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// Where the embedded S3 store listens (`None` with an S3 backend).
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.inner.s3_addr
    }

    /// A grant builder for Chute's grant audience.
    pub fn grant(&self) -> GrantBuilder {
        GrantBuilder::new().audience(self.inner.audience.clone())
    }

    /// Signs `grant` with the grant secret; the JWT goes to the page
    /// (`data-grant`).
    pub fn mint(&self, grant: &GrantBuilder) -> Result<String, ChuteError> {
        let keys = self.inner.grant_keys.as_ref().ok_or(ChuteError::NoGrantSecret)?;
        Ok(grant.sign(keys)?)
    }

    /// Copies the receipt's object to its final key (server-side copy; the
    /// temporary object is deleted). `template` names the key, for example
    /// `avatars/alice/{uuid}{ext}`; the grant decides whether it may.
    /// Promoting twice lands on the same key.
    pub async fn promote(
        &self,
        receipt: &VerifiedReceipt,
        template: Option<&str>,
    ) -> Result<Promoted, ChuteError> {
        Ok(self
            .inner
            .lifecycle
            .promote(&PromoteRequest {
                receipt: receipt.token.clone(),
                template: template.map(str::to_owned),
            })
            .await?)
    }

    /// Reads the object at `key` (a promoted key, or a receipt's `key()`).
    pub async fn read(&self, key: &str) -> Result<GetResult, ChuteError> {
        let key = ObjectKey::parse(key)?;
        Ok(self.inner.lifecycle.store().get(&key, None).await?)
    }

    /// A response streaming the object at `key` with its type and length;
    /// `download` adds `Content-Disposition: attachment` with the key's
    /// file name. Types a browser would run script in (HTML, SVG, XML,
    /// anything not a raster image, plain text, PDF, audio or video) are
    /// always attachments, and every response but a PDF carries
    /// `Content-Security-Policy: sandbox`: the bytes are the users', the
    /// origin is the app's. No authorisation: check the key is the
    /// session user's first.
    pub async fn download(&self, key: &str, download: bool) -> Result<Response, ChuteError> {
        let got = self.read(key).await?;
        let content_type = got
            .meta
            .headers
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let mut res = Response::new(Body::from_stream(got.body));
        let headers = res.headers_mut();
        let value = |s: &str| header::HeaderValue::from_str(s).ok();
        if let Some(v) = value(&content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(got.meta.size));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        // Chromium's PDF viewer does not load in a sandboxed document;
        // PDF scripts run in the viewer, not in the app's origin.
        if crate::extract::essence(&content_type) != "application/pdf" {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("sandbox"),
            );
        }
        if download || !shows_inline(&content_type) {
            // Sanitised names are safe in a quoted string but may be UTF-8.
            let name = got.meta.key.file_name().replace(['"', '\\'], "_");
            let ascii: String = name.chars().map(|c| if c.is_ascii() { c } else { '_' }).collect();
            if let Some(v) = value(&format!("attachment; filename=\"{ascii}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
        }
        Ok(res)
    }

    /// Deletes the object at `key` (a replaced avatar, a removed
    /// document); deleting a missing object succeeds, as in S3. No
    /// authorisation: check the key is the session user's first.
    pub async fn delete(&self, key: &str) -> Result<(), ChuteError> {
        let key = ObjectKey::parse(key)?;
        Ok(self.inner.lifecycle.store().delete(&key).await?)
    }

    /// A presigned GET URL of `key` at the store, valid for `ttl`.
    pub fn url(&self, key: &str, ttl: Duration) -> Result<String, ChuteError> {
        let key = ObjectKey::parse(key)?;
        let signed = self
            .inner
            .lifecycle
            .signer()
            .get(&key, ttl, OffsetDateTime::now_utc())?;
        Ok(signed.url)
    }

    /// The status of the receipt's image derivatives (pending, ready,
    /// failed; key, size, dimensions); `None` while nothing was recorded.
    pub async fn derivatives(&self, receipt: &VerifiedReceipt) -> Result<Option<Manifest>, ChuteError> {
        Ok(self.inner.lifecycle.derivatives().status(&receipt.claims).await?)
    }

    /// The derivative `name` of the receipt's upload, waiting up to `wait`
    /// while it is pending. `None` when the receipt names no such
    /// derivative (or it is not an image); a pending entry when `wait`
    /// ran out; read a ready one at its `key`.
    pub async fn derivative(
        &self,
        receipt: &VerifiedReceipt,
        name: &str,
        wait: Duration,
    ) -> Result<Option<Entry>, ChuteError> {
        if !receipt.claims.derivatives.contains_key(name)
            || !chute_server::derivatives::is_image(receipt.content_type())
        {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let entry = self
                .derivatives(receipt)
                .await?
                .and_then(|mut m| m.derivatives.remove(name));
            let pending = entry.as_ref().is_none_or(|e| e.status == Status::Pending);
            if !pending || tokio::time::Instant::now() >= deadline {
                return Ok(entry);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the embedded S3 listener and the reaper, letting requests in
    /// flight finish within the grace period.
    pub async fn shutdown(&self) {
        let embedded = self.inner.embedded.lock().ok().and_then(|mut e| e.take());
        if let Some(embedded) = embedded {
            embedded.shutdown().await;
        }
    }
}

/// Whether a browser can show `content_type` without running anything
/// the object carries: raster images, plain text, PDF, audio and video.
fn shows_inline(content_type: &str) -> bool {
    let essence = crate::extract::essence(content_type);
    match essence.split_once('/') {
        Some(("image", sub)) => !sub.contains("svg") && !sub.contains("xml"),
        Some(("audio" | "video", _)) => true,
        _ => matches!(essence.as_str(), "text/plain" | "application/pdf"),
    }
}

impl FromRef<Chute> for ReceiptVerifier {
    fn from_ref(chute: &Chute) -> Self {
        chute.verifier()
    }
}

#[cfg(test)]
mod tests {
    use super::shows_inline;
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;

    /// Settings, signing and presigning failures are the server's: the
    /// client gets a 500 without them, the log gets the details.
    #[tokio::test]
    async fn internal_failures_do_not_reach_the_client() {
        let res = super::ChuteError::NoGrantSecret.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("grant_secret"), "{body}");
        assert!(body.contains("\"internal\""), "{body}");
    }

    #[test]
    fn only_passive_types_show_inline() {
        for ok in [
            "image/png",
            "image/webp",
            "text/plain; charset=utf-8",
            "application/pdf",
            "video/mp4",
        ] {
            assert!(shows_inline(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "application/xhtml+xml",
            "image/svg+xml",
            "IMAGE/SVG+XML",
            "text/xml",
            "application/xml",
            "text/javascript",
            "application/octet-stream",
            "",
        ] {
            assert!(!shows_inline(bad), "{bad}");
        }
    }
}
