//! Listings: ListObjectsV2 (opaque continuation tokens), ListObjects (v1,
//! markers) and ListObjectVersions (an unversioned bucket: every object is
//! its own latest `null` version). All three page through the store's
//! `list` with `start_after`; `encoding-type=url` encodes keys and prefixes.

use super::bucket::owner;
use super::convert::{limit, list_object, timestamp, url_encode, wants_url};
use super::{ChuteS3, R};
use crate::error::{s3_err, store_error};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use chute_store::{ListOptions, ListResult, Store as _};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// One page of a listing request.
struct Page {
    result: ListResult,
    url: bool,
}

impl Page {
    fn enc(&self, s: &str) -> String {
        if self.url { url_encode(s) } else { s.to_owned() }
    }

    fn truncated(&self) -> bool {
        self.result.next_start_after.is_some()
    }

    fn contents(&self) -> Vec<Object> {
        self.result
            .objects
            .iter()
            .map(|m| list_object(m, self.enc(m.key.as_str())))
            .collect()
    }

    fn prefixes(&self) -> Vec<CommonPrefix> {
        self.result
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(self.enc(p)),
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.result.objects.len() + self.result.common_prefixes.len()
    }
}

fn decode_token(token: &str) -> S3Result<String> {
    TOKEN
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| {
            s3_err(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl ChuteS3 {
    async fn page(
        &self,
        bucket: &str,
        prefix: Option<&String>,
        delimiter: Option<&String>,
        start_after: Option<String>,
        max_keys: usize,
        url: bool,
    ) -> S3Result<Page> {
        let bucket = self.bucket(bucket).await?;
        if max_keys == 0 {
            return Ok(Page {
                result: ListResult::default(),
                url,
            });
        }
        let opts = ListOptions {
            prefix: prefix.cloned().unwrap_or_default(),
            delimiter: delimiter.filter(|d| !d.is_empty()).cloned(),
            start_after,
            max_keys,
        };
        let result = bucket.list(&opts).await.map_err(store_error)?;
        Ok(Page { result, url })
    }

    pub(super) async fn op_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> R<ListObjectsV2Output> {
        let input = req.input;
        let url = wants_url(input.encoding_type.as_ref())?;
        let max_keys = limit(input.max_keys, "max-keys")?;
        let token = non_empty(input.continuation_token.clone());
        let from_token = token.as_deref().map(decode_token).transpose()?;
        let start_after = non_empty(input.start_after.clone());
        // The later of the two positions wins, as in S3.
        let from = match (from_token, start_after.clone()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let page = self
            .page(
                &input.bucket,
                input.prefix.as_ref(),
                input.delimiter.as_ref(),
                from,
                max_keys,
                url,
            )
            .await?;
        let next = page.result.next_start_after.as_deref().map(|k| TOKEN.encode(k));
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(page.enc(input.prefix.as_deref().unwrap_or_default())),
            delimiter: input.delimiter.as_deref().map(|d| page.enc(d)),
            max_keys: input.max_keys.or(Some(1000)),
            key_count: i32::try_from(page.count()).ok(),
            continuation_token: token,
            next_continuation_token: next,
            is_truncated: Some(page.truncated()),
            start_after: start_after.as_deref().map(|s| page.enc(s)),
            encoding_type: input.encoding_type,
            contents: Some(page.contents()),
            common_prefixes: Some(page.prefixes()),
            ..Default::default()
        }))
    }

    pub(super) async fn op_list_objects(&self, req: S3Request<ListObjectsInput>) -> R<ListObjectsOutput> {
        let input = req.input;
        let url = wants_url(input.encoding_type.as_ref())?;
        let max_keys = limit(input.max_keys, "max-keys")?;
        let marker = non_empty(input.marker.clone());
        let page = self
            .page(
                &input.bucket,
                input.prefix.as_ref(),
                input.delimiter.as_ref(),
                marker.clone(),
                max_keys,
                url,
            )
            .await?;
        let next_marker = page.result.next_start_after.as_deref().map(|m| page.enc(m));
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(page.enc(input.prefix.as_deref().unwrap_or_default())),
            delimiter: input.delimiter.as_deref().map(|d| page.enc(d)),
            marker: Some(marker.as_deref().map(|m| page.enc(m)).unwrap_or_default()),
            max_keys: input.max_keys.or(Some(1000)),
            is_truncated: Some(page.truncated()),
            next_marker,
            encoding_type: input.encoding_type,
            contents: Some(page.contents()),
            common_prefixes: Some(page.prefixes()),
            ..Default::default()
        }))
    }

    pub(super) async fn op_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> R<ListObjectVersionsOutput> {
        let input = req.input;
        let url = wants_url(input.encoding_type.as_ref())?;
        let max_keys = limit(input.max_keys, "max-keys")?;
        let key_marker = non_empty(input.key_marker.clone());
        let page = self
            .page(
                &input.bucket,
                input.prefix.as_ref(),
                input.delimiter.as_ref(),
                key_marker.clone(),
                max_keys,
                url,
            )
            .await?;
        let versions = page
            .result
            .objects
            .iter()
            .map(|m| ObjectVersion {
                key: Some(page.enc(m.key.as_str())),
                version_id: Some("null".to_owned()),
                is_latest: Some(true),
                size: i64::try_from(m.size).ok(),
                e_tag: Some(super::convert::etag(&m.etag)),
                last_modified: Some(timestamp(m.last_modified)),
                owner: Some(owner()),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let next_key = page.result.next_start_after.as_deref().map(|k| page.enc(k));
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(page.enc(input.prefix.as_deref().unwrap_or_default())),
            delimiter: input.delimiter.as_deref().map(|d| page.enc(d)),
            key_marker: Some(key_marker.as_deref().map(|m| page.enc(m)).unwrap_or_default()),
            version_id_marker: input.version_id_marker,
            max_keys: input.max_keys.or(Some(1000)),
            is_truncated: Some(page.truncated()),
            next_version_id_marker: next_key.as_ref().map(|_| "null".to_owned()),
            next_key_marker: next_key,
            encoding_type: input.encoding_type,
            versions: Some(versions),
            common_prefixes: Some(page.prefixes()),
            ..Default::default()
        }))
    }
}
