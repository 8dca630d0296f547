//! A streamed upload body: passes the caller's chunks on to the HTTP
//! request while hashing them, and holds back the end of the body until
//! the whole of it has been checked against the write's expectations.
//! A body that is too long, too short, fails, or has the wrong digest
//! makes the request fail before its last byte is sent, so S3 never
//! commits it. Optionally frames the body as `aws-chunked` with a
//! checksum trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), for a checksum
//! the server must store but nobody knows in advance.

use super::client::{Body, Request, S3Client};
use crate::expect::verify;
use crate::{ByteStream, StoreError, StoreResult};
use bytes::{Bytes, BytesMut};
use chute_core::checksum::HashResult;
use chute_core::sigv4::UNSIGNED_PAYLOAD;
use chute_core::{Checksum, ChecksumAlgorithm, Hasher};
use futures::{Stream, StreamExt as _};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

/// Data bytes per `aws-chunked` frame.
const FRAME: usize = 64 * 1024;

/// What the body must be.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expectations {
    pub(crate) len: Option<u64>,
    pub(crate) md5: Option<[u8; 16]>,
    pub(crate) checksum: Option<Checksum>,
    /// Algorithms to compute besides MD5 (the expected one is added).
    pub(crate) algorithms: Vec<ChecksumAlgorithm>,
}

/// What the body found, read once the request is over.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Why the body stopped the request (the caller's error, a length or
    /// digest mismatch).
    pub(crate) failure: Option<StoreError>,
    /// The digests of the whole body, once it ended well.
    pub(crate) hash: Option<HashResult>,
}

pub(crate) type SharedOutcome = Arc<Mutex<Outcome>>;

/// Takes the outcome out of `shared`.
pub(crate) fn take_outcome(shared: &SharedOutcome) -> Outcome {
    shared
        .lock()
        .map(|mut o| std::mem::take(&mut *o))
        .unwrap_or_default()
}

/// The wire length of `decoded` bytes framed as `aws-chunked` with a
/// `trailer` checksum.
pub(crate) fn chunked_len(decoded: u64, trailer: ChecksumAlgorithm) -> u64 {
    let frame = |n: u64| format!("{n:x}").len() as u64 + 2 + n + 2;
    let full = decoded / FRAME as u64;
    let rem = decoded % FRAME as u64;
    let value_len = trailer.digest_len().div_ceil(3) as u64 * 4;
    let trailer_line = trailer.header_name().len() as u64 + 1 + value_len + 2;
    full * frame(FRAME as u64) + if rem > 0 { frame(rem) } else { 0 } + 3 + trailer_line + 2
}

fn frame(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

struct State {
    inner: ByteStream,
    hasher: Option<Hasher>,
    expect: Expectations,
    /// `Some` when framing as aws-chunked: the trailer's algorithm.
    trailer: Option<ChecksumAlgorithm>,
    /// Plain: the last chunk; chunked: the unframed tail.
    held: BytesMut,
    out: VecDeque<Bytes>,
    done: bool,
    shared: SharedOutcome,
}

impl State {
    fn fail(&mut self, e: StoreError) -> io::Error {
        let message = format!("upload stopped: {e}");
        if let Ok(mut o) = self.shared.lock() {
            o.failure = Some(e);
        }
        self.done = true;
        io::Error::other(message)
    }

    fn take_chunk(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let hasher = self
            .hasher
            .as_mut()
            .ok_or(StoreError::Corrupt("hasher gone".into()))?;
        hasher.update(&chunk);
        if let Some(expected) = self.expect.len
            && hasher.len() > expected
        {
            return Err(StoreError::LengthMismatch {
                expected,
                received: hasher.len(),
            });
        }
        if self.trailer.is_some() {
            self.held.extend_from_slice(&chunk);
            // Keep the last frame back until the body has ended well.
            while self.held.len() > FRAME {
                let data = self.held.split_to(FRAME);
                self.out.push_back(frame(&data));
            }
        } else {
            if !self.held.is_empty() {
                self.out.push_back(self.held.split().freeze());
            }
            self.held.extend_from_slice(&chunk);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        let hash = self
            .hasher
            .take()
            .ok_or(StoreError::Corrupt("hasher gone".into()))?
            .finish();
        verify(
            &hash,
            self.expect.len,
            self.expect.md5,
            self.expect.checksum.as_ref(),
        )?;
        let tail = self.held.split().freeze();
        match self.trailer {
            None => {
                if !tail.is_empty() {
                    self.out.push_back(tail);
                }
            }
            Some(algorithm) => {
                if !tail.is_empty() {
                    self.out.push_back(frame(&tail));
                }
                let value = hash
                    .checksums
                    .iter()
                    .find(|c| c.algorithm == algorithm)
                    .map(Checksum::to_header_value)
                    .ok_or(StoreError::Corrupt("trailer checksum not computed".into()))?;
                let end = format!("0\r\n{}:{value}\r\n\r\n", algorithm.header_name());
                self.out.push_back(Bytes::from(end));
            }
        }
        if let Ok(mut o) = self.shared.lock() {
            o.hash = Some(hash);
        }
        self.done = true;
        Ok(())
    }
}

/// The request body for `body` under `expect`, framed as aws-chunked with
/// a `trailer` checksum when given; its outcome lands in `shared`.
pub(crate) fn upload_body(
    body: ByteStream,
    mut expect: Expectations,
    trailer: Option<ChecksumAlgorithm>,
    shared: SharedOutcome,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let mut algorithms = std::mem::take(&mut expect.algorithms);
    algorithms.extend(expect.checksum.as_ref().map(|c| c.algorithm));
    algorithms.extend(trailer);
    let state = State {
        inner: body,
        hasher: Some(Hasher::new(&algorithms)),
        expect,
        trailer,
        held: BytesMut::new(),
        out: VecDeque::new(),
        done: false,
        shared,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.out.pop_front() {
                return Some((Ok(b), s));
            }
            if s.done {
                return None;
            }
            let step = match s.inner.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => Ok(()),
                Some(Ok(chunk)) => s.take_chunk(chunk),
                Some(Err(e)) => Err(StoreError::Body(e)),
                None => s.finish(),
            };
            if let Err(e) = step {
                let err = s.fail(e);
                return Some((Err(err), s));
            }
        }
    })
}

