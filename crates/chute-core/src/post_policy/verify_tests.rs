//! Tests for [`super::verify_post_form`]: AWS's published example, hostile
//! forms, and build → sign → parse → verify round-trips (proptest).

use super::*;
use crate::post_policy::tests_support::{AWS_EXAMPLE_POLICY, AWS_EXAMPLE_SIGNATURE};
use crate::post_policy::{PostPolicyBuilder, PresignedPost};
use crate::sigv4::Credentials;
use crate::{BucketName, ObjectKey};
use base64::Engine as _;
use proptest::prelude::*;
use time::macros::datetime;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn lookup(ak: &str) -> Option<String> {
    (ak == AK).then(|| SK.to_owned())
}

fn form(fields: &[(&str, &str)], filename: Option<&str>) -> PostForm {
    PostForm {
        fields: fields
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        filename: filename.map(str::to_owned),
    }
}

fn aws_example_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("key", "user/user1/${filename}"),
        ("acl", "public-read"),
        (
            "success_action_redirect",
            "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
        ),
        ("Content-Type", "image/jpeg"),
        ("x-amz-meta-uuid", "14365123651274"),
        ("x-amz-server-side-encryption", "AES256"),
        (
            "X-Amz-Credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
        ),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Date", "20151229T000000Z"),
        ("x-amz-meta-tag", ""),
        ("Policy", AWS_EXAMPLE_POLICY),
        ("X-Amz-Signature", AWS_EXAMPLE_SIGNATURE),
    ]
}

const EXAMPLE_NOW: OffsetDateTime = datetime!(2015-12-29 10:00 UTC);

fn verify_example(fields: &[(&str, &str)]) -> Result<VerifiedPost, PostPolicyError> {
    verify_post_form(
        &form(fields, Some("MyPhoto.jpg")),
        "sigv4examplebucket",
        &lookup,
        EXAMPLE_NOW,
    )
}

fn with(
    fields: &[(&'static str, &'static str)],
    name: &str,
    value: &'static str,
) -> Vec<(&'static str, &'static str)> {
    fields
        .iter()
        .map(|&(n, v)| {
            if n.eq_ignore_ascii_case(name) {
                (n, value)
            } else {
                (n, v)
            }
        })
        .collect()
}

fn without(fields: &[(&'static str, &'static str)], name: &str) -> Vec<(&'static str, &'static str)> {
    fields
        .iter()
        .copied()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect()
}

#[test]
fn accepts_aws_sigv4_post_example() {
    let v = verify_example(&aws_example_fields()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.access_key, AK);
    assert_eq!(v.key, "user/user1/MyPhoto.jpg");
    assert_eq!(v.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        v.metadata,
        vec![
            ("uuid".into(), "14365123651274".into()),
            ("tag".into(), String::new())
        ]
    );
    assert!(v.success_action_redirect.is_some());
    // No skew rule: a day after x-amz-date is fine while the policy lives.
    let later = datetime!(2015-12-30 11:59:59 UTC);
    let f = form(&aws_example_fields(), Some("C:\\Users\\me\\a.jpg"));
    let v = verify_post_form(&f, "sigv4examplebucket", &lookup, later).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.key, "user/user1/a.jpg");
}

