//! One writer per upload inside this process: a PATCH (or DELETE, or a
//! final concatenation) holds its upload's lock; a second one waits a
//! bounded time and is then refused (423 Locked). Entries are removed when
//! nobody holds or waits for them, so the map stays as small as the
//! uploads in progress.
//!
//! This does not reach other instances: a deployment with several
//! instances routes each upload to one of them (sticky on the URL) or
//! runs a single tus writer (see ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The upload is being written by another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("another request is writing this upload")]
pub struct Locked;

/// The locks of the uploads being written.
#[derive(Debug, Default, Clone)]
pub struct UploadLocks {
    map: LockMap,
}

type LockMap = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

/// A held lock; dropping it releases the upload.
#[derive(Debug)]
pub struct UploadGuard {
    // Declared first, so it is released before the entry is checked.
    _guard: OwnedMutexGuard<()>,
    _entry: Entry,
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
    /// Takes upload `id`'s lock, waiting at most `wait`.
    pub async fn lock(&self, id: &str, wait: Duration) -> Result<UploadGuard, Locked> {
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
        match got {
            Ok(guard) => Ok(UploadGuard {
                _guard: guard,
                _entry: entry,
            }),
            Err(_) => Err(Locked),
        }
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
        assert_eq!(
            locks.lock("a", Duration::from_millis(20)).await.unwrap_err(),
            Locked
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
