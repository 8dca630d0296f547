//! [`BucketName`]: a bucket name as S3's naming rules allow it.
//!
//! 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting
//! and ending with a letter or digit, no `..`, not shaped like an IPv4
//! address. A valid name is also a safe single path segment.

use std::fmt;

/// Why a string is not a valid [`BucketName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket name {name:?}: {reason}")]
pub struct BucketNameError {
    /// The rejected name.
    pub name: String,
    /// Which rule it breaks.
    pub reason: &'static str,
}

/// A validated bucket name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BucketName(String);

impl BucketName {
    /// Validates `raw` against S3's bucket naming rules.
    pub fn parse(raw: &str) -> Result<Self, BucketNameError> {
        let fail = |reason| {
            Err(BucketNameError {
                name: raw.to_owned(),
                reason,
            })
        };
        if !(3..=63).contains(&raw.len()) {
            return fail("must be 3 to 63 characters long");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return fail("only lowercase letters, digits, '.' and '-' are allowed");
        }
        let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !edge_ok(raw.as_bytes()[0]) || !edge_ok(raw.as_bytes()[raw.len() - 1]) {
            return fail("must start and end with a letter or digit");
        }
        if raw.contains("..") || raw.contains(".-") || raw.contains("-.") {
            return fail("no adjacent '.' or '-' around a '.'");
        }
        if raw.parse::<std::net::Ipv4Addr>().is_ok() {
            return fail("must not be formatted as an IP address");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BucketName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_s3_rules() {
        for ok in ["uploads", "my-bucket.example", "abc", "a1b"] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Uploads",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "192.168.0.1",
            "../x",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }
}
