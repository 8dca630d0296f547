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
