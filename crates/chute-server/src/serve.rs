//! [`serve`]: open the store, bind both listeners, run until a shutdown
//! signal, then let in-flight requests finish within the grace period.

use crate::app::{AppState, Origins, app_with};
use crate::config::{Config, Mode, StoreCredentials};
use crate::credentials;
use crate::grants::{GrantSource, Grants, JwtGrants, WebhookGrants};
use crate::hooks::Hooks;
use crate::lifecycle::{Lifecycle, Signer};
use crate::reaper::{self, ReapOptions};
use crate::webhooks::{WebhookError, WebhookSink};
use axum::extract::ConnectInfo;
use chute_core::sigv4::Credentials;
use chute_core::{Grant, Keyring, TokenKey};
use chute_s3::{EmbeddedS3, EmbeddedS3Config, cors};
use chute_store::MultipartStore;
use chute_store::StoreError;
use chute_store::fs::FsStore;
use chute_store::s3::S3Store;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, watch};
use tower::ServiceExt as _;

/// The most time queued webhook deliveries get after the listeners stop.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory or the store inside it could not be opened.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The development credentials file could not be read or written.
    #[error("cannot keep development credentials in {dir}: {source}")]
    Credentials {
        /// The data directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr} ({setting}): {source}; stop what uses that address or choose \
         another with --{flag} or CHUTE_{env}",
        flag = setting.replace('_', "-"),
        env = setting.to_ascii_uppercase()
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which setting named it.
        setting: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Production mode without a grant secret: receipts could not be
    /// verified by other instances or the app.
    #[error(
        "production mode needs grant_secret (CHUTE_GRANT_SECRET, at least 32 bytes): it signs grants, \
         upload tokens and receipts"
    )]
    MissingGrantSecret,
    /// The S3 backend could not be reached or refused access.
    #[error("cannot use the S3 backend {endpoint} (bucket {bucket}): {source}")]
    S3Backend {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The webhooks' HTTP client could not be set up.
    #[error("cannot set up webhooks: {0}")]
    Webhooks(#[source] WebhookError),
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs Chute until `shutdown` resolves, then waits up to the configured
/// grace period for in-flight requests.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(config).await?.run(shutdown).await
}

/// A server whose store is open and whose listeners are bound, not yet
/// serving; tests bind port 0 and read the addresses from it.
#[derive(Debug)]
pub struct Server {
    config: Config,
    store: Backend,
    credentials: StoreCredentials,
    generated: bool,
    token_keys: Keyring,
    origins: Origins,
    s3_listener: Option<TcpListener>,
    app_listener: TcpListener,
    s3_addr: Option<SocketAddr>,
    app_addr: SocketAddr,
}

/// The store uploads go to.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// The filesystem store behind Chute's own S3 listener.
    Embedded(FsStore),
    /// An external S3 service.
    S3(S3Store),
}

