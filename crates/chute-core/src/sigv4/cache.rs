//! [`SigningKeyCache`]: derived SigV4 signing keys, reused across requests.
//!
//! A signing key costs four HMACs and changes only daily, while a server
//! may sign thousands of URLs a second. The cache is bounded: when full it
//! is emptied (keys are cheap to re-derive; an LRU is not worth its code).

use super::{constant_time_eq, signing_key};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use time::Date;

type CacheKey = (String, Date, String, String);

/// A bounded, thread-safe cache of signing keys keyed by access key, date,
/// region and service. The secret is stored too and compared on each hit,
/// so a rotated secret under the same access key is never served stale.
#[derive(Debug)]
pub struct SigningKeyCache {
    capacity: usize,
    entries: Mutex<HashMap<CacheKey, (String, [u8; 32])>>,
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(256)
    }
}

impl SigningKeyCache {
    /// A cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The signing key for these parameters, derived on a miss.
    pub fn get(
        &self,
        access_key: &str,
        secret_key: &str,
        date: Date,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        let cache_key = (access_key.to_owned(), date, region.to_owned(), service.to_owned());
        // A poisoned lock only means another thread panicked mid-insert;
        // the map is still a valid map, so keep using it.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((secret, key)) = entries.get(&cache_key)
            && constant_time_eq(secret.as_bytes(), secret_key.as_bytes())
        {
            return *key;
        }
        let key = signing_key(secret_key, date, region, service);
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(cache_key, (secret_key.to_owned(), key));
        key
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn caches_and_bounds() {
        let cache = SigningKeyCache::new(2);
        let d = date!(2024 - 05 - 01);
        let k1 = cache.get("a", "s", d, "us-east-1", "s3");
        assert_eq!(k1, signing_key("s", d, "us-east-1", "s3"));
        assert_eq!(cache.get("a", "s", d, "us-east-1", "s3"), k1);
        cache.get("b", "s", d, "us-east-1", "s3");
        assert_eq!(cache.len(), 2);
        cache.get("c", "s", d, "us-east-1", "s3");
        assert!(cache.len() <= 2);
    }

    #[test]
    fn rotated_secret_is_not_served_stale() {
        let cache = SigningKeyCache::default();
        let d = date!(2024 - 05 - 01);
        cache.get("a", "old", d, "r", "s3");
        assert_eq!(
            cache.get("a", "new", d, "r", "s3"),
            signing_key("new", d, "r", "s3")
        );
    }
}
