//! The upload token: Chute's signed capability for one upload. It carries
//! everything later calls need (key, multipart upload id, declared size
//! and type, the grant), so no instance keeps upload state and any
//! instance behind a load balancer serves the next call. A client cannot
//! swap the key or the multipart upload id: both are inside the signature.

use chute_core::{Checksum, ChecksumAlgorithm, Grant};
use serde::{Deserialize, Serialize};

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMethod {
    /// A browser POST form.
    Post,
    /// One presigned PUT.
    Put,
    /// S3 multipart upload with presigned part URLs.
    Multipart,
}

/// The claims of an upload token (audience [`chute_core::token::UPLOAD_AUDIENCE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadClaims {
    /// Audience.
    pub aud: String,
    /// Expiry (Unix seconds): the upload's deadline.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// The upload id.
    pub sub: String,
    /// The temporary key, `tmp/<id>/<filename>`.
    pub key: String,
    /// How bytes travel.
    pub method: UploadMethod,
    /// The declared size in bytes.
    pub size: u64,
    /// The declared media type.
    #[serde(rename = "type")]
    pub content_type: String,
    /// The sanitised original file name.
    pub filename: String,
    /// The store's multipart upload id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpu: Option<String>,
    /// Part size for multipart uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Checksum algorithm of the multipart upload's parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_checksum: Option<ChecksumAlgorithm>,
    /// The whole-object checksum the client declared; verified on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// The grant the upload runs under.
    pub grant: Grant,
}

impl UploadClaims {
    /// The number of parts of a multipart upload.
    pub fn part_count(&self) -> u32 {
        match self.part_size {
            Some(ps) if ps > 0 => u32::try_from(self.size.div_ceil(ps).max(1)).unwrap_or(u32::MAX),
            _ => 1,
        }
    }

    /// The exact size of part `number` (1-based).
    pub fn part_len(&self, number: u32) -> u64 {
        let ps = self.part_size.unwrap_or(self.size);
        let start = u64::from(number.saturating_sub(1)) * ps;
        self.size.saturating_sub(start).min(ps)
    }
}