impl Server {
    /// Opens the store (the embedded one: creating the bucket, and in
    /// development the credentials and default CORS rule; an S3 backend:
    /// connecting and checking access) and binds the listeners (the S3
    /// listener only for the embedded store).
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        raise_fd_limit(config.max_connections);
        let OpenedStore {
            store,
            credentials,
            generated,
            token_keys,
        } = open_store(&config).await?;
        let origins = origins(&config);
        let (s3_listener, s3_addr) = match store {
            Backend::Embedded(_) => {
                let (l, a) = bind(config.s3_listen, "s3_listen").await?;
                (Some(l), Some(a))
            }
            Backend::S3(_) => (None, None),
        };
        let (app_listener, app_addr) = bind(config.listen, "listen").await?;
        Ok(Self {
            config,
            store,
            credentials,
            generated,
            token_keys,
            origins,
            s3_listener,
            app_listener,
            s3_addr,
            app_addr,
        })
    }

    /// The bound app listener address.
    pub fn app_addr(&self) -> SocketAddr {
        self.app_addr
    }

    /// The bound S3 listener address (`None` with an S3 backend).
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_addr
    }

    /// The embedded store's credentials (given or generated).
    pub fn credentials(&self) -> &StoreCredentials {
        &self.credentials
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests
    /// finish within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Self {
            config,
            store,
            credentials: creds,
            generated,
            token_keys,
            origins,
            s3_listener,
            app_listener,
            s3_addr,
            app_addr,
        } = self;
        let s3_url = store_url(&config, &store, s3_addr);
        announce(&config, &creds, generated, &s3_url, app_addr);
        let (webhooks, hooks) = webhook_hooks(&config).map_err(ServeError::Webhooks)?;
        let lifecycle = new_lifecycle(&config, &store, &creds, token_keys, &s3_url, hooks).await?;
        let (state, tus) = app_state(&config, &lifecycle, origins).await?;
        let router = app_with(state, tus);

        let (stop_tx, stop_rx) = watch::channel(false);
        spawn_reaper(&config, lifecycle, stop_rx.clone());
        let s3_task = spawn_s3(&config, &creds, store, s3_listener, stop_rx.clone());
        let app_task = tokio::spawn(serve_app(app_listener, router, ConnLimits::of(&config), stop_rx));

        shutdown.await;
        tracing::info!(
            grace_seconds = config.shutdown_grace.as_secs(),
            "shutting down; letting in-flight requests finish"
        );
        let _ = stop_tx.send(true);
        let finished = tokio::time::timeout(config.shutdown_grace, async {
            let s3 = match s3_task {
                Some(task) => task.await,
                None => Ok(()),
            };
            (s3, app_task.await)
        })
        .await;
        if let Some(sink) = &webhooks {
            sink.shutdown(WEBHOOK_DRAIN.min(config.shutdown_grace)).await;
        }
        match finished {
            Ok((_, Ok(()))) => tracing::info!("stopped cleanly"),
            Ok((_, Err(e))) => tracing::error!(error = %e, "app listener task panicked"),
            Err(_) => tracing::warn!("grace period over; dropping the requests still in flight"),
        }
        Ok(())
    }
}

/// The app listener's state and tus settings over `lifecycle`; starts
/// the stream routes' crash recovery.
pub(crate) async fn app_state(
    config: &Config,
    lifecycle: &Lifecycle,
    origins: Origins,
) -> Result<(AppState, crate::tus::TusSettings), ServeError> {
    let tus = crate::tus::TusSettings {
        part_size: config.tus_part_size,
        parts_in_flight: config.tus_parts_in_flight,
        lock_lease: config.tus_lock_lease,
        body_idle_timeout: config.body_idle_timeout,
        ..crate::tus::TusSettings::default()
    };
    let stream = crate::stream::StreamState::start(config, lifecycle).await;
    let state = AppState {
        lifecycle: lifecycle.clone(),
        grants: Arc::new(grants(config).map_err(ServeError::Webhooks)?),
        origins,
        stream,
    };
    Ok((state, tus))
}

/// The embedded S3 endpoint over `fs` with the configured limits.
pub(crate) fn embedded_s3(config: &Config, creds: &StoreCredentials, fs: FsStore) -> EmbeddedS3 {
    EmbeddedS3::new(
        fs,
        EmbeddedS3Config {
            region: config.region.clone(),
            credentials: vec![Credentials {
                access_key: creds.access_key.clone(),
                secret_key: creds.secret_key.clone(),
            }],
            max_post_object_size: config.max_post_object_size,
            max_post_form_fields_bytes: config.max_post_form_fields_bytes,
            body_idle_timeout: config.body_idle_timeout,
        },
    )
}

/// The store and secrets a server runs on.
pub(crate) struct OpenedStore {
    pub(crate) store: Backend,
    pub(crate) credentials: StoreCredentials,
    generated: bool,
    pub(crate) token_keys: Keyring,
}

