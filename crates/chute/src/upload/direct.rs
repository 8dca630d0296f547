//! Uploading one file through Chute's API, bytes straight to the store:
//!
//! - a file of at most one part goes in one presigned PUT, its SHA-256
//!   (computed while the file is read) declared at creation, so the store
//!   refuses other bytes and the receipt states it;
//! - a larger file goes multipart: each part is read once into memory,
//!   its CRC32C computed from those bytes, a part URL signed for exactly
//!   that checksum, and the part PUT straight to the store, `--parallel`
//!   parts at a time (fewer when they would hold more than 1 GiB). The store verifies every part; the whole object is
//!   not re-hashed (that would make the server read it all back).
//!
//! A multipart upload is recorded in its state file as soon as it exists
//! and after every part; a later run asks the server which parts it holds
//! and sends only the others, or starts over when the server has
//! forgotten the upload.

use super::api::{ChecksumBody, ChuteApi, CreateRequest, Signed};
use super::body::counted;
use super::error::UploadError;
use super::fingerprint::read_exact_at;
use super::http::{answered_within, send};
use super::plan::{PartPlan, part_size_for, parts_in_flight};
use super::state::{Protocol, UploadState};
use super::{FileJob, Outcome};
use bytes::Bytes;
use chute_core::{Checksum, ChecksumAlgorithm};
use futures::{StreamExt as _, TryStreamExt as _};
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How the direct uploads run.
#[derive(Debug, Clone, Copy)]
pub struct DirectOptions {
    /// Parts in flight at once.
    pub parallel: usize,
    /// The part size to ask for (the server's answer wins).
    pub part_size: u64,
}

/// Uploads `job` through `api`.
pub async fn upload(api: &ChuteApi, job: &FileJob, opts: DirectOptions) -> Result<Outcome, UploadError> {
    let part_size = part_size_for(job.fingerprint.size, opts.part_size);
    if job.fingerprint.size <= part_size {
        single(api, job).await
    } else {
        multipart(api, job, opts.parallel, part_size).await
    }
}

/// Reads `len` bytes at `offset` of the job's file off the async threads.
pub(super) async fn read_at(job: &FileJob, offset: u64, len: u64) -> Result<Bytes, UploadError> {
    let file = Arc::clone(&job.file);
    let path = job.path.clone();
    tokio::task::spawn_blocking(move || read_exact_at(&file, offset, len).map(Bytes::from))
        .await
        .map_err(|e| UploadError::io(&path, std::io::Error::other(e)))?
        .map_err(|e| UploadError::io(&path, e))
}

async fn single(api: &ChuteApi, job: &FileJob) -> Result<Outcome, UploadError> {
    let size = job.fingerprint.size;
    let data = read_at(job, 0, size).await?;
    let sha256 = Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        value: ChecksumAlgorithm::Sha256.digest(&data),
        parts: None,
    };
    let created = api
        .create(&CreateRequest {
            filename: job.name.clone(),
            size,
            content_type: job.content_type.clone(),
            method: "put",
            part_size: None,
            checksum: Some(ChecksumBody {
                algorithm: "sha256",
                value: sha256.to_header_value(),
            }),
            part_checksum_algorithm: None,
        })
        .await?;
    let put = created
        .put
        .ok_or_else(|| UploadError::bad_answer("creating the upload", "no `put` request in the answer"))?;
    put_bytes(api, job, &put, data, "uploading the file").await?;
    check_unchanged(job)?;
    let done = api.complete(&created.id, &created.token).await?;
    Ok(Outcome::new(
        &created.id,
        "put",
        done,
        size,
        false,
        Some("sha256"),
    ))
}

