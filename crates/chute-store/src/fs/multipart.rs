//! Multipart uploads: one directory per upload under `uploads/`, holding
//! `upload.json` and the parts (`part-00001`, in the object file format
//! with a [`PartMeta`] trailer). Completion joins the parts into one temp
//! file (file-to-file copies, so `copy_file_range` where the kernel has
//! it), commits it like a put, and only then removes the upload.

use super::append::APPEND_FILE;
use super::file::{TempFile, blocking, open_with_meta, stream_to_temp, sync_dir, write_atomic};
use super::path::object_rel_path;
use super::{FsBucket, not_found};
use crate::expect::{algorithms, stored_checksum, verify};
use crate::{
    ByteStream, CompletedPart, MAX_PART_NUMBER, MIN_PART_SIZE, MultipartStore, MultipartUpload,
    ObjectHeaders, ObjectMeta, PartMeta, PartOptions, PutOptions, StoreError, StoreResult,
};
use async_trait::async_trait;
use chute_core::checksum::multipart_etag;
use chute_core::{Checksum, ChecksumAlgorithm, ObjectKey};
use std::collections::BTreeMap;
use std::io::{self, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

pub(super) const UPLOAD_FILE: &str = "upload.json";

/// What `upload.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct UploadFile {
    key: ObjectKey,
    upload_id: String,
    #[serde(with = "time::serde::rfc3339")]
    initiated: OffsetDateTime,
    #[serde(default)]
    pub(super) headers: ObjectHeaders,
    #[serde(default)]
    pub(super) metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) checksum_algorithm: Option<ChecksumAlgorithm>,
}

impl UploadFile {
    fn public(&self) -> MultipartUpload {
        MultipartUpload {
            key: self.key.clone(),
            upload_id: self.upload_id.clone(),
            initiated: self.initiated,
        }
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn part_name(n: u32) -> String {
    format!("part-{n:05}")
}

fn parse_part_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("part-")?;
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=MAX_PART_NUMBER).contains(n))
}

fn strip_quotes(etag: &str) -> &str {
    let t = etag.trim();
    t.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(t)
}

/// Removes what a crash may leave under `uploads/` (blocking): upload
/// directories without `upload.json` and anything in an upload directory
/// that is neither `upload.json`, a part nor the staging file of an
/// appendable upload (which is live data, kept like a part).
pub(crate) fn clean_uploads(uploads: &Path) -> io::Result<()> {
    let read = match std::fs::read_dir(uploads) {
        Ok(r) => r,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in read {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let is_upload = name.to_str().is_some_and(valid_id) && entry.file_type()?.is_dir();
        if !is_upload || !path.join(UPLOAD_FILE).is_file() {
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
            continue;
        }
        for inner in std::fs::read_dir(&path)? {
            let inner = inner?;
            let n = inner.file_name();
            let keep = n
                .to_str()
                .is_some_and(|n| n == UPLOAD_FILE || n == APPEND_FILE || parse_part_name(n).is_some())
                && inner.file_type()?.is_file();
            if !keep {
                if inner.file_type()?.is_dir() {
                    std::fs::remove_dir_all(inner.path())?;
                } else {
                    std::fs::remove_file(inner.path())?;
                }
            }
        }
    }
    Ok(())
}

impl FsBucket {
    pub(super) fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.uploads.join(upload_id)
    }

    /// Reads the upload's state; `NoSuchUpload` unless it exists for `key`.
    pub(super) async fn load_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> StoreResult<(PathBuf, UploadFile)> {
        let missing = || StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        };
        if !valid_id(upload_id) {
            return Err(missing());
        }
        let dir = self.upload_dir(upload_id);
        let bytes = match tokio::fs::read(dir.join(UPLOAD_FILE)).await {
            Ok(b) => b,
            Err(e) if not_found(&e) => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        let upload: UploadFile = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("upload {upload_id}: {e}")))?;
        if &upload.key != key {
            return Err(missing());
        }
        Ok((dir, upload))
    }

    /// Removes an upload directory: rename into tmp, then delete (blocking).
    pub(super) fn remove_upload_dir(
        &self,
        dir: PathBuf,
    ) -> impl FnOnce() -> StoreResult<()> + Send + 'static {
        let doomed = self
            .inner
            .tmp
            .join(format!("{}.deleted", uuid::Uuid::new_v4().simple()));
        move || {
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => {}
                Err(e) if not_found(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            std::fs::remove_dir_all(&doomed)?;
            Ok(())
        }
    }
}

