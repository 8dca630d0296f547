//! Reading a POST Object body: [`FormReader`] reads the fields that
//! precede the file part within a byte cap and hands the file part on as
//! a [`FilePart`]. multer buffers a part's headers until their blank
//! line, and anything before the first boundary, without bound, so a
//! [`FormGuard`] also bounds the body bytes pulled before the file part
//! beyond the fields' own.

use super::guard::{FormGuard, Refused};
use super::{LimitedField, PostObjectError};
use bytes::Bytes;
use futures::Stream;

/// The most body bytes pulled from the socket in one poll: multer reads
/// ahead while data is ready, so without this a fast client could fill
/// memory faster than the store drains it.
pub const POLL_BUDGET: usize = 256 * 1024;

/// What each field costs against the fields budget beyond its name and
/// value: its boundary and headers. Without it, a stream of empty fields
/// would cost nothing and grow the field list without bound.
pub const FIELD_OVERHEAD: usize = 64;

/// Body bytes a form may spend before its file part on anything but
/// field names and values: the same slack the route allows a declared
/// `Content-Length` over the file and fields caps.
pub const FORM_OVERHEAD: usize = 64 * 1024;

/// The bounds a [`FormReader`] works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// The most bytes the fields before the file part may take: names,
    /// values and [`FIELD_OVERHEAD`] for each field.
    pub max_fields_bytes: usize,
    /// The most body bytes pulled in one poll ([`super::ByteBudget`]).
    pub poll_budget: usize,
    /// Body bytes allowed before the file part beyond the fields' own:
    /// the preamble, boundaries and part headers ([`FORM_OVERHEAD`]).
    pub overhead: usize,
}

impl FormLimits {
    /// The limits the POST Object route uses for a fields cap of
    /// `max_fields_bytes`.
    pub fn new(max_fields_bytes: usize) -> Self {
        Self {
            max_fields_bytes,
            poll_budget: POLL_BUDGET,
            overhead: FORM_OVERHEAD,
        }
    }
}

/// A POST Object body read as the route reads it: multer over the body
/// under a [`FormGuard`]. Public so that tests and the fuzz targets
/// (`fuzz/`) drive the same reader as the route.
pub struct FormReader {
    multipart: multer::Multipart<'static>,
    limits: FormLimits,
    guard: FormGuard,
}

impl std::fmt::Debug for FormReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormReader")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The form's file part, read through [`FilePart::limited`].
pub struct FilePart(multer::Field<'static>);

impl std::fmt::Debug for FilePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FilePart").field(&self.0.file_name()).finish()
    }
}

impl FilePart {
    /// The `filename` of the part's `Content-Disposition`, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.0.file_name()
    }

    /// The file's bytes, failing once past `max` bytes or when they end
    /// below `min` (the policy's `content-length-range`).
    pub fn limited(self, min: u64, max: u64) -> LimitedField<'static> {
        LimitedField::new(self.0, min, max)
    }
}

impl FormReader {
    /// A reader of `body`, a `multipart/form-data` body with `boundary`.
    pub fn new<S, E>(body: S, boundary: impl Into<String>, limits: FormLimits) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        // Beyond the fields' own bytes: the overhead, and one poll's
        // read-ahead.
        let allowance = limits.overhead.saturating_add(limits.poll_budget) as u64;
        let (guard, body) = FormGuard::new(body, limits.poll_budget, allowance);
        Self {
            multipart: multer::Multipart::new(body, boundary),
            limits,
            guard,
        }
    }

    /// Reads every field before the `file` part (names matched
    /// case-insensitively; non-file fields may carry a `filename=`
    /// attribute, as some clients send them). Returns the fields in
    /// order and the file part.
    pub async fn read_fields(&mut self) -> Result<(Vec<(String, String)>, FilePart), PostObjectError> {
        let max_fields_bytes = self.limits.max_fields_bytes;
        let too_large = || PostObjectError::FieldsTooLarge {
            max: max_fields_bytes,
        };
        let guard = &self.guard;
        let mut fields = Vec::new();
        let mut used = 0usize;
        loop {
            let next = guard.step(self.multipart.next_field()).await;
            let Some(mut field) = next.map_err(|Refused| too_large())?.map_err(malformed)? else {
                break;
            };
            let name = field.name().unwrap_or_default().to_owned();
            if name.eq_ignore_ascii_case("file") {
                // The file streams through: multer hands its bytes out as
                // they arrive (keeping at most a boundary's length).
                guard.lift();
                return Ok((fields, FilePart(field)));
            }
            used = used.saturating_add(FIELD_OVERHEAD + name.len());
            guard.credit((FIELD_OVERHEAD + name.len()) as u64);
            if used > max_fields_bytes {
                return Err(too_large());
            }
            let mut value = Vec::new();
            while let Some(chunk) = guard
                .step(field.chunk())
                .await
                .map_err(|Refused| too_large())?
                .map_err(malformed)?
            {
                used = used.saturating_add(chunk.len());
                guard.credit(chunk.len() as u64);
                if used > max_fields_bytes {
                    return Err(too_large());
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value)
                .map_err(|_| PostObjectError::Malformed(format!("form field {name:?} is not UTF-8")))?;
            fields.push((name, value));
        }
        Err(PostObjectError::MissingFile)
    }

    /// Reads and drops a bounded remainder of a refused form
    /// ([`super::drain`]), so a client still sending reads S3's XML
    /// error instead of a connection reset.
    pub async fn drain(&mut self) {
        self.guard.drain().await;
    }

    /// The body bytes pulled so far (for tests and the fuzz targets).
    pub fn pulled(&self) -> u64 {
        self.guard.pulled()
    }
}

