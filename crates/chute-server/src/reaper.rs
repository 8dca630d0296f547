//! Expiry: one [`reap`] pass removes what abandoned and unpromoted uploads
//! left in the store, and [`run_every`] repeats it inside `chute serve`
//! (`chute gc` runs one pass from cron).
//!
//! A pass has four steps, each bounded in memory (listings go page by
//! page) and each safe to run on several instances at once (deleting a
//! missing object and aborting a gone upload are no-ops):
//!
//! 1. multipart uploads under `tmp/` initiated more than `upload_ttl` ago
//!    are aborted: their upload token has expired, so nobody can sign
//!    another part or complete them;
//! 2. objects under `tmp/` last modified more than `upload_ttl +
//!    receipt_ttl` ago are deleted: a receipt is issued while the upload
//!    token lives and lasts `receipt_ttl`, so no valid receipt can name
//!    them any more;
//! 3. the `max_files` counters of grants (`.chute/grants/<hash>/<n>`)
//!    older than `upload_ttl + grant_counter_ttl` are deleted. This
//!    assumes grants with `max_files` live less than `grant_counter_ttl`
//!    (default 7 days): a grant still valid after its counters go could
//!    be used `max_files` times more.
//!
//! 4. tus uploads past their `Upload-Expires` lose their state under
//!    `.chute/tus/`, their multipart upload and, when unfinished, their
//!    object (`crate::tus::reap_expired`).
//! 5. derivative manifests older than `upload_ttl + receipt_ttl` are
//!    deleted, with the derivatives of uploads never promoted
//!    (`crate::derivatives::reap`).
//!
//! Each removed upload emits `upload.expired` (at least once: two
//! instances reaping at the same moment may both report it).

use crate::hooks::{Event, EventKind};
use crate::lifecycle::{Lifecycle, STATE_PREFIX, TMP_PREFIX, rfc3339};
use chute_core::ObjectKey;
pub use chute_store::s3::ExpiryRuleOutcome;
use chute_store::{ListOptions, StoreError};
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// Where grant `max_files` counters live.
const GRANT_COUNTERS: &str = "grants/";
/// The first periodic pass runs this long after start (or after one
/// interval, when that is shorter).
pub const FIRST_RUN_DELAY: Duration = Duration::from_secs(10);

/// How long `chute gc` waits for queued webhook deliveries before exiting.
pub const GC_WEBHOOK_DRAIN: Duration = Duration::from_secs(30);

/// How a pass runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapOptions {
    /// Count what would be removed; remove nothing, emit nothing.
    pub dry_run: bool,
    /// How much longer than `upload_ttl` a grant's `max_files` counters
    /// are kept; grants with `max_files` must expire within this.
    pub grant_counter_ttl: Duration,
    /// Keys listed per page (the most a pass holds in memory).
    pub page_size: usize,
}

impl Default for ReapOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            grant_counter_ttl: Duration::from_secs(7 * 86400),
            page_size: 1000,
        }
    }
}

/// What one pass removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Stale multipart uploads aborted.
    pub multipart_aborted: u64,
    /// Unpromoted temporary objects deleted.
    pub objects_deleted: u64,
    /// Their total size in bytes.
    pub bytes_deleted: u64,
    /// Grant `max_files` counters deleted.
    pub grant_counters_deleted: u64,
    /// Expired tus uploads removed (state, parts, unfinished objects).
    pub tus_expired: u64,
    /// Derivative manifests removed (no receipt can name their upload).
    pub derivative_manifests: u64,
    /// Derivatives of never-promoted uploads removed.
    pub derivatives_deleted: u64,
    /// Removals that failed (logged; retried by the next pass).
    pub failed: u64,
}

