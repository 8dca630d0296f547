//! The conformance suite every [`Store`] backend runs: the trait contract
//! only, no backend internals. Each clause is a public function that
//! panics with a clear message on a violation; [`run_store_suite`] and
//! [`run_multipart_suite`] run them all. Clauses use their own key
//! prefixes (`conf-<clause>/`), so one bucket can hold every clause.
//!
//! [`model_list`] is S3's listing rule as a few lines over a sorted set of
//! keys; the suite (and property tests) compare backends against it.

use crate::{
    ByteRange, ByteStream, CompletedPart, CopyOptions, ListOptions, MIN_PART_SIZE, MultipartStore,
    ObjectHeaders, PartOptions, PutOptions, Store, StoreError,
};
use bytes::Bytes;
use chute_core::checksum::multipart_etag;
use chute_core::{Checksum, ChecksumAlgorithm, Hasher, ObjectKey};
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::BTreeMap;
use std::io;

/// Runs every [`Store`] clause.
pub async fn run_store_suite<S: Store>(store: &S) {
    round_trip(store).await;
    overwrite(store).await;
    ranges(store).await;
    headers_and_metadata(store).await;
    expectations_refuse_writes(store).await;
    body_errors_store_nothing(store).await;
    list_matches_model(store).await;
    copy_modes(store).await;
    create_only(store).await;
}

/// Runs every [`MultipartStore`] clause.
pub async fn run_multipart_suite<S: MultipartStore>(store: &S) {
    multipart_happy_path(store).await;
    multipart_part_replacement(store).await;
    multipart_refuses_bad_completions(store).await;
    multipart_abort(store).await;
    multipart_list_uploads(store).await;
    multipart_wrong_upload(store).await;
}

/// An object key, panicking on an invalid literal.
pub fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap_or_else(|e| panic!("test key {s:?} is invalid: {e}"))
}