/// Opens the store (creating the bucket, and in development the
/// credentials, token secret and default CORS rule); binds nothing.
pub(crate) async fn open_store(config: &Config) -> Result<OpenedStore, ServeError> {
    let dir = config.data_dir.display().to_string();
    let store_err = |source| ServeError::Store {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| store_err(StoreError::Io(e)))?;
    if let Some(backend) = &config.s3_backend {
        let store = S3Store::connect_with(backend.clone(), config.s3_tuning.clone())
            .await
            .map_err(|source| ServeError::S3Backend {
                endpoint: backend.endpoint.clone(),
                bucket: backend.bucket.to_string(),
                source,
            })?;
        // The store-side CORS rule follows the same origins as the API;
        // a bucket with rules of its own keeps them.
        let patterns = origins(config).as_s3_patterns();
        match store.ensure_cors(&patterns).await {
            Ok(outcome) => tracing::info!(?outcome, "bucket CORS for browser uploads"),
            Err(e) => tracing::warn!(
                error = %e,
                "could not install the bucket's CORS rule; browsers may be refused by the store \
                 (see README, \"Production: the S3 backend\")"
            ),
        }
        let credentials = StoreCredentials {
            access_key: backend.credentials.access_key.clone(),
            secret_key: backend.credentials.secret_key.clone(),
        };
        return Ok(OpenedStore {
            store: Backend::S3(store),
            credentials,
            generated: false,
            token_keys: token_keys(config, &dir)?,
        });
    }
    let store = FsStore::open(&config.data_dir).await.map_err(store_err)?;
    match store.create_bucket(&config.bucket).await {
        Ok(()) | Err(StoreError::BucketExists { .. }) => {}
        Err(source) => return Err(store_err(source)),
    }
    let (credentials, generated) = match &config.credentials {
        Some(c) => (c.clone(), false),
        None => {
            credentials::load_or_generate(&config.data_dir).map_err(|source| ServeError::Credentials {
                dir: dir.clone(),
                source,
            })?
        }
    };
    let origins = origins(config);
    if config.mode == Mode::Development || !origins.exact.is_empty() {
        cors::ensure_default_cors(&store, &config.bucket, &origins.as_s3_patterns())
            .await
            .map_err(store_err)?;
    }
    Ok(OpenedStore {
        store: Backend::Embedded(store),
        credentials,
        generated,
        token_keys: token_keys(config, &dir)?,
    })
}

/// The keyring of upload tokens and receipts: the configured grant
/// secret, or in development one generated once into the data directory.
fn token_keys(config: &Config, dir: &str) -> Result<Keyring, ServeError> {
    match &config.grant_keys {
        Some(keys) => Ok(keys.clone()),
        None if config.mode == Mode::Development => {
            let spec = credentials::load_or_generate_token_secret(&config.data_dir).map_err(|source| {
                ServeError::Credentials {
                    dir: dir.to_owned(),
                    source,
                }
            })?;
            let key = TokenKey::parse(&spec).map_err(|e| ServeError::Credentials {
                dir: dir.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            })?;
            Ok(Keyring::new(key, Vec::new()))
        }
        None => Err(ServeError::MissingGrantSecret),
    }
}

/// The upload lifecycle over the configured store, opened as `chute
/// serve` opens it but without binding listeners (for `chute gc`).
/// Browser URLs it would sign point at `s3_public_url`, else at
/// `s3_listen`. Events go to `hooks`.
pub async fn open_lifecycle(config: &Config, hooks: Hooks) -> Result<Lifecycle, ServeError> {
    let opened = open_store(config).await?;
    let s3_url = match &config.s3_backend {
        Some(b) => b.endpoint.clone(),
        None => format!("http://{}", config.s3_listen),
    };
    new_lifecycle(
        config,
        &opened.store,
        &opened.credentials,
        opened.token_keys,
        &s3_url,
        hooks,
    )
    .await
}

/// The lifecycle over the configured bucket of `store`.
pub(crate) async fn new_lifecycle(
    config: &Config,
    store: &Backend,
    creds: &StoreCredentials,
    token_keys: Keyring,
    s3_url: &str,
    hooks: Hooks,
) -> Result<Lifecycle, ServeError> {
    let (bucket, region, path_style): (Arc<dyn MultipartStore>, String, bool) = match store {
        Backend::Embedded(fs) => {
            let bucket = fs
                .bucket(&config.bucket)
                .await
                .map_err(|source| ServeError::Store {
                    dir: config.data_dir.display().to_string(),
                    source,
                })?;
            (Arc::new(bucket), config.region.clone(), true)
        }
        Backend::S3(s3) => {
            let b = config.s3_backend.as_ref();
            (
                Arc::new(s3.clone()),
                b.map_or_else(|| config.region.clone(), |b| b.region.clone()),
                b.is_none_or(|b| b.path_style),
            )
        }
    };
    let signer = Signer::new(
        config.s3_public_url.clone().unwrap_or_else(|| s3_url.to_owned()),
        config.bucket.clone(),
        region,
        path_style,
        Credentials {
            access_key: creds.access_key.clone(),
            secret_key: creds.secret_key.clone(),
        },
    );
    Ok(Lifecycle::new(
        bucket,
        signer,
        token_keys,
        config.lifecycle.clone(),
        hooks,
    ))
}

