//! `chute upload --tus`: a tus 1.0 client for Chute's `/files/` or any
//! tus server. `OPTIONS` says which `Upload-Checksum` algorithms the
//! server takes (crc32, else sha256, else sha1; none if it lists none);
//! creation (`POST` with `Upload-Length` and `Upload-Metadata` filename
//! and filetype) gives the upload URL, which the state file records; then
//! `PATCH`es of `--chunk-size` bytes, each with its checksum. A failed
//! PATCH, or a new run, asks `HEAD` for the server's offset and goes on
//! from there. Chute answers the completing request (and later HEADs) with
//! a `Chute-Receipt` header, printed like the API's receipts.

use super::body::counted;
use super::direct::{check_unchanged, read_at};
use super::error::UploadError;
use super::http::{Failure, RetryPolicy, SMALL_REQUEST_TIMEOUT, answered_within, send};
use super::state::{Protocol, UploadState};
use super::{FileJob, Outcome};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chute_core::ChecksumAlgorithm;
use reqwest::header::HeaderMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const TUS_VERSION: &str = "1.0.0";
const RECEIPT_HEADER: &str = "chute-receipt";

/// A tus server and how to talk to it.
#[derive(Debug, Clone)]
pub struct TusClient {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The creation endpoint, e.g. `http://127.0.0.1:8080/files/`.
    pub endpoint: reqwest::Url,
    /// Sent as `Authorization: Bearer` on every request to the endpoint's
    /// origin (never to an upload URL on another host).
    pub grant: Option<String>,
    /// Retries of each request.
    pub retry: RetryPolicy,
    /// Bytes per PATCH.
    pub chunk_size: u64,
}

/// Where an upload stands on the server.
#[derive(Debug)]
struct ServerOffset {
    offset: u64,
    receipt: Option<String>,
}

impl TusClient {
    /// Uploads `job`, resuming a recorded upload when the server still has it.
    pub async fn upload(&self, job: &FileJob) -> Result<Outcome, UploadError> {
        let size = job.fingerprint.size;
        let checksum = self.checksum_algorithm().await;
        let (url, mut at, resumed) = match self.resume(job).await? {
            Some(found) => found,
            None => self.create(job).await?,
        };
        job.progress.add(at.offset);
        let mut sent = 0u64;
        while at.offset < size {
            // The last PATCH completes the object: never from a changed file.
            if let Err(e) = check_unchanged(job) {
                self.terminate(&url).await;
                return Err(e);
            }
            let len = self.chunk_size.min(size - at.offset);
            let data = read_at(job, at.offset, len).await?;
            let before = at.offset;
            at = self.patch(job, &url, before, data, checksum).await?;
            check_offset(at.offset, before, size)?;
            if at.offset < before {
                // The server lost bytes it had taken (a store that keeps
                // only flushed chunks, after a crash): go on from its offset.
                job.progress.take_back(before - at.offset);
            }
            sent += at.offset.saturating_sub(before);
            let mut state = self.state(job, &url);
            state.bytes_done = at.offset;
            job.state_file.save(&state)?;
        }
        if at.receipt.is_none() {
            // Completed by an earlier run, or a server that sends the
            // receipt only on HEAD.
            at = self.head(&url).await?.unwrap_or(at);
        }
        job.state_file.remove();
        Ok(Outcome::from_tus(
            url.as_str(),
            at.receipt,
            size,
            sent,
            resumed,
            checksum,
        ))
    }

    /// `DELETE` (termination), best effort, for an upload that can never
    /// finish.
    async fn terminate(&self, url: &reqwest::Url) {
        let req = self
            .client
            .delete(url.clone())
            .timeout(SMALL_REQUEST_TIMEOUT)
            .header("tus-resumable", TUS_VERSION);
        if let Err(e) = send(self.authorised(req, url)).await {
            tracing::debug!(url = %url, failure = ?e, "could not terminate the tus upload");
        }
    }

    fn state(&self, job: &FileJob, url: &reqwest::Url) -> UploadState {
        let mut s = UploadState::new(
            Protocol::Tus,
            self.endpoint.as_str(),
            &job.path,
            job.fingerprint.size,
            &job.fingerprint.hex,
        );
        s.tus_url = Some(url.to_string());
        s
    }

