use crate::support::{test_store, walk};
use chute_store::conformance::{body, key};
use chute_store::{ListOptions, Store, StoreError};

#[tokio::test]
async fn hostile_keys_stay_inside_the_objects_directory() {
    let t = test_store().await;
    let keys = [
        "%2e%2e/%2e%2e/escape",
        "..%2f..%2fescape",
        "a/...",
        ".hidden",
        "a/.d",
        "a.d/b.o",
        "a",
        "a/b",
        "100%",
        "%",
        "日本語/ファイル",
        "emoji/😀",
        "tmp/x",
        "uploads",
        "a b/c?d#e&f",
        "CON/nul/aux",
        "~/$HOME",
        &"x".repeat(230),
    ];
    for (i, k) in keys.iter().enumerate() {
        let data = format!("body {i}");
        t.bucket
            .put(&key(k), body(data.as_bytes()), Default::default())
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let got = t.bucket.get(&key(k), None).await.unwrap();
        assert_eq!(got.meta.size as usize, format!("body {i}").len(), "{k}");
    }
    let objects = t.root().join("buckets/test-bucket/objects");
    for path in walk(t.root()) {
        let rel = path.strip_prefix(t.root()).unwrap();
        assert!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}",
            path.display()
        );
        let real = path.canonicalize().unwrap();
        assert!(
            real.starts_with(t.root().canonicalize().unwrap()),
            "{}",
            real.display()
        );
        if path.starts_with(&objects) && path != objects {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(!name.starts_with('.'), "hidden file {}", path.display());
            assert!(name.ends_with(".o") || name.ends_with(".d"), "{}", path.display());
        }
    }
    let listed = t.bucket.list(&ListOptions::default()).await.unwrap();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    let got: Vec<String> = listed.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(got, want);
    for k in keys {
        t.bucket.delete(&key(k)).await.unwrap();
    }
    assert_eq!(
        walk(&objects),
        Vec::<std::path::PathBuf>::new(),
        "empty directories must be removed"
    );
}

#[tokio::test]
async fn overlong_segments_are_unstorable() {
    let t = test_store().await;
    for k in ["y".repeat(300), format!("a/{}", "é".repeat(120))] {
        let r = t.bucket.put(&key(&k), body(b"x"), Default::default()).await;
        assert!(matches!(r, Err(StoreError::UnstorableKey { .. })), "{r:?}");
        assert!(matches!(
            t.bucket.head(&key(&k)).await,
            Err(StoreError::NoSuchKey { .. })
        ));
        t.bucket.delete(&key(&k)).await.unwrap();
    }
    let tmp = t.root().join("tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

#[tokio::test]
async fn long_non_ascii_names_are_stored_readably() {
    let t = test_store().await;
    // 27 characters, 81 bytes of UTF-8: 243 bytes if percent-encoded.
    let name = "東京タワーの夜景写真二〇二四年十二月三十一日撮影した物";
    let k = format!("写真/{name}");
    t.bucket
        .put(&key(&k), body(b"jpeg"), Default::default())
        .await
        .unwrap();
    assert_eq!(t.bucket.head(&key(&k)).await.unwrap().size, 4);
    let on_disk = t
        .root()
        .join("buckets/test-bucket/objects/写真.d")
        .join(format!("{name}.o"));
    assert!(on_disk.is_file(), "{}", on_disk.display());
    let listed = t.bucket.list(&ListOptions::default()).await.unwrap();
    let got: Vec<String> = listed.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(got, [k]);
}

#[tokio::test]
async fn object_and_prefix_of_the_same_name_coexist() {
    let t = test_store().await;
    t.bucket
        .put(&key("a"), body(b"1"), Default::default())
        .await
        .unwrap();
    t.bucket
        .put(&key("a/b"), body(b"22"), Default::default())
        .await
        .unwrap();
    assert_eq!(t.bucket.head(&key("a")).await.unwrap().size, 1);
    assert_eq!(t.bucket.head(&key("a/b")).await.unwrap().size, 2);
    t.bucket.delete(&key("a/b")).await.unwrap();
    assert_eq!(t.bucket.head(&key("a")).await.unwrap().size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_and_deletes_in_one_directory() {
    let t = test_store().await;
    let b = t.bucket.clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..25 {
                let k = key(&format!("shared/dir/k{}", (i + round) % 3));
                b.put(&k, body(b"x"), Default::default()).await.unwrap();
                b.delete(&k).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    b.put(&key("shared/dir/final"), body(b"x"), Default::default())
        .await
        .unwrap();
    assert_eq!(b.head(&key("shared/dir/final")).await.unwrap().size, 1);
}
