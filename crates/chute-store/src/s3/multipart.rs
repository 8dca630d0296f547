//! Multipart uploads: create, parts (buffered and retryable up to one
//! part size, streamed above it), ListParts, completion checked against
//! ListParts before S3 sees it, abort, ListMultipartUploads; and
//! [`AbortGuard`], which aborts an upload a failed put leaves behind.

use super::S3Store;
use super::body::{Buffered, Expectations, buffer_up_to, in_memory, send_streamed};
use super::client::{Body, Request, S3Client, unquote};
use super::headers::{
    checksum_algorithm_header, checksum_header, date_of, etag_of, md5_header, response_checksum,
    write_headers,
};
use super::xml::{self, EtagResult, InitiateResult, ListPartsResult, ListUploadsResult, timestamp};
use crate::expect::verify;
use crate::{
    ByteStream, CompletedPart, MAX_PART_NUMBER, MIN_PART_SIZE, MultipartUpload, ObjectMeta, PartMeta,
    PartOptions, PutOptions, StoreError, StoreResult,
};
use bytes::Bytes;
use chute_core::checksum::HashResult;
use chute_core::{Checksum, ChecksumAlgorithm, Hasher, ObjectKey};
use reqwest::Method;
use time::OffsetDateTime;

/// Refuses an upload id S3 could read as something else (an empty
/// `uploadId=` turns UploadPart into PutObject).
fn check_upload_id(upload_id: &str) -> StoreResult<()> {
    if upload_id.is_empty() || upload_id.len() > 1024 || upload_id.chars().any(char::is_control) {
        return Err(StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        });
    }
    Ok(())
}

/// A part sent: what a completion names, and its checksum if it has one.
pub(super) type SentPart = (CompletedPart, Option<Checksum>);

/// Uploads one part held in memory, with its Content-MD5 and, for an
/// upload with a checksum algorithm, its checksum.
pub(super) async fn send_part(
    client: &S3Client,
    key: &ObjectKey,
    upload_id: &str,
    number: u32,
    data: Bytes,
    algorithm: Option<ChecksumAlgorithm>,
) -> StoreResult<SentPart> {
    let mut hasher = Hasher::new(&algorithm.into_iter().collect::<Vec<_>>());
    hasher.update(&data);
    send_hashed_part(client, key, upload_id, number, vec![data], hasher.finish()).await
}

/// Uploads one part held in memory whose digests `hash` holds (MD5 and at
/// most the one checksum to send).
async fn send_hashed_part(
    client: &S3Client,
    key: &ObjectKey,
    upload_id: &str,
    number: u32,
    data: Vec<Bytes>,
    hash: HashResult,
) -> StoreResult<SentPart> {
    let checksum = hash.checksums.first().cloned();
    let mut req = part_request(key, upload_id, number);
    req.headers.push(md5_header(&hash.md5));
    req.headers.extend(checksum.as_ref().map(checksum_header));
    let resp = client.send(req.body(in_memory(data))).await?;
    let etag = etag_of(&resp).unwrap_or_else(|| hex::encode(hash.md5));
    Ok((
        CompletedPart {
            part_number: number,
            etag,
        },
        checksum,
    ))
}

fn part_request<'a>(key: &'a ObjectKey, upload_id: &str, number: u32) -> Request<'a> {
    Request::new(Method::PUT, Some(key))
        .query("partNumber", number.to_string())
        .query("uploadId", upload_id)
}

/// Aborts its upload when dropped armed (a put cancelled mid-way), or on
/// [`AbortGuard::abort`]; [`AbortGuard::disarm`] once it completed.
pub(super) struct AbortGuard {
    client: S3Client,
    key: ObjectKey,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    pub(super) fn new(client: S3Client, key: ObjectKey, upload_id: String) -> Self {
        Self {
            client,
            key,
            upload_id,
            armed: true,
        }
    }

    pub(super) fn disarm(mut self) {
        self.armed = false;
    }