/// PUTs `data` to a presigned URL with retries; the bars follow the bytes
/// and give back what a failed attempt had counted.
async fn put_bytes(
    api: &ChuteApi,
    job: &FileJob,
    signed: &Signed,
    data: Bytes,
    what: &str,
) -> Result<(), UploadError> {
    api.retry()
        .run(what, |_| {
            let sent = Arc::new(AtomicU64::new(0));
            let mut req = api
                .client()
                .put(&signed.url)
                .body(counted(data.clone(), &job.progress, &sent));
            for (k, v) in &signed.headers {
                req = req.header(k, v);
            }
            let progress = job.progress.clone();
            let (len, limit) = (data.len() as u64, api.retry().answer_timeout);
            async move {
                match answered_within(send(req), &sent, len, limit).await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        progress.take_back(sent.swap(0, Ordering::Relaxed));
                        Err(e)
                    }
                }
            }
        })
        .await
}

/// A multipart upload in progress: what every part task shares.
struct Multipart<'a> {
    api: &'a ChuteApi,
    job: &'a FileJob,
    plan: PartPlan,
    id: String,
    token: String,
    state: tokio::sync::Mutex<UploadState>,
    sent: AtomicU64,
    /// Part buffers to reuse: allocating a fresh 16 MiB buffer per part
    /// lets glibc keep freed ones in per-thread arenas (RSS grows to about
    /// twice what is in flight).
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
}

async fn multipart(
    api: &ChuteApi,
    job: &FileJob,
    parallel: usize,
    part_size: u64,
) -> Result<Outcome, UploadError> {
    let size = job.fingerprint.size;
    let (state, missing, resumed) = match resume(api, job).await? {
        Some(found) => found,
        None => {
            let state = start(api, job, part_size).await?;
            let count = PartPlan::new(size, state.part_size.unwrap_or(part_size)).count();
            (state, (1..=count).collect(), false)
        }
    };
    let (Some(id), Some(token), Some(ps)) = (state.upload_id.clone(), state.token.clone(), state.part_size)
    else {
        return Err(UploadError::bad_answer(
            "resuming",
            "the state file lacks the upload id, token or part size",
        ));
    };
    let plan = PartPlan::new(size, ps);
    let already: u64 = size - missing.iter().map(|&n| plan.len(n)).sum::<u64>();
    job.progress.add(already);
    let mp = Multipart {
        api,
        job,
        plan,
        id,
        token,
        state: tokio::sync::Mutex::new(state),
        sent: AtomicU64::new(0),
        buffers: std::sync::Mutex::new(Vec::new()),
    };
    futures::stream::iter(missing)
        .map(|n| mp.send_part(n))
        .buffer_unordered(parts_in_flight(parallel, ps))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    if let Err(e) = check_unchanged(job) {
        api.abort(&mp.id, &mp.token).await;
        return Err(e);
    }
    let done = api.complete(&mp.id, &mp.token).await?;
    job.state_file.remove();
    Ok(Outcome::new(
        &mp.id,
        "multipart",
        done,
        mp.sent.load(Ordering::Relaxed),
        resumed,
        Some("crc32c"),
    ))
}

/// Creates the multipart upload and records it in the state file.
async fn start(api: &ChuteApi, job: &FileJob, part_size: u64) -> Result<UploadState, UploadError> {
    let size = job.fingerprint.size;
    let created = api
        .create(&CreateRequest {
            filename: job.name.clone(),
            size,
            content_type: job.content_type.clone(),
            method: "multipart",
            part_size: Some(part_size),
            checksum: None,
            part_checksum_algorithm: Some("crc32c"),
        })
        .await?;
    let info = created.multipart.ok_or_else(|| {
        UploadError::bad_answer("creating the upload", "no `multipart` section in the answer")
    })?;
    let plan = PartPlan::new(size, info.part_size);
    if plan.count() != info.part_count {
        return Err(UploadError::bad_answer(
            "creating the upload",
            format!(
                "{} parts of {} bytes do not make {size} bytes",
                info.part_count, info.part_size
            ),
        ));
    }
    let mut state = UploadState::new(Protocol::Chute, api.base(), &job.path, size, &job.fingerprint.hex);
    state.upload_id = Some(created.id.clone());
    state.token = Some(created.token.clone());
    state.part_size = Some(info.part_size);
    if let Err(e) = job.state_file.save(&state) {
        // Unrecorded, it could never be resumed: do not leave it in the store.
        api.abort(&created.id, &created.token).await;
        return Err(e);
    }
    Ok(state)
}