    /// `req` with the grant as a bearer when `url` is on the endpoint's
    /// origin: servers that authorise every request (a hook or proxy in
    /// front of tusd, `@tus/server`'s `onIncomingRequest`) need it, and a
    /// `Location` on another host must not receive it.
    fn authorised(&self, req: reqwest::RequestBuilder, url: &reqwest::Url) -> reqwest::RequestBuilder {
        match &self.grant {
            Some(g) if url.origin() == self.endpoint.origin() => req.bearer_auth(g),
            _ => req,
        }
    }

    /// The checksum to send with each PATCH, from `OPTIONS` (none when the
    /// server does not answer it or lists no algorithm we compute).
    async fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
        let req = self
            .client
            .request(reqwest::Method::OPTIONS, self.endpoint.clone())
            .timeout(SMALL_REQUEST_TIMEOUT)
            .header("tus-resumable", TUS_VERSION);
        let res = send(self.authorised(req, &self.endpoint)).await.ok()?;
        let listed = header(res.headers(), "tus-checksum-algorithm")?.to_ascii_lowercase();
        let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
        [
            ("crc32", ChecksumAlgorithm::Crc32),
            ("sha256", ChecksumAlgorithm::Sha256),
            ("sha1", ChecksumAlgorithm::Sha1),
        ]
        .into_iter()
        .find(|(name, _)| listed.contains(name))
        .map(|(_, a)| a)
    }

    /// The recorded upload and its offset, if the server still has it.
    async fn resume(&self, job: &FileJob) -> Result<Option<(reqwest::Url, ServerOffset, bool)>, UploadError> {
        let Some(saved) = job.state_file.load(&job.fingerprint.hex) else {
            return Ok(None);
        };
        let Some(url) = saved.tus_url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) else {
            job.state_file.remove();
            return Ok(None);
        };
        match self.head(&url).await? {
            Some(at) if at.offset > job.fingerprint.size => Err(UploadError::bad_answer(
                "resuming (HEAD)",
                format!(
                    "the server holds {} bytes of {url}, more than the file's {}",
                    at.offset, job.fingerprint.size
                ),
            )),
            Some(at) => {
                job.note_resumed(&saved);
                Ok(Some((url, at, true)))
            }
            None => {
                job.progress.println(&format!(
                    "{}: the tus server no longer has {url} (expired or terminated); starting over",
                    job.path.display()
                ));
                job.state_file.remove();
                Ok(None)
            }
        }
    }

    /// `HEAD`: the server's offset, or `None` when the upload is gone.
    async fn head(&self, url: &reqwest::Url) -> Result<Option<ServerOffset>, UploadError> {
        let what = "asking for the offset (HEAD)";
        let got = self
            .retry
            .run(what, |_| async {
                let res = send(
                    self.authorised(
                        self.client
                            .head(url.clone())
                            .timeout(SMALL_REQUEST_TIMEOUT)
                            .header("tus-resumable", TUS_VERSION),
                        url,
                    ),
                )
                .await?;
                offset_of(res.headers(), what).map_err(Failure::Final)
            })
            .await;
        match got {
            Ok(at) => Ok(Some(at)),
            Err(UploadError::Refused {
                status: 403 | 404 | 410,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST`: creates the upload and records its URL.
    async fn create(&self, job: &FileJob) -> Result<(reqwest::Url, ServerOffset, bool), UploadError> {
        let what = "creating the tus upload (POST)";
        let metadata = format!(
            "filename {},filetype {}",
            B64.encode(&job.name),
            B64.encode(&job.content_type)
        );
        let (url, receipt) = self
            .retry
            .run(what, |_| {
                let mut req = self
                    .client
                    .post(self.endpoint.clone())
                    .timeout(SMALL_REQUEST_TIMEOUT)
                    .header("tus-resumable", TUS_VERSION)
                    .header("upload-length", job.fingerprint.size)
                    .header("upload-metadata", &metadata)
                    .header("content-length", 0);
                req = self.authorised(req, &self.endpoint);
                async {
                    let res = send(req).await?;
                    let location = header(res.headers(), "location")
                        .ok_or_else(|| Failure::Final(UploadError::bad_answer(what, "no Location header")))?;
                    let url = self.endpoint.join(&location).map_err(|e| {
                        Failure::Final(UploadError::bad_answer(
                            what,
                            format!("Location {location:?}: {e}"),
                        ))
                    })?;
                    Ok((url, header(res.headers(), RECEIPT_HEADER)))
                }
            })
            .await?;
        if let Err(e) = job.state_file.save(&self.state(job, &url)) {
            // Unrecorded, it could never be resumed: do not leave it behind.
            self.terminate(&url).await;
            return Err(e);
        }
        Ok((url, ServerOffset { offset: 0, receipt }, false))
    }

    /// One `PATCH` of `data` at `offset`, with retries that first ask
    /// `HEAD` where the server stands (a cut-off PATCH may have kept some
    /// bytes): returns the new offset, after this chunk or part of it.
    async fn patch(
        &self,
        job: &FileJob,
        url: &reqwest::Url,
        offset: u64,
        data: Bytes,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<ServerOffset, UploadError> {
        let what = format!("uploading at offset {offset} (PATCH)");
        let sum = checksum.map(|a| {
            let name = a.as_str().to_ascii_lowercase();
            format!("{name} {}", B64.encode(a.digest(&data)))
        });
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = Arc::new(AtomicU64::new(0));
            let mut req = self
                .client
                .patch(url.clone())
                .header("tus-resumable", TUS_VERSION)
                .header("upload-offset", offset)
                .header("content-type", "application/offset+octet-stream")
                .header("content-length", data.len())
                .body(counted(data.clone(), &job.progress, &sent));
            if let Some(s) = &sum {
                req = req.header("upload-checksum", s);
            }
            req = self.authorised(req, url);
            let answer = answered_within(send(req), &sent, data.len() as u64, self.retry.answer_timeout);
            let failure = match answer.await {
                Ok(res) => return offset_of(res.headers(), &what),
                Err(f) => f,
            };
            job.progress.take_back(sent.swap(0, Ordering::Relaxed));
            // 409 (offset mismatch) and 423 (locked by a PATCH the server
            // has not noticed is dead) are cured by asking HEAD and waiting.
            let transient = failure.is_transient()
                || matches!(
                    failure,
                    Failure::Status {
                        status: 409 | 423,
                        ..
                    }
                );
            if !transient || attempt >= self.retry.attempts {
                return Err(failure.into_error(&what, attempt));
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
            // The server may have kept part of the body: go on from its offset.
            if let Some(at) = self.head(url).await?
                && at.offset != offset
            {
                job.progress.add(at.offset.saturating_sub(offset));
                return Ok(at);
            }
        }
    }
}

/// Refuses a PATCH answer whose offset did not move, or moved past the
/// file's end; an offset behind the chunk's start is the server's to give.
fn check_offset(offset: u64, before: u64, size: u64) -> Result<(), UploadError> {
    let what = "uploading (PATCH)";
    if offset == before {
        Err(UploadError::bad_answer(
            what,
            format!("the server's offset stayed at {before}"),
        ))
    } else if offset > size {
        Err(UploadError::bad_answer(
            what,
            format!("the server's offset {offset} is past the file's {size} bytes"),
        ))
    } else {
        Ok(())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn offset_of(headers: &HeaderMap, what: &str) -> Result<ServerOffset, UploadError> {
    let offset = header(headers, "upload-offset")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| UploadError::bad_answer(what, "no Upload-Offset header"))?;
    Ok(ServerOffset {
        offset,
        receipt: header(headers, RECEIPT_HEADER),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_may_go_back_but_not_stay_or_pass_the_end() {
        assert!(check_offset(10, 5, 20).is_ok());
        assert!(check_offset(0, 5, 20).is_ok());
        assert!(check_offset(5, 5, 20).is_err());
        assert!(check_offset(21, 5, 20).is_err());
    }

    #[test]
    fn offsets_and_receipts_from_headers() {
        let mut h = HeaderMap::new();
        assert!(offset_of(&h, "x").is_err());
        h.insert("upload-offset", "42".parse().unwrap());
        h.insert("chute-receipt", "jwt".parse().unwrap());
        let at = offset_of(&h, "x").unwrap();
        assert_eq!((at.offset, at.receipt.as_deref()), (42, Some("jwt")));
    }
}