/// A body yielding `data` in chunks of `chunk` bytes.
pub fn body_chunked(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// A body yielding `data` in 7-byte chunks (to exercise chunk joins).
pub fn body(data: &[u8]) -> ByteStream {
    body_chunked(data, 7)
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    let mut h = Hasher::new(&[]);
    h.update(data);
    h.finish().md5
}

async fn get_bytes<S: Store + ?Sized>(store: &S, k: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
    let got = store
        .get(k, range)
        .await
        .unwrap_or_else(|e| panic!("get {k} {range:?} failed: {e}"));
    let data: Vec<Bytes> = got
        .body
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading the body of {k} failed: {e}"));
    let data = data.concat();
    assert_eq!(
        data.len() as u64,
        got.range.end - got.range.start,
        "get {k} {range:?}: body length differs from the reported range {:?}",
        got.range
    );
    data
}

async fn put_bytes<S: Store + ?Sized>(store: &S, k: &ObjectKey, data: &[u8], opts: PutOptions) {
    store
        .put(k, body(data), opts)
        .await
        .unwrap_or_else(|e| panic!("put {k} failed: {e}"));
}

/// put, get, head and delete round-trip; a missing key is `NoSuchKey`;
/// deleting a missing key succeeds.
pub async fn round_trip<S: Store + ?Sized>(store: &S) {
    let k = key("conf-rt/hello.txt");
    let data = b"hello world";
    let meta = store
        .put(&k, body(data), PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put failed: {e}"));
    assert_eq!(meta.key, k, "put returned the wrong key");
    assert_eq!(meta.size, 11, "put returned the wrong size");
    assert_eq!(
        meta.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3",
        "ETag must be the hex MD5"
    );
    assert_eq!(get_bytes(store, &k, None).await, data, "get returned other bytes");
    let head = store
        .head(&k)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(
        (head.size, head.etag.as_str()),
        (11, meta.etag.as_str()),
        "head differs from put"
    );
    let empty = key("conf-rt/empty");
    put_bytes(store, &empty, b"", PutOptions::default()).await;
    assert_eq!(get_bytes(store, &empty, None).await, b"", "empty object");
    assert_eq!(
        store.head(&empty).await.map(|m| m.size).ok(),
        Some(0),
        "empty object size"
    );
    for k in [&k, &empty] {
        store
            .delete(k)
            .await
            .unwrap_or_else(|e| panic!("delete failed: {e}"));
        match store.head(k).await {
            Err(StoreError::NoSuchKey { .. }) => {}
            other => panic!("head after delete must be NoSuchKey, got {other:?}"),
        }
        assert!(
            matches!(store.get(k, None).await, Err(StoreError::NoSuchKey { .. })),
            "get after delete must be NoSuchKey"
        );
        store
            .delete(k)
            .await
            .unwrap_or_else(|e| panic!("deleting a missing key must succeed: {e}"));
    }
}

/// A second put replaces the object entirely.
pub async fn overwrite<S: Store + ?Sized>(store: &S) {
    let k = key("conf-ow/k");
    put_bytes(store, &k, &pattern(1000, 1), PutOptions::default()).await;
    let opts = PutOptions {
        metadata: BTreeMap::from([("v".to_owned(), "2".to_owned())]),
        ..PutOptions::default()
    };
    put_bytes(store, &k, b"short", opts).await;
    assert_eq!(
        get_bytes(store, &k, None).await,
        b"short",
        "overwrite must replace the body"
    );
    let head = store
        .head(&k)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(head.size, 5, "overwrite must replace the size");
    assert_eq!(
        head.metadata.get("v").map(String::as_str),
        Some("2"),
        "overwrite metadata"
    );
    let _ = store.delete(&k).await;
}

/// Ranged GETs, including suffix ranges, clamping and unsatisfiable ranges.
pub async fn ranges<S: Store + ?Sized>(store: &S) {
    let k = key("conf-range/k");
    let data = pattern(100, 2);
    put_bytes(store, &k, &data, PutOptions::default()).await;
    let cases = [
        (ByteRange::Inclusive { first: 10, last: 19 }, 10..20),
        (ByteRange::Inclusive { first: 0, last: 0 }, 0..1),
        (ByteRange::Inclusive { first: 95, last: 500 }, 95..100),
        (ByteRange::From(90), 90..100),
        (ByteRange::Suffix(5), 95..100),
        (ByteRange::Suffix(500), 0..100),
    ];
    for (range, want) in cases {
        let got = store
            .get(&k, Some(range))
            .await
            .unwrap_or_else(|e| panic!("get {range:?} failed: {e}"));
        assert_eq!(got.range, want, "range {range:?} resolved wrongly");
        assert_eq!(got.meta.size, 100, "a ranged get reports the full size");
        drop(got);
        assert_eq!(
            get_bytes(store, &k, Some(range)).await,
            &data[want.start as usize..want.end as usize],
            "range {range:?} returned other bytes"
        );
    }
    for range in [
        ByteRange::Inclusive {
            first: 100,
            last: 120,
        },
        ByteRange::From(100),
        ByteRange::Suffix(0),
    ] {
        match store.get(&k, Some(range)).await {
            Err(StoreError::InvalidRange { size: 100 }) => {}
            other => panic!(
                "range {range:?} must be InvalidRange{{size: 100}}, got {:?}",
                other.map(|g| g.range)
            ),
        }
    }
    let empty = key("conf-range/empty");
    put_bytes(store, &empty, b"", PutOptions::default()).await;
    assert!(
        matches!(
            store.get(&empty, Some(ByteRange::From(0))).await,
            Err(StoreError::InvalidRange { .. })
        ),
        "any range of an empty object is unsatisfiable"
    );
    let _ = store.delete(&k).await;
    let _ = store.delete(&empty).await;
}

fn sample_headers() -> ObjectHeaders {
    ObjectHeaders {
        content_type: Some("image/png".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"a b.png\"".into()),
        content_encoding: Some("identity".into()),
        content_language: Some("de-CH".into()),
        expires: Some("Wed, 21 Oct 2099 07:28:00 GMT".into()),
    }
}

/// Headers and user metadata come back from head and get.
pub async fn headers_and_metadata<S: Store + ?Sized>(store: &S) {
    let k = key("conf-meta/k");
    let metadata = BTreeMap::from([
        ("owner".to_owned(), "alice".to_owned()),
        ("note".to_owned(), "ünïcode ok".to_owned()),
    ]);
    let opts = PutOptions {
        headers: sample_headers(),
        metadata: metadata.clone(),
        ..PutOptions::default()
    };
    put_bytes(store, &k, b"x", opts).await;
    let head = store
        .head(&k)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(head.headers, sample_headers(), "headers not kept");
    assert_eq!(head.metadata, metadata, "metadata not kept");
    let got = store
        .get(&k, None)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e}"));
    assert_eq!(got.meta.headers, sample_headers(), "get must return the headers");
    assert_eq!(got.meta.metadata, metadata, "get must return the metadata");
    let _ = store.delete(&k).await;
}

fn wrong(value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    v[0] ^= 0xff;
    v
}

/// Length, MD5 and checksum expectations refuse the write and keep the old
/// object; correct expectations pass and the checksum is stored.
pub async fn expectations_refuse_writes<S: Store + ?Sized>(store: &S) {
    let k = key("conf-exp/k");
    put_bytes(store, &k, b"old", PutOptions::default()).await;
    let data = b"new body";
    let k = &k;
    let check_old = |what: String| async move {
        assert_eq!(
            get_bytes(store, k, None).await,
            b"old",
            "{what}: the old object must stay"
        );
    };
    let refused = |opts: PutOptions| async move { store.put(k, body(data), opts).await };
    for expected_len in [7, 9, 0] {
        let r = refused(PutOptions {
            expected_len: Some(expected_len),
            ..PutOptions::default()
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::LengthMismatch { expected, .. }) if expected == expected_len),
            "expected_len {expected_len} for 8 bytes must be LengthMismatch, got {r:?}"
        );
        check_old(format!("expected_len {expected_len}")).await;
    }
    let r = refused(PutOptions {
        expected_md5: Some(md5_of(b"something else")),
        ..PutOptions::default()
    })
    .await;
    assert!(
        matches!(r, Err(StoreError::BadDigest)),
        "wrong MD5 must be BadDigest, got {r:?}"
    );
    check_old("wrong MD5".into()).await;
    for algorithm in ChecksumAlgorithm::ALL {
        let right = Checksum {
            algorithm,
            value: algorithm.digest(data),
            parts: None,
        };
        let bad = Checksum {
            value: wrong(&right.value),
            ..right.clone()
        };
        let r = refused(PutOptions {
            expected_checksum: Some(bad),
            ..PutOptions::default()
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::ChecksumMismatch { algorithm: a }) if a == algorithm),
            "wrong {algorithm} must be ChecksumMismatch, got {r:?}"
        );
        check_old(format!("wrong {algorithm}")).await;
        let meta = store
            .put(
                k,
                body(data),
                PutOptions {
                    expected_len: Some(8),
                    expected_md5: Some(md5_of(data)),
                    expected_checksum: Some(right.clone()),
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("correct {algorithm} expectations refused: {e}"));
        assert_eq!(
            meta.checksum.as_ref(),
            Some(&right),
            "{algorithm} checksum not returned by put"
        );
        let head = store.head(k).await.unwrap_or_else(|e| panic!("head failed: {e}"));
        assert_eq!(
            head.checksum.as_ref(),
            Some(&right),
            "{algorithm} checksum not stored"
        );
        put_bytes(store, k, b"old", PutOptions::default()).await;
        // An algorithm alone: computed and stored.
        let meta = store
            .put(
                k,
                body(data),
                PutOptions {
                    checksum_algorithm: Some(algorithm),
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("put with {algorithm} failed: {e}"));
        assert_eq!(
            meta.checksum.as_ref(),
            Some(&right),
            "{algorithm} not computed on request"
        );
        put_bytes(store, k, b"old", PutOptions::default()).await;
    }
    let _ = store.delete(k).await;
}

/// The reason a test body fails with, to check it survives as the source.
#[derive(Debug)]
struct ClientWentAway;

impl std::fmt::Display for ClientWentAway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client went away")
    }
}

