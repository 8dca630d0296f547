//! Checking a body against a write's expectations (length, Content-MD5,
//! `x-amz-checksum-*`) and choosing the checksum to store; shared by every
//! backend so they refuse the same writes with the same errors.

use crate::{StoreError, StoreResult};
use chute_core::checksum::HashResult;
use chute_core::{Checksum, ChecksumAlgorithm};

/// The algorithms to hash besides MD5.
pub(crate) fn algorithms(
    expected: Option<&Checksum>,
    also: Option<ChecksumAlgorithm>,
) -> Vec<ChecksumAlgorithm> {
    expected.map(|c| c.algorithm).into_iter().chain(also).collect()
}

/// Checks a streamed body against its expectations.
pub(crate) fn verify(
    hash: &HashResult,
    expected_len: Option<u64>,
    expected_md5: Option<[u8; 16]>,
    expected_checksum: Option<&Checksum>,
) -> StoreResult<()> {
    if let Some(expected) = expected_len
        && hash.len != expected
    {
        return Err(StoreError::LengthMismatch {
            expected,
            received: hash.len,
        });
    }
    if expected_md5.is_some_and(|m| m != hash.md5) {
        return Err(StoreError::BadDigest);
    }
    if let Some(c) = expected_checksum
        && find_checksum(hash, c.algorithm).is_none_or(|got| got.value != c.value)
    {
        return Err(StoreError::ChecksumMismatch {
            algorithm: c.algorithm,
        });
    }
    Ok(())
}

pub(crate) fn find_checksum(hash: &HashResult, algorithm: ChecksumAlgorithm) -> Option<&Checksum> {
    hash.checksums.iter().find(|c| c.algorithm == algorithm)
}

/// The checksum to store: the expected one's algorithm first, else `also`.
pub(crate) fn stored_checksum(
    hash: &HashResult,
    first: Option<ChecksumAlgorithm>,
    also: Option<ChecksumAlgorithm>,
) -> Option<Checksum> {
    first.or(also).and_then(|a| find_checksum(hash, a)).cloned()
}
