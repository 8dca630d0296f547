//! One writer per upload: a PATCH (or DELETE, or a final concatenation,
//! or a completion) holds its upload's lock; a second one waits a bounded
//! time and is then refused (423 Locked).
//!
//! Two layers. First a mutex per upload inside this process, so requests
//! on one instance queue without touching the store; entries are removed
//! when nobody holds or waits for them, so the map stays as small as the
//! uploads in progress. Then, with [`UploadLocks::shared`], the store
//! lease of [`crate::lease`], which serialises instances sharing the
//! store; one wait bounds both. The guard keeps the in-process lock until
//! the lease's marker is deleted, so the next request here never finds
//! this one's marker.

use crate::lease::{Lease, LeaseLost, LeaseWatch, LockError, StoreLeases};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The locks of the uploads being written.
#[derive(Debug, Default, Clone)]
pub struct UploadLocks {
    map: LockMap,
    leases: Option<StoreLeases>,
}

type LockMap = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

/// A held lock; [`UploadGuard::release`] or dropping it releases the
/// upload (dropping: the lease's marker is deleted on a task, and the
/// in-process lock is kept until that is done).
#[derive(Debug)]
pub struct UploadGuard {
    lease: Option<Lease>,
    local: Option<Local>,
}

/// The in-process lock. The guard is the first field, so it is released
/// before the entry is checked.
type Local = (OwnedMutexGuard<()>, Entry);

impl UploadGuard {
    /// `Ok` while the lock holds: always in-process only; with a store
    /// lease, until that ran out (see [`crate::lease`]). Call it before
    /// each commit point.
    pub fn check(&self) -> Result<(), LeaseLost> {
        self.lease.as_ref().map_or(Ok(()), Lease::check)
    }

    /// A handle on the store lease for the append loop, if there is one.
    pub fn watch(&self) -> Option<LeaseWatch> {
        self.lease.as_ref().map(Lease::watch)
    }

    /// Deletes the lease's marker, then releases the upload here.
    pub async fn release(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let (Some(lease), Ok(rt)) = (self.lease.take(), tokio::runtime::Handle::try_current()) {
            let local = self.local.take();
            rt.spawn(async move {
                lease.release().await;
                drop(local);
            });
        }
    }
}

/// A share of an upload's map entry, held while waiting and while
/// holding: however it ends (acquired and released, timed out, or the
/// waiting request cancelled), the last share removes the entry.
#[derive(Debug)]
struct Entry {
    id: String,
    lock: Arc<AsyncMutex<()>>,
    map: LockMap,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map and this share hold it: nobody holds or waits.
        if map
            .get(&self.id)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock) && Arc::strong_count(l) == 2)
        {
            map.remove(&self.id);
        }
    }
}

impl UploadLocks {
    /// Locks serialising the requests of this process only.
    pub fn local() -> Self {
        Self::default()
    }

    /// Locks serialising every instance that shares the store of `leases`.
    pub fn shared(leases: StoreLeases) -> Self {
        Self {
            map: LockMap::default(),
            leases: Some(leases),
        }
    }

    /// Takes upload `id`'s lock, waiting at most `wait` in all.
    pub async fn lock(&self, id: &str, wait: Duration) -> Result<UploadGuard, LockError> {
        let start = Instant::now();
        let entry = {
            let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Entry {
                id: id.to_owned(),
                lock: map.entry(id.to_owned()).or_default().clone(),
                map: self.map.clone(),
            }
        };
        // The wait's own share of the mutex is gone (acquired into the
        // guard, or dropped with the timed-out or cancelled wait) before
        // `entry` is.
        let got = tokio::time::timeout(wait, entry.lock.clone().lock_owned()).await;
        let local = match got {
            Ok(guard) => (guard, entry),
            Err(_) => return Err(LockError::Locked),
        };
        let lease = match &self.leases {
            Some(leases) => Some(leases.acquire(id, wait.saturating_sub(start.elapsed())).await?),
            None => None,
        };
        Ok(UploadGuard {
            lease,
            local: Some(local),
        })
    }

    /// How many uploads have an entry (for tests).
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no upload has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn second_writer_waits_then_is_refused() {
        let locks = UploadLocks::default();
        let first = locks.lock("a", Duration::from_millis(10)).await.unwrap();
        assert!(
            locks
                .lock("a", Duration::from_millis(20))
                .await
                .unwrap_err()
                .is_locked()
        );
        let other = locks.lock("b", Duration::from_millis(10)).await.unwrap();
        drop(first);
        drop(other);
        assert!(locks.is_empty());
        let again = locks.lock("a", Duration::from_millis(10)).await.unwrap();
        drop(again);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_cancelled_as_the_holder_releases_leaves_no_entry() {
        let locks = UploadLocks::default();
        let holder = locks.lock("a", Duration::from_millis(10)).await.unwrap();
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("a", Duration::from_secs(30)).await.map(drop) })
        };
        // Let the waiter start waiting.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(holder);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert!(locks.is_empty(), "a dead entry is left");
    }
}
