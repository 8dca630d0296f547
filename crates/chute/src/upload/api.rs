//! The Chute upload API as the widget uses it (README, "The upload API"):
//! `POST /api/uploads` with the grant, `GET /api/uploads/{id}` for the
//! parts the store holds, `POST /api/uploads/{id}/parts` for presigned
//! part URLs, `POST /api/uploads/{id}/complete` for the receipt. Every
//! call is retried on transient failures by [`RetryPolicy`].

use super::error::UploadError;
use super::http::{RetryPolicy, SMALL_REQUEST_TIMEOUT, send, send_json};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A client of one Chute server.
#[derive(Debug, Clone)]
pub struct ChuteApi {
    client: reqwest::Client,
    base: String,
    grant: Option<String>,
    retry: RetryPolicy,
}

/// What `POST /api/uploads` is asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateRequest {
    /// The file's name (the server sanitises it).
    pub filename: String,
    /// Its size.
    pub size: u64,
    /// The declared media type.
    #[serde(rename = "type")]
    pub content_type: String,
    /// `put` or `multipart`.
    pub method: &'static str,
    /// Multipart: the part size asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Single request: the whole file's checksum, bound into the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumBody>,
    /// Multipart: the algorithm of the per-part checksums.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_checksum_algorithm: Option<&'static str>,
}

/// A checksum as the API takes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChecksumBody {
    /// Algorithm name, e.g. `sha256`.
    pub algorithm: &'static str,
    /// Base64 digest.
    pub value: String,
}

/// A presigned request: URL and the headers to send exactly.
#[derive(Debug, Clone, Deserialize)]
pub struct Signed {
    /// The URL.
    pub url: String,
    /// Headers, signed ones included.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The multipart part of a created upload.
#[derive(Debug, Clone, Deserialize)]
pub struct MultipartInfo {
    /// Every part but the last has this size.
    pub part_size: u64,
    /// How many parts.
    pub part_count: u32,
}

/// A created upload.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    /// The upload id.
    pub id: String,
    /// The upload token for later calls.
    pub token: String,
    /// `put`: the request to send.
    #[serde(default)]
    pub put: Option<Signed>,
    /// `multipart`: its shape.
    #[serde(default)]
    pub multipart: Option<MultipartInfo>,
}

/// `GET /api/uploads/{id}`, reduced to what resuming needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// `uploading`, `uploaded`, `pending` or `gone`.
    pub state: String,
    /// The part size.
    #[serde(default)]
    pub part_size: Option<u64>,
    /// The declared size.
    pub size: u64,
    /// Parts the store holds.
    #[serde(default)]
    pub parts: Vec<StoredPart>,
}

/// A part the store holds.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredPart {
    /// Part number.
    pub number: u32,
    /// Its size.
    pub size: u64,
}

/// A completed upload: the receipt and the claims it states.
#[derive(Debug, Clone, Deserialize)]
pub struct Completed {
    /// The receipt JWT.
    pub receipt: String,
    /// The receipt's claims (bucket, key, size, etag, checksum, type ...).
    pub object: serde_json::Value,
}

impl ChuteApi {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(client: reqwest::Client, base: &str, grant: Option<String>, retry: RetryPolicy) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            grant,
            retry,
        }
    }

    /// The server URL (the destination in state files).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client, for the presigned requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The retry policy, for the presigned requests.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// One API call, retried by the policy: `build` makes the request from
    /// the client each attempt; every call has the small-request timeout.
    async fn call(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, UploadError> {
        self.retry
            .run(what, |_| {
                send_json(build(&self.client).timeout(SMALL_REQUEST_TIMEOUT), what)
            })
            .await
    }

    /// `POST /api/uploads`.
    pub async fn create(&self, req: &CreateRequest) -> Result<Created, UploadError> {
        let what = "creating the upload (POST /api/uploads)";
        let url = format!("{}/api/uploads", self.base);
        let body = serde_json::to_vec(req).map_err(|e| UploadError::bad_answer(what, e.to_string()))?;
        let v = self
            .call(what, |client| {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                match &self.grant {
                    Some(g) => r.bearer_auth(g),
                    None => r,
                }
            })
            .await
            .map_err(grant_hint)?;
        parse(what, v)
    }

    /// `GET /api/uploads/{id}`: `None` when the server no longer knows the
    /// upload (expired token, aborted or reaped).
    pub async fn status(&self, id: &str, token: &str) -> Result<Option<Status>, UploadError> {
        let what = "asking for the upload's parts (GET /api/uploads/{id})";
        let url = format!("{}/api/uploads/{id}", self.base);
        let got = self
            .call(what, |client| client.get(&url).bearer_auth(token))
            .await;
        match got {
            Ok(v) => parse(what, v).map(Some),
            Err(UploadError::Refused {
                status: 401 | 403 | 404 | 410,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/uploads/{id}/parts` for one part, binding its checksum.
    pub async fn part_url(
        &self,
        id: &str,
        token: &str,
        number: u32,
        checksum: &str,
    ) -> Result<Signed, UploadError> {
        let what = "signing a part URL (POST /api/uploads/{id}/parts)";
        let url = format!("{}/api/uploads/{id}/parts", self.base);
        let body = serde_json::json!({"parts": [number], "checksums": {number.to_string(): checksum}});
        let v = self
            .call(what, |client| {
                client.post(&url).bearer_auth(token).json_body(&body)
            })
            .await?;
        #[derive(Deserialize)]
        struct Parts {
            parts: Vec<Signed>,
        }
        let parts: Parts = parse(what, v)?;
        parts
            .parts
            .into_iter()
            .next()
            .ok_or_else(|| UploadError::bad_answer(what, format!("no URL for part {number}")))
    }

    /// `DELETE /api/uploads/{id}`, best effort: for an upload that can
    /// never finish, so its parts do not wait for expiry.
    pub async fn abort(&self, id: &str, token: &str) {
        let url = format!("{}/api/uploads/{id}", self.base);
        if let Err(e) = send(
            self.client
                .delete(&url)
                .timeout(SMALL_REQUEST_TIMEOUT)
                .bearer_auth(token),
        )
        .await
        {
            tracing::debug!(id, failure = ?e, "could not abort the upload");
        }
    }

    /// `POST /api/uploads/{id}/complete`.
    pub async fn complete(&self, id: &str, token: &str) -> Result<Completed, UploadError> {
        let what = "completing the upload (POST /api/uploads/{id}/complete)";
        let url = format!("{}/api/uploads/{id}/complete", self.base);
        let v = self
            .call(what, |client| client.post(&url).bearer_auth(token))
            .await?;
        parse(what, v)
    }
}

/// A refused grant says where the grant comes from.
fn grant_hint(e: UploadError) -> UploadError {
    match e {
        UploadError::Refused {
            what,
            status: status @ (401 | 403),
            code,
            message,
        } => UploadError::Refused {
            what,
            status,
            code,
            message: format!("{message}; check the grant (--grant or CHUTE_GRANT)"),
        },
        other => other,
    }
}

/// JSON bodies without reqwest's `json` feature.
trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T, UploadError> {
    serde_json::from_value(v).map_err(|e| UploadError::bad_answer(what, e.to_string()))
}
