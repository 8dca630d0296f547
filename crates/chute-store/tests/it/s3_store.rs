use crate::garage;
use bytes::Bytes;
use chute_core::{Checksum, ChecksumAlgorithm, Hasher};
use chute_store::conformance::{body, key, pattern, run_multipart_suite, run_store_suite};
use chute_store::s3::{CreateOnlySupport, S3Store, S3Tuning};
use chute_store::{
    ByteStream, CopyOptions, MultipartStore, ObjectHeaders, PartOptions, PutOptions, Store, StoreError,
};
use futures::StreamExt as _;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A fresh bucket on the shared Garage, opened with `tuning`.
async fn store_with(prefix: &str, tuning: S3Tuning) -> (Arc<garage::Garage>, S3Store) {
    let (g, config) = garage::shared_bucket(prefix).await;
    let store = S3Store::connect_with(config, tuning)
        .await
        .unwrap_or_else(|e| panic!("connecting to Garage failed: {e}"));
    (g, store)
}

async fn store(prefix: &str) -> (Arc<garage::Garage>, S3Store) {
    store_with(prefix, S3Tuning::default()).await
}

/// Small parts, so the multipart paths run on small bodies.
fn small_parts() -> S3Tuning {
    S3Tuning {
        part_size: 5 * MIB,
        max_copy_object_size: 5 * MIB as u64,
        copy_part_size: 5 * MIB as u64,
        ..S3Tuning::default()
    }
}

/// `len` pseudo-random bytes made as they are read, in 256 KiB chunks,
/// never held whole; the same `seed` gives the same bytes.
fn generated(len: usize, seed: u8) -> ByteStream {
    let chunk = 256 * 1024;
    futures::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
        let n = chunk.min(len - i * chunk);
        Ok(Bytes::from(pattern(n, seed.wrapping_add(i as u8))))
    }))
    .boxed()
}

fn md5_of_generated(len: usize, seed: u8) -> [u8; 16] {
    let chunk = 256 * 1024;
    let mut h = Hasher::new(&[]);
    for i in 0..len.div_ceil(chunk) {
        h.update(&pattern(chunk.min(len - i * chunk), seed.wrapping_add(i as u8)));
    }
    h.finish().md5
}

async fn md5_of_object(store: &S3Store, k: &chute_store::ObjectKey) -> (u64, [u8; 16]) {
    let got = store.get(k, None).await.unwrap();
    let mut h = Hasher::new(&[]);
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        h.update(&chunk.unwrap());
    }
    let r = h.finish();
    (r.len, r.md5)
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Samples [`rss`] until dropped; `peak` is the highest seen.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start() -> Self {
        let (peak, stop) = (Arc::new(AtomicU64::new(rss())), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The failure a test body ends with.
fn failing_after(len: usize) -> ByteStream {
    generated(len, 9)
        .chain(futures::stream::iter([Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        ))]))
        .boxed()
}

