//! One writer per upload across every instance sharing a store: a lease
//! kept in the store itself, with plain PUT, LIST and DELETE. No
//! conditional write is needed (Garage has none), only read-after-write
//! consistency of those three, which AWS S3, Garage (with its default
//! quorums), MinIO and the filesystem store all give.
//!
//! To take upload `<id>`, an instance writes a marker with a fresh random
//! name, `.chute/tus/<id>/lock/<nonce>`, then lists `.chute/tus/<id>/lock/`.
//! It holds the lease when its own marker is the only live one there;
//! otherwise it deletes its marker and tries again after a random backoff,
//! up to the caller's wait.
//!
//! Why two cannot both hold: say A and B both did. Read-after-write means
//! a LIST begun after a PUT was answered shows it. A's list did not show
//! B's marker, so it began before B's PUT was answered; likewise B's list
//! began before A's PUT was answered. Each instance lists only once its
//! own PUT was answered, so: A's PUT answered < A's list began < B's PUT
//! answered < B's list began < A's PUT answered, a cycle. (Both may also
//! see each other and both back off: the random backoff makes that
//! short-lived.)
//!
//! A marker is live unless its `LastModified` is more than twice the lease
//! older than the contender's own marker's. Both stamps come from the
//! store's clock, never an instance's, so instance clocks do not matter;
//! the second lease covers skew between store nodes and a write still in
//! flight when a holder's lease ends. A crashed holder's marker so blocks
//! the upload for at most twice the lease; any later holder deletes it.
//!
//! While held, a task rewrites the marker every third of the lease. The
//! holder counts its lease from the *start* of its last successful write
//! (its first, then each renewal answered within a third of the lease)
//! and it lasts one lease: the stamp the store gives that write is no
//! earlier, so others still see the marker live for at least another
//! lease after the holder's own view ends. Before each commit point the
//! writer calls [`LeaseWatch::check`]; once the lease has run out it is
//! lost for good (a renewal answered after that does not count) and the
//! writer stops. A holder cut off from the store therefore stops
//! committing a full lease before anyone may take over; that lease of
//! slack absorbs skew between store nodes and a write sent just before
//! the lease ran out that lands late. What no lease without fencing
//! tokens can exclude is a write held up in the network for more than a
//! lease.
//!
//! Per acquisition without contention: one PUT and one LIST, and one
//! DELETE on release; plus one PUT per third of the lease held.

use crate::state::{STATE_PREFIX, once};
use bytes::Bytes;
use chute_core::ObjectKey;
use chute_store::{ListOptions, PutOptions, Store, StoreError, StoreResult};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The folder of an upload's lock markers, under its state folder.
pub const LOCK_DIR: &str = "lock/";

/// The lease unless configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The most markers one LIST reads; more means contention (never held).
pub(crate) const LIST_MAX: usize = 1000;

/// The first backoff between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// The longest backoff between attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The instance could not take or keep the lease.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another request (here or on another instance) held the upload for
    /// the whole wait.
    #[error("another request is writing this upload")]
    Locked,
    /// The store failed while the lease was being taken.
    #[error("taking the upload's lease: {0}")]
    Store(#[from] StoreError),
}

impl LockError {
    /// Whether another request holds the upload (else: a store error).
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Locked)
    }
}

/// The lease ran out before it could be renewed (the store was
/// unreachable or too slow): another instance may hold the upload now,
/// so this one must not commit anything more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this instance lost the upload's lease (the store did not take its renewal in time); retry")]
pub struct LeaseLost;

/// Takes leases on uploads in one store.
#[derive(Debug, Clone)]
pub struct StoreLeases {
    store: Arc<dyn Store>,
    lease: Duration,
}

/// Whether a held lease is still valid; cheap to clone and check.
#[derive(Debug, Clone)]
pub struct LeaseWatch(Arc<Watch>);

#[derive(Debug)]
struct Watch {
    lease: Duration,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// When the last successful write of the marker started.
    renewed: Instant,
    /// Set once the lease ran out: it never comes back.
    lost: bool,
}

