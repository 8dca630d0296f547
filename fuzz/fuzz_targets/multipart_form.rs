//! The POST Object form reader (`chute_s3::post_object::FormReader`, the
//! route's own reader: multer over a `ByteBudget`) on arbitrary bodies cut
//! into arbitrary chunks, with a boundary and small limits taken from the
//! input; and `ByteBudget` alone.
//!
//! Invariants: the fields returned fit the fields cap; before the file
//! part, no more body is pulled (and so buffered) than the fields cap
//! plus the overhead allowance plus one poll budget and one chunk; while
//! the file streams, what is pulled but not handed out stays within one
//! poll budget, one chunk and the boundary; a file accepted through
//! `content-length-range` is within it; `ByteBudget` yields at most its
//! budget (plus the chunk that crosses it) between pauses and loses nothing.

#![no_main]

use bytes::Bytes;
use chute_s3::post_object::{ByteBudget, FIELD_OVERHEAD, FormLimits, FormReader, PostObjectError};
use futures::{Stream, StreamExt as _};
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// The input: a first line `<boundary> <max fields bytes> <overhead>
/// <poll budget> <chunk size> <min> <max>` (numbers optional, small by
/// design so that limits are reached), then the body bytes.
struct Input {
    boundary: String,
    max_fields_bytes: u16,
    overhead: u16,
    poll_budget: u16,
    chunk: u16,
    min: u16,
    max: u16,
    body: Vec<u8>,
}

impl Input {
    fn parse(data: &[u8]) -> Option<Self> {
        let end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let head = std::str::from_utf8(&data[..end]).ok()?;
        let mut words = head.split(' ');
        let boundary = words.next().unwrap_or_default().to_owned();
        let numbers: Vec<u16> = words.map(|n| n.parse().unwrap_or(0)).collect();
        let number = |i: usize, default: u16| numbers.get(i).copied().unwrap_or(default);
        Some(Self {
            boundary,
            max_fields_bytes: number(0, 1024),
            overhead: number(1, 256),
            poll_budget: number(2, 64),
            chunk: number(3, 16),
            min: number(4, 0),
            max: number(5, 1024),
            body: data.get(end + 1..).unwrap_or_default().to_vec(),
        })
    }
}

/// The body as `chunk`-byte pieces, counting what is pulled.
fn counted(
    body: &[u8],
    chunk: usize,
    pulled: &Arc<AtomicU64>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let pulled = Arc::clone(pulled);
    futures::stream::iter(pieces).inspect(move |c| {
        if let Ok(c) = c {
            pulled.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
    })
}

fn check_byte_budget(body: &[u8], chunk: usize, budget: usize) {
    let pulled = Arc::new(AtomicU64::new(0));
    let mut stream = ByteBudget::new(counted(body, chunk, &pulled), budget);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut round, mut total, mut pauses) = (0usize, 0usize, 0usize);
    loop {
        match Pin::new(&mut stream).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(c))) => {
                assert!(
                    round < budget.max(1),
                    "a chunk was yielded after the budget was spent"
                );
                round += c.len();
                total += c.len();
            }
            Poll::Ready(Some(Err(e))) => panic!("{e}"),
            Poll::Ready(None) => break,
            Poll::Pending => {
                assert!(
                    round <= budget + chunk,
                    "{round} bytes in one round, budget {budget}"
                );
                round = 0;
                pauses += 1;
                assert!(pauses <= body.len() + 1, "ByteBudget pauses without progress");
            }
        }
    }
    assert_eq!(total, body.len(), "ByteBudget lost bytes");
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let chunk = usize::from(input.chunk).max(1);
    let poll_budget = usize::from(input.poll_budget).max(1);
    check_byte_budget(&input.body, chunk, poll_budget);

    let limits = FormLimits {
        max_fields_bytes: usize::from(input.max_fields_bytes),
        overhead: usize::from(input.overhead),
        poll_budget,
    };
    let pulled = Arc::new(AtomicU64::new(0));
    let mut reader = FormReader::new(
        counted(&input.body, chunk, &pulled),
        input.boundary.clone(),
        limits,
    );
    let read = futures::executor::block_on(reader.read_fields());
    let before_file = pulled.load(Ordering::Relaxed);
    let cap = (limits.max_fields_bytes + limits.overhead + poll_budget + chunk) as u64;
    assert!(
        before_file <= cap,
        "pulled {before_file} bytes before the file part (cap {cap}): {:?}",
        read.as_ref().map(|(f, _)| f.len())
    );
    let (fields, file) = match read {
        Ok(read) => read,
        Err(
            PostObjectError::Malformed(_)
            | PostObjectError::FieldsTooLarge { .. }
            | PostObjectError::MissingFile,
        ) => {
            return;
        }
        Err(other) => panic!("unexpected error reading fields: {other}"),
    };
    let used: usize = fields
        .iter()
        .map(|(n, v)| FIELD_OVERHEAD + n.len() + v.len())
        .sum();
    assert!(
        used <= limits.max_fields_bytes,
        "fields take {used} > {}",
        limits.max_fields_bytes
    );
    assert!(fields.iter().all(|(n, _)| !n.eq_ignore_ascii_case("file")));

    let (min, max) = (u64::from(input.min), u64::from(input.max));
    let mut body = file.limited(min, max);
    let slack = (poll_budget + chunk + input.boundary.len() + 8) as u64;
    let mut seen = 0u64;
    let result = futures::executor::block_on(async {
        while let Some(piece) = body.next().await {
            let piece = piece?;
            seen += piece.len() as u64;
            let buffered = pulled.load(Ordering::Relaxed).saturating_sub(seen);
            assert!(
                buffered <= before_file + slack,
                "{buffered} bytes pulled and not handed out while the file streams"
            );
        }
        Ok::<(), std::io::Error>(())
    });
    match result {
        Ok(()) => assert!(
            (min..=max).contains(&seen),
            "a {seen}-byte file passed {min}..={max}"
        ),
        Err(_) => assert!(seen <= max, "{seen} bytes handed out past the maximum {max}"),
    }
});