async fn assert_absent(store: &S3Store, k: &chute_store::ObjectKey, what: &str) {
    let r = store.head(k).await;
    assert!(
        matches!(r, Err(StoreError::NoSuchKey { .. })),
        "{what}: the object must not exist, got {r:?}"
    );
    let uploads = store.list_multipart_uploads("").await.unwrap();
    assert!(
        uploads.is_empty(),
        "{what}: no multipart upload may be left behind: {uploads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_store_suite() {
    let (_g, s) = store("store-suite").await;
    run_store_suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_multipart_suite() {
    let (_g, s) = store("mp-suite").await;
    run_multipart_suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_pass_with_small_parts_too() {
    let (_g, s) = store_with("small-suite", small_parts()).await;
    run_store_suite(&s).await;
    run_multipart_suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_ignores_if_none_match_so_create_only_is_refused() {
    let (_g, s) = store("create-only").await;
    assert!(
        !s.capabilities().create_only,
        "Garage 2.5 overwrites despite If-None-Match: * (if this fails, Garage learnt it: \
         the store suite now checks create-only for real)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_body_streams_with_bounded_memory() {
    let (_g, s) = store("stream64").await;
    let k = key("big/known-length.bin");
    let len = 64 * MIB;
    let before = rss();
    let sampler = RssSampler::start();
    let opts = PutOptions {
        expected_len: Some(len as u64),
        checksum_algorithm: Some(ChecksumAlgorithm::Crc32c),
        ..PutOptions::default()
    };
    let meta = s.put(&k, generated(len, 1), opts).await.unwrap();
    let grown = sampler.peak().saturating_sub(before);
    drop(sampler);
    eprintln!("64 MiB streamed put: peak RSS growth {} KiB", grown >> 10);
    assert!(
        grown < 24 * MIB as u64,
        "a 64 MiB streamed put grew the process by {} MiB",
        grown >> 20
    );
    assert_eq!(
        meta.etag,
        hex::encode(md5_of_generated(len, 1)),
        "one PutObject: the ETag is the MD5"
    );
    assert_eq!(
        md5_of_object(&s, &k).await,
        (len as u64, md5_of_generated(len, 1))
    );
    let head = s.head(&k).await.unwrap();
    assert_eq!(head.checksum, meta.checksum, "the trailer checksum is stored");
    assert_eq!(
        head.checksum.map(|c| c.algorithm),
        Some(ChecksumAlgorithm::Crc32c)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_length_above_one_part_goes_multipart() {
    let (_g, s) = store_with("unknown-len", small_parts()).await;
    let k = key("big/unknown-length.bin");
    let len = 23 * MIB + 17;
    let before = rss();
    let sampler = RssSampler::start();
    let opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("video/mp4".into()),
            expires: Some("Wed, 21 Oct 2099 07:28:00 GMT".into()),
            ..ObjectHeaders::default()
        },
        metadata: BTreeMap::from([("owner".to_owned(), "zoë".to_owned())]),
        checksum_algorithm: Some(ChecksumAlgorithm::Sha256),
        ..PutOptions::default()
    };
    let meta = s.put(&k, generated(len, 2), opts).await.unwrap();
    let grown = sampler.peak().saturating_sub(before);
    drop(sampler);
    eprintln!("23 MiB multipart put: peak RSS growth {} KiB", grown >> 10);
    // (part_concurrency + 1) parts of 5 MiB at most, plus slack.
    assert!(grown < 40 * MIB as u64, "grew by {} MiB", grown >> 20);
    assert!(meta.etag.ends_with("-5"), "5 parts of 5 MiB: {}", meta.etag);
    assert_eq!(meta.size, len as u64);
    let head = s.head(&k).await.unwrap();
    assert_eq!((head.size, &head.etag), (len as u64, &meta.etag));
    assert_eq!(head.headers.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(head.metadata.get("owner").map(String::as_str), Some("zoë"));
    assert_eq!(
        head.checksum.as_ref().and_then(|c| c.parts),
        Some(5),
        "a composite checksum"
    );
    assert_eq!(head.checksum, meta.checksum);
    assert_eq!(
        md5_of_object(&s, &k).await,
        (len as u64, md5_of_generated(len, 2))
    );
    assert!(
        s.list_multipart_uploads("").await.unwrap().is_empty(),
        "the upload is completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_puts_leave_nothing() {
    let (_g, s) = store_with("failed", small_parts()).await;
    let len = 12 * MIB;
    // Streamed (known length) and multipart (unknown length) paths.
    for expected_len in [Some(len as u64), None] {
        let k = key("fail/body-error");
        let opts = PutOptions {
            expected_len,
            ..PutOptions::default()
        };
        match s.put(&k, failing_after(len), opts).await {
            Err(StoreError::Body(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("a failing body must be StoreError::Body, got {other:?}"),
        }
        assert_absent(&s, &k, &format!("body error, expected_len {expected_len:?}")).await;

        let k = key("fail/wrong-md5");
        let opts = PutOptions {
            expected_len,
            expected_md5: Some([0; 16]),
            ..PutOptions::default()
        };
        let r = s.put(&k, generated(len, 3), opts).await;
        assert!(matches!(r, Err(StoreError::BadDigest)), "wrong MD5: {r:?}");
        assert_absent(&s, &k, "wrong MD5").await;

        let k = key("fail/wrong-checksum");
        let bad = Checksum {
            algorithm: ChecksumAlgorithm::Crc32,
            value: vec![0, 0, 0, 0],
            parts: None,
        };
        let opts = PutOptions {
            expected_len,
            expected_checksum: Some(bad),
            ..PutOptions::default()
        };
        let r = s.put(&k, generated(len, 3), opts).await;
        assert!(
            matches!(r, Err(StoreError::ChecksumMismatch { .. })),
            "wrong CRC32: {r:?}"
        );
        assert_absent(&s, &k, "wrong checksum").await;
    }
    for (declared, sent) in [(len + 1, len), (len, len + 1)] {
        let k = key("fail/length");
        let opts = PutOptions {
            expected_len: Some(declared as u64),
            ..PutOptions::default()
        };
        let r = s.put(&k, generated(sent, 4), opts).await;
        assert!(
            matches!(r, Err(StoreError::LengthMismatch { .. })),
            "{sent} bytes for {declared}: {r:?}"
        );
        assert_absent(&s, &k, "length mismatch").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_parts_stream_with_the_uploads_checksum() {
    let (_g, s) = store_with("big-parts", small_parts()).await;
    let k = key("mp/streamed-parts");
    let opts = PutOptions {
        checksum_algorithm: Some(ChecksumAlgorithm::Crc32),
        ..PutOptions::default()
    };
    let up = s.create_multipart(&k, opts).await.unwrap();
    let len = 6 * MIB;
    let part = s
        .upload_part(
            &k,
            &up.upload_id,
            1,
            generated(len, 5),
            PartOptions {
                expected_len: Some(len as u64),
                ..PartOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(part.etag, hex::encode(md5_of_generated(len, 5)));
    assert_eq!(
        part.checksum.as_ref().map(|c| c.algorithm),
        Some(ChecksumAlgorithm::Crc32)
    );
    let listed = s.list_parts(&k, &up.upload_id).await.unwrap();
    assert_eq!(
        listed[0].checksum, part.checksum,
        "ListParts shows the trailer checksum"
    );
    let r = s
        .upload_part(&k, &up.upload_id, 2, generated(len, 5), PartOptions::default())
        .await;
    assert!(
        matches!(r, Err(StoreError::Unsupported(_))),
        "a part of unknown length above part_size: {r:?}"
    );
    let done = s
        .complete_multipart(
            &k,
            &up.upload_id,
            &[chute_store::CompletedPart {
                part_number: 1,
                etag: part.etag.clone(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(done.size, len as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_above_the_limit_go_part_by_part() {
    let (_g, s) = store_with("big-copy", small_parts()).await;
    let src = key("copy/src");
    let len = 12 * MIB + 3;
    let opts = PutOptions {
        expected_len: Some(len as u64),
        headers: ObjectHeaders {
            content_type: Some("image/png".into()),
            ..ObjectHeaders::default()
        },
        metadata: BTreeMap::from([("a".to_owned(), "1".to_owned())]),
        ..PutOptions::default()
    };
    s.put(&src, generated(len, 6), opts).await.unwrap();
    let kept = key("copy/kept");
    let meta = s.copy(&src, &kept, CopyOptions::KeepMetadata).await.unwrap();
    assert!(
        meta.etag.ends_with("-2"),
        "UploadPartCopy in 2 parts of at least 5 MiB: {}",
        meta.etag
    );
    assert_eq!(meta.headers.content_type.as_deref(), Some("image/png"));
    assert_eq!(meta.metadata.get("a").map(String::as_str), Some("1"));
    assert_eq!(
        md5_of_object(&s, &kept).await,
        (len as u64, md5_of_generated(len, 6))
    );
    let replaced = key("copy/replaced");
    let new = PutOptions {
        metadata: BTreeMap::from([("b".to_owned(), "2".to_owned())]),
        ..PutOptions::default()
    };
    let meta = s
        .copy(&src, &replaced, CopyOptions::ReplaceMetadata(new))
        .await
        .unwrap();
    assert_eq!(meta.metadata, BTreeMap::from([("b".to_owned(), "2".to_owned())]));
    assert_eq!(meta.headers.content_type, None);
    assert!(s.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_give_a_clear_error() {
    let (_g, config) = garage::shared_bucket("creds").await;
    let mut wrong_secret = config.clone();
    wrong_secret.credentials.secret_key = "0".repeat(64);
    let err = S3Store::connect(wrong_secret).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    assert!(
        msg.contains("refused access") && msg.contains("signature"),
        "{msg}"
    );

    let mut wrong_key = config.clone();
    wrong_key.credentials.access_key = "GK000000000000000000000000".into();
    let err = S3Store::connect(wrong_key).await.unwrap_err();
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");

    let mut wrong_region = config.clone();
    wrong_region.region = "us-east-1".into();
    let err = S3Store::connect(wrong_region).await.unwrap_err();
    assert!(
        err.to_string().contains("garage"),
        "the message names the expected region: {err}"
    );

    let mut no_bucket = config.clone();
    no_bucket.bucket = chute_store::BucketName::parse("no-such-bucket-here").unwrap();
    let err = S3Store::connect(no_bucket).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err:?}");

    let mut nobody = config.clone();
    nobody.endpoint = format!("http://127.0.0.1:{}", free_closed_port());
    let err = S3Store::connect(nobody).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );

    let mut plain = config;
    plain.allow_http = false;
    let err = S3Store::connect(plain).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

fn free_closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assuming_create_only_is_honoured_without_a_probe() {
    let (_g, s) = store_with(
        "assume",
        S3Tuning {
            create_only: CreateOnlySupport::Assume(false),
            ..S3Tuning::default()
        },
    )
    .await;
    let k = key("probe-free");
    assert!(!s.capabilities().create_only);
    let create = PutOptions {
        if_none_match: true,
        ..PutOptions::default()
    };
    assert!(matches!(
        s.put(&k, body(b"x"), create).await,
        Err(StoreError::Unsupported(_))
    ));
    let listed = s.list(&chute_store::ListOptions::default()).await.unwrap();
    assert!(
        listed.objects.is_empty(),
        "no probe object was written: {listed:?}"
    );
}

/// A GET whose answer breaks off after its headers (a store node that
/// cannot serve the object's bytes) fails naming the request and the
/// cause, not only reqwest's "error decoding response body".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_after_its_headers_names_the_request_and_its_cause() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Answers the store's opening list in full, every other request with
    // its headers and 10 of the 1000 bytes they announce, then closes.
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = if String::from_utf8_lossy(&req).contains("list-type=2") {
                    let xml = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                        xml.len()
                    )
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"e\"\r\n\r\n0123456789".to_owned()
                };
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    let (_g, mut config) = garage::shared_bucket("cutoff").await;
    config.endpoint = format!("http://127.0.0.1:{port}");
    let tuning = S3Tuning {
        create_only: CreateOnlySupport::Assume(false),
        ..S3Tuning::default()
    };
    let store = S3Store::connect_with(config, tuning).await.unwrap();
    let got = store.get(&key("cut-off-object"), None).await.unwrap();
    let err = got
        .body
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .find_map(Result::err)
        .expect("the body breaks off");
    let msg = err.to_string();
    assert!(
        msg.contains("GET") && msg.contains("cut-off-object"),
        "names the request: {msg}"
    );
    assert!(
        msg.len() > "error decoding response body".len() + 20,
        "carries the cause after reqwest's own words: {msg}"
    );
}
