//! The Uppy Companion routes under `/s3/`, called in-process with `oneshot`
//! on the app router: Companion's JSON shapes, and the refusals Companion
//! lacks (no grant, a swapped key or uploadId, garbage part numbers).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use chute_core::{Keyring, ObjectKey, TokenKey};
use chute_server::lifecycle::Lifecycle;
use chute_store::PartOptions;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const MIB: u64 = 1024 * 1024;
/// Two parts at the lifecycle's (and Uppy's) default part size of 5 MiB.
const SIZE: u64 = 6 * MIB + 1;

struct Env {
    app: Router,
    lifecycle: Lifecycle,
    keyring: Keyring,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let keyring = Keyring::new(TokenKey::new("test", vec![7u8; 32]).unwrap(), Vec::new());
    let (app, lifecycle, dir) = crate::in_process_app(keyring.clone()).await;
    Env {
        app,
        lifecycle,
        keyring,
        _dir: dir,
    }
}

impl Env {
    fn grant(&self, subject: &str, expires_in: i64) -> String {
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + expires_in;
        self.keyring
            .sign(&json!({"aud": "chute", "exp": exp, "sub": subject}))
            .unwrap()
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        grant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(g) = grant {
            req = req.header(header::AUTHORIZATION, format!("Bearer {g}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, json)
    }

    /// Starts a multipart upload of `SIZE` bytes: `(key, uploadId)`.
    async fn start(&self, grant: &str, filename: &str) -> (String, String) {
        let body = json!({"filename": filename, "type": "application/octet-stream", "metadata": {"size": SIZE, "name": filename}});
        let (status, res) = self.call("POST", "/s3/multipart", Some(grant), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        (
            res["key"].as_str().unwrap().to_owned(),
            res["uploadId"].as_str().unwrap().to_owned(),
        )
    }

    /// Stores the parts straight in the store, as the browser would through
    /// the part URLs.
    async fn store_parts(&self, key: &str, upload_id: &str) {
        let mpu = self
            .lifecycle
            .verify_upload(upload_id, None)
            .unwrap()
            .mpu
            .unwrap();
        let key = ObjectKey::parse(key).unwrap();
        for (n, len) in [(1, 5 * MIB), (2, SIZE - 5 * MIB)] {
            let body = futures::stream::iter([Ok(Bytes::from(vec![b'x'; len as usize]))]).boxed();
            self.lifecycle
                .store()
                .upload_part(&key, &mpu, n, body, PartOptions::default())
                .await
                .unwrap();
        }
    }
}

fn enc(s: &str) -> String {
    chute_core::sigv4::canonical::uri_encode(s)
}

fn assert_error(res: &Value, code: &str) {
    assert_eq!(res["error"]["code"], code, "{res}");
    assert!(
        res["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{res}"
    );
    // Uppy's Companion client shows a top-level `message` to its user.
    assert_eq!(res["message"], res["error"]["message"], "{res}");
}

#[tokio::test]
async fn params_answer_a_post_form_for_the_exact_size() {
    let env = env().await;
    let grant = env.grant("alice", 600);
    let uri =
        "/s3/params?filename=cat%20photo.txt&type=text%2Fplain&metadata%5Bsize%5D=11&metadata%5Bname%5D=x";
    let (status, res) = env.call("GET", uri, Some(&grant), None).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["method"], "POST");
    assert_eq!(res["url"], "http://127.0.0.1:9000/uploads");
    assert_eq!(res["headers"], json!({}));
    assert!(res["expires"].as_u64().unwrap() > 0);
    let fields = res["fields"].as_object().unwrap();
    let key = fields["key"].as_str().unwrap();
    assert!(
        key.starts_with("tmp/") && key.ends_with("/cat_photo.txt"),
        "{key}"
    );
    for name in ["policy", "x-amz-signature", "x-amz-credential", "content-type"] {
        assert!(fields.contains_key(name), "{name} in {res}");
    }
    let policy = fields["policy"].as_str().unwrap();
    let policy: Value = serde_json::from_slice(&base64_decode(policy)).unwrap();
    assert!(
        policy["conditions"]
            .as_array()
            .unwrap()
            .contains(&json!(["content-length-range", 11, 11])),
        "{policy}"
    );
    // The upload token rides along for clients that want a receipt.
    let claims = env
        .lifecycle
        .verify_upload(res["token"].as_str().unwrap(), None)
        .unwrap();
    assert_eq!(claims.key, key);
    assert_eq!(claims.sub, res["id"].as_str().unwrap());

    let (status, res) = env
        .call(
            "GET",
            "/s3/params?filename=a.txt&type=text%2Fplain",
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&res, "size_required");
    let (status, res) = env
        .call(
            "GET",
            "/s3/params?type=text%2Fplain&metadata%5Bsize%5D=1",
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&res, "filename_required");
}

fn base64_decode(s: &str) -> Vec<u8> {
    // A small standard-alphabet decoder, to keep dev-dependencies lean.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn multipart_round_trip_in_companion_shapes() {
    let env = env().await;
    let grant = env.grant("alice", 600);
    let (key, id) = env.start(&grant, "big file.bin").await;
    assert!(key.starts_with("tmp/") && key.ends_with("/big_file.bin"), "{key}");
    let mpu = env.lifecycle.verify_upload(&id, None).unwrap().mpu.unwrap();
    let q = format!("key={}", enc(&key));

    let (status, res) = env
        .call("GET", &format!("/s3/multipart/{id}?{q}"), Some(&grant), None)
        .await;
    assert_eq!((status, res), (StatusCode::OK, json!([])));

    let (status, res) = env
        .call(
            "GET",
            &format!("/s3/multipart/{id}/batch?{q}&partNumbers=1,2"),
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let urls = res["presignedUrls"].as_object().unwrap();
    assert_eq!(urls.keys().collect::<Vec<_>>(), ["1", "2"]);
    for (n, url) in urls {
        let url = url.as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:9000/uploads/tmp/"), "{url}");
        assert!(
            url.contains(&format!("partNumber={n}")) && url.contains(&format!("uploadId={mpu}")),
            "{url}"
        );
        assert!(url.contains("content-length"), "the part size is signed: {url}");
    }

    let (status, res) = env
        .call("GET", &format!("/s3/multipart/{id}/2?{q}"), Some(&grant), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert!(res["url"].as_str().unwrap().contains("partNumber=2"), "{res}");
    assert!(res["expires"].as_u64().unwrap() > 0, "{res}");

    env.store_parts(&key, &id).await;
    let (status, res) = env
        .call("GET", &format!("/s3/multipart/{id}?{q}"), Some(&grant), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let parts = res.as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["PartNumber"], 1);
    assert_eq!(parts[0]["Size"], 5 * MIB);
    assert_eq!(parts[1]["Size"], SIZE - 5 * MIB);
    let etag = parts[0]["ETag"].as_str().unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );

    // The client's list is only checked for shape: the store's parts decide.
    let body = json!({"parts": [{"PartNumber": 1, "ETag": "\"made-up\""}]});
    let (status, res) = env
        .call(
            "POST",
            &format!("/s3/multipart/{id}/complete?{q}"),
            Some(&grant),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["key"], key.as_str());
    assert_eq!(res["bucket"], "uploads");
    assert_eq!(
        res["location"],
        format!("http://127.0.0.1:9000/uploads/{}", key.replace(' ', "%20"))
    );
    let receipt = env
        .lifecycle
        .verify_receipt(res["receipt"].as_str().unwrap())
        .unwrap();
    assert_eq!((receipt.key.as_str(), receipt.size), (key.as_str(), SIZE));
    assert_eq!(receipt.sub.as_deref(), Some("alice"));
    let meta = env
        .lifecycle
        .store()
        .head(&ObjectKey::parse(&key).unwrap())
        .await
        .unwrap();
    assert_eq!(meta.size, SIZE);

    let (status, res) = env
        .call(
            "POST",
            &format!("/s3/multipart/{id}/complete?{q}"),
            Some(&grant),
            Some(json!({"parts": "x"})),
        )
        .await;
    assert!(status.is_client_error(), "{status} {res}");
    assert_error(&res, "bad_json");
}

#[tokio::test]
async fn abort_answers_an_empty_object() {
    let env = env().await;
    let grant = env.grant("alice", 600);
    let (key, id) = env.start(&grant, "a.bin").await;
    let q = format!("key={}", enc(&key));
    let (status, res) = env
        .call("DELETE", &format!("/s3/multipart/{id}?{q}"), Some(&grant), None)
        .await;
    assert_eq!((status, res), (StatusCode::OK, json!({})));
    let (status, res) = env
        .call("GET", &format!("/s3/multipart/{id}?{q}"), Some(&grant), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&res, "no_such_upload");
}

/// Every route that names an upload, with an empty body where one is needed.
fn upload_routes(id: &str, key: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let q = format!("key={}", enc(key));
    vec![
        ("GET", format!("/s3/multipart/{id}?{q}"), None),
        ("GET", format!("/s3/multipart/{id}/batch?{q}&partNumbers=1"), None),
        ("GET", format!("/s3/multipart/{id}/1?{q}"), None),
        (
            "POST",
            format!("/s3/multipart/{id}/complete?{q}"),
            Some(json!({"parts": []})),
        ),
        ("DELETE", format!("/s3/multipart/{id}?{q}"), None),
    ]
}

#[tokio::test]
async fn a_swapped_key_or_upload_id_is_forbidden() {
    let env = env().await;
    let grant = env.grant("alice", 600);
    let (key_a, id_a) = env.start(&grant, "a.bin").await;
    let (key_b, id_b) = env.start(&grant, "b.bin").await;
    let mpu_a = env.lifecycle.verify_upload(&id_a, None).unwrap().mpu.unwrap();
    // B's header and claims under A's signature.
    let sig_a = id_a.rsplit('.').next().unwrap();
    let forged = format!("{}.{sig_a}", id_b.rsplit_once('.').unwrap().0);
    let cases = [
        (id_a.as_str(), key_b.as_str(), "key_mismatch"),
        (id_b.as_str(), key_a.as_str(), "key_mismatch"),
        (id_a.as_str(), "tmp/other/a.bin", "key_mismatch"),
        (mpu_a.as_str(), key_a.as_str(), "token_malformed"),
        (forged.as_str(), key_a.as_str(), "token_bad_signature"),
    ];
    for (id, key, code) in cases {
        for (method, uri, body) in upload_routes(id, key) {
            let (status, res) = env.call(method, &uri, Some(&grant), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {res}");
            assert_error(&res, code);
        }
    }
    // Nothing was aborted or completed on the way.
    for (key, id) in [(&key_a, &id_a), (&key_b, &id_b)] {
        let (status, res) = env
            .call(
                "GET",
                &format!("/s3/multipart/{id}?key={}", enc(key)),
                Some(&grant),
                None,
            )
            .await;
        assert_eq!((status, res), (StatusCode::OK, json!([])));
    }
}

#[tokio::test]
async fn every_call_needs_a_live_grant_for_the_same_subject() {
    let env = env().await;
    let alice = env.grant("alice", 600);
    let (key, id) = env.start(&alice, "a.bin").await;
    let expired = env.grant("alice", -3600);
    let create = json!({"filename": "a.bin", "type": "application/octet-stream", "metadata": {"size": 1}});
    let params = "/s3/params?filename=a.txt&type=text%2Fplain&metadata%5Bsize%5D=1".to_owned();
    let mut routes = upload_routes(&id, &key);
    routes.push(("POST", "/s3/multipart".into(), Some(create)));
    routes.push(("GET", params, None));
    for (method, uri, body) in &routes {
        for (grant, code) in [(None, "unauthorized"), (Some(expired.as_str()), "token_expired")] {
            let (status, res) = env.call(method, uri, grant, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {res}");
            assert_error(&res, code);
        }
    }
    let (status, res) = env
        .call("GET", "/s3/params?filename=a", Some("not-a-jwt"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "input is checked first: {res}");

    let bob = env.grant("bob", 600);
    for (method, uri, body) in upload_routes(&id, &key) {
        let (status, res) = env.call(method, &uri, Some(&bob), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {res}");
        assert_error(&res, "grant_mismatch");
    }
    // A refreshed grant for the same subject carries on.
    let alice_again = env.grant("alice", 900);
    let (status, _) = env
        .call(
            "GET",
            &format!("/s3/multipart/{id}?key={}", enc(&key)),
            Some(&alice_again),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn garbage_part_numbers_are_bad_requests() {
    let env = env().await;
    let grant = env.grant("alice", 600);
    let (key, id) = env.start(&grant, "a.bin").await;
    let q = format!("key={}", enc(&key));
    for numbers in ["", "x", "1,,2", "0", "10001", "1;2", "-1", "1.5", "%201"] {
        let uri = format!("/s3/multipart/{id}/batch?{q}&partNumbers={numbers}");
        let (status, res) = env.call("GET", &uri, Some(&grant), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{numbers:?}: {res}");
        assert!(
            res["error"]["code"].as_str().unwrap().starts_with("bad_parts")
                || res["error"]["code"] == "partnumbers_required",
            "{res}"
        );
    }
    let (status, res) = env
        .call(
            "GET",
            &format!("/s3/multipart/{id}/batch?{q}"),
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&res, "partnumbers_required");
    for number in ["abc", "0", "-1", "3", "99999"] {
        let uri = format!("/s3/multipart/{id}/{number}?{q}");
        let (status, res) = env.call("GET", &uri, Some(&grant), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{number}: {res}");
        assert_error(&res, "bad_parts");
    }
    let (status, res) = env
        .call("GET", &format!("/s3/multipart/{id}/1"), Some(&grant), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&res, "key_required");
}

#[tokio::test]
async fn a_page_on_another_loopback_port_passes_the_cors_preflight() {
    let env = env().await;
    let req = Request::builder()
        .method("OPTIONS")
        .uri("/s3/multipart")
        .header(header::ORIGIN, "http://127.0.0.1:5173")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap();
    let res = env.app.clone().oneshot(req).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://127.0.0.1:5173");
    let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
}
