//! Creating an upload: check the request against the grant, pick the key
//! (`tmp/<id>/<sanitised filename>`), choose POST form, PUT or multipart,
//! and sign exactly that.

use super::claims::{UploadClaims, UploadMethod};
use super::{ApiError, Lifecycle, STATE_PREFIX, SignedRequest, TMP_PREFIX, unix_after};
use crate::hooks::EventKind;
use axum::http::StatusCode;
use bytes::Bytes;
use chute_core::token::UPLOAD_AUDIENCE;
use chute_core::{Checksum, ChecksumAlgorithm, Grant, ObjectKey, sanitize_filename};
use chute_store::{MAX_PART_NUMBER, MIN_PART_SIZE, PutOptions, StoreError};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// The largest part S3 accepts.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The most `max_files` a grant may name (each use costs a store write).
const MAX_FILES_CAP: u32 = 10_000;
/// Create-only writes one upload may spend racing others for a slot.
const MAX_SLOT_ATTEMPTS: usize = 16;

/// A client's request for an upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The file's name (sanitised before use).
    pub filename: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The declared media type (default `application/octet-stream`).
    #[serde(default, rename = "type")]
    pub content_type: Option<String>,
    /// `post`, `put` or `multipart`; chosen by size when absent.
    #[serde(default)]
    pub method: Option<UploadMethod>,
    /// Multipart part size; all parts but the last get exactly this size.
    #[serde(default)]
    pub part_size: Option<u64>,
    /// A whole-object checksum (`{"algorithm": "sha256", "value": base64}`),
    /// verified on completion; for POST and PUT also bound into the
    /// signature so the store refuses other bytes.
    #[serde(default)]
    pub checksum: Option<ChecksumSpec>,
    /// For multipart: the algorithm of per-part checksums the client will
    /// send (`sha256` or `crc32c`, ...).
    #[serde(default)]
    pub part_checksum_algorithm: Option<String>,
}

/// A checksum as clients send it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumSpec {
    /// `crc32`, `crc32c`, `crc64nvme`, `sha1` or `sha256`.
    pub algorithm: String,
    /// The base64 digest.
    pub value: String,
}

impl ChecksumSpec {
    fn parse(&self) -> Result<Checksum, ApiError> {
        let algorithm = parse_algorithm(&self.algorithm)?;
        Checksum::from_base64(algorithm, &self.value)
            .map_err(|e| ApiError::bad_request("bad_checksum", e.to_string()))
    }
}

fn parse_algorithm(name: &str) -> Result<ChecksumAlgorithm, ApiError> {
    ChecksumAlgorithm::parse(name).ok_or_else(|| {
        ApiError::bad_request(
            "bad_checksum",
            format!("checksum algorithm {name:?} is not one of crc32, crc32c, crc64nvme, sha1, sha256"),
        )
    })
}

/// One presigned part URL.
#[derive(Debug, Clone, Serialize)]
pub struct PartUrl {
    /// Part number, 1-based.
    pub number: u32,
    /// The exact size the part must have.
    pub size: u64,
    /// The presigned PUT.
    pub url: String,
    /// Headers to send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// A created upload, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The upload id.
    pub id: String,
    /// The upload token: send it as `Authorization: Bearer` on later calls.
    pub token: String,
    /// The bucket.
    pub bucket: String,
    /// The temporary key the bytes go to.
    pub key: String,
    /// How the bytes travel.
    pub method: UploadMethod,
    /// When the upload token and URLs expire (RFC 3339).
    pub expires_at: String,
    /// For `post`: the form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<PostForm>,
    /// For `put`: the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put: Option<SignedRequest>,
    /// For `multipart`: the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartInfo>,
    /// The claims behind the token (not serialised).
    #[serde(skip)]
    pub claims: Option<UploadClaims>,
}

/// A POST form.
#[derive(Debug, Clone, Serialize)]
pub struct PostForm {
    /// The form action.
    pub url: String,
    /// Fields to send, in order, before the `file` field.
    pub fields: OrderedFields,
}

