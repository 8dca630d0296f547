//! Chute for axum apps: accept browser uploads in a few lines, with Chute
//! running inside the app's own process.
//!
//! - [`ChuteBuilder`] opens the store from Chute's settings and gives a
//!   [`Chute`]: its API as a router fragment to `merge` (`/api/...`,
//!   `/s3/...`, `/files/...`, `/chute.js`), grant minting, promotion and
//!   reads. With the embedded store it also binds `s3_listen` and serves
//!   the S3 endpoint browsers send bytes to, on a task of its own (the
//!   app does not bind it; with an S3 backend there is nothing to bind).
//! - [`Receipt`], [`Receipts`] and [`ReceiptForm`] are extractors: they
//!   read a form (urlencoded or multipart, text fields only) or a JSON body, verify each receipt's
//!   signature, key id, audience and expiry with chute-core (the code
//!   Chute signs with), check the route's [`Constraints`], and refuse with
//!   a [`ReceiptRejection`] (a clear 4xx, Chute's JSON error shape or
//!   plain text). Their [`ReceiptVerifier`] comes from the app state via
//!   `FromRef`. To render refusals yourself take
//!   `Result<Receipt, ReceiptRejection>`.
//! - A verified receipt is genuine, not necessarily the session user's:
//!   bind it with [`Constraints::subject`] (in `ReceiptForm::receipt`, or
//!   `Constraints::new().subject(user).check(&receipt)` after `Receipt<P>`).
//!   [`Chute::read`], [`Chute::download`] and [`Chute::url`] authorise
//!   nothing: check that the key belongs to the user first.
//! - [`GrantBuilder`] mints the grant the page hands to the widget,
//!   image derivatives (thumbnails) included; [`Chute::derivative`]
//!   reports them.
//!
//! What it leaves to others: the upload protocol and its checks
//! (`chute-server`), tokens and grants (`chute-core`), storage
//! (`chute-store`).
//!
//! ```no_run
//! use axum::extract::{FromRef, State};
//! use axum::http::{HeaderMap, StatusCode};
//! use axum::response::{IntoResponse, Response};
//! use axum::routing::{get, post};
//! use axum::{Json, Router};
//! use chute_axum::{Chute, ChuteBuilder, ChuteError, Promoted, Receipt, ReceiptPolicy, Constraints, ReceiptVerifier};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     chute: Chute,
//! }
//!
//! impl FromRef<AppState> for ReceiptVerifier {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.chute.verifier()
//!     }
//! }
//!
//! /// Images up to 2 MiB in the form field `avatar`.
//! struct Avatar;
//! impl ReceiptPolicy for Avatar {
//!     const FIELD: Option<&'static str> = Some("avatar");
//!     fn constraints() -> Constraints {
//!         Constraints::new().types(["image/*"]).max_size(2 << 20)
//!     }
//! }
//!
//! async fn save_avatar(
//!     State(state): State<AppState>,
//!     headers: HeaderMap,
//!     avatar: Receipt<Avatar>,
//! ) -> Result<Json<Promoted>, Response> {
//!     let user = session_user(&headers).ok_or_else(|| StatusCode::UNAUTHORIZED.into_response())?;
//!     // A genuine receipt may be another user's: it must have been issued
//!     // to the session's user, never taken from its own `subject()`.
//!     Constraints::new().subject(&user).check(&avatar).map_err(IntoResponse::into_response)?;
//!     let template = format!("avatars/{user}/{{uuid}}{{ext}}");
//!     let promoted = state.chute.promote(&avatar, Some(&template)).await;
//!     Ok(Json(promoted.map_err(IntoResponse::into_response)?))
//! }
//!
//! /// The signed-in user, from the app's session (cookie, database, ...).
//! fn session_user(headers: &HeaderMap) -> Option<String> {
//!     # let _ = headers;
//!     # None
//! }
//!
//! async fn grant(State(state): State<AppState>) -> Result<String, ChuteError> {
//!     let grant = state.chute.grant().subject("alice").prefix("avatars/alice")
//!         .types(["image/*"]).max_size(2 << 20).max_files(1);
//!     state.chute.mint(&grant)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let raw = chute_server::RawConfig {
//!     data_dir: Some("./chute-data".into()),
//!     grant_secret: Some(std::env::var("CHUTE_GRANT_SECRET")?),
//!     // Development mode would also take uploads with no grant at all.
//!     open_grants: Some(false),
//!     ..Default::default()
//! };
//! let chute = ChuteBuilder::from_raw(raw)?.build().await?;
//! let app = Router::new()
//!     .route("/avatar", post(save_avatar))
//!     .route("/grant", get(grant))
//!     .with_state(AppState { chute: chute.clone() })
//!     .merge(chute.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod chute;
pub mod extract;
pub mod grant;
pub mod rejection;
pub mod verify;

pub use chute::{Chute, ChuteBuilder, ChuteError};
pub use chute_server::lifecycle::Promoted;
pub use extract::{AnyReceipt, Receipt, ReceiptForm, ReceiptPolicy, Receipts};
pub use grant::GrantBuilder;
pub use rejection::{ReceiptRejection, RejectionFormat};
pub use verify::{Constraints, DEFAULT_FIELD, ReceiptVerifier, VerifiedReceipt};