impl fmt::Display for ReapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would remove" } else { "removed" };
        write!(
            f,
            "{verb} {} stale multipart upload(s), {} temporary object(s) ({} bytes), {} grant counter(s)",
            self.multipart_aborted, self.objects_deleted, self.bytes_deleted, self.grant_counters_deleted
        )?;
        if self.tus_expired > 0 {
            write!(f, ", {} expired tus upload(s)", self.tus_expired)?;
        }
        if self.derivative_manifests > 0 {
            write!(
                f,
                ", {} derivative manifest(s) and {} derivative(s) of unpromoted uploads",
                self.derivative_manifests, self.derivatives_deleted
            )?;
        }
        if self.failed > 0 {
            write!(f, "; {} removal(s) failed (see the log)", self.failed)?;
        }
        Ok(())
    }
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    /// The store could not list what the pass needs to look at.
    #[error("listing {what}: {source}")]
    List {
        /// What was being listed.
        what: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// Why `chute gc` could not run its pass.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The configured embedded store has no data directory yet.
    #[error("no store in {0}: nothing to collect (check --data-dir or CHUTE_DATA_DIR)")]
    NoStore(String),
    /// A server seems to serve the embedded store right now.
    #[error(
        "something listens on {0} (s3_listen): if it is `chute serve` on this data directory, opening \
         the store from a second process would remove its in-flight uploads. The server reaps by itself \
         every reap_interval_seconds; stop it, or point s3_listen elsewhere, to run `chute gc`"
    )]
    StoreInUse(std::net::SocketAddr),
    /// The store or secrets could not be opened.
    #[error(transparent)]
    Open(#[from] crate::ServeError),
    /// The pass failed.
    #[error(transparent)]
    Reap(#[from] ReapError),
    /// `--install-lifecycle-rule` without an S3 backend.
    #[error(
        "lifecycle rules are for S3 backends (store = \"s3\"); the embedded store expires tmp/ with \
         the reaper"
    )]
    NotS3,
    /// The S3 backend refused or failed.
    #[error("the S3 backend: {0}")]
    Backend(#[source] chute_store::StoreError),
}

/// `chute gc --install-lifecycle-rule`: gives an S3 bucket without a
/// lifecycle configuration a rule expiring `tmp/` objects a day after the
/// reaper would (upload plus receipt time, rounded up to days) and
/// aborting multipart uploads a day after their upload time, so abandoned
/// uploads go even when no Chute instance runs.
pub async fn install_expiry_rule(config: &crate::Config) -> Result<ExpiryRuleOutcome, GcError> {
    let backend = config.s3_backend.clone().ok_or(GcError::NotS3)?;
    let store = chute_store::s3::S3Store::connect(backend)
        .await
        .map_err(GcError::Backend)?;
    let days = |d: Duration| u32::try_from(d.as_secs().div_ceil(86_400) + 1).unwrap_or(u32::MAX);
    let settings = &config.lifecycle;
    store
        .install_expiry_rule(
            crate::lifecycle::TMP_PREFIX,
            days(settings.upload_ttl + settings.receipt_ttl),
            days(settings.upload_ttl),
        )
        .await
        .map_err(GcError::Backend)
}

/// `chute gc`: one pass over the configured store, now.
///
/// The embedded store is refused while something listens on `s3_listen`:
/// opening it cleans up temp files, which in a second process would be
/// the running server's uploads in flight.
pub async fn gc(config: &crate::Config, dry_run: bool) -> Result<ReapReport, GcError> {
    if config.uses_embedded_store() {
        if !config.data_dir.join("buckets").is_dir() {
            return Err(GcError::NoStore(config.data_dir.display().to_string()));
        }
        let probe = tokio::net::TcpStream::connect(config.s3_listen);
        if config.s3_listen.port() != 0
            && matches!(
                tokio::time::timeout(Duration::from_secs(1), probe).await,
                Ok(Ok(_))
            )
        {
            return Err(GcError::StoreInUse(config.s3_listen));
        }
    }
    // Webhooks hear of what gc removes as they hear of the server's own
    // passes; queued deliveries get a bounded time before gc exits.
    let (sink, hooks) =
        crate::serve::webhook_hooks(config).map_err(|e| GcError::Open(crate::ServeError::Webhooks(e)))?;
    let lifecycle = crate::open_lifecycle(config, hooks).await?;
    let options = ReapOptions {
        dry_run,
        ..crate::reap_options(config)
    };
    let report = reap_with(&lifecycle, OffsetDateTime::now_utc(), &options).await;
    if let Some(sink) = &sink {
        let stats = sink.shutdown(GC_WEBHOOK_DRAIN).await;
        if stats.pending > 0 || stats.failed > 0 {
            tracing::warn!(?stats, "some upload.expired webhooks were not delivered");
        }
    }
    Ok(report?)
}

/// One pass at `now` with the default options.
pub async fn reap(lifecycle: &Lifecycle, now: OffsetDateTime) -> Result<ReapReport, ReapError> {
    reap_with(lifecycle, now, &ReapOptions::default()).await
}

