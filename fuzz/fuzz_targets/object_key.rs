//! `ObjectKey::parse` on arbitrary strings: every accepted key holds the
//! invariants the filesystem store and the URLs rely on, and round-trips
//! through `Display`, `String`, `FromStr` and serde unchanged.

#![no_main]

use chute_core::ObjectKey;
use chute_core::key::MAX_KEY_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = ObjectKey::parse(raw) else {
        return;
    };
    let s = key.as_str();
    assert_eq!(s, raw, "a key is stored exactly as given");
    assert!(!s.is_empty() && s.len() <= MAX_KEY_LEN, "length {}", s.len());
    assert!(!s.contains('\0'), "NUL in {s:?}");
    assert!(!s.contains('\\'), "backslash in {s:?}");
    assert!(!s.chars().any(char::is_control), "control character in {s:?}");
    assert!(!s.starts_with('/') && !s.ends_with('/'), "edge slash in {s:?}");
    for segment in key.segments() {
        assert!(
            !segment.is_empty() && segment != "." && segment != "..",
            "segment {segment:?} in {s:?}"
        );
    }
    // A path built from the key never leaves its root.
    let path = std::path::Path::new("/root").join(s);
    assert!(
        path.components()
            .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_))),
        "{path:?} escapes"
    );
    assert_eq!(key.file_name(), key.segments().next_back().unwrap_or(s));
    // Round trips.
    assert_eq!(ObjectKey::parse(&format!("{key}")).as_ref(), Ok(&key));
    assert_eq!(s.parse::<ObjectKey>().as_ref(), Ok(&key));
    assert_eq!(ObjectKey::try_from(String::from(key.clone())).as_ref(), Ok(&key));
    let json = serde_json::to_string(&key).expect("a key serialises");
    let back: ObjectKey = serde_json::from_str(&json).expect("a serialised key deserialises");
    assert_eq!(back, key);
});