#[async_trait]
impl MultipartStore for FsBucket {
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload> {
        object_rel_path(key)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let upload = UploadFile {
            key: key.clone(),
            upload_id: upload_id.clone(),
            initiated: OffsetDateTime::now_utc(),
            headers: opts.headers,
            metadata: opts.metadata,
            checksum_algorithm: opts
                .checksum_algorithm
                .or(opts.expected_checksum.map(|c| c.algorithm)),
        };
        let json = serde_json::to_vec(&upload).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        let tmp = self.inner.tmp.clone();
        let dest = self.upload_dir(&upload_id);
        let bucket = self.name.to_string();
        blocking(move || {
            let staging = tmp.join(format!("{}.upload", uuid::Uuid::new_v4().simple()));
            let result = (|| -> io::Result<()> {
                std::fs::create_dir(&staging)?;
                write_atomic(&tmp, &staging.join(UPLOAD_FILE), &json)?;
                std::fs::rename(&staging, &dest)?;
                sync_dir(dest.parent().unwrap_or(&dest))
            })();
            result.map_err(|e| {
                let _ = std::fs::remove_dir_all(&staging);
                if not_found(&e) {
                    StoreError::NoSuchBucket { bucket }
                } else {
                    StoreError::Io(e)
                }
            })
        })
        .await?;
        Ok(upload.public())
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(StoreError::InvalidPartNumber(part_number));
        }
        let (dir, upload) = self.load_upload(key, upload_id).await?;
        let algs = algorithms(opts.expected_checksum.as_ref(), upload.checksum_algorithm);
        let streamed = stream_to_temp(&self.inner.tmp, body, &algs, opts.expected_len).await?;
        let hash = &streamed.hash;
        verify(
            hash,
            opts.expected_len,
            opts.expected_md5,
            opts.expected_checksum.as_ref(),
        )?;
        let meta = PartMeta {
            part_number,
            size: hash.len,
            etag: hex::encode(hash.md5),
            last_modified: OffsetDateTime::now_utc(),
            checksum: stored_checksum(
                hash,
                upload.checksum_algorithm,
                opts.expected_checksum.as_ref().map(|c| c.algorithm),
            ),
        };
        let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        let mut tmp = streamed.tmp;
        let id = upload_id.to_owned();
        blocking(move || {
            tmp.seal(&json)?;
            tmp.commit(&dir, Path::new(&part_name(part_number))).map_err(|e| {
                if not_found(&e) {
                    StoreError::NoSuchUpload { upload_id: id }
                } else {
                    StoreError::Io(e)
                }
            })
        })
        .await?;
        Ok(meta)
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        let (dir, _) = self.load_upload(key, upload_id).await?;
        blocking(move || {
            let mut parts = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_name().to_str().and_then(parse_part_name).is_none() {
                    continue;
                }
                match open_with_meta::<PartMeta>(&entry.path()) {
                    Ok((_, _, meta)) => parts.push(meta),
                    Err(StoreError::Io(e)) if not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            parts.sort_by_key(|p| p.part_number);
            Ok(parts)
        })
        .await
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        let (dir, upload) = self.load_upload(key, upload_id).await?;
        let rel = object_rel_path(key)?;
        if parts.is_empty() {
            return Err(StoreError::InvalidPart { part_number: 0 });
        }
        if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
            return Err(StoreError::InvalidPartOrder);
        }
        let wanted: Vec<CompletedPart> = parts.to_vec();
        let tmp_dir = self.inner.tmp.clone();
        let algorithm = upload.checksum_algorithm;
        let (tmp, size, md5s, checksums) = blocking(move || {
            let part_path = |n: u32| dir.join(part_name(n));
            let check = |p: &CompletedPart, meta: &PartMeta| {
                if meta.part_number != p.part_number
                    || !strip_quotes(&p.etag).eq_ignore_ascii_case(&meta.etag)
                {
                    return Err(StoreError::InvalidPart {
                        part_number: p.part_number,
                    });
                }
                Ok(())
            };
            let open = |p: &CompletedPart| match open_with_meta::<PartMeta>(&part_path(p.part_number)) {
                Err(StoreError::Io(e)) if not_found(&e) => Err(StoreError::InvalidPart {
                    part_number: p.part_number,
                }),
                other => other,
            };
            // First pass: every part exists, matches and is large enough.
            let mut sizes = Vec::with_capacity(wanted.len());
            for p in &wanted {
                let (_, _, meta) = open(p)?;
                check(p, &meta)?;
                sizes.push(meta.size);
            }
            let last = wanted.len() - 1;
            if let Some((p, &size)) = wanted[..last]
                .iter()
                .zip(&sizes)
                .find(|(_, s)| **s < MIN_PART_SIZE)
            {
                return Err(StoreError::PartTooSmall {
                    part_number: p.part_number,
                    size,
                });
            }
            // Second pass: join, re-checking each part as it is read so a
            // concurrent replacement cannot slip in unnoticed.
            let mut tmp = TempFile::create(&tmp_dir)?;
            let mut size = 0u64;
            let mut md5s = Vec::with_capacity(wanted.len());
            let mut checksums = Vec::new();
            for p in &wanted {
                let (mut file, len, meta) = open(p)?;
                check(p, &meta)?;
                file.seek(SeekFrom::Start(0))?;
                let copied = io::copy(&mut io::Read::take(&mut file, len), tmp.file()?)?;
                if copied != len {
                    return Err(StoreError::Corrupt(format!(
                        "part {} is truncated",
                        p.part_number
                    )));
                }
                size += len;
                let mut md5 = [0u8; 16];
                hex::decode_to_slice(&meta.etag, &mut md5)
                    .map_err(|_| StoreError::Corrupt(format!("part {} has a bad ETag", p.part_number)))?;
                md5s.push(md5);
                if let Some(a) = algorithm {
                    match meta.checksum {
                        Some(c) if c.algorithm == a => checksums.push(c),
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "part {} lacks its {a} checksum",
                                p.part_number
                            )));
                        }
                    }
                }
            }
            tmp.set_data_len(size);
            Ok((tmp, size, md5s, checksums))
        })
        .await?;
        let meta = ObjectMeta {
            key: key.clone(),
            size,
            etag: multipart_etag(&md5s),
            last_modified: OffsetDateTime::now_utc(),
            headers: upload.headers,
            metadata: upload.metadata,
            checksum: algorithm.map(|a| Checksum::composite(a, &checksums)),
            parts_count: u32::try_from(md5s.len()).ok(),
        };
        let meta = self.commit_object(tmp, rel, meta, false).await?;
        blocking(self.remove_upload_dir(self.upload_dir(upload_id))).await?;
        Ok(meta)
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        let (dir, _) = self.load_upload(key, upload_id).await?;
        blocking(self.remove_upload_dir(dir)).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        let uploads = self.uploads.clone();
        let prefix = prefix.to_owned();
        let bucket = self.name.to_string();
        blocking(move || {
            let read = match std::fs::read_dir(&uploads) {
                Ok(r) => r,
                Err(e) if not_found(&e) => return Err(StoreError::NoSuchBucket { bucket }),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in read {
                let entry = entry?;
                if !entry.file_name().to_str().is_some_and(valid_id) {
                    continue;
                }
                let bytes = match std::fs::read(entry.path().join(UPLOAD_FILE)) {
                    Ok(b) => b,
                    Err(e) if not_found(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                let upload: UploadFile = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("upload: {e}")))?;
                if upload.key.as_str().starts_with(&prefix) {
                    out.push(upload.public());
                }
            }
            out.sort_by(|a, b| (&a.key, a.initiated, &a.upload_id).cmp(&(&b.key, b.initiated, &b.upload_id)));
            Ok(out)
        })
        .await
    }

    fn appendable(&self) -> Option<&dyn crate::AppendableUploads> {
        Some(self)
    }
}
