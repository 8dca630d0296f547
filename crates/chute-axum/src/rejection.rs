//! [`ReceiptRejection`]: why the receipt extractors refused a request,
//! with its HTTP status beside it. The body is Chute's JSON error shape
//! (`{"error": {"code", "message"}}`) or, when the verifier asks for it,
//! plain text. Apps that want their own page take `Result<Receipt,
//! ReceiptRejection>` and render the error themselves.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chute_core::{GrantViolation, TokenError};
use std::borrow::Cow;

/// How a [`ReceiptRejection`] renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RejectionFormat {
    /// `{"error": {"code": "...", "message": "..."}}` (Chute's API shape).
    #[default]
    Json,
    /// The message as `text/plain`.
    PlainText,
}

/// A refused receipt: the status, a stable snake_case code and a message
/// safe to show to the user.
///
/// | status | codes |
/// |---|---|
/// | 400 | `missing_receipt`, `too_many_receipts`, `bad_form`, `file_in_form`, `token_*` (tampered, expired, wrong audience, unknown key) |
/// | 415 | `unsupported_media_type` (neither a form nor JSON) |
/// | 403 | `wrong_subject`, `key_not_allowed` (the receipt is valid but not this user's, or outside the prefix) |
/// | 413 | `too_large` (the receipt's file), `body_too_large` (a body over [`crate::extract::MAX_BODY`]) |
/// | 422 | `type_not_allowed`, `extension_not_allowed`, `metadata_mismatch`, ... |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ReceiptRejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code.
    pub code: Cow<'static, str>,
    /// What went wrong, for people.
    pub message: String,
    /// How the response renders.
    pub format: RejectionFormat,
}

impl ReceiptRejection {
    /// A rejection with `status`, `code` and `message`, rendered as JSON.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            format: RejectionFormat::Json,
        }
    }

    /// The same rejection rendered as `format`.
    pub fn with_format(mut self, format: RejectionFormat) -> Self {
        self.format = format;
        self
    }

    /// No receipt in `field`.
    pub(crate) fn missing(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_receipt",
            format!("the form has no receipt in field {field:?}; upload the file first"),
        )
    }

    /// More than one receipt in a single-receipt `field`.
    pub(crate) fn too_many(field: &str, count: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "too_many_receipts",
            format!("field {field:?} holds {count} receipts; one is expected"),
        )
    }

    /// A receipt token that does not verify.
    pub(crate) fn token(field: &str, e: &TokenError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            e.code(),
            format!("the receipt in field {field:?} is not valid: {e}"),
        )
    }

    /// A verified receipt that breaks the route's constraints.
    pub(crate) fn violation(v: &GrantViolation) -> Self {
        let status = match v {
            GrantViolation::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GrantViolation::KeyNotAllowed(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, v.code(), v.to_string())
    }
}

impl IntoResponse for ReceiptRejection {
    fn into_response(self) -> Response {
        match self.format {
            RejectionFormat::Json => {
                let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
                (self.status, Json(body)).into_response()
            }
            RejectionFormat::PlainText => (self.status, self.message).into_response(),
        }
    }
}
