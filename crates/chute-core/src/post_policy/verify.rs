//! [`verify_post_form`]: S3's rules for a submitted POST form, applied once
//! the caller has every field before the `file` part.
//!
//! Order: required fields, signature (SigV4, or SigV2 for legacy
//! uploaders), policy parse, expiration (no clock-skew rule: POST forms are
//! valid until the policy expires), `${filename}` substitution, every
//! condition, then every submitted field covered by a condition.

use super::{Condition, PostPolicyError, parse_policy};
use crate::ChecksumAlgorithm;
use crate::sigv4::{ALGORITHM, constant_time_eq, hmac_sha256, signing_key};
use time::OffsetDateTime;
use time::macros::format_description;

/// A submitted form as the multipart reader saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostForm {
    /// Fields as submitted, original case, in order, up to the `file` part.
    pub fields: Vec<(String, String)>,
    /// The `filename` of the file part's `Content-Disposition`.
    pub filename: Option<String>,
}

/// What a verified form allows the caller to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPost {
    /// The access key that signed the policy.
    pub access_key: String,
    /// The key after `${filename}` substitution; validate it as an `ObjectKey`.
    pub key: String,
    /// The size range the file must fall in, checked while streaming.
    pub content_length_range: Option<(u64, u64)>,
    /// `success_action_status` if it is one S3 honours (200, 201, 204).
    pub success_action_status: Option<u16>,
    /// `success_action_redirect` (or the legacy `redirect`).
    pub success_action_redirect: Option<String>,
    /// `content-type`, as submitted.
    pub content_type: Option<String>,
    /// `x-amz-meta-*` fields: names lowercased without the prefix.
    pub metadata: Vec<(String, String)>,
    /// Stored response headers (`cache-control`, `content-disposition`,
    /// `content-encoding`, `expires`, `content-language`), names lowercased.
    pub headers: Vec<(String, String)>,
    /// An `x-amz-checksum-<algorithm>` field, if any.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "expires",
    "content-language",
];

/// Verifies `form` for an upload to `bucket`; see the module docs for the rules.
pub fn verify_post_form(
    form: &PostForm,
    bucket: &str,
    lookup_secret: &dyn Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> Result<VerifiedPost, PostPolicyError> {
    let fields = lowercase_fields(&form.fields)?;
    let get = |name: &str| field(&fields, name);
    let auth_fields = [
        "policy",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-signature",
        "awsaccesskeyid",
        "signature",
    ];
    if auth_fields.iter().all(|name| get(name).is_none()) {
        return Err(PostPolicyError::Anonymous);
    }
    let policy_b64 = get("policy").ok_or(PostPolicyError::MissingField("policy"))?;
    let raw_key = get("key").ok_or(PostPolicyError::MissingField("key"))?;
    let access_key = authenticate(&fields, policy_b64, lookup_secret)?;
    let policy = parse_policy(policy_b64)?;
    if now >= policy.expiration {
        return Err(PostPolicyError::Expired);
    }
    let key = substitute_filename(raw_key, form.filename.as_deref());
    let value_of = |field: &str| match field {
        "bucket" => Some(bucket),
        "key" => Some(key.as_str()),
        _ => get(field),
    };

    let mut range: Option<(u64, u64)> = None;
    for condition in &policy.conditions {
        let holds = match condition {
            Condition::Eq { field, value } => value_of(field) == Some(value.as_str()),
            Condition::StartsWith { field, prefix } => value_of(field).is_some_and(|v| {
                if field == "content-type" {
                    v.split(',')
                        .all(|element| element.trim_start().starts_with(prefix.as_str()))
                } else {
                    v.starts_with(prefix.as_str())
                }
            }),
            Condition::ContentLengthRange { min, max } => {
                range = Some(match range {
                    Some((lo, hi)) => ((*min).max(lo), (*max).min(hi)),
                    None => (*min, *max),
                });
                true
            }
        };
        if !holds {
            return Err(PostPolicyError::ConditionFailed(condition.render()));
        }
    }
    for (name, _) in &fields {
        let exempt = matches!(
            name.as_str(),
            "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy"
        ) || name.starts_with("x-ignore-");
        if !exempt && !policy.conditions.iter().any(|c| c.field() == Some(name.as_str())) {
            return Err(PostPolicyError::ExtraInputField(name.clone()));
        }
    }

    Ok(VerifiedPost {
        access_key,
        key,
        content_length_range: range,
        success_action_status: get("success_action_status")
            .and_then(|s| s.trim().parse().ok())
            .filter(|s| matches!(s, 200 | 201 | 204)),
        success_action_redirect: get("success_action_redirect")
            .or_else(|| get("redirect"))
            .map(str::to_owned),
        content_type: get("content-type").map(str::to_owned),
        metadata: fields
            .iter()
            .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_owned(), v.clone())))
            .collect(),
        headers: fields
            .iter()
            .filter(|(n, _)| STORED_HEADERS.contains(&n.as_str()))
            .cloned()
            .collect(),
        checksum: fields.iter().find_map(|(n, v)| {
            let algorithm = ChecksumAlgorithm::parse(n.strip_prefix("x-amz-checksum-")?)?;
            Some((algorithm, v.clone()))
        }),
    })
}

