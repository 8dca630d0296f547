use crate::harness::{ACCESS, REGION, Req, SECRET, Server, default_creds};
use chute_core::ObjectKey;
use chute_core::sigv4::{PresignRequest, presign_url};
use std::time::Duration;
use time::OffsetDateTime;

#[tokio::test]
async fn wrong_signature_unknown_key_and_anonymous() {
    let s = Server::with_bucket("bk1").await;
    s.send(Req::new("GET", "/bk1").creds(ACCESS, "wrong-secret"))
        .await
        .expect(403, Some("SignatureDoesNotMatch"));
    s.send(Req::new("GET", "/bk1").creds("nobody", SECRET))
        .await
        .expect(403, Some("InvalidAccessKeyId"));
    s.send(Req::new("GET", "/bk1").anonymous())
        .await
        .expect(403, Some("AccessDenied"));
    // A second configured key pair works.
    s.send(Req::new("GET", "/bk1").creds("secondkey", "secondsecret"))
        .await
        .expect(200, None);
}

fn presign(s: &Server, method: &str, key: &str, now: OffsetDateTime, expires: u64) -> String {
    let key = ObjectKey::parse(key).unwrap();
    presign_url(
        &PresignRequest {
            method,
            endpoint: &s.endpoint(),
            bucket: "bk1",
            key: &key,
            path_style: true,
            region: REGION,
            expires_in: Duration::from_secs(expires),
            now,
            query: vec![],
            headers: vec![],
        },
        &default_creds(),
    )
    .unwrap()
}

fn path_and_query(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

#[tokio::test]
async fn presigned_urls() {
    let s = Server::with_bucket("bk1").await;
    let url = presign(&s, "PUT", "up/file.txt", OffsetDateTime::now_utc(), 300);
    s.raw("PUT", &path_and_query(&url), &[], "via presign".into())
        .await
        .expect(200, None);
    let url = presign(&s, "GET", "up/file.txt", OffsetDateTime::now_utc(), 300);
    let r = s.raw("GET", &path_and_query(&url), &[], Default::default()).await;
    r.expect(200, None);
    assert_eq!(&r.body[..], b"via presign");
    let old = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let url = presign(&s, "GET", "up/file.txt", old, 60);
    s.raw("GET", &path_and_query(&url), &[], Default::default())
        .await
        .expect(403, Some("AccessDenied"));
}

#[tokio::test]
async fn unsupported_operation_is_not_implemented() {
    let s = Server::with_bucket("bk1").await;
    s.send(Req::new("GET", "/bk1").query("policy", ""))
        .await
        .expect(501, Some("NotImplemented"));
}
