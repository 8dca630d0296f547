use crate::http::read_response;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// With `max_connections = 2`, two idle connections hold both slots: a
/// third client is not answered while they stay open, and is answered
/// once one of them closes.
#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::test_config(dir.path());
    config.max_connections = 2;
    let running = crate::run(config, dir).await;
    let s3 = running.s3.expect("the embedded store has an S3 listener");

    // Accepted in the order they connect: these two take both slots.
    let first = TcpStream::connect(s3).await.unwrap();
    let second = TcpStream::connect(s3).await.unwrap();

    // The kernel completes the third handshake; the server does not accept it.
    let mut third = TcpStream::connect(s3).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: chute\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served past the cap: {early:?}"
    );

    drop(first);
    let answered = tokio::time::timeout(Duration::from_secs(10), read_response(&mut third)).await;
    let (status, text) = answered.expect("the waiting client is served once a slot frees");
    assert!((200..600).contains(&status), "{text}");

    drop(second);
    running.stop().await;
}
