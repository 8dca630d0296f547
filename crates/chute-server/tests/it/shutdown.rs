use crate::http::read_response;
use chute_core::sigv4::{Credentials, HeaderSignRequest, sign_headers};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A PUT whose body is half sent when shutdown starts still completes,
/// and the object is stored whole.
#[tokio::test]
async fn in_flight_put_finishes_after_shutdown_signal() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::bind(dir.path()).await;
    let s3 = server.s3_addr().expect("the embedded store has an S3 listener");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let body = vec![7u8; 2 * 1024 * 1024];
    let host = s3.to_string();
    let headers = vec![
        ("host".to_owned(), host.clone()),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    let creds = Credentials {
        access_key: crate::ACCESS_KEY.into(),
        secret_key: crate::SECRET_KEY.into(),
    };
    let signed = sign_headers(
        &HeaderSignRequest {
            method: "PUT",
            path: "/uploads/inflight.bin",
            query: &[],
            headers: &headers,
            payload_sha256: "UNSIGNED-PAYLOAD",
            region: "us-east-1",
            service: "s3",
            now: time::OffsetDateTime::now_utc(),
        },
        &creds,
    )
    .unwrap();
    let mut head = String::from("PUT /uploads/inflight.bin HTTP/1.1\r\n");
    for (name, value) in headers.iter().chain(signed.iter()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");

    let mut stream = TcpStream::connect(s3).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(s3).await.is_err(),
        "no new connections once shutdown began"
    );
    stream.write_all(&body[body.len() / 2..]).await.unwrap();
    let (status, text) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{text}");
    running.await.unwrap().expect("server stops cleanly");

    let store = chute_store::fs::FsStore::open(dir.path()).await.unwrap();
    let bucket = store
        .bucket(&chute_core::BucketName::parse("uploads").unwrap())
        .await
        .unwrap();
    let key = chute_core::ObjectKey::parse("inflight.bin").unwrap();
    let meta = chute_store::Store::head(&bucket, &key).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
}
