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

async fn create_upload(s: &Server, key: &str) -> String {
    let r = s
        .send(Req::new("POST", &format!("/bk1/{key}")).query("uploads", ""))
        .await;
    r.expect(200, None);
    xml_value(&r.text(), "UploadId").unwrap()
}

/// Two uploads of `key`, the second initiated later but with the smaller
/// id, so that ordering by id and ordering by initiation disagree.
async fn two_uploads_ids_descending(s: &Server, key: &str) -> [String; 2] {
    let first = create_upload(s, key).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let second = create_upload(s, key).await;
        if second < first {
            return [first, second];
        }
        s.send(Req::new("DELETE", &format!("/bk1/{key}")).query("uploadId", &second))
            .await
            .expect(204, None);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    Upload(String, String),
    Prefix(String),
}

impl Listed {
    fn sort_key(&self) -> &str {
        match self {
            Self::Upload(k, _) | Self::Prefix(k) => k,
        }
    }
}

/// One ListMultipartUploads page: its entries in listing order, whether it
/// is truncated, and the next markers.
async fn uploads_page(
    s: &Server,
    max: usize,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    id_marker: Option<&str>,
) -> (Vec<Listed>, bool, Option<String>, Option<String>) {
    let mut req = Req::new("GET", "/bk1")
        .query("uploads", "")
        .query("max-uploads", &max.to_string());
    if let Some(d) = delimiter {
        req = req.query("delimiter", d);
    }
    if let Some(k) = key_marker {
        req = req.query("key-marker", k);
    }
    if let Some(i) = id_marker {
        req = req.query("upload-id-marker", i);
    }
    let r = s.send(req).await;
    r.expect(200, None);
    let xml = r.text();
    let mut entries: Vec<Listed> = xml_values(&xml, "Upload")
        .iter()
        .map(|u| Listed::Upload(xml_value(u, "Key").unwrap(), xml_value(u, "UploadId").unwrap()))
        .chain(
            xml_values(&xml, "CommonPrefixes")
                .iter()
                .map(|p| Listed::Prefix(xml_value(p, "Prefix").unwrap())),
        )
        .collect();
    // Uploads and prefixes come in separate lists; merge them by key
    // (stable, so uploads of one key keep their order).
    entries.sort_by(|a, b| a.sort_key().cmp(b.sort_key()));
    let truncated = xml_value(&xml, "IsTruncated").as_deref() == Some("true");
    let next_key = xml_value(&xml, "NextKeyMarker").filter(|v| !v.is_empty());
    let next_id = xml_value(&xml, "NextUploadIdMarker").filter(|v| !v.is_empty());
    (entries, truncated, next_key, next_id)
}

/// Pages through every upload the way boto3's and the AWS CLI's paginators
/// do: NextKeyMarker and NextUploadIdMarker become the next request's
/// key-marker and upload-id-marker while IsTruncated is true.
async fn page_all_uploads(s: &Server, max: usize, delimiter: Option<&str>) -> Vec<Listed> {
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (None, None);
    for _ in 0..20 {
        let (entries, truncated, next_key, next_id) =
            uploads_page(s, max, delimiter, key_marker.as_deref(), id_marker.as_deref()).await;
        assert!(entries.len() <= max, "page over max-uploads: {entries:?}");
        seen.extend(entries);
        if !truncated {
            return seen;
        }
        assert!(next_key.is_some(), "truncated page without NextKeyMarker");
        (key_marker, id_marker) = (next_key, next_id);
    }
    panic!("ListMultipartUploads paging did not end; seen so far: {seen:?}");
}

#[tokio::test]
async fn list_multipart_uploads_pages_see_every_upload_once_in_order() {
    let s = Server::with_bucket("bk1").await;
    let [a1, a2] = two_uploads_ids_descending(&s, "a").await;
    let [b1, b2] = two_uploads_ids_descending(&s, "b/x").await;
    let c1 = create_upload(&s, "c").await;
    let up = |k: &str, id: &String| Listed::Upload(k.to_owned(), id.clone());
    let flat = vec![
        up("a", &a1),
        up("a", &a2),
        up("b/x", &b1),
        up("b/x", &b2),
        up("c", &c1),
    ];
    let grouped = vec![
        up("a", &a1),
        up("a", &a2),
        Listed::Prefix("b/".to_owned()),
        up("c", &c1),
    ];
    for max in [1, 2] {
        assert_eq!(page_all_uploads(&s, max, None).await, flat, "max-uploads={max}");
        assert_eq!(
            page_all_uploads(&s, max, Some("/")).await,
            grouped,
            "max-uploads={max} delimiter=/"
        );
    }

    // A page ending on a common prefix names the prefix as NextKeyMarker
    // and no upload id.
    let (page, truncated, next_key, next_id) = uploads_page(&s, 3, Some("/"), None, None).await;
    assert_eq!(page, grouped[..3]);
    assert!(truncated);
    assert_eq!(next_key.as_deref(), Some("b/"));
    assert_eq!(next_id, None);

    // key-marker alone skips every upload of that key.
    let (page, ..) = uploads_page(&s, 10, None, Some("a"), None).await;
    assert_eq!(page, flat[2..]);
    // key-marker with an upload-id-marker starts right after that upload.
    let (page, ..) = uploads_page(&s, 10, None, Some("a"), Some(&a1)).await;
    assert_eq!(page, flat[1..]);
    let (page, ..) = uploads_page(&s, 10, None, Some("a"), Some(&a2)).await;
    assert_eq!(page, flat[2..]);
    // An upload-id-marker naming no upload of the key (completed or aborted
    // since) skips none of that key's uploads: repeat rather than miss.
    let (page, ..) = uploads_page(&s, 10, None, Some("a"), Some("0123456789abcdef0123456789abcdef")).await;
    assert_eq!(page, flat);
    // Without key-marker, upload-id-marker is ignored.
    let (page, ..) = uploads_page(&s, 10, None, None, Some(&a2)).await;
    assert_eq!(page, flat);
}

