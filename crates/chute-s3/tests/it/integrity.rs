use crate::harness::{Req, Server, b64};
use chute_core::ChecksumAlgorithm;

fn md5_of(data: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(data).to_vec()
}

#[tokio::test]
async fn content_md5_is_verified() {
    let s = Server::with_bucket("bk1").await;
    s.send(
        Req::new("PUT", "/bk1/ok")
            .header("content-md5", &b64(&md5_of(b"data")))
            .body("data"),
    )
    .await
    .expect(200, None);
    s.send(
        Req::new("PUT", "/bk1/bad")
            .header("content-md5", &b64(&md5_of(b"other")))
            .body("data"),
    )
    .await
    .expect(400, Some("BadDigest"));
    s.get("bk1", "bad").await.expect(404, Some("NoSuchKey"));
    s.send(
        Req::new("PUT", "/bk1/bad")
            .header("content-md5", "nope")
            .body("data"),
    )
    .await
    .expect(400, Some("InvalidDigest"));
}

#[tokio::test]
async fn each_checksum_is_verified_and_returned() {
    let s = Server::with_bucket("bk1").await;
    for alg in ChecksumAlgorithm::ALL {
        let header = alg.header_name();
        let good = b64(&alg.digest(b"data"));
        let bad = b64(&alg.digest(b"other"));
        let key = format!("/bk1/{}", alg.as_str());
        let r = s
            .send(Req::new("PUT", &key).header(header, &bad).body("data"))
            .await;
        r.expect(400, Some("BadDigest"));
        assert!(
            r.text().contains(&format!(
                "The {header} you specified did not match the calculated checksum."
            )),
            "{}",
            r.text()
        );
        s.send(Req::new("HEAD", &key)).await.expect(404, None);
        let r = s
            .send(Req::new("PUT", &key).header(header, &good).body("data"))
            .await;
        r.expect(200, None);
        assert_eq!(r.header(header), Some(good.as_str()));
        let h = s
            .send(Req::new("HEAD", &key).header("x-amz-checksum-mode", "ENABLED"))
            .await;
        assert_eq!(h.header(header), Some(good.as_str()));
        let h = s.send(Req::new("HEAD", &key)).await;
        assert_eq!(h.header(header), None);
        s.send(Req::new("PUT", &key).header(header, "!!").body("data"))
            .await
            .expect(400, Some("InvalidRequest"));
    }
}

#[tokio::test]
async fn algorithm_without_value_is_computed() {
    let s = Server::with_bucket("bk1").await;
    let r = s
        .send(
            Req::new("PUT", "/bk1/k")
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .body("data"),
        )
        .await;
    r.expect(200, None);
    let want = b64(&ChecksumAlgorithm::Sha256.digest(b"data"));
    assert_eq!(r.header("x-amz-checksum-sha256"), Some(want.as_str()));
    let g = s
        .send(Req::new("GET", "/bk1/k").header("x-amz-checksum-mode", "ENABLED"))
        .await;
    assert_eq!(g.header("x-amz-checksum-sha256"), Some(want.as_str()));
}

fn chunked(data: &[u8], trailer: &str) -> Vec<u8> {
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n0\r\n{trailer}\r\n\r\n").as_bytes());
    body
}

async fn put_with_trailer(s: &Server, key: &str, data: &[u8], value: &str) -> crate::harness::Resp {
    let mut req = Req::new("PUT", key)
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(chunked(data, &format!("x-amz-checksum-crc32:{value}")));
    req.payload = Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned());
    s.send(req).await
}

#[tokio::test]
async fn trailer_checksums_are_verified() {
    let s = Server::with_bucket("bk1").await;
    let good = b64(&ChecksumAlgorithm::Crc32.digest(b"hello trailer"));
    let r = put_with_trailer(&s, "/bk1/t", b"hello trailer", &good).await;
    r.expect(200, None);
    assert_eq!(r.header("x-amz-checksum-crc32"), Some(good.as_str()));
    assert_eq!(&s.get("bk1", "t").await.body[..], b"hello trailer");
    let bad = b64(&ChecksumAlgorithm::Crc32.digest(b"other"));
    put_with_trailer(&s, "/bk1/t2", b"hello trailer", &bad)
        .await
        .expect(400, Some("BadDigest"));
    s.get("bk1", "t2").await.expect(404, Some("NoSuchKey"));
}
