use crate::{fs_store, new_upload};
use async_trait::async_trait;
use bytes::Bytes;
use chute_core::ObjectKey;
use chute_store::{
    ByteRange, ByteStream, CopyOptions, GetResult, ListOptions, ListResult, ObjectMeta, PutOptions, Store,
    StoreCapabilities, StoreError, StoreResult,
};
use chute_tus::{Append, LeaseLost, Progress, Status, StoreLeases, TusStore, UploadLocks, WriteError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Long enough never to run out during a test (hang guards included).
const LONG: Duration = Duration::from_secs(60);

/// The markers under `.chute/tus/<id>/lock/`.
async fn markers(store: &dyn Store, id: &str) -> Vec<String> {
    let page = store
        .list(&ListOptions {
            prefix: format!(".chute/tus/{id}/lock/"),
            delimiter: None,
            start_after: None,
            max_keys: 1000,
        })
        .await
        .unwrap();
    page.objects
        .into_iter()
        .map(|o| o.key.as_str().to_owned())
        .collect()
}

/// Waits (at most a minute: a hang guard) until `done` holds.
async fn until<F: AsyncFn() -> bool>(what: &str, done: F) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < LONG, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances (two `StoreLeases`) want one upload: one holds, the
/// other is refused after its wait, then gets it once it is released.
pub async fn one_holder_then_the_next(store: Arc<dyn Store>) {
    let a = StoreLeases::new(store.clone(), LONG);
    let b = StoreLeases::new(store.clone(), LONG);
    let held = a.acquire("up1", Duration::ZERO).await.unwrap();
    assert!(b.try_acquire("up1").await.unwrap().is_none());
    let refused = b.acquire("up1", Duration::from_millis(300)).await.unwrap_err();
    assert!(refused.is_locked(), "{refused}");
    assert_eq!(markers(store.as_ref(), "up1").await, [held.key().as_str()]);
    // Another upload is free.
    let other = b.acquire("up2", Duration::ZERO).await.unwrap();
    let waiting = tokio::spawn(async move { b.acquire("up1", LONG).await.map(|l| (b, l)) });
    held.release().await;
    let (_b, second) = waiting.await.unwrap().unwrap();
    second.check().unwrap();
    assert_eq!(markers(store.as_ref(), "up1").await, [second.key().as_str()]);
    second.release().await;
    other.release().await;
    assert!(markers(store.as_ref(), "up1").await.is_empty());
    assert!(markers(store.as_ref(), "up2").await.is_empty());
}

/// Four instances taking one upload over and over: never two at once.
pub async fn never_two_holders(store: Arc<dyn Store>) {
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let leases = StoreLeases::new(store.clone(), LONG);
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let lease = leases.acquire("busy", LONG).await.unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two instances hold the lease"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lease.release().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(markers(store.as_ref(), "busy").await.is_empty());
}

/// A marker nobody renews (its holder crashed) is live for two leases by
/// the store's clock, then ignored, and the next holder deletes it.
pub async fn a_dead_holders_marker_expires(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(1);
    let dead = ObjectKey::parse(".chute/tus/crashed/lock/dead").unwrap();
    store
        .put(&dead, chute_tus::state::once(Bytes::new()), PutOptions::default())
        .await
        .unwrap();
    let leases = StoreLeases::new(store.clone(), lease);
    assert!(leases.try_acquire("crashed").await.unwrap().is_none());
    // Two leases later (the store clock's; a margin for its resolution).
    tokio::time::sleep(lease * 2 + Duration::from_millis(300)).await;
    let held = leases
        .acquire("crashed", Duration::ZERO)
        .await
        .expect("an expired marker is ignored");
    let key = held.key().as_str().to_owned();
    until("the dead marker is deleted", async || {
        markers(store.as_ref(), "crashed").await == [key.clone()]
    })
    .await;
    held.release().await;
}

/// A holder renews its marker: long past two leases, it still holds and
/// nobody else gets the upload.
pub async fn renewal_keeps_a_long_holder(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(2);
    let a = StoreLeases::new(store.clone(), lease);
    let b = StoreLeases::new(store.clone(), lease);
    let held = a.acquire("long", Duration::ZERO).await.unwrap();
    tokio::time::sleep(lease * 2 + lease / 2).await;
    held.check().expect("a renewed lease holds");
    assert!(b.try_acquire("long").await.unwrap().is_none());
    held.release().await;
    assert!(b.try_acquire("long").await.unwrap().is_some());
}

/// A store whose lock markers can be cut off (a partition between this
/// instance and the store, for the lease only).
#[derive(Debug)]
struct Cut {
    inner: Arc<dyn Store>,
    cut: AtomicBool,
    /// Lock marker PUTs seen.
    lock_puts: AtomicUsize,
    /// Lock marker DELETEs take a moment (a slow store).
    slow_lock_deletes: AtomicBool,
}

impl Cut {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            cut: AtomicBool::new(false),
            lock_puts: AtomicUsize::new(0),
            slow_lock_deletes: AtomicBool::new(false),
        })
    }

    fn check(&self, key: &ObjectKey) -> StoreResult<()> {
        if self.cut.load(Ordering::SeqCst) && key.as_str().contains("/lock/") {
            return Err(StoreError::Io(std::io::Error::other("cut off")));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Cut {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        self.check(key)?;
        if key.as_str().contains("/lock/") {
            self.lock_puts.fetch_add(1, Ordering::SeqCst);
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
        self.check(key)?;
        if self.slow_lock_deletes.load(Ordering::SeqCst) && key.as_str().contains("/lock/") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
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

/// A holder that cannot renew loses its lease once it runs out, for
/// good, and an append holding it commits nothing.
pub async fn a_lost_lease_stops_the_commit(store: Arc<dyn chute_store::MultipartStore>) {
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "lost", Some(100)).await;
    let cut = Cut::new(store.clone());
    let lease = Duration::from_secs(1);
    let held = StoreLeases::new(cut.clone(), lease)
        .acquire("lost", Duration::ZERO)
        .await
        .unwrap();
    cut.cut.store(true, Ordering::SeqCst);
    until("the lease runs out", async || held.check().is_err()).await;
    // The store is back: too late, the lease stays lost.
    cut.cut.store(false, Ordering::SeqCst);
    tokio::time::sleep(lease).await;
    assert_eq!(held.check(), Err(LeaseLost));
    let progress = Progress {
        length: Some(100),
        ..Progress::default()
    };
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"late bytes"))]);
    let out = tus
        .append(
            &info,
            progress,
            body,
            Append {
                limit: 100,
                checksum: None,
                parts_in_flight: 1,
                lease: Some(held.watch()),
            },
        )
        .await;
    assert!(matches!(out, Err(WriteError::LeaseLost(_))), "{out:?}");
    match tus.status(&info).await.unwrap() {
        Status::Open(p) => assert_eq!(p.offset(&info.plan), 0, "nothing committed"),
        Status::Done(_) => panic!("done"),
    }
    // Meanwhile another instance took the upload over.
    let other = StoreLeases::new(store.clone(), lease);
    let next = other.acquire("lost", LONG).await.unwrap();
    held.release().await;
    next.release().await;
}

