use crate::http::read_response;
use std::net::SocketAddr;
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
    let mut third = waiting(s3, "/").await;

    drop(first);
    let (status, text) = served(&mut third).await;
    assert!((200..600).contains(&status), "{text}");

    drop(second);
    running.stop().await;
}

/// The app listener has the same cap as the S3 one (it had none).
#[tokio::test]
async fn the_app_listener_is_capped_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::test_config(dir.path());
    config.max_connections = 1;
    let running = crate::run(config, dir).await;
    let first = TcpStream::connect(running.app).await.unwrap();
    let mut second = waiting(running.app, "/healthz").await;
    drop(first);
    let (status, text) = served(&mut second).await;
    assert_eq!(status, 200, "{text}");
    running.stop().await;
}

/// A client that trickles its headers is disconnected after
/// `header_read_timeout` on both listeners, and its slot is freed.
#[tokio::test]
async fn trickled_headers_are_cut_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::test_config(dir.path());
    config.header_read_timeout = Duration::from_secs(1);
    config.max_connections = 1;
    let running = crate::run(config, dir).await;
    let s3 = running.s3.expect("the embedded store has an S3 listener");
    for addr in [running.app, s3] {
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: chute\r\nX-Slow: ")
            .await
            .unwrap();
        // One byte every 200 ms: the server closes the connection (hang
        // guard: 20 s).
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            let mut buf = [0u8; 1024];
            loop {
                if slow.write_all(b"a").await.is_err() {
                    return;
                }
                let read = tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await;
                if let Ok(Ok(0) | Err(_)) = read {
                    return;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{addr} kept a client trickling its headers");
        // Its slot (the only one) serves the next client.
        let mut next = get(addr, "/healthz").await;
        let (status, _) = served(&mut next).await;
        assert!((200..600).contains(&status));
    }
    running.stop().await;
}

/// A client that connected to `addr` and sent `GET path`.
async fn get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: chute\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    client
}

/// [`get`] on a listener whose connection slots are all taken: the
/// client is not answered (within 500 ms) while they stay taken.
async fn waiting(addr: SocketAddr, path: &str) -> TcpStream {
    let mut client = get(addr, path).await;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), client.read(&mut buf)).await;
    assert!(early.is_err(), "a connection past the cap was served: {early:?}");
    client
}

/// The answer `client` reads (hang guard: 10 s).
async fn served(client: &mut TcpStream) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(10), read_response(client))
        .await
        .expect("the waiting client is served once a slot frees")
}
