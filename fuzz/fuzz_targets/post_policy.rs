//! POST policies: `parse_policy` on arbitrary text, and `verify_post_form`
//! on forms whose policy and fields come from the input (see [`Input`]),
//! signed (SigV4 or SigV2) with the right key, the wrong key, or not at all.
//!
//! Invariants: a parsed policy survives re-rendering its conditions; a
//! verified form always carries a signature the harness recomputes
//! independently with the one known secret, an unexpired policy, every
//! condition holding and every field covered.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chute_core::post_policy::{Condition, PostForm, parse_policy, verify_post_form};
use chute_core::sigv2;
use hmac::{Hmac, KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ACCESS_KEY: &str = "AKIDFUZZ";
const SECRET: &str = "fuzz-secret-key-0123456789";
const BUCKET: &str = "fuzzbucket";

/// The input, one item a line (so seeds are readable forms):
/// 1. how to sign: `v4 <region> <yyyymmdd>`, `v4-wrong <region> <yyyymmdd>`
///    (a secret the server does not hold), `v2`, `v2-wrong` or `none`;
/// 2. the policy JSON (base64-encoded here), or `raw <text>` for a policy
///    field sent exactly as given;
/// 3. `@<seconds>`: now, as seconds after 2023-11-14 (optional);
/// 4. the rest: form fields `name: value` (`key`, `x-amz-meta-*`...),
///    plus `filename: <name>` for the file part's filename.
struct Input<'a> {
    signing: &'a str,
    policy_b64: String,
    now: u32,
    fields: Vec<(String, String)>,
    filename: Option<String>,
}

