//! [`FormGuard`]: the body under a multer form, bounded beyond the bytes
//! the form hands out. multer pulls whatever is ready on every poll, and
//! buffers a part's headers until their blank line, and anything before
//! the first boundary, without bound. Both form routes (POST Object here,
//! chute-server's `POST /api/stream`) read their forms through this
//! guard; each says what a form is credited with and what it is allowed
//! beyond that, and what a refusal answers.

use super::ByteBudget;
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxBody = BoxStream<'static, Result<Bytes, BoxError>>;
/// The body under the guard; `None` once taken back to be drained.
type SharedBody = Arc<Mutex<Option<ByteBudget<BoxBody>>>>;

/// The form spent more than its allowance outside the data it handed
/// out: multer waits for body bytes the guard refuses to pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The counters a [`GuardedBody`] shares with its [`FormGuard`].
#[derive(Debug)]
struct GuardState {
    /// Body bytes pulled so far.
    pulled: AtomicU64,
    /// What the form has been credited with ([`FormGuard::credit`]).
    credit: AtomicU64,
    /// Bytes allowed beyond `credit`; `u64::MAX` once lifted.
    allowance: AtomicU64,
    /// Set when the guard refused a poll (no waker registered).
    blocked: AtomicBool,
}

/// The handle a form reader keeps: credits the form, polls multer's
/// steps under the guard, and drains the body once the form is refused.
pub struct FormGuard {
    state: Arc<GuardState>,
    body: SharedBody,
}

impl std::fmt::Debug for FormGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormGuard")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The body multer reads: the request body under a [`ByteBudget`] of
/// `poll_budget` bytes per poll, no longer pulled once more than the
/// form's credit plus its allowance was pulled. The refusal is a
/// `Pending` with no waker: the reader polling multer through
/// [`FormGuard::step`] sees it at once; if multer can still make
/// progress from what it holds it goes on, and if it is waiting for
/// bytes the form is refused.
pub struct GuardedBody {
    state: Arc<GuardState>,
    body: SharedBody,
}

impl FormGuard {
    /// Guards `body`: at most `poll_budget` bytes pulled per poll, and at
    /// most `allowance` bytes pulled beyond the form's credit. Returns the
    /// guard and the body to hand multer.
    pub fn new<S, E>(body: S, poll_budget: usize, allowance: u64) -> (Self, GuardedBody)
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        use futures::StreamExt as _;
        let state = Arc::new(GuardState {
            pulled: AtomicU64::new(0),
            credit: AtomicU64::new(0),
            allowance: AtomicU64::new(allowance),
            blocked: AtomicBool::new(false),
        });
        let body: BoxBody = body.map(|r| r.map_err(Into::into)).boxed();
        let body = Arc::new(Mutex::new(Some(ByteBudget::new(body, poll_budget))));
        let guarded = GuardedBody {
            state: Arc::clone(&state),
            body: Arc::clone(&body),
        };
        (Self { state, body }, guarded)
    }

    /// Credits the form with `bytes` it spent as it should (field data,
    /// what a part's headers took): the body may be pulled that much
    /// further.
    pub fn credit(&self, bytes: u64) {
        self.state.credit.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Lifts the bound: what follows streams out as it arrives (a last
    /// file part, which multer hands out keeping a boundary's length).
    pub fn lift(&self) {
        self.state.allowance.store(u64::MAX, Ordering::Relaxed);
    }

    /// The body bytes pulled so far.
    pub fn pulled(&self) -> u64 {
        self.state.pulled.load(Ordering::Relaxed)
    }

    /// Polls one multer step with `poll`: `Err(Refused)` when multer waits
    /// for bytes the guard held back (so nothing would ever wake it).
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<Result<T, Refused>> {
        self.state.blocked.store(false, Ordering::Relaxed);
        match poll(cx) {
            Poll::Ready(out) => Poll::Ready(Ok(out)),
            Poll::Pending if self.state.blocked.load(Ordering::Relaxed) => Poll::Ready(Err(Refused)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Runs one multer step (`next_field`, `chunk`) under [`Self::poll`].
    pub async fn step<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Refused> {
        let mut fut = std::pin::pin!(fut);
        futures::future::poll_fn(|cx| self.poll(cx, |cx| fut.as_mut().poll(cx))).await
    }

    /// Reads and drops a bounded remainder of a refused form straight from
    /// the body (multer stops reading after an error), as [`drain`] does.
    pub async fn drain(&self) {
        let taken = lock(&self.body).take();
        if let Some(mut body) = taken {
            drain(&mut body).await;
        }
    }
}

impl Stream for GuardedBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let state = &self.state;
        let pulled = state.pulled.load(Ordering::Relaxed);
        let allowed = state
            .credit
            .load(Ordering::Relaxed)
            .saturating_add(state.allowance.load(Ordering::Relaxed));
        if pulled > allowed {
            state.blocked.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        let polled = match lock(&self.body).as_mut() {
            Some(body) => Pin::new(body).poll_next(cx),
            None => Poll::Ready(None),
        };
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            state.pulled.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

/// The body, even if a panic elsewhere poisoned its lock (it holds no
/// invariant a panic could break).
fn lock(body: &SharedBody) -> MutexGuard<'_, Option<ByteBudget<BoxBody>>> {
    match body.lock() {
        Ok(inner) => inner,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// How much of a refused body's remainder is read before the answer.
pub const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;
/// How long reading a refused body's remainder may take.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops a remainder of a refused body, up to [`DRAIN_LIMIT`]
/// bytes or [`DRAIN_TIME`]. A server that answers and closes with request
/// bytes unread makes the kernel reset the connection, and a client still
/// sending (a browser, fetch) then sees a network error instead of the
/// error answered. Past the bounds the connection is closed anyway.
pub async fn drain<S, E>(body: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    use futures::StreamExt as _;
    let drained = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_LIMIT {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}