/// The saved upload of this file and the parts the server still lacks, if
/// it can be resumed; a forgotten upload removes the state file.
async fn resume(api: &ChuteApi, job: &FileJob) -> Result<Option<(UploadState, Vec<u32>, bool)>, UploadError> {
    let Some(saved) = job.state_file.load(&job.fingerprint.hex) else {
        return Ok(None);
    };
    let (Some(id), Some(token), Some(part_size)) = (&saved.upload_id, &saved.token, saved.part_size) else {
        job.state_file.remove();
        return Ok(None);
    };
    let plan = PartPlan::new(saved.size, part_size);
    let missing = match api.status(id, token).await? {
        Some(s) if s.state == "uploading" && s.part_size == Some(part_size) && s.size == saved.size => {
            let stored: Vec<(u32, u64)> = s.parts.iter().map(|p| (p.number, p.size)).collect();
            plan.missing(&stored)
        }
        // Joined by an earlier run whose `complete` answer was lost.
        Some(s) if s.state == "uploaded" => Vec::new(),
        _ => {
            job.progress.println(&format!(
                "{}: the server no longer has upload {id} (expired or aborted); starting over",
                job.path.display()
            ));
            job.state_file.remove();
            return Ok(None);
        }
    };
    job.note_resumed(&saved);
    Ok(Some((saved, missing, true)))
}

impl Multipart<'_> {
    /// Reads a part into a reused buffer (a fresh one for a short last part).
    async fn read_part(&self, offset: u64, len: u64) -> Result<Bytes, UploadError> {
        let reuse = self.buffers.lock().ok().and_then(|mut b| b.pop());
        let file = Arc::clone(&self.job.file);
        let path = self.job.path.clone();
        tokio::task::spawn_blocking(move || {
            let len = usize::try_from(len).map_err(|_| std::io::Error::other("part larger than memory"))?;
            let mut buf = match reuse {
                Some(b) if b.capacity() == len => b,
                _ => Vec::with_capacity(len),
            };
            buf.resize(len, 0);
            file.read_exact_at(&mut buf, offset)?;
            // len == capacity, so `Bytes` takes the buffer without a copy.
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| UploadError::io(&path, std::io::Error::other(e)))?
        .map_err(|e| UploadError::io(&path, e))
    }

    /// Keeps a sent part's buffer for the next part, if nothing else holds it.
    fn give_back(&self, data: Bytes) {
        if let Ok(unique) = data.try_into_mut() {
            let mut buf = Vec::from(unique);
            buf.clear();
            if let Ok(mut pool) = self.buffers.lock() {
                pool.push(buf);
            }
        }
    }

    async fn send_part(&self, n: u32) -> Result<(), UploadError> {
        let range = self.plan.range(n);
        let data = self.read_part(range.start, range.end - range.start).await?;
        let crc = Checksum {
            algorithm: ChecksumAlgorithm::Crc32c,
            value: ChecksumAlgorithm::Crc32c.digest(&data),
            parts: None,
        };
        let signed = self
            .api
            .part_url(&self.id, &self.token, n, &crc.to_header_value())
            .await?;
        let len = data.len() as u64;
        put_bytes(
            self.api,
            self.job,
            &signed,
            data.clone(),
            &format!("uploading part {n}"),
        )
        .await?;
        self.give_back(data);
        self.sent.fetch_add(len, Ordering::Relaxed);
        let mut state = self.state.lock().await;
        state.record_part(len);
        self.job.state_file.save(&state)
    }
}

/// Refuses to complete an upload of a file that changed meanwhile.
pub(super) fn check_unchanged(job: &FileJob) -> Result<(), UploadError> {
    match job.fingerprint.still_matches(&job.file) {
        Ok(true) => Ok(()),
        Ok(false) => Err(UploadError::FileChanged {
            path: job.path.clone(),
        }),
        Err(e) => Err(UploadError::io(&job.path, e)),
    }
}
