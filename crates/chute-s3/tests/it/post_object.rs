//! Browser POST Object through Chute's streaming route: success shapes and
//! every refusal, each leaving nothing stored.

use crate::harness::{ACCESS, REGION, SECRET, Server, default_creds, xml_value};
use base64::Engine as _;
use bytes::Bytes;
use chute_core::post_policy::PostPolicyBuilder;
use chute_core::sigv4::{amz_date, credential_scope, hmac_sha256, signing_key};
use chute_core::{BucketName, ObjectKey};
use std::time::Duration;
use time::OffsetDateTime;

pub(crate) const BOUNDARY: &str = "----chutetestboundary7MA4YWxkTrZu0gW";

/// A multipart/form-data body: `fields` in order, then the file part.
pub(crate) fn form_body(fields: &[(String, String)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((filename, data)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post(s: &Server, bucket: &str, body: Vec<u8>) -> crate::harness::Resp {
    let headers = vec![(
        "content-type".to_owned(),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )];
    s.raw("POST", &format!("/{bucket}"), &headers, Bytes::from(body))
        .await
}

/// Fields of a SigV4 form signed over `policy_json` (any shape, so tests
/// can write conditions the builder does not offer).
pub(crate) fn signed_fields(policy_json: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let now = OffsetDateTime::now_utc();
    let date = now.date();
    let credential = format!("{ACCESS}/{}", credential_scope(date, REGION, "s3"));
    let policy = base64::engine::general_purpose::STANDARD.encode(policy_json);
    let signature = hex::encode(hmac_sha256(
        &signing_key(SECRET, date, REGION, "s3"),
        policy.as_bytes(),
    ));
    let mut fields: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    fields.extend([
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date(now)),
        ("policy".to_owned(), policy),
        ("x-amz-signature".to_owned(), signature),
    ]);
    fields
}

pub(crate) fn policy_json(expiration: OffsetDateTime, conditions: &str) -> String {
    let exp = expiration
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"{{"expiration": "{exp}", "conditions": [{{"bucket": "pbk"}}, ["starts-with", "$x-amz-algorithm", ""], ["starts-with", "$x-amz-credential", ""], ["starts-with", "$x-amz-date", ""]{conditions}]}}"#
    )
}

pub(crate) fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

pub(crate) async fn stored(s: &Server, key: &str) -> Option<u64> {
    let bucket = s.store.bucket(&BucketName::parse("pbk").unwrap()).await.unwrap();
    chute_store::Store::head(&bucket, &ObjectKey::parse(key).unwrap())
        .await
        .ok()
        .map(|m| m.size)
}

#[tokio::test]
async fn builder_forms_upload_and_answer_each_success_shape() {
    let s = Server::with_bucket("pbk").await;
    let form = PostPolicyBuilder::new(
        BucketName::parse("pbk").unwrap(),
        ObjectKey::parse("a/one.txt").unwrap(),
    )
    .content_length_range(1, 100)
    .content_type("text/plain")
    .sign(&default_creds(), REGION, &s.endpoint(), OffsetDateTime::now_utc());
    let r = post(&s, "pbk", form_body(&form.fields, Some(("one.txt", b"hello")))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"5d41402abc4b2a76b9719d911017c592\""));
    assert_eq!(stored(&s, "a/one.txt").await, Some(5));
    let got = s.get("pbk", "a/one.txt").await;
    assert_eq!(got.header("content-type"), Some("text/plain"));

    let fields = signed_fields(
        &policy_json(
            in_an_hour(),
            r#", ["eq", "$key", "b/two"], {"success_action_status": "201"}"#,
        ),
        &[("key", "b/two"), ("success_action_status", "201")],
    );
    let r = post(&s, "pbk", form_body(&fields, Some(("x", b"xyz")))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(xml_value(&r.text(), "Key").as_deref(), Some("b/two"));
    assert_eq!(xml_value(&r.text(), "Location").as_deref(), Some("/pbk/b/two"));

    let fields = signed_fields(
        &policy_json(
            in_an_hour(),
            r#", ["eq", "$key", "c/three"], ["starts-with", "$success_action_redirect", "https://app.example/"]"#,
        ),
        &[
            ("key", "c/three"),
            ("success_action_redirect", "https://app.example/done?x=1"),
        ],
    );
    let r = post(&s, "pbk", form_body(&fields, Some(("x", b"3")))).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.headers.get_all("location").iter().count(),
        1,
        "one Location: the redirect"
    );
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with("https://app.example/done?x=1&bucket=pbk&key=c%2Fthree&etag="),
        "{location}"
    );
}

