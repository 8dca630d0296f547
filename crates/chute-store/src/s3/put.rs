//! Puts, by size: a body of at most one part is buffered, checked and
//! sent with its Content-MD5 (retryable); a longer body of known length
//! streams in one PutObject (checked on the way, see `body.rs`); a longer
//! body of unknown length, or one beyond PutObject's 5 GiB, becomes a
//! multipart upload that is aborted on any failure.

use super::S3Store;
use super::body::{Buffered, Chunks, Expectations, buffer_up_to, in_memory, send_streamed};
use super::client::Request;
use super::headers::{checksum_header, date_of, etag_of, md5_header, write_headers};
use super::multipart::{AbortGuard, SentPart};
use crate::expect::{algorithms, stored_checksum, verify};
use crate::{ByteStream, MAX_PART_NUMBER, ObjectMeta, PutOptions, StoreError, StoreResult};
use bytes::BytesMut;
use chute_core::{Checksum, ChecksumAlgorithm, Hasher, ObjectKey};
use futures::StreamExt as _;
use reqwest::Method;
use std::collections::VecDeque;
use time::OffsetDateTime;

/// The largest body one PutObject takes.
const MAX_PUT_OBJECT: u64 = 5 << 30;

pub(super) fn unsupported_create_only() -> StoreError {
    StoreError::Unsupported(
        "write an object only if its key is free: this S3 peer ignores If-None-Match on PutObject; \
         check StoreCapabilities::create_only before asking for if_none_match"
            .into(),
    )
}

/// The checksum algorithm a put stores: the expected value's, else the one asked for.
fn stored_algorithm(opts: &PutOptions) -> Option<ChecksumAlgorithm> {
    opts.expected_checksum
        .as_ref()
        .map(|c| c.algorithm)
        .or(opts.checksum_algorithm)
}

impl S3Store {
    pub(super) async fn put_object(
        &self,
        key: &ObjectKey,
        mut body: ByteStream,
        opts: PutOptions,
    ) -> StoreResult<ObjectMeta> {
        if opts.if_none_match && !self.inner.capabilities.create_only {
            return Err(unsupported_create_only());
        }
        let part = self.inner.tuning.part_size;
        if let Some(n) = opts.expected_len
            && n > part as u64
        {
            return if n <= MAX_PUT_OBJECT {
                self.put_streamed(key, body, opts, n).await
            } else {
                self.put_multipart(key, BytesMut::new(), body, opts).await
            };
        }
        match buffer_up_to(&mut body, part, opts.expected_len).await? {
            Buffered::Whole(buf) => self.put_buffered(key, buf, opts).await,
            Buffered::Over(buf) => self.put_multipart(key, buf, body, opts).await,
        }
    }

