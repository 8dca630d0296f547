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
    map: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

/// A held lock; dropping it releases the upload.
#[derive(Debug)]
pub struct UploadGuard {
    id: String,
    guard: Option<OwnedMutexGuard<()>>,
    map: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

impl UploadLocks {
    /// Takes upload `id`'s lock, waiting at most `wait`.
    pub async fn lock(&self, id: &str, wait: Duration) -> Result<UploadGuard, Locked> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(id.to_owned()).or_default().clone()
        };
        let got = tokio::time::timeout(wait, lock.lock_owned()).await;
        let guard = UploadGuard {
            id: id.to_owned(),
            guard: got.ok(),
            map: self.map.clone(),
        };
        if guard.guard.is_some() {
            Ok(guard)
        } else {
            Err(Locked)
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

impl Drop for UploadGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map holds it: nobody holds or waits.
        if map.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.id);
        }
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
}
