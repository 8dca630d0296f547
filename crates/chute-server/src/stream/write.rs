//! Streaming one file into the store with bounded memory.
//!
//! The body is cut into parts ([`part_size_for`]). A file that ends
//! within its first part is stored with one `put`; a longer one becomes
//! a multipart upload whose parts upload in their own tasks, at most
//! `parts_in_flight` at once. While that many are in flight the body is
//! not read, so a fast client waits on TCP flow control instead of
//! filling memory: a request holds at most `(parts_in_flight + 1)` parts
//! (plus the store's own copy of a part being sent to S3), and all
//! requests together at most `stream_memory_mib`: a part past 256 KiB
//! reserves its size from that budget first. Parts hold
//! copies of the body's bytes, not slices of the read buffers
//! ([`PartBuf`]).
//!
//! Size and type are enforced as the bytes arrive: past the limit the
//! write stops with 413; the first 8 KiB are sniffed against the
//! declared type and the grant's types before anything reaches the store
//! (422). Undoing a failed write is [`Pending`]'s job.

use super::pending::Pending;
use super::settings::part_size_for;
use crate::lifecycle::sniff::{SNIFF_LEN, checked_type};
use crate::lifecycle::{ApiError, ServerUpload};
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use chute_store::{CompletedPart, MAX_PART_NUMBER, ObjectHeaders, PartOptions, PutOptions};
use futures::{Stream, StreamExt as _};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Why reading a body failed, as the stream routes answer it.
pub(super) type BodyError = ApiError;

