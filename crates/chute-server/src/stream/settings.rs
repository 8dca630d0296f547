//! The stream routes' tunables and the part size schedule.

use chute_store::{MAX_PART_NUMBER, MIN_PART_SIZE};
use std::time::Duration;

/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Parts per step of the growing schedule (see [`part_size_for`]).
const PARTS_PER_STEP: u32 = 1000;

/// Limits and tunables of the stream routes (config `stream_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Bytes per multipart part (at least 5 MiB); a file shorter than one
    /// part is stored with a single put.
    pub part_size: u64,
    /// Parts uploading at once per request; the body is not read while
    /// this many are in flight.
    pub parts_in_flight: usize,
    /// Plain fields a form may have.
    pub max_fields: usize,
    /// Bytes one plain field's value may have.
    pub max_field_bytes: usize,
    /// Files a form may have (the grant's `max_files` applies too).
    pub max_files: usize,
    /// How long the body may send nothing before the request fails.
    pub body_idle_timeout: Duration,
    /// MiB of part buffers all streamed requests of the process may hold
    /// together; a request that would pass it waits (not reading its
    /// body) until parts of others are stored.
    pub memory_mib: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
            max_fields: 100,
            max_field_bytes: 64 * 1024,
            max_files: 20,
            body_idle_timeout: Duration::from_secs(60),
            memory_mib: 512,
        }
    }
}

/// The size of part `number` (1-based) of a file.
///
/// With the size known up front (a raw body's `Content-Length`), every
/// part has the same size: the configured one, or `ceil(size / 10,000)`
/// when that is larger. With the size unknown, the part size starts at
/// the configured one (or what `limit`, the most the file may have,
/// needs) and doubles every 1,000 parts, so memory stays at the
/// configured size for the first 8 GiB (at 8 MiB parts) while 10,000
/// parts still reach `limit` (5 TiB at most): `base * 1000 * (2^10 - 1)
/// >= limit`.
pub fn part_size_for(configured: u64, known_size: Option<u64>, limit: u64, number: u32) -> u64 {
    let configured = configured.max(MIN_PART_SIZE);
    if let Some(size) = known_size {
        return configured.max(size.div_ceil(u64::from(MAX_PART_NUMBER)));
    }
    let steps = u64::from(MAX_PART_NUMBER / PARTS_PER_STEP);
    let capacity_per_base = u64::from(PARTS_PER_STEP) * ((1u64 << steps) - 1);
    let base = configured.max(limit.div_ceil(capacity_per_base));
    let step = (number.saturating_sub(1) / PARTS_PER_STEP).min(31);
    base.saturating_mul(1u64 << step).min(MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn capacity(configured: u64, known: Option<u64>, limit: u64) -> u64 {
        (1..=MAX_PART_NUMBER)
            .map(|n| part_size_for(configured, known, limit, n))
            .sum()
    }

    #[test]
    fn ten_thousand_parts_reach_the_limit() {
        let five_tib = 5 * 1024 * 1024 * MIB;
        for configured in [5 * MIB, 8 * MIB, 64 * MIB] {
            assert!(capacity(configured, None, five_tib) >= five_tib, "{configured}");
            assert!(capacity(configured, Some(five_tib), five_tib) >= five_tib);
        }
        assert_eq!(part_size_for(8 * MIB, None, five_tib, 1), 8 * MIB);
        assert_eq!(part_size_for(8 * MIB, None, five_tib, 1000), 8 * MIB);
        assert_eq!(part_size_for(8 * MIB, None, five_tib, 1001), 16 * MIB);
        assert!(part_size_for(8 * MIB, None, five_tib, 10_000) <= MAX_PART_SIZE);
    }

    #[test]
    fn known_sizes_get_uniform_parts() {
        assert_eq!(part_size_for(8 * MIB, Some(1024 * MIB), 0, 7), 8 * MIB);
        let big = 200 * 1024 * MIB;
        assert_eq!(part_size_for(8 * MIB, Some(big), 0, 1), big.div_ceil(10_000));
        assert_eq!(part_size_for(1, Some(10), 0, 1), MIN_PART_SIZE);
    }
}
