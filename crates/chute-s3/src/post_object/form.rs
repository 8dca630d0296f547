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
    if crate::error::is_body_timeout(&err) {
        return PostObjectError::RequestTimeout;
    }
    PostObjectError::Malformed(err.to_string())
}

/// How much of a refused form's remainder is read before the answer.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;
/// How long reading a refused form's remainder may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what is left of a refused form, up to [`DRAIN_LIMIT`]
/// bytes or [`DRAIN_TIME`]. A server that answers and closes with request
/// bytes unread makes the kernel reset the connection, and a client still
/// sending (a browser, fetch) then sees a network error instead of S3's
/// XML error. Past the bounds the connection is closed anyway.
pub(super) async fn drain(multipart: &mut multer::Multipart<'_>) {
    let drained = async {
        let mut seen = 0u64;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                seen += chunk.len() as u64;
                if seen > DRAIN_LIMIT {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A form of `fields` fields of `size` bytes each, counting what is pulled.
    fn counted_form(fields: usize, size: usize) -> (multer::Multipart<'static>, Arc<AtomicU64>) {
        let mut body = Vec::new();
        for i in 0..fields {
            body.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n").as_bytes(),
            );
            body.extend(std::iter::repeat_n(b'x', size));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--B--\r\n");
        let pulled = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&pulled);
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures::stream::iter(chunks).inspect(move |c| {
            if let Ok(c) = c {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        });
        // As in production: multer reads ahead while data is ready.
        let budgeted = super::super::ByteBudget::new(stream, POLL_BUDGET);
        (multer::Multipart::new(budgeted, "B"), pulled)
    }

    use futures::StreamExt as _;

    #[tokio::test]
    async fn drain_reads_a_refused_remainder_to_its_end() {
        let (mut form, pulled) = counted_form(3, 1 << 20);
        let first = form.next_field().await.unwrap().unwrap();
        drop(first); // refused while reading the first field
        drain(&mut form).await;
        assert!(
            pulled.load(Ordering::Relaxed) >= 3 << 20,
            "the whole remainder was read"
        );
    }

    #[tokio::test]
    async fn drain_stops_at_its_byte_limit() {
        let (mut form, pulled) = counted_form(40, 1 << 20);
        drain(&mut form).await;
        let read = pulled.load(Ordering::Relaxed);
        assert!(
            read > DRAIN_LIMIT && read < DRAIN_LIMIT + (3 << 20),
            "read {read} bytes"
        );
    }
}
