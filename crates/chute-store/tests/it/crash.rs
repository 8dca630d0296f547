use crate::support::test_store;
use chute_store::conformance::{body, key};
use chute_store::fs::FsStore;
use chute_store::{MultipartStore, PartOptions, PutOptions, Store};

#[tokio::test]
async fn open_removes_what_a_crash_left() {
    let t = test_store().await;
    let k = key("video.bin");
    t.bucket
        .put(&k, body(b"committed"), PutOptions::default())
        .await
        .unwrap();
    let up = t
        .bucket
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap();
    t.bucket
        .upload_part(&k, &up.upload_id, 1, body(b"part one"), PartOptions::default())
        .await
        .unwrap();
    let root = t.root().to_path_buf();
    // A put killed mid-write, a bucket and an upload killed mid-creation.
    std::fs::write(root.join("tmp/0123456789abcdef.tmp"), b"half a body").unwrap();
    std::fs::create_dir(root.join("tmp/abc.upload")).unwrap();
    let upload_dir = root.join("buckets/test-bucket/uploads").join(&up.upload_id);
    // A half-written part and an upload directory whose state never landed.
    std::fs::write(upload_dir.join("part-00002.tmp"), b"half a part").unwrap();
    let orphan = root.join("buckets/test-bucket/uploads/ffffffffffffffffffffffffffffffff");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(orphan.join("part-00001"), b"orphan").unwrap();

    drop(t.store);
    let store = FsStore::open(&root).await.unwrap();
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "tmp must be emptied"
    );
    assert!(!upload_dir.join("part-00002.tmp").exists());
    assert!(!orphan.exists());
    let bucket = store
        .bucket(&crate::support::bucket_name("test-bucket"))
        .await
        .unwrap();
    assert_eq!(
        bucket.head(&k).await.unwrap().size,
        9,
        "committed objects survive"
    );
    let parts = bucket.list_parts(&k, &up.upload_id).await.unwrap();
    assert_eq!(parts.len(), 1, "committed parts survive");
    let uploads = bucket.list_multipart_uploads("").await.unwrap();
    assert_eq!(uploads.len(), 1);
}

#[tokio::test]
async fn a_dropped_put_leaves_no_temp_file() {
    let t = test_store().await;
    // A body that never ends: the put is cancelled by the timeout.
    let pending = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"start"))])
        .chain(futures::stream::pending());
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        t.bucket
            .put(&key("never"), Box::pin(pending), PutOptions::default()),
    )
    .await;
    assert!(r.is_err(), "the put must still be waiting");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(std::fs::read_dir(t.root().join("tmp")).unwrap().count(), 0);
    assert!(t.bucket.head(&key("never")).await.is_err());
}

use futures::StreamExt as _;

#[tokio::test]
async fn open_restores_a_bucket_whose_delete_was_cut_short() {
    let t = test_store().await;
    t.bucket
        .put(&key("landed/late"), body(b"acknowledged"), PutOptions::default())
        .await
        .unwrap();
    let root = t.root().to_path_buf();
    drop(t.store);
    // A crash after DeleteBucket moved the bucket aside but before it found
    // the put that landed meanwhile: the bucket comes back.
    std::fs::rename(
        root.join("buckets/test-bucket"),
        root.join("tmp/0123456789abcdef0123456789abcdef.deleting-test-bucket"),
    )
    .unwrap();
    // One found empty is deleted as it was meant to be.
    std::fs::create_dir(root.join("tmp/fedcba9876543210fedcba9876543210.deleting-gone")).unwrap();
    std::fs::create_dir(root.join("tmp/fedcba9876543210fedcba9876543210.deleting-gone/objects")).unwrap();
    let store = FsStore::open(&root).await.unwrap();
    let b = store
        .bucket(&crate::support::bucket_name("test-bucket"))
        .await
        .unwrap();
    assert_eq!(b.head(&key("landed/late")).await.unwrap().size, 12);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert!(!root.join("buckets/gone").exists());
}

#[tokio::test]
async fn create_only_puts_leave_no_temp_file() {
    let t = test_store().await;
    let k = key("once");
    let create = || PutOptions {
        if_none_match: true,
        ..PutOptions::default()
    };
    t.bucket.put(&k, body(b"first"), create()).await.unwrap();
    let refused = t.bucket.put(&k, body(b"second"), create()).await;
    assert!(
        matches!(refused, Err(chute_store::StoreError::PreconditionFailed { .. })),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read_dir(t.root().join("tmp")).unwrap().count(),
        0,
        "the temp name of a committed or refused create-only put is removed"
    );
}
