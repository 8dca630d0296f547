//! Where a request's [`Grant`] comes from. In order:
//! 1. `Authorization: Bearer <jwt>` signed with the grant secret
//!    ([`JwtGrants`]); a bad token is refused, never passed on;
//! 2. an authorization webhook (the request's cookies and headers are
//!    forwarded to the app, which answers with the grant as JSON);
//! 3. a Rust callback, for apps that embed Chute as a library;
//! 4. development mode's open grant (refused by `chute check --deploy`).
//!
//! With none of these configured, requests get 401.

use crate::lifecycle::ApiError;
use async_trait::async_trait;
use axum::http::header;
use axum::http::request::Parts;
use chute_core::token::GRANT_AUDIENCE;
use chute_core::{Grant, GrantClaims, Keyring};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;
use time::OffsetDateTime;

/// What the grant sources see of an upload request besides its headers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantRequest {
    /// The file name as the client sent it.
    pub filename: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Declared media type.
    #[serde(rename = "type")]
    pub content_type: String,
}

/// A source of grants: a webhook, a Rust callback, or anything else.
#[async_trait]
pub trait GrantSource: Send + Sync + 'static {
    /// The grant for this request, or the refusal to send back.
    async fn grant(&self, parts: &Parts, request: &GrantRequest) -> Result<Grant, ApiError>;
}

#[async_trait]
impl<F, Fut> GrantSource for F
where
    F: Fn(Parts, GrantRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Grant, ApiError>> + Send + 'static,
{
    async fn grant(&self, parts: &Parts, request: &GrantRequest) -> Result<Grant, ApiError> {
        self(parts.clone(), request.clone()).await
    }
}

/// Verifies grant JWTs (HS256, `kid` rotation, audience, expiry).
#[derive(Debug, Clone)]
pub struct JwtGrants {
    /// The keys grants are signed with.
    pub keyring: Keyring,
    /// The audience grants must name.
    pub audience: String,
}

impl JwtGrants {
    /// Verifies `token` at `now`. A grant without `jti` gets the token's
    /// hash as its id, so `max_files` still counts its uses.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Grant, ApiError> {
        let claims: GrantClaims = self
            .keyring
            .verify(token, &self.audience, now)
            .map_err(|e| ApiError::token("grant", &e))?;
        let mut grant = Grant::from(claims);
        if grant.id.is_none() {
            grant.id = Some(format!(
                "t-{}",
                hex::encode(&Sha256::digest(token.as_bytes())[..12])
            ));
        }
        Ok(grant)
    }
}

/// All configured grant sources, consulted in the order of the module docs.
#[derive(Clone, Default)]
pub struct Grants {
    /// JWT grants, when a grant secret is configured.
    pub jwt: Option<JwtGrants>,
    /// The authorization webhook, when configured.
    pub webhook: Option<Arc<dyn GrantSource>>,
    /// A Rust callback, when Chute is embedded.
    pub callback: Option<Arc<dyn GrantSource>>,
    /// Development mode's open grant.
    pub open: Option<Grant>,
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grants")
            .field("jwt", &self.jwt.is_some())
            .field("webhook", &self.webhook.is_some())
            .field("callback", &self.callback.is_some())
            .field("open", &self.open.is_some())
            .finish()
    }
}

impl Grants {
    /// Only JWT grants with `keyring` and the default audience.
    pub fn jwt(keyring: Keyring) -> Self {
        Self {
            jwt: Some(JwtGrants {
                keyring,
                audience: GRANT_AUDIENCE.into(),
            }),
            ..Self::default()
        }
    }

    /// Resolves the grant for a request.
    pub async fn resolve(&self, parts: &Parts, request: &GrantRequest) -> Result<Grant, ApiError> {
        let now = OffsetDateTime::now_utc();
        let grant = if let Some(token) = bearer(parts)? {
            let jwt = self.jwt.as_ref().ok_or_else(|| {
                ApiError::unauthorized("a bearer grant was sent but no grant secret is configured")
            })?;
            jwt.verify(token, now)?
        } else if let Some(hook) = &self.webhook {
            hook.grant(parts, request).await?
        } else if let Some(callback) = &self.callback {
            callback.grant(parts, request).await?
        } else if let Some(open) = &self.open {
            open.clone()
        } else {
            return Err(ApiError::unauthorized(
                "this request needs a grant: send `Authorization: Bearer <grant token>`",
            ));
        };
        grant.check_live(now.unix_timestamp())?;
        Ok(grant)
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized("Authorization must be `Bearer <token>`")),
    }
}
