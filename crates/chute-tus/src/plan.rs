//! How an upload's bytes are cut into multipart parts. Every part but the
//! last has exactly the planned size, so the committed offset is a pure
//! function of the number of committed parts and no listing is needed to
//! answer `HEAD`.
//!
//! A known length uses one size, `max(base, ceil(length / 10,000))`; a
//! deferred length uses sizes that grow by `base` every 64 parts, so
//! 10,000 parts reach about 6 TiB with the 8 MiB default (more than S3's
//! 5 TiB object limit) while small uploads keep small parts.

use chute_store::{MAX_PART_NUMBER, MIN_PART_SIZE};
use serde::{Deserialize, Serialize};

/// The default smallest part size (8 MiB).
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

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
    /// parts of at least `base` bytes (raised to S3's 5 MiB minimum).
    pub fn new(length: Option<u64>, base: u64) -> Self {
        let base = base.max(MIN_PART_SIZE);
        match length {
            Some(len) => Self {
                base: base.max(len.div_ceil(u64::from(MAX_PART_NUMBER))),
                growing: false,
            },
            None => Self { base, growing: true },
        }
    }

    /// The size of part `number` (1-based) when it is not the last.
    pub fn part_len(&self, number: u32) -> u64 {
        if self.growing {
            let step = u64::from(number.saturating_sub(1)) / GROWTH_STEP;
            self.base.saturating_mul(step + 1)
        } else {
            self.base
        }
    }

    /// The bytes in parts `1..=parts` (all full).
    pub fn bytes_in(&self, parts: u32) -> u64 {
        if !self.growing {
            return self.base.saturating_mul(u64::from(parts));
        }
        // Steps of GROWTH_STEP parts, step k (0-based) of (k+1)*base each.
        let parts = u64::from(parts);
        let full = parts / GROWTH_STEP;
        let rest = parts % GROWTH_STEP;
        let in_full = GROWTH_STEP
            .saturating_mul(full.saturating_mul(full + 1) / 2)
            .saturating_mul(self.base);
        in_full.saturating_add(rest.saturating_mul(full + 1).saturating_mul(self.base))
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

    proptest! {
        #[test]
        fn bytes_in_is_the_sum_of_part_lens(n in 0u32..3000, growing: bool, base in 5u64..20) {
            let p = PartPlan { base: base * MIB, growing };
            let sum: u64 = (1..=n).map(|i| p.part_len(i)).sum();
            prop_assert_eq!(p.bytes_in(n), sum);
        }
    }
}
