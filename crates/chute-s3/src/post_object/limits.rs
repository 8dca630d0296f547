//! Stream wrappers that bound what a POST Object reads: [`ByteBudget`]
//! caps read-ahead per poll, [`LimitedField`] enforces the policy's
//! `content-length-range` while the file streams.

use bytes::Bytes;
use futures::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields at most `budget` bytes per poll round, then returns `Pending`
/// (waking itself) so a consumer that reads "while ready" stops and
/// drains what it has. Memory held by such a consumer stays near
/// `budget` plus one chunk.
#[derive(Debug)]
pub struct ByteBudget<S> {
    inner: S,
    budget: usize,
    used: usize,
}

impl<S> ByteBudget<S> {
    /// Wraps `inner` with a per-poll budget of `budget` bytes.
    pub fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            budget,
            used: 0,
        }
    }
}

impl<S, E> Stream for ByteBudget<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.used >= self.budget {
            self.used = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.used += chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => {
                self.used = 0;
                Poll::Pending
            }
            other => other,
        }
    }
}

/// Why [`LimitedField`] stopped a body; carried inside an `io::Error` so
/// the store aborts the write and the caller can tell the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeLimitBreach {
    /// More bytes than the maximum.
    #[error("the file is larger than the policy allows")]
    TooLarge,
    /// The body ended below the minimum.
    #[error("the file is smaller than the policy requires")]
    TooSmall,
}

/// The file part as a store body, failing once it passes `max` bytes or
/// when it ends below `min`, so a breach never becomes a stored object.
pub struct LimitedField<'r> {
    field: multer::Field<'r>,
    min: u64,
    max: u64,
    seen: u64,
    done: bool,
}

impl std::fmt::Debug for LimitedField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedField")
            .field("min", &self.min)
            .field("max", &self.max)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<'r> LimitedField<'r> {
    pub(super) fn new(field: multer::Field<'r>, min: u64, max: u64) -> Self {
        Self {
            field,
            min,
            max,
            seen: 0,
            done: false,
        }
    }
}

impl Stream for LimitedField<'_> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.field).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.max {
                    this.done = true;
                    return Poll::Ready(Some(Err(io::Error::other(SizeLimitBreach::TooLarge))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                if this.seen < this.min {
                    return Poll::Ready(Some(Err(io::Error::other(SizeLimitBreach::TooSmall))));
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use futures::stream;

    #[tokio::test]
    async fn budget_interrupts_ready_streams() {
        let chunks = (0..10).map(|_| Ok::<_, io::Error>(Bytes::from(vec![0u8; 100])));
        let mut s = ByteBudget::new(stream::iter(chunks), 250);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut ready = 0;
        while let Poll::Ready(Some(_)) = Pin::new(&mut s).poll_next(&mut cx) {
            ready += 1;
        }
        assert_eq!(ready, 3, "3 chunks of 100 pass a 250-byte budget, then Pending");
        let total = s
            .fold(0usize, |n, c| async move { n + c.map(|b| b.len()).unwrap_or(0) })
            .await;
        assert_eq!(total, 700, "nothing is lost across the pauses");
    }
}