impl std::error::Error for ClientWentAway {}

fn failing_body(data: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, ClientWentAway)),
        Ok(Bytes::from_static(b"never read")),
    ];
    futures::stream::iter(items).boxed()
}

/// A body stream error is `StoreError::Body` carrying the caller's error,
/// and stores nothing.
pub async fn body_errors_store_nothing<S: Store + ?Sized>(store: &S) {
    let fresh = key("conf-body/fresh");
    let kept = key("conf-body/kept");
    put_bytes(store, &kept, b"old", PutOptions::default()).await;
    for k in [&fresh, &kept] {
        match store
            .put(k, failing_body(&pattern(3000, 3)), PutOptions::default())
            .await
        {
            Err(StoreError::Body(e)) => {
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset,
                    "the io::Error kind must be kept"
                );
                assert!(
                    e.get_ref().is_some_and(|r| r.is::<ClientWentAway>()),
                    "the caller's error must be downcastable from StoreError::Body, got {e:?}"
                );
            }
            other => panic!("a failing body must be StoreError::Body, got {other:?}"),
        }
    }
    assert!(
        matches!(store.head(&fresh).await, Err(StoreError::NoSuchKey { .. })),
        "a failed put must leave nothing"
    );
    assert_eq!(
        get_bytes(store, &kept, None).await,
        b"old",
        "a failed put must keep the old object"
    );
    let _ = store.delete(&kept).await;
}

/// One page of a listing as S3 computes it: keys and common prefixes
/// (entries) in order, each greater than `start_after`, at most
/// `max_keys` (0 → 1000) of them, with the last one as the next token
/// when more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPage {
    /// Object keys.
    pub keys: Vec<String>,
    /// Common prefixes.
    pub common_prefixes: Vec<String>,
    /// `next_start_after`.
    pub next_start_after: Option<String>,
}