#[tokio::test]
async fn filename_placeholder_takes_the_basename_and_never_escapes() {
    let s = Server::with_bucket("pbk").await;
    let fields = signed_fields(
        &policy_json(in_an_hour(), r#", ["starts-with", "$key", "up/"]"#),
        &[("key", "up/${filename}")],
    );
    let r = post(&s, "pbk", form_body(&fields, Some(("../../etc/passwd", b"p")))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(stored(&s, "up/passwd").await, Some(1));
    let before = s.files();
    let r = post(&s, "pbk", form_body(&fields, Some(("..", b"p")))).await;
    r.expect(400, Some("InvalidArgument"));
    assert_eq!(s.files(), before);
}

#[tokio::test]
async fn refusals_store_nothing() {
    let s = Server::with_bucket("pbk").await;
    let good = policy_json(
        in_an_hour(),
        r#", ["eq", "$key", "k"], ["content-length-range", 2, 10]"#,
    );
    let fields = signed_fields(&good, &[("key", "k")]);
    let before = s.files();

    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "too large",
            form_body(&fields, Some(("f", &[1u8; 11]))),
            400,
            "EntityTooLarge",
        ),
        (
            "too small",
            form_body(&fields, Some(("f", b"1"))),
            400,
            "EntityTooSmall",
        ),
        ("no file part", form_body(&fields, None), 400, "InvalidArgument"),
    ];
    let mut tampered = fields.clone();
    tampered.last_mut().unwrap().1 = "0".repeat(64);
    cases.push((
        "tampered signature",
        form_body(&tampered, Some(("f", b"abc"))),
        403,
        "SignatureDoesNotMatch",
    ));
    let expired = signed_fields(
        &policy_json(
            OffsetDateTime::now_utc() - Duration::from_secs(1),
            r#", ["eq", "$key", "k"]"#,
        ),
        &[("key", "k")],
    );
    cases.push((
        "expired",
        form_body(&expired, Some(("f", b"abc"))),
        403,
        "AccessDenied",
    ));
    let mut extra = fields.clone();
    extra.insert(0, ("x-amz-meta-sneaky".into(), "1".into()));
    cases.push((
        "uncovered field",
        form_body(&extra, Some(("f", b"abc"))),
        403,
        "AccessDenied",
    ));
    let wrong_key = signed_fields(&good, &[("key", "other")]);
    cases.push((
        "key outside policy",
        form_body(&wrong_key, Some(("f", b"abc"))),
        403,
        "AccessDenied",
    ));
    let mut v2 = fields.clone();
    v2.push(("AWSAccessKeyId".into(), ACCESS.into()));
    cases.push((
        "mixed signature versions",
        form_body(&v2, Some(("f", b"abc"))),
        400,
        "InvalidArgument",
    ));
    let big = vec![("key".to_owned(), "k".repeat(21 * 1024))];
    cases.push((
        "fields over 20 KiB",
        form_body(&big, Some(("f", b"abc"))),
        400,
        "MaxPostPreDataLengthExceededError",
    ));
    let mut truncated = form_body(&fields, Some(("f", b"abcdef")));
    truncated.truncate(truncated.len() - BOUNDARY.len() - 8);
    cases.push(("no closing boundary", truncated, 400, "MalformedPOSTRequest"));
    let checksum = signed_fields(
        &policy_json(
            in_an_hour(),
            r#", ["eq", "$key", "k"], ["starts-with", "$x-amz-checksum-sha256", ""]"#,
        ),
        &[
            ("key", "k"),
            (
                "x-amz-checksum-sha256",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            ),
        ],
    );
    cases.push((
        "wrong checksum",
        form_body(&checksum, Some(("f", b"abc"))),
        400,
        "BadDigest",
    ));

    for (what, body, status, code) in cases {
        let r = post(&s, "pbk", body).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(
            xml_value(&r.text(), "Code").as_deref(),
            Some(code),
            "{what}: {}",
            r.text()
        );
        assert_eq!(
            r.header("x-amz-request-id").map(str::to_owned),
            xml_value(&r.text(), "RequestId"),
            "{what}: header and body name one request"
        );
        assert_eq!(s.files(), before, "{what} left files behind");
    }
    assert_eq!(stored(&s, "k").await, None);
}