/// One pass at `now`: abort stale multipart uploads, delete unpromoted
/// temporary objects and old grant counters (see the module docs).
pub async fn reap_with(
    lifecycle: &Lifecycle,
    now: OffsetDateTime,
    options: &ReapOptions,
) -> Result<ReapReport, ReapError> {
    let settings = lifecycle.settings();
    let mut report = ReapReport {
        dry_run: options.dry_run,
        ..ReapReport::default()
    };
    abort_stale_uploads(lifecycle, now, settings.upload_ttl, options, &mut report).await?;
    let old_tmp = Old {
        prefix: TMP_PREFIX,
        what: "temporary objects",
        one: "a temporary object",
        now,
        ttl: settings.upload_ttl.saturating_add(settings.receipt_ttl),
    };
    delete_old(
        lifecycle,
        &old_tmp,
        options,
        &mut report,
        |report, object, dry_run| {
            report.objects_deleted += 1;
            report.bytes_deleted += object.size;
            if !dry_run {
                expired(
                    lifecycle,
                    &object.key,
                    serde_json::json!({
                        "reason": "not_promoted",
                        "size": object.size,
                        "last_modified": rfc3339(object.last_modified.unix_timestamp()),
                    }),
                );
            }
        },
    )
    .await?;
    let counters = format!("{STATE_PREFIX}{GRANT_COUNTERS}");
    let old_counters = Old {
        prefix: &counters,
        what: "grant counters",
        one: "a grant counter",
        now,
        ttl: settings.upload_ttl.saturating_add(options.grant_counter_ttl),
    };
    delete_old(lifecycle, &old_counters, options, &mut report, |report, _, _| {
        report.grant_counters_deleted += 1;
    })
    .await?;
    let tus = crate::tus::reap_expired(lifecycle, now, options.dry_run, options.page_size)
        .await
        .map_err(|source| ReapError::List {
            what: "tus uploads",
            source,
        })?;
    report.tus_expired = tus.removed;
    report.failed += tus.failed;
    let derivatives = crate::derivatives::reap::reap_expired(
        lifecycle,
        now,
        settings.upload_ttl.saturating_add(settings.receipt_ttl),
        options.dry_run,
        options.page_size,
    )
    .await
    .map_err(|source| ReapError::List {
        what: "derivative manifests",
        source,
    })?;
    report.derivative_manifests = derivatives.manifests;
    report.derivatives_deleted = derivatives.objects;
    report.failed += derivatives.failed;
    Ok(report)
}

async fn abort_stale_uploads(
    lifecycle: &Lifecycle,
    now: OffsetDateTime,
    ttl: Duration,
    options: &ReapOptions,
    report: &mut ReapReport,
) -> Result<(), ReapError> {
    let uploads = lifecycle
        .store()
        .list_multipart_uploads(TMP_PREFIX)
        .await
        .map_err(|source| ReapError::List {
            what: "multipart uploads",
            source,
        })?;
    for upload in uploads.iter().filter(|u| older_than(now, u.initiated, ttl)) {
        if options.dry_run {
            report.multipart_aborted += 1;
            continue;
        }
        match lifecycle
            .store()
            .abort_multipart(&upload.key, &upload.upload_id)
            .await
        {
            Ok(()) => {
                report.multipart_aborted += 1;
                expired(
                    lifecycle,
                    &upload.key,
                    serde_json::json!({
                        "reason": "multipart_abandoned",
                        "initiated": rfc3339(upload.initiated.unix_timestamp()),
                    }),
                );
            }
            // Completed, aborted or reaped elsewhere since the listing.
            Err(StoreError::NoSuchUpload { .. }) => {}
            Err(e) => {
                report.failed += 1;
                tracing::warn!(key = %upload.key, error = %e, "reaper: could not abort a stale multipart upload");
            }
        }
    }
    Ok(())
}

/// The objects a [`delete_old`] walk removes.
struct Old<'a> {
    /// Where they are listed.
    prefix: &'a str,
    /// What they are, for a listing error.
    what: &'static str,
    /// What one of them is, for a failed deletion's log line.
    one: &'static str,
    now: OffsetDateTime,
    /// Older than this (last modified) is removed.
    ttl: Duration,
}

/// Deletes the objects under `old.prefix` last modified more than
/// `old.ttl` before `old.now`, page by page; `deleted(report, object,
/// dry_run)` runs for each one removed (in a dry run: that would be).
async fn delete_old(
    lifecycle: &Lifecycle,
    old: &Old<'_>,
    options: &ReapOptions,
    report: &mut ReapReport,
    mut deleted: impl FnMut(&mut ReapReport, &chute_store::ObjectMeta, bool),
) -> Result<(), ReapError> {
    let mut pages = Pages::new(old.prefix, options.page_size);
    while let Some(page) = pages.next(lifecycle, old.what).await? {
        for object in page
            .iter()
            .filter(|o| older_than(old.now, o.last_modified, old.ttl))
        {
            if options.dry_run {
                deleted(report, object, true);
                continue;
            }
            match lifecycle.store().delete(&object.key).await {
                Ok(()) => deleted(report, object, false),
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(key = %object.key, error = %e, "reaper: could not delete {}", old.one);
                }
            }
        }
    }
    Ok(())
}

/// A listing walked one page at a time, so a pass holds at most one page.
struct Pages {
    options: ListOptions,
    done: bool,
}

