//! A client that stops sending its body mid-upload gets `400
//! RequestTimeout` once the body has been idle for `body_idle_timeout`,
//! and nothing is stored; a slow client that keeps sending is not cut off.

use crate::harness::{REGION, Req, Server, default_creds};
use crate::post_object::{BOUNDARY, form_body, in_an_hour, policy_json, signed_fields, stored};
use chute_core::sigv4::{HeaderSignRequest, UNSIGNED_PAYLOAD, sha256_hex, sign_headers};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The idle timeout the stalling tests configure.
const IDLE: Duration = Duration::from_secs(1);
/// How long a test waits for an answer before failing (never hangs).
const BOUND: Duration = Duration::from_secs(10);

/// A signed PUT's request line and headers, ending with the blank line.
fn put_head(s: &Server, path: &str, len: usize, payload_sha256: &str) -> String {
    let headers = vec![
        ("host".to_owned(), s.addr.to_string()),
        ("content-length".to_owned(), len.to_string()),
    ];
    let signed = sign_headers(
        &HeaderSignRequest {
            method: "PUT",
            path,
            query: &[],
            headers: &headers,
            payload_sha256,
            region: REGION,
            service: "s3",
            now: time::OffsetDateTime::now_utc(),
        },
        &default_creds(),
    )
    .unwrap();
    let mut head = format!("PUT {path} HTTP/1.1\r\n");
    for (name, value) in headers.iter().chain(signed.iter()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Whether `buf` holds a whole response with a `Content-Length`.
fn complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let len = text[..end].lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    len.is_some_and(|len| buf.len() >= end + 4 + len)
}

/// Reads one response (to its `Content-Length`, or to EOF), failing the
/// test if none arrives within [`BOUND`]. Returns status and text.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if complete(&out) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        read.is_ok(),
        "no answer within {BOUND:?} to a stalled body; got so far: {text}"
    );
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[track_caller]
fn assert_request_timeout(status: u16, text: &str) {
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    assert!(
        text.contains(
            "Your socket connection to the server was not read from or written to within the timeout period."
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_put_that_stalls_mid_body_times_out_and_stores_nothing() {
    let s = Server::with_bucket_and("sbk", |c| c.body_idle_timeout = IDLE).await;
    let before = s.files();
    let body = vec![7u8; 64 * 1024];
    // Unsigned, and signed over its hash: s3s's hashing stream wraps the
    // body's error, and the answer must still be RequestTimeout.
    for payload in [UNSIGNED_PAYLOAD.to_owned(), sha256_hex(&body)] {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream
            .write_all(put_head(&s, "/sbk/stalled", body.len(), &payload).as_bytes())
            .await
            .unwrap();
        stream.write_all(&body[..body.len() / 2]).await.unwrap();
        // The other half never comes; the connection stays open.
        let (status, text) = read_answer(&mut stream).await;
        assert_request_timeout(status, &text);
        drop(stream);
        s.get("sbk", "stalled").await.expect(404, Some("NoSuchKey"));
        assert_eq!(s.files(), before, "no object and no temp file is left");
    }
}

#[tokio::test]
async fn a_post_form_that_stalls_mid_file_times_out_and_stores_nothing() {
    let s = Server::with_bucket_and("pbk", |c| c.body_idle_timeout = IDLE).await;
    let before = s.files();
    let fields = signed_fields(
        &policy_json(in_an_hour(), r#", ["eq", "$key", "stalled"]"#),
        &[("key", "stalled")],
    );
    let file = vec![7u8; 64 * 1024];
    let body = form_body(&fields, Some(("f", &file)));
    let head = format!(
        "POST /pbk HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The fields and half the file; the rest never comes.
    stream
        .write_all(&body[..body.len() - file.len() / 2])
        .await
        .unwrap();
    let (status, text) = read_answer(&mut stream).await;
    assert_request_timeout(status, &text);
    drop(stream);
    assert_eq!(stored(&s, "stalled").await, None);
    assert_eq!(s.files(), before, "no object and no temp file is left");
}

#[tokio::test]
async fn a_post_form_that_stalls_in_its_fields_times_out() {
    let s = Server::with_bucket_and("pbk", |c| c.body_idle_timeout = IDLE).await;
    let fields = signed_fields(
        &policy_json(in_an_hour(), r#", ["eq", "$key", "stalled"]"#),
        &[("key", "stalled")],
    );
    let body = form_body(&fields, Some(("f", b"data")));
    let head = format!(
        "POST /pbk HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 3]).await.unwrap();
    let (status, text) = read_answer(&mut stream).await;
    assert_request_timeout(status, &text);
}

/// The timeout is per pause, not per request: a body trickling in over
/// longer than the timeout, never pausing that long, is stored.
#[tokio::test]
async fn a_slow_body_that_keeps_coming_is_not_cut_off() {
    let idle = Duration::from_secs(2);
    let s = Server::with_bucket_and("sbk", |c| c.body_idle_timeout = idle).await;
    let pieces = 6;
    let piece = vec![5u8; 1024];
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(put_head(&s, "/sbk/slow", pieces * piece.len(), UNSIGNED_PAYLOAD).as_bytes())
        .await
        .unwrap();
    for _ in 0..pieces {
        stream.write_all(&piece).await.unwrap();
        tokio::time::sleep(idle / 4).await;
    }
    let (status, text) = read_answer(&mut stream).await;
    assert_eq!(status, 200, "{text}");
    let got = s.send(Req::new("GET", "/sbk/slow")).await;
    got.expect(200, None);
    assert_eq!(got.body.len(), pieces * piece.len());
}
