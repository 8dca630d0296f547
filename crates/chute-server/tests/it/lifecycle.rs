use crate::http::request;

#[tokio::test]
async fn health_readiness_and_placeholder_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::bind(dir.path()).await;
    let app = server.app_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let (status, _) = request(app, &format!("GET /healthz HTTP/1.1\r\nHost: {app}"), b"").await;
    assert_eq!(status, 200);
    let (status, body) = request(app, &format!("GET /readyz HTTP/1.1\r\nHost: {app}"), b"").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(app, &format!("GET / HTTP/1.1\r\nHost: {app}"), b"").await;
    assert_eq!(status, 200);
    assert!(body.contains("bucket <code>uploads</code>"), "{body}");

    stop_tx.send(()).unwrap();
    running.await.unwrap().expect("server stops cleanly");
    assert!(
        dir.path().join("buckets").is_dir(),
        "the store lives in the data directory"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = crate::test_config(dir.path());
    config.s3_listen = taken.local_addr().unwrap();
    let err = chute_server::Server::bind(config).await.unwrap_err().to_string();
    assert!(
        err.contains("s3_listen") && err.contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
    assert!(
        err.contains("--s3-listen") && err.contains("CHUTE_S3_LISTEN"),
        "says what to do: {err}"
    );
}
