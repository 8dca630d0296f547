//! Two server instances over one store writing the same tus upload at
//! once: the store lease lets one PATCH through; the other is refused
//! (423) or, once it gets the upload, fails its offset check (409). The
//! object is one body, never an interleaving of both.

use crate::{run, test_config};
use futures::StreamExt as _;

fn client() -> reqwest::Client {
    chute_server::webhooks::http_client(std::time::Duration::from_secs(60)).unwrap()
}

/// A PATCH at offset 0 to `url` whose body is what `rx` yields.
fn patch(
    http: &reqwest::Client,
    url: String,
    rx: futures::channel::mpsc::UnboundedReceiver<bytes::Bytes>,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let req = http
        .patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(reqwest::Body::wrap_stream(
            rx.map(Ok::<_, std::convert::Infallible>),
        ));
    tokio::spawn(async move { req.send().await.unwrap().status() })
}

#[tokio::test]
async fn two_instances_patching_one_upload_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let a = run(test_config(&data), dir).await;
    let b = run(test_config(&data), tempfile::tempdir().unwrap()).await;
    let http = client();

    // Two parts of 8 MiB and a tail: both bodies are in flight at once.
    let len: usize = 20 * 1024 * 1024 + 7;
    let r = http
        .post(format!("http://{}/files/", a.app))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", len.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let path = r.headers()["location"].to_str().unwrap().to_owned();
    let id = path.rsplit('/').next().unwrap().to_owned();

    let (tx_a, rx_a) = futures::channel::mpsc::unbounded();
    let (tx_b, rx_b) = futures::channel::mpsc::unbounded();
    let req_a = patch(&http, format!("http://{}{path}", a.app), rx_a);
    let req_b = patch(&http, format!("http://{}{path}", b.app), rx_b);
    // A first chunk each, then a moment for both requests to reach their
    // instance (a scheduling aid, not an assertion), then the rest.
    let chunk = 1024 * 1024;
    tx_a.unbounded_send(vec![0xaa; chunk].into()).unwrap();
    tx_b.unbounded_send(vec![0xbb; chunk].into()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut sent = chunk;
    while sent < len {
        let n = chunk.min(len - sent);
        tx_a.unbounded_send(vec![0xaa; n].into()).unwrap();
        tx_b.unbounded_send(vec![0xbb; n].into()).unwrap();
        sent += n;
    }
    drop((tx_a, tx_b));
    let (status_a, status_b) = (req_a.await.unwrap(), req_b.await.unwrap());

    let statuses = [status_a.as_u16(), status_b.as_u16()];
    let won = match statuses {
        [204, 409 | 423] => 0xaa,
        [409 | 423, 204] => 0xbb,
        other => panic!("one PATCH must win and the other be refused, got {other:?}"),
    };
    let lifecycle = chute_server::open_lifecycle(&test_config(&data), chute_server::hooks::Hooks::new())
        .await
        .unwrap();
    let tus = chute_tus::TusStore::new(lifecycle.store().clone());
    let info = tus.info(&id).await.unwrap().unwrap();
    let got = lifecycle.store().get(&info.key, None).await.unwrap();
    let body: Vec<bytes::Bytes> = got.body.map(|c| c.unwrap()).collect().await;
    let body = body.concat();
    assert_eq!(body.len(), len);
    let foreign = body.iter().filter(|&&byte| byte != won).count();
    assert_eq!(foreign, 0, "the object interleaves both bodies");
    b.stop().await;
    a.stop().await;
}
