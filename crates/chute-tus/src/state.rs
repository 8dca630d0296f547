//! An upload's state, kept in the store itself so any instance can carry
//! on after a restart (no database):
//!
//! | object | written | holds |
//! |---|---|---|
//! | `.chute/tus/<id>/info` | once, at creation | [`UploadInfo`]: target key, length or deferred, metadata, multipart upload id, part plan, concatenation role, the server's ticket |
//! | `.chute/tus/<id>/length` | once, when a deferred length is declared | the length in decimal |
//! | `.chute/tus/<id>/tail` | at every commit | metadata `parts=N` (committed multipart parts) and, as its body, the bytes after them (less than one part); or, for an upload stored in place, `appended=N` and no body |
//! | `.chute/tus/<id>/done` | once, on completion | the server's completion document (the receipt) |
//! | `.chute/tus/<id>/lock/<nonce>` | by each writer, renewed while it writes | nothing: the store lease of [`crate::lease`] |
//!
//! The offset is `plan.bytes_in(N) + tail length`. Parts numbered above N
//! are leftovers of an interrupted PATCH; they are overwritten by later
//! ones and never named on completion.
//!
//! Over a store with [`AppendableUploads`](chute_store::AppendableUploads)
//! (the fs store) an upload is stored in place instead: its bytes are
//! appended to the store's staging file for the multipart upload, the
//! tail records `appended=N` (the durable length the last append
//! returned) and the offset is N; bytes the store holds past N are cut
//! by the next append. An upload with nothing committed yet (no parts,
//! no tail bytes) takes whichever way its store offers, so uploads begun
//! in parts carry on in parts.

use crate::plan::PartPlan;
use bytes::Bytes;
use chute_core::ObjectKey;
use chute_store::{AppendableUploads, ByteStream, MultipartStore, PutOptions, StoreError, StoreResult};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where the state of every tus upload lives.
pub const STATE_PREFIX: &str = ".chute/tus/";

/// The most bytes of `info`, `length` and `done` read back (they are
/// small JSON documents Chute wrote itself).
const MAX_STATE_DOC: usize = 1024 * 1024;

/// What role an upload plays in the concatenation extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcatRole {
    /// A partial upload, joined later by a final one; it gets no receipt.
    Partial,
    /// A final upload joining these partial uploads, in order.
    Final(Vec<String>),
}

/// What is fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    /// The upload id (the last segment of its URL).
    pub id: String,
    /// The key the bytes complete to.
    pub key: ObjectKey,
    /// The media type the object gets.
    pub content_type: String,
    /// `Upload-Length`, unless deferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// `Upload-Metadata` as received (re-encoded), echoed by HEAD.
    #[serde(default)]
    pub metadata: String,
    /// The multipart upload the parts go to.
    pub multipart: String,
    /// How the bytes are cut into parts.
    pub plan: PartPlan,
    /// The concatenation role, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<ConcatRole>,
    /// When the upload expires (Unix seconds).
    pub expires_at: i64,
    /// The server's own description of the upload (grant, key, ...),
    /// opaque to this crate.
    pub ticket: serde_json::Value,
}

/// The committed progress of an unfinished upload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Committed multipart parts, `1..=parts`, each of its planned size.
    pub parts: u32,
    /// The bytes after them.
    pub tail: Bytes,
    /// The bytes appended in place (stored in place: no parts, no tail).
    pub appended: u64,
    /// The length, once known (given at creation or declared later).
    pub length: Option<u64>,
}

impl Progress {
    /// The upload offset under `plan`.
    pub fn offset(&self, plan: &PartPlan) -> u64 {
        plan.bytes_in(self.parts)
            .saturating_add(self.tail.len() as u64)
            .saturating_add(self.appended)
    }

    /// Whether nothing is committed in parts (so the upload may be, or
    /// is, stored in place).
    pub(crate) fn partless(&self) -> bool {
        self.parts == 0 && self.tail.is_empty()
    }
}

/// An upload as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still receiving bytes.
    Open(Progress),
    /// Complete; the server's completion document.
    Done(serde_json::Value),
}

/// Where an unfinished upload stands, from metadata alone (no tail body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Committed multipart parts.
    pub parts: u32,
    /// The length of the tail after them.
    pub tail_len: u64,
    /// The bytes appended in place.
    pub appended: u64,
    /// The length, once known.
    pub length: Option<u64>,
}

impl Position {
    /// The upload offset under `plan`.
    pub fn offset(&self, plan: &PartPlan) -> u64 {
        plan.bytes_in(self.parts)
            .saturating_add(self.tail_len)
            .saturating_add(self.appended)
    }
}