#[tokio::test]
async fn malformed_requests_are_refused_before_reading_a_file() {
    let s = Server::with_bucket("pbk").await;
    let no_boundary = vec![("content-type".to_owned(), "multipart/form-data".to_owned())];
    let r = s
        .raw("POST", "/pbk", &no_boundary, Bytes::from_static(b"--x--"))
        .await;
    r.expect(400, Some("MalformedPOSTRequest"));
    let fields = signed_fields(
        &policy_json(in_an_hour(), r#", ["eq", "$key", "k"]"#),
        &[("key", "k")],
    );
    let r = post(&s, "nosuchbucket", form_body(&fields, Some(("f", b"abc")))).await;
    r.expect(404, Some("NoSuchBucket"));
    let oversize = vec![
        (
            "content-type".to_owned(),
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ),
        ("content-length".to_owned(), (6u64 << 30).to_string()),
    ];
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("POST")
        .uri("/pbk")
        .header("host", s.addr.to_string());
    for (k, v) in &oversize {
        req = req.header(k, v);
    }
    let (_tx, body) = futures::channel::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send_request(req.body(http_body_util::StreamBody::new(body)).unwrap()),
    )
    .await
    .expect("a declared 6 GiB form is refused without waiting for its body")
    .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn forms_with_a_query_still_take_the_streaming_route() {
    // s3s would parse this as POST Object too, buffering the file before
    // its access check; Chute's route must answer instead, unauthenticated.
    let s = Server::with_bucket("pbk").await;
    let headers = vec![(
        "content-type".to_owned(),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )];
    let body = form_body(&[("key".into(), "k".into())], Some(("f", &[0u8; 1024])));
    let r = s.raw("POST", "/pbk?x=1", &headers, Bytes::from(body)).await;
    r.expect(403, Some("AccessDenied"));
    assert!(
        r.text().contains("anonymous POST uploads are not allowed"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn many_empty_fields_exhaust_the_field_budget() {
    let s = Server::with_bucket("pbk").await;
    let fields: Vec<(String, String)> = (0..1000).map(|_| (String::new(), String::new())).collect();
    let r = post(&s, "pbk", form_body(&fields, Some(("f", b"abc")))).await;
    r.expect(400, Some("MaxPostPreDataLengthExceededError"));
}

#[tokio::test]
async fn values_that_cannot_be_headers_are_refused_before_storing() {
    let s = Server::with_bucket("pbk").await;
    let before = s.files();
    let fields = signed_fields(
        &policy_json(
            in_an_hour(),
            r#", ["eq", "$key", "k"], ["starts-with", "$Content-Type", ""]"#,
        ),
        &[("key", "k"), ("Content-Type", "text/plain\r\nX-Evil: 1")],
    );
    let r = post(&s, "pbk", form_body(&fields, Some(("f", b"abc")))).await;
    r.expect(400, Some("InvalidArgument"));
    let fields = signed_fields(
        &policy_json(
            in_an_hour(),
            r#", ["eq", "$key", "k"], ["starts-with", "$success_action_redirect", ""]"#,
        ),
        &[
            ("key", "k"),
            ("success_action_redirect", "https://app.example/\u{7f}done"),
        ],
    );
    let r = post(&s, "pbk", form_body(&fields, Some(("f", b"abc")))).await;
    r.expect(400, Some("InvalidArgument"));
    assert_eq!(s.files(), before);
}
