use crate::harness::{Req, Server, xml_value, xml_values};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn multipart_upload_with_part_copy() {
    let s = Server::with_bucket("bk1").await;
    let part1 = vec![b'a'; 5 * MIB];
    let source = (0..6 * MIB).map(|i| (i % 251) as u8).collect::<Vec<_>>();
    s.put("bk1", "source.bin", source.clone()).await;

    let r = s
        .send(
            Req::new("POST", "/bk1/big.bin")
                .query("uploads", "")
                .header("content-type", "video/mp4"),
        )
        .await;
    r.expect(200, None);
    let id = xml_value(&r.text(), "UploadId").unwrap();

    let r = s
        .send(
            Req::new("PUT", "/bk1/big.bin")
                .query("partNumber", "1")
                .query("uploadId", &id)
                .body(part1.clone()),
        )
        .await;
    r.expect(200, None);
    let etag1 = r.header("etag").unwrap().to_owned();
    assert!(etag1.starts_with('"'));

    let r = s
        .send(
            Req::new("PUT", "/bk1/big.bin")
                .query("partNumber", "2")
                .query("uploadId", &id)
                .header("x-amz-copy-source", "/bk1/source.bin")
                .header("x-amz-copy-source-range", "bytes=0-5242879"),
        )
        .await;
    r.expect(200, None);
    let etag2 = xml_value(&r.text(), "ETag").unwrap().replace("&quot;", "\"");

    let r = s
        .send(
            Req::new("PUT", "/bk1/big.bin")
                .query("partNumber", "3")
                .query("uploadId", &id)
                .body("tail"),
        )
        .await;
    r.expect(200, None);
    let etag3 = r.header("etag").unwrap().to_owned();

    // ListParts pages.
    let r = s
        .send(
            Req::new("GET", "/bk1/big.bin")
                .query("uploadId", &id)
                .query("max-parts", "2"),
        )
        .await;
    r.expect(200, None);
    assert_eq!(xml_values(&r.text(), "PartNumber"), vec!["1", "2"]);
    assert_eq!(xml_value(&r.text(), "IsTruncated").as_deref(), Some("true"));
    let next = xml_value(&r.text(), "NextPartNumberMarker").unwrap();
    let r = s
        .send(
            Req::new("GET", "/bk1/big.bin")
                .query("uploadId", &id)
                .query("part-number-marker", &next),
        )
        .await;
    assert_eq!(xml_values(&r.text(), "PartNumber"), vec!["3"]);

    let r = s.send(Req::new("GET", "/bk1").query("uploads", "")).await;
    r.expect(200, None);
    assert_eq!(xml_values(&r.text(), "UploadId"), vec![id.clone()]);

    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{etag2}</ETag></Part><Part><PartNumber>3</PartNumber><ETag>{etag3}</ETag></Part></CompleteMultipartUpload>"
    );
    let r = s
        .send(
            Req::new("POST", "/bk1/big.bin")
                .query("uploadId", &id)
                .body(complete),
        )
        .await;
    r.expect(200, None);
    let etag = xml_value(&r.text(), "ETag").unwrap().replace("&quot;", "\"");
    assert!(etag.ends_with("-3\""), "{etag}");

    let g = s.get("bk1", "big.bin").await;
    g.expect(200, None);
    assert_eq!(g.body.len(), 10 * MIB + 4);
    assert_eq!(&g.body[..5 * MIB], &part1[..]);
    assert_eq!(&g.body[5 * MIB..10 * MIB], &source[..5 * MIB]);
    assert_eq!(&g.body[10 * MIB..], b"tail");
    assert_eq!(g.header("content-type"), Some("video/mp4"));
    assert_eq!(g.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn abort_and_small_parts() {
    let s = Server::with_bucket("bk1").await;
    let r = s.send(Req::new("POST", "/bk1/k").query("uploads", "")).await;
    let id = xml_value(&r.text(), "UploadId").unwrap();
    let e1 = s
        .send(
            Req::new("PUT", "/bk1/k")
                .query("partNumber", "1")
                .query("uploadId", &id)
                .body("small"),
        )
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let e2 = s
        .send(
            Req::new("PUT", "/bk1/k")
                .query("partNumber", "2")
                .query("uploadId", &id)
                .body("end"),
        )
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>"
    );
    s.send(Req::new("POST", "/bk1/k").query("uploadId", &id).body(complete))
        .await
        .expect(400, Some("EntityTooSmall"));
    s.send(
        Req::new("PUT", "/bk1/k")
            .query("partNumber", "10001")
            .query("uploadId", &id)
            .body("x"),
    )
    .await
    .expect(400, Some("InvalidArgument"));
    s.send(Req::new("DELETE", "/bk1/k").query("uploadId", &id))
        .await
        .expect(204, None);
    s.send(Req::new("GET", "/bk1/k").query("uploadId", &id))
        .await
        .expect(404, Some("NoSuchUpload"));
}
