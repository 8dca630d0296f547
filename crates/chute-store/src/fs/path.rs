//! Key segments to file names and back.
//!
//! Each `/`-separated key segment is stored under a name that is the
//! segment itself except that ASCII bytes outside `[A-Za-z0-9._~-]` (so
//! `/`, `%`, control characters, spaces and punctuation) become `%XX`, and
//! a leading `.` becomes `%2E` so no name is hidden or special. Bytes of
//! multi-byte UTF-8 characters are kept as they are: keys are valid UTF-8,
//! Linux names are bytes, and escaping them would cost 9 bytes per CJK
//! character of the 255-byte name limit. Directories get the suffix `.d`,
//! objects `.o`, so object `a` and prefix `a/` never collide.
//!
//! Each segment has exactly one name: [`decode_segment`] accepts only what
//! [`encode_segment`] writes, so a listing never shows a key twice or a key
//! whose object a GET would look for under another name.

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

/// Whether `c` at byte offset `i` of a segment is stored as itself.
fn keep(i: usize, c: char) -> bool {
    if c.is_ascii() {
        (c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')) && !(i == 0 && c == '.')
    } else {
        // Not ASCII, so not `/`, `%`, `.` or an ASCII control; C1 controls
        // (U+0080..U+009F) are escaped too, to keep names printable.
        !c.is_control()
    }
}

/// Encodes one segment (or any opaque name) as a file name.
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for (i, c) in segment.char_indices() {
        if keep(i, c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
    out
}

/// Decodes an encoded segment; `None` for anything [`encode_segment`] did
/// not write.
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
    let decoded = String::from_utf8(out).ok()?;
    (encode_segment(&decoded) == name).then_some(decoded)
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
    fn non_ascii_is_stored_verbatim() {
        for s in ["日本語", "ü ñ", "😀.txt", "\u{A0}\u{10FFFF}"] {
            let e = encode_segment(s);
            for c in s.chars().filter(|c| !c.is_ascii()) {
                assert!(e.contains(c), "{s:?} encoded as {e:?}");
            }
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
        assert_eq!(encode_segment("日本語"), "日本語");
        assert_eq!(encode_segment("ü ñ"), "ü%20ñ");
        // Control characters stay escaped, C1 (U+0080..U+009F) included.
        assert_eq!(encode_segment("a\u{1}\u{85}"), "a%01%C2%85");
        // 27 characters, 81 bytes of UTF-8: 243 bytes if percent-encoded.
        let name = "東京タワーの夜景写真二〇二四年十二月三十一日撮影した物";
        let key = ObjectKey::parse(&format!("photos/{name}")).unwrap();
        assert_eq!(
            object_rel_path(&key).unwrap(),
            PathBuf::from(format!("photos.d/{name}.o"))
        );
    }

    #[test]
    fn only_our_own_encoding_decodes() {
        // Each key has exactly one name, so a listing never shows a key
        // twice or a key whose object a GET would not find.
        for name in ["%41", "%2e", "%C3%A9", "%", "%4", "%zz", "a%2fb", ".x", "a\u{1}"] {
            assert_eq!(decode_segment(name), None, "{name:?}");
        }
        assert_eq!(decode_segment("%2Ex").as_deref(), Some(".x"));
        assert_eq!(decode_segment("a%2Fb%25").as_deref(), Some("a/b%"));
    }

    proptest::proptest! {
        #[test]
        fn any_segment_round_trips(s in proptest::prelude::any::<String>()) {
            let e = encode_segment(&s);
            proptest::prop_assert!(!e.starts_with('.'), "{:?}", e);
            proptest::prop_assert!(!e.contains('/'), "{:?}", e);
            proptest::prop_assert!(!e.chars().any(char::is_control), "{:?}", e);
            proptest::prop_assert_eq!(decode_segment(&e), Some(s));
        }
    }

    #[test]
    fn long_segments_are_refused() {
        let key = ObjectKey::parse(&"é".repeat(120)).unwrap();
        assert!(matches!(
            object_rel_path(&key),
            Err(StoreError::UnstorableKey { .. })
        ));
        let key = ObjectKey::parse("a/b/c").unwrap();
        assert_eq!(object_rel_path(&key).unwrap(), PathBuf::from("a.d/b.d/c.o"));
    }
}
