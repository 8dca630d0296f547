//! Chute's `PostPolicyBuilder` must emit boto3's `generate_presigned_post`
//! fields and policy byte for byte, and `verify_post_form` must accept
//! boto3's forms and refuse them tampered.

use crate::boto3::{self, ACCESS_KEY, ENDPOINT, NOW, REGION, SECRET_KEY};
use chute_core::post_policy::{PostForm, PostPolicyBuilder, PostPolicyError, verify_post_form};
use chute_core::sigv4::Credentials;
use chute_core::{BucketName, ObjectKey};
use serde_json::{Value, json};
use std::time::Duration;

fn lookup(access_key: &str) -> Option<String> {
    (access_key == ACCESS_KEY).then(|| SECRET_KEY.to_owned())
}

fn fields_of(post: &Value) -> Vec<(String, String)> {
    serde_json::from_value(post["fields"].clone()).expect("fields are pairs")
}

fn verify(fields: Vec<(String, String)>) -> Result<chute_core::VerifiedPost, PostPolicyError> {
    let form = PostForm {
        fields,
        filename: Some("photo.png".into()),
    };
    verify_post_form(&form, "uploads", &lookup, NOW + Duration::from_secs(60))
}

#[test]
fn presigned_post_matches_boto3_and_verifies() {
    let key = "users/42/é 1.png";
    let from_boto = boto3::run(vec![
        json!({"kind": "post", "bucket": "uploads", "key": key, "expires": 600,
               "fields": [["content-type", "image/png"], ["success_action_status", "201"], ["x-amz-meta-owner", "42"]],
               "conditions": [{"content-type": "image/png"}, {"success_action_status": "201"},
                              {"x-amz-meta-owner": "42"}, ["content-length-range", 1, 10485760]]}),
        json!({"kind": "post", "bucket": "uploads", "key": "inbox/${filename}", "expires": 600,
               "fields": [], "conditions": []}),
    ]);

    let creds = Credentials {
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
    };
    let ours = PostPolicyBuilder::new(
        BucketName::parse("uploads").expect("bucket"),
        ObjectKey::parse(key).expect("key"),
    )
    .content_type("image/png")
    .success_action_status(201)
    .metadata("owner", "42")
    .content_length_range(1, 10_485_760)
    .expires_in(Duration::from_secs(600))
    .sign(&creds, REGION, ENDPOINT, NOW);
    assert_eq!(from_boto[0]["url"].as_str(), Some(ours.url.as_str()));
    assert_eq!(fields_of(&from_boto[0]), ours.fields);

    let verified = verify(fields_of(&from_boto[0])).expect("boto3's form verifies");
    assert_eq!(verified.key, key);
    assert_eq!(verified.content_length_range, Some((1, 10_485_760)));
    assert_eq!(verified.success_action_status, Some(201));
    assert_eq!(verified.metadata, vec![("owner".to_owned(), "42".to_owned())]);

    // boto3's ${filename} form: starts-with on the key, substituted here.
    let verified = verify(fields_of(&from_boto[1])).expect("boto3's ${filename} form verifies");
    assert_eq!(verified.key, "inbox/photo.png");

    let tamper = |name: &str, f: &dyn Fn(&str) -> String| {
        fields_of(&from_boto[0])
            .into_iter()
            .map(|(n, v)| {
                if n == name {
                    let t = f(&v);
                    (n, t)
                } else {
                    (n, v)
                }
            })
            .collect::<Vec<_>>()
    };
    let flip_last = |v: &str| {
        let mut s = v.to_owned();
        let last = s.pop().expect("non-empty");
        s.push(if last == 'A' { 'B' } else { 'A' });
        s
    };
    assert_eq!(
        verify(tamper("x-amz-signature", &flip_last)).err(),
        Some(PostPolicyError::SignatureDoesNotMatch)
    );
    assert_eq!(
        verify(tamper("policy", &flip_last)).err(),
        Some(PostPolicyError::SignatureDoesNotMatch)
    );
    assert!(matches!(
        verify(tamper("key", &|_| "users/43/x.png".to_owned())).err(),
        Some(PostPolicyError::ConditionFailed(_))
    ));
    let mut extra = fields_of(&from_boto[0]);
    extra.push(("x-amz-meta-admin".into(), "true".into()));
    assert_eq!(
        verify(extra).err(),
        Some(PostPolicyError::ExtraInputField("x-amz-meta-admin".into()))
    );
    let form = PostForm {
        fields: fields_of(&from_boto[0]),
        filename: None,
    };
    let late = verify_post_form(&form, "uploads", &lookup, NOW + Duration::from_secs(600));
    assert_eq!(late.err(), Some(PostPolicyError::Expired));
}