    /// One PutObject of a body in memory, checked before it is sent.
    async fn put_buffered(&self, key: &ObjectKey, data: Chunks, opts: PutOptions) -> StoreResult<ObjectMeta> {
        let mut hasher = Hasher::new(&algorithms(
            opts.expected_checksum.as_ref(),
            opts.checksum_algorithm,
        ));
        let pieces = data.into_pieces();
        for piece in &pieces {
            hasher.update(piece);
        }
        let hash = hasher.finish();
        verify(
            &hash,
            opts.expected_len,
            opts.expected_md5,
            opts.expected_checksum.as_ref(),
        )?;
        let stored = stored_checksum(
            &hash,
            opts.expected_checksum.as_ref().map(|c| c.algorithm),
            opts.checksum_algorithm,
        );
        let mut req = Request::new(Method::PUT, Some(key));
        req.headers = write_headers(&opts.headers, &opts.metadata);
        req.headers.push(md5_header(&hash.md5));
        req.headers.extend(stored.as_ref().map(checksum_header));
        if opts.if_none_match {
            req.headers.push(("if-none-match".into(), "*".into()));
        }
        let resp = self.client().send(req.body(in_memory(pieces))).await?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: hash.len,
            etag: etag_of(&resp).unwrap_or_else(|| hex::encode(hash.md5)),
            last_modified: date_of(&resp).unwrap_or_else(OffsetDateTime::now_utc),
            headers: opts.headers,
            metadata: opts.metadata,
            checksum: stored,
            parts_count: None,
        })
    }

    /// One PutObject streaming `len` bytes. A checksum to store but not
    /// known in advance travels as an aws-chunked trailer.
    async fn put_streamed(
        &self,
        key: &ObjectKey,
        body: ByteStream,
        opts: PutOptions,
        len: u64,
    ) -> StoreResult<ObjectMeta> {
        let trailer = match opts.expected_checksum {
            Some(_) => None,
            None => opts.checksum_algorithm,
        };
        let expect = Expectations {
            md5: opts.expected_md5,
            checksum: opts.expected_checksum.clone(),
            algorithms: opts.checksum_algorithm.into_iter().collect(),
            ..Expectations::default()
        };
        let mut req = Request::new(Method::PUT, Some(key));
        req.headers = write_headers(&opts.headers, &opts.metadata);
        req.headers.extend(opts.expected_md5.as_ref().map(md5_header));
        req.headers
            .extend(opts.expected_checksum.as_ref().map(checksum_header));
        if opts.if_none_match {
            req.headers.push(("if-none-match".into(), "*".into()));
        }
        let (resp, hash) = send_streamed(self.client(), req, body, expect, trailer, len, "put").await?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: hash.len,
            etag: etag_of(&resp).unwrap_or_else(|| hex::encode(hash.md5)),
            last_modified: date_of(&resp).unwrap_or_else(OffsetDateTime::now_utc),
            checksum: stored_checksum(&hash, stored_algorithm(&opts), None),
            headers: opts.headers,
            metadata: opts.metadata,
            parts_count: None,
        })
    }

    /// A multipart upload of `first` and the rest of `body`, parts sent
    /// concurrently; aborted unless it completes.
    async fn put_multipart(
        &self,
        key: &ObjectKey,
        first: BytesMut,
        body: ByteStream,
        opts: PutOptions,
    ) -> StoreResult<ObjectMeta> {
        let algorithm = stored_algorithm(&opts);
        let upload_opts = PutOptions {
            headers: opts.headers.clone(),
            metadata: opts.metadata.clone(),
            checksum_algorithm: algorithm,
            ..PutOptions::default()
        };
        let upload_id = self.initiate_upload(key, &upload_opts).await?;
        let guard = AbortGuard::new(self.client().clone(), key.clone(), upload_id.clone());
        let result = self
            .send_parts(key, &upload_id, first, body, &opts, algorithm)
            .await;
        let (parts, size) = match result {
            Ok(sent) => sent,
            Err(e) => return Err(guard.abort(e).await),
        };
        let done = self
            .finish_upload(key, &upload_id, &parts, opts.if_none_match)
            .await;
        let mut meta = match done {
            Ok(meta) => meta,
            Err(e) => return Err(guard.abort(e).await),
        };
        guard.disarm();
        meta.size = size;
        meta.headers = opts.headers;
        meta.metadata = opts.metadata;
        if meta.checksum.is_none()
            && let Some(a) = algorithm
        {
            let sums: Vec<Checksum> = parts.into_iter().filter_map(|(_, c)| c).collect();
            meta.checksum = Some(Checksum::composite(a, &sums));
        }
        Ok(meta)
    }

    /// Cuts the body into parts and uploads them, at most
    /// `part_concurrency` at once; checks the whole body at its end.
    async fn send_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        mut buf: BytesMut,
        mut body: ByteStream,
        opts: &PutOptions,
        algorithm: Option<ChecksumAlgorithm>,
    ) -> StoreResult<(Vec<SentPart>, u64)> {
        let tuning = &self.inner.tuning;
        let part_size = match opts.expected_len {
            Some(n) => tuning
                .part_size
                .max(usize::try_from(n.div_ceil(u64::from(MAX_PART_NUMBER))).unwrap_or(usize::MAX)),
            None => tuning.part_size,
        };
        // Only checked: the stored checksum is the parts' composite.
        let mut whole = Hasher::new(&algorithms(opts.expected_checksum.as_ref(), None));
        whole.update(&buf);
        let mut tasks = PartTasks::default();
        let mut done = Vec::new();
        let mut number = 0u32;
        let mut ended = false;
        while !ended || !buf.is_empty() {
            if buf.len() >= part_size || (ended && !buf.is_empty()) {
                let data = buf.split_to(part_size.min(buf.len())).freeze();
                number += 1;
                if number > MAX_PART_NUMBER {
                    return Err(StoreError::Unsupported(format!(
                        "store a body of unknown length above {} bytes (10000 parts of {part_size}): \
                         give its length in PutOptions::expected_len, or raise part_size",
                        part_size as u64 * u64::from(MAX_PART_NUMBER)
                    )));
                }
                let (client, key, id) = (self.client().clone(), key.clone(), upload_id.to_owned());
                tasks.0.push_back(tokio::spawn(async move {
                    super::multipart::send_part(&client, &key, &id, number, data, algorithm).await
                }));
                while tasks.0.len() >= tuning.part_concurrency {
                    done.push(tasks.next().await?);
                }
                continue;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    whole.update(&chunk);
                    if let Some(expected) = opts.expected_len
                        && whole.len() > expected
                    {
                        return Err(StoreError::LengthMismatch {
                            expected,
                            received: whole.len(),
                        });
                    }
                    buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(StoreError::Body(e)),
                None => ended = true,
            }
        }
        let hash = whole.finish();
        verify(
            &hash,
            opts.expected_len,
            opts.expected_md5,
            opts.expected_checksum.as_ref(),
        )?;
        while !tasks.0.is_empty() {
            done.push(tasks.next().await?);
        }
        Ok((done, hash.len))
    }
}

/// Part uploads in flight, oldest first; dropping them stops them.
#[derive(Default)]
struct PartTasks(VecDeque<tokio::task::JoinHandle<StoreResult<SentPart>>>);

impl PartTasks {
    async fn next(&mut self) -> StoreResult<SentPart> {
        let Some(task) = self.0.pop_front() else {
            return Err(StoreError::Corrupt("no part upload in flight".into()));
        };
        task.await
            .map_err(|e| StoreError::Io(std::io::Error::other(format!("part upload task failed: {e}"))))?
    }
}

impl Drop for PartTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
