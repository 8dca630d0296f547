use crate::support::{bucket_name, test_store};
use chute_store::conformance::{body, key};
use chute_store::{MultipartStore, PutOptions, Store, StoreError};

#[tokio::test]
async fn buckets_are_created_listed_and_deleted() {
    let t = test_store().await;
    let other = bucket_name("another");
    assert!(matches!(
        t.store.create_bucket(&bucket_name("test-bucket")).await,
        Err(StoreError::BucketExists { .. })
    ));
    t.store.create_bucket(&other).await.unwrap();
    let names: Vec<String> = t
        .store
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name.to_string())
        .collect();
    assert_eq!(names, ["another", "test-bucket"]);
    t.store.head_bucket(&other).await.unwrap();
    t.store.delete_bucket(&other).await.unwrap();
    assert!(matches!(
        t.store.head_bucket(&other).await,
        Err(StoreError::NoSuchBucket { .. })
    ));
    assert!(matches!(
        t.store.bucket(&other).await,
        Err(StoreError::NoSuchBucket { .. })
    ));
    assert!(matches!(
        t.store.delete_bucket(&other).await,
        Err(StoreError::NoSuchBucket { .. })
    ));
}

#[tokio::test]
async fn non_empty_buckets_are_not_deleted() {
    let t = test_store().await;
    let name = bucket_name("test-bucket");
    let k = key("a/b");
    t.bucket.put(&k, body(b"x"), PutOptions::default()).await.unwrap();
    assert!(matches!(
        t.store.delete_bucket(&name).await,
        Err(StoreError::BucketNotEmpty { .. })
    ));
    t.bucket.delete(&k).await.unwrap();
    let up = t
        .bucket
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        t.store.delete_bucket(&name).await,
        Err(StoreError::BucketNotEmpty { .. })
    ));
    t.bucket.abort_multipart(&k, &up.upload_id).await.unwrap();
    t.store.delete_bucket(&name).await.unwrap();
    // A handle on a deleted bucket does not resurrect it.
    let r = t.bucket.put(&k, body(b"x"), PutOptions::default()).await;
    assert!(matches!(r, Err(StoreError::NoSuchBucket { .. })), "{r:?}");
    assert!(!t.root().join("buckets/test-bucket").exists());
}

#[tokio::test]
async fn bucket_configs_round_trip() {
    let t = test_store().await;
    let name = bucket_name("test-bucket");
    assert_eq!(t.store.get_bucket_config(&name, "cors").await.unwrap(), None);
    t.store
        .put_bucket_config(&name, "cors", Some(b"<CORS/>".to_vec()))
        .await
        .unwrap();
    t.store
        .put_bucket_config(&name, "../evil", Some(b"x".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        t.store.get_bucket_config(&name, "cors").await.unwrap().as_deref(),
        Some(&b"<CORS/>"[..])
    );
    t.store.put_bucket_config(&name, "cors", None).await.unwrap();
    assert_eq!(t.store.get_bucket_config(&name, "cors").await.unwrap(), None);
    assert!(!t.root().join("buckets/evil").exists());
    assert!(matches!(
        t.store.get_bucket_config(&bucket_name("nope"), "cors").await,
        Err(StoreError::NoSuchBucket { .. })
    ));
}

/// What one round of the delete race saw.
#[derive(Default)]
struct Round {
    deleted: bool,
    acked_keys: Vec<chute_store::ObjectKey>,
    acked_uploads: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_never_destroys_an_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = chute_store::fs::FsStore::open(dir.path()).await.unwrap();
    let mut deleted_rounds = 0;
    for round in 0..150 {
        let name = bucket_name(&format!("race-{round}"));
        store.create_bucket(&name).await.unwrap();
        let bucket = store.bucket(&name).await.unwrap();
        let mut puts = Vec::new();
        for i in 0..3 {
            let b = bucket.clone();
            puts.push(tokio::spawn(async move {
                // Nested and flat keys: the race is on any directory level.
                let k = key(&if i == 0 {
                    format!("k{i}")
                } else {
                    format!("d{i}/k")
                });
                let r = b.put(&k, body(b"x"), PutOptions::default()).await;
                (k, r)
            }));
        }
        let b = bucket.clone();
        let upload = tokio::spawn(async move { b.create_multipart(&key("mp"), PutOptions::default()).await });
        let mut seen = Round::default();
        // Start deleting at staggered moments so some deletes meet the
        // commits and some come before them.
        let delay = std::time::Duration::from_micros(100 * (round % 20));
        tokio::task::spawn_blocking(move || std::thread::sleep(delay))
            .await
            .unwrap();
        for _ in 0..40 {
            match store.delete_bucket(&name).await {
                Ok(()) => {
                    seen.deleted = true;
                    break;
                }
                Err(StoreError::BucketNotEmpty { .. } | StoreError::NoSuchBucket { .. }) => {}
                Err(e) => panic!("round {round}: delete_bucket: {e:?}"),
            }
            tokio::task::yield_now().await;
        }
        for p in puts {
            let (k, r) = p.await.unwrap();
            match r {
                Ok(_) => seen.acked_keys.push(k),
                Err(StoreError::NoSuchBucket { .. }) => {}
                Err(e) => panic!("round {round}: put {k}: {e:?}"),
            }
        }
        match upload.await.unwrap() {
            Ok(u) => seen.acked_uploads.push(u.upload_id),
            Err(StoreError::NoSuchBucket { .. }) => {}
            Err(e) => panic!("round {round}: create_multipart: {e:?}"),
        }
        if seen.deleted {
            deleted_rounds += 1;
            assert!(
                seen.acked_keys.is_empty() && seen.acked_uploads.is_empty(),
                "round {round}: the bucket was deleted after acknowledging {:?} {:?}",
                seen.acked_keys,
                seen.acked_uploads
            );
            assert!(matches!(
                store.head_bucket(&name).await,
                Err(StoreError::NoSuchBucket { .. })
            ));
            continue;
        }
        let b = store.bucket(&name).await.unwrap();
        for k in &seen.acked_keys {
            b.head(k)
                .await
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {k} is gone: {e:?}"));
        }
        let uploads = b.list_multipart_uploads("").await.unwrap();
        for id in &seen.acked_uploads {
            assert!(
                uploads.iter().any(|u| &u.upload_id == id),
                "round {round}: acknowledged upload {id} is gone"
            );
        }
    }
    // Both outcomes must have happened for the test to mean anything.
    assert!(deleted_rounds > 0 && deleted_rounds < 150, "{deleted_rounds}");
}
