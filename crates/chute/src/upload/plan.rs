//! Part planning for multipart uploads: which byte range each part
//! covers, which part size to ask the server for, and which parts are
//! still missing given what the server says it holds.

use std::collections::BTreeSet;
use std::ops::Range;

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's most parts.
pub const MAX_PARTS: u64 = 10_000;

/// The part size to ask for: `wanted` between S3's smallest part and
/// [`MEMORY_BUDGET`] (a part, or a file sent in one request, is read
/// whole into memory; S3 would take 5 GiB), raised so the file fits in
/// 10,000 parts.
pub fn part_size_for(size: u64, wanted: u64) -> u64 {
    wanted
        .clamp(MIN_PART_SIZE, MEMORY_BUDGET)
        .max(size.div_ceil(MAX_PARTS))
}

/// How much part data a file's upload holds in memory at most (but one
/// part, whatever its size).
pub const MEMORY_BUDGET: u64 = 1024 * 1024 * 1024;

/// Parts in flight at once: `wanted`, fewer when that many parts of
/// `part_size` would hold more than [`MEMORY_BUDGET`], at least one. The
/// part size grows with the file (a 5 TiB file has 524 MiB parts), and
/// `--parallel 64 --part-size 1G` would otherwise ask for 64 GiB.
pub fn parts_in_flight(wanted: usize, part_size: u64) -> usize {
    let fit = usize::try_from(MEMORY_BUDGET / part_size.max(1)).unwrap_or(usize::MAX);
    wanted.min(fit).max(1)
}

/// A file cut into parts of `part_size` (the last one shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// The file's size.
    pub size: u64,
    /// Every part but the last has exactly this size.
    pub part_size: u64,
}

impl PartPlan {
    /// The plan for `size` bytes in parts of `part_size` (> 0).
    pub fn new(size: u64, part_size: u64) -> Self {
        Self {
            size,
            part_size: part_size.max(1),
        }
    }

    /// How many parts (at least one, even for an empty file).
    pub fn count(&self) -> u32 {
        u32::try_from(self.size.div_ceil(self.part_size).max(1)).unwrap_or(u32::MAX)
    }

    /// The byte range of part `number` (1-based).
    pub fn range(&self, number: u32) -> Range<u64> {
        let start = (u64::from(number.max(1)) - 1) * self.part_size;
        let start = start.min(self.size);
        start..(start + self.part_size).min(self.size)
    }

    /// The parts still to send: every part not in `stored`, where a
    /// stored part only counts if its size is the one this plan expects
    /// (a part cut short by a crash is sent again).
    pub fn missing(&self, stored: &[(u32, u64)]) -> Vec<u32> {
        let good: BTreeSet<u32> = stored
            .iter()
            .filter(|(n, size)| (1..=self.count()).contains(n) && *size == self.len(*n))
            .map(|(n, _)| *n)
            .collect();
        (1..=self.count()).filter(|n| !good.contains(n)).collect()
    }

    /// The length of part `number`.
    pub fn len(&self, number: u32) -> u64 {
        let r = self.range(number);
        r.end - r.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn ranges_cover_the_file_exactly() {
        let plan = PartPlan::new(100 * MIB + 1, 8 * MIB);
        assert_eq!(plan.count(), 13);
        assert_eq!(plan.range(1), 0..8 * MIB);
        assert_eq!(plan.range(13), 96 * MIB..100 * MIB + 1);
        let total: u64 = (1..=plan.count()).map(|n| plan.len(n)).sum();
        assert_eq!(total, plan.size);
        let exact = PartPlan::new(16 * MIB, 8 * MIB);
        assert_eq!((exact.count(), exact.len(2)), (2, 8 * MIB));
        let empty = PartPlan::new(0, 8 * MIB);
        assert_eq!((empty.count(), empty.range(1)), (1, 0..0));
    }

    #[test]
    fn missing_parts_ignore_short_and_foreign_ones() {
        let plan = PartPlan::new(20 * MIB, 8 * MIB); // 8, 8, 4
        assert_eq!(plan.missing(&[]), vec![1, 2, 3]);
        assert_eq!(plan.missing(&[(1, 8 * MIB), (3, 4 * MIB)]), vec![2]);
        // A short part 2, an unknown part 9: both ignored.
        assert_eq!(plan.missing(&[(2, MIB), (9, 8 * MIB)]), vec![1, 2, 3]);
        assert!(
            plan.missing(&[(1, 8 * MIB), (2, 8 * MIB), (3, 4 * MIB)])
                .is_empty()
        );
    }

    #[test]
    fn part_sizes_respect_s3() {
        assert_eq!(part_size_for(MIB, MIB), MIN_PART_SIZE);
        assert_eq!(part_size_for(GIB, 16 * MIB), 16 * MIB);
        let huge = 5 * 1024 * GIB;
        assert!(huge.div_ceil(part_size_for(huge, 8 * MIB)) <= MAX_PARTS);
        // Above 1 GiB a part would be read whole into memory: asked for
        // only when 10,000 parts need it (beyond the server's 5 TiB).
        assert_eq!(part_size_for(MIB, 10 * GIB), MEMORY_BUDGET);
        assert_eq!(part_size_for(3 * GIB, 5 * GIB), MEMORY_BUDGET);
        let beyond = 20 * 1024 * GIB;
        assert_eq!(part_size_for(beyond, 16 * MIB), beyond.div_ceil(MAX_PARTS));
    }

    #[test]
    fn parts_in_flight_fit_the_memory_budget() {
        assert_eq!(parts_in_flight(4, 16 * MIB), 4);
        assert_eq!(parts_in_flight(64, 16 * MIB), 64); // exactly 1 GiB
        assert_eq!(parts_in_flight(64, 5 * GIB), 1); // one part at least
        assert_eq!(parts_in_flight(4, 524 * MIB), 1); // a 5 TiB file's parts
        assert_eq!(parts_in_flight(8, 200 * MIB), 5);
        assert_eq!(parts_in_flight(0, MIB), 1);
    }

    const GIB: u64 = 1024 * MIB;
}