/// Chunks smaller than this are copied together rather than kept as they
/// came: a small slice would keep a whole read buffer alive.
const COALESCE: usize = 64 * 1024;

/// A body held in memory in the chunks it arrived in: no copy of a large
/// chunk (a part the caller already holds is not duplicated), and
/// replayable, so a request carrying it may be retried.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chunks {
    pieces: Vec<Bytes>,
    small: BytesMut,
    len: usize,
}

impl Chunks {
    /// Appends `chunk`.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if chunk.len() < COALESCE {
            self.small.extend_from_slice(&chunk);
            if self.small.len() >= COALESCE {
                self.pieces.push(self.small.split().freeze());
            }
        } else {
            if !self.small.is_empty() {
                self.pieces.push(self.small.split().freeze());
            }
            self.pieces.push(chunk);
        }
    }

    /// The bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunks, in order.
    pub(crate) fn into_pieces(mut self) -> Vec<Bytes> {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
        self.pieces
    }

    /// One contiguous copy (for a body that turned out to need one).
    fn into_contiguous(self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.len);
        for piece in self.into_pieces() {
            out.extend_from_slice(&piece);
        }
        out
    }
}

/// A request body of `pieces` held in memory (replayable).
pub(crate) fn in_memory(mut pieces: Vec<Bytes>) -> Body {
    if pieces.len() == 1 {
        Body::Bytes(pieces.remove(0))
    } else {
        Body::Chunks(pieces)
    }
}

/// What [`buffer_up_to`] read.
pub(crate) enum Buffered {
    /// All of it.
    Whole(Chunks),
    /// What was read once it passed the limit; the rest is still unread.
    Over(BytesMut),
}

/// Reads `body` into memory until it ends or passes `limit` bytes,
/// refusing it as soon as it is longer than `expected_len`.
pub(crate) async fn buffer_up_to(
    body: &mut ByteStream,
    limit: usize,
    expected_len: Option<u64>,
) -> StoreResult<Buffered> {
    let mut buf = Chunks::default();
    while let Some(item) = body.next().await {
        buf.push(item.map_err(StoreError::Body)?);
        if let Some(expected) = expected_len
            && buf.len() as u64 > expected
        {
            return Err(StoreError::LengthMismatch {
                expected,
                received: buf.len() as u64,
            });
        }
        if buf.len() > limit {
            return Ok(Buffered::Over(buf.into_contiguous()));
        }
    }
    Ok(Buffered::Whole(buf))
}

