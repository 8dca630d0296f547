//! [`embed`]: Chute as a library inside another axum app's process. It
//! opens the store as `chute serve` does, builds the upload API's router
//! (without the page at `/` and the health checks, which belong to the
//! app) for the app to merge into its own, and, for the embedded store,
//! binds `s3_listen` and serves the S3 endpoint browsers upload to on a
//! task of its own. The app binds its own listener; `chute-axum` wraps
//! this in a friendlier builder.

use crate::app::api_with;
use crate::config::{Config, StoreCredentials};
use crate::lifecycle::Lifecycle;
use crate::serve::{
    Backend, ServeError, app_state, bind, new_lifecycle, open_store, origins, spawn_reaper, spawn_s3,
    store_url, webhook_hooks,
};
use crate::webhooks::WebhookSink;
use axum::Router;
use chute_core::Keyring;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Chute running inside an app: the router to mount, the lifecycle, and
/// the embedded S3 listener's task. Dropping it (or calling
/// [`Embedded::shutdown`]) stops the S3 listener and the reaper; the
/// router keeps answering, but browsers can no longer reach the store.
#[derive(Debug)]
pub struct Embedded {
    /// The upload API, Companion routes, tus and `/chute.js`, for the app
    /// to `merge` into its router.
    pub router: Router,
    /// The upload lifecycle (promote, read, verify receipts).
    pub lifecycle: Lifecycle,
    /// Where the embedded S3 endpoint listens (`None` with an S3 backend).
    pub s3_addr: Option<SocketAddr>,
    /// The store's credentials (given or generated).
    pub credentials: StoreCredentials,
    /// The keys grants are verified with (`grant_secret`), when set.
    pub grant_keys: Option<Keyring>,
    stop: watch::Sender<bool>,
    s3_task: Option<JoinHandle<()>>,
    webhooks: Option<WebhookSink>,
    grace: Duration,
}

/// Opens the configured store, binds the embedded S3 listener (only for
/// the embedded store; port 0 picks a free one) and starts serving it,
/// and builds the router the app mounts. `config.listen` is not used: the
/// app serves the router on its own listener.
pub async fn embed(config: Config) -> Result<Embedded, ServeError> {
    let opened = open_store(&config).await?;
    let origins = origins(&config);
    let s3_listener = match &opened.store {
        Backend::Embedded(_) => Some(bind(config.s3_listen, "s3_listen").await?),
        Backend::S3(_) => None,
    };
    let s3_addr = s3_listener.as_ref().map(|(_, addr)| *addr);
    let s3_url = store_url(&config, &opened.store, s3_addr);
    let (webhooks, hooks) = webhook_hooks(&config).map_err(ServeError::Webhooks)?;
    let lifecycle = new_lifecycle(
        &config,
        &opened.store,
        &opened.credentials,
        opened.token_keys.clone(),
        &s3_url,
        hooks,
    )
    .await?;
    let (state, tus) = app_state(&config, &lifecycle, origins).await?;
    let router = api_with(state, tus);
    let (stop, stop_rx) = watch::channel(false);
    spawn_reaper(&config, lifecycle.clone(), stop_rx.clone());
    if let Some(addr) = s3_addr {
        tracing::info!(%addr, "embedded S3 store listening");
    }
    let s3_task = spawn_s3(
        &config,
        &opened.credentials,
        opened.store,
        s3_listener.map(|(listener, _)| listener),
        stop_rx,
    );
    Ok(Embedded {
        router,
        lifecycle,
        s3_addr,
        credentials: opened.credentials,
        grant_keys: config.grant_keys.clone(),
        stop,
        s3_task,
        webhooks,
        grace: config.shutdown_grace,
    })
}

impl Embedded {
    /// Stops the S3 listener (letting its requests in flight finish within
    /// the grace period) and the reaper, and drains queued webhooks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.s3_task.take()
            && tokio::time::timeout(self.grace, task).await.is_err()
        {
            tracing::warn!("grace period over; dropping the S3 requests still in flight");
        }
        if let Some(sink) = self.webhooks.take() {
            sink.shutdown(Duration::from_secs(5).min(self.grace)).await;
        }
    }
}
