//! Image derivatives: the thumbnails and smaller sizes a grant names
//! (`derivatives: {"thumb": "200x200 crop"}`), made after completion (or
//! promotion, `derive_on: "promote"`) and stored beside the original at
//! `derivatives/<upload id>/<name>.<ext>`.
//!
//! [`Derivatives`] owns the whole job: it records the work as pending in a
//! manifest in the store ([`manifest`]), takes a place on the bounded
//! [`pool::WorkerPool`] (OS threads, off the async runtime), reads the
//! original once, decodes and renders every derivative ([`pipeline`]),
//! stores them and records each outcome. What a grant may name is checked
//! in `chute-core` ([`chute_core::derivative`]) when the grant is resolved;
//! the HTTP route lives in `api::derivatives`.
//!
//! Failure model: a derivative that cannot be made (not an image, a
//! truncated file, a decompression bomb, a decoder panic, a store error)
//! is marked `failed` with the reason; the upload and its receipt are never
//! touched. Work is never dropped silently: when the pool is full a job
//! waits for a place (up to [`pool::MAX_WAITING`] jobs wait); beyond that,
//! or when the process dies mid-job, the manifest stays `pending`, and
//! the status route re-queues pending work whose manifest is older than
//! `requeue_after` and that this process is not running.

pub mod manifest;
pub mod pipeline;
pub mod pool;
pub mod reap;
/// The integration tests' image fixtures, shared with the unit tests.
#[cfg(test)]
#[path = "../../tests/it/images.rs"]
pub(crate) mod test_images;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use chute_core::derivative::derivative_key;
use chute_core::{DerivativeLimits, DerivativeSpec, DeriveOn, Grant, ObjectKey, OutputFormat, ReceiptClaims};
use chute_store::{ByteStream, MultipartStore, ObjectHeaders, PutOptions, StoreError};
use futures::TryStreamExt as _;
use manifest::{Entry, Manifest, Status};
pub use pipeline::{DecodeLimits, EncodeDefaults, Rendered};
use pool::WorkerPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

/// The media types derivatives are made from (as sniffed at completion).
pub const SOURCE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/// How derivatives are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Jobs that may wait for a worker beyond those running.
    pub queue: usize,
    /// What one decode may spend.
    pub decode: DecodeLimits,
    /// The largest original derivatives are made of, in bytes (read into
    /// memory whole, up to `2 * workers` at once).
    pub max_source: u64,
    /// The format and quality of specs that name none.
    pub encode: EncodeDefaults,
    /// What a grant may ask for.
    pub limits: DerivativeLimits,
    /// Pending work older than this, not running here, is re-queued when
    /// its status is asked for.
    pub requeue_after: Duration,
    /// Whether the status route answers with presigned URLs. Off by
    /// default (a receipt, which apps log and pass around, is not read
    /// access unless the operator turns this on); the configuration turns
    /// it on in development mode.
    pub status_urls: bool,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            queue: 64,
            decode: DecodeLimits::default(),
            max_source: 64 * 1024 * 1024,
            encode: EncodeDefaults::default(),
            limits: DerivativeLimits::default(),
            requeue_after: Duration::from_secs(300),
            status_urls: false,
        }
    }
}

/// The derivative service of one lifecycle.
#[derive(Debug, Clone)]
pub struct Derivatives {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MultipartStore>,
    settings: ImageSettings,
    /// Started on first use, so a server whose grants name no derivatives
    /// runs no image threads.
    pool: OnceLock<Option<WorkerPool>>,
    /// Uploads whose job runs in this process, with the key their
    /// original was promoted to meanwhile (the job may not have written
    /// its manifest yet when the promotion looks for it).
    running: Mutex<HashMap<String, Option<String>>>,
}

/// One derivative the grant of an upload names, resolved.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The parsed spec, or why it no longer parses (limits changed since
    /// the grant was issued).
    pub spec: Result<DerivativeSpec, String>,
    /// The spec as written.
    pub raw: String,
    /// The output format.
    pub format: OutputFormat,
    /// Where it is stored.
    pub key: Option<ObjectKey>,
}