impl LeaseWatch {
    fn new(lease: Duration, renewed: Instant) -> Self {
        Self(Arc::new(Watch {
            lease,
            state: Mutex::new(WatchState { renewed, lost: false }),
        }))
    }

    /// `Ok` while the lease holds; [`LeaseLost`] from the moment it ran
    /// out, for good.
    pub fn check(&self) -> Result<(), LeaseLost> {
        self.valid_at(Instant::now())
    }

    fn valid_at(&self, at: Instant) -> Result<(), LeaseLost> {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.lost && at.saturating_duration_since(s.renewed) >= self.0.lease {
            s.lost = true;
        }
        if s.lost { Err(LeaseLost) } else { Ok(()) }
    }

    /// A renewal begun at `started` (while the lease held) was answered
    /// at `answered`: it extends the lease unless that came too late.
    fn renewed(&self, started: Instant, answered: Instant) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if answered.saturating_duration_since(s.renewed) >= self.0.lease {
            s.lost = true;
        }
        if !s.lost && started > s.renewed {
            s.renewed = started;
        }
    }
}

/// A held lease. [`Lease::release`] deletes its marker; dropping it
/// instead stops the renewal and deletes the marker on a task.
#[derive(Debug)]
pub struct Lease {
    watch: LeaseWatch,
    key: ObjectKey,
    store: Arc<dyn Store>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

/// The key prefix of upload `id`'s lock markers.
pub(crate) fn lock_dir(id: &str) -> String {
    format!("{STATE_PREFIX}{id}/{LOCK_DIR}")
}

async fn put_marker(store: &dyn Store, key: &ObjectKey) -> StoreResult<()> {
    store
        .put(key, once(Bytes::new()), PutOptions::default())
        .await
        .map(|_| ())
}

/// Whether a marker stamped `marker` is live for a contender whose own
/// marker is stamped `mine`.
fn live(marker: OffsetDateTime, mine: OffsetDateTime, lease: Duration) -> bool {
    mine - marker <= lease.saturating_mul(2)
}

impl StoreLeases {
    /// Leases of `lease` in `store` (at least a second is sensible: it is
    /// renewed every third of it).
    pub fn new(store: Arc<dyn Store>, lease: Duration) -> Self {
        Self { store, lease }
    }

    /// The lease duration.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes upload `id`'s lease, trying until `wait` has passed.
    pub async fn acquire(&self, id: &str, wait: Duration) -> Result<Lease, LockError> {
        let deadline = Instant::now() + wait;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if let Some(lease) = self.try_acquire(id).await? {
                return Ok(lease);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LockError::Locked);
            }
            let jitter = rand::random_range(backoff / 2..=backoff + backoff / 2);
            tokio::time::sleep(jitter.min(left)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt: the lease, or `None` when another marker is live.
    pub async fn try_acquire(&self, id: &str) -> StoreResult<Option<Lease>> {
        let dir = lock_dir(id);
        let nonce = format!("{:032x}", rand::random::<u128>());
        let key = ObjectKey::parse(&format!("{dir}{nonce}"))
            .map_err(|e| StoreError::Corrupt(format!("tus lock key for {id:?}: {e}")))?;
        let started = Instant::now();
        if let Err(e) = put_marker(self.store.as_ref(), &key).await {
            // A PUT that failed on a timeout may still land: its marker
            // would hold the upload for two leases, so it is deleted
            // later too (deleting one's own marker is always safe).
            let (store, period) = (self.store.clone(), self.lease / 3);
            tokio::spawn(async move {
                for _ in 0..3 {
                    let _ = store.delete(&key).await;
                    tokio::time::sleep(period).await;
                }
            });
            return Err(e);
        }
        let listed = self
            .store
            .list(&ListOptions {
                prefix: dir,
                delimiter: None,
                start_after: None,
                max_keys: LIST_MAX,
            })
            .await;
        let page = match listed {
            Ok(page) => page,
            Err(e) => {
                self.remove_marker(&key).await;
                return Err(e);
            }
        };
        // Not seeing its own marker would break read-after-write: count
        // it as contention rather than trust the list.
        let mine = page
            .objects
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.last_modified);
        let alone = mine.is_some_and(|mine| {
            page.next_start_after.is_none()
                && page
                    .objects
                    .iter()
                    .all(|o| o.key == key || !live(o.last_modified, mine, self.lease))
        });
        if !alone {
            self.remove_marker(&key).await;
            return Ok(None);
        }
        // Markers of crashed holders: no longer live, so nobody's.
        let stale: Vec<ObjectKey> = page
            .objects
            .into_iter()
            .filter(|o| o.key != key)
            .map(|o| o.key)
            .collect();
        if !stale.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                for k in stale {
                    let _ = store.delete(&k).await;
                }
            });
        }
        Ok(Some(Lease::start(self.store.clone(), key, self.lease, started)))
    }

    /// Deletes a marker that lost (best effort: left behind, it expires).
    async fn remove_marker(&self, key: &ObjectKey) {
        if let Err(e) = self.store.delete(key).await {
            tracing::warn!(marker = %key, error = %e, "could not delete a tus lock marker; it expires");
        }
    }
}