impl<'a> Input<'a> {
    fn parse(text: &'a str) -> Self {
        let mut lines = text.split('\n');
        let signing = lines.next().unwrap_or_default();
        let policy = lines.next().unwrap_or_default();
        let policy_b64 = match policy.strip_prefix("raw ") {
            Some(raw) => raw.to_owned(),
            None => B64.encode(policy),
        };
        let mut now = 0;
        let mut fields = Vec::new();
        let mut filename = None;
        for line in lines {
            if let Some(at) = line.strip_prefix('@') {
                now = at.parse().unwrap_or(0);
                continue;
            }
            let (name, value) = line.split_once(": ").unwrap_or((line, ""));
            if name == "filename" {
                filename = Some(value.to_owned());
            } else {
                fields.push((name.to_owned(), value.to_owned()));
            }
        }
        Self {
            signing,
            policy_b64,
            now,
            fields,
            filename,
        }
    }
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 POST signature, derived here rather than by chute-core.
fn v4_signature(secret: &str, yyyymmdd: &str, region: &str, policy: &str) -> String {
    let k = hmac256(format!("AWS4{secret}").as_bytes(), yyyymmdd.as_bytes());
    let k = hmac256(&k, region.as_bytes());
    let k = hmac256(&k, b"s3");
    let k = hmac256(&k, b"aws4_request");
    hex::encode(hmac256(&k, policy.as_bytes()))
}

fn lookup(access_key: &str) -> Option<String> {
    (access_key == ACCESS_KEY).then(|| SECRET.to_owned())
}

fn check_policy_round_trip(policy_b64: &str) {
    let Ok(policy) = parse_policy(policy_b64) else {
        return;
    };
    for condition in &policy.conditions {
        if let Condition::ContentLengthRange { min, max } = condition {
            assert!(min <= max, "range {min}..={max} accepted");
        }
        if let Some(field) = condition.field() {
            assert_eq!(field, field.to_ascii_lowercase(), "field names are lowercased");
        }
    }
    let Ok(expiration) = policy.expiration.format(&Rfc3339) else {
        return;
    };
    let rendered: Vec<String> = policy.conditions.iter().map(Condition::render).collect();
    let doc = format!(
        "{{\"expiration\":{},\"conditions\":[{}]}}",
        serde_json::Value::from(expiration),
        rendered.join(",")
    );
    let again = parse_policy(&B64.encode(&doc)).unwrap_or_else(|e| panic!("re-rendered {doc} fails: {e}"));
    assert_eq!(again, policy, "re-rendered as {doc}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::parse(text);
    let policy_b64 = input.policy_b64.clone();
    check_policy_round_trip(&policy_b64);

    let mut fields: Vec<(String, String)> = vec![("policy".into(), policy_b64.clone())];
    let mut signing = input.signing.split(' ');
    match signing.next().unwrap_or_default() {
        mode @ ("v4" | "v4-wrong") => {
            let region = signing.next().unwrap_or_default();
            let date = signing.next().unwrap_or_default();
            let secret = if mode == "v4" { SECRET } else { "not-the-secret" };
            fields.push(("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()));
            fields.push((
                "x-amz-credential".into(),
                format!("{ACCESS_KEY}/{date}/{region}/s3/aws4_request"),
            ));
            fields.push(("x-amz-date".into(), format!("{date}T000000Z")));
            fields.push((
                "x-amz-signature".into(),
                v4_signature(secret, date, region, &policy_b64),
            ));
        }
        mode @ ("v2" | "v2-wrong") => {
            let secret = if mode == "v2" { SECRET } else { "not-the-secret" };
            fields.push(("AWSAccessKeyId".into(), ACCESS_KEY.into()));
            fields.push(("signature".into(), sigv2::post_signature(secret, &policy_b64)));
        }
        _ => {}
    }
    fields.extend(input.fields.iter().cloned());
    let form = PostForm {
        fields,
        filename: input.filename.clone(),
    };
    let bucket = BUCKET;
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000 + i64::from(input.now))
        .expect("a 2023-2159 instant");

    let Ok(verified) = verify_post_form(&form, bucket, &lookup, now) else {
        return;
    };

    // Accepted: the signature is one the harness recomputes with the secret.
    assert_eq!(verified.access_key, ACCESS_KEY);
    let get = |name: &str| {
        form.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let policy_field = get("policy").expect("a verified form has a policy");
    if let Some(signature) = get("x-amz-signature") {
        let credential = get("x-amz-credential").expect("SigV4 has a credential");
        let parts: Vec<&str> = credential.split('/').collect();
        assert_eq!(parts.len(), 5, "{credential:?}");
        assert_eq!(
            signature,
            v4_signature(SECRET, parts[1], parts[2], policy_field),
            "a SigV4 form not signed with the secret was accepted"
        );
    } else {
        let signature = get("signature").expect("SigV2 has a signature");
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).expect("HMAC takes any key");
        mac.update(policy_field.as_bytes());
        assert_eq!(
            signature,
            B64.encode(mac.finalize().into_bytes()),
            "a SigV2 form not signed with the secret was accepted"
        );
    }
    // Unexpired, and every condition holds.
    let policy = parse_policy(policy_field).expect("a verified form's policy parses");
    assert!(now < policy.expiration);
    let value_of = |field: &str| match field {
        "bucket" => Some(bucket.to_owned()),
        "key" => Some(verified.key.clone()),
        other => get(other).map(str::to_owned),
    };
    for condition in &policy.conditions {
        match condition {
            Condition::Eq { field, value } => {
                assert_eq!(
                    value_of(field).as_deref(),
                    Some(value.as_str()),
                    "{}",
                    condition.render()
                );
            }
            Condition::StartsWith { field, prefix } => {
                let v = value_of(field).unwrap_or_else(|| panic!("{} without the field", condition.render()));
                if field != "content-type" {
                    assert!(v.starts_with(prefix.as_str()), "{}", condition.render());
                }
            }
            Condition::ContentLengthRange { .. } => {}
        }
    }
    if verified.content_length_range.is_some() {
        assert!(
            policy
                .conditions
                .iter()
                .any(|c| matches!(c, Condition::ContentLengthRange { .. }))
        );
    }
    // Every submitted field is covered by a condition or exempt.
    for (name, _) in &form.fields {
        let name = name.to_ascii_lowercase();
        let exempt = matches!(
            name.as_str(),
            "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy"
        ) || name.starts_with("x-ignore-");
        assert!(
            exempt || policy.conditions.iter().any(|c| c.field() == Some(name.as_str())),
            "field {name:?} not covered"
        );
    }
    // The key is the submitted one with ${filename} replaced by a basename.
    let raw_key = get("key").expect("a verified form has a key");
    if !raw_key.contains("${filename}") {
        assert_eq!(verified.key, raw_key);
    }
});
