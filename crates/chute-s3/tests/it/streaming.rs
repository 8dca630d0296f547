use crate::harness::{REGION, Server, default_creds};
use bytes::Bytes;
use chute_core::sigv4::{HeaderSignRequest, UNSIGNED_PAYLOAD, sign_headers};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const CHUNK: usize = 1024 * 1024;
const CHUNKS: usize = 256;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A 256 MiB PUT and GET stream through without the process growing by
/// anything near the body size.
#[tokio::test]
async fn large_bodies_stream_in_bounded_memory() {
    let s = Server::with_bucket("bk1").await;
    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let total = (CHUNK * CHUNKS) as u64;
    let host = s.addr.to_string();
    let headers = vec![
        ("host".to_owned(), host.clone()),
        ("content-length".to_owned(), total.to_string()),
    ];
    let signed = sign_headers(
        &HeaderSignRequest {
            method: "PUT",
            path: "/bk1/big",
            query: &[],
            headers: &headers,
            payload_sha256: UNSIGNED_PAYLOAD,
            region: REGION,
            service: "s3",
            now: time::OffsetDateTime::now_utc(),
        },
        &default_creds(),
    )
    .unwrap();
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    let body = StreamBody::new(
        futures::stream::iter(0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let mut builder = http::Request::builder().method("PUT").uri("/bk1/big");
    for (k, v) in headers.iter().chain(signed.iter()) {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(builder.body(body).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;

    let put_peak = peak.load(Ordering::Relaxed);

    // GET streams back: count the bytes frame by frame without keeping them.
    let headers = vec![("host".to_owned(), host)];
    let signed = sign_headers(
        &HeaderSignRequest {
            method: "GET",
            path: "/bk1/big",
            query: &[],
            headers: &headers,
            payload_sha256: UNSIGNED_PAYLOAD,
            region: REGION,
            service: "s3",
            now: time::OffsetDateTime::now_utc(),
        },
        &default_creds(),
    )
    .unwrap();
    let mut builder = http::Request::builder().method("GET").uri("/bk1/big");
    for (k, v) in headers.iter().chain(signed.iter()) {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(builder.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, total);
    sampler.abort();
    let get_peak = peak.load(Ordering::Relaxed);
    // Buffering either body would add at least 256 MiB; allow for the other
    // tests running in this process at the same time.
    let limit = 96 * 1024 * 1024;
    eprintln!(
        "RSS growth: PUT {} KiB, GET {} KiB",
        put_peak.saturating_sub(baseline) / 1024,
        get_peak.saturating_sub(baseline) / 1024
    );
    assert!(
        put_peak.saturating_sub(baseline) < limit,
        "PUT grew RSS by {} bytes",
        put_peak - baseline
    );
    assert!(
        get_peak.saturating_sub(baseline) < limit,
        "GET grew RSS by {} bytes",
        get_peak - baseline
    );
}
