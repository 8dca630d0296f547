//! S3 checksums: the five `x-amz-checksum-*` algorithms, MD5 for ETags and
//! `Content-MD5`, and a [`Hasher`] that computes them in one pass while a
//! body streams through.
//!
//! Values travel base64-encoded, as S3 sends them in headers. Multipart
//! objects carry a composite checksum: the checksum of the concatenated
//! part checksums, suffixed `-N`, as S3 reports `COMPOSITE` checksums.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use std::fmt;

/// One of the checksum algorithms S3 supports in `x-amz-checksum-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli, iSCSI), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name S3 uses in `x-amz-checksum-algorithm` (`CRC32`, `CRC64NVME`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header carrying a value of this algorithm, e.g. `x-amz-checksum-crc32c`.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses an algorithm name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The length of a raw digest of this algorithm in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// The digest of `data` in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut state = AlgorithmState::new(self);
        state.update(data);
        state.finish()
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a checksum value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The value is not valid base64.
    #[error("{algorithm} checksum is not valid base64")]
    NotBase64 {
        /// The algorithm the value was given for.
        algorithm: ChecksumAlgorithm,
    },
    /// The decoded value has the wrong length for its algorithm.
    #[error("{algorithm} checksum must be {expected} bytes, got {got}")]
    WrongLength {
        /// The algorithm the value was given for.
        algorithm: ChecksumAlgorithm,
        /// The digest length of the algorithm.
        expected: usize,
        /// The decoded length.
        got: usize,
    },
}

/// A checksum value with its algorithm. `parts` is set for a multipart
/// composite checksum (`<base64>-<parts>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checksum {
    /// Which algorithm produced the value.
    pub algorithm: ChecksumAlgorithm,
    /// The raw digest bytes.
    #[serde(with = "b64_bytes")]
    pub value: Vec<u8>,
    /// For a composite multipart checksum, the number of parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

impl Checksum {
    /// Decodes a base64 header value for `algorithm`, checking its length.
    pub fn from_base64(algorithm: ChecksumAlgorithm, value: &str) -> Result<Self, ChecksumError> {
        let raw = B64
            .decode(value.trim())
            .map_err(|_| ChecksumError::NotBase64 { algorithm })?;
        if raw.len() != algorithm.digest_len() {
            return Err(ChecksumError::WrongLength {
                algorithm,
                expected: algorithm.digest_len(),
                got: raw.len(),
            });
        }
        Ok(Self {
            algorithm,
            value: raw,
            parts: None,
        })
    }

    /// The value as S3 shows it in headers: base64, with `-N` for composites.
    pub fn to_header_value(&self) -> String {
        match self.parts {
            Some(n) => format!("{}-{n}", B64.encode(&self.value)),
            None => B64.encode(&self.value),
        }
    }

    /// The composite checksum of a multipart upload from its part checksums
    /// (all of one algorithm), as S3 computes `COMPOSITE` checksums.
    pub fn composite(algorithm: ChecksumAlgorithm, parts: &[Checksum]) -> Self {
        let mut state = AlgorithmState::new(algorithm);
        for part in parts {
            state.update(&part.value);
        }
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        Self {
            algorithm,
            value: state.finish(),
            parts: Some(count),
        }
    }
}

mod b64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}

/// The running state of one algorithm.
#[derive(Clone)]
enum AlgorithmState {
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl AlgorithmState {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        use crc_fast::CrcAlgorithm as C;
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc(algorithm, crc_fast::Digest::new(C::Crc32IsoHdlc)),
            ChecksumAlgorithm::Crc32c => Self::Crc(algorithm, crc_fast::Digest::new(C::Crc32Iscsi)),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc(algorithm, crc_fast::Digest::new(C::Crc64Nvme)),
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            Self::Crc(a, _) => *a,
            Self::Sha1(_) => ChecksumAlgorithm::Sha1,
            Self::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(_, d) => d.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc(ChecksumAlgorithm::Crc64Nvme, d) => d.finalize().to_be_bytes().to_vec(),
            Self::Crc(_, d) => u32::try_from(d.finalize()).unwrap_or(0).to_be_bytes().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Computes one S3 checksum, without the MD5 a [`Hasher`] always adds:
/// for checking a value (a trailer, a part) when the ETag is computed
/// elsewhere, so the body is not MD5-hashed twice.
#[derive(Clone)]
pub struct ChecksumHasher(AlgorithmState);

impl fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ChecksumHasher").field(&self.algorithm()).finish()
    }
}

