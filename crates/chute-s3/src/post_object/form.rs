//! Reading a POST Object body: [`FormReader`] reads the fields that
//! precede the file part within a byte cap and hands the file part on as
//! a [`FilePart`]. multer buffers a part's headers until their blank
//! line, and anything before the first boundary, without bound, so a
//! [`BodyCap`] also bounds the body bytes pulled before the file part
//! beyond the fields' own.

use super::{ByteBudget, LimitedField, PostObjectError};
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

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
    /// The most body bytes pulled in one poll ([`ByteBudget`]).
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

/// The body stream multer reads: the request body under a [`ByteBudget`]
/// and a [`BodyCap`].
type FormBody = BodyCap<ByteBudget<futures::stream::BoxStream<'static, Result<Bytes, BoxError>>>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`BodyCap`] fails the body with once a drain has read its limit.
#[derive(Debug, thiserror::Error)]
#[error("the form sent more than {0} bytes after it was refused")]
struct DrainExceeded(u64);

/// The counters a [`BodyCap`] shares with its [`FormReader`].
#[derive(Debug)]
struct CapState {
    /// Body bytes pulled so far.
    pulled: AtomicU64,
    /// What the form has spent on field names and values (as the fields
    /// cap counts them): bytes multer has handed out.
    credit: AtomicU64,
    /// Bytes allowed beyond `credit`: [`FormLimits::overhead`] plus one
    /// poll budget; `u64::MAX` once the file part streams.
    allowance: AtomicU64,
    /// Set when the cap refused a poll (no waker registered).
    blocked: AtomicBool,
    /// While draining: fail the body past this many bytes pulled.
    drain_end: AtomicU64,
}

/// Stops pulling the body once more than `credit + allowance` bytes were
/// pulled: multer pulls whatever is ready on every poll, and buffers a
/// part's headers until their blank line, and anything before the first
/// boundary, without bound. The refusal is a `Pending` with no waker: the
/// [`FormReader`] polling multer sees it at once ([`step`]);
/// if multer can still make progress from what it holds it goes on, and
/// if it is waiting for bytes the form has spent too much outside field
/// data and is refused. Lifted while the file part streams (multer hands
/// file bytes out as they arrive, keeping a boundary's length at most).
struct BodyCap<S> {
    inner: S,
    state: Arc<CapState>,
}

impl<S> Stream for BodyCap<S>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Unpin,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let state = &self.state;
        let pulled = state.pulled.load(Ordering::Relaxed);
        let drain_end = state.drain_end.load(Ordering::Relaxed);
        if pulled > drain_end {
            return Poll::Ready(Some(Err(Box::new(DrainExceeded(drain_end)))));
        }
        let allowed = state
            .credit
            .load(Ordering::Relaxed)
            .saturating_add(state.allowance.load(Ordering::Relaxed));
        if pulled > allowed && drain_end == u64::MAX {
            state.blocked.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.state.pulled.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

/// The form spent more than its allowance outside field data.
struct Refused;

/// A POST Object body read as the route reads it: multer over the body
/// under a [`ByteBudget`]. Public so that tests and the fuzz targets
/// (`fuzz/`) drive the same reader as the route.
pub struct FormReader {
    multipart: multer::Multipart<'static>,
    limits: FormLimits,
    cap: Arc<CapState>,
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
        E: Into<BoxError> + 'static,
    {
        use futures::StreamExt as _;
        let allowance = limits.overhead.saturating_add(limits.poll_budget);
        let cap = Arc::new(CapState {
            pulled: AtomicU64::new(0),
            credit: AtomicU64::new(0),
            allowance: AtomicU64::new(allowance as u64),
            blocked: AtomicBool::new(false),
            drain_end: AtomicU64::new(u64::MAX),
        });
        let body: FormBody = BodyCap {
            inner: ByteBudget::new(body.map(|r| r.map_err(Into::into)).boxed(), limits.poll_budget),
            state: Arc::clone(&cap),
        };
        Self {
            multipart: multer::Multipart::new(body, boundary),
            limits,
            cap,
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
        let state = Arc::clone(&self.cap);
        let mut fields = Vec::new();
        let mut used = 0usize;
        loop {
            let next = step(&state, self.multipart.next_field()).await;
            let Some(mut field) = next.map_err(|Refused| too_large())?.map_err(malformed)? else {
                break;
            };
            let name = field.name().unwrap_or_default().to_owned();
            if name.eq_ignore_ascii_case("file") {
                // The file streams through: multer hands its bytes out as
                // they arrive (keeping at most a boundary's length).
                state.allowance.store(u64::MAX, Ordering::Relaxed);
                return Ok((fields, FilePart(field)));
            }
            used = used.saturating_add(FIELD_OVERHEAD + name.len());
            state.credit.store(used as u64, Ordering::Relaxed);
            if used > max_fields_bytes {
                return Err(too_large());
            }
            let mut value = Vec::new();
            while let Some(chunk) = step(&state, field.chunk())
                .await
                .map_err(|Refused| too_large())?
                .map_err(malformed)?
            {
                used = used.saturating_add(chunk.len());
                state.credit.store(used as u64, Ordering::Relaxed);
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

    /// Reads and drops what is left of a refused form, up to
    /// [`DRAIN_LIMIT`] bytes or [`DRAIN_TIME`]. A server that answers and
    /// closes with request bytes unread makes the kernel reset the
    /// connection, and a client still sending (a browser, fetch) then
    /// sees a network error instead of S3's XML error. Past the bounds
    /// the connection is closed anyway.
    pub async fn drain(&mut self) {
        let pulled = self.cap.pulled.load(Ordering::Relaxed);
        self.cap
            .drain_end
            .store(pulled.saturating_add(DRAIN_LIMIT), Ordering::Relaxed);
        drain(&mut self.multipart).await;
    }

    /// The body bytes pulled so far (for tests and the fuzz targets).
    pub fn pulled(&self) -> u64 {
        self.cap.pulled.load(Ordering::Relaxed)
    }
}

/// Polls one multer step; `Err(Refused)` when multer waits for bytes the
/// [`BodyCap`] refused to pull (so nothing would ever wake it).
async fn step<F: std::future::Future>(state: &CapState, fut: F) -> Result<F::Output, Refused> {
    let mut fut = std::pin::pin!(fut);
    futures::future::poll_fn(|cx| {
        state.blocked.store(false, Ordering::Relaxed);
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Ok(out)),
            Poll::Pending if state.blocked.load(Ordering::Relaxed) => Poll::Ready(Err(Refused)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

fn malformed(err: multer::Error) -> PostObjectError {
    if crate::error::is_body_timeout(&err) {
        return PostObjectError::RequestTimeout;
    }
    PostObjectError::Malformed(err.to_string())
}

/// How much of a refused form's remainder is read before the answer.
pub const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;
/// How long reading a refused form's remainder may take.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// [`FormReader::drain`].
async fn drain(multipart: &mut multer::Multipart<'_>) {
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

    /// `body` in 64 KiB chunks through a [`FormReader`], counting what is
    /// pulled: the fields' result and the bytes pulled by then.
    async fn read_counted(body: Vec<u8>, max_fields_bytes: usize) -> (Result<usize, PostObjectError>, u64) {
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
        let mut reader = FormReader::new(stream, "B", FormLimits::new(max_fields_bytes));
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
