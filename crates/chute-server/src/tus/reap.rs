//! The reaper's tus step: an upload past its `Upload-Expires` loses its
//! multipart upload, its state under `.chute/tus/<id>/` and, unless it
//! completed with a receipt (then the receipt may still name the object,
//! which the `tmp/` step expires later; partial uploads get none), its
//! object; its `max_files` use is given
//! back and `upload.expired` is emitted. The upload's lock markers go
//! with its state (`TusStore::remove`). State left without its info (a
//! removal cut short, a PATCH racing the expiry, a marker a crashed
//! writer left) goes once it is older than `upload_ttl`.

use super::ticket;
use crate::hooks::{Event, EventKind};
use crate::lifecycle::Lifecycle;
use chute_store::StoreError;
use chute_tus::{ConcatRole, Peek, STATE_PREFIX, TusStore};
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
                // State without info: a removal that stopped halfway, or a
                // PATCH that committed after its upload was removed. Old
                // enough, it goes.
                Ok(None) => {
                    match remove_stray(&tus, id, now - lifecycle.settings().upload_ttl, dry_run).await {
                        Ok(true) => out.removed += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(upload = %id, error = %e, "reaper: could not remove stray tus state");
                            out.failed += 1;
                        }
                    }
                    continue;
                }
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
            // Only a readable status decides: a completion that cannot be
            // read may still back a valid receipt, so its object stays.
            // A partial upload has no receipt: complete or not, it goes.
            let done = match tus.peek(&info).await {
                Ok(status) => matches!(status, Peek::Done(_)) && info.concat != Some(ConcatRole::Partial),
                Err(e) => {
                    tracing::warn!(upload = %id, error = %e, "reaper: unreadable tus progress; kept");
                    out.failed += 1;
                    out.removed -= 1;
                    continue;
                }
            };
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

/// Removes the state objects of `id` (whose info is gone) when none was
/// written after `before`; whether there was any to remove.
async fn remove_stray(
    tus: &TusStore,
    id: &str,
    before: OffsetDateTime,
    dry_run: bool,
) -> Result<bool, StoreError> {
    let page = tus
        .store()
        .list(&chute_store::ListOptions {
            prefix: format!("{STATE_PREFIX}{id}/"),
            delimiter: None,
            start_after: None,
            max_keys: 100,
        })
        .await?;
    if page.objects.is_empty() || page.objects.iter().any(|o| o.last_modified > before) {
        return Ok(false);
    }
    if !dry_run {
        for object in &page.objects {
            tus.store().delete(&object.key).await?;
        }
    }
    Ok(true)
}
