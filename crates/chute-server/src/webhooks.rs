//! Signed HTTP webhooks for lifecycle events: [`WebhookSink`] is a
//! [`HookSink`] that POSTs each event's JSON to every configured URL,
//! signed Stripe-style (`Chute-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">`), retried with backoff; and
//! [`verify_signature`], the receiving side's check.
//!
//! Delivery never holds up an upload: `emit` serialises the event and
//! `try_send`s it to one bounded queue per URL; when a queue is full the
//! event is dropped for that URL, logged and counted. Each URL has its own
//! drain task running a bounded number of deliveries at once, so a slow
//! or dead endpoint fills only its own queue. Events may arrive out of
//! order and, after a retry, more than once: receivers de-duplicate on the
//! event `id`. Queues live in memory; what is still queued when the grace
//! period of [`WebhookSink::shutdown`] ends is lost (and logged).
//!
//! The HTTP client ([`http_client`]) is shared with the authorization
//! webhook in [`crate::grants`].

use crate::hooks::{Event, HookSink};
use bytes::Bytes;
use chute_core::sigv4::{constant_time_eq, hmac_sha256};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Chute-Signature";
/// The header naming the event type (`upload.completed`...).
pub const EVENT_HEADER: &str = "Chute-Event";
/// The shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// A sensible `tolerance` for [`verify_signature`]: five minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A webhook signing secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: impl Into<String>) -> Result<Self, WebhookError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(WebhookError::ShortSecret);
        }
        Ok(Self(secret))
    }

    /// The secret's bytes, the HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Where events go and how hard Chute tries.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoints; each gets every event.
    pub urls: Vec<String>,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// Per-attempt limit, connection to response headers (default 10 s).
    pub timeout: Duration,
    /// Attempts per event and URL, the first included (default 5).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles each time (default 1 s).
    pub initial_backoff: Duration,
    /// The longest wait between attempts (default 60 s).
    pub max_backoff: Duration,
    /// Events queued per URL before new ones are dropped (default 1024).
    pub queue_capacity: usize,
    /// Deliveries in flight per URL (default 8).
    pub concurrency: usize,
}

impl WebhookConfig {
    /// `urls` signed with `secret`, every tunable at its default.
    pub fn new(urls: Vec<String>, secret: WebhookSecret) -> Self {
        Self {
            urls,
            secret,
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            queue_capacity: 1024,
            concurrency: 8,
        }
    }
}

/// Why webhooks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error(
        "the webhook secret must be at least {MIN_SECRET_LEN} bytes; generate one with `openssl rand -hex 32`"
    )]
    ShortSecret,
    /// A URL is not an absolute http(s) URL.
    #[error("{0:?} is not an absolute http(s) URL; give one like https://app.example.com/chute/events")]
    BadUrl(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed {SIGNATURE_HEADER} header: {0}")]
    Malformed(&'static str),
    /// The timestamp is further than `tolerance` from `now` (a replay?).
    #[error("the signature's timestamp is {age} seconds away from now, beyond the tolerance")]
    OutsideTolerance {
        /// `now - t`, in seconds.
        age: i64,
    },
    /// No `v1` signature matches the body and secret.
    #[error("no signature matches the body")]
    Mismatch,
}

/// The `Chute-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(signature(secret, timestamp, body))
    )
}

fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    hmac_sha256(secret, &signed)
}

/// Checks a `Chute-Signature` header against the raw request `body`:
/// its timestamp must be within `tolerance` of `now` (Unix seconds) and
/// one of its `v1` values must equal HMAC-SHA256(`secret`, `"<t>.<body>"`),
/// compared in constant time. Unknown schemes (`v0=`...) are ignored.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (name, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected name=value items"))?;
        match name {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a number"))?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed("more than one t"));
                }
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    let age = now.saturating_sub(t);
    if age.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance { age });
    }
    let expected = signature(secret, t, body);
    let mut matched = false;
    for candidate in candidates {
        // Lengths are public; a wrong-length value never matches.
        if let Ok(given) = hex::decode(candidate) {
            matched |= constant_time_eq(&given, &expected);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The HTTP client of both webhooks: rustls with the ring provider and the
/// platform's certificate verifier, no redirects (cookies and signed
/// bodies go only where configured), `timeout` per request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, WebhookError> {
    // Fails only when a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chute/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(WebhookError::Client)
}

/// Checks `url` is an absolute http(s) URL; returns it parsed.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, WebhookError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(WebhookError::BadUrl(url.to_owned())),
    }
}

/// A URL fit for logs: no user info, query or fragment (they may hold tokens).
pub(crate) fn url_for_logs(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

/// Delivery counters, summed over all URLs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Deliveries the endpoint accepted (2xx).
    pub delivered: u64,
    /// Deliveries given up: a final 4xx, or every attempt failed.
    pub failed: u64,
    /// Attempts after a first failure.
    pub retries: u64,
    /// Events dropped because a URL's queue was full or closed.
    pub dropped: u64,
    /// Deliveries queued or in flight now.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
}