fn malformed(err: multer::Error) -> PostObjectError {
    if crate::error::is_body_timeout(&err) {
        return PostObjectError::RequestTimeout;
    }
    PostObjectError::Malformed(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::DRAIN_LIMIT;
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A form of `fields` fields of `size` bytes each.
    fn form_of(fields: usize, size: usize) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..fields {
            body.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n").as_bytes(),
            );
            body.extend(std::iter::repeat_n(b'x', size));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--B--\r\n");
        body
    }

    /// `body` in 64 KiB chunks through a [`FormReader`] with a fields cap
    /// of `max_fields_bytes`, and the count of body bytes pulled.
    fn counted_reader(body: Vec<u8>, max_fields_bytes: usize) -> (FormReader, Arc<AtomicU64>) {
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
        let reader = FormReader::new(stream, "B", FormLimits::new(max_fields_bytes));
        (reader, pulled)
    }

    use futures::StreamExt as _;

    #[tokio::test]
    async fn drain_reads_a_refused_remainder_to_its_end() {
        let (mut reader, pulled) = counted_reader(form_of(3, 1 << 20), 1024);
        // Refused while reading the first field.
        let read = reader.read_fields().await;
        assert!(
            matches!(read, Err(PostObjectError::FieldsTooLarge { .. })),
            "{read:?}"
        );
        reader.drain().await;
        assert!(
            pulled.load(Ordering::Relaxed) >= 3 << 20,
            "the whole remainder was read"
        );
    }

    #[tokio::test]
    async fn drain_stops_at_its_byte_limit() {
        let (mut reader, pulled) = counted_reader(form_of(40, 1 << 20), 1024);
        let read = reader.read_fields().await;
        assert!(
            matches!(read, Err(PostObjectError::FieldsTooLarge { .. })),
            "{read:?}"
        );
        reader.drain().await;
        let read = pulled.load(Ordering::Relaxed);
        assert!(
            read > DRAIN_LIMIT && read < DRAIN_LIMIT + (3 << 20),
            "read {read} bytes"
        );
    }

    /// `body` in 64 KiB chunks through a [`FormReader`], counting what is
    /// pulled: the fields' result and the bytes pulled by then.
    async fn read_counted(body: Vec<u8>, max_fields_bytes: usize) -> (Result<usize, PostObjectError>, u64) {
        let (mut reader, pulled) = counted_reader(body, max_fields_bytes);
        let read = reader.read_fields().await.map(|(fields, _)| fields.len());
        (read, pulled.load(Ordering::Relaxed))
    }

    /// Found by the `multipart_form` fuzz target (fuzz/regressions/):
    /// multer buffers a part's headers until their blank line, and
    /// everything before the first boundary, without bound; the fields
    /// cap only counted names and values, so one endless header (or
    /// preamble) was held in memory whole.
    #[tokio::test]
    async fn an_endless_header_or_preamble_is_refused_within_the_cap() {
        let cap = 20 * 1024;
        let bound = (cap + FORM_OVERHEAD + POLL_BUDGET + 64 * 1024) as u64;
        let mut header = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ".to_vec();
        header.extend(std::iter::repeat_n(b'x', 8 << 20));
        let mut preamble = vec![b'p'; 8 << 20];
        preamble.extend_from_slice(b"\r\n--B--\r\n");
        for body in [header, preamble] {
            let (read, pulled) = read_counted(body, cap).await;
            assert!(
                matches!(read, Err(PostObjectError::FieldsTooLarge { .. })),
                "{read:?}"
            );
            assert!(pulled <= bound, "pulled {pulled} bytes, bound {bound}");
        }
    }

    #[tokio::test]
    async fn a_browser_form_reads_within_the_cap() {
        let mut body = Vec::new();
        for i in 0..20 {
            body.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"x-amz-meta-f{i}\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n", "v".repeat(900)).as_bytes(),
            );
        }
        body.extend_from_slice(
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n",
        );
        body.extend(std::iter::repeat_n(b'f', 4 << 20));
        body.extend_from_slice(b"\r\n--B--\r\n");
        let (read, pulled) = read_counted(body, 20 * 1024).await;
        assert_eq!(read.ok(), Some(20));
        // multer pulls whatever is ready on every poll: without the cap,
        // each of the 20 fields added a poll budget of read-ahead.
        let bound = (20 * 1024 + FORM_OVERHEAD + POLL_BUDGET + 64 * 1024) as u64;
        assert!(
            pulled <= bound,
            "pulled {pulled} bytes before the file, bound {bound}"
        );
    }
}
