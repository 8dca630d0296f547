//! Object files: streaming a body into a temp file while hashing it, the
//! metadata trailer, and the durable commit (fsync, rename, fsync dir).
//!
//! An object file is `data ‖ json ‖ footer`, where the 24-byte footer is
//! the JSON length and the data length (both `u64` little-endian) and the
//! magic `CHUTEOB1`. One rename commits data and metadata together.

use crate::{ByteStream, StoreError, StoreResult};
use bytes::{Bytes, BytesMut};
use chute_core::checksum::HashResult;
use chute_core::{ChecksumAlgorithm, Hasher};
use futures::StreamExt as _;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The footer length in bytes.
pub(crate) const FOOTER_LEN: u64 = 24;
const MAGIC: &[u8; 8] = b"CHUTEOB1";
/// How much body we gather before one write.
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;
/// Writes queued between the hashing task and the writer thread.
const WRITE_QUEUE: usize = 4;
/// The suffix of temp files.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Runs blocking filesystem work off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    F: FnOnce() -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e)))?
}

/// A temp file that is deleted on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<File>,
    data_len: u64,
}

impl TempFile {
    /// Creates an empty temp file in `tmp_dir`.
    pub(crate) fn create(tmp_dir: &Path) -> io::Result<Self> {
        let path = tmp_dir.join(format!("{}{TMP_SUFFIX}", uuid::Uuid::new_v4().simple()));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            data_len: 0,
        })
    }

    /// The open file.
    pub(crate) fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("temp file already closed"))
    }

    /// Records how many data bytes precede the trailer.
    pub(crate) fn set_data_len(&mut self, len: u64) {
        self.data_len = len;
    }

    /// Appends the trailer, fsyncs and closes the file (blocking).
    pub(crate) fn seal(&mut self, json: &[u8]) -> io::Result<()> {
        let data_len = self.data_len;
        let f = self.file()?;
        f.write_all(&trailer(json, data_len))?;
        f.sync_all()?;
        self.file = None;
        Ok(())
    }

    /// Renames the sealed file to `base/rel`, creating parent directories
    /// below `base` (never `base` itself), and fsyncs the parent (blocking).
    pub(crate) fn commit(mut self, base: &Path, rel: &Path) -> io::Result<()> {
        let dest = base.join(rel);
        place(base, rel, || std::fs::rename(&self.path, &dest))?;
        self.path = PathBuf::new();
        // A concurrent delete of this very key may already have removed the
        // file and its directory; that is not our failure.
        sync_dir_if_present(dest.parent().unwrap_or(base))
    }

    /// Like [`Self::commit`], but fails with `AlreadyExists` when `base/rel`
    /// exists. `rename` would replace it; `link(2)` never does, so the
    /// check and the commit are one atomic step even against concurrent
    /// writers. The temp name is removed afterwards.
    pub(crate) fn commit_new(mut self, base: &Path, rel: &Path) -> io::Result<()> {
        let dest = base.join(rel);
        place(base, rel, || std::fs::hard_link(&self.path, &dest))?;
        let tmp = std::mem::take(&mut self.path);
        if let Err(e) = std::fs::remove_file(&tmp) {
            // Committed all the same; `FsStore::open` removes stray temp files.
            tracing::warn!("removing temp file {}: {e}", tmp.display());
        }
        sync_dir_if_present(dest.parent().unwrap_or(base))
    }
}

/// The trailer after `data_len` bytes of data: the JSON metadata and the
/// footer.
pub(crate) fn trailer(json: &[u8], data_len: u64) -> Vec<u8> {
    let mut trailer = Vec::with_capacity(json.len() + FOOTER_LEN as usize);
    trailer.extend_from_slice(json);
    trailer.extend_from_slice(&(json.len() as u64).to_le_bytes());
    trailer.extend_from_slice(&data_len.to_le_bytes());
    trailer.extend_from_slice(MAGIC);
    trailer
}

/// Runs `op` (which creates `base/rel`), creating the parent directories
/// below `base` when they are missing.
pub(crate) fn place(base: &Path, rel: &Path, op: impl Fn() -> io::Result<()>) -> io::Result<()> {
    let mut attempt = 0;
    loop {
        match op() {
            Ok(()) => return Ok(()),
            // A concurrent delete may remove an empty parent between our
            // create and the commit (or during the create): create again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 32 => {
                attempt += 1;
                if !base.is_dir() {
                    return Err(e);
                }
                match create_parents(base, rel) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the directories of `rel`'s parent below `base`, which must exist.
pub(crate) fn create_parents(base: &Path, rel: &Path) -> io::Result<()> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    if !base.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "base directory is gone"));
    }
    let mut cur = base.to_path_buf();
    for comp in parent.components() {
        let next = cur.join(comp);
        match std::fs::create_dir(&next) {
            Ok(()) => sync_dir_if_present(&cur)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        cur = next;
    }
    Ok(())
}

