//! Promotion racing the derivative job, ordered exactly: a store that
//! holds one manifest write until the test lets it through.

use super::*;
use async_trait::async_trait;
use chute_core::BucketName;
use chute_store::fs::FsStore;
use chute_store::{
    ByteRange, CompletedPart, CopyOptions, GetResult, ListOptions, ListResult, MultipartUpload, ObjectMeta,
    PartMeta, PartOptions, Store, StoreCapabilities, StoreResult,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Holds the `hold`-th manifest write (1-based) until `release`.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn MultipartStore>,
    hold: usize,
    writes: AtomicUsize,
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl Store for Gated {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        let k = key.as_str();
        if k.starts_with(manifest::MANIFEST_PREFIX)
            && k.ends_with(".json")
            && self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.hold
        {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.put(key, body, opts).await
    }
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult> {
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        self.inner.list(opts).await
    }
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta> {
        self.inner.copy(from, to, opts).await
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
}

#[async_trait]
impl MultipartStore for Gated {
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload> {
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        self.inner
            .upload_part(key, upload_id, part_number, body, opts)
            .await
    }
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        self.inner.list_multipart_uploads(prefix).await
    }
}

struct Race {
    store: Arc<Gated>,
    derivatives: Derivatives,
    receipt: ReceiptClaims,
    _dir: tempfile::TempDir,
}

const UPLOAD: &str = "race0upload";
const TMP: &str = "tmp/race0upload/a.jpg";
const FINAL: &str = "photos/a.jpg";
const THUMB: &str = "derivatives/race0upload/thumb.jpg";

/// An uploaded JPEG under `tmp/` whose grant names a thumb, over a store
/// holding the `hold`-th manifest write.
async fn race(hold: usize) -> Race {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStore::open(dir.path()).await.unwrap();
    let name = BucketName::parse("uploads").unwrap();
    fs.create_bucket(&name).await.unwrap();
    let bucket = fs.bucket(&name).await.unwrap();
    let store = Arc::new(Gated {
        inner: Arc::new(bucket),
        hold,
        writes: AtomicUsize::new(0),
        reached: Notify::new(),
        release: Notify::new(),
    });
    let bytes = test_images::jpeg(400, 300);
    let meta = store
        .put(&key(TMP), once(bytes), PutOptions::default())
        .await
        .unwrap();
    let mut grant = Grant::default();
    grant.derivatives.insert("thumb".into(), "100x100 crop".into());
    let receipt = ReceiptClaims {
        aud: "chute-receipt".into(),
        exp: i64::MAX,
        iat: 0,
        jti: UPLOAD.into(),
        sub: None,
        bucket: "uploads".into(),
        key: TMP.into(),
        size: meta.size,
        etag: meta.etag.trim_matches('"').to_owned(),
        checksum: None,
        content_type: "image/jpeg".into(),
        declared_type: "image/jpeg".into(),
        filename: "a.jpg".into(),
        grant,
        derivatives: BTreeMap::new(),
    };
    let settings = ImageSettings {
        workers: 1,
        ..ImageSettings::default()
    };
    let derivatives = Derivatives::new(store.clone(), settings);
    Race {
        store,
        derivatives,
        receipt,
        _dir: dir,
    }
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

impl Race {
    /// What promote does: copy, tell the derivatives, delete the original.
    async fn promote(&self) {
        self.store
            .copy(&key(TMP), &key(FINAL), CopyOptions::default())
            .await
            .unwrap();
        self.derivatives.promoted(&self.receipt, &key(FINAL)).await;
        self.store.delete(&key(TMP)).await.unwrap();
    }

    /// Waits until the job (and what follows it) is over.
    async fn finished(&self) -> Manifest {
        for _ in 0..3000 {
            if !self.derivatives.is_running(UPLOAD) {
                return manifest::read(self.store.as_ref(), UPLOAD)
                    .await
                    .unwrap()
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the job still runs after 30 s");
    }

    /// A reaper pass once the manifest has expired.
    async fn reap(&self) -> reap::DerivativesReaped {
        let ttl = Duration::from_secs(2 * 86_400);
        let later = OffsetDateTime::now_utc() + ttl + Duration::from_secs(60);
        reap::reap_store(self.store.as_ref(), later, ttl, false, 100)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_promotion_before_the_jobs_first_write_is_recorded_and_reaped_right() {
    let r = race(1).await;
    r.derivatives.completed(&r.receipt);
    r.store.reached.notified().await;
    r.promote().await;
    r.store.release.notify_one();
    let m = r.finished().await;
    assert_eq!(m.derivatives["thumb"].status, Status::Ready, "{m:?}");
    assert_eq!(m.source, FINAL, "the manifest records the promotion");
    let reaped = r.reap().await;
    assert_eq!((reaped.manifests, reaped.objects), (1, 0), "{reaped:?}");
    assert!(
        r.store.head(&key(THUMB)).await.is_ok(),
        "a promoted upload keeps its thumb"
    );
    assert!(
        manifest::read_promoted(r.store.as_ref(), UPLOAD)
            .await
            .unwrap()
            .is_none(),
        "the marker goes with the manifest"
    );
}

#[tokio::test]
async fn a_promotion_during_the_jobs_last_write_is_recorded_and_reaped_right() {
    let r = race(2).await;
    r.derivatives.completed(&r.receipt);
    // The job holds its outcome (source still tmp/) when the promotion comes.
    r.store.reached.notified().await;
    r.promote().await;
    r.store.release.notify_one();
    let m = r.finished().await;
    assert_eq!(
        m.derivatives["thumb"].status,
        Status::Ready,
        "the outcome is not overwritten by a pending copy: {m:?}"
    );
    assert_eq!(m.source, FINAL, "the manifest records the promotion");
    // Another instance's job may still write the manifest back with its
    // tmp/ source: the promotion marker keeps the derivatives.
    let mut stale = m.clone();
    stale.source = TMP.into();
    manifest::write(r.store.as_ref(), &stale, false).await.unwrap();
    let reaped = r.reap().await;
    assert_eq!((reaped.manifests, reaped.objects), (1, 0), "{reaped:?}");
    assert!(
        r.store.head(&key(THUMB)).await.is_ok(),
        "a promoted upload keeps its thumb"
    );
}

#[tokio::test]
async fn an_upload_never_promoted_loses_its_derivatives_to_the_reaper() {
    let r = race(0).await;
    r.derivatives.completed(&r.receipt);
    let m = r.finished().await;
    assert_eq!(m.derivatives["thumb"].status, Status::Ready, "{m:?}");
    let reaped = r.reap().await;
    assert_eq!((reaped.manifests, reaped.objects), (1, 1), "{reaped:?}");
    assert!(r.store.head(&key(THUMB)).await.is_err());
}

#[tokio::test]
async fn promote_grants_start_nothing_on_completion() {
    let mut r = race(0).await;
    r.receipt.grant.derive_on = DeriveOn::Promote;
    r.derivatives.completed(&r.receipt);
    // `start` registers a job synchronously, so this is not a race.
    assert!(!r.derivatives.is_running(UPLOAD), "no job on completion");
    r.promote().await;
    assert!(r.derivatives.is_running(UPLOAD), "promotion starts it");
    let m = r.finished().await;
    assert_eq!(m.derivatives["thumb"].status, Status::Ready, "{m:?}");
    assert_eq!(m.source, FINAL);
}