/// A guard dropped without release (a cancelled request) keeps the
/// in-process lock until its marker is deleted, so the next request on
/// this instance takes the lease at its first try.
#[tokio::test]
async fn a_dropped_guard_deletes_its_marker_before_the_next_request_here() {
    let dir = tempfile::tempdir().unwrap();
    let cut = Cut::new(fs_store(dir.path()).await);
    cut.slow_lock_deletes.store(true, Ordering::SeqCst);
    let locks = UploadLocks::shared(StoreLeases::new(cut.clone(), LONG));
    let first = locks.lock("dropped", Duration::ZERO).await.unwrap();
    drop(first);
    let second = locks.lock("dropped", LONG).await.unwrap();
    assert_eq!(
        cut.lock_puts.load(Ordering::SeqCst),
        2,
        "the second request had to retry"
    );
    assert_eq!(markers(cut.as_ref(), "dropped").await.len(), 1);
    second.release().await;
    assert!(markers(cut.as_ref(), "dropped").await.is_empty());
    assert!(locks.is_empty());
}

/// Removing an upload removes its lock markers with the rest.
#[tokio::test]
async fn removal_takes_the_lock_markers() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "gone", Some(10)).await;
    let held = StoreLeases::new(store.clone(), LONG)
        .acquire("gone", Duration::ZERO)
        .await
        .unwrap();
    std::mem::forget(held); // a crashed holder: its marker stays
    assert_eq!(markers(store.as_ref(), "gone").await.len(), 1);
    tus.remove(&info, false).await.unwrap();
    assert!(markers(store.as_ref(), "gone").await.is_empty());
}

mod fs {
    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn chute_store::MultipartStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(dir.path()).await;
        (dir, store)
    }

    #[tokio::test]
    async fn one_holder_then_the_next() {
        let (_dir, store) = store().await;
        super::one_holder_then_the_next(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_two_holders() {
        let (_dir, store) = store().await;
        super::never_two_holders(store).await;
    }

    #[tokio::test]
    async fn a_dead_holders_marker_expires() {
        let (_dir, store) = store().await;
        super::a_dead_holders_marker_expires(store).await;
    }

    #[tokio::test]
    async fn renewal_keeps_a_long_holder() {
        let (_dir, store) = store().await;
        super::renewal_keeps_a_long_holder(store).await;
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_commit() {
        let (_dir, store) = store().await;
        super::a_lost_lease_stops_the_commit(store).await;
    }
}

mod garage {
    use crate::garage::{Garage, shared_bucket};
    use chute_store::s3::S3Store;
    use std::sync::Arc;

    async fn store(prefix: &str) -> (Arc<Garage>, Arc<dyn chute_store::MultipartStore>) {
        let (g, config) = shared_bucket(prefix).await;
        let store = S3Store::connect(config)
            .await
            .unwrap_or_else(|e| panic!("connecting to Garage failed: {e}"));
        (g, Arc::new(store))
    }

    #[tokio::test]
    async fn one_holder_then_the_next() {
        let (_g, store) = store("lease-next").await;
        super::one_holder_then_the_next(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_two_holders() {
        let (_g, store) = store("lease-two").await;
        super::never_two_holders(store).await;
    }

    #[tokio::test]
    async fn a_dead_holders_marker_expires() {
        let (_g, store) = store("lease-dead").await;
        super::a_dead_holders_marker_expires(store).await;
    }

    #[tokio::test]
    async fn renewal_keeps_a_long_holder() {
        let (_g, store) = store("lease-long").await;
        super::renewal_keeps_a_long_holder(store).await;
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_commit() {
        let (_g, store) = store("lease-lost").await;
        super::a_lost_lease_stops_the_commit(store).await;
    }
}
