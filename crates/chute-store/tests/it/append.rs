use crate::support::{TestStore, test_store, walk};
use chute_store::conformance::{body, body_chunked, key, pattern};
use chute_store::fs::FsStore;
use chute_store::{
    AppendableUploads, ChecksumAlgorithm, MultipartStore, ObjectHeaders, PutOptions, Store, StoreError,
};
use futures::{StreamExt as _, TryStreamExt as _};

async fn read_all(store: &dyn Store, k: &chute_store::ObjectKey) -> Vec<u8> {
    let got = store.get(k, None).await.unwrap();
    let chunks: Vec<bytes::Bytes> = got.body.try_collect().await.unwrap();
    chunks.concat()
}

fn app(b: &chute_store::fs::FsBucket) -> &dyn AppendableUploads {
    b.appendable().expect("the fs store offers appendable uploads")
}

/// Begins an upload to `name` with default options: its key and id.
async fn start(t: &TestStore, name: &str) -> (chute_store::ObjectKey, String) {
    let k = key(name);
    let up = t
        .bucket
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap();
    (k, up.upload_id)
}

/// Nothing below `objects/` (no visible object, not even a partial one).
fn no_objects(root: &std::path::Path) {
    let objects = walk(&root.join("buckets/test-bucket/objects"));
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test]
async fn appends_complete_into_one_object_with_an_opaque_etag() {
    let t = test_store().await;
    let k = key("tus/video.bin");
    let opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("video/mp4".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let up = t.bucket.create_multipart(&k, opts).await.unwrap();
    let data = pattern(3 * 1024 * 1024 + 17, 7);
    let a = app(&t.bucket);
    let mid = 1024 * 1024 + 5;
    assert_eq!(
        a.append(&k, &up.upload_id, 0, body_chunked(&data[..mid], 4096))
            .await
            .unwrap(),
        mid as u64
    );
    no_objects(t.root());
    let end = a
        .append(&k, &up.upload_id, mid as u64, body_chunked(&data[mid..], 300_000))
        .await
        .unwrap();
    assert_eq!(end, data.len() as u64);
    no_objects(t.root());
    let meta = a.complete_append(&k, &up.upload_id, end).await.unwrap();
    assert_eq!(meta.size, end);
    assert_eq!(meta.headers.content_type.as_deref(), Some("video/mp4"));
    let (hex, n) = meta.etag.split_once('-').unwrap();
    assert_eq!(
        (hex.len(), n),
        (32, "1"),
        "an opaque multipart-style ETag: {}",
        meta.etag
    );
    assert_eq!(t.bucket.head(&k).await.unwrap(), meta);
    assert_eq!(read_all(&t.bucket, &k).await, data);
    // The upload is over: no directory, no listing, no second completion.
    assert!(t.bucket.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(walk(&t.root().join("buckets/test-bucket/uploads")).is_empty());
    let again = a.complete_append(&k, &up.upload_id, end).await.unwrap_err();
    assert!(matches!(again, StoreError::NoSuchUpload { .. }), "{again:?}");
}

#[tokio::test]
async fn bytes_past_the_offset_are_cut_by_the_next_append_and_by_completion() {
    let t = test_store().await;
    let (k, id) = start(&t, "cut.bin").await;
    let a = app(&t.bucket);
    // 10 bytes acknowledged; then 5 more that nobody recorded (a PATCH
    // whose checksum failed, or a crash before its commit).
    assert_eq!(a.append(&k, &id, 0, body(b"0123456789")).await.unwrap(), 10);
    assert_eq!(a.append(&k, &id, 10, body(b"XXXXX")).await.unwrap(), 15);
    // The next append starts again from the recorded offset.
    assert_eq!(a.append(&k, &id, 10, body(b"abc")).await.unwrap(), 13);
    assert_eq!(a.append(&k, &id, 13, body(b"YYYYYYYY")).await.unwrap(), 21);
    // Completion takes the recorded length only.
    a.complete_append(&k, &id, 13).await.unwrap();
    assert_eq!(read_all(&t.bucket, &k).await, b"0123456789abc");
}

#[tokio::test]
async fn an_offset_past_the_stored_bytes_is_refused() {
    let t = test_store().await;
    let (k, id) = start(&t, "short.bin").await;
    let a = app(&t.bucket);
    a.append(&k, &id, 0, body(b"abc")).await.unwrap();
    let err = a.append(&k, &id, 4, body(b"d")).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = a.complete_append(&k, &id, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    no_objects(t.root());
    // Still whole: the upload carries on from what it holds.
    a.append(&k, &id, 3, body(b"d")).await.unwrap();
    a.complete_append(&k, &id, 4).await.unwrap();
    assert_eq!(read_all(&t.bucket, &k).await, b"abcd");
}

#[tokio::test]
async fn a_broken_body_is_an_error_and_nothing_becomes_visible() {
    let t = test_store().await;
    let (k, id) = start(&t, "broken.bin").await;
    let a = app(&t.bucket);
    a.append(&k, &id, 0, body(b"good")).await.unwrap();
    let broken = futures::stream::iter(vec![
        Ok(bytes::Bytes::from_static(b"more")),
        Err(std::io::Error::other("connection reset")),
    ])
    .boxed();
    let err = a.append(&k, &id, 4, broken).await.unwrap_err();
    assert!(matches!(err, StoreError::Body(_)), "{err:?}");
    no_objects(t.root());
    a.append(&k, &id, 4, body(b"!")).await.unwrap();
    a.complete_append(&k, &id, 5).await.unwrap();
    assert_eq!(read_all(&t.bucket, &k).await, b"good!");
}

#[tokio::test]
async fn an_empty_upload_completes_to_an_empty_object() {
    let t = test_store().await;
    let (k, id) = start(&t, "empty.bin").await;
    let meta = app(&t.bucket).complete_append(&k, &id, 0).await.unwrap();
    assert_eq!(meta.size, 0);
    assert_eq!(read_all(&t.bucket, &k).await, b"");
}

#[tokio::test]
async fn completion_replaces_an_object_atomically() {
    let t = test_store().await;
    let (k, id) = start(&t, "replace.bin").await;
    t.bucket
        .put(&k, body(b"old"), PutOptions::default())
        .await
        .unwrap();
    let a = app(&t.bucket);
    a.append(&k, &id, 0, body(b"new bytes")).await.unwrap();
    assert_eq!(
        read_all(&t.bucket, &k).await,
        b"old",
        "the old object until completion"
    );
    a.complete_append(&k, &id, 9).await.unwrap();
    assert_eq!(read_all(&t.bucket, &k).await, b"new bytes");
}

#[tokio::test]
async fn open_keeps_the_staging_file_and_the_upload_carries_on() {
    let t = test_store().await;
    let (k, id) = start(&t, "crash.bin").await;
    app(&t.bucket)
        .append(&k, &id, 0, body(b"before the crash"))
        .await
        .unwrap();
    let root = t.root().to_path_buf();
    drop(t.store);
    let store = FsStore::open(&root).await.unwrap();
    let bucket = store
        .bucket(&crate::support::bucket_name("test-bucket"))
        .await
        .unwrap();
    assert_eq!(bucket.list_multipart_uploads("").await.unwrap().len(), 1);
    let a = app(&bucket);
    assert_eq!(a.append(&k, &id, 16, body(b", after")).await.unwrap(), 23);
    a.complete_append(&k, &id, 23).await.unwrap();
    assert_eq!(read_all(&bucket, &k).await, b"before the crash, after");
}

#[tokio::test]
async fn a_completion_cut_short_after_the_rename_is_recognised() {
    let t = test_store().await;
    let (k, id) = start(&t, "renamed.bin").await;
    let a = app(&t.bucket);
    a.append(&k, &id, 0, body(b"all of it")).await.unwrap();
    a.complete_append(&k, &id, 9).await.unwrap();
    // A crash between the rename and the removal of the upload directory
    // leaves `upload.json` without the staging file.
    let dir = t.root().join("buckets/test-bucket/uploads").join(&id);
    std::fs::create_dir(&dir).unwrap();
    let upload_json = serde_json::json!({
        "key": "renamed.bin",
        "upload_id": id,
        "initiated": "2026-01-01T00:00:00Z",
    });
    std::fs::write(dir.join("upload.json"), upload_json.to_string()).unwrap();
    assert_eq!(t.bucket.list_multipart_uploads("").await.unwrap().len(), 1);
    let err = a.complete_append(&k, &id, 9).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    assert!(!dir.exists(), "the leftover directory is removed");
    assert_eq!(read_all(&t.bucket, &k).await, b"all of it", "the object stays");
}

#[tokio::test]
async fn abort_removes_the_staging_file_and_nothing_is_visible() {
    let t = test_store().await;
    let (k, id) = start(&t, "abandoned.bin").await;
    let a = app(&t.bucket);
    a.append(&k, &id, 0, body(&pattern(100_000, 3))).await.unwrap();
    // What the reaper does with an abandoned upload.
    let listed = t.bucket.list_multipart_uploads("").await.unwrap();
    assert_eq!(listed.len(), 1);
    t.bucket.abort_multipart(&k, &listed[0].upload_id).await.unwrap();
    assert!(walk(&t.root().join("buckets/test-bucket/uploads")).is_empty());
    assert_eq!(std::fs::read_dir(t.root().join("tmp")).unwrap().count(), 0);
    no_objects(t.root());
    let err = a.append(&k, &id, 100_000, body(b"late")).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    let err = a.complete_append(&k, &id, 100_000).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    no_objects(t.root());
}

#[tokio::test]
async fn an_upload_that_stores_a_checksum_cannot_append() {
    let t = test_store().await;
    let k = key("summed.bin");
    let opts = PutOptions {
        checksum_algorithm: Some(ChecksumAlgorithm::Sha256),
        ..Default::default()
    };
    let up = t.bucket.create_multipart(&k, opts).await.unwrap();
    let err = app(&t.bucket)
        .append(&k, &up.upload_id, 0, body(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn another_key_or_an_unknown_upload_is_no_such_upload() {
    let t = test_store().await;
    let (k, id) = start(&t, "mine.bin").await;
    let a = app(&t.bucket);
    for (key, id) in [
        (key("other.bin"), id.as_str()),
        (k.clone(), "0123456789abcdef0123456789abcdef"),
    ] {
        let err = a.append(&key, id, 0, body(b"x")).await.unwrap_err();
        assert!(matches!(err, StoreError::NoSuchUpload { .. }), "{err:?}");
    }
}
