use crate::harness::{Req, Server};

#[tokio::test]
async fn traversal_keys_are_refused() {
    let s = Server::with_bucket("bk1").await;
    let before = s.files();
    // (decoded key used for signing, raw path sent)
    let cases = [
        ("/bk1/../x", "/bk1/../x"),
        ("/bk1/a/../../x", "/bk1/a/../../x"),
        ("/bk1/../x", "/bk1/%2e%2e/x"),
        ("/bk1/a\\..\\b", "/bk1/a%5C..%5Cb"),
        ("/bk1//abs", "/bk1//abs"),
        ("/bk1/a/./b", "/bk1/a/%2E/b"),
    ];
    for (path, raw) in cases {
        let r = s.send(Req::new("PUT", path).raw_path(raw).body("evil")).await;
        assert_eq!(r.status, 400, "{raw}: {}", r.text());
        assert!(
            r.text().contains("<Code>InvalidArgument</Code>"),
            "{raw}: {}",
            r.text()
        );
        let r = s.send(Req::new("GET", path).raw_path(raw)).await;
        assert_eq!(r.status, 400, "{raw}: {}", r.text());
    }
    let long = format!("/bk1/{}", "k".repeat(1100));
    s.send(Req::new("PUT", &long).body("x"))
        .await
        .expect(400, Some("KeyTooLongError"));
    // A copy from a traversal source is refused too.
    s.send(Req::new("PUT", "/bk1/ok").header("x-amz-copy-source", "bk1/%2e%2e/x"))
        .await
        .expect(400, Some("InvalidArgument"));
    let after = s.files();
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    for p in &new {
        assert!(!p.to_string_lossy().contains("evil"), "{p:?}");
    }
    for p in &after {
        assert!(p.starts_with(s.dir.path()));
        if p.is_file() {
            assert_ne!(std::fs::read(p).unwrap(), b"evil", "{p:?} holds an evil body");
        }
    }
    // Nothing was written next to the data directory.
    let top: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("data")]);
}
