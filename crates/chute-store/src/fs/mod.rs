//! The durable filesystem backend: [`FsStore`] (buckets) and [`FsBucket`]
//! (objects and multipart uploads of one bucket).
//!
//! # On-disk layout
//!
//! ```text
//! <root>/
//!   tmp/                        temp files and directories being created or
//!                               removed; emptied by FsStore::open, except
//!     <uuid>.deleting-<bucket>/ a bucket DeleteBucket moved aside: open
//!                               moves it back if objects or uploads landed
//!   buckets/<bucket>/
//!     bucket.json               {"created": rfc3339}
//!     objects/                  the key tree: one name per `/`-separated
//!       <enc>.d/                key segment, the segment itself except that
//!         <enc>.o               ASCII outside [A-Za-z0-9._~-] (`/`, `%`,
//!                               controls, space, punctuation), C1 controls
//!                               and a leading '.' are %XX-escaped; other
//!                               UTF-8 is kept as is. Directories `.d`,
//!                               objects `.o`
//!     uploads/<upload id>/      one per multipart upload in progress
//!       upload.json             key, options, initiated
//!       part-00001 ...          parts, in the object file format
//!       append                  or the raw bytes of an appendable upload
//!                               (see `fs/append.rs`)
//!     config/<enc>.cfg          opaque per-bucket documents (cors, ...)
//! ```
//!
//! A segment's name is at most 240 bytes with its suffix (so 238 bytes of
//! UTF-8 when nothing is escaped), a key's path at most 3600; longer keys
//! are refused with `UnstorableKey`. See `fs/path.rs` for the encoding and
//! `fs/list.rs` for what a listing page costs (O(entries in the directories it
//! visits)).
//!
//! # Filesystem requirements
//!
//! The data directory must be on a case-sensitive, normalization-sensitive
//! filesystem (ext4, XFS, btrfs, ZFS without `normalization`; not the
//! macOS default or a casefolded directory): keys `A` and `a`, or NFC `é`
//! and NFD `e\u{301}`, are different objects and must not share a file.
//! [`FsStore::open`] probes this in `tmp` and refuses such a directory.
//!
//! # Atomicity
//!
//! An object file is `data ‖ JSON metadata ‖ 24-byte footer` (JSON length,
//! data length, magic), so one `rename` commits data and metadata
//! together; GET streams only the data range. Every write goes to a temp
//! file in `<root>/tmp` (same filesystem), is checked against the
//! expectations, fsynced, renamed into place, and the parent directory is
//! fsynced. Errors and cancellation delete the temp file; a crash leaves at
//! most a stray temp file, which the next `open` removes. Buckets and
//! uploads are created as complete directories in `tmp` and renamed into
//! place; deleted ones are first renamed into `tmp`, then removed. A bucket
//! is renamed into `tmp` before its emptiness is decided (see
//! [`FsStore::delete_bucket`]), so a put that commits concurrently is
//! either seen (`BucketNotEmpty`) or fails with `NoSuchBucket`.

mod append;
mod file;
mod list;
mod multipart;
mod path;