/// Sends `req` with `body` streamed as exactly `len` bytes and checked
/// against `expect` on the way; with a `trailer`, framed as aws-chunked
/// carrying that checksum. The answer and the digests of the whole body;
/// `what` names the write in the error for an answer that came too soon.
pub(crate) async fn send_streamed(
    client: &S3Client,
    mut req: Request<'_>,
    body: ByteStream,
    expect: Expectations,
    trailer: Option<ChecksumAlgorithm>,
    len: u64,
    what: &str,
) -> StoreResult<(reqwest::Response, HashResult)> {
    let shared = SharedOutcome::default();
    let expect = Expectations {
        len: Some(len),
        ..expect
    };
    let stream = upload_body(body, expect, trailer, shared.clone());
    let (wire_len, payload) = match trailer {
        None => (len, UNSIGNED_PAYLOAD),
        Some(a) => {
            aws_chunked_headers(&mut req.headers, len, a);
            (chunked_len(len, a), "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        }
    };
    let req = req.body(Body::Stream {
        body: reqwest::Body::wrap_stream(stream),
        len: wire_len,
        payload,
    });
    let result = client.send(req).await;
    let outcome = take_outcome(&shared);
    if let Some(failure) = outcome.failure {
        return Err(failure);
    }
    let resp = result?;
    let hash = outcome
        .hash
        .ok_or_else(|| StoreError::Corrupt(format!("S3 acknowledged a {what} before its body ended")))?;
    Ok((resp, hash))
}

/// Marks a request body as aws-chunked with a `trailer` checksum.
fn aws_chunked_headers(headers: &mut Vec<(String, String)>, len: u64, trailer: ChecksumAlgorithm) {
    // A stored Content-Encoding follows aws-chunked, which S3 strips.
    let stored = headers
        .iter()
        .position(|(n, _)| n == "content-encoding")
        .map(|i| headers.remove(i).1);
    let encoding = match stored {
        Some(e) => format!("aws-chunked,{e}"),
        None => "aws-chunked".to_owned(),
    };
    headers.push(("content-encoding".into(), encoding));
    headers.push(("x-amz-decoded-content-length".into(), len.to_string()));
    headers.push(("x-amz-trailer".into(), trailer.header_name().to_owned()));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;

    #[test]
    fn held_bodies_keep_large_chunks_and_join_small_ones() {
        let big = Bytes::from(vec![7u8; COALESCE * 2]);
        let mut held = Chunks::default();
        for small in [&b"ab"[..], b"cd"] {
            held.push(Bytes::copy_from_slice(small));
        }
        held.push(big.clone());
        held.push(Bytes::from_static(b"end"));
        assert_eq!(held.len(), 4 + big.len() + 3);
        let pieces = held.clone().into_pieces();
        assert_eq!(pieces.len(), 3, "small runs join, the large chunk stays whole");
        assert_eq!(pieces[1].as_ptr(), big.as_ptr(), "the large chunk is not copied");
        let joined: Vec<u8> = pieces.concat();
        assert_eq!(&joined[..4], b"abcd");
        assert_eq!(&joined[joined.len() - 3..], b"end");
        assert_eq!(held.into_contiguous().len(), joined.len());
        assert!(matches!(in_memory(vec![big]), Body::Bytes(_)));
        assert!(matches!(in_memory(pieces), Body::Chunks(p) if p.len() == 3));
    }

    fn chunks(data: &[u8], n: usize) -> ByteStream {
        let v: Vec<io::Result<Bytes>> = data.chunks(n).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(v).boxed()
    }

    async fn run(
        data: &[u8],
        expect: Expectations,
        trailer: Option<ChecksumAlgorithm>,
    ) -> (io::Result<Vec<u8>>, Outcome) {
        let shared = SharedOutcome::default();
        let out: io::Result<Vec<Bytes>> = upload_body(chunks(data, 1000), expect, trailer, shared.clone())
            .try_collect()
            .await;
        (out.map(|v| v.concat()), take_outcome(&shared))
    }

    #[tokio::test]
    async fn a_good_body_passes_through_and_is_hashed() {
        let data = vec![7u8; 5000];
        let (out, o) = run(
            &data,
            Expectations {
                len: Some(5000),
                ..Default::default()
            },
            None,
        )
        .await;
        assert_eq!(out.unwrap(), data);
        assert_eq!(o.hash.unwrap().len, 5000);
    }

    #[tokio::test]
    async fn the_end_is_held_back_when_an_expectation_fails() {
        let data = vec![7u8; 5000];
        for expect in [
            Expectations {
                len: Some(4999),
                ..Default::default()
            },
            Expectations {
                len: Some(5001),
                ..Default::default()
            },
            Expectations {
                md5: Some([0; 16]),
                ..Default::default()
            },
        ] {
            let shared = SharedOutcome::default();
            let mut s = Box::pin(upload_body(chunks(&data, 1000), expect, None, shared.clone()));
            let mut sent = 0;
            let mut failed = false;
            while let Some(item) = s.next().await {
                match item {
                    Ok(b) => sent += b.len(),
                    Err(_) => failed = true,
                }
            }
            assert!(failed && sent < 5000, "sent {sent}");
            assert!(take_outcome(&shared).failure.is_some());
        }
    }

    #[tokio::test]
    async fn aws_chunked_framing_has_the_announced_length() {
        for len in [0usize, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME] {
            let data = vec![1u8; len];
            let (out, _) = run(&data, Expectations::default(), Some(ChecksumAlgorithm::Crc32)).await;
            let out = out.unwrap();
            assert_eq!(
                out.len() as u64,
                chunked_len(len as u64, ChecksumAlgorithm::Crc32),
                "len {len}"
            );
            let text = String::from_utf8_lossy(&out[out.len().saturating_sub(40)..]).into_owned();
            assert!(
                text.ends_with("\r\n\r\n") && text.contains("0\r\nx-amz-checksum-crc32:"),
                "{text:?}"
            );
        }
    }
}