/// Fsyncs a directory so a rename or create in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// [`sync_dir`], where a directory removed meanwhile is fine.
pub(crate) fn sync_dir_if_present(dir: &Path) -> io::Result<()> {
    match sync_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Writes a small file atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = TempFile::create(tmp_dir)?;
    let f = tmp.file()?;
    f.write_all(bytes)?;
    f.sync_all()?;
    tmp.file = None;
    std::fs::rename(&tmp.path, dest)?;
    tmp.path = PathBuf::new();
    sync_dir(dest.parent().unwrap_or(tmp_dir))
}

/// What streaming a body produced.
pub(crate) struct Streamed {
    pub(crate) tmp: TempFile,
    pub(crate) hash: HashResult,
}

/// Streams `body` into a new temp file in `tmp_dir`, hashing MD5 and
/// `algorithms` on the way. Hashing runs on this task while a blocking
/// thread writes, so the two overlap. Stops early once more than
/// `expected_len` bytes arrived.
pub(crate) async fn stream_to_temp(
    tmp_dir: &Path,
    body: ByteStream,
    algorithms: &[ChecksumAlgorithm],
    expected_len: Option<u64>,
) -> StoreResult<Streamed> {
    let dir = tmp_dir.to_path_buf();
    let mut tmp = blocking(move || Ok(TempFile::create(&dir)?)).await?;
    let file = tmp.file()?.try_clone()?;
    let mut hasher = Hasher::new(algorithms);
    write_body(file, body, |chunk| {
        hasher.update(chunk);
        match expected_len {
            Some(expected) if hasher.len() > expected => Err(StoreError::LengthMismatch {
                expected,
                received: hasher.len(),
            }),
            _ => Ok(()),
        }
    })
    .await?;
    let hash = hasher.finish();
    tmp.set_data_len(hash.len);
    Ok(Streamed { tmp, hash })
}

/// Writes `body` to `file` at its current position and returns how many
/// bytes it wrote; does not sync. `inspect` sees each chunk before it is
/// written and stops the body by failing. Small chunks are gathered into
/// [`WRITE_CHUNK`]-sized writes on a blocking thread, so the caller's task
/// reads the next ones meanwhile. On error some bytes may be in the file:
/// the caller removes or cuts it. A body or `inspect` error wins over the
/// writer's.
pub(crate) async fn write_body(
    mut file: File,
    mut body: ByteStream,
    mut inspect: impl FnMut(&Bytes) -> StoreResult<()>,
) -> StoreResult<u64> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        while let Some(buf) = rx.blocking_recv() {
            file.write_all(&buf)?;
        }
        Ok(())
    });
    let mut written = 0u64;
    let mut pending = BytesMut::new();
    let mut failed: Option<StoreError> = None;
    while let Some(item) = body.next().await {
        let chunk = match item
            .map_err(StoreError::Body)
            .and_then(|c| inspect(&c).map(|()| c))
        {
            Ok(c) => c,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        written += chunk.len() as u64;
        let out = if pending.is_empty() && chunk.len() >= WRITE_CHUNK {
            Some(chunk)
        } else {
            pending.extend_from_slice(&chunk);
            (pending.len() >= WRITE_CHUNK).then(|| pending.split().freeze())
        };
        if let Some(out) = out
            && tx.send(out).await.is_err()
        {
            break; // the writer failed; its error comes from the join below
        }
    }
    if failed.is_none() && !pending.is_empty() {
        let _ = tx.send(pending.split().freeze()).await;
    }
    drop(tx);
    let done = writer.await.map_err(|e| StoreError::Io(io::Error::other(e)));
    if let Some(e) = failed {
        return Err(e);
    }
    done??;
    Ok(written)
}

/// Reads the trailer of an object file: the data length and the JSON.
pub(crate) fn read_trailer(file: &mut File) -> StoreResult<(u64, Vec<u8>)> {
    let file_len = file.metadata()?.len();
    if file_len < FOOTER_LEN {
        return Err(StoreError::Corrupt("file shorter than its footer".into()));
    }
    file.seek(SeekFrom::Start(file_len - FOOTER_LEN))?;
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.read_exact(&mut footer)?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&footer[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let (json_len, data_len) = (word(0), word(8));
    if &footer[16..] != MAGIC
        || json_len > 1 << 24
        || data_len
            .checked_add(json_len)
            .and_then(|n| n.checked_add(FOOTER_LEN))
            != Some(file_len)
    {
        return Err(StoreError::Corrupt("bad object footer".into()));
    }
    file.seek(SeekFrom::Start(data_len))?;
    let mut json = vec![0u8; json_len as usize];
    file.read_exact(&mut json)?;
    Ok((data_len, json))
}

/// Opens an object file and parses its trailer as `T`.
pub(crate) fn open_with_meta<T: serde::de::DeserializeOwned>(path: &Path) -> StoreResult<(File, u64, T)> {
    let mut file = File::open(path)?;
    let (data_len, json) = read_trailer(&mut file)?;
    let meta = serde_json::from_slice(&json)
        .map_err(|e| StoreError::Corrupt(format!("metadata of {}: {e}", path.display())))?;
    Ok((file, data_len, meta))
}