/// An upload as the store holds it, read cheaply (for HEAD and the
/// reaper, without the lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// Still receiving bytes.
    Open(Position),
    /// Complete; the server's completion document.
    Done(serde_json::Value),
}

/// The tus upload state over one store.
#[derive(Debug, Clone)]
pub struct TusStore {
    store: Arc<dyn MultipartStore>,
}

fn state_key(id: &str, name: &str) -> StoreResult<ObjectKey> {
    ObjectKey::parse(&format!("{STATE_PREFIX}{id}/{name}"))
        .map_err(|e| StoreError::Corrupt(format!("tus state key for {id:?}: {e}")))
}

/// The committed part count a tail's metadata records.
fn part_count(info: &UploadInfo, meta: &chute_store::ObjectMeta) -> StoreResult<u32> {
    meta.metadata
        .get("parts")
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("tus tail of {} has no part count", info.id)))
}

/// The bytes a tail's metadata records as appended in place (0 for an
/// upload in parts).
fn appended(info: &UploadInfo, meta: &chute_store::ObjectMeta) -> StoreResult<u64> {
    match meta.metadata.get("appended") {
        None => Ok(0),
        Some(n) => n
            .parse::<u64>()
            .map_err(|_| StoreError::Corrupt(format!("tus tail of {} has a bad appended count", info.id))),
    }
}

/// A body of one chunk.
pub fn once(bytes: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(bytes) }).boxed()
}

impl TusStore {
    /// Keeps tus state in `store`.
    pub fn new(store: Arc<dyn MultipartStore>) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MultipartStore> {
        &self.store
    }