async fn upload_part(s: &Server, key: &str, id: &str, n: u32, body: Vec<u8>) -> String {
    let r = s
        .send(
            Req::new("PUT", &format!("/bk1/{key}"))
                .query("partNumber", &n.to_string())
                .query("uploadId", id)
                .body(body),
        )
        .await;
    r.expect(200, None);
    r.header("etag").unwrap().to_owned()
}

fn complete_xml(etags: &[String]) -> String {
    let parts: String = etags
        .iter()
        .enumerate()
        .map(|(i, e)| format!("<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>", i + 1))
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
}

#[tokio::test]
async fn full_object_checksums_are_refused_not_silently_composite() {
    let s = Server::with_bucket("bk1").await;
    // What boto3 (s3transfer) sends when the caller supplies a full-object
    // CRC, and what lib-storage sends with ChecksumType: FULL_OBJECT.
    for alg in ["CRC32", "CRC32C", "CRC64NVME", "SHA256"] {
        let r = s
            .send(
                Req::new("POST", "/bk1/full")
                    .query("uploads", "")
                    .header("x-amz-checksum-algorithm", alg)
                    .header("x-amz-checksum-type", "FULL_OBJECT"),
            )
            .await;
        r.expect(400, Some("InvalidRequest"));
        assert!(
            r.text()
                .contains("FULL_OBJECT checksums are not supported; use COMPOSITE"),
            "{alg}: {}",
            r.text()
        );
    }
    // S3 computes CRC64NVME for multipart objects only as FULL_OBJECT (the
    // default type for it), so it is refused too, with or without a type.
    for ty in [None, Some("COMPOSITE")] {
        let mut req = Req::new("POST", "/bk1/full")
            .query("uploads", "")
            .header("x-amz-checksum-algorithm", "CRC64NVME");
        if let Some(ty) = ty {
            req = req.header("x-amz-checksum-type", ty);
        }
        let r = s.send(req).await;
        r.expect(400, Some("InvalidRequest"));
        assert!(r.text().contains("CRC64NVME"), "{}", r.text());
    }
    s.send(
        Req::new("POST", "/bk1/full")
            .query("uploads", "")
            .header("x-amz-checksum-algorithm", "CRC32")
            .header("x-amz-checksum-type", "WHOLE"),
    )
    .await
    .expect(400, Some("InvalidRequest"));
    // Nothing was started.
    let r = s.send(Req::new("GET", "/bk1").query("uploads", "")).await;
    assert!(xml_values(&r.text(), "UploadId").is_empty(), "{}", r.text());
}

#[tokio::test]
async fn sdk_default_crc32_multipart_stays_composite() {
    let s = Server::with_bucket("bk1").await;
    // lib-storage and s3transfer default: x-amz-checksum-algorithm CRC32 and
    // no x-amz-checksum-type; an explicit COMPOSITE is the same upload.
    for ty in [None, Some("COMPOSITE")] {
        let mut req = Req::new("POST", "/bk1/obj")
            .query("uploads", "")
            .header("x-amz-checksum-algorithm", "CRC32");
        if let Some(ty) = ty {
            req = req.header("x-amz-checksum-type", ty);
        }
        let r = s.send(req).await;
        r.expect(200, None);
        assert_eq!(r.header("x-amz-checksum-type"), Some("COMPOSITE"));
        let id = xml_value(&r.text(), "UploadId").unwrap();
        let e1 = upload_part(&s, "obj", &id, 1, vec![b'p'; 5 * MIB]).await;
        let e2 = upload_part(&s, "obj", &id, 2, b"tail".to_vec()).await;
        let body = complete_xml(&[e1, e2]);

        // A completion claiming FULL_OBJECT for a COMPOSITE upload is
        // refused, as S3 refuses a checksum type differing from the
        // one the upload was created with.
        let r = s
            .send(
                Req::new("POST", "/bk1/obj")
                    .query("uploadId", &id)
                    .header("x-amz-checksum-type", "FULL_OBJECT")
                    .body(body.clone()),
            )
            .await;
        r.expect(400, Some("InvalidRequest"));

        let r = s
            .send(Req::new("POST", "/bk1/obj").query("uploadId", &id).body(body))
            .await;
        r.expect(200, None);
        assert_eq!(xml_value(&r.text(), "ChecksumType").as_deref(), Some("COMPOSITE"));
        assert!(
            xml_value(&r.text(), "ChecksumCRC32").unwrap().ends_with("-2"),
            "{}",
            r.text()
        );
    }
}
