//! tus 1.0 at `/files/` through a real server: discovery, an upload in
//! two PATCHes that completes with a receipt, and refusals.

use crate::{run, test_config};

fn client() -> reqwest::Client {
    chute_server::webhooks::http_client(std::time::Duration::from_secs(60)).unwrap()
}

/// One tus reaper pass at `now` (pages of 100), which must not fail.
async fn reap(
    lifecycle: &chute_server::lifecycle::Lifecycle,
    now: time::OffsetDateTime,
    dry_run: bool,
) -> chute_server::tus::TusReaped {
    chute_server::tus::reap_expired(lifecycle, now, dry_run, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn options_create_patch_head_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let server = run(test_config(dir.path()), dir).await;
    let base = format!("http://{}", server.app);
    let http = client();

    let opts = http
        .request(reqwest::Method::OPTIONS, format!("{base}/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(opts.status(), 204);
    assert_eq!(opts.headers()["tus-version"], "1.0.0");
    assert!(
        opts.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("concatenation")
    );

    // Without Tus-Resumable: 412 and the version we speak.
    let r = http
        .post(format!("{base}/files/"))
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(r.headers()["tus-version"], "1.0.0");

    let data: Vec<u8> = (0..6 * 1024 * 1024 + 99).map(|i| (i % 253) as u8).collect();
    let r = http
        .post(format!("{base}/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len().to_string())
        .header("upload-metadata", "filename YS5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let patch = |at: usize, bytes: Vec<u8>, checksum: Option<&str>| {
        let mut req = http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", at.to_string())
            .body(bytes);
        if let Some(c) = checksum {
            req = req.header("upload-checksum", c);
        }
        req.send()
    };
    // A wrong checksum keeps nothing.
    let r = patch(
        0,
        data[..1000].to_vec(),
        Some("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 460);
    let r = patch(0, data[..5_000_000].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "5000000");
    assert!(r.headers().get("chute-receipt").is_none());
    let r = patch(1, data[1..].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["upload-offset"], "5000000");
    let r = patch(5_000_000, data[5_000_000..].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 204);
    let receipt = r.headers()["chute-receipt"].to_str().unwrap().to_owned();
    let head = http
        .head(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-offset"], data.len().to_string().as_str());
    assert_eq!(head.headers()["chute-receipt"], receipt.as_str());

    let r = http
        .delete(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let head = http
        .head(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    server.stop().await;
}

/// The development store of a lifecycle over `dir`, and the lifecycle.
async fn lifecycle(dir: &std::path::Path) -> chute_server::lifecycle::Lifecycle {
    chute_server::open_lifecycle(&test_config(dir), chute_server::hooks::Hooks::new())
        .await
        .expect("lifecycle opens without listeners")
}

fn key(s: &str) -> chute_core::ObjectKey {
    chute_core::ObjectKey::parse(s).unwrap()
}

async fn put(store: &dyn chute_store::MultipartStore, at: &str, body: &'static [u8]) {
    store
        .put(
            &key(at),
            futures::StreamExt::boxed(futures::stream::iter([Ok(bytes::Bytes::from_static(body))])),
            chute_store::PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn exists(store: &dyn chute_store::MultipartStore, at: &str) -> bool {
    store.head(&key(at)).await.is_ok()
}

/// An expired tus upload of `tmp/<id>/f` with its object stored.
async fn expired_upload(tus: &chute_tus::TusStore, id: &str) -> chute_tus::UploadInfo {
    let info = tus
        .create(chute_tus::UploadInfo {
            id: id.into(),
            key: key(&format!("tmp/{id}/f")),
            content_type: "application/octet-stream".into(),
            length: Some(5),
            metadata: String::new(),
            multipart: String::new(),
            plan: chute_tus::PartPlan::new(Some(5), chute_tus::DEFAULT_PART_SIZE),
            concat: None,
            expires_at: 1,
            ticket: serde_json::Value::Null,
        })
        .await
        .unwrap();
    put(tus.store().as_ref(), &format!("tmp/{id}/f"), b"hello").await;
    info
}

#[tokio::test]
async fn the_reaper_keeps_an_object_whose_completion_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = lifecycle(dir.path()).await;
    let store = lifecycle.store().clone();
    let tus = chute_tus::TusStore::new(store.clone());
    let now = time::OffsetDateTime::now_utc();
    expired_upload(&tus, "unreadable").await;
    // A `done` that cannot be read (here: not JSON) may still be a valid
    // receipt's completion: the object must stay.
    put(store.as_ref(), ".chute/tus/unreadable/done", b"{").await;
    let reaped = reap(&lifecycle, now, false).await;
    assert_eq!(reaped.failed, 1);
    assert_eq!(reaped.removed, 0);
    assert!(exists(store.as_ref(), "tmp/unreadable/f").await);
}

#[tokio::test]
async fn the_reaper_removes_a_completed_upload_state_but_keeps_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = lifecycle(dir.path()).await;
    let store = lifecycle.store().clone();
    let tus = chute_tus::TusStore::new(store.clone());
    let now = time::OffsetDateTime::now_utc();
    let info = expired_upload(&tus, "finished").await;
    tus.mark_done(&info, &serde_json::json!({"size": 5}))
        .await
        .unwrap();
    let reaped = reap(&lifecycle, now, false).await;
    assert_eq!((reaped.removed, reaped.failed), (1, 0));
    assert!(exists(store.as_ref(), "tmp/finished/f").await);
    assert!(!exists(store.as_ref(), ".chute/tus/finished/done").await);
    assert!(!exists(store.as_ref(), ".chute/tus/finished/info").await);
}

#[tokio::test]
async fn the_reaper_removes_stray_state_once_it_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = lifecycle(dir.path()).await;
    let store = lifecycle.store().clone();
    // State without info: a removal that stopped halfway, or a PATCH
    // that committed after the reaper removed its upload.
    put(store.as_ref(), ".chute/tus/stray/done", b"{}").await;
    put(store.as_ref(), ".chute/tus/stray/tail", b"abc").await;
    let now = time::OffsetDateTime::now_utc();
    reap(&lifecycle, now, false).await;
    assert!(
        exists(store.as_ref(), ".chute/tus/stray/tail").await,
        "young: kept"
    );
    let later = now + lifecycle.settings().upload_ttl + std::time::Duration::from_secs(60);
    let reaped = reap(&lifecycle, later, true).await;
    assert!(
        exists(store.as_ref(), ".chute/tus/stray/tail").await,
        "dry run: kept"
    );
    assert_eq!(reaped.removed, 1);
    reap(&lifecycle, later, false).await;
    assert!(!exists(store.as_ref(), ".chute/tus/stray/tail").await);
    assert!(!exists(store.as_ref(), ".chute/tus/stray/done").await);
}

#[tokio::test]
async fn the_reaper_removes_an_expired_partial_upload_with_its_object() {
    // A partial upload gets no receipt: complete or not, nothing of it stays.
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = lifecycle(dir.path()).await;
    let store = lifecycle.store().clone();
    let tus = chute_tus::TusStore::new(store.clone());
    let mut info = expired_upload(&tus, "partial").await;
    info.concat = Some(chute_tus::ConcatRole::Partial);
    tus.rewrite_info(&info).await.unwrap();
    tus.mark_done(&info, &serde_json::json!({"size": 5}))
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let reaped = reap(&lifecycle, now, false).await;
    assert_eq!((reaped.removed, reaped.failed), (1, 0));
    assert!(!exists(store.as_ref(), "tmp/partial/f").await);
    assert!(!exists(store.as_ref(), ".chute/tus/partial/done").await);
}
