//! The files of one request that are not final yet, and how they are
//! undone. A request is all-or-nothing: until every file of it is
//! stored and checked, each has a marker in the store
//! ([`recovery`](super::recovery)); on any failure, or when the request
//! is dropped (the client went away), the multipart uploads are
//! aborted, the objects deleted, the `max_files` uses given back and the
//! markers removed.

use super::recovery::Instance;
use super::{StreamState, StreamedFile};
use crate::hooks::EventKind;
use crate::lifecycle::{ApiError, Lifecycle, ServerUpload};
use chute_core::ObjectKey;
use chute_store::{PartMeta, StoreError, StoreResult};
use std::sync::Arc;
use tokio::task::JoinSet;

/// A file begun in this request.
#[derive(Debug)]
pub(super) struct PendingFile {
    /// The lifecycle's upload.
    pub upload: ServerUpload,
    /// Its multipart upload id, once created.
    pub multipart: Option<String>,
    /// Whether creating a multipart upload was asked for (its id may be
    /// unknown if the request was dropped meanwhile).
    pub multipart_asked: bool,
    /// Stored bytes, once the file is written.
    pub size: Option<u64>,
    /// The form field it came in.
    pub field: String,
    /// The name the client gave.
    pub original_name: String,
}

/// The part uploads in flight: each answers its part's metadata.
pub(super) type PartTasks = JoinSet<StoreResult<PartMeta>>;

/// The unfinished files of one request. Dropping it unfinished starts
/// the cleanup in a task of its own.
#[derive(Debug)]
pub(super) struct Pending {
    pub lifecycle: Lifecycle,
    pub stream: StreamState,
    pub files: Vec<PendingFile>,
    pub tasks: PartTasks,
    finished: bool,
}

impl Pending {
    pub fn new(lifecycle: Lifecycle, stream: StreamState) -> Self {
        Self {
            lifecycle,
            stream,
            files: Vec::new(),
            tasks: JoinSet::new(),
            finished: false,
        }
    }

    /// Records a begun upload (its marker first, so a crash from here on
    /// is cleaned up at the next start).
    pub async fn add(
        &mut self,
        upload: ServerUpload,
        field: String,
        original_name: String,
    ) -> Result<(), ApiError> {
        if let Err(e) = self.stream.instance.mark(&self.lifecycle, &upload).await {
            self.lifecycle.release_server_upload(&upload).await;
            return Err(e);
        }
        self.files.push(PendingFile {
            upload,
            multipart: None,
            multipart_asked: false,
            size: None,
            field,
            original_name,
        });
        Ok(())
    }

    /// Checks every written file and signs its receipt; then removes
    /// the markers, which makes the request final (a marker left behind
    /// would have the reaper delete a receipted file), and only then
    /// announces the files with `upload.completed`. A failed check or
    /// marker removal undoes the whole request. Runs in a task of its
    /// own, so a client going away cannot cut it in half.
    pub async fn finish(mut self) -> Result<Vec<StreamedFile>, ApiError> {
        self.finished = true;
        let files = std::mem::take(&mut self.files);
        let tasks = std::mem::take(&mut self.tasks);
        let lifecycle = self.lifecycle.clone();
        let instance = Arc::clone(&self.stream.instance);
        tokio::spawn(finish(lifecycle, instance, files, tasks))
            .await
            .unwrap_or_else(|e| Err(stopped(&e)))
    }

    /// Undoes every file of the request because of `why`, waiting for it
    /// (in a task of its own, which a client going away cannot stop).
    pub async fn undo(&mut self, why: &ApiError) {
        self.finished = true;
        let files = std::mem::take(&mut self.files);
        let tasks = std::mem::take(&mut self.tasks);
        let reason = (why.code.to_string(), why.message.clone());
        let undone = tokio::spawn(undo(
            self.lifecycle.clone(),
            Arc::clone(&self.stream.instance),
            files,
            tasks,
            reason,
        ));
        if let Err(e) = undone.await {
            tracing::warn!(error = %e, "undoing a streamed request stopped; the reaper gets the rest");
        }
    }
}

fn stopped(e: &tokio::task::JoinError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("finishing the request stopped: {e}"),
    )
}

