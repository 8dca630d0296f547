//! Request bodies that must keep moving: [`PacedBody`] fails a body whose
//! client sends nothing for the idle timeout, or averages under
//! [`MIN_BODY_RATE`] bytes a second over a window of that length, and
//! counts only the time the server spent waiting for the client.
//!
//! tower-http's `TimeoutBody` arms its timer when the body answers
//! `Pending` and checks it on the next poll, so a handler that stops
//! polling (multer parked its read-ahead, a part is being stored, the
//! memory budget is full) and comes back later than the timeout fails
//! with a timeout although the client's bytes were waiting in the socket.
//! Here the inner body is polled first (data already there is never a
//! timeout), and the wait for the client ends when the inner body wakes
//! its waker (the bytes arrived), not when the handler polls again.

use axum::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The slowest average a body may keep up, in bytes a second, over each
/// window of the idle timeout spent waiting for the client.
pub const MIN_BODY_RATE: u64 = 1024;

/// Why a paced body failed; an `io::Error` of kind `TimedOut` inside, so
/// callers that look for timeouts in an error's chain find it.
fn too_slow(message: String) -> BoxError {
    Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, message))
}

/// Records when the inner body woke its waker: the moment the client's
/// bytes arrived, however late the handler polls again.
#[derive(Debug, Default)]
struct Stamp {
    waker: Mutex<Option<Waker>>,
    woke_at: Mutex<Option<Instant>>,
}

impl Wake for Stamp {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut at) = self.woke_at.lock() {
            at.get_or_insert_with(Instant::now);
        }
        let waker = self.waker.lock().ok().and_then(|w| w.clone());
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A body failing when its client stalls or trickles (see the module).
pub struct PacedBody<B> {
    inner: Pin<Box<B>>,
    idle: Duration,
    min_rate: u64,
    stamp: Arc<Stamp>,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    deadline: Pin<Box<Sleep>>,
    /// Time spent waiting for the client in the current window, and the
    /// bytes it sent in it.
    waited: Duration,
    sent: u64,
}

impl<B> std::fmt::Debug for PacedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacedBody")
            .field("idle", &self.idle)
            .field("min_rate", &self.min_rate)
            .finish_non_exhaustive()
    }
}

impl<B> PacedBody<B> {
    /// Wraps `inner`: no pause longer than `idle`, and at least
    /// `min_rate` bytes a second over each `idle` of waiting.
    pub fn new(inner: B, idle: Duration, min_rate: u64) -> Self {
        Self {
            inner: Box::pin(inner),
            idle,
            min_rate,
            stamp: Arc::new(Stamp::default()),
            waiting_since: None,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waited: Duration::ZERO,
            sent: 0,
        }
    }

    /// Ends the current wait (the client's bytes came) and checks the
    /// window's average.
    fn arrived(&mut self, len: usize) -> Result<(), BoxError> {
        if let Some(since) = self.waiting_since.take() {
            let came = self.stamp.woke_at.lock().ok().and_then(|mut at| at.take());
            let came = came.unwrap_or_else(Instant::now).max(since);
            self.waited += came - since;
        }
        self.sent = self.sent.saturating_add(len as u64);
        if self.waited >= self.idle {
            let need = (self.min_rate as f64 * self.waited.as_secs_f64()) as u64;
            if self.sent < need {
                return Err(too_slow(format!(
                    "the body sent {} bytes in {:.1} s of waiting, under {} bytes a second",
                    self.sent,
                    self.waited.as_secs_f64(),
                    self.min_rate
                )));
            }
            self.waited = Duration::ZERO;
            self.sent = 0;
        }
        Ok(())
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Ok(mut w) = this.stamp.waker.lock() {
            match w.as_ref() {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        let waker = Waker::from(Arc::clone(&this.stamp));
        let mut inner_cx = Context::from_waker(&waker);
        match this.inner.as_mut().poll_frame(&mut inner_cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                match this.arrived(len) {
                    Ok(()) => Poll::Ready(Some(Ok(frame))),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    let now = Instant::now();
                    this.waiting_since = Some(now);
                    if let Ok(mut at) = this.stamp.woke_at.lock() {
                        *at = None;
                    }
                    this.deadline.as_mut().reset(now + this.idle);
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(too_slow(format!(
                        "the body sent nothing for {} s",
                        this.idle.as_secs_f64()
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::{BodyExt as _, StreamBody};

    /// A body sending `n` one-byte chunks, `gap` apart.
    fn trickle(n: usize, gap: Duration) -> impl Body<Data = Bytes, Error = std::io::Error> {
        let s = futures::stream::iter(0..n).then(move |_| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x")))
        });
        StreamBody::new(s)
    }

    async fn collect<B: Body<Data = Bytes, Error = BoxError> + Unpin>(mut b: B) -> Result<usize, String> {
        let mut n = 0;
        while let Some(frame) = b.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            n += frame.data_ref().map_or(0, Bytes::len);
        }
        Ok(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_under_the_rate_fails_a_steady_body_passes() {
        let slow = PacedBody::new(
            trickle(10, Duration::from_millis(60)),
            Duration::from_millis(200),
            1024,
        );
        let err = collect(slow).await.unwrap_err();
        assert!(err.contains("bytes a second"), "{err}");
        let fast = PacedBody::new(trickle(10, Duration::ZERO), Duration::from_millis(200), 1024);
        assert_eq!(collect(fast).await.unwrap(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_idle_timeout_fails() {
        let stalled = PacedBody::new(trickle(2, Duration::from_secs(5)), Duration::from_secs(1), 0);
        let err = collect(stalled).await.unwrap_err();
        assert!(err.contains("sent nothing"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_stops_polling_is_not_the_clients_fault() {
        // The client's bytes are all there at once; the handler reads one
        // chunk, then does something else for ten idle timeouts.
        let chunks = futures::stream::iter(
            (0..3).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![0u8; 4096])))),
        );
        let mut body = PacedBody::new(StreamBody::new(chunks), Duration::from_millis(100), 1024);
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(collect(body).await.unwrap(), 8192);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_when_the_bytes_arrive_not_when_polled() {
        // One chunk after 50 ms, then the handler is away for 10 s before
        // it polls again: only the 50 ms count as the client's.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let stream = tokio_stream_from(rx);
        let mut body = PacedBody::new(StreamBody::new(stream), Duration::from_millis(500), 1);
        let poll_once = futures::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending => Poll::Ready(None),
            other => Poll::Ready(Some(other)),
        });
        assert!(poll_once.await.is_none(), "nothing sent yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tx);
        assert_eq!(collect(body).await.unwrap(), 3);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