/// S3's listing rule over `keys`, for comparing backends against.
pub fn model_list(keys: &[String], opts: &ListOptions) -> ModelPage {
    let max = match opts.max_keys {
        0 => 1000,
        n => n.min(1000),
    };
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    let sa = opts.start_after.as_deref();
    let delimiter = opts.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut entries: Vec<(String, bool)> = Vec::new();
    for k in sorted {
        if !k.starts_with(&opts.prefix) || sa.is_some_and(|sa| k.as_str() <= sa) {
            continue;
        }
        let cp = delimiter.and_then(|d| {
            k[opts.prefix.len()..]
                .find(d)
                .map(|i| k[..opts.prefix.len() + i + d.len()].to_owned())
        });
        match cp {
            Some(cp) => {
                if sa.is_some_and(|sa| cp.as_str() <= sa) || entries.last().is_some_and(|(e, _)| *e == cp) {
                    continue;
                }
                entries.push((cp, true));
            }
            None => entries.push((k.clone(), false)),
        }
    }
    let next_start_after = (entries.len() > max).then(|| entries[max - 1].0.clone());
    entries.truncate(max);
    let (cps, ks): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(_, cp)| *cp);
    ModelPage {
        keys: ks.into_iter().map(|(k, _)| k).collect(),
        common_prefixes: cps.into_iter().map(|(k, _)| k).collect(),
        next_start_after,
    }
}

/// Lists every page of `opts` from `store` and from the model over `keys`,
/// panicking on the first difference. Returns the number of pages.
pub async fn check_listing<S: Store + ?Sized>(store: &S, keys: &[String], opts: &ListOptions) -> usize {
    let mut opts = opts.clone();
    let mut pages = 0;
    loop {
        let want = model_list(keys, &opts);
        let got = store
            .list(&opts)
            .await
            .unwrap_or_else(|e| panic!("list {opts:?} failed: {e}"));
        let got = ModelPage {
            keys: got.objects.iter().map(|o| o.key.to_string()).collect(),
            common_prefixes: got.common_prefixes,
            next_start_after: got.next_start_after,
        };
        assert_eq!(got, want, "listing {opts:?} differs from S3's rules");
        pages += 1;
        match want.next_start_after {
            Some(next) => opts.start_after = Some(next),
            None => return pages,
        }
        assert!(pages < 10_000, "listing {opts:?} does not end");
    }
}

/// The listing fixture: awkward neighbours, unicode and deep keys.
pub fn list_fixture(base: &str) -> Vec<String> {
    [
        "a",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "a/b-c",
        "a-b",
        "a-b/c",
        "ab",
        "a0",
        "a!",
        "A",
        "_x",
        "~y",
        "b/ü",
        "b/u",
        "b/z/z",
        "é",
        "éa/b",
        "日本/語",
        "a b",
        "%41",
        "x%2fy",
        "deep/1/2/3/4/5/6/7/8/leaf",
        "deep/1/2/other",
        "deep/1x",
        "z",
        "z/z",
        "zz",
        "a+b",
        "a.b",
        "a..b",
    ]
    .iter()
    .map(|k| format!("{base}{k}"))
    .collect()
}