/// [`Pending::finish`]'s work.
async fn finish(
    lifecycle: Lifecycle,
    instance: Arc<Instance>,
    files: Vec<PendingFile>,
    tasks: PartTasks,
) -> Result<Vec<StreamedFile>, ApiError> {
    let mut receipts = Vec::with_capacity(files.len());
    for file in &files {
        let size = file.size.unwrap_or(0);
        match lifecycle.check_server_upload(&file.upload, size, None).await {
            Ok(done) => receipts.push(done),
            Err(e) => {
                let reason = (e.code.to_string(), e.message.clone());
                undo(lifecycle, instance, files, tasks, reason).await;
                return Err(e);
            }
        }
    }
    // Past its expiry an upload may be undone by the reaper any time.
    if let Some(Err(e)) = files
        .iter()
        .map(|f| super::write::check_expiry(&f.upload))
        .find(Result::is_err)
    {
        let reason = (e.code.to_string(), e.message.clone());
        undo(lifecycle, instance, files, tasks, reason).await;
        return Err(e);
    }
    // The commit point: with every marker gone the files are final.
    for file in &files {
        if let Err(e) = instance.unmark(&lifecycle, &file.upload).await {
            let err = ApiError::store("finishing the streamed request", &e);
            let reason = (err.code.to_string(), err.message.clone());
            undo(lifecycle, instance, files, tasks, reason).await;
            return Err(err);
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for (file, done) in files.into_iter().zip(receipts) {
        lifecycle.announce_server_upload(&done);
        let size = file.size.unwrap_or(0);
        out.push(StreamedFile::new(file.field, file.original_name, size, done));
    }
    Ok(out)
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.finished || (self.files.is_empty() && self.tasks.is_empty()) {
            return;
        }
        let files = std::mem::take(&mut self.files);
        let tasks = std::mem::take(&mut self.tasks);
        let lifecycle = self.lifecycle.clone();
        let instance = Arc::clone(&self.stream.instance);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            tracing::debug!(files = files.len(), "stream request dropped; undoing its uploads");
            let reason = (
                "request_dropped".to_owned(),
                "the request ended before its body did (the client went away)".to_owned(),
            );
            rt.spawn(undo(lifecycle, instance, files, tasks, reason));
        }
    }
}

/// Stops the part uploads (an abort racing a part would leave the part
/// behind on S3), then removes each file's multipart upload and object,
/// gives back its `max_files` use and removes its marker.
async fn undo(
    lifecycle: Lifecycle,
    instance: Arc<Instance>,
    files: Vec<PendingFile>,
    mut tasks: PartTasks,
    (code, reason): (String, String),
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    for file in &files {
        let multipart = match (&file.multipart, file.multipart_asked) {
            (Some(id), _) => Multipart::Id(id),
            (None, true) => Multipart::Unknown,
            (None, false) => Multipart::None,
        };
        remove_upload(&lifecycle, &file.upload.key, multipart).await;
        // The slot goes back only with the marker gone: a marker left
        // behind has the reaper free the slot, and freeing it twice
        // could free another upload's.
        match instance.unmark(&lifecycle, &file.upload).await {
            Ok(()) => lifecycle.release_server_upload(&file.upload).await,
            Err(e) => tracing::warn!(key = %file.upload.key, error = %e,
                "could not remove a streamed upload's marker; the reaper frees its slot"),
        }
        lifecycle.emit(
            EventKind::Rejected,
            &file.upload.id,
            serde_json::json!({
                "key": file.upload.key.as_str(), "code": code, "reason": reason,
                "subject": file.upload.grant.subject,
            }),
        );
    }
}

/// What is known of a file's multipart upload.
#[derive(Debug, Clone, Copy)]
pub(super) enum Multipart<'a> {
    /// None was started.
    None,
    /// This one.
    Id(&'a str),
    /// One may have been: look for it under the key.
    Unknown,
}

/// Aborts the multipart upload and deletes the object at `key`. With
/// the upload id unknown (a crash, or a request dropped while the store
/// was creating it) every multipart upload of the key is aborted: the
/// key is this upload's own. Best effort: failures are logged, and the
/// reaper gets the rest after `upload_ttl`.
pub(super) async fn remove_upload(lifecycle: &Lifecycle, key: &ObjectKey, multipart: Multipart<'_>) {
    let store = lifecycle.store();
    let ids = match multipart {
        Multipart::None => Vec::new(),
        Multipart::Id(id) => vec![id.to_owned()],
        Multipart::Unknown => match store.list_multipart_uploads(key.as_str()).await {
            Ok(found) => found
                .into_iter()
                .filter(|u| u.key == *key)
                .map(|u| u.upload_id)
                .collect(),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not list a streamed upload's multipart uploads");
                Vec::new()
            }
        },
    };
    for id in ids {
        match store.abort_multipart(key, &id).await {
            Ok(()) | Err(StoreError::NoSuchUpload { .. }) => {}
            Err(e) => tracing::warn!(key = %key, error = %e, "could not abort a streamed upload"),
        }
    }
    if let Err(e) = store.delete(key).await {
        tracing::warn!(key = %key, error = %e, "could not delete a streamed object");
    }
}
