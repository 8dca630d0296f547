//! Crash recovery for streamed uploads.
//!
//! A process killed mid-request cannot abort its multipart uploads or
//! delete the files its form had already stored. So while a request runs,
//! each of its files has a marker object
//! `.chute/streams/<instance>/<upload id>` holding the
//! upload's id, key and `max_files` slot, removed once the request is
//! final or undone.
//!
//! `<instance>` names the process: an id kept in
//! `<data_dir>/stream-instance`, which the process holds an exclusive
//! file lock on while it runs. A process that gets the lock knows the
//! last holder is dead, so at start ([`Instance::recover`]) it undoes
//! every upload marked under its id: aborts the multipart uploads under
//! the key, deletes the object, frees the slot, drops the marker. The
//! same pass, and one with every reaper pass ([`Instance::reap_stale`]),
//! undo markers of any instance older than `upload_ttl` plus an hour
//! (a request stops at its upload's expiry with 408; an instance
//! that never came back). A second process sharing the
//! data directory finds the lock taken and runs under a fresh random id,
//! so it never touches a live process's uploads; its own crash is then
//! left to the reaper (`upload_ttl`).

use super::pending::{Multipart, remove_upload};
use crate::lifecycle::{ApiError, Lifecycle, STATE_PREFIX, ServerUpload};
use chute_core::ObjectKey;
use chute_store::{ListOptions, PutOptions, StoreError};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use std::path::Path;
use time::OffsetDateTime;

/// Where the markers live, below [`STATE_PREFIX`].
const MARKERS: &str = "streams/";
/// The file in the data directory naming this process's instance.
const INSTANCE_FILE: &str = "stream-instance";
/// How much longer than `upload_ttl` a marker must be left before
/// another instance's reaper undoes it.
const REAP_MARGIN: std::time::Duration = std::time::Duration::from_secs(3600);
/// The largest marker read back: a few hundred bytes now; markers of
/// earlier versions held the whole [`ServerUpload`], grant (up to 64 KiB)
/// included.
const MAX_MARKER: usize = 256 * 1024;

/// This process, as named in markers.
#[derive(Debug)]
pub struct Instance {
    id: String,
    /// Held for the process's life: the lock says "this id is alive".
    _lock: Option<std::fs::File>,
}

impl Default for Instance {
    /// A fresh id that no other process uses and nobody recovers.
    fn default() -> Self {
        Self {
            id: random_id(),
            _lock: None,
        }
    }
}

fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Instance {
    /// The instance kept in `data_dir`, locked; a fresh one when another
    /// live process holds it or the directory cannot be used (logged).
    pub fn open(data_dir: &Path) -> Self {
        match Self::try_open(data_dir) {
            Ok(Some(instance)) => instance,
            Ok(None) => {
                tracing::info!(
                    "another chute process holds {}; streamed uploads of this one are not recovered \
                     at start after a crash, only reaped after upload_ttl",
                    data_dir.join(INSTANCE_FILE).display()
                );
                Self::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %data_dir.display(),
                    "cannot keep a stream instance id; crashed streamed uploads are only reaped after upload_ttl");
                Self::default()
            }
        }
    }

    fn try_open(data_dir: &Path) -> std::io::Result<Option<Self>> {
        use std::io::{Read as _, Seek as _, Write as _};
        std::fs::create_dir_all(data_dir)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(data_dir.join(INSTANCE_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut id = String::new();
        file.read_to_string(&mut id)?;
        let id = id.trim().to_owned();
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let id = if valid {
            id
        } else {
            let id = random_id();
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(id.as_bytes())?;
            file.sync_all()?;
            id
        };
        Ok(Some(Self {
            id,
            _lock: Some(file),
        }))
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn marker(&self, upload: &ServerUpload) -> Result<ObjectKey, ApiError> {
        ObjectKey::parse(&format!("{STATE_PREFIX}{MARKERS}{}/{}", self.id, upload.id))
            .map_err(|e| ApiError::bad_request("bad_key", e.to_string()))
    }

    /// Stores the marker of `upload`.
    pub(super) async fn mark(&self, lifecycle: &Lifecycle, upload: &ServerUpload) -> Result<(), ApiError> {
        let key = self.marker(upload)?;
        let body = marker_body(upload)?;
        let stream = futures::stream::iter([Ok(bytes::Bytes::from(body))]).boxed();
        lifecycle
            .store()
            .put(&key, stream, PutOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| ApiError::store("recording a streamed upload", &e))
    }

    /// Removes the marker of `upload`.
    pub(super) async fn unmark(
        &self,
        lifecycle: &Lifecycle,
        upload: &ServerUpload,
    ) -> Result<(), StoreError> {
        match self.marker(upload) {
            Ok(key) => lifecycle.store().delete(&key).await,
            Err(_) => Ok(()),
        }
    }

    /// Undoes the uploads a dead process left: every marker under this
    /// instance's id (when it holds the lock), and every marker older than
    /// `upload_ttl`. Returns how many uploads were undone.
    pub async fn recover(&self, lifecycle: &Lifecycle) -> Result<usize, StoreError> {
        self.undo_markers(lifecycle, true).await
    }

    /// Undoes the uploads of markers older than `upload_ttl`, whoever
    /// left them (an instance that never came back): run with each
    /// reaper pass.
    pub async fn reap_stale(&self, lifecycle: &Lifecycle) -> Result<usize, StoreError> {
        self.undo_markers(lifecycle, false).await
    }

    async fn undo_markers(&self, lifecycle: &Lifecycle, own_too: bool) -> Result<usize, StoreError> {
        let ttl = lifecycle.settings().upload_ttl;
        // A live request stops at its expiry (at most upload_ttl after it
        // began) but may still be finishing: leave it a margin.
        let stale_before = OffsetDateTime::now_utc() - ttl - REAP_MARGIN;
        let own = format!("{STATE_PREFIX}{MARKERS}{}/", self.id);
        let mut undone = 0;
        let mut opts = ListOptions {
            prefix: format!("{STATE_PREFIX}{MARKERS}"),
            max_keys: 1000,
            ..ListOptions::default()
        };
        loop {
            let page = lifecycle.store().list(&opts).await?;
            for marker in &page.objects {
                let mine = own_too && self._lock.is_some() && marker.key.as_str().starts_with(&own);
                if mine || marker.last_modified < stale_before {
                    undo_marked(lifecycle, &marker.key).await?;
                    undone += 1;
                }
            }
            match page.next_start_after {
                Some(after) => opts.start_after = Some(after),
                None => break,
            }
        }
        Ok(undone)
    }
}

/// What a marker holds: what undoing the upload needs, and no more (the
/// grant, up to 64 KiB, would not fit [`MAX_MARKER`]). Markers that hold a
/// whole [`ServerUpload`] read as this too.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    id: String,
    key: ObjectKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slot: Option<ObjectKey>,
}

/// The body of `upload`'s marker.
fn marker_body(upload: &ServerUpload) -> Result<Vec<u8>, ApiError> {
    let marker = Marker {
        id: upload.id.clone(),
        key: upload.key.clone(),
        slot: upload.slot.clone(),
    };
    serde_json::to_vec(&marker).map_err(|e| ApiError::bad_request("bad_upload", e.to_string()))
}

/// Undoes the upload a marker names, then removes the marker.
async fn undo_marked(lifecycle: &Lifecycle, marker: &ObjectKey) -> Result<(), StoreError> {
    let store = lifecycle.store();
    let body = match store.get(marker, None).await {
        Ok(got) => {
            got.body
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    if acc.len() + chunk.len() <= MAX_MARKER {
                        acc.extend_from_slice(&chunk);
                    }
                    Ok(acc)
                })
                .await?
        }
        Err(StoreError::NoSuchKey { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<Marker>(&body) {
        Ok(marked) => {
            remove_upload(lifecycle, &marked.key, Multipart::Unknown).await;
            lifecycle.release_server_slot(marked.slot.as_ref()).await;
            tracing::info!(key = %marked.key, id = %marked.id, "undid a streamed upload a stopped process left");
        }
        Err(e) => tracing::warn!(key = %marker, error = %e, "unreadable streamed upload marker; removing it"),
    }
    store.delete(marker).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_kept_and_held_by_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = Instance::open(dir.path());
        assert!(first._lock.is_some());
        let second = Instance::open(dir.path());
        assert!(second._lock.is_none(), "the id is held");
        assert_ne!(first.id(), second.id());
        let id = first.id().to_owned();
        drop(first);
        let again = Instance::open(dir.path());
        assert_eq!(again.id(), id, "the id outlives its process");
        assert!(again._lock.is_some());
    }

    #[test]
    fn a_marker_holds_only_what_undoing_needs() {
        let mut grant = chute_core::Grant::default();
        grant.metadata.insert("big".into(), "m".repeat(60 * 1024));
        let upload = ServerUpload {
            id: "u1".into(),
            key: ObjectKey::parse("tmp/u1/a.bin").unwrap(),
            filename: "a.bin".into(),
            content_type: "application/octet-stream".into(),
            size: None,
            grant,
            expires_at: 0,
            slot: Some(ObjectKey::parse(".chute/grants/ab/1").unwrap()),
        };
        let body = marker_body(&upload).unwrap();
        assert!(body.len() < 1024, "{} bytes", body.len());
        let back: Marker = serde_json::from_slice(&body).unwrap();
        assert_eq!((back.key, back.slot), (upload.key.clone(), upload.slot.clone()));
        // An older marker, holding the whole upload, still reads.
        let old = serde_json::to_vec(&upload).unwrap();
        assert_eq!(serde_json::from_slice::<Marker>(&old).unwrap().id, "u1");
    }
}