/// One serialised event, shared by every URL's queue.
#[derive(Debug)]
struct Job {
    id: String,
    kind: &'static str,
    body: Bytes,
}

#[derive(Debug)]
struct Endpoint {
    label: String,
    queue: mpsc::Sender<Arc<Job>>,
}

/// Sends lifecycle events to webhook URLs in the background. Cheap to
/// clone; the clones share queues and counters.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<Endpoint>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    stopping: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What a drain task needs besides its queue.
#[derive(Debug)]
struct Delivery {
    client: reqwest::Client,
    config: WebhookConfig,
    counters: Arc<Counters>,
}

impl WebhookSink {
    /// Checks `config`, builds the client and starts one drain task per
    /// URL. Call it inside a Tokio runtime.
    pub fn start(mut config: WebhookConfig) -> Result<Self, WebhookError> {
        config.max_attempts = config.max_attempts.max(1);
        config.queue_capacity = config.queue_capacity.max(1);
        config.concurrency = config.concurrency.max(1);
        let urls = config
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = Arc::new(Counters::default());
        let delivery = Arc::new(Delivery {
            client: http_client(config.timeout)?,
            config: config.clone(),
            counters: Arc::clone(&counters),
        });
        let (stop, stopped) = watch::channel(false);
        let mut endpoints = Vec::new();
        let mut tasks = Vec::new();
        for url in urls {
            let (queue, rx) = mpsc::channel(config.queue_capacity);
            let label = url_for_logs(&url);
            tasks.push(tokio::spawn(drain(
                url,
                label.clone(),
                rx,
                Arc::clone(&delivery),
                stopped.clone(),
            )));
            endpoints.push(Endpoint { label, queue });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                endpoints,
                counters,
                stop,
                stopping: AtomicBool::new(false),
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// The delivery counters so far.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.inner.counters;
        WebhookStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Stops taking events and gives queued and in-flight deliveries up
    /// to `grace` (retries included); then abandons the rest with a log
    /// line. Returns the final counters.
    pub async fn shutdown(&self, grace: Duration) -> WebhookStats {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self.inner.stop.send(true);
        let tasks = match self.inner.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let pending = self.stats().pending;
        if pending > 0 {
            tracing::info!(pending, "delivering the queued webhook events before stopping");
        }
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
            tracing::warn!(
                abandoned = self.stats().pending,
                grace_seconds = grace.as_secs_f32(),
                "webhook deliveries still pending after the grace period; giving up on them"
            );
        }
        self.stats()
    }

    fn drop_event(&self, endpoint: &Endpoint, job: &Job, why: &str) {
        let dropped = self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            url = %endpoint.label,
            event = job.kind,
            event_id = %job.id,
            dropped_total = dropped,
            "webhook event dropped: {why}"
        );
    }
}

impl HookSink for WebhookSink {
    fn emit(&self, event: &Event) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a lifecycle event; not sent");
                return;
            }
        };
        let job = Arc::new(Job {
            id: event.id.clone(),
            kind: event.kind.as_str(),
            body,
        });
        for endpoint in &self.inner.endpoints {
            if self.inner.stopping.load(Ordering::SeqCst) {
                self.drop_event(endpoint, &job, "webhooks are shutting down");
                continue;
            }
            let counters = &self.inner.counters;
            counters.pending.fetch_add(1, Ordering::Relaxed);
            match endpoint.queue.try_send(Arc::clone(&job)) {
                Ok(()) => {}
                Err(e) => {
                    counters.pending.fetch_sub(1, Ordering::Relaxed);
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "the queue is full (endpoint slow or down?)",
                        mpsc::error::TrySendError::Closed(_) => "webhooks are shutting down",
                    };
                    self.drop_event(endpoint, &job, why);
                }
            }
        }
    }
}

