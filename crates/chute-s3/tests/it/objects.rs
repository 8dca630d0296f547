use crate::harness::{Req, Server, xml_value, xml_values};

#[tokio::test]
async fn put_get_head_delete() {
    let s = Server::with_bucket("bk1").await;
    let put = s
        .send(
            Req::new("PUT", "/bk1/dir/hello world.txt")
                .header("content-type", "text/plain")
                .header("x-amz-meta-Owner", "ada")
                .body("hello"),
        )
        .await;
    put.expect(200, None);
    assert_eq!(put.header("etag"), Some("\"5d41402abc4b2a76b9719d911017c592\""));
    let get = s.get("bk1", "dir/hello world.txt").await;
    get.expect(200, None);
    assert_eq!(&get.body[..], b"hello");
    assert_eq!(get.header("content-type"), Some("text/plain"));
    assert_eq!(get.header("x-amz-meta-owner"), Some("ada"));
    assert_eq!(get.header("etag"), Some("\"5d41402abc4b2a76b9719d911017c592\""));
    let head = s.send(Req::new("HEAD", "/bk1/dir/hello world.txt")).await;
    head.expect(200, None);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());
    s.send(Req::new("GET", "/bk1/nope"))
        .await
        .expect(404, Some("NoSuchKey"));
    s.send(Req::new("DELETE", "/bk1/dir/hello world.txt"))
        .await
        .expect(204, None);
    s.send(Req::new("DELETE", "/bk1/dir/hello world.txt"))
        .await
        .expect(204, None);
    s.get("bk1", "dir/hello world.txt")
        .await
        .expect(404, Some("NoSuchKey"));
}

#[tokio::test]
async fn range_get() {
    let s = Server::with_bucket("bk1").await;
    s.put("bk1", "digits", "0123456789").await;
    let r = s
        .send(Req::new("GET", "/bk1/digits").header("range", "bytes=2-5"))
        .await;
    r.expect(206, None);
    assert_eq!(&r.body[..], b"2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    let r = s
        .send(Req::new("GET", "/bk1/digits").header("range", "bytes=-3"))
        .await;
    r.expect(206, None);
    assert_eq!(&r.body[..], b"789");
    let r = s
        .send(Req::new("GET", "/bk1/digits").header("range", "bytes=7-"))
        .await;
    assert_eq!(&r.body[..], b"789");
    s.send(Req::new("GET", "/bk1/digits").header("range", "bytes=20-30"))
        .await
        .expect(416, Some("InvalidRange"));
}

#[tokio::test]
async fn delete_objects_reports_per_key() {
    let s = Server::with_bucket("bk1").await;
    s.put("bk1", "a", "1").await;
    s.put("bk1", "b", "2").await;
    let body = "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object><Object><Key>../x</Key></Object></Delete>";
    let md5 = crate::harness::b64(&md5_of(body.as_bytes()));
    let r = s
        .send(
            Req::new("POST", "/bk1")
                .query("delete", "")
                .header("content-md5", &md5)
                .body(body),
        )
        .await;
    r.expect(200, None);
    let text = r.text();
    assert_eq!(
        xml_values(&xml_values(&text, "Deleted").join(""), "Key"),
        vec!["a", "b"]
    );
    assert!(text.contains("<Code>InvalidArgument</Code>"), "{text}");
    s.get("bk1", "a").await.expect(404, None);

    s.put("bk1", "c", "3").await;
    let body = "<Delete><Quiet>true</Quiet><Object><Key>c</Key></Object></Delete>";
    let md5 = crate::harness::b64(&md5_of(body.as_bytes()));
    let r = s
        .send(
            Req::new("POST", "/bk1")
                .query("delete", "")
                .header("content-md5", &md5)
                .body(body),
        )
        .await;
    r.expect(200, None);
    assert!(!r.text().contains("<Deleted>"), "{}", r.text());
    s.get("bk1", "c").await.expect(404, None);
}

fn md5_of(data: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(data).to_vec()
}

#[tokio::test]
async fn copy_object_within_and_across_buckets() {
    let s = Server::with_bucket("src").await;
    s.send(Req::new("PUT", "/dst")).await.expect(200, None);
    s.send(
        Req::new("PUT", "/src/a b.txt")
            .header("content-type", "text/plain")
            .header("x-amz-meta-k", "v")
            .body("payload"),
    )
    .await
    .expect(200, None);
    // URL-encoded source, same bucket, metadata kept.
    let r = s
        .send(Req::new("PUT", "/src/copy.txt").header("x-amz-copy-source", "/src/a%20b.txt"))
        .await;
    r.expect(200, None);
    assert!(xml_value(&r.text(), "ETag").is_some(), "{}", r.text());
    let g = s.get("src", "copy.txt").await;
    assert_eq!(&g.body[..], b"payload");
    assert_eq!(g.header("x-amz-meta-k"), Some("v"));
    // Other bucket, metadata replaced.
    s.send(
        Req::new("PUT", "/dst/other.txt")
            .header("x-amz-copy-source", "src/a%20b.txt")
            .header("x-amz-metadata-directive", "REPLACE")
            .header("content-type", "application/json")
            .header("x-amz-meta-new", "yes"),
    )
    .await
    .expect(200, None);
    let g = s.get("dst", "other.txt").await;
    assert_eq!(&g.body[..], b"payload");
    assert_eq!(g.header("content-type"), Some("application/json"));
    assert_eq!(g.header("x-amz-meta-new"), Some("yes"));
    assert_eq!(g.header("x-amz-meta-k"), None);
    // Onto itself without REPLACE: refused, as in S3.
    s.send(Req::new("PUT", "/src/copy.txt").header("x-amz-copy-source", "src/copy.txt"))
        .await
        .expect(400, Some("InvalidRequest"));
    s.send(Req::new("PUT", "/src/x").header("x-amz-copy-source", "src/missing"))
        .await
        .expect(404, Some("NoSuchKey"));
}

#[tokio::test]
async fn put_if_none_match_creates_only() {
    let s = Server::with_bucket("bk1").await;
    let create = |body: &'static str| {
        Req::new("PUT", "/bk1/once")
            .header("if-none-match", "*")
            .body(body)
    };
    s.send(create("first")).await.expect(200, None);
    s.send(create("second"))
        .await
        .expect(412, Some("PreconditionFailed"));
    assert_eq!(&s.get("bk1", "once").await.body[..], b"first");
    s.send(
        Req::new("PUT", "/bk1/once")
            .header("if-none-match", "\"5d41402abc4b2a76b9719d911017c592\"")
            .body("x"),
    )
    .await
    .expect(501, Some("NotImplemented"));
}