    /// Aborts the upload now and hands back `cause`.
    pub(super) async fn abort(mut self, cause: StoreError) -> StoreError {
        self.armed = false;
        if let Err(e) = abort_request(&self.client, &self.key, &self.upload_id).await {
            tracing::warn!(upload_id = %self.upload_id, "aborting a failed multipart put: {e}");
        }
        cause
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, key, id) = (
                self.client.clone(),
                self.key.clone(),
                std::mem::take(&mut self.upload_id),
            );
            rt.spawn(async move {
                if let Err(e) = abort_request(&client, &key, &id).await {
                    tracing::warn!(upload_id = %id, "aborting a cancelled multipart put: {e}");
                }
            });
        }
    }
}

async fn abort_request(client: &S3Client, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
    let req = Request::new(Method::DELETE, Some(key)).query("uploadId", upload_id);
    client.send(req).await.map(drop)
}

impl S3Store {
    /// Creates an upload and reads its start time back from the listing.
    pub(super) async fn create_upload(
        &self,
        key: &ObjectKey,
        opts: &PutOptions,
    ) -> StoreResult<MultipartUpload> {
        let upload_id = self.initiate_upload(key, opts).await?;
        // The answer has no time: take S3's from the listing, so the
        // upload compares equal to what list_multipart_uploads shows.
        let initiated = self
            .uploads_page(key.as_str(), None)
            .await
            .ok()
            .and_then(|page| page.uploads.into_iter().find(|u| u.upload_id == upload_id))
            .map_or_else(OffsetDateTime::now_utc, |u| timestamp(&u.initiated));
        Ok(MultipartUpload {
            key: key.clone(),
            upload_id,
            initiated,
        })
    }

