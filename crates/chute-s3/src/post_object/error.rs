//! [`PostObjectError`]: every way a POST Object fails, with the S3 status,
//! code and message beside each, rendered as S3's XML error body.

use chute_core::post_policy::PostPolicyError;
use chute_store::StoreError;
use http::StatusCode;

/// Why a POST Object request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PostObjectError {
    /// The bucket name in the path is not a valid bucket name.
    #[error("{0}")]
    InvalidBucketName(String),
    /// The body is not well-formed `multipart/form-data`.
    #[error("The body of your POST request is not well-formed multipart/form-data: {0}")]
    Malformed(String),
    /// The fields before the file part exceed the configured cap.
    #[error("Your POST request fields preceding the upload file were too large (limit {max} bytes).")]
    FieldsTooLarge {
        /// The cap in bytes.
        max: usize,
    },
    /// The form has no `file` part.
    #[error("POST requires exactly one file upload per request.")]
    MissingFile,
    /// The policy, its signature or its conditions refused the form.
    #[error(transparent)]
    Policy(#[from] PostPolicyError),
    /// The key the form names is not a valid object key.
    #[error("Invalid object key: {0}")]
    InvalidKey(String),
    /// A form value cannot be stored as given (it could not be sent back
    /// as a header, or a redirect is not a usable URL).
    #[error("Invalid form field: {0}")]
    InvalidField(String),
    /// An `x-amz-checksum-*` field is not a valid value.
    #[error("Invalid checksum field: {0}")]
    InvalidChecksum(String),
    /// The file is larger than the policy or the server allows.
    #[error("Your proposed upload exceeds the maximum allowed size of {max} bytes.")]
    TooLarge {
        /// The maximum in bytes.
        max: u64,
    },
    /// The file is smaller than the policy requires.
    #[error("Your proposed upload is smaller than the minimum allowed size of {min} bytes.")]
    TooSmall {
        /// The minimum in bytes.
        min: u64,
    },
    /// The body sent nothing for the configured idle timeout.
    #[error("{}", crate::error::REQUEST_TIMEOUT_MESSAGE)]
    RequestTimeout,
    /// The store refused or failed the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PostObjectError {
    /// The HTTP status, S3 error code and client-facing message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            Self::InvalidBucketName(m) => (bad, "InvalidBucketName", m.clone()),
            Self::Malformed(_) => (bad, "MalformedPOSTRequest", self.to_string()),
            Self::FieldsTooLarge { .. } => (bad, "MaxPostPreDataLengthExceededError", self.to_string()),
            Self::MissingFile => (bad, "InvalidArgument", self.to_string()),
            Self::Policy(e) => (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN),
                e.s3_code(),
                e.to_string(),
            ),
            Self::InvalidKey(_) | Self::InvalidField(_) | Self::InvalidChecksum(_) => {
                (bad, "InvalidArgument", self.to_string())
            }
            Self::TooLarge { .. } => (bad, "EntityTooLarge", self.to_string()),
            Self::TooSmall { .. } => (bad, "EntityTooSmall", self.to_string()),
            Self::RequestTimeout => (bad, "RequestTimeout", self.to_string()),
            Self::Store(e) => store_parts(e),
        }
    }

    /// Whether the failure is the server's (logged as an error), not the client's.
    pub fn is_server_fault(&self) -> bool {
        self.parts().0.is_server_error()
    }

    /// Renders S3's XML error response for `resource`, tagged with `request_id`.
    pub fn into_response(self, resource: &str, request_id: &str) -> http::Response<s3s::Body> {
        let (status, code, message) = self.parts();
        crate::error::s3_error_response(status, code, &message, resource, request_id)
    }
}

fn store_parts(e: &StoreError) -> (StatusCode, &'static str, String) {
    let bad = StatusCode::BAD_REQUEST;
    match e {
        StoreError::NoSuchBucket { .. } => (
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist".into(),
        ),
        StoreError::ChecksumMismatch { .. } | StoreError::BadDigest => (bad, "BadDigest", e.to_string()),
        StoreError::UnstorableKey { .. } => (bad, "KeyTooLongError", e.to_string()),
        StoreError::Body(_) | StoreError::LengthMismatch { .. } => (bad, "IncompleteBody", e.to_string()),
        StoreError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => (
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            crate::error::INSUFFICIENT_STORAGE_MESSAGE.into(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.".into(),
        ),
    }
}
