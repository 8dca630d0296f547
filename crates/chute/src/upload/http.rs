//! The HTTP client of `chute upload` and its retry policy: transient
//! failures (connection refused or reset, timeouts, 5xx, 408, 429) are
//! retried with exponential backoff and jitter; another 4xx never is,
//! since the same request would be refused again.

use super::error::{UploadError, describe_body};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A request failure before it is classified for retrying.
#[derive(Debug)]
pub enum Failure {
    /// The network failed; worth another try.
    Network(reqwest::Error),
    /// The server answered with an error status.
    Status {
        /// The status.
        status: u16,
        /// The body (trimmed to what is useful).
        body: Bytes,
    },
    /// The whole body was handed over and no answer came within the limit.
    NoAnswer(Duration),
    /// Anything else, final.
    Final(UploadError),
}

impl Failure {
    /// Whether another attempt could succeed: network failures, 5xx, 408
    /// (request timeout) and 429 (throttled).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::NoAnswer(_) => true,
            Self::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::Final(_) => false,
        }
    }

    /// The error this failure ends in after `attempts` attempts at `what`.
    pub fn into_error(self, what: &str, attempts: u32) -> UploadError {
        match self {
            Self::Final(e) => e,
            Self::Status { status, body } if status < 500 => {
                let (code, message) = describe_body(&body);
                UploadError::Refused {
                    what: what.to_owned(),
                    status,
                    code,
                    message,
                }
            }
            Self::Status { status, body } => UploadError::ServerFailed {
                what: what.to_owned(),
                status,
                attempts,
                message: describe_body(&body).1,
            },
            Self::Network(source) => UploadError::Network {
                what: what.to_owned(),
                attempts,
                source,
            },
            Self::NoAnswer(limit) => UploadError::NoAnswer {
                what: what.to_owned(),
                attempts,
                seconds: limit.as_secs(),
            },
        }
    }
}

