//! `POST /api/stream` and `PUT /api/stream/{filename}` against a real
//! server: files stored with receipts, and every hostile body answered
//! with a clear error that leaves no object, no open multipart upload and
//! no marker behind.

use crate::http::{read_response, request};
use chute_core::{BucketName, Keyring, ObjectKey, TokenKey};
use chute_server::Config;
use chute_store::fs::FsStore;
use chute_store::{ListOptions, MultipartStore, Store};
use futures::TryStreamExt as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
const GRANT_KEY: &str = "test1:grant-secret-for-tests-0123456789abcdef";
const BOUNDARY: &str = "chute-test-boundary-7d2f";

/// A server over `<dir>/data` (kept after it stops, for inspection).
struct Env {
    running: crate::Running,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start(tune: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut raw_config = crate::test_config(&data);
    tune(&mut raw_config);
    let running = crate::run(raw_config, tempfile::tempdir().unwrap()).await;
    Env {
        running,
        data,
        _dir: dir,
    }
}

/// Config with JWT grants and 5 MiB parts.
fn with_grants(c: &mut Config) {
    let mut raw = chute_server::RawConfig {
        listen: Some("127.0.0.1:0".into()),
        s3_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(c.data_dir.clone()),
        s3_access_key: Some(crate::ACCESS_KEY.into()),
        s3_secret_key: Some(crate::SECRET_KEY.into()),
        shutdown_grace_seconds: Some(10),
        grant_secret: Some(GRANT_KEY.into()),
        stream_part_size: Some(5 * MIB as u64),
        ..chute_server::RawConfig::default()
    };
    raw.open_grants = Some(true);
    *c = Config::try_from(raw).unwrap();
}

fn grant(claims: serde_json::Value) -> String {
    let keys = Keyring::new(TokenKey::parse(GRANT_KEY).unwrap(), vec![]);
    let mut claims = claims;
    claims["aud"] = "chute".into();
    claims["exp"] = (time::OffsetDateTime::now_utc().unix_timestamp() + 600).into();
    keys.sign(&claims).unwrap()
}

/// A part of a hand-built form.
enum Part<'a> {
    Field(&'a str, &'a str),
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Field(name, value) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
                );
            }
            Part::File(name, filename, content_type, data) => {
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn post_head(len: usize, extra: &str) -> String {
    format!(
        "POST /api/stream HTTP/1.1\r\nHost: chute\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {len}{extra}"
    )
}

fn json_of(text: &str) -> serde_json::Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an answer is `want_status` with the JSON error code `want_code`.
#[track_caller]
fn assert_refused(status: u16, text: &str, want_status: u16, want_code: &str) {
    assert_eq!(
        (status, code_of(text).as_str()),
        (want_status, want_code),
        "{text}"
    );
}

fn code_of(text: &str) -> String {
    json_of(text)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Bytes that are not any known format, and a pseudo-random pattern.
fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1])
        .collect()
}

/// What the store holds under `tmp/` and `.chute/streams/`, and its open
/// multipart uploads. Opened once the server is stopped.
async fn leftovers(data_dir: &Path) -> (Vec<String>, usize) {
    let store = FsStore::open(data_dir).await.unwrap();
    let bucket = store
        .bucket(&BucketName::parse("uploads").unwrap())
        .await
        .unwrap();
    let mut keys = Vec::new();
    for prefix in ["tmp/", ".chute/streams/"] {
        let listed = bucket
            .list(&ListOptions {
                prefix: prefix.into(),
                ..ListOptions::default()
            })
            .await
            .unwrap();
        keys.extend(listed.objects.into_iter().map(|o| o.key.as_str().to_owned()));
    }
    let uploads = bucket.list_multipart_uploads("").await.unwrap().len();
    (keys, uploads)
}

/// Stops the server and asserts it left nothing behind.
async fn assert_clean(env: Env) {
    env.running.stop().await;
    let (keys, uploads) = leftovers(&env.data).await;
    assert!(keys.is_empty(), "objects left: {keys:?}");
    assert_eq!(uploads, 0, "open multipart uploads left");
}

