//! What an object really is: its type from its first bytes (`infer`),
//! compared with what the client declared. Active Storage trusts the
//! declared type; Chute does not.

/// How many leading bytes are read to sniff a type.
pub const SNIFF_LEN: u64 = 8192;

/// The outcome of comparing content with a declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// The type to record: detected from the bytes, or the declared one
    /// when the format has no magic number (plain text, CSV, ...).
    Type(String),
    /// The bytes contradict the declared type.
    Mismatch {
        /// What the client said.
        declared: String,
        /// What the bytes are (`None`: no known format, while the declared
        /// type has a magic number that is missing).
        detected: Option<String>,
    },
}

/// Compares `head` (the object's first bytes) with `declared`.
pub fn sniff(head: &[u8], declared: &str) -> Sniffed {
    let declared_essence = essence(declared);
    // "Some bytes": nothing to contradict.
    let generic = matches!(declared_essence.as_str(), "application/octet-stream" | "");
    match infer::get(head) {
        Some(kind) => {
            let detected = kind.mime_type();
            if generic || same_type(&declared_essence, detected) {
                Sniffed::Type(detected.to_owned())
            } else {
                Sniffed::Mismatch {
                    declared: declared.to_owned(),
                    detected: Some(detected.to_owned()),
                }
            }
        }
        None if !generic && infer::is_mime_supported(&canonical(&declared_essence)) && !head.is_empty() => {
            Sniffed::Mismatch {
                declared: declared.to_owned(),
                detected: None,
            }
        }
        None => Sniffed::Type(declared.to_owned()),
    }
}

/// The type to record for content starting with `head` declared as
/// `declared` under `grant`: the sniffed type, or 422 `type_mismatch` when
/// the bytes contradict the declaration, or the grant's 422 when it does
/// not allow the type.
pub fn checked_type(
    head: &[u8],
    declared: &str,
    grant: &chute_core::Grant,
) -> Result<String, super::ApiError> {
    let content_type = match sniff(head, declared) {
        Sniffed::Type(t) => t,
        Sniffed::Mismatch { declared, detected } => {
            let what = detected.map_or_else(|| "no known format".to_owned(), |d| format!("{d:?}"));
            return Err(super::ApiError::rejected(
                "type_mismatch",
                format!("declared {declared:?} but the content is {what}"),
            ));
        }
    };
    grant
        .check_type(&content_type)
        .map_err(|v| super::ApiError::rejected(v.code(), v.to_string()))?;
    Ok(content_type)
}

/// The extension (with dot) for a media type, preferring `filename_ext`
/// when it is one of the type's extensions.
pub fn extension_for(media_type: &str, filename_ext: &str) -> Option<String> {
    let exts = mime_guess::get_mime_extensions_str(&essence(media_type))?;
    let given = filename_ext.trim_start_matches('.').to_ascii_lowercase();
    if !given.is_empty() && exts.iter().any(|e| *e == given) {
        return Some(format!(".{given}"));
    }
    let preferred = infer_extension(media_type).or_else(|| exts.first().copied())?;
    Some(format!(".{preferred}"))
}

fn infer_extension(media_type: &str) -> Option<&'static str> {
    match essence(media_type).as_str() {
        "image/jpeg" => Some("jpg"),
        "image/png" => Some("png"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        "application/pdf" => Some("pdf"),
        "text/plain" => Some("txt"),
        _ => None,
    }
}

fn essence(t: &str) -> String {
    t.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The name `infer` uses for a type browsers spell another way.
fn canonical(t: &str) -> String {
    match t {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "audio/mp3" => "audio/mpeg".into(),
        "audio/x-wav" | "audio/wave" => "audio/wav".into(),
        "application/x-zip-compressed" => "application/zip".into(),
        "image/x-png" => "image/png".into(),
        "application/x-pdf" => "application/pdf".into(),
        other => other.to_owned(),
    }
}

/// Equal types, allowing the aliases browsers and `infer` disagree on.
fn same_type(declared: &str, detected: &str) -> bool {
    canonical(declared) == canonical(detected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn detects_matches_and_mismatches() {
        assert_eq!(sniff(PNG, "image/png"), Sniffed::Type("image/png".into()));
        assert_eq!(
            sniff(PNG, "application/octet-stream"),
            Sniffed::Type("image/png".into())
        );
        assert!(matches!(sniff(PNG, "application/pdf"), Sniffed::Mismatch { .. }));
        let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>";
        assert!(matches!(
            sniff(html, "image/png"),
            Sniffed::Mismatch {
                detected: Some(_),
                ..
            }
        ));
        assert_eq!(
            sniff(b"just text", "image/png"),
            Sniffed::Mismatch {
                declared: "image/png".into(),
                detected: None
            }
        );
        assert_eq!(sniff(b"a,b\n1,2\n", "text/csv"), Sniffed::Type("text/csv".into()));
        assert_eq!(
            sniff(b"\0\x01\x02 no magic", "application/octet-stream"),
            Sniffed::Type("application/octet-stream".into())
        );
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0", "image/jpg"),
            Sniffed::Type("image/jpeg".into())
        );
    }

    #[test]
    fn extensions() {
        assert_eq!(extension_for("image/jpeg", ".JPEG").as_deref(), Some(".jpeg"));
        assert_eq!(extension_for("image/jpeg", ".png").as_deref(), Some(".jpg"));
        assert_eq!(extension_for("image/png", "").as_deref(), Some(".png"));
        assert_eq!(extension_for("application/x-unknown-thing", ".bin"), None);
    }

    #[test]
    fn aliases_are_magic_checked_like_their_names() {
        for alias in ["image/jpg", "image/x-png", "image/pjpeg", "application/x-pdf"] {
            assert!(
                matches!(sniff(b"hello", alias), Sniffed::Mismatch { .. }),
                "{alias}"
            );
        }
    }
}