impl From<UploadError> for Failure {
    fn from(e: UploadError) -> Self {
        Self::Final(e)
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The first backoff; doubled after each failure.
    pub base: Duration,
    /// The longest backoff.
    pub max: Duration,
    /// How long to wait for the answer once a request's body is sent.
    pub answer_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
            answer_timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (after `attempt` failures):
    /// `base * 2^(attempt-1)`, capped, with up to 25% random jitter so
    /// parallel parts do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        let jitter = rand::random_range(0.0..0.25);
        exp.mul_f64(1.0 + jitter)
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of
    /// attempts. `what` names the operation in errors.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, UploadError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if !failure.is_transient() || attempt >= self.attempts.max(1) {
                return Err(failure.into_error(what, attempt));
            }
            tracing::debug!(what, attempt, failure = ?failure, "transient failure; retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }
}

/// The whole-request limit of small requests (API calls, tus HEAD, OPTIONS
/// and creation); requests carrying file bytes have none (see [`client`]).
pub const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The client: rustls with the ring provider (installed once per process,
/// as `chute serve` does for its webhooks), no redirects (a presigned URL
/// is exact), a connect timeout, and a dead connection noticed by TCP
/// itself: keepalive probes while waiting for an answer and, on Linux,
/// `TCP_USER_TIMEOUT` while sending. No read or total timeout: reqwest
/// counts those from the start of the request, so a part taking longer
/// than that on a slow link would fail on every attempt.
pub fn client() -> Result<reqwest::Client, UploadError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .user_agent(concat!("chute-upload/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(15))
        .tcp_keepalive_interval(Duration::from_secs(5))
        .tcp_keepalive_retries(4);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let builder = builder.tcp_user_timeout(Duration::from_secs(60));
    builder
        .build()
        .map_err(|e| UploadError::bad_answer("starting the HTTP client", e.to_string()))
}

/// Sends `req`; a non-2xx answer becomes [`Failure::Status`] with its body.
pub async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
    let res = req.send().await.map_err(Failure::Network)?;
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status().as_u16();
    // The body explains the refusal; a failure to read it is itself transient.
    let body = res.bytes().await.map_err(Failure::Network)?;
    Err(Failure::Status {
        status,
        body: body.slice(..body.len().min(16 * 1024)),
    })
}

/// Runs `request` (sending a body of `len` bytes whose progress `sent`
/// counts), failing it with [`Failure::NoAnswer`] when no answer came
/// `limit` after the whole body was handed over: a server that took the
/// bytes and hangs is otherwise waited for forever (requests carrying file
/// bytes have no overall timeout, and TCP keepalive sees a live peer).
pub async fn answered_within<T>(
    request: impl Future<Output = Result<T, Failure>>,
    sent: &AtomicU64,
    len: u64,
    limit: Duration,
) -> Result<T, Failure> {
    let tick = limit.min(Duration::from_secs(1));
    tokio::pin!(request);
    let mut body_sent_at = None;
    loop {
        tokio::select! {
            answer = &mut request => return answer,
            () = tokio::time::sleep(tick) => {
                if sent.load(Ordering::Relaxed) >= len {
                    let since = *body_sent_at.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= limit {
                        return Err(Failure::NoAnswer(limit));
                    }
                }
            }
        }
    }
}

/// Sends `req` and reads its JSON answer.
pub async fn send_json(req: reqwest::RequestBuilder, what: &str) -> Result<serde_json::Value, Failure> {
    let res = send(req).await?;
    let body = res.bytes().await.map_err(Failure::Network)?;
    serde_json::from_slice(&body)
        .map_err(|e| Failure::Final(UploadError::bad_answer(what, format!("not JSON: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let b1 = p.backoff(1);
        assert!(
            b1 >= Duration::from_millis(250) && b1 <= Duration::from_millis(313),
            "{b1:?}"
        );
        let b3 = p.backoff(3);
        assert!(
            b3 >= Duration::from_secs(1) && b3 <= Duration::from_millis(1250),
            "{b3:?}"
        );
        assert!(p.backoff(30) <= Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_answer_is_awaited_only_so_long_after_the_body() {
        let limit = Duration::from_millis(100);
        let sent = AtomicU64::new(0);
        // Still sending (nothing handed over yet): no limit applies.
        let slow = answered_within(
            async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(1)
            },
            &sent,
            10,
            limit,
        );
        assert_eq!(slow.await.ok(), Some(1));
        // Body sent, no answer: given up after the limit.
        sent.store(10, Ordering::Relaxed);
        let hung = answered_within(std::future::pending::<Result<(), Failure>>(), &sent, 10, limit);
        let err = hung.await.unwrap_err();
        assert!(matches!(err, Failure::NoAnswer(_)) && err.is_transient());
    }

    #[tokio::test]
    async fn retries_5xx_but_never_4xx() {
        let fast = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let r: Result<(), _> = fast
            .run("x", |_| {
                calls += 1;
                async {
                    Err(Failure::Status {
                        status: 503,
                        body: Bytes::from_static(b"busy"),
                    })
                }
            })
            .await;
        assert_eq!(calls, 3);
        assert!(matches!(r, Err(UploadError::ServerFailed { attempts: 3, .. })));

        let mut calls = 0;
        let r: Result<(), _> = fast
            .run("x", |_| {
                calls += 1;
                async {
                    Err(Failure::Status {
                        status: 403,
                        body: Bytes::from_static(b"no"),
                    })
                }
            })
            .await;
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(UploadError::Refused { status: 403, .. })));

        let mut calls = 0;
        let r = fast
            .run("x", |n| {
                calls += 1;
                async move {
                    if n < 2 {
                        Err(Failure::Status {
                            status: 500,
                            body: Bytes::new(),
                        })
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!((calls, r.ok()), (2, Some(2)));

        // Throttling and request timeouts are worth another attempt too.
        for status in [408, 429] {
            let failure = Failure::Status {
                status,
                body: Bytes::new(),
            };
            assert!(failure.is_transient(), "{status}");
        }
    }
}
