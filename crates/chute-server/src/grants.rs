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
    /// The browser origins the app trusts. A cookie-authenticated grant
    /// (the webhook's) is refused to a cross-site request from any other
    /// origin, so a foreign page cannot spend the user's session on
    /// uploads (a plain `GET /s3/params` needs no CORS preflight).
    pub origins: crate::app::Origins,
    /// What a grant's image derivatives may ask for; checked on every
    /// grant, whatever its source (400 `bad_derivative`).
    pub derivative_limits: chute_core::DerivativeLimits,
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
                ApiError::unauthorized(
                    "a bearer grant was sent but no grant secret is configured; set grant_secret \
                     (CHUTE_GRANT_SECRET) on the server to accept grant tokens",
                )
            })?;
            jwt.verify(token, now)?
        } else if let Some(hook) = &self.webhook {
            same_site_or_allowed(parts, &self.origins)?;
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
        grant.check_derivatives(&self.derivative_limits)?;
        Ok(grant)
    }
}

/// Refuses a request the browser marks as cross-site (`Sec-Fetch-Site`)
/// unless its `Origin` is one the app allows.
pub fn same_site_or_allowed(parts: &Parts, origins: &crate::app::Origins) -> Result<(), ApiError> {
    let site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if !origin.is_some_and(|o| origins.allows(o)) {
            return Err(ApiError::forbidden(
                "cross_site_refused",
                "a request from another site may not use the session's grant; add the page's origin to \
                 allowed_origins",
            ));
        }
    }
    Ok(())
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

/// Browser request headers the authorization webhook receives, so the app
/// can recognise its session: cookies, credentials, CSRF tokens, origin.
pub const FORWARDED_HEADERS: [header::HeaderName; 6] = [
    header::COOKIE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::HeaderName::from_static("x-csrf-token"),
    header::HeaderName::from_static("x-xsrf-token"),
    header::HeaderName::from_static("x-requested-with"),
];

/// The largest answer read from the authorization webhook.
pub const MAX_GRANT_RESPONSE: usize = 64 * 1024;

/// The authorization webhook (tusd's pre-create hook, for grants): Chute
/// POSTs the [`GrantRequest`] as JSON to the app's URL with the browser's
/// [`FORWARDED_HEADERS`] and `X-Forwarded-For` (the incoming value plus
/// the peer address). The app answers
/// - `200` with a [`Grant`] as JSON (unknown fields refused): that grant;
/// - `401`/`403`, optionally `{"error": "why"}`: `403 grant_refused` with
///   the app's message;
///
/// and anything else (no answer within the timeout, connection failure,
/// another status, an answer over [`MAX_GRANT_RESPONSE`], JSON that is not
/// a grant) is `502 grant_webhook_failed`, never an open grant.
#[derive(Debug, Clone)]
pub struct WebhookGrants {
    url: reqwest::Url,
    label: String,
    client: reqwest::Client,
    timeout: std::time::Duration,
}

impl WebhookGrants {
    /// A webhook at `url` that must answer within `timeout`.
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<Self, crate::webhooks::WebhookError> {
        let url = crate::webhooks::parse_url(url)?;
        Ok(Self {
            label: crate::webhooks::url_for_logs(&url),
            url,
            client: crate::webhooks::http_client(timeout)?,
            timeout,
        })
    }

    fn failed(&self, why: String) -> ApiError {
        tracing::warn!(url = %self.label, reason = %why, "authorization webhook failed");
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "grant_webhook_failed",
            format!("the app's authorization webhook failed: {why}"),
        )
    }

    /// `X-Forwarded-For`: what the request carried, then its peer address.
    fn forwarded_for(parts: &Parts) -> Option<String> {
        let mut hops: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        if let Some(axum::extract::ConnectInfo(peer)) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            hops.push(peer.ip().to_string());
        }
        (!hops.is_empty()).then(|| hops.join(", "))
    }
}

#[async_trait]
impl GrantSource for WebhookGrants {
    async fn grant(&self, parts: &Parts, request: &GrantRequest) -> Result<Grant, ApiError> {
        let body = serde_json::to_vec(request).map_err(|e| self.failed(format!("cannot encode: {e}")))?;
        let mut call = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body);
        for name in &FORWARDED_HEADERS {
            for value in parts.headers.get_all(name) {
                call = call.header(name, value);
            }
        }
        if let Some(hops) = Self::forwarded_for(parts) {
            call = call.header("x-forwarded-for", hops);
        }
        let mut response = call.send().await.map_err(|e| {
            self.failed(if e.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs_f32())
            } else {
                // Never the URL: it may carry a secret in its query.
                format!("cannot reach it ({})", e.without_url())
            })
        })?;
        let status = response.status();
        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if answer.len() + chunk.len() <= MAX_GRANT_RESPONSE => {
                    answer.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return Err(self.failed(format!("its answer is over {MAX_GRANT_RESPONSE} bytes")));
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(self.failed(format!(
                        "no complete answer within {} s",
                        self.timeout.as_secs_f32()
                    )));
                }
                Err(e) => return Err(self.failed(format!("reading its answer failed ({})", e.without_url()))),
            }
        }
        match status.as_u16() {
            200 => serde_json::from_slice::<Grant>(&answer)
                .map_err(|e| self.failed(format!("it answered 200 with JSON that is not a grant: {e}"))),
            401 | 403 => Err(ApiError::forbidden(
                "grant_refused",
                refusal_message(&answer).unwrap_or_else(|| "the app refused this upload".into()),
            )),
            _ => Err(self.failed(format!(
                "it answered {status}; expected 200 with a grant, or 401/403"
            ))),
        }
    }
}

/// The app's reason in `{"error": "..."}` (or `{"error": {"message"}}`,
/// `{"message"}`), at most 500 characters.
fn refusal_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value
        .get("error")
        .and_then(|e| e.as_str().or_else(|| e.get("message")?.as_str()))
        .or_else(|| value.get("message")?.as_str())?
        .trim();
    (!message.is_empty()).then(|| message.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Origins;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = axum::http::Request::builder().uri("/s3/params");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cross_site_requests_need_an_allowed_origin() {
        let origins = Origins {
            exact: vec!["https://app.example".into()],
            any_loopback: false,
        };
        let ok = |h: &[(&str, &str)]| same_site_or_allowed(&parts(h), &origins).is_ok();
        assert!(ok(&[]), "no fetch metadata: not a browser, or an old one");
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(ok(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example")
        ]));
        assert!(
            !ok(&[("sec-fetch-site", "cross-site")]),
            "an <img> or no-cors GET sends no Origin"
        );
        assert!(!ok(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://other.app.example")
        ]));
    }
}