impl Pending {
    /// Streams `body` into the store as the file `index` of this request
    /// (already [`Pending::add`]ed); `known_size` is the declared length,
    /// when there is one. Returns the bytes stored.
    pub async fn write<S>(
        &mut self,
        index: usize,
        known_size: Option<u64>,
        body: &mut S,
    ) -> Result<u64, ApiError>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
    {
        let upload = self.files[index].upload.clone();
        let limit = self.lifecycle.server_upload_limit(&upload.grant);
        let configured = self.stream.settings.part_size;
        let in_flight = self.stream.settings.parts_in_flight.max(1);
        let mut head = BytesMut::new();
        let mut sniffed: Option<String> = None;
        let mut part = PartBuf::default();
        let mut number = 1u32;
        let mut total = 0u64;
        let mut parts: Vec<CompletedPart> = Vec::new();
        loop {
            while self.tasks.len() >= in_flight {
                self.join_part(&mut parts).await?;
            }
            let next = tokio::select! {
                biased;
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    record(done, &mut parts)?;
                    continue;
                }
                next = body.next() => next,
            };
            let Some(chunk) = next else { break };
            let mut chunk = chunk?;
            check_expiry(&upload)?;
            total += chunk.len() as u64;
            if total > limit || known_size.is_some_and(|k| total > k) {
                return Err(too_large(total, known_size.map_or(limit, |k| k.min(limit))));
            }
            if sniffed.is_none() {
                let want = (SNIFF_LEN as usize).saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..want]);
                if head.len() as u64 >= SNIFF_LEN {
                    sniffed = Some(check_type(&upload, &head)?);
                }
            }
            while !chunk.is_empty() {
                let size = part_size_for(configured, known_size, limit, number);
                let take = usize::try_from(size - part.len)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                let grown = part.len + take as u64;
                self.reserve_for(&mut part, grown, size).await?;
                part.push(&chunk.split_to(take), size);
                if part.len == size {
                    let content_type = match &sniffed {
                        Some(t) => t.clone(),
                        None => check_type(&upload, &head)?,
                    };
                    let (chunks, len, permit) = part.take();
                    self.send_part(index, &content_type, number, (chunks, len), permit)
                        .await?;
                    number += 1;
                    while self.tasks.len() >= in_flight {
                        self.join_part(&mut parts).await?;
                    }
                }
            }
        }
        let content_type = match sniffed {
            Some(t) => t,
            None => check_type(&upload, &head)?,
        };
        self.lifecycle.check_server_size(&upload.grant, total)?;
        if known_size.is_some_and(|k| k != total) {
            return Err(ApiError::bad_request(
                "body_incomplete",
                format!(
                    "the body has {total} bytes, not the {} declared",
                    known_size.unwrap_or(0)
                ),
            ));
        }
        if self.files[index].multipart.is_none() {
            let (chunks, _, permit) = part.take();
            self.put_whole(&upload, &content_type, chunks, total).await?;
            drop(permit);
        } else {
            if part.len > 0 {
                let (chunks, len, permit) = part.take();
                self.send_part(index, &content_type, number, (chunks, len), permit)
                    .await?;
            }
            while !self.tasks.is_empty() {
                self.join_part(&mut parts).await?;
            }
            parts.sort_by_key(|p| p.part_number);
            let mpu = self.files[index].multipart.clone().unwrap_or_default();
            self.lifecycle
                .store()
                .complete_multipart(&upload.key, &mpu, &parts)
                .await
                .map_err(|e| ApiError::store("completing the streamed upload", &e))?;
        }
        self.files[index].size = Some(total);
        Ok(total)
    }

    /// Starts uploading part `number` (creating the multipart upload
    /// with the first part).
    async fn send_part(
        &mut self,
        index: usize,
        content_type: &str,
        number: u32,
        (chunks, len): (Vec<Bytes>, u64),
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ApiError> {
        if number > MAX_PART_NUMBER {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the file needs more than 10,000 parts",
            ));
        }
        let store = Arc::clone(self.lifecycle.store());
        let key = self.files[index].upload.key.clone();
        let mpu = match &self.files[index].multipart {
            Some(id) => id.clone(),
            None => {
                self.files[index].multipart_asked = true;
                let created = store
                    .create_multipart(&key, put_options(content_type))
                    .await
                    .map_err(|e| ApiError::store("starting a multipart upload", &e))?;
                self.files[index].multipart = Some(created.upload_id.clone());
                created.upload_id
            }
        };
        self.tasks.spawn(async move {
            // The part's share of the memory budget, until it is stored.
            let _permit = permit;
            let body = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
            let opts = PartOptions {
                expected_len: Some(len),
                ..PartOptions::default()
            };
            store.upload_part(&key, &mpu, number, body, opts).await
        });
        Ok(())
    }

    /// Reserves the memory budget for `part` (of `size` bytes) once it
    /// grows past [`SMALL_UNTIL`], the whole part at once: reserving it
    /// a MiB at a time as it fills could deadlock, every request holding
    /// part of a part and waiting for the rest. Waits while other
    /// requests hold the budget (the body is not read meanwhile), for at
    /// most `body_idle_timeout`: then 503, try again later.
    async fn reserve_for(&self, part: &mut PartBuf, len: u64, size: u64) -> Result<(), ApiError> {
        if len <= SMALL_UNTIL || part.permit.is_some() {
            return Ok(());
        }
        let total = self.stream.settings.memory_mib.max(1) as u64;
        let mib = size.div_ceil(PIECE).clamp(1, total);
        let permits = u32::try_from(mib).unwrap_or(u32::MAX);
        let wait = self.stream.settings.body_idle_timeout;
        let acquired =
            tokio::time::timeout(wait, Arc::clone(&self.stream.memory).acquire_many_owned(permits))
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "the server's memory for streamed uploads stayed in use; try again later",
                    )
                })?
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shutting_down",
                        "the server is shutting down",
                    )
                })?;
        part.permit = Some(acquired);
        Ok(())
    }

    /// Waits for one part upload to end.
    async fn join_part(&mut self, parts: &mut Vec<CompletedPart>) -> Result<(), ApiError> {
        match self.tasks.join_next().await {
            Some(done) => record(done, parts),
            None => Ok(()),
        }
    }

    /// Stores a file shorter than one part with a single put.
    async fn put_whole(
        &self,
        upload: &ServerUpload,
        content_type: &str,
        chunks: Vec<Bytes>,
        len: u64,
    ) -> Result<(), ApiError> {
        let body = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
        let opts = PutOptions {
            expected_len: Some(len),
            ..put_options(content_type)
        };
        self.lifecycle
            .store()
            .put(&upload.key, body, opts)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::store("storing the streamed file", &e))
    }
}

/// Bytes a part gathers as separate small copies before it moves to
/// pieces of [`PIECE`] bytes.
const SMALL_UNTIL: u64 = 256 * 1024;
/// The size of the pieces a large part is gathered in.
const PIECE: u64 = 1024 * 1024;

