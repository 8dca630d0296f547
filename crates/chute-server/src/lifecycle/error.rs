//! [`ApiError`]: every refusal of the upload API as one JSON shape,
//! `{"error": {"code": "...", "message": "..."}}`, with the HTTP status
//! that goes with it. Codes are stable snake_case identifiers clients may
//! switch on; messages are for people.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chute_core::{GrantViolation, TokenError};
use chute_store::StoreError;
use std::borrow::Cow;

/// A refused API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code.
    pub code: Cow<'static, str>,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no grant or token was presented.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 with `code`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: the uploaded object breaks the grant.
    pub fn rejected(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 502/503/507: the store failed. The details (paths, endpoints, the
    /// backend's own message) go to the log, not to the client, which gets
    /// the context and a stable code: `insufficient_storage` (507) when
    /// the store's disk is full, `store_unavailable` (503, with
    /// `Retry-After`) when it cannot be reached, times out or answers
    /// with a server error, `store_error` (502) when it refuses.
    pub fn store(context: &str, e: &StoreError) -> Self {
        if is_storage_full(e) {
            tracing::error!(error = %e, "{context}: the store is out of space");
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                format!("{context}: the store has no space left; try again later or a smaller file"),
            );
        }
        tracing::warn!(error = %e, "{context}: store error");
        match e {
            StoreError::Io(_)
            | StoreError::Corrupt(_)
            | StoreError::Body(_)
            | StoreError::Backend {
                status: 500 | 502 | 503 | 504,
                ..
            } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{context}: the store is unavailable; try again"),
            ),
            StoreError::Unsupported(what) => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "store_unsupported",
                format!("{context}: the store cannot do this ({what})"),
            ),
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                "store_error",
                format!("{context}: the store refused the request"),
            ),
        }
    }

    /// A token refusal, 401 (or 403 for a token that is valid but for
    /// something else).
    pub fn token(what: &str, e: &TokenError) -> Self {
        let status = match e {
            TokenError::WrongAudience { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        Self::new(status, e.code(), format!("{what}: {e}"))
    }
}

/// Whether `e` is the store's disk being full (`ENOSPC`, `EDQUOT`), or
/// an S3 backend answering `507`.
fn is_storage_full(e: &StoreError) -> bool {
    match e {
        StoreError::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull || io.kind() == std::io::ErrorKind::QuotaExceeded
        }
        StoreError::Backend { status: 507, .. } => true,
        _ => false,
    }
}

impl From<GrantViolation> for ApiError {
    fn from(v: GrantViolation) -> Self {
        let status = match v {
            GrantViolation::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GrantViolation::Expired => StatusCode::UNAUTHORIZED,
            GrantViolation::KeyNotAllowed(_) => StatusCode::FORBIDDEN,
            GrantViolation::Template(_) | GrantViolation::Derivative(_) => StatusCode::BAD_REQUEST,
            GrantViolation::TooSmall { .. }
            | GrantViolation::TypeNotAllowed(_)
            | GrantViolation::ExtensionNotAllowed(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, v.code(), v.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chute\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn store_errors_map_to_stable_codes() {
        let full = ApiError::store("x", &StoreError::Io(io::Error::from(io::ErrorKind::StorageFull)));
        assert_eq!(
            (full.status, full.code.as_ref()),
            (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
        );
        let down = ApiError::store(
            "x",
            &StoreError::Io(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(
            (down.status, down.code.as_ref()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
        let busy = ApiError::store(
            "x",
            &StoreError::Backend {
                status: 503,
                code: "SlowDown".into(),
                message: String::new(),
            },
        );
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        let refused = ApiError::store(
            "x",
            &StoreError::Backend {
                status: 400,
                code: "InvalidRequest".into(),
                message: String::new(),
            },
        );
        assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
        let res = down.into_response();
        assert_eq!(
            res.headers().get(header::RETRY_AFTER).map(HeaderValue::as_bytes),
            Some(&b"5"[..])
        );
    }
}