/// A multipart upload's shape and its first part URLs.
#[derive(Debug, Clone, Serialize)]
pub struct MultipartInfo {
    /// The store's multipart upload id.
    pub upload_id: String,
    /// Every part but the last has exactly this size.
    pub part_size: u64,
    /// How many parts the file has.
    pub part_count: u32,
    /// The first batch of part URLs; ask `POST /api/uploads/{id}/parts` for more.
    pub parts: Vec<PartUrl>,
}

/// Ordered `(name, value)` form fields, serialised as a JSON object.
#[derive(Debug, Clone, Default)]
pub struct OrderedFields(pub Vec<(String, String)>);

impl Serialize for OrderedFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Lifecycle {
    /// Creates an upload of `req` under `grant`.
    pub async fn create(&self, grant: Grant, req: CreateRequest) -> Result<Created, ApiError> {
        let settings = self.settings();
        let now = OffsetDateTime::now_utc();
        if req.filename.is_empty() || req.filename.len() > 1024 {
            return Err(ApiError::bad_request(
                "bad_filename",
                "filename must be 1 to 1024 bytes",
            ));
        }
        let content_type = match req.content_type.as_deref().map(str::trim) {
            None | Some("") => "application/octet-stream".to_owned(),
            Some(t) => normalize_type(t)?,
        };
        let filename = sanitize_filename(&req.filename);
        if req.size > settings.max_object_size {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "{} bytes is above the largest object this server accepts",
                    req.size
                ),
            ));
        }
        grant.check_file(&filename, &content_type, req.size)?;
        let checksum = req.checksum.as_ref().map(ChecksumSpec::parse).transpose()?;
        let part_checksum = req
            .part_checksum_algorithm
            .as_deref()
            .map(parse_algorithm)
            .transpose()?;
        let method = match req.method {
            Some(m) => m,
            None if req.size > settings.multipart_threshold => UploadMethod::Multipart,
            None => UploadMethod::Post,
        };
        let part_size = match method {
            UploadMethod::Multipart => Some(choose_part_size(req.size, req.part_size)?),
            UploadMethod::Post | UploadMethod::Put => {
                if req.size > MAX_PART_SIZE {
                    return Err(ApiError::bad_request(
                        "use_multipart",
                        "files above 5 GiB need the multipart method",
                    ));
                }
                if req.part_size.is_some() || part_checksum.is_some() {
                    return Err(ApiError::bad_request(
                        "bad_request",
                        "part_size and part_checksum_algorithm apply to multipart uploads only",
                    ));
                }
                None
            }
        };

        let id = new_upload_id();
        let key = ObjectKey::parse(&format!("{TMP_PREFIX}{id}/{filename}"))
            .map_err(|e| ApiError::bad_request("bad_filename", e.to_string()))?;
        let slot = self.claim_file_slot(&grant).await?;
        let ttl = self.upload_ttl(&grant);
        let presign_ttl = settings.presign_ttl.min(ttl);
        let exp = unix_after(now, ttl);

        let mpu = if method == UploadMethod::Multipart {
            let opts = PutOptions {
                headers: chute_store::ObjectHeaders {
                    content_type: Some(content_type.clone()),
                    ..Default::default()
                },
                checksum_algorithm: part_checksum,
                ..Default::default()
            };
            match self.store().create_multipart(&key, opts).await {
                Ok(upload) => Some(upload.upload_id),
                Err(e) => {
                    // The upload never began: give the grant its use back.
                    if let Some(slot) = slot {
                        let _ = self.store().delete(&slot).await;
                    }
                    return Err(ApiError::store("creating the multipart upload", &e));
                }
            }
        } else {
            None
        };

        let claims = UploadClaims {
            aud: UPLOAD_AUDIENCE.into(),
            exp,
            iat: now.unix_timestamp(),
            sub: id.clone(),
            key: key.as_str().to_owned(),
            method,
            size: req.size,
            content_type: content_type.clone(),
            filename: filename.clone(),
            mpu: mpu.clone(),
            part_size,
            part_checksum,
            checksum: checksum.clone(),
            grant,
        };
        let token = self
            .tokens()
            .sign(&claims)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;

        let mut created = Created {
            id: id.clone(),
            token,
            bucket: self.signer().bucket.to_string(),
            key: key.as_str().to_owned(),
            method,
            expires_at: rfc3339(exp),
            post: None,
            put: None,
            multipart: None,
            claims: None,
        };
        match method {
            UploadMethod::Post => {
                let form = self.signer().post_form(
                    &key,
                    req.size,
                    &content_type,
                    checksum.as_ref(),
                    presign_ttl,
                    now,
                );
                created.post = Some(PostForm {
                    url: form.url,
                    fields: OrderedFields(form.fields),
                });
            }
            UploadMethod::Put => {
                let put = self
                    .signer()
                    .put(&key, req.size, &content_type, checksum.as_ref(), presign_ttl, now)
                    .map_err(sign_error)?;
                created.put = Some(put);
            }
            UploadMethod::Multipart => {
                let count = claims.part_count();
                let first: Vec<u32> = (1..=count.min(settings.part_batch)).collect();
                let parts = if part_checksum.is_some() {
                    // Part checksums are bound per URL; the client asks for
                    // each batch with its checksums.
                    Vec::new()
                } else {
                    part_urls(self, &claims, &first, &BTreeMap::new())?
                };
                created.multipart = Some(MultipartInfo {
                    upload_id: mpu.unwrap_or_default(),
                    part_size: part_size.unwrap_or_default(),
                    part_count: count,
                    parts,
                });
            }
        }
        self.emit(
            EventKind::Created,
            &id,
            serde_json::json!({
                "bucket": created.bucket, "key": created.key, "size": req.size,
                "type": content_type, "filename": filename, "method": method,
                "subject": claims.grant.subject,
            }),
        );
        created.claims = Some(claims);
        Ok(created)
    }

    /// Counts one use of a grant with `max_files`: claims the first free
    /// slot `.chute/grants/<grant hash>/<n>` with a create-only write, so
    /// concurrent requests on any instance never over-count.
    pub(super) async fn claim_file_slot(&self, grant: &Grant) -> Result<Option<ObjectKey>, ApiError> {
        let Some(max) = grant.max_files else {
            return Ok(None);
        };
        let Some(id) = &grant.id else {
            return Err(ApiError::bad_request(
                "grant_without_id",
                "a grant with max_files needs an id (jti) to count uploads against",
            ));
        };
        if max == 0 || max > MAX_FILES_CAP {
            return Err(ApiError::bad_request(
                "bad_grant",
                format!("max_files must be 1 to {MAX_FILES_CAP}"),
            ));
        }
        let dir = hex::encode(&Sha256::digest(id.as_bytes())[..16]);
        if !self.store().capabilities().create_only {
            return self.claim_by_listing(&dir, max).await;
        }
        let slot = |n: u32| {
            ObjectKey::parse(&format!("{STATE_PREFIX}grants/{dir}/{n}"))
                .map_err(|e| ApiError::bad_request("bad_grant", e.to_string()))
        };
        // Slots mostly fill in order, so a free one is found with
        // O(log max) HEADs, not one write per used slot.
        let (mut lo, mut hi) = (1u32, max + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store().head(&slot(mid)?).await {
                Ok(_) => lo = mid + 1,
                Err(StoreError::NoSuchKey { .. }) => hi = mid,
                Err(e) => return Err(ApiError::store("counting the grant's uploads", &e)),
            }
        }
        let take = |key: ObjectKey| async move {
            let body = futures::stream::iter([Ok(Bytes::new())]).boxed();
            let opts = PutOptions {
                if_none_match: true,
                ..Default::default()
            };
            match self.store().put(&key, body, opts).await {
                Ok(_) => Ok(Some(key)),
                Err(StoreError::PreconditionFailed { .. }) => Ok(None),
                Err(e) => Err(ApiError::store("counting the grant's uploads", &e)),
            }
        };
        // Racing requests move on to the next slots; a bounded number of tries.
        for n in (lo..=max).take(MAX_SLOT_ATTEMPTS) {
            if let Some(key) = take(slot(n)?).await? {
                return Ok(Some(key));
            }
        }
        // A failed upload gives its slot back out of order, leaving a gap
        // the search above cannot see: look below before refusing (only
        // when the grant looks full, so this costs at most max HEADs).
        for n in 1..lo.min(max + 1) {
            let key = slot(n)?;
            match self.store().head(&key).await {
                Ok(_) => continue,
                Err(StoreError::NoSuchKey { .. }) => {}
                Err(e) => return Err(ApiError::store("counting the grant's uploads", &e)),
            }
            if let Some(key) = take(key).await? {
                return Ok(Some(key));
            }
        }
        Err(ApiError::forbidden(
            "max_files_reached",
            format!("this grant allows {max} file(s) and all have been used"),
        ))
    }
}