/// Starts the configured event webhooks, if any; the sink (to shut down
/// at the end) and the hooks that feed it.
pub(crate) fn webhook_hooks(config: &Config) -> Result<(Option<WebhookSink>, Hooks), WebhookError> {
    let sink = config.webhooks.clone().map(WebhookSink::start).transpose()?;
    let mut hooks = Hooks::new();
    if let Some(sink) = &sink {
        hooks.add(Arc::new(sink.clone()));
    }
    Ok((sink, hooks))
}

/// The reaper's options from the configuration.
pub fn reap_options(config: &Config) -> ReapOptions {
    ReapOptions {
        dry_run: false,
        grant_counter_ttl: config.grant_counter_ttl,
        ..ReapOptions::default()
    }
}

/// The browser origins allowed on the API and the store.
pub(crate) fn origins(config: &Config) -> Origins {
    Origins {
        exact: config.allowed_origins.clone(),
        any_loopback: config.mode == Mode::Development,
    }
}

/// The grant sources the configuration names.
fn grants(config: &Config) -> Result<Grants, WebhookError> {
    let webhook = match &config.grant_webhook_url {
        Some(url) => {
            Some(Arc::new(WebhookGrants::new(url, config.grant_webhook_timeout)?) as Arc<dyn GrantSource>)
        }
        None => None,
    };
    Ok(Grants {
        jwt: config.grant_keys.clone().map(|keyring| JwtGrants {
            keyring,
            audience: config.grant_audience.clone(),
        }),
        webhook,
        callback: None,
        open: config.open_grants.then(open_grant),
        origins: origins(config),
        derivative_limits: config.lifecycle.images.limits,
    })
}

/// Development mode's open grant: anything, and a 200x200 `thumb` of
/// images (the demo page shows it).
fn open_grant() -> Grant {
    Grant {
        derivatives: std::collections::BTreeMap::from([("thumb".to_owned(), "200x200 crop".to_owned())]),
        ..Grant::default()
    }
}

/// The URL browsers reach the store at: the embedded S3 listener's
/// address, or the S3 backend's endpoint.
pub(crate) fn store_url(config: &Config, store: &Backend, s3_addr: Option<SocketAddr>) -> String {
    match (store, s3_addr) {
        (Backend::Embedded(_), Some(addr)) => format!("http://{addr}"),
        (_, _) => config
            .s3_backend
            .as_ref()
            .map(|b| b.endpoint.clone())
            .unwrap_or_default(),
    }
}

/// Starts the reaper when `reap_interval` is set; it stops once `stop`
/// turns true.
pub(crate) fn spawn_reaper(config: &Config, lifecycle: Lifecycle, mut stop: watch::Receiver<bool>) {
    if let Some(every) = config.reap_interval {
        tokio::spawn(reaper::run_every(
            lifecycle,
            every,
            reap_options(config),
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        ));
    }
}

/// Serves the embedded S3 endpoint on `listener` until `stop` turns true;
/// `None` with an S3 backend (or no listener).
pub(crate) fn spawn_s3(
    config: &Config,
    creds: &StoreCredentials,
    store: Backend,
    listener: Option<TcpListener>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    match (store, listener) {
        (Backend::Embedded(fs), Some(listener)) => Some(tokio::spawn(serve_s3(
            listener,
            embedded_s3(config, creds, fs),
            ConnLimits::of(config),
            stop,
        ))),
        _ => None,
    }
}

