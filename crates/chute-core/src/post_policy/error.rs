//! [`PostPolicyError`]: every way a POST upload is refused, with the S3
//! code, HTTP status and message beside it, so the HTTP layer renders
//! S3's XML error body from this one place.

/// Why a POST form upload is refused. `Display` is S3's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostPolicyError {
    /// The form has no policy and no signature field: an anonymous upload,
    /// which Chute's buckets (private, as S3's by default) never accept.
    #[error("Access Denied: anonymous POST uploads are not allowed; sign the form with a POST policy.")]
    Anonymous,
    /// A required form field is absent (`policy`, `key`, a signature field...).
    #[error("Bucket POST must contain a field named '{0}'.")]
    MissingField(&'static str),
    /// A form field appears more than once, so which one S3 would use is ambiguous.
    #[error("Bucket POST contains the field '{0}' more than once.")]
    DuplicateField(String),
    /// The form carries fields of both SigV2 (`AWSAccessKeyId`, `signature`)
    /// and SigV4 (`x-amz-*`), so which signature governs would be a guess.
    #[error(
        "Bucket POST must use either SigV4 (x-amz-algorithm, x-amz-credential, x-amz-signature) or SigV2 (AWSAccessKeyId, signature) fields, not both."
    )]
    MixedSignatureVersions,
    /// `x-amz-algorithm` is not `AWS4-HMAC-SHA256`.
    #[error("Unsupported value for x-amz-algorithm: '{0}'. Only AWS4-HMAC-SHA256 is supported.")]
    UnsupportedAlgorithm(String),
    /// `x-amz-credential` is not `<key>/<yyyymmdd>/<region>/s3/aws4_request`.
    #[error("Invalid x-amz-credential: {0}")]
    InvalidCredential(String),
    /// The access key is unknown.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// The signature does not match the policy and secret.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    /// The policy is not valid base64 JSON of the expected shape.
    #[error("Invalid Policy: {0}")]
    MalformedPolicy(String),
    /// `now` is at or after the policy's expiration.
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    /// A condition does not hold; holds the condition as S3 quotes it.
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    ConditionFailed(String),
    /// A submitted field is covered by no condition.
    #[error("Invalid according to Policy: Extra input fields: {0}")]
    ExtraInputField(String),
    /// The file is larger than `content-length-range` allows.
    #[error("Your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,
    /// The file is smaller than `content-length-range` allows.
    #[error("Your proposed upload is smaller than the minimum allowed size")]
    EntityTooSmall,
}

impl PostPolicyError {
    /// The S3 error code for the XML body.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Self::MissingField(_)
            | Self::DuplicateField(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::MixedSignatureVersions
            | Self::InvalidCredential(_) => "InvalidArgument",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::MalformedPolicy(_) => "InvalidPolicyDocument",
            Self::Anonymous | Self::Expired | Self::ConditionFailed(_) | Self::ExtraInputField(_) => {
                "AccessDenied"
            }
            Self::EntityTooLarge => "EntityTooLarge",
            Self::EntityTooSmall => "EntityTooSmall",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Anonymous
            | Self::InvalidAccessKeyId
            | Self::SignatureDoesNotMatch
            | Self::Expired
            | Self::ConditionFailed(_)
            | Self::ExtraInputField(_) => 403,
            Self::MissingField(_)
            | Self::DuplicateField(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::MixedSignatureVersions
            | Self::InvalidCredential(_)
            | Self::MalformedPolicy(_)
            | Self::EntityTooLarge
            | Self::EntityTooSmall => 400,
        }
    }
}

/// Checks a file length against the policy's `content-length-range`, if any.
pub fn check_content_length(range: Option<(u64, u64)>, len: u64) -> Result<(), PostPolicyError> {
    match range {
        Some((_, max)) if len > max => Err(PostPolicyError::EntityTooLarge),
        Some((min, _)) if len < min => Err(PostPolicyError::EntityTooSmall),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages() {
        let e = PostPolicyError::ConditionFailed("[\"eq\", \"$key\", \"expected\"]".into());
        assert_eq!(
            e.to_string(),
            "Invalid according to Policy: Policy Condition failed: [\"eq\", \"$key\", \"expected\"]"
        );
        assert_eq!((e.s3_code(), e.http_status()), ("AccessDenied", 403));
        let e = PostPolicyError::MissingField("key");
        assert_eq!(e.to_string(), "Bucket POST must contain a field named 'key'.");
        assert_eq!((e.s3_code(), e.http_status()), ("InvalidArgument", 400));
        let e = PostPolicyError::MalformedPolicy("x".into());
        assert_eq!((e.s3_code(), e.http_status()), ("InvalidPolicyDocument", 400));
        assert_eq!(PostPolicyError::SignatureDoesNotMatch.http_status(), 403);
        assert_eq!(PostPolicyError::InvalidAccessKeyId.http_status(), 403);
    }

    #[test]
    fn content_length_range() {
        assert_eq!(check_content_length(None, u64::MAX), Ok(()));
        assert_eq!(check_content_length(Some((1, 10)), 10), Ok(()));
        assert_eq!(check_content_length(Some((1, 10)), 1), Ok(()));
        assert_eq!(
            check_content_length(Some((1, 10)), 11),
            Err(PostPolicyError::EntityTooLarge)
        );
        assert_eq!(
            check_content_length(Some((1, 10)), 0),
            Err(PostPolicyError::EntityTooSmall)
        );
    }
}