    /// Sends CreateMultipartUpload; the new upload's id. Puts and copies
    /// that finish the upload themselves need no more (nor its start time,
    /// which costs a listing).
    pub(super) async fn initiate_upload(&self, key: &ObjectKey, opts: &PutOptions) -> StoreResult<String> {
        let mut req = Request::new(Method::POST, Some(key)).query("uploads", "");
        req.headers = write_headers(&opts.headers, &opts.metadata);
        req.headers
            .extend(opts.checksum_algorithm.map(checksum_algorithm_header));
        let resp = self.client().send(req).await?;
        let ctx = Request::new(Method::POST, Some(key));
        let result: InitiateResult = self
            .client()
            .read_xml(resp, &ctx, "CreateMultipartUpload")
            .await?;
        if let Ok(mut cache) = self.inner.upload_algorithms.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(result.upload_id.clone(), opts.checksum_algorithm);
        }
        Ok(result.upload_id)
    }

    /// One page of ListMultipartUploads.
    async fn uploads_page(
        &self,
        prefix: &str,
        markers: Option<&(String, String)>,
    ) -> StoreResult<ListUploadsResult> {
        let mut req = Request::new(Method::GET, None)
            .query("uploads", "")
            .query("prefix", prefix);
        if let Some((k, u)) = markers {
            req = req
                .query("key-marker", k.clone())
                .query("upload-id-marker", u.clone());
        }
        let resp = self.client().send(req).await?;
        let ctx = Request::new(Method::GET, None);
        self.client().read_xml(resp, &ctx, "ListMultipartUploads").await
    }

    /// The upload's checksum algorithm: remembered from its creation, or
    /// read from ListParts (which also checks the id belongs to `key`).
    async fn upload_algorithm(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> StoreResult<Option<ChecksumAlgorithm>> {
        let cached = self
            .inner
            .upload_algorithms
            .lock()
            .ok()
            .and_then(|c| c.get(upload_id).copied());
        match cached {
            Some(a) => Ok(a),
            None => Ok(self.all_parts(key, upload_id).await?.1),
        }
    }

    pub(super) async fn put_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: u32,
        mut body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(StoreError::InvalidPartNumber(number));
        }
        check_upload_id(upload_id)?;
        let algorithm = self.upload_algorithm(key, upload_id).await?;
        let limit = self.inner.tuning.part_size;
        if let Some(len) = opts.expected_len
            && len > limit as u64
        {
            return self
                .put_part_streamed(key, upload_id, number, body, opts, algorithm, len)
                .await;
        }
        let Buffered::Whole(buf) = buffer_up_to(&mut body, limit, opts.expected_len).await? else {
            return Err(StoreError::Unsupported(format!(
                "take a part of unknown length above {limit} bytes: S3 needs the length first; \
                 give it in PartOptions::expected_len"
            )));
        };
        // One hash serves the check and the part's Content-MD5 and checksum.
        let algorithm = opts.expected_checksum.as_ref().map(|c| c.algorithm).or(algorithm);
        let mut hasher = Hasher::new(&algorithm.into_iter().collect::<Vec<_>>());
        let size = buf.len() as u64;
        let pieces = buf.into_pieces();
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
        let (part, checksum) = send_hashed_part(self.client(), key, upload_id, number, pieces, hash).await?;
        Ok(PartMeta {
            part_number: number,
            size,
            etag: part.etag,
            last_modified: OffsetDateTime::now_utc(),
            checksum,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_part_streamed(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        opts: PartOptions,
        algorithm: Option<ChecksumAlgorithm>,
        len: u64,
    ) -> StoreResult<PartMeta> {
        let trailer = algorithm.filter(|a| opts.expected_checksum.as_ref().is_none_or(|c| c.algorithm != *a));
        let expect = Expectations {
            md5: opts.expected_md5,
            checksum: opts.expected_checksum.clone(),
            ..Expectations::default()
        };
        let mut req = part_request(key, upload_id, number);
        req.headers.extend(opts.expected_md5.as_ref().map(md5_header));
        req.headers
            .extend(opts.expected_checksum.as_ref().map(checksum_header));
        let (resp, hash) = send_streamed(self.client(), req, body, expect, trailer, len, "part").await?;
        let wanted = opts.expected_checksum.as_ref().map(|c| c.algorithm).or(algorithm);
        Ok(PartMeta {
            part_number: number,
            size: hash.len,
            etag: etag_of(&resp).unwrap_or_else(|| hex::encode(hash.md5)),
            last_modified: OffsetDateTime::now_utc(),
            checksum: response_checksum(resp.headers())
                .or_else(|| hash.checksums.into_iter().find(|c| Some(c.algorithm) == wanted)),
        })
    }

    /// Every part (ListParts, all pages) and the upload's checksum
    /// algorithm as far as the answer tells it.
    pub(super) async fn all_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> StoreResult<(Vec<PartMeta>, Option<ChecksumAlgorithm>)> {
        check_upload_id(upload_id)?;
        let mut parts = Vec::new();
        let mut algorithm = None;
        let mut marker: Option<String> = None;
        loop {
            let mut req = Request::new(Method::GET, Some(key)).query("uploadId", upload_id);
            if let Some(m) = &marker {
                req = req.query("part-number-marker", m.clone());
            }
            let ctx = Request::new(Method::GET, Some(key)).query("uploadId", upload_id);
            let resp = self.client().send(req).await?;
            let page: ListPartsResult = self.client().read_xml(resp, &ctx, "ListParts").await?;
            algorithm = algorithm.or_else(|| {
                page.checksum_algorithm
                    .as_deref()
                    .and_then(ChecksumAlgorithm::parse)
            });
            for p in &page.parts {
                let checksum = p.checksum();
                algorithm = algorithm.or(checksum.as_ref().map(|c| c.algorithm));
                parts.push(PartMeta {
                    part_number: p.part_number,
                    size: p.size,
                    etag: unquote(&p.etag),
                    last_modified: timestamp(&p.last_modified),
                    checksum,
                });
            }
            match page.next_part_number_marker {
                Some(m) if page.is_truncated && marker.as_ref() != Some(&m) => marker = Some(m),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok((parts, algorithm))
    }

    pub(super) async fn complete_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        check_upload_id(upload_id)?;
        let (listed, _) = self.all_parts(key, upload_id).await?;
        if parts.is_empty() {
            return Err(StoreError::InvalidPart { part_number: 0 });
        }
        if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
            return Err(StoreError::InvalidPartOrder);
        }
        // Every part must exist before sizes count, as S3 checks them.
        let stored: Vec<&PartMeta> = parts
            .iter()
            .map(|p| {
                listed
                    .iter()
                    .find(|l| {
                        l.part_number == p.part_number && l.etag.eq_ignore_ascii_case(&unquote(&p.etag))
                    })
                    .ok_or(StoreError::InvalidPart {
                        part_number: p.part_number,
                    })
            })
            .collect::<StoreResult<_>>()?;
        if let Some(small) = stored[..stored.len() - 1].iter().find(|s| s.size < MIN_PART_SIZE) {
            return Err(StoreError::PartTooSmall {
                part_number: small.part_number,
                size: small.size,
            });
        }
        let chosen: Vec<SentPart> = parts
            .iter()
            .zip(&stored)
            .map(|(p, s)| (p.clone(), s.checksum.clone()))
            .collect();
        let result = self.finish_upload(key, upload_id, &chosen, false).await?;
        let mut meta = self.head_object(key).await?;
        meta.parts_count = Some(u32::try_from(parts.len()).unwrap_or(u32::MAX));
        if meta.checksum.is_none() {
            meta.checksum = result.checksum;
        }
        Ok(meta)
    }

    /// Sends CompleteMultipartUpload for `parts`; the ETag and checksum S3
    /// reports.
    pub(super) async fn finish_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[SentPart],
        create_only: bool,
    ) -> StoreResult<ObjectMeta> {
        let body = xml::complete_body(parts);
        let mut req = Request::new(Method::POST, Some(key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml");
        if create_only {
            req = req.header("if-none-match", "*");
        }
        let resp = self
            .client()
            .send(req.body(Body::Bytes(Bytes::from(body))))
            .await?;
        let date = date_of(&resp);
        let ctx = Request::new(Method::POST, Some(key)).query("uploadId", upload_id);
        let result: EtagResult = self
            .client()
            .read_xml(resp, &ctx, "CompleteMultipartUpload")
            .await?;
        if let Ok(mut cache) = self.inner.upload_algorithms.lock() {
            cache.remove(upload_id);
        }
        let etag = unquote(&result.etag);
        Ok(ObjectMeta {
            key: key.clone(),
            size: 0,
            parts_count: super::headers::parts_count(&etag),
            etag,
            last_modified: date.unwrap_or_else(OffsetDateTime::now_utc),
            headers: Default::default(),
            metadata: Default::default(),
            checksum: result.checksum(),
        })
    }

    pub(super) async fn abort_upload(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        check_upload_id(upload_id)?;
        abort_request(self.client(), key, upload_id).await?;
        if let Ok(mut cache) = self.inner.upload_algorithms.lock() {
            cache.remove(upload_id);
        }
        Ok(())
    }

    pub(super) async fn list_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let page = self.uploads_page(prefix, markers.as_ref()).await?;
            for u in &page.uploads {
                // Keys Chute could not have written are not its uploads.
                if let Ok(key) = ObjectKey::parse(&u.key) {
                    out.push(MultipartUpload {
                        key,
                        upload_id: u.upload_id.clone(),
                        initiated: timestamp(&u.initiated),
                    });
                }
            }
            let next = page
                .next_key_marker
                .clone()
                .zip(page.next_upload_id_marker.clone());
            match next {
                Some(n) if page.is_truncated && markers.as_ref() != Some(&n) => markers = Some(n),
                _ => break,
            }
        }
        out.sort_by(|a, b| {
            a.key
                .as_str()
                .cmp(b.key.as_str())
                .then(a.initiated.cmp(&b.initiated))
        });
        Ok(out)
    }
}