/// The part being filled. Its bytes are copies, never slices of the read
/// buffers (a slice would pin hyper's or multer's whole buffer while the
/// part waits). One growing buffer at first, so a tiny file costs about
/// itself; then pieces of 1 MiB allocated at their exact size: a store
/// that writes as it goes (fs) frees them one by one, and one that
/// buffers the part (S3) grows its buffer a few times only.
#[derive(Debug, Default)]
struct PartBuf {
    done: Vec<Bytes>,
    filling: BytesMut,
    /// Bytes gathered.
    len: u64,
    /// The part's share of the memory budget, taken before it grows past
    /// [`SMALL_UNTIL`].
    permit: Option<OwnedSemaphorePermit>,
}

impl PartBuf {
    fn push(&mut self, mut data: &[u8], part_size: u64) {
        self.len += data.len() as u64;
        if self.len <= SMALL_UNTIL {
            // One growing buffer, not a copy per chunk: a client sending
            // one byte at a time would cost an allocation per byte.
            self.filling.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            if self.filling.capacity() == self.filling.len() {
                if !self.filling.is_empty() {
                    self.done.push(self.filling.split().freeze());
                }
                let gathered = self.len - data.len() as u64;
                let piece = PIECE.min(part_size.saturating_sub(gathered)).max(1);
                self.filling = BytesMut::with_capacity(usize::try_from(piece).unwrap_or(usize::MAX));
            }
            let room = self.filling.capacity() - self.filling.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.filling.extend_from_slice(now);
            data = rest;
        }
    }

    /// The gathered bytes, their length and their budget permit; the
    /// buffer starts over.
    fn take(&mut self) -> (Vec<Bytes>, u64, Option<OwnedSemaphorePermit>) {
        let mut chunks = std::mem::take(&mut self.done);
        if !self.filling.is_empty() {
            chunks.push(self.filling.split().freeze());
        }
        self.filling = BytesMut::new();
        (chunks, std::mem::take(&mut self.len), self.permit.take())
    }
}

/// Records a finished part upload, or turns its failure into the answer.
fn record(
    done: Result<chute_store::StoreResult<chute_store::PartMeta>, tokio::task::JoinError>,
    parts: &mut Vec<CompletedPart>,
) -> Result<(), ApiError> {
    match done {
        Ok(Ok(meta)) => {
            parts.push(CompletedPart {
                part_number: meta.part_number,
                etag: meta.etag,
            });
            Ok(())
        }
        Ok(Err(e)) => Err(ApiError::store("storing a part", &e)),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "part_failed",
            format!("a part upload stopped: {e}"),
        )),
    }
}

fn put_options(content_type: &str) -> PutOptions {
    PutOptions {
        headers: ObjectHeaders {
            content_type: Some(content_type.to_owned()),
            ..ObjectHeaders::default()
        },
        ..PutOptions::default()
    }
}

/// Sniffs the first bytes against the declared type and the grant:
/// the type to store, or 422.
fn check_type(upload: &ServerUpload, head: &[u8]) -> Result<String, ApiError> {
    checked_type(head, &upload.content_type, &upload.grant)
}

/// 408 once `upload` is past its `expires_at`: after that the reaper
/// may undo it, so it must not become final.
pub(super) fn check_expiry(upload: &ServerUpload) -> Result<(), ApiError> {
    if time::OffsetDateTime::now_utc().unix_timestamp() > upload.expires_at {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload_expired",
            "the upload took longer than upload_ttl_seconds (or the grant's upload_ttl)",
        ));
    }
    Ok(())
}

fn too_large(seen: u64, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the file passed the {limit} bytes this upload may have (read {seen})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_keeps_every_byte_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut part = PartBuf::default();
        for chunk in data.chunks(70_001) {
            part.push(chunk, data.len() as u64);
        }
        let (chunks, len, _) = part.take();
        assert_eq!(len, data.len() as u64);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.iter().all(|c| c.len() as u64 <= PIECE));
        assert_eq!(part.take().1, 0);
    }

    #[test]
    fn tiny_chunks_are_gathered_in_one_buffer() {
        let mut part = PartBuf::default();
        for _ in 0..SMALL_UNTIL {
            part.push(b"x", 8 * PIECE);
        }
        let (chunks, len, _) = part.take();
        assert_eq!(len, SMALL_UNTIL);
        assert_eq!(chunks.len(), 1, "one buffer, not one per chunk");
        assert_eq!(chunks.concat(), vec![b'x'; SMALL_UNTIL as usize]);
    }
}
