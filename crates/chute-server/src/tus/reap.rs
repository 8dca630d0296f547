//! The reaper's tus step: an upload past its `Upload-Expires` loses its
//! multipart upload, its state under `.chute/tus/<id>/` and, unless it
//! completed (then the receipt may still name the object, which the
//! `tmp/` step expires later), its object; its `max_files` use is given
//! back and `upload.expired` is emitted.

use super::ticket;
use crate::hooks::{Event, EventKind};
use crate::lifecycle::Lifecycle;
use chute_store::StoreError;
use chute_tus::{Status, TusStore};
use time::OffsetDateTime;

/// What the step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TusReaped {
    /// Expired uploads removed (or, in a dry run, found).
    pub removed: u64,
    /// Removals that failed.
    pub failed: u64,
}

/// Removes the tus uploads expired at `now`, `page` ids at a time.
pub async fn reap_expired(
    lifecycle: &Lifecycle,
    now: OffsetDateTime,
    dry_run: bool,
    page: usize,
) -> Result<TusReaped, StoreError> {
    let tus = TusStore::new(lifecycle.store().clone());
    let mut out = TusReaped::default();
    let mut after: Option<String> = None;
    loop {
        let (ids, next) = tus.list_ids(after.as_deref(), page).await?;
        for id in &ids {
            let info = match tus.info(id).await {
                Ok(Some(info)) => info,
                // A half-removed upload (info deleted last) or a foreign object.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(upload = %id, error = %e, "reaper: unreadable tus upload");
                    out.failed += 1;
                    continue;
                }
            };
            if info.expires_at >= now.unix_timestamp() {
                continue;
            }
            out.removed += 1;
            if dry_run {
                continue;
            }
            let done = matches!(tus.status(&info).await, Ok(Status::Done(_)));
            if let Err(e) = tus.remove(&info, done).await {
                tracing::warn!(upload = %id, error = %e, "reaper: could not remove an expired tus upload");
                out.failed += 1;
                out.removed -= 1;
                continue;
            }
            if !done {
                if let Ok(upload) = ticket(&info) {
                    lifecycle.release_server_upload(&upload).await;
                }
                lifecycle.hooks().emit(Event::new(
                    EventKind::Expired,
                    Some(id),
                    serde_json::json!({
                        "reason": "tus_expired",
                        "bucket": lifecycle.signer().bucket.as_str(),
                        "key": info.key.as_str(),
                    }),
                ));
            }
        }
        match next {
            Some(n) if !ids.is_empty() => after = Some(n),
            _ => return Ok(out),
        }
    }
}