#[test]
fn hostile_forms_are_refused() {
    let base = aws_example_fields();
    let e = |fields: &[(&str, &str)]| verify_example(fields).err();
    use PostPolicyError as E;
    assert_eq!(
        e(&with(
            &base,
            "x-amz-signature",
            "0afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        )),
        Some(E::SignatureDoesNotMatch)
    );
    assert_eq!(
        e(&with(
            &base,
            "x-amz-signature",
            "8AFDBF4008C03F22C2CD3CDB72E4AFBB1F6A588F3255AC628749A66D7F09699E"
        )),
        Some(E::SignatureDoesNotMatch)
    );
    let tampered_policy = AWS_EXAMPLE_POLICY.replacen("eyAiZXhw", "eyAiZXhX", 1);
    let leaked: &'static str = Box::leak(tampered_policy.into_boxed_str());
    assert_eq!(e(&with(&base, "policy", leaked)), Some(E::SignatureDoesNotMatch));
    let late = verify_post_form(
        &form(&base, Some("a.jpg")),
        "sigv4examplebucket",
        &lookup,
        datetime!(2015-12-30 12:00 UTC),
    );
    assert_eq!(late.err(), Some(E::Expired));
    assert!(matches!(
        verify_post_form(&form(&base, Some("a.jpg")), "otherbucket", &lookup, EXAMPLE_NOW),
        Err(E::ConditionFailed(c)) if c == r#"["eq", "$bucket", "sigv4examplebucket"]"#
    ));
    assert!(
        matches!(e(&with(&base, "key", "user/user2/${filename}")), Some(E::ConditionFailed(c)) if c.contains("$key"))
    );
    assert!(matches!(
        e(&with(&base, "content-type", "text/html")),
        Some(E::ConditionFailed(_))
    ));
    assert!(matches!(
        e(&with(&base, "content-type", "image/png, text/html")),
        Some(E::ConditionFailed(_))
    ));
    assert!(verify_example(&with(&base, "content-type", "image/png, image/gif")).is_ok());
    assert!(matches!(
        e(&with(&base, "acl", "private")),
        Some(E::ConditionFailed(_))
    ));
    assert!(matches!(
        e(&without(&base, "x-amz-meta-uuid")),
        Some(E::ConditionFailed(_))
    ));
    let mut extra = base.clone();
    extra.push(("x-amz-meta-evil", "1"));
    assert_eq!(e(&extra), Some(E::ExtraInputField("x-amz-meta-evil".into())));
    let mut ignored = base.clone();
    ignored.push(("x-ignore-me", "1"));
    assert!(verify_example(&ignored).is_ok());
    let mut dup = base.clone();
    dup.push(("KEY", "user/user1/x"));
    assert_eq!(e(&dup), Some(E::DuplicateField("key".into())));
    assert_eq!(e(&without(&base, "policy")), Some(E::MissingField("policy")));
    assert_eq!(e(&without(&base, "key")), Some(E::MissingField("key")));
    assert_eq!(
        e(&without(&base, "x-amz-signature")),
        Some(E::MissingField("x-amz-signature"))
    );
    assert_eq!(
        e(&without(&base, "x-amz-algorithm")),
        Some(E::MissingField("x-amz-algorithm"))
    );
    assert_eq!(
        e(&with(&base, "x-amz-algorithm", "AWS4-HMAC-SHA1")),
        Some(E::UnsupportedAlgorithm("AWS4-HMAC-SHA1".into()))
    );
    assert_eq!(
        e(&with(
            &base,
            "x-amz-credential",
            "AKIAUNKNOWN/20151229/us-east-1/s3/aws4_request"
        )),
        Some(E::InvalidAccessKeyId)
    );
    assert!(matches!(
        e(&with(
            &base,
            "x-amz-credential",
            "AKIAIOSFODNN7EXAMPLE/2015/us-east-1/s3"
        )),
        Some(E::InvalidCredential(_))
    ));
    // Wrong secret for a known key.
    let wrong = |_: &str| Some("not-the-secret".to_owned());
    let r = verify_post_form(
        &form(&base, Some("a.jpg")),
        "sigv4examplebucket",
        &wrong,
        EXAMPLE_NOW,
    );
    assert_eq!(r.err(), Some(E::SignatureDoesNotMatch));
    let unsigned = [("key", "a"), ("policy", AWS_EXAMPLE_POLICY)];
    assert_eq!(e(&unsigned), Some(E::MissingField("AWSAccessKeyId")));
    // No policy and no signature field at all: an anonymous upload, which
    // S3 refuses on a private bucket with 403 AccessDenied.
    let anonymous = [("key", "a"), ("Content-Type", "image/png")];
    assert_eq!(e(&anonymous), Some(E::Anonymous));
    assert_eq!(
        (E::Anonymous.http_status(), E::Anonymous.s3_code()),
        (403, "AccessDenied")
    );
}

#[test]
fn malformed_policy_with_valid_signature_is_refused() {
    let policy = base64::engine::general_purpose::STANDARD.encode("{\"expiration\": 5}");
    let sig = crate::sigv2::post_signature(SK, &policy);
    let fields = [
        ("key", "a"),
        ("AWSAccessKeyId", AK),
        ("policy", &policy),
        ("signature", &sig),
    ];
    let r = verify_post_form(&form(&fields, None), "b", &lookup, EXAMPLE_NOW);
    assert!(matches!(r, Err(PostPolicyError::MalformedPolicy(_))));
}

fn sigv2_form(policy_json: &str) -> (String, String) {
    let policy = base64::engine::general_purpose::STANDARD.encode(policy_json);
    let sig = crate::sigv2::post_signature(SK, &policy);
    (policy, sig)
}

#[test]
fn sigv2_form_valid_and_tampered() {
    let (policy, sig) = sigv2_form(
        r#"{"expiration": "2016-01-01T00:00:00.000Z", "conditions": [{"bucket": "legacy"}, ["starts-with", "$key", "up/"], ["content-length-range", "0", "1048576"], ["starts-with", "$success_action_status", ""]]}"#,
    );
    let fields = [
        ("key", "up/${filename}"),
        ("AWSAccessKeyId", AK),
        ("policy", policy.as_str()),
        ("signature", sig.as_str()),
        ("success_action_status", "201"),
    ];
    let v = verify_post_form(&form(&fields, Some("p.png")), "legacy", &lookup, EXAMPLE_NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (v.key.as_str(), v.content_length_range, v.success_action_status),
        ("up/p.png", Some((0, 1_048_576)), Some(201))
    );
    assert_eq!(
        crate::post_policy::check_content_length(v.content_length_range, 2_000_000),
        Err(PostPolicyError::EntityTooLarge)
    );
    let mut bad = fields;
    bad[3].1 = "AAAA";
    let r = verify_post_form(&form(&bad, Some("p.png")), "legacy", &lookup, EXAMPLE_NOW);
    assert_eq!(r.err(), Some(PostPolicyError::SignatureDoesNotMatch));
    let mut no_sig = fields.to_vec();
    no_sig.remove(3);
    let r = verify_post_form(&form(&no_sig, Some("p.png")), "legacy", &lookup, EXAMPLE_NOW);
    assert_eq!(r.err(), Some(PostPolicyError::MissingField("signature")));
}

#[test]
fn a_form_mixing_sigv2_and_sigv4_fields_is_refused() {
    let (policy, sig) = sigv2_form(
        r#"{"expiration": "2016-01-01T00:00:00.000Z", "conditions": [{"bucket": "legacy"}, {"key": "k"}]}"#,
    );
    for (name, value) in [
        ("x-amz-signature", "0000"),
        (
            "X-Amz-Credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
        ),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
    ] {
        let fields = [
            ("key", "k"),
            ("AWSAccessKeyId", AK),
            ("policy", policy.as_str()),
            ("signature", sig.as_str()),
            (name, value),
        ];
        let r = verify_post_form(&form(&fields, None), "legacy", &lookup, EXAMPLE_NOW);
        assert_eq!(r.err(), Some(PostPolicyError::MixedSignatureVersions), "{name}");
    }
}

fn creds() -> Credentials {
    Credentials {
        access_key: AK.into(),
        secret_key: SK.into(),
    }
}

fn signed(key: &ObjectKey, meta: &[(String, String)], range: Option<(u64, u64)>) -> PresignedPost {
    let bucket = BucketName::parse("prop-bucket").unwrap_or_else(|e| panic!("{e}"));
    let mut b = PostPolicyBuilder::new(bucket, key.clone()).content_type("image/png");
    for (n, v) in meta {
        b = b.metadata(n, v);
    }
    if let Some((min, max)) = range {
        b = b.content_length_range(min, max);
    }
    b.sign(
        &creds(),
        "eu-west-3",
        "http://127.0.0.1:9000",
        datetime!(2024-05-01 12:00 UTC),
    )
}

fn key_strategy() -> impl Strategy<Value = ObjectKey> {
    prop::collection::vec("[a-zA-Z0-9 _()+=é😀-]{1,12}", 1..4)
        .prop_filter_map("valid key", |segments| ObjectKey::parse(&segments.join("/")).ok())
}

fn meta_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[a-z][a-z0-9-]{0,8}", "\\PC{0,16}", 0..4)
        .prop_map(|m| m.into_iter().collect())
}

const PROP_NOW: OffsetDateTime = datetime!(2024-05-01 12:30 UTC);

fn verify_signed(post: &PresignedPost) -> Result<VerifiedPost, PostPolicyError> {
    let form = PostForm {
        fields: post.fields.clone(),
        filename: Some("ignored.bin".into()),
    };
    verify_post_form(&form, "prop-bucket", &lookup, PROP_NOW)
}

proptest! {
    #[test]
    fn build_sign_parse_verify_round_trips(
        key in key_strategy(),
        meta in meta_strategy(),
        range in prop::option::of((0u64..1 << 40, 0u64..1 << 40)),
    ) {
        let post = signed(&key, &meta, range);
        let policy = post.fields.iter().find(|(n, _)| n == "policy").map(|(_, v)| v.clone()).unwrap_or_default();
        let parsed = crate::post_policy::parse_policy(&policy);
        prop_assert!(parsed.is_ok());
        let v = verify_signed(&post);
        prop_assert!(v.is_ok(), "{:?}", v);
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(v.key.as_str(), key.as_str());
        prop_assert_eq!(v.metadata, meta);
        prop_assert_eq!(v.content_length_range, range.map(|(a, b)| (a.min(b), a.max(b))));
        prop_assert_eq!(v.content_type.as_deref(), Some("image/png"));
        // Past expiry it no longer verifies.
        let form = PostForm { fields: post.fields.clone(), filename: None };
        prop_assert_eq!(
            verify_post_form(&form, "prop-bucket", &lookup, datetime!(2024-05-01 13:00 UTC)).err(),
            Some(PostPolicyError::Expired)
        );
    }

    #[test]
    fn any_single_byte_tamper_fails(
        key in key_strategy(),
        target in prop::sample::select(vec!["policy", "x-amz-signature"]),
        index in any::<prop::sample::Index>(),
        replacement in prop::char::range('+', 'z'),
    ) {
        let mut post = signed(&key, &[], Some((1, 10)));
        let Some(field) = post.fields.iter_mut().find(|(n, _)| n == target) else {
            return Err(TestCaseError::fail("field missing"));
        };
        let mut bytes: Vec<char> = field.1.chars().collect();
        let at = index.index(bytes.len());
        prop_assume!(bytes[at] != replacement);
        bytes[at] = replacement;
        field.1 = bytes.into_iter().collect();
        prop_assert!(verify_signed(&post).is_err());
    }
}