async fn object(data_dir: &Path, key: &str) -> Vec<u8> {
    let store = FsStore::open(data_dir).await.unwrap();
    let bucket = store
        .bucket(&BucketName::parse("uploads").unwrap())
        .await
        .unwrap();
    let got = bucket.get(&ObjectKey::parse(key).unwrap(), None).await.unwrap();
    got.body
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_form_stores_each_file_with_a_receipt_and_answers_its_fields() {
    let env = start(with_grants).await;
    let big = data(12 * MIB + 123);
    let body = form(&[
        Part::Field("title", "holiday"),
        Part::File("nothing", "", "application/octet-stream", b""),
        Part::File("photo", "a b.txt", "text/plain", b"hello"),
        Part::Field("tag", "x"),
        Part::Field("tag", "y"),
        Part::File("video", "big.bin", "application/octet-stream", &big),
        Part::File("empty", "empty.txt", "text/plain", b""),
    ]);
    let (status, text) = request(env.running.app, &post_head(body.len(), ""), &body).await;
    assert_eq!(status, 201, "{text}");
    let json = json_of(&text);
    assert_eq!(json["fields"]["title"], "holiday");
    assert_eq!(json["fields"]["tag"], serde_json::json!(["x", "y"]));
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[2]["file_size"], 0);
    assert_eq!(files[0]["field"], "photo");
    assert_eq!(files[0]["original_name"], "a b.txt");
    assert_eq!(files[0]["file_size"], 5);
    assert_eq!(files[1]["file_size"], big.len() as u64);
    assert!(
        files[1]["object"]["etag"].as_str().unwrap().ends_with("-3"),
        "5 MiB parts"
    );
    assert!(files[0]["receipt"].as_str().unwrap().starts_with("ey"));
    let keys: Vec<String> = files[..2]
        .iter()
        .map(|f| f["object"]["key"].as_str().unwrap().to_owned())
        .collect();

    // A raw body, with and without Content-Length.
    let raw = data(6 * MIB);
    let head = format!(
        "PUT /api/stream/r%C3%A9sum%C3%A9.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: {}",
        raw.len()
    );
    let (status, text) = request(env.running.app, &head, &raw).await;
    assert_eq!(status, 201, "{text}");
    let put = json_of(&text);
    assert_eq!(put["files"][0]["original_name"], "résumé.bin");
    assert_eq!(put["files"][0]["field"], "file");
    let raw_key = put["files"][0]["object"]["key"].as_str().unwrap().to_owned();
    let chunked = chunked_body(&[b"chunk-one ", b"chunk-two"]);
    let head = "PUT /api/stream/c.txt HTTP/1.1\r\nHost: chute\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked";
    let (status, text) = request(env.running.app, head, &chunked).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(json_of(&text)["files"][0]["file_size"], 19);

    env.running.stop().await;
    assert_eq!(object(&env.data, &keys[0]).await, b"hello");
    assert!(
        object(&env.data, &keys[1]).await == big,
        "the multipart object is byte-identical"
    );
    assert!(object(&env.data, &raw_key).await == raw);
    let (left, uploads) = leftovers(&env.data).await;
    assert_eq!(left.len(), 5, "the five files and no marker: {left:?}");
    assert_eq!(uploads, 0);
}

fn chunked_body(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn the_client_never_chooses_the_key() {
    let env = start(with_grants).await;
    let body = form(&[Part::File("f", "../../.chute/evil\\x.txt", "text/plain", b"hi")]);
    let (status, text) = request(env.running.app, &post_head(body.len(), ""), &body).await;
    assert_eq!(status, 201, "{text}");
    let key = json_of(&text)["files"][0]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = key.strip_prefix("tmp/").unwrap();
    let (id, name) = rest.split_once('/').unwrap();
    assert!(
        !id.is_empty() && !name.contains('/') && !name.contains("..") && !name.contains('\\'),
        "{key}"
    );
    let head = "PUT /api/stream/..%2F..%2Fup.txt HTTP/1.1\r\nHost: chute\r\nContent-Length: 2";
    let (status, text) = request(env.running.app, head, b"hi").await;
    assert_eq!(status, 201, "{text}");
    let key = json_of(&text)["files"][0]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        key.starts_with("tmp/") && key.matches('/').count() == 2 && !key.contains(".."),
        "{key}"
    );
    env.running.stop().await;
}

