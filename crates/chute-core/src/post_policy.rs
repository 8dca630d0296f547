//! S3 POST policies for browser form uploads: the model ([`PostPolicy`],
//! [`Condition`]), building and signing one ([`PostPolicyBuilder`]),
//! parsing one ([`parse_policy`]) and verifying a submitted form against
//! it ([`verify_post_form`]), with S3's error codes ([`PostPolicyError`]).
//!
//! Streaming the multipart body, enforcing the content length while the
//! file streams ([`check_content_length`] is the rule) and validating the
//! final key as an [`crate::ObjectKey`] are left to the caller.

mod build;
mod error;
mod parse;
mod verify;

pub use build::{PostPolicyBuilder, PresignedPost};
pub use error::{PostPolicyError, check_content_length};
pub use parse::parse_policy;
pub use verify::{PostForm, VerifiedPost, verify_post_form};

use time::OffsetDateTime;

/// A decoded POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy {
    /// The instant the policy stops being valid.
    pub expiration: OffsetDateTime,
    /// Every condition a form must satisfy.
    pub conditions: Vec<Condition>,
}

/// One policy condition. Field names are lowercased, without the `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The field must equal `value` exactly (`["eq", ...]` or `{"field": "value"}`).
    Eq {
        /// Lowercased field name.
        field: String,
        /// Required value.
        value: String,
    },
    /// The field must start with `prefix`; an empty prefix allows any value.
    StartsWith {
        /// Lowercased field name.
        field: String,
        /// Required prefix.
        prefix: String,
    },
    /// The file size must be within `min..=max` bytes.
    ContentLengthRange {
        /// Smallest allowed size in bytes.
        min: u64,
        /// Largest allowed size in bytes.
        max: u64,
    },
}

impl Condition {
    /// The field this condition constrains, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Eq { field, .. } | Self::StartsWith { field, .. } => Some(field),
            Self::ContentLengthRange { .. } => None,
        }
    }

    /// The condition as S3 quotes it in errors, e.g. `["eq", "$key", "a.txt"]`.
    pub fn render(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        match self {
            Self::Eq { field, value } => format!("[\"eq\", {}, {}]", q(&format!("${field}")), q(value)),
            Self::StartsWith { field, prefix } => {
                format!("[\"starts-with\", {}, {}]", q(&format!("${field}")), q(prefix))
            }
            Self::ContentLengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
        }
    }
}

/// Published AWS vectors shared by tests across modules.
#[cfg(test)]
pub(crate) mod tests_support {
    /// The base64 policy of AWS's SigV4 POST example (`sigv4examplebucket`),
    /// whose signature is `8afdbf40...699e` for the example credentials on 20151229.
    pub(crate) const AWS_EXAMPLE_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    /// Its published signature.
    pub(crate) const AWS_EXAMPLE_SIGNATURE: &str =
        "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";
}
