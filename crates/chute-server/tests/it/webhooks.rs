//! Event webhooks (signed, retried, never blocking an upload) and the
//! authorization webhook, each against a small axum app on loopback
//! playing the receiving application.

use crate::Running;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chute_server::grants::{GrantRequest, GrantSource, WebhookGrants};
use chute_server::hooks::{Event, EventKind, HookSink};
use chute_server::webhooks::{
    DEFAULT_TOLERANCE, SignatureError, WebhookConfig, WebhookSecret, WebhookSink, verify_signature,
};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const SECRET: &str = "an-event-webhook-secret-of-32-bytes!";
/// Guards every wait so a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// One request the receiving app got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Starts an app on 127.0.0.1:0 answering with `respond(n, hit)` (n counts
/// requests from 1); every request is also reported on the channel first.
async fn receiver<F, Fut>(respond: F) -> (SocketAddr, mpsc::UnboundedReceiver<Hit>)
where
    F: Fn(usize, Hit) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
        let hit = Hit {
            path: uri.path().to_owned(),
            headers,
            body,
        };
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = tx.send(hit.clone());
        respond(n, hit)
    };
    let app = Router::new().fallback(any(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn next_hit(rx: &mut mpsc::UnboundedReceiver<Hit>) -> Hit {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("the receiving app was called in time")
        .expect("receiver running")
}

fn hook_config(urls: Vec<String>) -> WebhookConfig {
    let mut config = WebhookConfig::new(urls, WebhookSecret::new(SECRET).unwrap());
    config.initial_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(200);
    config
}

async fn start(edit: impl FnOnce(&mut chute_server::Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::test_config(dir.path());
    edit(&mut config);
    crate::run(config, dir).await
}

/// `POST /api/uploads` with `headers`; the status and JSON answer.
async fn create(app: SocketAddr, size: u64, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = chute_server::webhooks::http_client(PATIENCE)
        .unwrap()
        .post(format!("http://{app}/api/uploads"))
        .header("content-type", "application/json")
        .body(json!({"filename": "cat.png", "size": size, "type": "image/png"}).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(PATIENCE, request.send())
        .await
        .expect("POST /api/uploads answers while webhooks hang")
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn events_are_signed_and_tampering_fails() {
    let (hooks, mut hits) = receiver(|_, _| async { StatusCode::NO_CONTENT.into_response() }).await;
    let chute = start(|c| c.webhooks = Some(hook_config(vec![format!("http://{hooks}/events?k=v")]))).await;
    let (status, created) = create(chute.app, 10, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let hit = next_hit(&mut hits).await;
    assert_eq!(hit.path, "/events");
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["chute-event"], "upload.created");
    let event: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(event["type"], "upload.created");
    assert_eq!(event["upload_id"], created["id"]);
    assert!(event["id"].as_str().unwrap().starts_with("evt_"), "{event}");

    let header = hit.headers["chute-signature"].to_str().unwrap();
    let verify = |secret: &str, body: &[u8], now| {
        verify_signature(secret.as_bytes(), header, body, now, DEFAULT_TOLERANCE)
    };
    assert_eq!(verify(SECRET, &hit.body, now()), Ok(()));
    let mut tampered = hit.body.to_vec();
    tampered.extend_from_slice(b" ");
    assert_eq!(verify(SECRET, &tampered, now()), Err(SignatureError::Mismatch));
    assert_eq!(
        verify("another-secret-another-secret-32b", &hit.body, now()),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify(SECRET, &hit.body, now() + 3600),
        Err(SignatureError::OutsideTolerance { .. })
    ));

    chute.stop.send(()).unwrap();
    chute.task.await.unwrap().expect("stops cleanly");
}

/// Waits until `done(stats)` holds.
async fn until(sink: &WebhookSink, done: impl Fn(&chute_server::webhooks::WebhookStats) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done(&sink.stats()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stats never got there: {:?}", sink.stats()));
}

fn event(n: usize) -> Event {
    Event::new(EventKind::Completed, Some(&format!("up{n}")), json!({"n": n}))
}

#[tokio::test]
async fn retries_after_5xx_and_429_then_delivers_but_4xx_is_final() {
    let (flaky, mut flaky_hits) = receiver(|n, _| async move {
        match n {
            1 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            2 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")]).into_response(),
            _ => StatusCode::OK.into_response(),
        }
    })
    .await;
    let (refusing, mut refusing_hits) =
        receiver(|_, _| async { StatusCode::BAD_REQUEST.into_response() }).await;
    let sink = WebhookSink::start(hook_config(vec![
        format!("http://{flaky}/"),
        format!("http://{refusing}/"),
    ]))
    .unwrap();
    sink.emit(&event(1));
    until(&sink, |s| s.pending == 0).await;
    let stats = sink.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.retries),
        (1, 1, 2),
        "{stats:?}"
    );

    let attempts: Vec<Hit> = (0..3).map(|_| flaky_hits.try_recv().unwrap()).collect();
    assert!(flaky_hits.try_recv().is_err(), "three attempts, no more");
    let ids: Vec<Value> = attempts
        .iter()
        .map(|h| serde_json::from_slice::<Value>(&h.body).unwrap()["id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same event each time: {ids:?}"
    );
    for hit in &attempts {
        let header = hit.headers["chute-signature"].to_str().unwrap();
        verify_signature(SECRET.as_bytes(), header, &hit.body, now(), DEFAULT_TOLERANCE).unwrap();
    }
    refusing_hits.try_recv().unwrap();
    assert!(refusing_hits.try_recv().is_err(), "400 is not retried");
}

#[tokio::test]
async fn every_attempt_failing_gives_up_after_max_attempts() {
    let (broken, mut hits) = receiver(|_, _| async { StatusCode::SERVICE_UNAVAILABLE.into_response() }).await;
    let mut config = hook_config(vec![format!("http://{broken}/")]);
    config.max_attempts = 3;
    let sink = WebhookSink::start(config).unwrap();
    sink.emit(&event(1));
    until(&sink, |s| s.pending == 0).await;
    assert_eq!((sink.stats().failed, sink.stats().retries), (1, 2));
    for _ in 0..3 {
        hits.try_recv().unwrap();
    }
    assert!(hits.try_recv().is_err());
}

#[tokio::test]
async fn down_and_hanging_endpoints_never_block_the_upload_api() {
    // The hanging endpoint answers only when the test says so.
    let (release, released) = tokio::sync::watch::channel(false);
    let (hanging, mut hits) = receiver(move |_, _| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            StatusCode::OK.into_response()
        }
    })
    .await;
    let mut config = hook_config(vec![
        format!("http://{}/", closed_port()),
        format!("http://{hanging}/"),
    ]);
    config.timeout = Duration::from_secs(600);
    let chute = start(|c| {
        c.webhooks = Some(config);
        c.shutdown_grace = Duration::from_secs(1);
    })
    .await;

    for _ in 0..3 {
        let (status, body) = create(chute.app, 10, &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The hanging endpoint has the first event and still has not answered.
    next_hit(&mut hits).await;
    assert!(!*release.borrow());

    // Shutdown gives the stuck deliveries a bounded time, then gives up.
    chute.stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, chute.task)
        .await
        .expect("shutdown does not wait for a hanging webhook")
        .unwrap()
        .expect("stops cleanly");
    drop(release);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (hanging, mut hits) = receiver(|_, _| std::future::pending::<Response>()).await;
    let mut config = hook_config(vec![format!("http://{hanging}/")]);
    config.queue_capacity = 2;
    config.concurrency = 1;
    let sink = WebhookSink::start(config).unwrap();
    for n in 0..50 {
        sink.emit(&event(n));
    }
    next_hit(&mut hits).await;
    let stats = sink.stats();
    // One in flight, two queued; the rest dropped (the first may still
    // have been queued when the last was emitted).
    assert!((47..=48).contains(&stats.dropped), "{stats:?}");
    assert_eq!(stats.dropped + stats.pending, 50, "{stats:?}");
    assert_eq!(stats.delivered, 0);

    let stats = sink.shutdown(Duration::from_millis(100)).await;
    assert_eq!(stats.pending, 50 - stats.dropped, "abandoned, not delivered");
    sink.emit(&event(99));
    assert_eq!(sink.stats().dropped, stats.dropped + 1, "closed after shutdown");
}

#[tokio::test]
async fn shutdown_delivers_what_is_queued() {
    let (slowish, mut hits) = receiver(|_, _| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        StatusCode::OK.into_response()
    })
    .await;
    let mut config = hook_config(vec![format!("http://{slowish}/")]);
    config.concurrency = 1;
    let sink = WebhookSink::start(config).unwrap();
    for n in 0..5 {
        sink.emit(&event(n));
    }
    let stats = sink.shutdown(PATIENCE).await;
    assert_eq!((stats.delivered, stats.pending, stats.dropped), (5, 0, 0));
    for _ in 0..5 {
        hits.try_recv().unwrap();
    }
}

// The authorization webhook.

/// A grant app: with the right cookie, a grant of at most 1000 bytes of
/// images; without it, 401 with a reason.
async fn grant_app() -> (SocketAddr, mpsc::UnboundedReceiver<Hit>) {
    receiver(|_, hit| async move {
        let cookie = hit.headers.get("cookie").and_then(|v| v.to_str().ok());
        if cookie != Some("session=abc") {
            return (StatusCode::UNAUTHORIZED, r#"{"error": "please log in"}"#).into_response();
        }
        let grant = json!({"subject": "user-7", "max_size": 1000, "types": ["image/*"]});
        (StatusCode::OK, grant.to_string()).into_response()
    })
    .await
}

async fn grant_chute(url: String) -> Running {
    start(|c| {
        c.open_grants = false;
        c.grant_webhook_url = Some(url);
        c.grant_webhook_timeout = Duration::from_millis(500);
    })
    .await
}

#[tokio::test]
async fn grant_webhook_forwards_the_session_and_its_grant_is_enforced() {
    let (grants, mut hits) = grant_app().await;
    let chute = grant_chute(format!("http://{grants}/chute/grant")).await;
    let session = [
        ("cookie", "session=abc"),
        ("x-csrf-token", "csrf-1"),
        ("x-requested-with", "XMLHttpRequest"),
        ("origin", "http://localhost:3000"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-not-forwarded", "secret"),
    ];
    let (status, body) = create(chute.app, 500, &session).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hit = next_hit(&mut hits).await;
    assert_eq!(hit.path, "/chute/grant");
    for (name, value) in &session[..4] {
        assert_eq!(hit.headers[*name], *value, "{name} forwarded");
    }
    assert_eq!(hit.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert!(hit.headers.get("x-not-forwarded").is_none());
    let asked: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(
        asked,
        json!({"filename": "cat.png", "size": 500, "type": "image/png"})
    );

    let (status, body) = create(chute.app, 5000, &session).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the app's max_size holds: {body}"
    );

    let (status, body) = create(chute.app, 500, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "grant_refused");
    assert_eq!(body["error"]["message"], "please log in");
}

#[tokio::test]
async fn grant_webhook_failures_are_502_never_an_open_grant() {
    let (app, _hits) = receiver(|_, hit| async move {
        match hit.path.as_str() {
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK.into_response()
            }
            "/junk" => (StatusCode::OK, "<html>login</html>").into_response(),
            "/refused" => StatusCode::FORBIDDEN.into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    })
    .await;
    for (url, status, needle) in [
        (format!("http://{}/", closed_port()), 502, "cannot reach it"),
        (format!("http://{app}/slow"), 502, "no answer within 0.5 s"),
        (format!("http://{app}/junk"), 502, "not a grant"),
        (
            format!("http://{app}/refused"),
            403,
            "the app refused this upload",
        ),
    ] {
        let chute = grant_chute(url.clone()).await;
        let started = std::time::Instant::now();
        let (got, body) = create(chute.app, 10, &[("cookie", "session=abc")]).await;
        assert_eq!(got.as_u16(), status, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{url}: {message}");
        if status == 502 {
            assert_eq!(body["error"]["code"], "grant_webhook_failed");
            assert!(
                !message.contains(&app.to_string()),
                "the app's address stays private"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{url}");
    }
}

fn grant_request() -> GrantRequest {
    GrantRequest {
        filename: "a.txt".into(),
        size: 1,
        content_type: "text/plain".into(),
    }
}

#[tokio::test]
async fn grant_webhook_answers_that_are_not_grants() {
    let (app, _hits) = receiver(|_, hit| async move {
        match hit.path.as_str() {
            "/unknown-field" => (StatusCode::OK, r#"{"max_size": 1, "admin": true}"#).into_response(),
            "/huge" => (StatusCode::OK, " ".repeat(100 * 1024)).into_response(),
            "/boom" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "/redirect" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
            "/teapot" => StatusCode::IM_A_TEAPOT.into_response(),
            "/ok" => (StatusCode::OK, r#"{"max_size": 7, "expires_at": 4000000000}"#).into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    })
    .await;
    let parts = axum::http::Request::new(()).into_parts().0;
    let ask = |path: &str| {
        let hook = WebhookGrants::new(&format!("http://{app}{path}"), Duration::from_secs(5)).unwrap();
        let parts = parts.clone();
        async move { hook.grant(&parts, &grant_request()).await }
    };
    let grant = ask("/ok").await.unwrap();
    assert_eq!((grant.max_size, grant.expires_at), (Some(7), Some(4_000_000_000)));
    for (path, needle) in [
        ("/unknown-field", "unknown field `admin`"),
        ("/huge", "over 65536 bytes"),
        ("/boom", "500"),
        ("/redirect", "302"),
        ("/teapot", "418"),
    ] {
        let err = ask(path).await.unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY, "{path}: {err}");
        assert_eq!(err.code, "grant_webhook_failed");
        assert!(err.message.contains(needle), "{path}: {}", err.message);
    }
    assert!(WebhookGrants::new("not a url", Duration::from_secs(1)).is_err());
}
