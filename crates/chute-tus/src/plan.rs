//! How an upload's bytes are cut into multipart parts. Every part but the
//! last has exactly the planned size, so the committed offset is a pure
//! function of the number of committed parts and no listing is needed to
//! answer `HEAD`.
//!
//! A known length uses one size, `max(base, ceil(length / 10,000))`; a
//! deferred length uses sizes that grow by `max(base, 8 MiB)` every 64
//! parts, so 10,000 parts reach about 6 TiB with the 8 MiB default (more
//! than S3's 5 TiB object limit) while small uploads keep small parts. No
//! part is larger than S3's 5 GiB.

use chute_store::{MAX_PART_NUMBER, MIN_PART_SIZE};
use serde::{Deserialize, Serialize};

/// The default smallest part size (8 MiB).
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// S3's largest part (5 GiB).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The largest `base` a server may configure (256 MiB): a PATCH holds
/// its parts in flight plus about two more in memory.
pub const MAX_BASE: u64 = 256 * 1024 * 1024;

/// Parts per step of the growing plan.
const GROWTH_STEP: u64 = 64;

/// The part sizes of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    /// The size of part 1 (and of every part in a fixed plan).
    pub base: u64,
    /// Whether sizes grow with the part number (deferred length).
    pub growing: bool,
}

impl PartPlan {
    /// The plan for an upload of `length` bytes (`None`: deferred), with
    /// parts of at least `base` bytes (raised to S3's 5 MiB minimum,
    /// lowered to [`MAX_BASE`]).
    pub fn new(length: Option<u64>, base: u64) -> Self {
        let base = base.clamp(MIN_PART_SIZE, MAX_BASE);
        match length {
            Some(len) => Self {
                base: base
                    .max(len.div_ceil(u64::from(MAX_PART_NUMBER)))
                    .min(MAX_PART_SIZE),
                growing: false,
            },
            None => Self { base, growing: true },
        }
    }

    /// How much each step of a growing plan adds: at least the default
    /// part size, so 10,000 parts pass 5 TiB whatever the base.
    fn growth(&self) -> u64 {
        self.base.max(DEFAULT_PART_SIZE)
    }

    /// The part size of step `step` (0-based) of a growing plan.
    fn step_len(&self, step: u64) -> u64 {
        self.base
            .saturating_add(step.saturating_mul(self.growth()))
            .min(MAX_PART_SIZE)
    }

    /// The size of part `number` (1-based) when it is not the last; never
    /// above S3's 5 GiB.
    pub fn part_len(&self, number: u32) -> u64 {
        if self.growing {
            self.step_len(u64::from(number.saturating_sub(1)) / GROWTH_STEP)
        } else {
            self.base.min(MAX_PART_SIZE)
        }
    }

    /// The bytes in parts `1..=parts` (all full).
    pub fn bytes_in(&self, parts: u32) -> u64 {
        if !self.growing {
            return self.part_len(1).saturating_mul(u64::from(parts));
        }
        // Steps of GROWTH_STEP parts until the sizes reach the cap (a few
        // hundred steps at most), then the rest at the cap.
        let mut left = u64::from(parts);
        let mut total: u64 = 0;
        let mut step = 0;
        while left > 0 {
            let len = self.step_len(step);
            if len >= MAX_PART_SIZE {
                return total.saturating_add(left.saturating_mul(len));
            }
            let n = left.min(GROWTH_STEP);
            total = total.saturating_add(n * len);
            left -= n;
            step += 1;
        }
        total
    }

    /// The most bytes an upload can hold under this plan.
    pub fn capacity(&self) -> u64 {
        self.bytes_in(MAX_PART_NUMBER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1024 * 1024;
    const TIB: u64 = 1024 * 1024 * MIB;

    #[test]
    fn fixed_plans() {
        assert_eq!(PartPlan::new(Some(100), DEFAULT_PART_SIZE).base, 8 * MIB);
        assert_eq!(PartPlan::new(Some(100), MIB).base, MIN_PART_SIZE);
        let huge = PartPlan::new(Some(5 * TIB), DEFAULT_PART_SIZE);
        assert!(huge.capacity() >= 5 * TIB);
        assert!(huge.base <= 5 * 1024 * MIB);
    }

    #[test]
    fn growing_plans_reach_five_tib() {
        let p = PartPlan::new(None, DEFAULT_PART_SIZE);
        assert!(p.capacity() >= 5 * TIB, "{}", p.capacity());
        assert!(p.part_len(MAX_PART_NUMBER) <= 5 * 1024 * MIB);
        assert_eq!(p.part_len(1), 8 * MIB);
        assert_eq!(p.part_len(65), 16 * MIB);
    }

    #[test]
    fn every_allowed_base_reaches_five_tib_in_parts_of_at_most_five_gib() {
        let mut bases: Vec<u64> = (5..=MAX_BASE / MIB).step_by(7).map(|m| m * MIB).collect();
        bases.extend([MIN_PART_SIZE, MIN_PART_SIZE + 1, 8 * MIB - 1, MAX_BASE]);
        for base in bases {
            let p = PartPlan::new(None, base);
            assert!(p.capacity() >= 5 * TIB, "base {base}: {}", p.capacity());
            let largest = (1..=MAX_PART_NUMBER).map(|n| p.part_len(n)).max().unwrap_or(0);
            assert!(largest <= MAX_PART_SIZE, "base {base}: a part of {largest}");
            let sum: u64 = (1..=MAX_PART_NUMBER).map(|n| p.part_len(n)).sum();
            assert_eq!(p.capacity(), sum, "base {base}");
            for len in [1, 5 * TIB, p.capacity(), 100 * TIB] {
                let fixed = PartPlan::new(Some(len), base);
                assert!(fixed.part_len(1) <= MAX_PART_SIZE, "base {base}, length {len}");
            }
        }
    }

    proptest! {
        #[test]
        fn bytes_in_is_the_sum_of_part_lens(n in 0u32..=10_000, growing: bool, base in 5u64..=256) {
            let p = PartPlan { base: base * MIB, growing };
            let sum: u64 = (1..=n).map(|i| p.part_len(i)).sum();
            prop_assert_eq!(p.bytes_in(n), sum);
        }
    }
}
