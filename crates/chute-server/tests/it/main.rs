//! Integration tests of `chute-server`: a real server bound on loopback.
#![allow(clippy::unwrap_used)]

/// Uppy Companion's `/s3/` routes: shapes, grants, swapped keys and upload ids.
mod companion;
/// The demo page at `/` and its development-only object links.
mod demo;
/// Image derivatives: grant, receipt, status route, hostile images, promotion, re-queue.
mod derivatives;
/// Raw HTTP/1.1 over TCP, so the tests control exactly when bytes are sent.
mod http;
/// Image fixtures made in memory (JPEG with EXIF, PNG, WebP, GIF, a bomb).
mod images;
/// Start-up, health and readiness endpoints.
mod lifecycle;
/// Each listener serves at most `max_connections` clients and cuts slow headers.
mod limits;
/// `openapi.json` names exactly the routes the router serves.
mod openapi;
/// Expiry: stale multipart uploads, unpromoted objects, grant counters.
mod reaper;
/// SIGTERM-style shutdown lets in-flight uploads finish.
mod shutdown;
/// Streamed forms and raw bodies: receipts, limits, hostile bodies, cleanup.
mod stream;
/// tus 1.0 at `/files/`: discovery, PATCHes to a receipt, refusals.
mod tus;
/// Two instances over one store writing one tus upload at once.
mod tus_instances;
/// Signed event webhooks and the authorization webhook, against a local app.
mod webhooks;

use chute_server::{Config, RawConfig, Server, StoreCredentials};

/// The access key every test server uses.
pub const ACCESS_KEY: &str = "testaccess";
/// Its secret.
pub const SECRET_KEY: &str = "testsecretkey";

/// A development-mode config on free loopback ports over `data_dir`.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let raw = RawConfig {
        listen: Some("127.0.0.1:0".into()),
        s3_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_owned()),
        s3_access_key: Some(ACCESS_KEY.into()),
        s3_secret_key: Some(SECRET_KEY.into()),
        shutdown_grace_seconds: Some(10),
        ..RawConfig::default()
    };
    Config::try_from(raw).expect("test config is valid")
}

/// Binds a server, returning it unstarted.
pub async fn bind(data_dir: &std::path::Path) -> Server {
    let server = Server::bind(test_config(data_dir)).await.expect("server binds");
    assert_eq!(
        server.credentials(),
        &StoreCredentials {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into()
        }
    );
    server
}

/// A running Chute; dropping it stops nothing, `stop` does.
pub struct Running {
    /// The API listener's address.
    pub app: std::net::SocketAddr,
    /// The embedded store's S3 listener address.
    pub s3: Option<std::net::SocketAddr>,
    /// Send to shut the server down.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The server task; it ends after `stop`.
    pub task: tokio::task::JoinHandle<Result<(), chute_server::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Shuts the server down and waits for it to stop cleanly.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().expect("server stops cleanly");
    }
}

/// Binds `config` (whose data dir is in `dir`) and runs it until stopped.
pub async fn run(config: Config, dir: tempfile::TempDir) -> Running {
    let server = Server::bind(config).await.expect("server binds");
    let app = server.app_addr();
    let s3 = server.s3_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        app,
        s3,
        stop,
        task,
        _dir: dir,
    }
}

/// The app router in process (called with `oneshot`) over an fs store
/// in a temporary directory, taking JWT grants signed by `keyring` only
/// (no open grant): the router, its lifecycle and the directory.
pub async fn in_process_app(
    keyring: chute_core::Keyring,
) -> (
    axum::Router,
    chute_server::lifecycle::Lifecycle,
    tempfile::TempDir,
) {
    use chute_server::grants::Grants;
    use chute_server::hooks::Hooks;
    use chute_server::lifecycle::{Lifecycle, LifecycleSettings, Signer};
    use chute_server::{AppState, Origins};
    let dir = tempfile::tempdir().unwrap();
    let store = chute_store::fs::FsStore::open(dir.path()).await.unwrap();
    let bucket = chute_core::BucketName::parse("uploads").unwrap();
    store.create_bucket(&bucket).await.unwrap();
    let fs_bucket = store.bucket(&bucket).await.unwrap();
    let signer = Signer::new(
        "http://127.0.0.1:9000".into(),
        bucket,
        "us-east-1".into(),
        true,
        chute_core::Credentials {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        },
    );
    let lifecycle = Lifecycle::new(
        std::sync::Arc::new(fs_bucket),
        signer,
        keyring.clone(),
        LifecycleSettings::default(),
        Hooks::new(),
    );
    let app = chute_server::app(AppState {
        lifecycle: lifecycle.clone(),
        grants: std::sync::Arc::new(Grants::jwt(keyring)),
        origins: Origins {
            exact: Vec::new(),
            any_loopback: true,
        },
        stream: Default::default(),
    });
    (app, lifecycle, dir)
}