/// Listing with prefixes, delimiters (`/` and others), `start_after` and
/// paging agrees with [`model_list`].
pub async fn list_matches_model<S: Store + ?Sized>(store: &S) {
    let base = "conf-list/";
    let keys = list_fixture(base);
    for (i, k) in keys.iter().enumerate() {
        put_bytes(store, &key(k), &pattern(i, 4), PutOptions::default()).await;
    }
    let full = store
        .list(&ListOptions {
            prefix: base.into(),
            ..ListOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    for o in &full.objects {
        let head = store
            .head(&o.key)
            .await
            .unwrap_or_else(|e| panic!("head failed: {e}"));
        assert_eq!(
            (o.size, &o.etag),
            (head.size, &head.etag),
            "list meta of {} differs from head",
            o.key
        );
    }
    for p in ["", "a", "a/", "a/b", "b", "é", "deep/1/", "zz", "nothing", "z/z"] {
        for d in [None, Some("/"), Some("-"), Some("b/"), Some("a")] {
            for max_keys in [0, 1, 3, 7] {
                let opts = ListOptions {
                    prefix: format!("{base}{p}"),
                    delimiter: d.map(str::to_owned),
                    start_after: None,
                    max_keys,
                };
                check_listing(store, &keys, &opts).await;
            }
        }
    }
    for sa in ["a", "a/", "a/b", "a-", "b/z", "é", "zzz", ""] {
        for max_keys in [0, 4] {
            let opts = ListOptions {
                prefix: base.into(),
                delimiter: None,
                start_after: Some(format!("{base}{sa}")),
                max_keys,
            };
            check_listing(store, &keys, &opts).await;
        }
    }
    for k in &keys {
        store
            .delete(&key(k))
            .await
            .unwrap_or_else(|e| panic!("delete {k} failed: {e}"));
    }
    let after = store
        .list(&ListOptions {
            prefix: base.into(),
            ..ListOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    assert!(
        after.objects.is_empty() && after.common_prefixes.is_empty(),
        "deleted keys still listed: {after:?}"
    );
}

/// Copy keeps or replaces metadata and copies the bytes; a missing source
/// is `NoSuchKey`.
pub async fn copy_modes<S: Store + ?Sized>(store: &S) {
    let src = key("conf-copy/src");
    let data = pattern(70_000, 5);
    let opts = PutOptions {
        headers: sample_headers(),
        metadata: BTreeMap::from([("a".to_owned(), "1".to_owned())]),
        ..PutOptions::default()
    };
    let src_meta = store
        .put(&src, body_chunked(&data, 4096), opts)
        .await
        .unwrap_or_else(|e| panic!("put failed: {e}"));
    let kept = key("conf-copy/kept");
    let m = store
        .copy(&src, &kept, CopyOptions::KeepMetadata)
        .await
        .unwrap_or_else(|e| panic!("copy failed: {e}"));
    assert_eq!(
        (m.key.clone(), m.size, m.etag.clone()),
        (kept.clone(), src_meta.size, src_meta.etag.clone())
    );
    let head = store
        .head(&kept)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(
        head.headers,
        sample_headers(),
        "KeepMetadata must keep the headers"
    );
    assert_eq!(
        head.metadata, src_meta.metadata,
        "KeepMetadata must keep the metadata"
    );
    assert_eq!(
        get_bytes(store, &kept, None).await,
        data,
        "copy must copy the bytes"
    );
    let replaced = key("conf-copy/deeper/replaced");
    let new_opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("text/plain".into()),
            ..ObjectHeaders::default()
        },
        metadata: BTreeMap::from([("b".to_owned(), "2".to_owned())]),
        ..PutOptions::default()
    };
    store
        .copy(&src, &replaced, CopyOptions::ReplaceMetadata(new_opts.clone()))
        .await
        .unwrap_or_else(|e| panic!("copy failed: {e}"));
    let head = store
        .head(&replaced)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(
        head.headers, new_opts.headers,
        "ReplaceMetadata must replace the headers"
    );
    assert_eq!(
        head.metadata, new_opts.metadata,
        "ReplaceMetadata must replace the metadata"
    );
    assert_eq!(
        head.etag, src_meta.etag,
        "a copy keeps the ETag of a single-part object"
    );
    assert_eq!(
        get_bytes(store, &replaced, None).await,
        data,
        "copy must copy the bytes"
    );
    // Copying an object onto itself with new metadata works.
    store
        .copy(&src, &src, CopyOptions::ReplaceMetadata(new_opts.clone()))
        .await
        .unwrap_or_else(|e| panic!("self-copy failed: {e}"));
    assert_eq!(
        get_bytes(store, &src, None).await,
        data,
        "self-copy must keep the bytes"
    );
    let r = store
        .copy(&key("conf-copy/missing"), &kept, CopyOptions::KeepMetadata)
        .await;
    assert!(
        matches!(r, Err(StoreError::NoSuchKey { .. })),
        "copy from a missing key: {r:?}"
    );
    for k in [&src, &kept, &replaced] {
        let _ = store.delete(k).await;
    }
}

/// A create-only put (`if_none_match`) creates a missing object, refuses
/// an existing one with `PreconditionFailed` and keeps it, and of two
/// concurrent create-only puts to one key exactly one wins. A store whose
/// [`capabilities`](Store::capabilities) lack `create_only` must refuse
/// every create-only put with `Unsupported` and write nothing.
pub async fn create_only<S: Store + ?Sized>(store: &S) {
    let k = key("conf-create/k");
    let create = || PutOptions {
        if_none_match: true,
        ..PutOptions::default()
    };
    let _ = store.delete(&k).await;
    if !store.capabilities().create_only {
        let r = store.put(&k, body(b"first"), create()).await;
        assert!(
            matches!(&r, Err(StoreError::Unsupported(_))),
            "without the create_only capability a create-only put must be Unsupported, got {r:?}"
        );
        assert!(
            matches!(store.head(&k).await, Err(StoreError::NoSuchKey { .. })),
            "a refused create-only put must write nothing"
        );
        put_bytes(store, &k, b"old", PutOptions::default()).await;
        let r = store.put(&k, body(b"second"), create()).await;
        assert!(
            matches!(&r, Err(StoreError::Unsupported(_))),
            "without the create_only capability a create-only put must be Unsupported, got {r:?}"
        );
        assert_eq!(
            get_bytes(store, &k, None).await,
            b"old",
            "an unsupported create-only put must never overwrite"
        );
        let _ = store.delete(&k).await;
        return;
    }
    let meta = store
        .put(&k, body(b"first"), create())
        .await
        .unwrap_or_else(|e| panic!("a create-only put of a missing key failed: {e}"));
    assert_eq!(meta.size, 5, "create-only put returned the wrong size");
    let r = store.put(&k, body(b"second"), create()).await;
    assert!(
        matches!(&r, Err(StoreError::PreconditionFailed { .. })),
        "a create-only put of an existing key must be PreconditionFailed, got {r:?}"
    );
    assert_eq!(
        get_bytes(store, &k, None).await,
        b"first",
        "a refused create-only put must keep the object"
    );
    put_bytes(store, &k, b"plain", PutOptions::default()).await;
    assert_eq!(
        get_bytes(store, &k, None).await,
        b"plain",
        "a plain put still replaces"
    );
    store
        .delete(&k)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    put_bytes(store, &k, b"again", create()).await;
    let _ = store.delete(&k).await;

    // Races: bodies large enough that both writes overlap.
    for round in 0..4u8 {
        let k = key(&format!("conf-create/race-{round}"));
        let (a, b) = (pattern(300_000, 20 + round), pattern(300_000, 40 + round));
        let (ra, rb) = futures::join!(
            store.put(&k, body_chunked(&a, 16 * 1024), create()),
            store.put(&k, body_chunked(&b, 16 * 1024), create()),
        );
        let winner = match (&ra, &rb) {
            (Ok(_), Err(StoreError::PreconditionFailed { .. })) => &a,
            (Err(StoreError::PreconditionFailed { .. }), Ok(_)) => &b,
            _ => panic!(
                "of two concurrent create-only puts exactly one must win and the other be \
                 PreconditionFailed, got {:?} and {:?}",
                ra.map(|m| m.etag),
                rb.map(|m| m.etag)
            ),
        };
        assert!(
            get_bytes(store, &k, None).await == *winner,
            "the object must hold the winner's body"
        );
        let _ = store.delete(&k).await;
    }
}

async fn part<S: MultipartStore + ?Sized>(store: &S, k: &ObjectKey, id: &str, n: u32, data: &[u8]) -> String {
    store
        .upload_part(k, id, n, body_chunked(data, 64 * 1024), PartOptions::default())
        .await
        .unwrap_or_else(|e| panic!("upload_part {n} failed: {e}"))
        .etag
}

fn completed(parts: &[(u32, &str)]) -> Vec<CompletedPart> {
    parts
        .iter()
        .map(|(n, e)| CompletedPart {
            part_number: *n,
            etag: format!("\"{e}\""),
        })
        .collect()
}

/// Parts uploaded concurrently join into one object with S3's multipart
/// ETag, the composite checksum, and the upload's headers and metadata.
pub async fn multipart_happy_path<S: MultipartStore + ?Sized>(store: &S) {
    let k = key("conf-mp/happy/video.bin");
    let opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("video/mp4".into()),
            ..ObjectHeaders::default()
        },
        metadata: BTreeMap::from([("owner".to_owned(), "bob".to_owned())]),
        checksum_algorithm: Some(ChecksumAlgorithm::Sha256),
        ..PutOptions::default()
    };
    let upload = store
        .create_multipart(&k, opts)
        .await
        .unwrap_or_else(|e| panic!("create_multipart failed: {e}"));
    assert_eq!(upload.key, k);
    let size = usize::try_from(MIN_PART_SIZE).unwrap_or(5 << 20);
    let bodies = [
        pattern(size, 10),
        pattern(size + 1, 11),
        pattern(size, 12),
        pattern(1000, 13),
    ];
    let id = upload.upload_id.as_str();
    let uploads = bodies.iter().enumerate().map(|(i, b)| {
        let n = u32::try_from(i + 1).unwrap_or(1);
        let k = &k;
        async move {
            store
                .upload_part(
                    k,
                    id,
                    n,
                    body_chunked(b, 64 * 1024),
                    PartOptions {
                        expected_len: Some(b.len() as u64),
                        expected_md5: Some(md5_of(b)),
                        expected_checksum: None,
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("concurrent upload_part {n} failed: {e}"))
        }
    });
    let metas = futures::future::join_all(uploads).await;
    for (m, b) in metas.iter().zip(&bodies) {
        assert_eq!(m.etag, hex::encode(md5_of(b)), "part ETag must be its hex MD5");
        assert_eq!(m.size, b.len() as u64, "part size");
        let want = Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: ChecksumAlgorithm::Sha256.digest(b),
            parts: None,
        };
        assert_eq!(
            m.checksum.as_ref(),
            Some(&want),
            "part checksum of the upload's algorithm"
        );
    }
    let listed = store
        .list_parts(&k, id)
        .await
        .unwrap_or_else(|e| panic!("list_parts failed: {e}"));
    let numbers: Vec<u32> = listed.iter().map(|p| p.part_number).collect();
    assert_eq!(numbers, [1, 2, 3, 4], "list_parts must list every part in order");
    let in_progress = store
        .list_multipart_uploads("conf-mp/happy/")
        .await
        .unwrap_or_else(|e| panic!("list uploads failed: {e}"));
    assert!(in_progress.iter().any(|u| u.upload_id == id), "upload not listed");
    let etags: Vec<(u32, &str)> = metas.iter().map(|m| (m.part_number, m.etag.as_str())).collect();
    let meta = store
        .complete_multipart(&k, id, &completed(&etags))
        .await
        .unwrap_or_else(|e| panic!("complete failed: {e}"));
    let md5s: Vec<[u8; 16]> = bodies.iter().map(|b| md5_of(b)).collect();
    assert_eq!(
        meta.etag,
        multipart_etag(&md5s),
        "multipart ETag must be MD5 of the part MD5s"
    );
    assert!(
        meta.etag.ends_with("-4") && meta.etag.len() == 34,
        "ETag shape <hex>-4: {}",
        meta.etag
    );
    let total: usize = bodies.iter().map(Vec::len).sum();
    assert_eq!(meta.size, total as u64, "object size is the sum of the parts");
    assert_eq!(meta.parts_count, Some(4), "parts_count");
    let part_sums: Vec<Checksum> = metas.iter().filter_map(|m| m.checksum.clone()).collect();
    assert_eq!(
        meta.checksum,
        Some(Checksum::composite(ChecksumAlgorithm::Sha256, &part_sums)),
        "composite checksum"
    );
    let head = store
        .head(&k)
        .await
        .unwrap_or_else(|e| panic!("head failed: {e}"));
    assert_eq!(head.etag, meta.etag, "head ETag");
    assert_eq!(
        head.headers.content_type.as_deref(),
        Some("video/mp4"),
        "upload headers kept"
    );
    assert_eq!(
        head.metadata.get("owner").map(String::as_str),
        Some("bob"),
        "upload metadata kept"
    );
    let got = get_bytes(store, &k, None).await;
    assert!(
        got == bodies.concat(),
        "completed object bytes differ from the parts joined"
    );
    let tail = get_bytes(store, &k, Some(ByteRange::Suffix(1500))).await;
    assert_eq!(
        tail,
        &got[got.len() - 1500..],
        "range across the last part boundary"
    );
    assert!(
        matches!(
            store.list_parts(&k, id).await,
            Err(StoreError::NoSuchUpload { .. })
        ),
        "a completed upload must be gone"
    );
    let _ = store.delete(&k).await;
}