impl Lifecycle {
    /// [`Self::claim_file_slot`] for stores without create-only puts
    /// (Garage 2.5): write a uniquely named marker, list the grant's
    /// markers, and keep ours only if it is among the first `max` by
    /// time (ours counts when at most `max` markers are no later than it).
    /// Racing requests never both take the last slot unless the store
    /// stamps a later-finishing write with an earlier time; under a race a
    /// request may be refused that a retry would admit.
    async fn claim_by_listing(&self, dir: &str, max: u32) -> Result<Option<ObjectKey>, ApiError> {
        let prefix = format!("{STATE_PREFIX}grants/{dir}/");
        let mine = ObjectKey::parse(&format!("{prefix}m-{}", uuid::Uuid::new_v4().simple()))
            .map_err(|e| ApiError::bad_request("bad_grant", e.to_string()))?;
        let body = futures::stream::iter([Ok(Bytes::new())]).boxed();
        self.store()
            .put(&mine, body, PutOptions::default())
            .await
            .map_err(|e| ApiError::store("counting the grant's uploads", &e))?;
        let mut markers = Vec::new();
        let mut start_after = None;
        loop {
            let listed = self
                .store()
                .list(&chute_store::ListOptions {
                    prefix: prefix.clone(),
                    delimiter: None,
                    start_after: start_after.clone(),
                    max_keys: 1000,
                })
                .await;
            let page = match listed {
                Ok(page) => page,
                Err(e) => {
                    let _ = self.store().delete(&mine).await;
                    return Err(ApiError::store("counting the grant's uploads", &e));
                }
            };
            markers.extend(
                page.objects
                    .into_iter()
                    .map(|o| (o.last_modified, o.key.as_str().to_owned())),
            );
            match page.next_start_after {
                Some(next) if markers.len() <= (MAX_FILES_CAP as usize) * 2 => start_after = Some(next),
                _ => break,
            }
        }
        // Ours counts if at most `max` markers are no later than it: of
        // two markers with one timestamp, the second to list sees both.
        let my_time = markers.iter().find(|(_, k)| k == mine.as_str()).map(|(t, _)| *t);
        if let Some(t) = my_time
            && markers.iter().filter(|(other, _)| *other <= t).count() <= max as usize
        {
            return Ok(Some(mine));
        }
        let _ = self.store().delete(&mine).await;
        Err(ApiError::forbidden(
            "max_files_reached",
            format!("this grant allows {max} file(s) and all have been used"),
        ))
    }
}