impl Pages {
    fn new(prefix: &str, page_size: usize) -> Self {
        Self {
            options: ListOptions {
                prefix: prefix.to_owned(),
                delimiter: None,
                start_after: None,
                max_keys: page_size.max(1),
            },
            done: false,
        }
    }

    /// The next page's objects, or `None` after the last page. Deleting
    /// keys of a page does not disturb the next one: it starts after the
    /// last key returned, not at an offset.
    async fn next(
        &mut self,
        lifecycle: &Lifecycle,
        what: &'static str,
    ) -> Result<Option<Vec<chute_store::ObjectMeta>>, ReapError> {
        if self.done {
            return Ok(None);
        }
        let page = lifecycle
            .store()
            .list(&self.options)
            .await
            .map_err(|source| ReapError::List { what, source })?;
        match page.next_start_after {
            Some(after) => self.options.start_after = Some(after),
            None => self.done = true,
        }
        Ok(Some(page.objects))
    }
}

/// Whether `then` lies more than `ttl` before `now`.
fn older_than(now: OffsetDateTime, then: OffsetDateTime, ttl: Duration) -> bool {
    let age = now - then;
    age.is_positive() && age.unsigned_abs() > ttl
}

/// The upload id of a temporary key, `tmp/<id>/<filename>`.
fn upload_id(key: &ObjectKey) -> Option<&str> {
    let mut segments = key.as_str().strip_prefix(TMP_PREFIX)?.splitn(2, '/');
    let id = segments.next()?;
    segments.next().map(|_| id)
}

fn expired(lifecycle: &Lifecycle, key: &ObjectKey, mut data: serde_json::Value) {
    if let Some(map) = data.as_object_mut() {
        map.insert("bucket".into(), lifecycle.signer().bucket.as_str().into());
        map.insert("key".into(), key.as_str().into());
    }
    lifecycle
        .hooks()
        .emit(Event::new(EventKind::Expired, upload_id(key), data));
}

/// Runs a pass every `every` until `shutdown` resolves, the first one
/// [`FIRST_RUN_DELAY`] after start. A failing (or panicking) pass is
/// logged and the next one runs on schedule; the server never stops for
/// the reaper. A pass in flight at shutdown is dropped between store
/// calls, each of which is atomic.
pub async fn run_every(
    lifecycle: Lifecycle,
    every: Duration,
    options: ReapOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = tokio::time::Instant::now() + FIRST_RUN_DELAY.min(every);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = &mut shutdown => return,
        }
        let (lifecycle, options) = (lifecycle.clone(), options.clone());
        let mut pass =
            tokio::spawn(async move { reap_with(&lifecycle, OffsetDateTime::now_utc(), &options).await });
        tokio::select! {
            joined = &mut pass => match joined {
                Ok(Ok(report)) if report == ReapReport::default() => {
                    tracing::debug!("reaper: nothing to remove");
                }
                Ok(Ok(report)) if report.failed > 0 => tracing::warn!("reaper: {report}"),
                Ok(Ok(report)) => tracing::info!("reaper: {report}"),
                Ok(Err(e)) => tracing::warn!(error = %e, "reaper pass failed; retrying next interval"),
                Err(e) => tracing::error!(error = %e, "reaper pass panicked; retrying next interval"),
            },
            () = &mut shutdown => {
                pass.abort();
                return;
            }
        }
        next = tokio::time::Instant::now() + every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_come_from_the_second_segment() {
        let key = |s| ObjectKey::parse(s).unwrap();
        assert_eq!(upload_id(&key("tmp/abc/photo.png")), Some("abc"));
        assert_eq!(upload_id(&key("tmp/abc/dir/photo.png")), Some("abc"));
        assert_eq!(upload_id(&key("tmp/loose")), None);
        assert_eq!(upload_id(&key("avatars/abc/photo.png")), None);
    }

    #[test]
    fn age_is_strictly_more_than_the_ttl() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let ttl = Duration::from_secs(100);
        assert!(!older_than(now, now - Duration::from_secs(100), ttl));
        assert!(older_than(now, now - Duration::from_secs(101), ttl));
        assert!(!older_than(now, now + Duration::from_secs(500), ttl));
    }

    #[test]
    fn reports_read_as_a_sentence() {
        let report = ReapReport {
            dry_run: true,
            multipart_aborted: 1,
            objects_deleted: 2,
            bytes_deleted: 30,
            grant_counters_deleted: 4,
            tus_expired: 0,
            derivative_manifests: 0,
            derivatives_deleted: 0,
            failed: 0,
        };
        assert_eq!(
            report.to_string(),
            "would remove 1 stale multipart upload(s), 2 temporary object(s) (30 bytes), 4 grant counter(s)"
        );
    }
}
