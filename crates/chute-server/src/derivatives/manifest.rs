//! The status of one upload's derivatives, kept in the store as a small
//! JSON object at `.chute/derivatives/<upload id>.json` (the server keeps
//! no state of its own, so any instance answers the status route). The
//! manifest is written `pending` before any work starts and rewritten
//! once with every derivative's outcome. A promotion also leaves a marker,
//! `.chute/derivatives/<upload id>.promoted`, that nothing else writes.

use chute_core::ObjectKey;
use chute_store::{ObjectHeaders, PutOptions, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifests' key prefix.
pub const MANIFEST_PREFIX: &str = ".chute/derivatives/";

/// The largest manifest read back (a few derivatives take a kilobyte).
const MAX_MANIFEST: usize = 256 * 1024;

/// Where a derivative is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not made yet (queued, running, waiting for promotion, or lost with
    /// a process and to be re-queued).
    Pending,
    /// Stored at its key.
    Ready,
    /// Could not be made; `error` says why. The upload itself is intact.
    Failed,
}

/// One derivative's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The spec, as the grant named it.
    pub spec: String,
    /// The derivative's key.
    pub key: String,
    /// The derivative's media type.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Pending, ready or failed.
    pub status: Status,
    /// Size in bytes, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Width in pixels, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The derivatives of one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The upload id.
    pub upload_id: String,
    /// The key of the original the derivatives are made from (its `tmp/`
    /// key, or its final key once promoted).
    pub source: String,
    /// When the manifest was last written (Unix seconds); pending work
    /// older than `image_requeue_after_seconds` is taken up again.
    pub updated: i64,
    /// The derivatives by name.
    pub derivatives: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Whether any derivative is still pending.
    pub fn pending(&self) -> bool {
        self.derivatives.values().any(|e| e.status == Status::Pending)
    }
}

/// The manifest key of `upload_id`.
pub fn manifest_key(upload_id: &str) -> Result<ObjectKey, chute_core::KeyError> {
    ObjectKey::parse(&format!("{MANIFEST_PREFIX}{upload_id}.json"))
}

/// Reads the manifest of `upload_id`; `None` when there is none.
pub async fn read(store: &dyn Store, upload_id: &str) -> Result<Option<Manifest>, StoreError> {
    let key = manifest_key(upload_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let got = match store.get(&key, None).await {
        Ok(got) => got,
        Err(StoreError::NoSuchKey { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let bytes = super::collect(got.body, MAX_MANIFEST)
        .await
        .map_err(|e| StoreError::Corrupt(format!("derivative manifest {key}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("derivative manifest {key}: {e}")))
}

/// Writes `manifest`; with `create_only`, fails with
/// [`StoreError::PreconditionFailed`] when one exists (where the store
/// honours `If-None-Match`).
pub async fn write(store: &dyn Store, manifest: &Manifest, create_only: bool) -> Result<(), StoreError> {
    let key = manifest_key(&manifest.upload_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let body = serde_json::to_vec(manifest).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("application/json".into()),
            ..ObjectHeaders::default()
        },
        expected_len: Some(body.len() as u64),
        if_none_match: create_only,
        ..PutOptions::default()
    };
    store.put(&key, super::once(body), opts).await.map(|_| ())
}

/// The promotion marker key of `upload_id`: a small object holding the
/// key its original was promoted to. Written by the promotion alone and
/// never rewritten, so it cannot be lost to a job rewriting the manifest
/// (whose `source` is only informational); the reaper keeps the
/// derivatives of any upload that has one.
pub fn promoted_key(upload_id: &str) -> Result<ObjectKey, chute_core::KeyError> {
    ObjectKey::parse(&format!("{MANIFEST_PREFIX}{upload_id}{PROMOTED_SUFFIX}"))
}

/// The suffix of promotion markers under [`MANIFEST_PREFIX`].
pub const PROMOTED_SUFFIX: &str = ".promoted";

/// Records that `upload_id` was promoted to `target`.
pub async fn write_promoted(store: &dyn Store, upload_id: &str, target: &str) -> Result<(), StoreError> {
    let key = promoted_key(upload_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let body = target.as_bytes().to_vec();
    let opts = PutOptions {
        headers: ObjectHeaders {
            content_type: Some("text/plain".into()),
            ..ObjectHeaders::default()
        },
        expected_len: Some(body.len() as u64),
        ..PutOptions::default()
    };
    store.put(&key, super::once(body), opts).await.map(|_| ())
}

/// The key `upload_id` was promoted to; `None` when it was not.
pub async fn read_promoted(store: &dyn Store, upload_id: &str) -> Result<Option<String>, StoreError> {
    let key = promoted_key(upload_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let got = match store.get(&key, None).await {
        Ok(got) => got,
        Err(StoreError::NoSuchKey { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let bytes = super::collect(got.body, MAX_MANIFEST)
        .await
        .map_err(|e| StoreError::Corrupt(format!("promotion marker {key}: {e}")))?;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("promotion marker {key}: {e}")))
}