use self::file::{TempFile, blocking, open_with_meta, stream_to_temp, sync_dir, write_atomic};
use self::path::{encode_segment, object_rel_path};
use crate::expect::{algorithms, stored_checksum, verify};
use crate::{
    ByteRange, ByteStream, CopyOptions, GetResult, ListOptions, ListResult, ObjectMeta, PutOptions, Store,
    StoreError, StoreResult,
};
use async_trait::async_trait;
use chute_core::{BucketName, ObjectKey};
use futures::StreamExt as _;
use std::io::{self, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;

/// How many bytes a GET reads at a time.
const READ_CHUNK: usize = 256 * 1024;

/// A bucket as [`FsStore::list_buckets`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Its name.
    pub name: BucketName,
    /// When it was created.
    pub created: OffsetDateTime,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BucketFile {
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

#[derive(Debug)]
struct Inner {
    tmp: PathBuf,
    buckets: PathBuf,
}

/// The filesystem store: a root directory holding buckets.
#[derive(Clone, Debug)]
pub struct FsStore {
    inner: Arc<Inner>,
}

/// One bucket of an [`FsStore`]; implements [`Store`] and [`crate::MultipartStore`].
#[derive(Clone, Debug)]
pub struct FsBucket {
    inner: Arc<Inner>,
    name: BucketName,
    objects: PathBuf,
    uploads: PathBuf,
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// The suffix of a bucket directory that `delete_bucket` moved into `tmp`
/// (`<uuid>.deleting-<bucket>`), named so `open` can put it back.
const DELETING: &str = ".deleting-";

/// Refuses a filesystem on which two different keys could name one file
/// (blocking): a case-insensitive one (`A` and `a`), or one that treats
/// Unicode normalization forms alike (NFC `é` and NFD `e\u{301}`). Each
/// probe creates a name in `tmp` and looks for a variant, then removes it.
fn check_filesystem(root: &Path, tmp: &Path) -> StoreResult<()> {
    let probes = [
        (
            "CaseProbe",
            "caseprobe",
            "case-insensitive (it finds tmp/CaseProbe as tmp/caseprobe)",
        ),
        (
            "NormProbe-\u{e9}",
            "NormProbe-e\u{301}",
            "normalization-insensitive (it finds an NFC name under its NFD spelling)",
        ),
    ];
    for (name, variant, what) in probes {
        let probe = tmp.join(name);
        std::fs::File::create(&probe)?;
        let folded = std::fs::symlink_metadata(tmp.join(variant)).is_ok();
        std::fs::remove_file(&probe)?;
        if folded {
            return Err(StoreError::Io(io::Error::other(format!(
                "data directory {}: the filesystem is {what}; Chute needs a case-sensitive, \
                 normalization-sensitive filesystem, since keys that differ only in case or \
                 normalization are different objects; choose a data directory on such a \
                 filesystem (ext4, xfs, btrfs or tmpfs on Linux; on macOS, use a Linux VM or \
                 container)",
                root.display()
            ))));
        }
    }
    Ok(())
}

/// Cleans up a bucket directory found in `tmp` (blocking): one whose
/// delete was cut short while objects or uploads had landed in it is put
/// back; anything else is removed.
fn recover_deleting(dir: &Path, name: &str, buckets: &Path) -> io::Result<()> {
    let has_entries = |sub: &str| -> io::Result<bool> {
        match std::fs::read_dir(dir.join(sub)) {
            Ok(mut r) => Ok(r.next().is_some()),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let valid = BucketName::parse(name).is_ok() && dir.join("bucket.json").is_file();
    if valid && (has_entries("objects")? || has_entries("uploads")?) {
        let dest = buckets.join(name);
        if dest.exists() {
            // Recreated meanwhile; keep the data where an operator can find it.
            tracing::warn!(
                "{} holds objects of bucket {name}, which exists again; leaving it in place",
                dir.display()
            );
            return Ok(());
        }
        for sub in ["objects", "uploads", "config"] {
            match std::fs::create_dir(dir.join(sub)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(dir, &dest)?;
        return sync_dir(buckets);
    }
    std::fs::remove_dir_all(dir)
}

impl FsStore {
    /// Opens (creating if needed) the store at `root`, removing temp files
    /// and half-written state a crash may have left. Fails with
    /// [`StoreError::Io`] naming `root` if its filesystem is
    /// case-insensitive or normalization-insensitive.
    pub async fn open(root: impl Into<PathBuf>) -> StoreResult<Self> {
        let root = root.into();
        let inner = Inner {
            tmp: root.join("tmp"),
            buckets: root.join("buckets"),
        };
        let (tmp, buckets) = (inner.tmp.clone(), inner.buckets.clone());
        blocking(move || {
            std::fs::create_dir_all(&tmp)?;
            std::fs::create_dir_all(&buckets)?;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                let name = entry.file_name();
                let deleting = name.to_str().and_then(|n| n.split_once(DELETING)).map(|(_, b)| b);
                if entry.file_type()?.is_dir() {
                    match deleting {
                        Some(bucket) => recover_deleting(&entry.path(), bucket, &buckets)?,
                        None => std::fs::remove_dir_all(entry.path())?,
                    }
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            check_filesystem(&root, &tmp)?;
            for entry in std::fs::read_dir(&buckets)? {
                let entry = entry?;
                multipart::clean_uploads(&entry.path().join("uploads"))?;
            }
            Ok(())
        })
        .await?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    fn bucket_dir(&self, bucket: &BucketName) -> PathBuf {
        self.inner.buckets.join(bucket.as_str())
    }

    /// Creates a bucket; [`StoreError::BucketExists`] if it is there already.
    pub async fn create_bucket(&self, bucket: &BucketName) -> StoreResult<()> {
        let dest = self.bucket_dir(bucket);
        let tmp = self.inner.tmp.clone();
        let name = bucket.to_string();
        blocking(move || {
            if dest.exists() {
                return Err(StoreError::BucketExists { bucket: name });
            }
            let staging = tmp.join(format!("{}.bucket", uuid::Uuid::new_v4().simple()));
            let result = (|| -> io::Result<()> {
                std::fs::create_dir(&staging)?;
                for sub in ["objects", "uploads", "config"] {
                    std::fs::create_dir(staging.join(sub))?;
                }
                let json = serde_json::to_vec(&BucketFile {
                    created: OffsetDateTime::now_utc(),
                })
                .map_err(io::Error::other)?;
                write_atomic(&tmp, &staging.join("bucket.json"), &json)?;
                sync_dir(&staging)?;
                std::fs::rename(&staging, &dest)
            })();
            match result {
                Ok(()) => Ok(sync_dir(dest.parent().unwrap_or(&dest))?),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&staging);
                    if dest.exists() {
                        Err(StoreError::BucketExists { bucket: name })
                    } else {
                        Err(e.into())
                    }
                }
            }
        })
        .await
    }

    /// Deletes an empty bucket; [`StoreError::BucketNotEmpty`] while objects
    /// or uploads remain.
    ///
    /// Checking for emptiness and then removing would lose a put that
    /// commits in between. So the bucket is first moved into `tmp` (puts and
    /// uploads started after that fail with `NoSuchBucket`: their commit
    /// never recreates the objects directory), then its `objects` and
    /// `uploads` directories are removed with `rmdir`, which either fails
    /// because something landed in them before (the bucket is moved back:
    /// `BucketNotEmpty`) or makes any later rename into them fail. No lock
    /// is taken on the put path. A crash in between leaves the directory in
    /// `tmp`, and `open` moves it back if anything had landed.
    pub async fn delete_bucket(&self, bucket: &BucketName) -> StoreResult<()> {
        let dir = self.bucket_dir(bucket);
        let buckets = self.inner.buckets.clone();
        let tmp = self.inner.tmp.clone();
        let name = bucket.to_string();
        blocking(move || {
            let no_such_bucket = |name: String| StoreError::NoSuchBucket { bucket: name };
            if !dir.join("bucket.json").exists() {
                return Err(no_such_bucket(name));
            }
            // Visibly in use: refuse without disturbing its writers.
            for sub in ["objects", "uploads"] {
                if std::fs::read_dir(dir.join(sub))?.next().is_some() {
                    return Err(StoreError::BucketNotEmpty { bucket: name });
                }
            }
            let doomed = tmp.join(format!("{}{DELETING}{name}", uuid::Uuid::new_v4().simple()));
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => {}
                Err(e) if not_found(&e) => return Err(no_such_bucket(name)),
                Err(e) => return Err(e.into()),
            }
            let mut removed = Vec::new();
            let emptied = (|| -> io::Result<bool> {
                for sub in ["objects", "uploads"] {
                    match std::fs::remove_dir(doomed.join(sub)) {
                        Ok(()) => removed.push(sub),
                        // POSIX allows either error for a non-empty directory.
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                            ) =>
                        {
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(true)
            })();
            if let Ok(true) = emptied {
                // Deleted. Nothing can land in it any more; a failure to
                // clean up is left to the next `open`.
                sync_dir(&buckets)?;
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    tracing::warn!("removing deleted bucket {}: {e}", doomed.display());
                }
                return Ok(());
            }
            // Something landed: put the bucket back as it was.
            for sub in removed {
                std::fs::create_dir(doomed.join(sub))?;
            }
            std::fs::rename(&doomed, &dir).map_err(|e| {
                StoreError::Io(io::Error::new(
                    e.kind(),
                    format!(
                        "bucket {name} is not empty but could not be moved back from {} \
                         to {}: {e}; its data is intact there: stop Chute and move it back by hand",
                        doomed.display(),
                        dir.display()
                    ),
                ))
            })?;
            sync_dir(&buckets)?;
            match emptied {
                Err(e) => Err(e.into()),
                Ok(_) => Err(StoreError::BucketNotEmpty { bucket: name }),
            }
        })
        .await
    }

    /// Succeeds when the bucket exists.
    pub async fn head_bucket(&self, bucket: &BucketName) -> StoreResult<()> {
        let marker = self.bucket_dir(bucket).join("bucket.json");
        match tokio::fs::metadata(&marker).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Err(StoreError::NoSuchBucket {
                bucket: bucket.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Every bucket, sorted by name.
    pub async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let buckets = self.inner.buckets.clone();
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&buckets)? {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().and_then(|n| BucketName::parse(n).ok()) else {
                    continue;
                };
                let bytes = match std::fs::read(entry.path().join("bucket.json")) {
                    Ok(b) => b,
                    Err(e) if not_found(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                let file: BucketFile = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("bucket.json of {name}: {e}")))?;
                out.push(BucketInfo {
                    name,
                    created: file.created,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    /// A handle on one bucket; [`StoreError::NoSuchBucket`] if it is missing.
    pub async fn bucket(&self, bucket: &BucketName) -> StoreResult<FsBucket> {
        self.head_bucket(bucket).await?;
        let dir = self.bucket_dir(bucket);
        Ok(FsBucket {
            inner: self.inner.clone(),
            name: bucket.clone(),
            objects: dir.join("objects"),
            uploads: dir.join("uploads"),
        })
    }

    fn config_path(&self, bucket: &BucketName, name: &str) -> StoreResult<PathBuf> {
        let enc = encode_segment(name);
        if name.is_empty() || enc.len() > 200 {
            return Err(StoreError::UnstorableKey {
                reason: format!("bad bucket configuration name {name:?}"),
            });
        }
        Ok(self.bucket_dir(bucket).join("config").join(enc + ".cfg"))
    }

    /// An opaque per-bucket document such as `"cors"`, if set.
    pub async fn get_bucket_config(&self, bucket: &BucketName, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.head_bucket(bucket).await?;
        let path = self.config_path(bucket, name)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets (atomically) or, with `None`, deletes a per-bucket document.
    pub async fn put_bucket_config(
        &self,
        bucket: &BucketName,
        name: &str,
        value: Option<Vec<u8>>,
    ) -> StoreResult<()> {
        self.head_bucket(bucket).await?;
        let path = self.config_path(bucket, name)?;
        let tmp = self.inner.tmp.clone();
        blocking(move || {
            match value {
                Some(v) => write_atomic(&tmp, &path, &v)?,
                None => match std::fs::remove_file(&path) {
                    Ok(()) => sync_dir(path.parent().unwrap_or(&path))?,
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                },
            }
            Ok(())
        })
        .await
    }
}

/// Maps a failed commit: a vanished objects directory means the bucket is gone.
fn commit_error(e: io::Error, bucket: &BucketName) -> StoreError {
    if not_found(&e) {
        StoreError::NoSuchBucket {
            bucket: bucket.to_string(),
        }
    } else {
        StoreError::Io(e)
    }
}

fn no_such_key(key: &ObjectKey) -> StoreError {
    StoreError::NoSuchKey { key: key.to_string() }
}

impl FsBucket {
    /// The bucket's name.
    pub fn name(&self) -> &BucketName {
        &self.name
    }

    /// Seals `tmp` with `meta` and commits it at `rel` below the objects
    /// dir, replacing any object there unless `create_only`.
    async fn commit_object(
        &self,
        mut tmp: TempFile,
        rel: PathBuf,
        meta: ObjectMeta,
        create_only: bool,
    ) -> StoreResult<ObjectMeta> {
        let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        let base = self.objects.clone();
        let bucket = self.name.clone();
        let key = meta.key.to_string();
        blocking(move || {
            tmp.seal(&json)?;
            let committed = if create_only {
                tmp.commit_new(&base, &rel)
            } else {
                tmp.commit(&base, &rel)
            };
            committed.map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists if create_only => StoreError::PreconditionFailed { key },
                _ => commit_error(e, &bucket),
            })
        })
        .await?;
        Ok(meta)
    }

    /// Opens the object file for `key` with its metadata (blocking).
    async fn open_object(&self, key: &ObjectKey) -> StoreResult<(std::fs::File, u64, ObjectMeta)> {
        let Ok(rel) = object_rel_path(key) else {
            return Err(no_such_key(key));
        };
        let path = self.objects.join(rel);
        let k = key.clone();
        blocking(move || match open_with_meta::<ObjectMeta>(&path) {
            Err(StoreError::Io(e)) if not_found(&e) => Err(no_such_key(&k)),
            Ok((f, len, mut meta)) => {
                meta.key = k;
                if meta.size != len {
                    return Err(StoreError::Corrupt(format!(
                        "{}: size differs from data length",
                        path.display()
                    )));
                }
                Ok((f, len, meta))
            }
            Err(e) => Err(e),
        })
        .await
    }
}

#[async_trait]
impl Store for FsBucket {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        let rel = object_rel_path(key)?;
        let create_only = opts.if_none_match;
        // Refuse early rather than after the whole body; the commit decides.
        if create_only && tokio::fs::try_exists(self.objects.join(&rel)).await? {
            return Err(StoreError::PreconditionFailed { key: key.to_string() });
        }
        let algs = algorithms(opts.expected_checksum.as_ref(), opts.checksum_algorithm);
        let streamed = stream_to_temp(&self.inner.tmp, body, &algs, opts.expected_len).await?;
        let hash = &streamed.hash;
        verify(
            hash,
            opts.expected_len,
            opts.expected_md5,
            opts.expected_checksum.as_ref(),
        )?;
        let meta = ObjectMeta {
            key: key.clone(),
            size: hash.len,
            etag: hex::encode(hash.md5),
            last_modified: OffsetDateTime::now_utc(),
            headers: opts.headers,
            metadata: opts.metadata,
            checksum: stored_checksum(
                hash,
                opts.expected_checksum.as_ref().map(|c| c.algorithm),
                opts.checksum_algorithm,
            ),
            parts_count: None,
        };
        self.commit_object(streamed.tmp, rel, meta, create_only).await
    }

    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult> {
        let (mut file, size, meta) = self.open_object(key).await?;
        let range = match range {
            None => 0..size,
            Some(r) => r.resolve(size).ok_or(StoreError::InvalidRange { size })?,
        };
        file.seek(SeekFrom::Start(range.start))?;
        let file = tokio::fs::File::from_std(file).take(range.end - range.start);
        let body = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK).boxed();
        Ok(GetResult { meta, range, body })
    }

    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        Ok(self.open_object(key).await?.2)
    }

    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        let Ok(rel) = object_rel_path(key) else {
            return Ok(());
        };
        let base = self.objects.clone();
        blocking(move || {
            let path = base.join(&rel);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if not_found(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            // Remove parents left empty; a failure means "not empty" (or a
            // concurrent put refilled it), which ends the walk up.
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == base || std::fs::remove_dir(&d).is_err() {
                    file::sync_dir_if_present(&d)?;
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        let base = self.objects.clone();
        let opts = opts.clone();
        let bucket = self.name.clone();
        blocking(move || {
            if !base.is_dir() {
                return Err(StoreError::NoSuchBucket {
                    bucket: bucket.to_string(),
                });
            }
            list::list_blocking(&base, &opts)
        })
        .await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta> {
        let rel = object_rel_path(to)?;
        let (mut src, size, src_meta) = self.open_object(from).await?;
        let tmp_dir = self.inner.tmp.clone();
        let tmp = blocking(move || {
            let mut tmp = TempFile::create(&tmp_dir)?;
            src.seek(SeekFrom::Start(0))?;
            let copied = io::copy(&mut io::Read::take(&mut src, size), tmp.file()?)?;
            if copied != size {
                return Err(StoreError::Corrupt(
                    "source shorter than its metadata says".into(),
                ));
            }
            tmp.set_data_len(size);
            Ok(tmp)
        })
        .await?;
        let mut meta = src_meta;
        meta.key = to.clone();
        meta.last_modified = OffsetDateTime::now_utc();
        if let CopyOptions::ReplaceMetadata(o) = opts {
            meta.headers = o.headers;
            meta.metadata = o.metadata;
        }
        self.commit_object(tmp, rel, meta, false).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_case_insensitive_filesystem_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        check_filesystem(root.path(), &tmp).unwrap();
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "the probe is removed"
        );
        // What a case-folding filesystem shows after creating `CaseProbe`.
        std::fs::write(tmp.join("caseprobe"), b"").unwrap();
        let err = check_filesystem(root.path(), &tmp).unwrap_err();
        let StoreError::Io(e) = &err else {
            panic!("{err:?}")
        };
        let msg = e.to_string();
        assert!(msg.contains(&root.path().display().to_string()), "{msg}");
        assert!(msg.contains("case-insensitive"), "{msg}");
        assert!(!tmp.join("CaseProbe").exists(), "the probe is removed");
    }

    #[test]
    fn a_normalizing_filesystem_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // What a normalization-insensitive filesystem shows after creating
        // the NFC name: the NFD spelling finds it too.
        std::fs::write(tmp.join("NormProbe-e\u{301}"), b"").unwrap();
        let err = check_filesystem(root.path(), &tmp).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("normaliz"), "{msg}");
        assert!(!tmp.join("NormProbe-\u{e9}").exists(), "the probe is removed");
    }

    #[tokio::test]
    async fn open_leaves_no_probe_behind() {
        let root = tempfile::tempdir().unwrap();
        FsStore::open(root.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    }
}
