//! Expiry of derivatives, one step of the reaper's pass (`crate::reaper`).
//!
//! A manifest (`.chute/derivatives/<upload id>.json`) is useless once no
//! receipt can name its upload (`upload_ttl + receipt_ttl` after it was
//! last written), so old manifests go, with their promotion markers. With
//! them go the derivatives of uploads that were never promoted (no
//! promotion marker, and the manifest's `source` still under `tmp/`, whose
//! object the reaper deletes at the same age); those of promoted uploads
//! stay beside their original, at keys the app has. The marker decides,
//! not the manifest alone: a job that raced the promotion may have
//! rewritten the manifest with its `tmp/` source.

use super::manifest::{self, MANIFEST_PREFIX, PROMOTED_SUFFIX};
use crate::lifecycle::{Lifecycle, TMP_PREFIX};
use chute_core::ObjectKey;
use chute_core::derivative::DERIVATIVES_PREFIX;
use chute_store::{ListOptions, Store, StoreError};
use std::time::Duration;
use time::OffsetDateTime;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DerivativesReaped {
    /// Manifests removed (in a dry run: that would be).
    pub manifests: u64,
    /// Derivative objects of unpromoted uploads removed.
    pub objects: u64,
    /// Removals that failed (logged; retried by the next pass).
    pub failed: u64,
}

/// Removes manifests older than `ttl` at `now`, and the derivatives of
/// those whose upload was never promoted.
pub async fn reap_expired(
    lifecycle: &Lifecycle,
    now: OffsetDateTime,
    ttl: Duration,
    dry_run: bool,
    page: usize,
) -> Result<DerivativesReaped, StoreError> {
    reap_store(lifecycle.store().as_ref(), now, ttl, dry_run, page).await
}

/// [`reap_expired`] over a store.
pub(crate) async fn reap_store(
    store: &dyn Store,
    now: OffsetDateTime,
    ttl: Duration,
    dry_run: bool,
    page: usize,
) -> Result<DerivativesReaped, StoreError> {
    let mut out = DerivativesReaped::default();
    let mut options = ListOptions {
        prefix: MANIFEST_PREFIX.to_owned(),
        delimiter: None,
        start_after: None,
        max_keys: page.max(1),
    };
    loop {
        let listed = store.list(&options).await?;
        for object in &listed.objects {
            let age = now - object.last_modified;
            if age <= ttl {
                continue;
            }
            let name = object
                .key
                .as_str()
                .strip_prefix(MANIFEST_PREFIX)
                .unwrap_or_default();
            if let Some(upload) = name.strip_suffix(PROMOTED_SUFFIX) {
                // A marker outlives its manifest only when the promotion
                // came after the manifest expired, or removing it failed.
                if !dry_run && matches!(manifest::read(store, upload).await, Ok(None)) {
                    delete_missing_ok(store, &object.key, &mut out).await;
                }
                continue;
            }
            let Some(upload) = name.strip_suffix(".json") else {
                continue;
            };
            let promoted = match manifest::read_promoted(store, upload).await {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::warn!(upload, error = %e, "reaper: could not read a promotion marker; kept for the next pass");
                    out.failed += 1;
                    continue;
                }
            };
            let unpromoted = !promoted
                && match manifest::read(store, upload).await {
                    Ok(Some(m)) => m.source.starts_with(TMP_PREFIX),
                    Ok(None) => continue,
                    // Unreadable: it goes, its derivatives with it.
                    Err(_) => true,
                };
            out.manifests += 1;
            if dry_run {
                continue;
            }
            if unpromoted {
                match delete_derivatives(store, upload).await {
                    Ok(n) => out.objects += n,
                    Err(e) => {
                        tracing::warn!(upload, error = %e, "reaper: could not delete derivatives");
                        out.failed += 1;
                        continue;
                    }
                }
            }
            if let Err(e) = store.delete(&object.key).await {
                tracing::warn!(key = %object.key, error = %e, "reaper: could not delete a derivative manifest");
                out.failed += 1;
                continue;
            }
            if promoted && let Ok(marker) = manifest::promoted_key(upload) {
                delete_missing_ok(store, &marker, &mut out).await;
            }
        }
        match listed.next_start_after {
            Some(next) => options.start_after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Deletes `key`, already gone counting as done.
async fn delete_missing_ok(store: &dyn Store, key: &ObjectKey, out: &mut DerivativesReaped) {
    match store.delete(key).await {
        Ok(()) | Err(StoreError::NoSuchKey { .. }) => {}
        Err(e) => {
            tracing::warn!(%key, error = %e, "reaper: could not delete a promotion marker");
            out.failed += 1;
        }
    }
}

async fn delete_derivatives(store: &dyn Store, upload: &str) -> Result<u64, StoreError> {
    let prefix = format!("{DERIVATIVES_PREFIX}{upload}/");
    // A manifest's upload id came from a key we wrote; keep it that way.
    ObjectKey::parse(&format!("{prefix}x")).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let listed = store
        .list(&ListOptions {
            prefix,
            delimiter: None,
            start_after: None,
            max_keys: 1000,
        })
        .await?;
    let mut n = 0;
    for object in &listed.objects {
        store.delete(&object.key).await?;
        n += 1;
    }
    Ok(n)
}
