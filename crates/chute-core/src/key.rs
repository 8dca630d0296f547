//! [`ObjectKey`]: an object key validated once at the boundary.
//!
//! S3 itself accepts almost any UTF-8 string as a key. Chute is stricter,
//! because keys end up as paths in the filesystem store and as parts of
//! URLs the browser follows: a key has no `.` or `..` segment, no empty
//! segment (so no leading `/`, no trailing `/`, no `//`), no backslash,
//! no control character, and is 1 to 1024 bytes long. django-s3file's
//! CVEs came from trusting `../` in names; here such a key cannot exist.

use std::fmt;

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// Why a string is not a valid [`ObjectKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("object key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("object key is {0} bytes long; the limit is 1024")]
    TooLong(usize),
    /// The key has an empty segment: a leading or trailing `/`, or `//`.
    #[error("object key has an empty path segment (leading, trailing or double '/')")]
    EmptySegment,
    /// The key has a `.` or `..` segment.
    #[error("object key has a '.' or '..' path segment")]
    DotSegment,
    /// The key contains a backslash, which some systems read as a separator.
    #[error("object key contains a backslash")]
    Backslash,
    /// The key contains a control character (U+0000 to U+001F or U+007F to U+009F).
    #[error("object key contains a control character")]
    ControlCharacter,
}

/// A validated S3 object key; see the module documentation for the rules.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `raw` as an object key.
    ///
    /// ```
    /// use chute_core::{KeyError, ObjectKey};
    ///
    /// let key = ObjectKey::parse("tmp/42/cat.png")?;
    /// assert_eq!(key.file_name(), "cat.png");
    /// assert_eq!(ObjectKey::parse("tmp/../etc/passwd"), Err(KeyError::DotSegment));
    /// assert_eq!(ObjectKey::parse("/etc/passwd"), Err(KeyError::EmptySegment));
    /// # Ok::<(), KeyError>(())
    /// ```
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(raw.len()));
        }
        if raw.contains('\\') {
            return Err(KeyError::Backslash);
        }
        if raw.chars().any(char::is_control) {
            return Err(KeyError::ControlCharacter);
        }
        for segment in raw.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment),
                "." | ".." => return Err(KeyError::DotSegment),
                _ => {}
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated segments of the key, none of them empty, `.` or `..`.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment: the object's file name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({:?})", self.0)
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ObjectKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ObjectKey> for String {
    fn from(key: ObjectKey) -> Self {
        key.0
    }
}

impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_keys() {
        for ok in [
            "a",
            "tmp/123/photo.jpg",
            "a/b/c",
            "..a/b..",
            "...",
            "a b/ü€/x",
            "a.b",
        ] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_traversal_and_odd_forms() {
        let cases = [
            ("", KeyError::Empty),
            ("/etc/passwd", KeyError::EmptySegment),
            ("a/", KeyError::EmptySegment),
            ("a//b", KeyError::EmptySegment),
            ("../x", KeyError::DotSegment),
            ("a/../../x", KeyError::DotSegment),
            ("a/./b", KeyError::DotSegment),
            ("..", KeyError::DotSegment),
            ("a\\..\\b", KeyError::Backslash),
            ("a\u{0}b", KeyError::ControlCharacter),
            ("a\nb", KeyError::ControlCharacter),
            ("a\u{85}b", KeyError::ControlCharacter),
        ];
        for (raw, want) in cases {
            assert_eq!(ObjectKey::parse(raw), Err(want), "{raw:?}");
        }
        assert_eq!(ObjectKey::parse(&"k".repeat(1025)), Err(KeyError::TooLong(1025)));
        assert!(ObjectKey::parse(&"k".repeat(1024)).is_ok());
    }

    #[test]
    fn file_name_is_last_segment() {
        let key = ObjectKey::parse("tmp/1/cat.png").unwrap();
        assert_eq!(key.file_name(), "cat.png");
        assert_eq!(key.segments().count(), 3);
    }

    proptest! {
        #[test]
        fn parsed_keys_hold_the_invariants(raw in "\\PC{0,40}|[a./\\\\]{0,12}") {
            if let Ok(key) = ObjectKey::parse(&raw) {
                prop_assert!(!key.as_str().is_empty() && key.as_str().len() <= MAX_KEY_LEN);
                prop_assert!(!key.as_str().contains('\\'));
                prop_assert!(!key.as_str().starts_with('/'));
                for seg in key.segments() {
                    prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                }
            }
        }

        #[test]
        fn valid_segments_join_into_a_valid_key(segs in prop::collection::vec("[a-zA-Z0-9_.-]{1,12}", 1..6)) {
            let raw = segs.join("/");
            let all_plain = segs.iter().all(|s| s != "." && s != "..");
            prop_assert_eq!(ObjectKey::parse(&raw).is_ok(), all_plain);
        }

        #[test]
        fn display_round_trips(raw in "[a-z0-9]{1,8}(/[a-z0-9.]{1,8}){0,4}") {
            if let Ok(key) = ObjectKey::parse(&raw) {
                prop_assert_eq!(ObjectKey::parse(&format!("{key}")), Ok(key));
            }
        }
    }
}