/// Drains one URL's queue, at most `concurrency` deliveries at once, until
/// the queue is closed (on stop) and empty.
async fn drain(
    url: reqwest::Url,
    label: String,
    mut queue: mpsc::Receiver<Arc<Job>>,
    delivery: Arc<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let url = Arc::new(url);
    let label = Arc::new(label);
    let mut running = JoinSet::new();
    let mut closing = false;
    loop {
        let room = running.len() < delivery.config.concurrency;
        tokio::select! {
            job = queue.recv(), if room => match job {
                Some(job) => {
                    let (d, u, l) = (Arc::clone(&delivery), Arc::clone(&url), Arc::clone(&label));
                    running.spawn(async move { d.deliver(&u, &l, &job).await });
                }
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stop.wait_for(|stop| *stop), if !closing => {
                // Refuse new events; what is buffered is still received.
                closing = true;
                queue.close();
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    /// Worth another try, after at least this long (Retry-After).
    Retry(String, Option<Duration>),
    Final(String),
}

impl Delivery {
    async fn deliver(&self, url: &reqwest::Url, label: &str, job: &Job) {
        let max = self.config.max_attempts;
        let mut attempt = 1;
        loop {
            match self.attempt(url, job).await {
                Attempt::Delivered => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(url = %label, event = job.kind, event_id = %job.id, attempt, "webhook delivered");
                    break;
                }
                Attempt::Final(reason) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %label, event = job.kind, event_id = %job.id, %reason, "webhook refused; not retried");
                    break;
                }
                Attempt::Retry(reason, _) if attempt >= max => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %label, event = job.kind, event_id = %job.id, %reason, attempts = attempt, "webhook failed; giving up");
                    break;
                }
                Attempt::Retry(reason, at_least) => {
                    let wait = backoff(&self.config, attempt, at_least);
                    tracing::info!(url = %label, event = job.kind, event_id = %job.id, %reason, attempt, retry_in_ms = wait.as_millis() as u64, "webhook failed; retrying");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
    }

    async fn attempt(&self, url: &reqwest::Url, job: &Job) -> Attempt {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = signature_header(self.config.secret.as_bytes(), now, &job.body);
        let sent = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(EVENT_HEADER, job.kind)
            .header(SIGNATURE_HEADER, signature)
            .body(job.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry(format!("no answer within {:?}", self.config.timeout), None);
            }
            Err(e) => return Attempt::Retry(format!("request failed: {e}"), None),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let reason = format!("endpoint answered {status}");
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Attempt::Retry(reason, after)
        } else {
            // 4xx: the endpoint understood and said no; 3xx: not followed.
            Attempt::Final(reason)
        }
    }
}

/// The wait after failed attempt number `attempt` (1-based):
/// `initial_backoff * 2^(attempt-1)`, ±25 % jitter, at least the
/// endpoint's Retry-After, never above `max_backoff`.
fn backoff(config: &WebhookConfig, attempt: u32, at_least: Option<Duration>) -> Duration {
    let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let base = config.initial_backoff.saturating_mul(doubling);
    let jittered = base.mul_f64(rand::Rng::random_range(&mut rand::rng(), 0.75..1.25));
    jittered.max(at_least.unwrap_or_default()).min(config.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn signatures_round_trip_and_refuse_tampering() {
        let body = br#"{"id":"evt_1","type":"upload.created"}"#;
        let header = signature_header(SECRET, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        let ok = |h: &str, b: &[u8], now| verify_signature(SECRET, h, b, now, DEFAULT_TOLERANCE);
        assert_eq!(ok(&header, body, 1_700_000_100), Ok(()));
        assert_eq!(ok(&header, b"{}", 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_signature(b"another secret", &header, body, 1_700_000_000, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&header, body, 1_700_000_301),
            Err(SignatureError::OutsideTolerance { age: 301 })
        );
        assert!(matches!(
            ok(&header, body, 1_699_999_000),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        // Moving the timestamp breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(ok(&moved, body, 1_700_000_000), Err(SignatureError::Mismatch));
    }

    #[test]
    fn python_hmac_agrees() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'0123456789abcdef0123456789abcdef',
        //   b'1700000000.{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            signature_header(SECRET, 1_700_000_000, b"{}"),
            "t=1700000000,v1=417adf36b901772f658597a76d329694e335e65fc0849d7715c3ca33406309b5"
        );
    }

    #[test]
    fn any_v1_may_match_and_junk_is_malformed() {
        let body = b"x";
        let good = signature_header(SECRET, 10, body);
        let v1 = good.split_once(",v1=").unwrap().1;
        let rotated = format!("t=10, v1={}, v0=abc, v1={v1}", "00".repeat(32));
        assert_eq!(
            verify_signature(SECRET, &rotated, body, 10, DEFAULT_TOLERANCE),
            Ok(())
        );
        for junk in ["", "t=10", "v1=00", "t=x,v1=00", "t=1,t=1,v1=00", "garbage"] {
            assert!(
                matches!(
                    verify_signature(SECRET, junk, body, 10, DEFAULT_TOLERANCE),
                    Err(SignatureError::Malformed(_))
                ),
                "{junk:?}"
            );
        }
        assert_eq!(
            verify_signature(SECRET, "t=10,v1=zz", body, 10, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let config = WebhookConfig::new(vec![], WebhookSecret::new("s".repeat(32)).unwrap());
        for (attempt, secs) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)] {
            let wait = backoff(&config, attempt, None).as_secs_f64();
            assert!((secs * 0.75..=secs * 1.25).contains(&wait), "{attempt}: {wait}");
        }
        assert_eq!(backoff(&config, 40, None), Duration::from_secs(60));
        assert_eq!(
            backoff(&config, 1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn secrets_are_long_and_hidden() {
        assert!(matches!(
            WebhookSecret::new("short"),
            Err(WebhookError::ShortSecret)
        ));
        let secret = WebhookSecret::new("s".repeat(32)).unwrap();
        assert!(!format!("{secret:?}").contains("sss"));
    }

    #[test]
    fn urls_are_checked_and_logged_without_secrets() {
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("/relative").is_err());
        let url = parse_url("https://user:pw@hooks.example:8443/in?token=abc").unwrap();
        assert_eq!(url_for_logs(&url), "https://hooks.example:8443/in");
    }
}