#[tokio::test]
async fn wrong_content_types_and_missing_boundaries_are_refused() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let head =
        "POST /api/stream HTTP/1.1\r\nHost: chute\r\nContent-Type: application/json\r\nContent-Length: 2";
    let (status, text) = request(app, head, b"{}").await;
    assert_refused(status, &text, 415, "need_multipart");
    let head =
        "POST /api/stream HTTP/1.1\r\nHost: chute\r\nContent-Type: multipart/form-data\r\nContent-Length: 2";
    let (status, text) = request(app, head, b"xx").await;
    assert_refused(status, &text, 400, "no_boundary");
    assert_clean(env).await;
}

#[tokio::test]
async fn malformed_multipart_is_refused_and_leaves_nothing() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let big = data(7 * MIB);
    let good = form(&[Part::File("f", "a.bin", "application/octet-stream", &big)]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The closing boundary never comes: the body just ends.
        ("unterminated", good[..good.len() - BOUNDARY.len() - 8].to_vec()),
        // Another boundary than the header's.
        (
            "wrong boundary",
            good.replace_all(BOUNDARY.as_bytes(), b"something-else"),
        ),
        // Part headers that are not headers.
        ("garbage headers", {
            let mut b = format!("--{BOUNDARY}\r\nthis is: not\x01 a header\r\n\r\nxx\r\n--{BOUNDARY}--\r\n")
                .into_bytes();
            b.truncate(b.len());
            b
        }),
        ("empty form", format!("--{BOUNDARY}--\r\n").into_bytes()),
    ];
    for (what, body) in cases {
        let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
        assert!([400, 431].contains(&status), "{what}: {text}");
        assert!(
            [
                "malformed_multipart",
                "empty_form",
                "body_incomplete",
                "part_headers_too_large"
            ]
            .contains(&code_of(&text).as_str()),
            "{what}: {text}"
        );
    }
    assert_clean(env).await;
}

trait ReplaceAll {
    fn replace_all(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceAll for Vec<u8> {
    fn replace_all(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        let mut i = 0;
        while i < self.len() {
            if self[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
            } else {
                out.push(self[i]);
                i += 1;
            }
        }
        out
    }
}

#[tokio::test]
async fn ten_thousand_fields_and_oversized_fields_are_refused() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let names: Vec<String> = (0..10_000).map(|i| format!("f{i}")).collect();
    let mut parts: Vec<Part<'_>> = vec![Part::File(
        "a",
        "a.bin",
        "application/octet-stream",
        b"first file",
    )];
    parts.extend(names.iter().map(|n| Part::Field(n, "v")));
    let body = form(&parts);
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 413, "too_many_fields");

    let long = "x".repeat(65 * 1024);
    let body = form(&[Part::Field("essay", &long)]);
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 413, "field_too_large");
    assert_clean(env).await;
}

#[tokio::test]
async fn a_megabyte_of_headers_is_refused() {
    let env = start(with_grants).await;
    let app = env.running.app;
    // In a part's headers: multer would buffer them whole.
    let mut body =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nX-Big: ")
            .into_bytes();
    body.extend(std::iter::repeat_n(b'a', MIB));
    body.extend_from_slice(format!("\r\n\r\ndata\r\n--{BOUNDARY}--\r\n").as_bytes());
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 431, "part_headers_too_large");
    // Before the first boundary.
    let mut body = vec![b'p'; MIB];
    body.extend(form(&[Part::File(
        "f",
        "a.bin",
        "application/octet-stream",
        b"x",
    )]));
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 431, "part_headers_too_large");
    // In the request's own headers: hyper refuses them.
    let head = format!(
        "PUT /api/stream/a.bin HTTP/1.1\r\nHost: chute\r\nX-Big: {}\r\nContent-Length: 1",
        "a".repeat(MIB)
    );
    let (status, _) = request(app, &head, b"x").await;
    assert_eq!(status, 431);
    assert_clean(env).await;
}