/// Signs part URLs for `numbers` (each checked against the upload's part
/// count), binding checksums given per part number.
pub(super) fn part_urls(
    lifecycle: &Lifecycle,
    claims: &UploadClaims,
    numbers: &[u32],
    checksums: &BTreeMap<u32, String>,
) -> Result<Vec<PartUrl>, ApiError> {
    let Some(mpu) = &claims.mpu else {
        return Err(ApiError::bad_request(
            "not_multipart",
            "this upload is not a multipart upload",
        ));
    };
    if numbers.is_empty() || numbers.len() > 1000 {
        return Err(ApiError::bad_request(
            "bad_parts",
            "ask for 1 to 1000 part numbers at a time",
        ));
    }
    let count = claims.part_count();
    let key = super::tmp_key(claims)?;
    let now = OffsetDateTime::now_utc();
    let remaining = claims.exp - now.unix_timestamp();
    if remaining <= 0 {
        return Err(ApiError::unauthorized("the upload expired"));
    }
    let ttl = lifecycle
        .settings()
        .presign_ttl
        .min(std::time::Duration::from_secs(
            u64::try_from(remaining).unwrap_or(1),
        ));
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(numbers.len());
    for &n in numbers {
        if n == 0 || n > count {
            return Err(ApiError::bad_request(
                "bad_parts",
                format!("part number {n} is outside 1..={count} for this upload"),
            ));
        }
        if seen.insert(n, ()).is_some() {
            continue;
        }
        let checksum = match (claims.part_checksum, checksums.get(&n)) {
            (Some(alg), Some(value)) => Some(
                Checksum::from_base64(alg, value)
                    .map_err(|e| ApiError::bad_request("bad_checksum", format!("part {n}: {e}")))?,
            ),
            (Some(_), None) => {
                return Err(ApiError::bad_request(
                    "checksum_required",
                    format!("this upload declared part checksums; part {n} has none"),
                ));
            }
            (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "bad_checksum",
                    "part checksums need part_checksum_algorithm when the upload is created",
                ));
            }
            (None, None) => None,
        };
        let size = claims.part_len(n);
        let signed = lifecycle
            .signer()
            .part(&key, mpu, n, size, checksum.as_ref(), ttl, now)
            .map_err(sign_error)?;
        out.push(PartUrl {
            number: n,
            size,
            url: signed.url,
            headers: signed.headers,
        });
    }
    Ok(out)
}

