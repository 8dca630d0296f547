//! Filename sanitising: turn whatever a browser sent as a file name into
//! one safe key segment.
//!
//! The result keeps the visible name where it can (Unicode letters,
//! digits, `.`, `-`, `_`, spaces become `_`), drops any directory part
//! (both `/` and `\`, as old browsers sent full Windows paths), never
//! starts with a dot, is at most 200 bytes with the extension kept, and
//! is never empty (`file` stands in).

/// The longest sanitised name in bytes; leaves room for a prefix within
/// the 1024-byte key limit and below the 255-byte file name limit.
pub const MAX_FILENAME_LEN: usize = 200;

/// Returns a safe single key segment derived from `raw`.
///
/// ```
/// use chute_core::sanitize_filename;
///
/// assert_eq!(sanitize_filename("C:\\Users\\me\\My Photo.JPG"), "My_Photo.JPG");
/// assert_eq!(sanitize_filename("../../.htaccess"), "htaccess");
/// ```
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
            out.push(c);
        } else if !c.is_control() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_start_matches(['.', '_']).trim_end_matches(['.', '_']);
    let mut name = if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    };
    if name.len() > MAX_FILENAME_LEN {
        name = shorten(&name);
    }
    name
}

/// Cuts `name` to [`MAX_FILENAME_LEN`] bytes on a char boundary, keeping a
/// short extension.
fn shorten(name: &str) -> String {
    let ext = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 && dot > 0 => &name[dot..],
        _ => "",
    };
    let mut stem_end = MAX_FILENAME_LEN - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}{}", &name[..stem_end], ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectKey;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(sanitize_filename("cat.png"), "cat.png");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(
            sanitize_filename("C:\\Users\\me\\My Photo (1).JPG"),
            "My_Photo_1_.JPG"
        );
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(".htaccess"), "htaccess");
        assert_eq!(sanitize_filename(""), "file");
        assert_eq!(sanitize_filename("résumé été.pdf"), "résumé_été.pdf");
        assert_eq!(sanitize_filename("a\u{0}b\nc"), "abc");
        let long = format!("{}.tar.gz", "é".repeat(300));
        let short = sanitize_filename(&long);
        assert!(
            short.len() <= MAX_FILENAME_LEN && short.ends_with(".gz"),
            "{short}"
        );
    }

    proptest! {
        #[test]
        fn always_a_safe_key_segment(raw in "\\PC{0,300}") {
            let name = sanitize_filename(&raw);
            prop_assert!(!name.is_empty() && name.len() <= MAX_FILENAME_LEN);
            prop_assert!(!name.starts_with('.'));
            let key = format!("tmp/x/{name}");
            prop_assert!(ObjectKey::parse(&key).is_ok(), "{:?}", key);
        }
    }
}