impl Derivatives {
    /// The service over `store`.
    pub fn new(store: Arc<dyn MultipartStore>, settings: ImageSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                pool: OnceLock::new(),
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ImageSettings {
        &self.inner.settings
    }

    /// The derivatives of `upload_id` under `grant`: spec, format and key.
    pub fn plan(&self, upload_id: &str, grant: &Grant) -> BTreeMap<String, Planned> {
        let settings = &self.inner.settings;
        grant
            .derivatives
            .iter()
            .map(|(name, raw)| {
                let spec = DerivativeSpec::parse(raw, settings.limits.max_dimension);
                let format = spec
                    .as_ref()
                    .ok()
                    .and_then(|s| s.format)
                    .unwrap_or(settings.encode.format);
                let key = derivative_key(upload_id, name, format).ok();
                let planned = Planned {
                    spec,
                    raw: raw.clone(),
                    format,
                    key,
                };
                (name.clone(), planned)
            })
            .collect()
    }

    /// The keys a receipt lists: name -> key; none for an upload that is
    /// not an image (a grant may let images and documents in alike).
    pub fn receipt_keys(
        &self,
        upload_id: &str,
        grant: &Grant,
        content_type: &str,
    ) -> BTreeMap<String, String> {
        if !is_image(content_type) {
            return BTreeMap::new();
        }
        self.plan(upload_id, grant)
            .into_iter()
            .filter_map(|(name, p)| Some((name, p.key?.as_str().to_owned())))
            .collect()
    }

    /// Called when an upload completes: starts its derivatives unless the
    /// grant waits for promotion.
    pub fn completed(&self, receipt: &ReceiptClaims) {
        if receipt.grant.derive_on == DeriveOn::Complete {
            self.start(receipt, &receipt.key, false);
        }
    }

    /// Called when an upload is promoted to `target` (before its temporary
    /// object is deleted): starts the derivatives of a `promote` grant, or
    /// points pending work of a `complete` grant at the new key.
    pub async fn promoted(&self, receipt: &ReceiptClaims, target: &ObjectKey) {
        if !applies(receipt) {
            return;
        }
        // The marker first, written by nobody else: whatever becomes of
        // the manifest (a job rewrites it whole), the reaper keeps the
        // derivatives of a promoted upload.
        if let Err(e) = manifest::write_promoted(self.store().as_ref(), &receipt.jti, target.as_str()).await {
            tracing::warn!(upload = %receipt.jti, error = %e, "could not record the promotion of an upload with derivatives");
        }
        if receipt.grant.derive_on == DeriveOn::Promote {
            self.start(receipt, target.as_str(), false);
            return;
        }
        let running_here = match self.inner.running.lock() {
            Ok(mut running) => match running.get_mut(&receipt.jti) {
                Some(moved) => {
                    *moved = Some(target.as_str().to_owned());
                    true
                }
                None => false,
            },
            Err(_) => false,
        };
        // A job running here records the new source itself, in its own
        // writes and after them; rewriting the manifest from here could put
        // a stale pending copy back over its outcome.
        if !running_here {
            self.record_source(&receipt.jti, target.as_str()).await;
        }
    }

    /// Points the manifest of `upload` (when there is one) at `source`.
    async fn record_source(&self, upload: &str, source: &str) {
        let store = self.store();
        match manifest::read(store.as_ref(), upload).await {
            Ok(Some(mut m)) if m.source != source => {
                m.source = source.to_owned();
                if let Err(e) = manifest::write(store.as_ref(), &m, false).await {
                    tracing::warn!(upload, error = %e, "could not record the promoted source of derivatives");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(upload, error = %e, "could not read a derivative manifest"),
        }
    }

    /// The key the original of `upload` was promoted to, if it was: as
    /// this process saw it, else as the promotion marker records it.
    async fn promoted_source(&self, upload: &str) -> Option<String> {
        let moved = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(upload).cloned().flatten());
        match moved {
            Some(moved) => Some(moved),
            None => manifest::read_promoted(self.inner.store.as_ref(), upload)
                .await
                .ok()
                .flatten(),
        }
    }

    /// The manifest of a receipt's upload, re-queuing its pending work
    /// when it is stale and not running here (a process died, or the
    /// queue was full). `None` while nothing was recorded yet.
    pub async fn status(&self, receipt: &ReceiptClaims) -> Result<Option<Manifest>, StoreError> {
        if !applies(receipt) {
            return Ok(None);
        }
        let store = self.store();
        let found = manifest::read(store.as_ref(), &receipt.jti).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let stale_after = i64::try_from(self.inner.settings.requeue_after.as_secs()).unwrap_or(i64::MAX);
        match &found {
            Some(m)
                if m.pending()
                    && now.saturating_sub(m.updated) >= stale_after
                    && !self.is_running(&m.upload_id) =>
            {
                tracing::info!(upload = %m.upload_id, "re-queuing stale pending derivatives");
                self.start(receipt, &m.source.clone(), true);
            }
            None if receipt.grant.derive_on == DeriveOn::Complete && !self.is_running(&receipt.jti) => {
                // Completed, but the pending manifest was never written
                // (the process died right after the receipt).
                self.start(receipt, &receipt.key, false);
            }
            _ => {}
        }
        Ok(found)
    }

    fn store(&self) -> Arc<dyn MultipartStore> {
        Arc::clone(&self.inner.store)
    }

    fn is_running(&self, upload_id: &str) -> bool {
        self.inner
            .running
            .lock()
            .map(|r| r.contains_key(upload_id))
            .unwrap_or(false)
    }

    fn pool(&self) -> Option<&WorkerPool> {
        self.inner
            .pool
            .get_or_init(|| {
                let settings = &self.inner.settings;
                let workers = match settings.workers {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    n => n,
                };
                WorkerPool::new(workers, settings.queue)
                    .map_err(|e| tracing::error!(error = %e, "cannot start the image workers; derivatives stay pending"))
                    .ok()
            })
            .as_ref()
    }

    /// Starts the job of one upload in the background (once per process
    /// at a time). `requeue` takes up an existing pending manifest.
    fn start(&self, receipt: &ReceiptClaims, source: &str, requeue: bool) {
        if !applies(receipt) {
            return;
        }
        {
            let Ok(mut running) = self.inner.running.lock() else {
                return;
            };
            if running.contains_key(&receipt.jti) {
                return;
            }
            running.insert(receipt.jti.clone(), None);
        }
        let this = self.clone();
        let receipt = receipt.clone();
        let source = source.to_owned();
        tokio::spawn(async move {
            let mut written = this.job(&receipt, source, requeue).await;
            // A promotion after the job's last write left the manifest to
            // it. The job stays registered until the manifest names the
            // last promotion: the entry is removed under the same lock that
            // finds nothing left to record, so a promotion either updates
            // the entry in time to be recorded here or, finding no entry,
            // records itself.
            loop {
                let moved = {
                    let Ok(mut running) = this.inner.running.lock() else {
                        break;
                    };
                    match running.get(&receipt.jti).cloned().flatten() {
                        Some(moved) if written.as_ref() != Some(&moved) => moved,
                        _ => {
                            running.remove(&receipt.jti);
                            break;
                        }
                    }
                };
                this.record_source(&receipt.jti, &moved).await;
                written = Some(moved);
            }
        });
    }

    /// Makes the derivatives of one upload; the manifest source it last
    /// wrote, if it wrote one.
    async fn job(&self, receipt: &ReceiptClaims, source: String, requeue: bool) -> Option<String> {
        let store = self.store();
        let upload = receipt.jti.as_str();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let plan = self.plan(upload, &receipt.grant);
        let source = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(upload).cloned().flatten())
            .unwrap_or(source);
        let mut m = Manifest {
            upload_id: upload.to_owned(),
            source,
            updated: now,
            derivatives: plan
                .iter()
                .map(|(name, p)| (name.clone(), pending_entry(p)))
                .collect(),
        };
        // Refuse what cannot be made before queuing anything.
        let type_ok = SOURCE_TYPES.contains(&receipt.content_type.as_str());
        for (name, p) in &plan {
            let why = match (&p.spec, &p.key, type_ok) {
                (Err(why), _, _) => Some(format!("bad spec: {why}")),
                (_, None, _) => Some("the upload id makes no valid key".to_owned()),
                (_, _, false) => Some(format!(
                    "the upload is {}, not a JPEG, PNG, WebP or GIF image",
                    receipt.content_type
                )),
                _ => None,
            };
            if let (Some(why), Some(e)) = (why, m.derivatives.get_mut(name)) {
                e.status = Status::Failed;
                e.error = Some(why);
            }
        }
        // Record the work before doing it; a second completion of the
        // same upload finds the manifest and leaves it alone (atomically
        // where the store has create-only puts; Garage has none, so there
        // two instances completing one upload at once may both derive it,
        // writing the same objects).
        let create_only = !requeue && store.capabilities().create_only;
        if !requeue && !create_only && matches!(manifest::read(store.as_ref(), upload).await, Ok(Some(_))) {
            return None;
        }
        match manifest::write(store.as_ref(), &m, create_only).await {
            Ok(()) => {}
            Err(StoreError::PreconditionFailed { .. }) => return None,
            Err(e) => {
                tracing::warn!(upload, error = %e, "could not record pending derivatives; not making them now");
                return None;
            }
        }
        if !m.pending() {
            return Some(m.source);
        }
        let Some(pool) = self.pool() else {
            return Some(m.source);
        };
        // Waits for a place when the queue is full (no source bytes held).
        let Some(place) = pool.reserve().await else {
            tracing::warn!(
                upload,
                waiting = pool::MAX_WAITING,
                "the image queue is full and too many jobs wait for it; the derivatives stay pending and are re-queued when their status is asked for"
            );
            return Some(m.source);
        };
        let settings = self.inner.settings.clone();
        let todo: Vec<(String, DerivativeSpec)> = plan
            .iter()
            .filter(|(name, _)| {
                m.derivatives
                    .get(*name)
                    .is_some_and(|e| e.status == Status::Pending)
            })
            .filter_map(|(name, p)| Some((name.clone(), *p.spec.as_ref().ok()?)))
            .collect();
        let prepare = async {
            let bytes = match self.read_source(receipt, &mut m.source).await {
                Ok(bytes) => bytes,
                Err(why) => return Some(Box::new(move || Err(why)) as RenderJob),
            };
            Some(Box::new(move || render_all(&bytes, &todo, &settings)) as RenderJob)
        };
        let started = std::time::Instant::now();
        let outcome = pool
            .run(&place, prepare)
            .await
            .unwrap_or_else(|| Err("the image decoder crashed on this file".to_owned()));
        drop(place);
        let ran = started.elapsed();
        self.store_outcome(&mut m, outcome).await;
        tracing::debug!(
            upload,
            queued_read_and_rendered_ms = ran.as_millis() as u64,
            stored_ms = (started.elapsed() - ran).as_millis() as u64,
            "derivatives made"
        );
        m.updated = OffsetDateTime::now_utc().unix_timestamp();
        // A promotion meanwhile (here, or on another instance) wins.
        if let Some(moved) = self.promoted_source(upload).await {
            m.source = moved;
        }
        match manifest::write(store.as_ref(), &m, false).await {
            Ok(()) => Some(m.source),
            Err(e) => {
                tracing::warn!(upload, error = %e, "could not record the derivatives' outcome; they stay pending");
                None
            }
        }
    }

    /// Reads the original, following a promotion that moved it meanwhile,
    /// and only when it is the object the receipt describes: a POST form
    /// or PUT URL stays valid after completion, and a single-part object's
    /// ETag (its MD5) survives promotion's copy.
    async fn read_source(&self, receipt: &ReceiptClaims, source: &mut String) -> Result<Bytes, String> {
        let upload = receipt.jti.as_str();
        let max = self.inner.settings.max_source;
        let single_part = !receipt.etag.contains('-');
        for _ in 0..2 {
            let key = ObjectKey::parse(source).map_err(|e| format!("bad source key: {e}"))?;
            match self.inner.store.get(&key, None).await {
                Ok(got) if got.meta.size > max => {
                    return Err(format!(
                        "the file is {} MiB; images over {} MiB are not derived (image_max_source_mib)",
                        got.meta.size.div_ceil(1024 * 1024),
                        max / (1024 * 1024)
                    ));
                }
                Ok(got)
                    if got.meta.size != receipt.size
                        || (single_part && got.meta.etag.trim_matches('"') != receipt.etag) =>
                {
                    return Err("the object changed after its receipt was issued".into());
                }
                Ok(got) => {
                    return collect(got.body, usize::try_from(max).unwrap_or(usize::MAX))
                        .await
                        .map_err(|e| format!("reading the original failed: {e}"));
                }
                Err(StoreError::NoSuchKey { .. }) => {
                    let moved = self.promoted_source(upload).await;
                    let recorded = match moved {
                        Some(moved) => Some(moved),
                        None => manifest::read(self.inner.store.as_ref(), upload)
                            .await
                            .ok()
                            .flatten()
                            .map(|m| m.source),
                    };
                    match recorded {
                        Some(next) if next != *source => *source = next,
                        _ => return Err("the original is gone (deleted or expired)".into()),
                    }
                }
                Err(e) => return Err(format!("reading the original failed: {e}")),
            }
        }
        Err("the original is gone (deleted or expired)".into())
    }

    async fn store_outcome(&self, m: &mut Manifest, outcome: Outcome) {
        let results = match outcome {
            Ok(results) => results,
            Err(why) => {
                for e in m.derivatives.values_mut().filter(|e| e.status == Status::Pending) {
                    e.status = Status::Failed;
                    e.error = Some(why.clone());
                }
                return;
            }
        };
        for (name, result) in results {
            let Some(entry) = m.derivatives.get_mut(&name) else {
                continue;
            };
            match result {
                Ok(r) => match self.put(&entry.key, r.bytes, r.format).await {
                    Ok(size) => {
                        entry.status = Status::Ready;
                        entry.size = Some(size);
                        entry.width = Some(r.width);
                        entry.height = Some(r.height);
                    }
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "could not store a derivative");
                        entry.status = Status::Failed;
                        entry.error = Some(
                            "the store refused to save the derivative (see the server log); failed derivatives are not retried"
                                .into(),
                        );
                    }
                },
                Err(why) => {
                    entry.status = Status::Failed;
                    entry.error = Some(why);
                }
            }
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, format: OutputFormat) -> Result<u64, StoreError> {
        let key = ObjectKey::parse(key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let len = bytes.len() as u64;
        let opts = PutOptions {
            headers: ObjectHeaders {
                content_type: Some(format.content_type().to_owned()),
                cache_control: Some("public, max-age=31536000, immutable".into()),
                ..ObjectHeaders::default()
            },
            expected_len: Some(len),
            ..PutOptions::default()
        };
        self.inner
            .store
            .put(&key, once(bytes), opts)
            .await
            .map(|m| m.size)
    }
}

/// Whether derivatives are made of `content_type`: images only (those
/// that are not JPEG, PNG, WebP or GIF are recorded as failed).
pub fn is_image(content_type: &str) -> bool {
    content_type.starts_with("image/")
}

/// Whether the receipt's upload gets derivatives.
fn applies(receipt: &ReceiptClaims) -> bool {
    !receipt.grant.derivatives.is_empty() && is_image(&receipt.content_type)
}

/// Every derivative's result, or why none could be made (the decode failed).
type Outcome = Result<Vec<(String, Result<Rendered, String>)>, String>;

type RenderJob = Box<dyn FnOnce() -> Outcome + Send>;

/// Decodes once and renders every derivative (on a worker thread).
fn render_all(bytes: &[u8], todo: &[(String, DerivativeSpec)], settings: &ImageSettings) -> Outcome {
    let started = std::time::Instant::now();
    let specs: Vec<DerivativeSpec> = todo.iter().map(|(_, s)| *s).collect();
    let image = pipeline::decode_for(bytes, settings.decode, &specs)?;
    let image = pipeline::converted_once(image, &specs, settings.encode);
    let decoded = started.elapsed();
    let out = todo
        .iter()
        .map(|(name, spec)| (name.clone(), pipeline::render(&image, spec, settings.encode)))
        .collect();
    tracing::debug!(
        decoded_ms = decoded.as_millis() as u64,
        decoded_size = %format_args!("{}x{}", image.width(), image.height()),
        rendered_ms = (started.elapsed() - decoded).as_millis() as u64,
        "image job"
    );
    Ok(out)
}

fn pending_entry(p: &Planned) -> Entry {
    Entry {
        spec: p.raw.clone(),
        key: p.key.as_ref().map(|k| k.as_str().to_owned()).unwrap_or_default(),
        content_type: p.format.content_type().to_owned(),
        status: Status::Pending,
        size: None,
        width: None,
        height: None,
        error: None,
    }
}

/// `bytes` as a one-chunk body.
pub(crate) fn once(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(bytes)) }))
}

/// Reads a body of at most `max` bytes.
pub(crate) async fn collect(mut body: ByteStream, max: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > max {
            return Err(format!("more than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}
