//! Reading the form fields that precede the file part, within a byte cap.

use super::PostObjectError;

/// The most body bytes pulled from the socket in one poll: multer reads
/// ahead while data is ready, so without this a fast client could fill
/// memory faster than the store drains it.
pub(super) const POLL_BUDGET: usize = 256 * 1024;

/// What each field costs against the fields budget beyond its name and
/// value: its boundary and headers. Without it, a stream of empty fields
/// would cost nothing and grow the field list without bound.
const FIELD_OVERHEAD: usize = 64;

/// Reads every field before the `file` part (names matched
/// case-insensitively; non-file fields may carry a `filename=` attribute,
/// as some clients send them). Returns the fields in order and the file part.
pub(super) async fn read_until_file<'r>(
    multipart: &mut multer::Multipart<'r>,
    max_fields_bytes: usize,
) -> Result<(Vec<(String, String)>, multer::Field<'r>), PostObjectError> {
    let mut fields = Vec::new();
    let mut used = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name.eq_ignore_ascii_case("file") {
            return Ok((fields, field));
        }
        used = used.saturating_add(FIELD_OVERHEAD + name.len());
        if used > max_fields_bytes {
            return Err(PostObjectError::FieldsTooLarge {
                max: max_fields_bytes,
            });
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            used = used.saturating_add(chunk.len());
            if used > max_fields_bytes {
                return Err(PostObjectError::FieldsTooLarge {
                    max: max_fields_bytes,
                });
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| PostObjectError::Malformed(format!("form field {name:?} is not UTF-8")))?;
        fields.push((name, value));
    }
    Err(PostObjectError::MissingFile)
}

fn malformed(err: multer::Error) -> PostObjectError {
    PostObjectError::Malformed(err.to_string())
}