/// Uploading a part number again replaces the part.
pub async fn multipart_part_replacement<S: MultipartStore + ?Sized>(store: &S) {
    let k = key("conf-mp/replace");
    let up = store
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let id = up.upload_id.as_str();
    part(store, &k, id, 1, b"first version").await;
    let e2 = part(store, &k, id, 1, b"second").await;
    let parts = store
        .list_parts(&k, id)
        .await
        .unwrap_or_else(|e| panic!("list_parts failed: {e}"));
    assert_eq!(parts.len(), 1, "a replaced part is listed once");
    assert_eq!(parts[0].etag, e2, "the replacement's ETag is listed");
    store
        .complete_multipart(&k, id, &completed(&[(1, &e2)]))
        .await
        .unwrap_or_else(|e| panic!("complete failed: {e}"));
    assert_eq!(
        get_bytes(store, &k, None).await,
        b"second",
        "the replacement is used"
    );
    let _ = store.delete(&k).await;
}

/// Wrong order, missing or mismatched parts, small parts and an empty
/// list are refused, and the upload stays retryable.
pub async fn multipart_refuses_bad_completions<S: MultipartStore + ?Sized>(store: &S) {
    let k = key("conf-mp/bad");
    let up = store
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let id = up.upload_id.as_str();
    let e1 = part(store, &k, id, 1, b"small one").await;
    let e2 = part(store, &k, id, 2, b"small two").await;
    let r = store
        .complete_multipart(&k, id, &completed(&[(2, &e2), (1, &e1)]))
        .await;
    assert!(
        matches!(r, Err(StoreError::InvalidPartOrder)),
        "descending parts: {r:?}"
    );
    let r = store
        .complete_multipart(&k, id, &completed(&[(1, &e1), (1, &e1)]))
        .await;
    assert!(
        matches!(r, Err(StoreError::InvalidPartOrder)),
        "repeated part: {r:?}"
    );
    let r = store
        .complete_multipart(&k, id, &completed(&[(1, &e1), (3, &e2)]))
        .await;
    assert!(
        matches!(r, Err(StoreError::InvalidPart { part_number: 3 })),
        "missing part: {r:?}"
    );
    let r = store.complete_multipart(&k, id, &completed(&[(1, &e2)])).await;
    assert!(
        matches!(r, Err(StoreError::InvalidPart { part_number: 1 })),
        "wrong ETag: {r:?}"
    );
    let r = store
        .complete_multipart(&k, id, &completed(&[(1, &e1), (2, &e2)]))
        .await;
    assert!(
        matches!(
            r,
            Err(StoreError::PartTooSmall {
                part_number: 1,
                size: 9
            })
        ),
        "a small part that is not the last: {r:?}"
    );
    let r = store.complete_multipart(&k, id, &[]).await;
    assert!(r.is_err(), "an empty part list must be refused");
    assert!(
        matches!(store.head(&k).await, Err(StoreError::NoSuchKey { .. })),
        "failed completions must not create the object"
    );
    // Still retryable: a single (last) part may be small.
    store
        .complete_multipart(
            &k,
            id,
            &[CompletedPart {
                part_number: 2,
                etag: e2.clone(),
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("retry after failed completions failed: {e}"));
    assert_eq!(get_bytes(store, &k, None).await, b"small two");
    let _ = store.delete(&k).await;
}

/// Abort removes the upload and its parts; a second abort is `NoSuchUpload`.
pub async fn multipart_abort<S: MultipartStore + ?Sized>(store: &S) {
    let k = key("conf-mp/abort");
    let up = store
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let id = up.upload_id.as_str();
    part(store, &k, id, 1, b"data").await;
    store
        .abort_multipart(&k, id)
        .await
        .unwrap_or_else(|e| panic!("abort failed: {e}"));
    assert!(
        matches!(
            store.list_parts(&k, id).await,
            Err(StoreError::NoSuchUpload { .. })
        ),
        "list_parts after abort"
    );
    let r = store
        .upload_part(&k, id, 2, body(b"late"), PartOptions::default())
        .await;
    assert!(
        matches!(r, Err(StoreError::NoSuchUpload { .. })),
        "upload_part after abort: {r:?}"
    );
    assert!(
        matches!(
            store.abort_multipart(&k, id).await,
            Err(StoreError::NoSuchUpload { .. })
        ),
        "second abort"
    );
    assert!(
        matches!(store.head(&k).await, Err(StoreError::NoSuchKey { .. })),
        "abort creates nothing"
    );
}

/// Uploads are listed by prefix, ordered by key.
pub async fn multipart_list_uploads<S: MultipartStore + ?Sized>(store: &S) {
    let (kx, ky) = (key("conf-mpl/x"), key("conf-mpl/y"));
    let uy = store
        .create_multipart(&ky, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let ux = store
        .create_multipart(&kx, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let all = store
        .list_multipart_uploads("conf-mpl/")
        .await
        .unwrap_or_else(|e| panic!("list uploads failed: {e}"));
    let ids: Vec<&str> = all.iter().map(|u| u.upload_id.as_str()).collect();
    assert_eq!(
        ids,
        [ux.upload_id.as_str(), uy.upload_id.as_str()],
        "uploads by key order"
    );
    let only_x = store
        .list_multipart_uploads("conf-mpl/x")
        .await
        .unwrap_or_else(|e| panic!("list uploads failed: {e}"));
    assert_eq!(only_x, vec![ux.clone()], "prefix filter");
    for (k, u) in [(&kx, &ux), (&ky, &uy)] {
        store
            .abort_multipart(k, &u.upload_id)
            .await
            .unwrap_or_else(|e| panic!("abort failed: {e}"));
    }
    let none = store
        .list_multipart_uploads("conf-mpl/")
        .await
        .unwrap_or_else(|e| panic!("list uploads failed: {e}"));
    assert!(none.is_empty(), "aborted uploads still listed: {none:?}");
}

/// Unknown ids, ids of another key and bad part numbers are refused.
pub async fn multipart_wrong_upload<S: MultipartStore + ?Sized>(store: &S) {
    let k = key("conf-mp/wrong");
    let other = key("conf-mp/other");
    let up = store
        .create_multipart(&k, PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let id = up.upload_id.as_str();
    for bad_id in ["nonexistent", "00000000000000000000000000000000", "../../etc", ""] {
        let r = store
            .upload_part(&k, bad_id, 1, body(b"x"), PartOptions::default())
            .await;
        assert!(
            matches!(r, Err(StoreError::NoSuchUpload { .. })),
            "unknown id {bad_id:?}: {r:?}"
        );
        let r = store
            .complete_multipart(&k, bad_id, &completed(&[(1, "x")]))
            .await;
        assert!(
            matches!(r, Err(StoreError::NoSuchUpload { .. })),
            "complete unknown id {bad_id:?}: {r:?}"
        );
    }
    let r = store
        .upload_part(&other, id, 1, body(b"x"), PartOptions::default())
        .await;
    assert!(
        matches!(r, Err(StoreError::NoSuchUpload { .. })),
        "an id used with another key: {r:?}"
    );
    assert!(
        matches!(
            store.list_parts(&other, id).await,
            Err(StoreError::NoSuchUpload { .. })
        ),
        "list_parts with another key"
    );
    for n in [0, 10_001] {
        let r = store
            .upload_part(&k, id, n, body(b"x"), PartOptions::default())
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidPartNumber(m)) if m == n),
            "part number {n}: {r:?}"
        );
    }
    let r = store
        .upload_part(
            &k,
            id,
            1,
            body(b"abc"),
            PartOptions {
                expected_md5: Some(md5_of(b"abd")),
                ..PartOptions::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::BadDigest)),
        "a part with a wrong MD5: {r:?}"
    );
    let parts = store
        .list_parts(&k, id)
        .await
        .unwrap_or_else(|e| panic!("list_parts failed: {e}"));
    assert!(parts.is_empty(), "a refused part must not be stored");
    store
        .abort_multipart(&k, id)
        .await
        .unwrap_or_else(|e| panic!("abort failed: {e}"));
}
