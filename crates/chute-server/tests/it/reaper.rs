use chute_core::sigv4::Credentials;
use chute_core::{Grant, Keyring, ObjectKey, TokenKey};
use chute_server::hooks::{Event, EventKind, Hooks};
use chute_server::lifecycle::{CreateRequest, Lifecycle, LifecycleSettings, Signer};
use chute_server::reaper::{ReapOptions, ReapReport, reap_with};
use chute_store::{ListOptions, MultipartStore, PutOptions};
use futures::StreamExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);

/// A lifecycle over the development store of `dir`, whose events land in
/// the returned list.
async fn lifecycle(dir: &std::path::Path) -> (Lifecycle, Arc<Mutex<Vec<Event>>>) {
    let opened = chute_server::open_lifecycle(&crate::test_config(dir), chute_server::hooks::Hooks::new())
        .await
        .expect("lifecycle opens without listeners");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let mut hooks = Hooks::new();
    hooks.add(Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone())));
    let settings = LifecycleSettings {
        upload_ttl: HOUR,
        receipt_ttl: 2 * HOUR,
        ..LifecycleSettings::default()
    };
    let signer = Signer::new(
        "http://127.0.0.1:9".into(),
        opened.signer().bucket.clone(),
        "us-east-1".into(),
        true,
        Credentials {
            access_key: crate::ACCESS_KEY.into(),
            secret_key: crate::SECRET_KEY.into(),
        },
    );
    let keys = Keyring::new(
        TokenKey::parse("t:0123456789abcdef0123456789abcdef").unwrap(),
        vec![],
    );
    let lifecycle = Lifecycle::new(Arc::clone(opened.store()), signer, keys, settings, hooks);
    (lifecycle, events)
}

fn request(filename: &str, size: u64, method: &str) -> CreateRequest {
    serde_json::from_value(serde_json::json!({"filename": filename, "size": size, "method": method})).unwrap()
}

async fn put(store: &dyn MultipartStore, key: &str) {
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]).boxed();
    store
        .put(&ObjectKey::parse(key).unwrap(), body, PutOptions::default())
        .await
        .unwrap();
}

async fn keys(store: &dyn MultipartStore, prefix: &str) -> Vec<String> {
    let opts = ListOptions {
        prefix: prefix.into(),
        ..ListOptions::default()
    };
    let listed = store.list(&opts).await.unwrap();
    listed.objects.iter().map(|o| o.key.as_str().to_owned()).collect()
}

#[tokio::test]
async fn expired_uploads_objects_and_counters_go_in_their_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let (lifecycle, events) = lifecycle(dir.path()).await;
    let store = lifecycle.store().as_ref();
    let grant = Grant {
        id: Some("grant-1".into()),
        max_files: Some(5),
        ..Grant::default()
    };
    let multipart = lifecycle
        .create(grant.clone(), request("big.bin", 20 << 20, "multipart"))
        .await
        .unwrap();
    let posted = lifecycle
        .create(grant, request("small.txt", 5, "post"))
        .await
        .unwrap();
    put(store, &posted.key).await;
    put(store, "uploads/kept.txt").await;
    assert_eq!(
        keys(store, ".chute/grants/").await.len(),
        2,
        "one counter per use"
    );
    events.lock().unwrap().clear();

    let now = OffsetDateTime::now_utc();
    let opts = ReapOptions {
        page_size: 1,
        ..ReapOptions::default()
    };
    let fresh = reap_with(&lifecycle, now, &opts).await.unwrap();
    assert_eq!(fresh, ReapReport::default(), "nothing is stale yet");

    // Past the upload TTL: the multipart upload goes, the object stays
    // (a receipt issued at the last moment still lives).
    let later = now + HOUR + Duration::from_secs(60);
    let dry = reap_with(
        &lifecycle,
        later,
        &ReapOptions {
            dry_run: true,
            ..opts.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!((dry.dry_run, dry.multipart_aborted), (true, 1));
    assert_eq!(
        store.list_multipart_uploads("tmp/").await.unwrap().len(),
        1,
        "dry run"
    );
    assert!(events.lock().unwrap().is_empty(), "a dry run emits nothing");
    let report = reap_with(&lifecycle, later, &opts).await.unwrap();
    assert_eq!(
        (report.multipart_aborted, report.objects_deleted),
        (1, 0),
        "{report}"
    );
    assert!(store.list_multipart_uploads("tmp/").await.unwrap().is_empty());
    assert_eq!(keys(store, "tmp/").await, std::slice::from_ref(&posted.key));

    // Past upload + receipt TTL: the unpromoted object goes too.
    let much_later = now + 3 * HOUR + Duration::from_secs(60);
    let report = reap_with(&lifecycle, much_later, &opts).await.unwrap();
    assert_eq!((report.objects_deleted, report.bytes_deleted), (1, 5), "{report}");
    assert!(keys(store, "tmp/").await.is_empty());
    assert_eq!(
        keys(store, "uploads/").await,
        ["uploads/kept.txt"],
        "promoted objects stay"
    );
    assert_eq!(report.grant_counters_deleted, 0, "counters outlive the uploads");

    let expired: Vec<(EventKind, Option<String>, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::Expired)
        .map(|e| {
            (
                e.kind,
                e.upload_id.clone(),
                e.data["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        expired,
        [
            (
                EventKind::Expired,
                Some(multipart.id.clone()),
                "multipart_abandoned".into()
            ),
            (EventKind::Expired, Some(posted.id.clone()), "not_promoted".into()),
        ]
    );

    // Past upload TTL + grant_counter_ttl: the max_files counters go.
    let report = reap_with(&lifecycle, now + HOUR + opts.grant_counter_ttl + HOUR, &opts)
        .await
        .unwrap();
    assert_eq!(report.grant_counters_deleted, 2, "{report}");
    assert!(keys(store, ".chute/grants/").await.is_empty());
}

#[tokio::test]
async fn the_periodic_reaper_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (lifecycle, _events) = lifecycle(dir.path()).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(chute_server::reaper::run_every(
        lifecycle,
        Duration::from_secs(10),
        ReapOptions::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reaper stops promptly")
        .unwrap();
}