impl Lease {
    fn start(store: Arc<dyn Store>, key: ObjectKey, lease: Duration, started: Instant) -> Self {
        let watch = LeaseWatch::new(lease, started);
        let renewer = tokio::spawn(renew(store.clone(), key.clone(), watch.clone(), lease / 3));
        Self {
            watch,
            key,
            store,
            renewer,
            released: false,
        }
    }

    /// `Ok` while the lease holds; see [`LeaseWatch::check`].
    pub fn check(&self) -> Result<(), LeaseLost> {
        self.watch.check()
    }

    /// A handle to check the lease from elsewhere (the append loop).
    pub fn watch(&self) -> LeaseWatch {
        self.watch.clone()
    }

    /// The marker's key.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Stops renewing and deletes the marker (a failure is logged: the
    /// marker then expires).
    pub async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        if let Err(e) = self.store.delete(&self.key).await {
            tracing::warn!(marker = %self.key, error = %e, "could not delete a tus lock marker; it expires");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, key) = (self.store.clone(), self.key.clone());
            rt.spawn(async move {
                let _ = store.delete(&key).await;
            });
        }
    }
}

/// Rewrites the marker every `period` while the lease holds; a renewal
/// that fails or hangs is retried at the next period, and once the lease
/// ran out nothing is written any more.
async fn renew(store: Arc<dyn Store>, key: ObjectKey, watch: LeaseWatch, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let started = Instant::now();
        if watch.valid_at(started).is_err() {
            return;
        }
        match tokio::time::timeout(period, put_marker(store.as_ref(), &key)).await {
            Ok(Ok(())) => watch.renewed(started, Instant::now()),
            Ok(Err(e)) => tracing::warn!(marker = %key, error = %e, "could not renew a tus lock"),
            Err(_) => tracing::warn!(marker = %key, "renewing a tus lock timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_live_for_two_leases_by_the_store_clock() {
        let lease = Duration::from_secs(30);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert!(live(now, now, lease));
        assert!(live(now + Duration::from_secs(5), now, lease), "a newer marker");
        assert!(live(now - Duration::from_secs(60), now, lease));
        assert!(!live(now - Duration::from_secs(61), now, lease));
    }

    #[test]
    fn a_lapsed_lease_stays_lost() {
        let start = Instant::now();
        let watch = LeaseWatch::new(Duration::from_secs(10), start);
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(watch.valid_at(at(9)), Ok(()));
        watch.renewed(at(8), at(9));
        assert_eq!(watch.valid_at(at(17)), Ok(()));
        // A renewal begun before it lapsed but answered after: too late.
        watch.renewed(at(17), at(18));
        assert_eq!(watch.valid_at(at(19)), Err(LeaseLost));
        // Nor does a later one bring it back.
        watch.renewed(at(19), at(19));
        assert_eq!(watch.valid_at(at(20)), Err(LeaseLost));
    }
}