    async fn read_small(&self, key: &ObjectKey) -> StoreResult<Option<(Bytes, chute_store::ObjectMeta)>> {
        let got = match self.store.get(key, None).await {
            Ok(got) => got,
            Err(StoreError::NoSuchKey { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = got.meta;
        let mut body = got.body;
        let mut buf = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(StoreError::Io)? {
            buf.extend_from_slice(&chunk);
        }
        Ok(Some((Bytes::from(buf), meta)))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, key: &ObjectKey) -> StoreResult<Option<T>> {
        match self.read_small(key).await? {
            Some((bytes, _)) if bytes.len() <= MAX_STATE_DOC => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}"))),
            Some(_) => Err(StoreError::Corrupt(format!("{key} is too large"))),
            None => Ok(None),
        }
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes, opts: PutOptions) -> StoreResult<()> {
        self.store.put(key, once(bytes), opts).await.map(|_| ())
    }

    /// Starts an upload: opens its multipart upload and writes its info.
    /// `info.multipart` is filled in here.
    pub async fn create(&self, mut info: UploadInfo) -> StoreResult<UploadInfo> {
        let opts = PutOptions {
            headers: chute_store::ObjectHeaders {
                content_type: Some(info.content_type.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mpu = self.store.create_multipart(&info.key, opts).await?;
        info.multipart = mpu.upload_id;
        let json = serde_json::to_vec(&info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Err(e) = self
            .put_bytes(&state_key(&info.id, "info")?, json.into(), PutOptions::default())
            .await
        {
            let _ = self.store.abort_multipart(&info.key, &info.multipart).await;
            return Err(e);
        }
        Ok(info)
    }

    /// Writes `info` again (its ticket changed; nothing else may).
    pub async fn rewrite_info(&self, info: &UploadInfo) -> StoreResult<()> {
        let json = serde_json::to_vec(info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_bytes(&state_key(&info.id, "info")?, json.into(), PutOptions::default())
            .await
    }

    /// The info of upload `id`, if it exists.
    pub async fn info(&self, id: &str) -> StoreResult<Option<UploadInfo>> {
        if !crate::headers::is_upload_id(id) {
            return Ok(None);
        }
        self.read_json(&state_key(id, "info")?).await
    }

    /// Where upload `info` stands, from `done`, the tail's metadata (a
    /// HEAD, not its body) and the length: a few small requests, whatever
    /// the tail holds.
    pub async fn peek(&self, info: &UploadInfo) -> StoreResult<Peek> {
        if let Some(done) = self.read_json(&state_key(&info.id, "done")?).await? {
            return Ok(Peek::Done(done));
        }
        let (parts, tail_len, appended) = match self.store.head(&state_key(&info.id, "tail")?).await {
            Ok(meta) => (part_count(info, &meta)?, meta.size, appended(info, &meta)?),
            Err(StoreError::NoSuchKey { .. }) => (0, 0, 0),
            Err(e) => return Err(e),
        };
        Ok(Peek::Open(Position {
            parts,
            tail_len,
            appended,
            length: self.length(info).await?,
        }))
    }

    /// Where upload `info` stands, with the tail's bytes (up to a part):
    /// for a writer holding the upload's lock.
    pub async fn status(&self, info: &UploadInfo) -> StoreResult<Status> {
        if let Some(done) = self.read_json(&state_key(&info.id, "done")?).await? {
            return Ok(Status::Done(done));
        }
        let (parts, tail, appended) = match self.read_small(&state_key(&info.id, "tail")?).await? {
            Some((tail, meta)) => (part_count(info, &meta)?, tail, appended(info, &meta)?),
            None => (0, Bytes::new(), 0),
        };
        let length = self.length(info).await?;
        Ok(Status::Open(Progress {
            parts,
            tail,
            appended,
            length,
        }))
    }

    /// The length of `info`: given at creation or declared since.
    async fn length(&self, info: &UploadInfo) -> StoreResult<Option<u64>> {
        Ok(match info.length {
            Some(len) => Some(len),
            None => match self.read_small(&state_key(&info.id, "length")?).await? {
                Some((bytes, _)) => Some(
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| StoreError::Corrupt(format!("tus length of {}", info.id)))?,
                ),
                None => None,
            },
        })
    }

    /// Records a deferred length.
    pub async fn set_length(&self, info: &UploadInfo, length: u64) -> StoreResult<()> {
        self.put_bytes(
            &state_key(&info.id, "length")?,
            Bytes::from(length.to_string()),
            PutOptions::default(),
        )
        .await
    }

    /// The commit point: `parts` committed parts and `tail` after them.
    pub async fn commit(&self, info: &UploadInfo, parts: u32, tail: Bytes) -> StoreResult<()> {
        let mut opts = PutOptions::default();
        opts.metadata.insert("parts".into(), parts.to_string());
        self.put_bytes(&state_key(&info.id, "tail")?, tail, opts).await
    }

    /// The commit point of an upload stored in place: `appended` durable
    /// bytes.
    pub(crate) async fn commit_appended(&self, info: &UploadInfo, appended: u64) -> StoreResult<()> {
        let mut opts = PutOptions::default();
        opts.metadata.insert("parts".into(), "0".into());
        opts.metadata.insert("appended".into(), appended.to_string());
        self.put_bytes(&state_key(&info.id, "tail")?, Bytes::new(), opts)
            .await
    }

    /// How an upload at `progress` stores its bytes: `Some` in place (it
    /// has nothing in parts and the store can append), `None` in parts.
    /// An upload begun in place over a store that cannot append (its
    /// backend changed under it) is an error: its bytes are not here.
    pub(crate) fn appendable_for(
        &self,
        info: &UploadInfo,
        progress: &Progress,
    ) -> StoreResult<Option<&dyn AppendableUploads>> {
        match self.store.appendable() {
            Some(app) if progress.partless() => Ok(Some(app)),
            _ if progress.appended > 0 => Err(StoreError::Corrupt(format!(
                "tus upload {} is stored in place, but this store cannot append: it was begun on \
                 another storage backend; start the upload again",
                info.id
            ))),
            _ => Ok(None),
        }
    }

    /// Joins the committed parts and the tail into the object at
    /// `info.key` (or, stored in place, renames the appended bytes into
    /// place). Safe to call again after a crash: when the multipart
    /// upload is gone and the object has the expected size, that is it.
    pub async fn assemble(&self, info: &UploadInfo, progress: &Progress) -> StoreResult<u64> {
        let size = progress.offset(&info.plan);
        let result = match self.appendable_for(info, progress) {
            Ok(Some(app)) => app
                .complete_append(&info.key, &info.multipart, size)
                .await
                .map(|_| ()),
            Ok(None) => self.join(info, progress).await,
            Err(e) => Err(e),
        };
        match result {
            Err(StoreError::NoSuchUpload { .. }) => match self.store.head(&info.key).await {
                Ok(meta) if meta.size == size => Ok(size),
                Ok(_) | Err(StoreError::NoSuchKey { .. }) => Err(StoreError::Corrupt(format!(
                    "tus upload {}: the multipart upload is gone and no object of {size} bytes is there",
                    info.id
                ))),
                Err(e) => Err(e),
            },
            other => other.map(|()| size),
        }
    }

    async fn join(&self, info: &UploadInfo, progress: &Progress) -> StoreResult<()> {
        let opts = PutOptions {
            headers: chute_store::ObjectHeaders {
                content_type: Some(info.content_type.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        if progress.parts == 0 {
            // Too small for multipart: one plain put of the tail, which
            // holds every byte, and the multipart upload is dropped. The put
            // does not need the multipart upload: Garage 2.5 drops it when
            // a put to the same key is cut off (an instance killed while
            // completing), and the upload must still complete.
            self.put_bytes(&info.key, progress.tail.clone(), opts).await?;
            return match self.store.abort_multipart(&info.key, &info.multipart).await {
                Ok(()) | Err(StoreError::NoSuchUpload { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        }
        let mut count = progress.parts;
        if !progress.tail.is_empty() {
            count += 1;
            let len = progress.tail.len() as u64;
            self.store
                .upload_part(
                    &info.key,
                    &info.multipart,
                    count,
                    once(progress.tail.clone()),
                    chute_store::PartOptions {
                        expected_len: Some(len),
                        ..Default::default()
                    },
                )
                .await?;
        }
        let stored = self.store.list_parts(&info.key, &info.multipart).await?;
        let parts: Vec<chute_store::CompletedPart> = (1..=count)
            .map(|n| {
                stored
                    .iter()
                    .find(|p| p.part_number == n)
                    .map(|p| chute_store::CompletedPart {
                        part_number: n,
                        etag: p.etag.clone(),
                    })
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("tus upload {}: part {n} is missing", info.id))
                    })
            })
            .collect::<StoreResult<_>>()?;
        self.store
            .complete_multipart(&info.key, &info.multipart, &parts)
            .await
            .map(|_| ())
    }

    /// Marks the upload done with the server's completion document and
    /// drops the tail and length.
    pub async fn mark_done(&self, info: &UploadInfo, done: &serde_json::Value) -> StoreResult<()> {
        let json = serde_json::to_vec(done).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_bytes(&state_key(&info.id, "done")?, json.into(), PutOptions::default())
            .await?;
        for name in ["tail", "length"] {
            self.store.delete(&state_key(&info.id, name)?).await?;
        }
        Ok(())
    }

    /// Removes everything of the upload: its multipart upload, its object
    /// (unless `keep_object`) and its state. Without `keep_object` info
    /// goes last, so a crash halfway leaves it findable for the next
    /// attempt; with it, info goes before `done`. Lock markers go after
    /// (a writer still holding one would find the upload gone; markers
    /// left by a removal cut short are stray state the reaper removes).
    pub async fn remove(&self, info: &UploadInfo, keep_object: bool) -> StoreResult<()> {
        match self.store.abort_multipart(&info.key, &info.multipart).await {
            Ok(()) | Err(StoreError::NoSuchUpload { .. }) => {}
            Err(e) => return Err(e),
        }
        if !keep_object {
            self.store.delete(&info.key).await?;
        }
        // Keeping the object (it completed): info before done, so a
        // removal cut short never looks like an unfinished upload whose
        // object may go; the stray `done` is the reaper's.
        let order = if keep_object {
            ["tail", "length", "info", "done"]
        } else {
            ["tail", "length", "done", "info"]
        };
        for name in order {
            self.store.delete(&state_key(&info.id, name)?).await?;
        }
        let locks = self
            .store
            .list(&chute_store::ListOptions {
                prefix: crate::lease::lock_dir(&info.id),
                delimiter: None,
                start_after: None,
                max_keys: crate::lease::LIST_MAX,
            })
            .await?;
        for marker in &locks.objects {
            self.store.delete(&marker.key).await?;
        }
        Ok(())
    }

    /// The ids of all uploads with state, page by page (`after` is the
    /// last id of the previous page).
    pub async fn list_ids(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        let page = self
            .store
            .list(&chute_store::ListOptions {
                prefix: STATE_PREFIX.into(),
                delimiter: Some("/".into()),
                start_after: after.map(|a| format!("{STATE_PREFIX}{a}/")),
                max_keys: max,
            })
            .await?;
        let ids: Vec<String> = page
            .common_prefixes
            .iter()
            .filter_map(|p| p.strip_prefix(STATE_PREFIX)?.strip_suffix('/'))
            .map(str::to_owned)
            .collect();
        let next = page
            .next_start_after
            .as_deref()
            .and_then(|n| n.strip_prefix(STATE_PREFIX))
            .map(|n| n.trim_end_matches('/').to_owned());
        Ok((ids, next))
    }
}
