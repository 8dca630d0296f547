//! Key segments to file names and back.
//!
//! Each `/`-separated key segment is percent-encoded: bytes of
//! `[A-Za-z0-9._~-]` stay, every other byte becomes `%XX`, and a leading
//! `.` becomes `%2E` so no name is hidden or special. Directories get the
//! suffix `.d`, objects `.o`, so object `a` and prefix `a/` never collide.

use crate::{StoreError, StoreResult};
use chute_core::ObjectKey;
use std::path::PathBuf;

/// The longest encoded segment plus suffix we store (most filesystems allow 255).
const MAX_NAME_LEN: usize = 240;
/// The longest encoded relative path we store (Linux `PATH_MAX` is 4096; keep
/// room for the root).
const MAX_REL_PATH_LEN: usize = 3600;

/// The suffix of a directory holding keys `<segment>/...`.
pub(crate) const DIR_SUFFIX: &str = ".d";
/// The suffix of an object file.
pub(crate) const OBJ_SUFFIX: &str = ".o";

fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

/// Percent-encodes one segment (or any opaque name).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for (i, &b) in segment.as_bytes().iter().enumerate() {
        if keep(b) && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// Decodes an encoded segment; `None` for anything we did not write.
pub(crate) fn decode_segment(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path of `key`'s object file relative to the objects directory, and
/// its encoded directory components.
pub(crate) fn object_rel_path(key: &ObjectKey) -> StoreResult<PathBuf> {
    let segments: Vec<&str> = key.segments().collect();
    let mut rel = PathBuf::new();
    let mut total = 0;
    for (i, seg) in segments.iter().enumerate() {
        let suffix = if i + 1 == segments.len() {
            OBJ_SUFFIX
        } else {
            DIR_SUFFIX
        };
        let name = encode_segment(seg) + suffix;
        if name.len() > MAX_NAME_LEN {
            return Err(StoreError::UnstorableKey {
                reason: format!(
                    "segment {} encodes to {} bytes; the limit is {MAX_NAME_LEN}",
                    i + 1,
                    name.len()
                ),
            });
        }
        total += name.len() + 1;
        rel.push(name);
    }
    if total > MAX_REL_PATH_LEN {
        return Err(StoreError::UnstorableKey {
            reason: format!("key encodes to a path of {total} bytes; the limit is {MAX_REL_PATH_LEN}"),
        });
    }
    Ok(rel)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        for s in ["a", ".hidden", "%2e%2e", "ü ñ", "a.d", "x~y_z-1.o", "..."] {
            let e = encode_segment(s);
            assert!(!e.starts_with('.'), "{e}");
            assert!(!e.contains('/'));
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
        assert_eq!(encode_segment(".."), "%2E.");
        assert_eq!(encode_segment("%"), "%25");
    }

    #[test]
    fn long_segments_are_refused() {
        let key = ObjectKey::parse(&"é".repeat(100)).unwrap();
        assert!(matches!(
            object_rel_path(&key),
            Err(StoreError::UnstorableKey { .. })
        ));
        let key = ObjectKey::parse("a/b/c").unwrap();
        assert_eq!(object_rel_path(&key).unwrap(), PathBuf::from("a.d/b.d/c.o"));
    }
}