#[tokio::test]
async fn bodies_larger_than_the_grant_are_cut_off() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let token = grant(serde_json::json!({"jti": "g-size", "max_size": 6 * MIB}));
    let auth = format!("\r\nAuthorization: Bearer {token}");
    let big = data(8 * MIB);

    // Raw, with Content-Length: refused before the body is read; a client
    // waiting for `100 Continue` never gets it.
    let head = format!(
        "PUT /api/stream/a.bin HTTP/1.1\r\nHost: chute\r\nExpect: 100-continue\r\nContent-Length: {}{auth}",
        big.len()
    );
    let (status, text) = request(app, &head, b"").await;
    assert_refused(status, &text, 413, "too_large");
    assert!(!text.contains("100 Continue"), "{text}");
    // Without Expect, the client sends at once: it reads the error, not a reset.
    let head = format!(
        "PUT /api/stream/a.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: {}{auth}",
        big.len()
    );
    let (status, text) = request(app, &head, &big).await;
    assert_refused(status, &text, 413, "too_large");
    // Raw, chunked: counted while streaming (after a 5 MiB part was sent).
    let head = format!("PUT /api/stream/a.bin HTTP/1.1\r\nHost: chute\r\nTransfer-Encoding: chunked{auth}");
    let (status, text) = request(app, &head, &chunked_body(&[&big[..4 * MIB], &big[4 * MIB..]])).await;
    assert_refused(status, &text, 413, "too_large");
    // A form: a small file first, then one too large; the first goes too.
    let body = form(&[
        Part::File("ok", "ok.txt", "text/plain", b"fine"),
        Part::File("big", "big.bin", "application/octet-stream", &big),
    ]);
    let (status, text) = request(app, &post_head(body.len(), &auth), &body).await;
    assert_refused(status, &text, 413, "too_large");
    // A Content-Length that lies (shorter than the body it promises).
    let head = format!("PUT /api/stream/a.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: 100{auth}");
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(&[1u8; 50]).await.unwrap();
    stream.shutdown().await.unwrap();
    let (status, text) = read_response(&mut stream).await;
    assert_eq!(status, 400, "{text}");
    assert_clean(env).await;
}

#[tokio::test]
async fn the_content_is_sniffed_against_the_declared_type_and_the_grant() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".repeat(200);
    let body = form(&[Part::File("f", "cat.png", "image/png", &html)]);
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 422, "type_mismatch");

    // A real PNG header, but the grant takes PDFs only (after 6 MiB of a
    // would-be multipart file, nothing was stored: the sniff comes first).
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    png.extend(data(6 * MIB));
    let token = grant(serde_json::json!({"types": ["application/pdf", "application/octet-stream"]}));
    let head = format!(
        "PUT /api/stream/x.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: {}\r\nAuthorization: Bearer {token}",
        png.len()
    );
    let (status, text) = request(app, &head, &png).await;
    assert_refused(status, &text, 422, "type_not_allowed");
    assert_clean(env).await;
}

#[tokio::test]
async fn too_many_files_undo_the_whole_form() {
    let env = start(|c| {
        with_grants(c);
        c.stream.max_files = 2;
    })
    .await;
    let body = form(&[
        Part::File("a", "a.txt", "text/plain", b"one"),
        Part::File("b", "b.txt", "text/plain", b"two"),
        Part::File("c", "c.txt", "text/plain", b"three"),
    ]);
    let (status, text) = request(env.running.app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 413, "too_many_files");
    // The grant's max_files counts too, and a refused form gives its uses back.
    let token = grant(serde_json::json!({"jti": "g-files", "max_files": 1}));
    let auth = format!("\r\nAuthorization: Bearer {token}");
    let two = form(&[
        Part::File("a", "a.txt", "text/plain", b"one"),
        Part::File("b", "b.txt", "text/plain", b"two"),
    ]);
    let (status, text) = request(env.running.app, &post_head(two.len(), &auth), &two).await;
    assert_refused(status, &text, 403, "max_files_reached");
    let one = form(&[Part::File("a", "a.txt", "text/plain", b"one")]);
    let (status, text) = request(env.running.app, &post_head(one.len(), &auth), &one).await;
    assert_eq!(status, 201, "the refused form gave its use back: {text}");
    env.running.stop().await;
    let (keys, uploads) = leftovers(&env.data).await;
    assert_eq!(keys.len(), 1, "only the last form's file: {keys:?}");
    assert_eq!(uploads, 0);
}

