//! Appendable uploads ([`AppendableUploads`]) on the filesystem: the bytes
//! of a multipart upload go, in order, into one staging file `append` in
//! its upload directory (next to `upload.json`), and completion seals that
//! file with the object trailer and renames it into place: no part files,
//! no MD5, no join.
//!
//! - An append opens the file (creating it, then fsyncing the directory),
//!   cuts it to the offset it is given (bytes past it were never
//!   acknowledged: a crash or a failed append left them), writes the body
//!   from a blocking thread while the caller's task reads it, and
//!   `fdatasync`s before it returns the new length.
//! - Completion cuts the file to `size`, appends the trailer (metadata
//!   from `upload.json`, an opaque `<uuid>-1` ETag), fsyncs, renames it to
//!   the object path, fsyncs that directory, then removes the upload
//!   directory. Everything before the rename can be repeated: a failure
//!   leaves the file where it was, cut again by the next call.
//! - A completion cut short after the rename leaves the upload directory
//!   without its file: the next completion removes the directory and
//!   answers `NoSuchUpload`, and the caller finds the object in place.
//! - Abandoned uploads are multipart uploads like any other: aborting one
//!   (the reaper, `DELETE`) removes the directory with its file, and
//!   `FsStore::open` keeps the file as it keeps parts.

use super::file::{blocking, place, sync_dir, sync_dir_if_present, trailer, write_body};
use super::path::object_rel_path;
use super::{FsBucket, commit_error, not_found};
use crate::{AppendableUploads, ByteStream, ObjectMeta, StoreError, StoreResult};
use async_trait::async_trait;
use chute_core::ObjectKey;
use std::fs::File;
use std::io::{self, Seek as _, SeekFrom, Write as _};
use time::OffsetDateTime;

/// The staging file's name in the upload directory.
pub(crate) const APPEND_FILE: &str = "append";

fn no_such_upload(upload_id: &str) -> StoreError {
    StoreError::NoSuchUpload {
        upload_id: upload_id.to_owned(),
    }
}

#[async_trait]
impl AppendableUploads for FsBucket {
    async fn append(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        offset: u64,
        body: ByteStream,
    ) -> StoreResult<u64> {
        let (dir, upload) = self.load_upload(key, upload_id).await?;
        if upload.checksum_algorithm.is_some() {
            return Err(StoreError::Unsupported(
                "append to an upload that stores a checksum (its parts need one each)".into(),
            ));
        }
        let id = upload_id.to_owned();
        let (file, writer) = blocking(move || {
            let path = dir.join(APPEND_FILE);
            let (mut file, created) = match File::options().write(true).create_new(true).open(&path) {
                Ok(f) => (f, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    (File::options().write(true).open(&path)?, false)
                }
                Err(e) if not_found(&e) => return Err(no_such_upload(&id)),
                Err(e) => return Err(e.into()),
            };
            if created {
                sync_dir(&dir)?;
            }
            let len = file.metadata()?.len();
            if len < offset {
                return Err(StoreError::Corrupt(format!(
                    "appendable upload {id} holds {len} bytes, fewer than the {offset} acknowledged"
                )));
            }
            if len > offset {
                file.set_len(offset)?;
            }
            file.seek(SeekFrom::Start(offset))?;
            let writer = file.try_clone()?;
            Ok((file, writer))
        })
        .await?;
        let written = write_body(writer, body, |_| Ok(())).await;
        blocking(move || {
            let result = written.and_then(|n| {
                file.sync_data()?;
                Ok(offset + n)
            });
            if let Err(e) = &result
                && !matches!(e, StoreError::Body(_))
            {
                // Nothing past `offset` counts after a failed append: give
                // its space back now (a full disk frees what it took).
                let _ = file.set_len(offset);
            }
            result
        })
        .await
    }

    async fn complete_append(&self, key: &ObjectKey, upload_id: &str, size: u64) -> StoreResult<ObjectMeta> {
        let (dir, upload) = self.load_upload(key, upload_id).await?;
        let rel = object_rel_path(key)?;
        let meta = ObjectMeta {
            key: key.clone(),
            size,
            etag: format!("{}-1", uuid::Uuid::new_v4().simple()),
            last_modified: OffsetDateTime::now_utc(),
            headers: upload.headers,
            metadata: upload.metadata,
            checksum: None,
            parts_count: Some(1),
        };
        let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        let base = self.objects.clone();
        let bucket = self.name.clone();
        let id = upload_id.to_owned();
        let upload_dir = dir.clone();
        let placed = blocking(move || {
            let path = dir.join(APPEND_FILE);
            let mut file = match File::options().write(true).open(&path) {
                Ok(f) => f,
                // Nothing was ever appended to an empty upload.
                Err(e) if not_found(&e) && size == 0 => {
                    let f = File::options().write(true).create_new(true).open(&path)?;
                    sync_dir(&dir)?;
                    f
                }
                // Renamed into place by a completion cut short.
                Err(e) if not_found(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            let len = file.metadata()?.len();
            if len < size {
                return Err(StoreError::Corrupt(format!(
                    "appendable upload {id} holds {len} bytes, fewer than the {size} to complete"
                )));
            }
            file.set_len(size)?;
            file.seek(SeekFrom::Start(size))?;
            file.write_all(&trailer(&json, size))?;
            file.sync_all()?;
            drop(file);
            let dest = base.join(&rel);
            place(&base, &rel, || std::fs::rename(&path, &dest)).map_err(|e| commit_error(e, &bucket))?;
            sync_dir_if_present(dest.parent().unwrap_or(&base))?;
            Ok(true)
        })
        .await?;
        blocking(self.remove_upload_dir(upload_dir)).await?;
        if placed {
            Ok(meta)
        } else {
            Err(no_such_upload(upload_id))
        }
    }
}