pub(crate) async fn bind(
    addr: SocketAddr,
    setting: &'static str,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let err = |source| ServeError::Bind {
        addr,
        setting,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Prints where Chute listens, and the generated credentials in development.
fn announce(
    config: &Config,
    creds: &StoreCredentials,
    generated_or_kept: bool,
    s3_url: &str,
    app: SocketAddr,
) {
    tracing::info!(mode = ?config.mode, data_dir = %config.data_dir.display(), "chute is running");
    println!("Chute app:          http://{app}/");
    if let Some(b) = &config.s3_backend {
        println!(
            "S3 backend:         {}  (bucket {}, region {})",
            b.endpoint, b.bucket, b.region
        );
        return;
    }
    println!(
        "Embedded S3 store:  {s3_url}  (bucket {}, region {})",
        config.bucket, config.region
    );
    if config.credentials.is_none() {
        let note = if generated_or_kept {
            "generated now"
        } else {
            "kept in the data directory"
        };
        println!("S3 access key:      {}", creds.access_key);
        println!(
            "S3 secret key:      {}  ({note}; set CHUTE_S3_ACCESS_KEY and CHUTE_S3_SECRET_KEY to choose them)",
            creds.secret_key
        );
    } else {
        println!("S3 access key:      {} (from settings)", creds.access_key);
    }
}

/// Raises the process's soft open-file limit (up to its hard limit) to
/// what both listeners at `max_connections` may need: a descriptor per
/// connection, about one more per request writing to the embedded store,
/// and some for the store and logs. Many systems start processes at a
/// soft limit of 1024, under the 2 x 1024 connections the default cap
/// allows; past the limit `accept` and file opens fail with `EMFILE`.
/// Logs a warning when the hard limit is too low.
#[cfg(unix)]
fn raise_fd_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(3)
        .saturating_add(256);
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= want {
        return;
    }
    let target = limit.maximum.map_or(want, |hard| hard.min(want));
    let raised = if target > current {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => {
                tracing::info!(from = current, to = target, "raised the open-file limit");
                target
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not raise the open-file limit");
                current
            }
        }
    } else {
        current
    };
    if raised < want {
        tracing::warn!(
            limit = raised,
            wanted = want,
            max_connections,
            "the open-file limit is below what max_connections may need; raise it (ulimit -n, \
             systemd LimitNOFILE) or lower max_connections"
        );
    }
}

#[cfg(not(unix))]
fn raise_fd_limit(_max_connections: usize) {}

/// Serves the embedded S3 endpoint until `stop` flips, then waits for the
/// open connections to finish their requests (see [`serve_connections`]).
pub(crate) async fn serve_s3(
    listener: TcpListener,
    embedded: EmbeddedS3,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    let service = embedded.into_service();
    serve_connections(listener, "S3", limits, stop, move |_peer| {
        TowerToHyperService::new(service.clone())
    })
    .await;
}

/// Serves the app's router until `stop` flips, then waits for the open
/// connections to finish their requests (see [`serve_connections`]).
/// Each request carries its peer's [`ConnectInfo`] (the authorization
/// webhook's `X-Forwarded-For`).
pub(crate) async fn serve_app(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    serve_connections(listener, "app", limits, stop, move |peer| {
        let router = router
            .clone()
            .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        TowerToHyperService::new(router)
    })
    .await;
}

/// What bounds one listener's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Connections served at once (`max_connections`).
    pub(crate) max_connections: usize,
    /// How long a client may take to send a request's headers
    /// (`header_read_timeout_seconds`); an idle keep-alive connection is
    /// closed after this long too.
    pub(crate) header_read_timeout: Duration,
}

impl ConnLimits {
    /// The configured limits.
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
        }
    }
}

/// Serves HTTP/1.1 on `listener` with `make(peer)`'s service until `stop`
/// flips, then waits for the open connections to finish their requests.
///
/// A client must send each request's headers within
/// `limits.header_read_timeout` (slowloris), or its connection is
/// closed. At most `limits.max_connections` connections are served at
/// once: a permit is taken before `accept` and held for the connection's
/// life, so at the cap the loop waits for a permit and further clients
/// wait in the kernel's backlog, never in a busy loop.
async fn serve_connections<S, B, F>(
    listener: TcpListener,
    name: &'static str,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    make: F,
) where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ConnLimits {
        max_connections,
        header_read_timeout,
    } = limits;
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut warned_at_cap = false;
    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                if warned_at_cap {
                    tracing::debug!(max_connections, "{name} listener at its connection cap");
                } else {
                    warned_at_cap = true;
                    tracing::warn!(
                        max_connections,
                        "{name} listener reached its connection cap; new clients wait to be accepted \
                         (raise max_connections if this is normal load; logged once)"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => break,
                    },
                    () = stopped(&mut stop) => break,
                }
            }
            Err(TryAcquireError::Closed) => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors (EMFILE) among others:
                        // wait a moment rather than spin.
                        tracing::warn!(error = %e, "accept failed on the {name} listener");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = http.serve_connection(TokioIo::new(stream), make(peer));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // The slot is free again once the connection is gone.
                    let _permit = permit;
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "{name} connection ended with an error");
                    }
                });
            }
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