/// Sends `head` and then `body` a piece at a time with `pause` between.
async fn trickle(addr: SocketAddr, head: &str, body: &[u8], piece: usize, pause: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for chunk in body.chunks(piece) {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    read_response(&mut stream).await
}

#[tokio::test]
async fn a_slow_client_times_out_and_leaves_nothing() {
    let env = start(|c| {
        with_grants(c);
        c.stream.body_idle_timeout = Duration::from_millis(400);
    })
    .await;
    let big = data(6 * MIB);
    let body = form(&[Part::File("f", "slow.bin", "application/octet-stream", &big)]);
    // The first 5.5 MiB fast (a part is stored), then a byte a second.
    let app = env.running.app;
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(format!("{}\r\nConnection: close\r\n\r\n", post_head(body.len(), "")).as_bytes())
        .await
        .unwrap();
    let fast = 5 * MIB + MIB / 2;
    stream.write_all(&body[..fast]).await.unwrap();
    for b in &body[fast..fast + 3] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(&[*b]).await.is_err() {
            break;
        }
    }
    let (status, text) = read_response(&mut stream).await;
    assert_refused(status, &text, 408, "body_timeout");
    // A raw body too.
    let head = "PUT /api/stream/slow.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: 10";
    let (status, text) = trickle(app, head, b"0123456789", 1, Duration::from_secs(1)).await;
    assert_refused(status, &text, 408, "body_timeout");
    assert_clean(env).await;
}