/// The value of the (lowercased) field `name`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Field names lowercased; a repeated field is refused as ambiguous.
fn lowercase_fields(raw: &[(String, String)]) -> Result<Vec<(String, String)>, PostPolicyError> {
    let mut fields: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let name = name.to_ascii_lowercase();
        if fields.iter().any(|(n, _)| *n == name) {
            return Err(PostPolicyError::DuplicateField(name));
        }
        fields.push((name, value.clone()));
    }
    Ok(fields)
}

/// Checks the SigV4 or SigV2 signature over the policy; returns the access key.
fn authenticate(
    fields: &[(String, String)],
    policy_b64: &str,
    lookup_secret: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PostPolicyError> {
    let get = |name: &str| field(fields, name);
    let has_v2 = get("awsaccesskeyid").is_some() || get("signature").is_some();
    let has_v4 = ["x-amz-algorithm", "x-amz-credential", "x-amz-signature"]
        .iter()
        .any(|n| get(n).is_some());
    if has_v2 && has_v4 {
        return Err(PostPolicyError::MixedSignatureVersions);
    }
    if let Some(algorithm) = get("x-amz-algorithm") {
        if algorithm != ALGORITHM {
            return Err(PostPolicyError::UnsupportedAlgorithm(algorithm.to_owned()));
        }
        let credential = get("x-amz-credential").ok_or(PostPolicyError::MissingField("x-amz-credential"))?;
        let signature = get("x-amz-signature").ok_or(PostPolicyError::MissingField("x-amz-signature"))?;
        get("x-amz-date").ok_or(PostPolicyError::MissingField("x-amz-date"))?;
        let (access_key, date, region) = parse_credential(credential)?;
        let secret = lookup_secret(access_key).ok_or(PostPolicyError::InvalidAccessKeyId)?;
        let expected = hmac_sha256(&signing_key(&secret, date, region, "s3"), policy_b64.as_bytes());
        // Exact lowercase hex, as S3 compares: any changed byte is a mismatch.
        if !constant_time_eq(signature.as_bytes(), hex::encode(expected).as_bytes()) {
            return Err(PostPolicyError::SignatureDoesNotMatch);
        }
        Ok(access_key.to_owned())
    } else if let Some(access_key) = get("awsaccesskeyid") {
        let signature = get("signature").ok_or(PostPolicyError::MissingField("signature"))?;
        let secret = lookup_secret(access_key).ok_or(PostPolicyError::InvalidAccessKeyId)?;
        if !crate::sigv2::verify_post_signature(&secret, policy_b64, signature) {
            return Err(PostPolicyError::SignatureDoesNotMatch);
        }
        Ok(access_key.to_owned())
    } else if get("x-amz-credential").is_some() || get("x-amz-signature").is_some() {
        Err(PostPolicyError::MissingField("x-amz-algorithm"))
    } else {
        Err(PostPolicyError::MissingField("AWSAccessKeyId"))
    }
}

/// Splits `<access key>/<yyyymmdd>/<region>/s3/aws4_request`.
fn parse_credential(credential: &str) -> Result<(&str, time::Date, &str), PostPolicyError> {
    let invalid = |why: &str| PostPolicyError::InvalidCredential(format!("{credential:?}: {why}"));
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = parts[..] else {
        return Err(invalid("expected <key>/<yyyymmdd>/<region>/s3/aws4_request"));
    };
    if access_key.is_empty() || region.is_empty() {
        return Err(invalid("empty access key or region"));
    }
    if service != "s3" || terminator != "aws4_request" {
        return Err(invalid("service must be s3 and the scope end in aws4_request"));
    }
    let date = time::Date::parse(date, format_description!("[year][month][day]"))
        .map_err(|_| invalid("date is not yyyymmdd"))?;
    Ok((access_key, date, region))
}

/// Replaces `${filename}` with the basename of the file as sent (old
/// browsers send a full Windows path).
fn substitute_filename(key: &str, filename: Option<&str>) -> String {
    let basename = filename
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
        .unwrap_or_default();
    key.replace("${filename}", basename)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