impl ChecksumHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        Self(AlgorithmState::new(algorithm))
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.0.algorithm()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The checksum of everything fed.
    pub fn finish(self) -> Checksum {
        Checksum {
            algorithm: self.algorithm(),
            value: self.0.finish(),
            parts: None,
        }
    }
}

/// Computes MD5 (always, for the ETag) and any chosen S3 checksums over a
/// body in one pass.
#[derive(Clone)]
pub struct Hasher {
    md5: md5::Md5,
    others: Vec<AlgorithmState>,
    len: u64,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// What a [`Hasher`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashResult {
    /// Bytes hashed.
    pub len: u64,
    /// The MD5 digest.
    pub md5: [u8; 16],
    /// One checksum per algorithm asked for, in the order asked.
    pub checksums: Vec<Checksum>,
}

impl Hasher {
    /// A hasher for MD5 and each algorithm in `algorithms` (duplicates ignored).
    pub fn new(algorithms: &[ChecksumAlgorithm]) -> Self {
        let mut seen = Vec::new();
        for a in algorithms {
            if !seen.contains(a) {
                seen.push(*a);
            }
        }
        Self {
            md5: md5::Md5::new(),
            others: seen.into_iter().map(AlgorithmState::new).collect(),
            len: 0,
        }
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        for s in &mut self.others {
            s.update(data);
        }
        self.len += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes every digest.
    pub fn finish(self) -> HashResult {
        let checksums = self
            .others
            .into_iter()
            .map(|s| Checksum {
                algorithm: s.algorithm(),
                value: s.finish(),
                parts: None,
            })
            .collect();
        HashResult {
            len: self.len,
            md5: self.md5.finalize().into(),
            checksums,
        }
    }
}

/// The S3 ETag of a multipart object: MD5 of the concatenated part MD5s,
/// hex, then `-<part count>` (unquoted).
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = md5::Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_hello_world() {
        // Values as S3 reports them for the body "hello world".
        let data = b"hello world";
        let mut h = Hasher::new(&ChecksumAlgorithm::ALL);
        h.update(&data[..5]);
        h.update(&data[5..]);
        let r = h.finish();
        assert_eq!(hex::encode(r.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let by = |a| {
            r.checksums
                .iter()
                .find(|c| c.algorithm == a)
                .unwrap()
                .to_header_value()
        };
        assert_eq!(by(ChecksumAlgorithm::Crc32), "DUoRhQ==");
        assert_eq!(by(ChecksumAlgorithm::Crc32c), "yZRlqg==");
        assert_eq!(by(ChecksumAlgorithm::Sha1), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(
            by(ChecksumAlgorithm::Sha256),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert_eq!(by(ChecksumAlgorithm::Crc64Nvme), "jSnVw/bqjr4=");
    }

    #[test]
    fn checksum_hasher_agrees_with_hasher() {
        for algorithm in ChecksumAlgorithm::ALL {
            let mut one = ChecksumHasher::new(algorithm);
            one.update(b"hello ");
            one.update(b"world");
            let mut all = Hasher::new(&[algorithm]);
            all.update(b"hello world");
            assert_eq!(one.finish(), all.finish().checksums[0], "{algorithm}");
        }
    }

    #[test]
    fn parses_and_rejects_values() {
        let c = Checksum::from_base64(ChecksumAlgorithm::Crc32, "DUoRhQ==").unwrap();
        assert_eq!(c.value, vec![0x0d, 0x4a, 0x11, 0x85]);
        assert!(matches!(
            Checksum::from_base64(ChecksumAlgorithm::Crc32, "AAAA"),
            Err(ChecksumError::WrongLength { .. })
        ));
        assert!(matches!(
            Checksum::from_base64(ChecksumAlgorithm::Sha256, "%%%"),
            Err(ChecksumError::NotBase64 { .. })
        ));
        assert_eq!(
            ChecksumAlgorithm::parse("crc64nvme"),
            Some(ChecksumAlgorithm::Crc64Nvme)
        );
    }

    #[test]
    fn multipart_etag_matches_s3_shape() {
        let e = multipart_etag(&[[0u8; 16], [1u8; 16]]);
        assert!(e.ends_with("-2") && e.len() == 34);
    }
}