#[tokio::test]
async fn a_trickle_that_never_pauses_long_is_cut_off_by_its_rate() {
    // Never idle for the timeout (a byte every 150 ms against 600 ms), but
    // far under 1 KiB/s: the rate check ends it after one window of waiting.
    let env = start(|c| {
        with_grants(c);
        c.stream.body_idle_timeout = Duration::from_millis(600);
    })
    .await;
    let head = "PUT /api/stream/trickle.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: 40";
    let (status, text) = trickle(env.running.app, head, &[b'x'; 40], 1, Duration::from_millis(150)).await;
    assert_refused(status, &text, 408, "body_timeout");
    assert_clean(env).await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_file_leaves_nothing() {
    let env = start(with_grants).await;
    let app = env.running.app;
    let big = data(20 * MIB);
    let body = form(&[
        Part::File("done", "done.txt", "text/plain", b"stored before the cut"),
        Part::File("f", "cut.bin", "application/octet-stream", &big),
    ]);
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(format!("{}\r\n\r\n", post_head(body.len(), "")).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..12 * MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    // A raw body cut the same way.
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(
            format!(
                "PUT /api/stream/cut.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: {}\r\n\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&big[..11 * MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    // The undo runs in the server; give it a moment, then look.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_clean(env).await;
}

#[tokio::test]
async fn requests_share_the_memory_budget_by_waiting() {
    // Room for one 5 MiB part in the whole process: concurrent uploads
    // take turns part by part, and all of them finish.
    let env = start(|c| {
        with_grants(c);
        c.stream.memory_mib = 5;
    })
    .await;
    let app = env.running.app;
    let files: Vec<Vec<u8>> = (0..3).map(|i| data(12 * MIB + i)).collect();
    let sends = files.iter().map(|f| {
        let body = form(&[Part::File("f", "shared.bin", "application/octet-stream", f)]);
        async move { request(app, &post_head(body.len(), ""), &body).await }
    });
    let answers = futures::future::join_all(sends).await;
    let mut keys = Vec::new();
    for ((status, text), f) in answers.iter().zip(&files) {
        assert_eq!(*status, 201, "{text}");
        let file = &json_of(text)["files"][0];
        assert_eq!(file["file_size"], f.len() as u64);
        keys.push(file["object"]["key"].as_str().unwrap().to_owned());
    }
    env.running.stop().await;
    for (key, f) in keys.iter().zip(&files) {
        assert!(object(&env.data, key).await == *f, "{key} is byte-identical");
    }
}

/// The files under `dir` whose path contains `part`.
fn files_under(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().contains(part) {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_marker_that_cannot_be_removed_fails_the_request_instead_of_receipting_it() {
    // A marker that outlived a receipt would have the reaper delete the
    // receipted file: removing the markers is the commit point.
    let env = start(with_grants).await;
    let app = env.running.app;
    let body = form(&[Part::File("f", "a.txt", "text/plain", b"hello marker")]);
    let split = body.len() - 20;
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(format!("{}\r\n\r\n", post_head(body.len(), "\r\nConnection: close")).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..split]).await.unwrap();
    let mut markers = Vec::new();
    for _ in 0..100 {
        markers = files_under(&env.data, "streams");
        if !markers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(markers.len(), 1, "{markers:?}");
    // A directory where the marker was: deleting it fails.
    std::fs::remove_file(&markers[0]).unwrap();
    std::fs::create_dir_all(markers[0].join("stuck")).unwrap();
    stream.write_all(&body[split..]).await.unwrap();
    let (status, text) = read_response(&mut stream).await;
    assert_refused(status, &text, 503, "store_unavailable");
    std::fs::remove_dir_all(&markers[0]).unwrap();
    assert_clean(env).await;
}

#[tokio::test]
async fn many_small_parts_bank_no_header_allowance() {
    // Empty file inputs count as fields: 10,000 of them are refused.
    let env = start(with_grants).await;
    let app = env.running.app;
    let empties: Vec<Part<'_>> = (0..10_000)
        .map(|_| Part::File("f", "", "application/octet-stream", b""))
        .collect();
    let body = form(&empties);
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 413, "too_many_fields");
    // The allowance of 99 small fields is not saved up for one big part
    // header later.
    let names: Vec<String> = (0..99).map(|i| format!("f{i}")).collect();
    let mut body: Vec<u8> = form(&names.iter().map(|n| Part::Field(n, "v")).collect::<Vec<_>>());
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nX-Big: ")
            .as_bytes(),
    );
    body.extend(std::iter::repeat_n(b'a', 1200 * 1024));
    body.extend_from_slice(format!("\r\n\r\ndata\r\n--{BOUNDARY}--\r\n").as_bytes());
    let (status, text) = request(app, &post_head(body.len(), ""), &body).await;
    assert_refused(status, &text, 431, "part_headers_too_large");
    assert_clean(env).await;
}

#[tokio::test]
async fn a_request_waits_for_the_memory_budget_only_so_long() {
    // 5 MiB for the whole process, held by a part whose client trickles
    // a byte a second: another upload is answered 503, not kept waiting
    // for ever.
    let env = start(|c| {
        with_grants(c);
        c.stream.memory_mib = 5;
        c.stream.body_idle_timeout = Duration::from_secs(2);
    })
    .await;
    let app = env.running.app;
    let big = data(20 * MIB);
    let slow_body = form(&[Part::File("f", "slow.bin", "application/octet-stream", &big)]);
    let mut slow = TcpStream::connect(app).await.unwrap();
    slow.write_all(format!("{}\r\n\r\n", post_head(slow_body.len(), "")).as_bytes())
        .await
        .unwrap();
    slow.write_all(&slow_body[..300 * 1024]).await.unwrap();
    let trickle = tokio::spawn(async move {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if slow.write_all(&slow_body[300 * 1024 + i..][..1]).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = data(3 * MIB);
    let body = form(&[Part::File("f", "other.bin", "application/octet-stream", &other)]);
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        request(app, &post_head(body.len(), ""), &body),
    )
    .await;
    let (status, text) = answer.expect("the other upload was kept waiting");
    assert_refused(status, &text, 503, "busy");
    trickle.abort();
}

#[tokio::test]
async fn a_slot_given_back_out_of_order_is_used_again() {
    // max_files 3. X takes slot 1 and is still sending while Y takes
    // slot 2; X is then refused and gives slot 1 back, Z takes slot 3.
    // Two files are stored, so a third must still be let in.
    let env = start(with_grants).await;
    let app = env.running.app;
    let token = grant(serde_json::json!({"jti": "g-gaps", "max_files": 3}));
    let put = |name: &str, len: usize, ty: &str| {
        format!(
            "PUT /api/stream/{name} HTTP/1.1\r\nHost: chute\r\nContent-Type: {ty}\r\n\
             Content-Length: {len}\r\nAuthorization: Bearer {token}"
        )
    };
    let text_body = vec![b't'; 20 * 1024];
    let mut x = TcpStream::connect(app).await.unwrap();
    x.write_all(
        format!(
            "{}\r\nConnection: close\r\n\r\n",
            put("x.png", text_body.len(), "image/png")
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    x.write_all(&text_body[..100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, text) = request(app, &put("y.txt", 3, "text/plain"), b"yyy").await;
    assert_eq!(status, 201, "{text}");
    x.write_all(&text_body[100..]).await.unwrap();
    let (status, text) = read_response(&mut x).await;
    assert_eq!(status, 422, "{text}");
    let (status, text) = request(app, &put("z.txt", 3, "text/plain"), b"zzz").await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = request(app, &put("w.txt", 3, "text/plain"), b"www").await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = request(app, &put("v.txt", 3, "text/plain"), b"vvv").await;
    assert_refused(status, &text, 403, "max_files_reached");
}

#[tokio::test]
async fn a_file_name_that_is_not_utf8_gets_a_json_error() {
    let env = start(with_grants).await;
    let head = "PUT /api/stream/%FF HTTP/1.1\r\nHost: chute\r\nContent-Length: 1";
    let (status, text) = request(env.running.app, head, b"x").await;
    assert_refused(status, &text, 400, "bad_filename");
    assert_clean(env).await;
}

#[tokio::test]
async fn an_upload_past_its_expiry_is_refused_and_undone() {
    let env = start(|c| {
        with_grants(c);
        c.lifecycle.upload_ttl = Duration::from_secs(2);
    })
    .await;
    let app = env.running.app;
    let body = [b'x'; 20];
    let mut stream = TcpStream::connect(app).await.unwrap();
    stream
        .write_all(
            format!(
                "PUT /api/stream/late.bin HTTP/1.1\r\nHost: chute\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stream.write_all(&body[10..]).await.unwrap();
    let (status, text) = read_response(&mut stream).await;
    assert_refused(status, &text, 408, "upload_expired");
    assert_clean(env).await;
}

/// The app router in process over a store in a temporary directory, so a
/// test chooses how the body's bytes are chunked (hyper hands a route at
/// most what one socket read brings; an embedding app or a proxy may
/// hand it a whole body at once).
struct InProcess {
    app: axum::Router,
    dir: tempfile::TempDir,
}

async fn in_process() -> InProcess {
    let keyring = Keyring::new(TokenKey::parse(GRANT_KEY).unwrap(), vec![]);
    let (app, _, dir) = crate::in_process_app(keyring).await;
    InProcess { app, dir }
}

/// Posts `chunks` as a form's body, counting the bytes the server pulls
/// from it: the status, the answer's JSON and the bytes pulled.
async fn post_chunks<S>(env: &InProcess, chunks: S) -> (u16, serde_json::Value, u64)
where
    S: futures::Stream<Item = Vec<u8>> + Send + 'static,
{
    use futures::StreamExt as _;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tower::ServiceExt as _;
    let pulled = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&pulled);
    let body = chunks.map(move |c| {
        counter.fetch_add(c.len() as u64, Ordering::Relaxed);
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c))
    });
    let req = axum::http::Request::post("/api/stream")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(
            "authorization",
            format!("Bearer {}", grant(serde_json::json!({}))),
        )
        .body(axum::body::Body::from_stream(body))
        .unwrap();
    let res = env.app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json, pulled.load(Ordering::Relaxed))
}

/// `body` cut into pieces of `size` bytes.
fn pieces(body: &[u8], size: usize) -> futures::stream::Iter<std::vec::IntoIter<Vec<u8>>> {
    futures::stream::iter(body.chunks(size).map(<[u8]>::to_vec).collect::<Vec<_>>())
}

/// A valid form whose whole body is ready at once (here in pieces from
/// 300 KiB to the whole body in one): the overhead guard allows for what
/// multer reads ahead, so small fields before a big file do not make it
/// refuse the form as if a part's headers were too large.
#[tokio::test]
async fn a_form_ready_at_once_in_big_chunks_is_stored_whole() {
    let env = in_process().await;
    let big = data(9 * MIB + 17);
    let body = form(&[
        Part::Field("title", "holiday"),
        Part::Field("tag", "x"),
        Part::Field("tag", "y"),
        Part::Field("note", &"n".repeat(3000)),
        Part::File("photo", "a.txt", "text/plain", b"hello"),
        Part::Field("after", "z"),
        Part::File("video", "big.bin", "application/octet-stream", &big),
    ]);
    let mut keys = Vec::new();
    for size in [300 * 1024, MIB, 4 * MIB, body.len()] {
        let (status, json, pulled) = post_chunks(&env, pieces(&body, size)).await;
        assert_eq!(status, 201, "chunks of {size} bytes: {json}");
        assert_eq!(pulled, body.len() as u64);
        assert_eq!(json["fields"]["title"], "holiday");
        assert_eq!(json["fields"]["tag"], serde_json::json!(["x", "y"]));
        assert_eq!(json["fields"]["after"], "z");
        assert_eq!(json["fields"]["note"].as_str().map(str::len), Some(3000));
        let files = json["files"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{json}");
        assert_eq!(files[1]["file_size"], big.len() as u64);
        keys.push((
            files[0]["object"]["key"].as_str().unwrap().to_owned(),
            files[1]["object"]["key"].as_str().unwrap().to_owned(),
        ));
    }
    for (small, large) in keys {
        assert_eq!(object(env.dir.path(), &small).await, b"hello");
        assert!(
            object(env.dir.path(), &large).await == big,
            "the file is byte-identical"
        );
    }
}

/// An endless part header, or an endless preamble, delivered in big
/// chunks as fast as the route reads: refused with 431 after a bounded
/// read (what the guard lets multer pull, at most one chunk more, then a
/// bounded drain of the remainder), not buffered for ever.
#[tokio::test]
async fn an_endless_header_or_preamble_in_big_chunks_is_refused_within_a_bound() {
    use futures::StreamExt as _;
    let env = in_process().await;
    for chunk in [MIB, 4 * MIB] {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nX-Big: "
        )
        .into_bytes();
        let mut first = head.clone();
        first.resize(chunk, b'a');
        let header =
            futures::stream::iter([first]).chain(futures::stream::repeat_with(move || vec![b'a'; chunk]));
        let preamble = futures::stream::repeat_with(move || vec![b'p'; chunk]);
        let bodies: [futures::stream::BoxStream<'static, Vec<u8>>; 2] =
            [Box::pin(header), Box::pin(preamble)];
        for (what, body) in ["header", "preamble"].into_iter().zip(bodies) {
            let (status, json, pulled) = post_chunks(&env, body).await;
            assert_eq!(
                (status, json["error"]["code"].as_str()),
                (431, Some("part_headers_too_large")),
                "an endless {what} in chunks of {chunk} bytes: {json}"
            );
            // The guard's own bound (about 1 MiB, the slack past field
            // data plus a poll's read-ahead) and one chunk crossing it,
            // then the drain: 8 MiB and the chunk crossing it.
            let bound = (2 * MIB + chunk + 8 * MIB + chunk) as u64;
            assert!(
                pulled <= bound,
                "an endless {what} in chunks of {chunk}: pulled {pulled} bytes, bound {bound}"
            );
        }
    }
}