/// max(5 MiB, ceil(size / 10,000)), or the client's uniform size when it
/// fits S3's limits.
pub(crate) fn choose_part_size(size: u64, requested: Option<u64>) -> Result<u64, ApiError> {
    let min_for_count = size.div_ceil(u64::from(MAX_PART_NUMBER));
    match requested {
        Some(ps) => {
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&ps) {
                return Err(ApiError::bad_request(
                    "bad_part_size",
                    "part_size must be 5 MiB to 5 GiB",
                ));
            }
            if ps < min_for_count {
                return Err(ApiError::bad_request(
                    "bad_part_size",
                    format!("part_size {ps} needs more than 10,000 parts; use at least {min_for_count}"),
                ));
            }
            Ok(ps)
        }
        None => Ok(MIN_PART_SIZE.max(min_for_count)),
    }
}

/// A fresh upload id: 128 random bits, lowercase base32 without padding
/// (26 characters, safe in keys and URLs).
pub(crate) fn new_upload_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits = uuid::Uuid::new_v4().as_u128();
    (0..26)
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect()
}

/// A media type checked for shape (`type/subtype`, token characters,
/// optional parameters) and lowercased.
pub(super) fn normalize_type(t: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("bad_type", format!("{t:?} is not a media type like image/png"));
    if t.len() > 255 || t.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
        return Err(bad());
    }
    let essence = t.split(';').next().unwrap_or("").trim();
    let (major, minor) = essence.split_once('/').ok_or_else(bad)?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !token(major) || !token(minor) {
        return Err(bad());
    }
    Ok(t.trim().to_ascii_lowercase())
}

fn sign_error(e: chute_core::SignError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sign_failed", e.to_string())
}

pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes() {
        assert_eq!(choose_part_size(1, None).unwrap(), MIN_PART_SIZE);
        let big = 5 * 1024 * 1024 * 1024 * 1024;
        let ps = choose_part_size(big, None).unwrap();
        assert!(big.div_ceil(ps) <= 10_000);
        assert!(choose_part_size(100 << 20, Some(1 << 20)).is_err());
        assert!(choose_part_size(big, Some(MIN_PART_SIZE)).is_err());
        assert_eq!(choose_part_size(100 << 20, Some(8 << 20)).unwrap(), 8 << 20);
    }

    #[test]
    fn ids_are_distinct_and_key_safe() {
        let a = new_upload_id();
        assert_eq!(a.len(), 26);
        assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(a, new_upload_id());
    }

    #[test]
    fn media_types() {
        assert_eq!(normalize_type("Image/PNG").unwrap(), "image/png");
        assert!(normalize_type("text/plain; charset=utf-8").is_ok());
        for bad in ["png", "image/", "/png", "image/png\r\nx: y", "a b/c"] {
            assert!(normalize_type(bad).is_err(), "{bad}");
        }
    }
}
