//! Configuration in two steps: [`RawConfig`] mirrors the TOML file and the
//! `CHUTE_*` environment variables as given; [`Config`] is the validated
//! form the server runs on, built with `TryFrom`, with an error that
//! names the bad setting.

use chute_core::BucketName;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings as written in `chute.toml` or `CHUTE_<NAME>` variables; every
/// field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// `development` (default) or `production`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// App listener address (default `127.0.0.1:8080`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Embedded S3 listener address (default `127.0.0.1:9000`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_listen: Option<String>,
    /// Where the embedded store keeps its data (default `./chute-data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The bucket uploads go to (default `uploads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The region clients sign for (default `us-east-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `embedded` (default: the filesystem store behind Chute's own S3
    /// listener) or `s3` (AWS S3, Garage, MinIO, R2, any S3 API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The S3 backend's endpoint (`https://s3.eu-west-1.amazonaws.com`,
    /// `http://127.0.0.1:3900`); default `AWS_ENDPOINT_URL`, else AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`); default true for a custom
    /// endpoint, false for AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_path_style: Option<bool>,
    /// Allow a plain-http S3 endpoint that is not on this machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_allow_http: Option<bool>,
    /// Seconds a connection to the S3 backend may take to open (default
    /// 10, 1 to 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_connect_timeout_seconds: Option<u64>,
    /// Seconds one request to the S3 backend may wait for its answer
    /// (default 120, 1 to 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_request_timeout_seconds: Option<u64>,
    /// The store's access key (embedded store; or the S3 backend's, else `AWS_ACCESS_KEY_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key: Option<String>,
    /// The embedded store's secret key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_secret_key: Option<String>,
    /// Browser origins allowed to call the API, `/s3/` and the store
    /// (development mode adds every loopback origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// The app's public base URL (`https://uploads.example.com`), checked by
    /// `chute check --deploy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The store's URL as browsers reach it (default: the embedded S3
    /// listener's address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_public_url: Option<String>,
    /// The secret grants, upload tokens and receipts are signed with:
    /// `kid:secret` or a bare secret (at least 32 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_secret: Option<String>,
    /// Retired secrets still accepted while tokens signed with them live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_secrets_retired: Option<Vec<String>>,
    /// The audience grant tokens must name (default `chute`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_audience: Option<String>,
    /// The app's authorization webhook: gets the request's cookies and
    /// headers, answers with a grant as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_webhook_url: Option<String>,
    /// Seconds the authorization webhook has to answer before the request
    /// fails with 502 (default 5, 1 to 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_webhook_timeout_seconds: Option<u64>,
    /// URLs that receive lifecycle events as signed JSON POSTs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_urls: Option<Vec<String>>,
    /// The HMAC-SHA256 key of event webhook signatures (at least 32 bytes;
    /// required with `webhook_urls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Seconds one event webhook attempt may take (default 10, 1 to 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_seconds: Option<u64>,
    /// Attempts per event and URL, the first included (default 5, 1 to 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_max_attempts: Option<u32>,
    /// Whether requests without a grant get an open one (default: true in
    /// development, false in production).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_grants: Option<bool>,
    /// Seconds an upload may stay unfinished (default 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_ttl_seconds: Option<u64>,
    /// Seconds a receipt stays valid (default 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_ttl_seconds: Option<u64>,
    /// Seconds presigned URLs and POST forms stay valid (default 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presign_ttl_seconds: Option<u64>,
    /// Seconds between the server's expiry passes (default 600; 0 turns
    /// the in-process reaper off, for `chute gc` from cron instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reap_interval_seconds: Option<u64>,
    /// Seconds beyond `upload_ttl_seconds` a grant's `max_files` counters
    /// are kept (default 604800, 7 days); grants with `max_files` must
    /// expire within this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_counter_ttl_seconds: Option<u64>,
    /// Files above this many bytes use multipart (default 16 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart_threshold: Option<u64>,
    /// Promotion key template when the grant names none (default `uploads/{uuid}{ext}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_template: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Largest POST Object file in bytes (default and maximum 5 GiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_post_object_size: Option<u64>,
    /// Bytes all fields before the file of a POST form may take (default 20 KiB, as S3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_post_form_fields_bytes: Option<usize>,
    /// Seconds a request body on the S3 listener may send nothing before
    /// the request fails with `RequestTimeout` (default 60, 1 to 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_idle_timeout_seconds: Option<u64>,
    /// Connections each listener (the app's, the embedded S3 one) serves
    /// at once; more wait in the kernel's backlog (default 1024, 1 to 65536).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request's headers, on either
    /// listener, before its connection is closed (default 30, 1 to 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Bytes per part of a streamed upload (default 8 MiB, 5 MiB to 5 GiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_part_size: Option<u64>,
    /// Parts of one streamed request uploading at once (default 4, 1 to 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_parts_in_flight: Option<usize>,
    /// Plain fields a streamed form may have (default 100, 0 to 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_max_fields: Option<usize>,
    /// Bytes one plain field of a streamed form may have (default 64 KiB, 1 KiB to 16 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_max_field_bytes: Option<usize>,
    /// Files a streamed form may have (default 20, 1 to 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_max_files: Option<usize>,
    /// MiB of part buffers all streamed requests may hold together
    /// (default 512; at least one part, at most 1 TiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_memory_mib: Option<usize>,
    /// The smallest multipart part a tus upload is cut into, in bytes
    /// (default 8 MiB, 5 MiB to 5 GiB); raised for uploads above 80 GiB
    /// so 10,000 parts suffice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tus_part_size: Option<u64>,
    /// Parts of one tus PATCH uploading at once (default 4, 1 to 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tus_parts_in_flight: Option<usize>,
    /// The store lease serialising instances on one tus upload, in
    /// seconds (default 15, 5 to 600): renewed every third of it; a
    /// crashed holder's blocks its upload for twice as long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tus_lock_lease_seconds: Option<u64>,
    /// Threads making image derivatives (default 0: one per core; 0 to 256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_workers: Option<usize>,
    /// Image jobs accepted beyond those running (default 64, 0 to 100000);
    /// beyond that, work waits for a place without reading its image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_queue: Option<usize>,
    /// The widest or tallest image decoded, in pixels (default 16384, 16 to 65535).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_max_dimension: Option<u32>,
    /// MiB one image's decoded pixels may take (default 512, 1 to 16384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_max_alloc_mib: Option<u64>,
    /// MiB one image's file may take to get derivatives; it is read into
    /// memory whole (default 64, 1 to 16384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_max_source_mib: Option<u64>,
    /// The largest width or height a grant's derivative may name (default 4096, 1 to 16384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_max_output_dimension: Option<u32>,
    /// Derivative format when the spec names none: `jpeg` (default) or `webp` (lossless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_format: Option<String>,
    /// JPEG quality when the spec names none (default 85, 1 to 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_quality: Option<u8>,
    /// Seconds after which pending derivatives not running in this process
    /// are re-queued when their status is asked for (default 300, 0 to 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_requeue_after_seconds: Option<u64>,
    /// Whether the derivatives route answers with presigned URLs (default:
    /// in development mode only, as a receipt is not read access).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_status_urls: Option<bool>,
}

/// Names accepted from the environment as `CHUTE_<NAME>`.
const ENV_KEYS: [&str; 59] = [
    "store",
    "s3_endpoint",
    "s3_path_style",
    "s3_allow_http",
    "s3_connect_timeout_seconds",
    "s3_request_timeout_seconds",
    "mode",
    "listen",
    "s3_listen",
    "data_dir",
    "bucket",
    "region",
    "s3_access_key",
    "s3_secret_key",
    "allowed_origins",
    "public_url",
    "s3_public_url",
    "grant_secret",
    "grant_secrets_retired",
    "grant_audience",
    "grant_webhook_url",
    "grant_webhook_timeout_seconds",
    "webhook_urls",
    "webhook_secret",
    "webhook_timeout_seconds",
    "webhook_max_attempts",
    "open_grants",
    "upload_ttl_seconds",
    "receipt_ttl_seconds",
    "presign_ttl_seconds",
    "reap_interval_seconds",
    "grant_counter_ttl_seconds",
    "multipart_threshold",
    "promote_template",
    "shutdown_grace_seconds",
    "max_post_object_size",
    "max_post_form_fields_bytes",
    "body_idle_timeout_seconds",
    "max_connections",
    "header_read_timeout_seconds",
    "stream_part_size",
    "stream_parts_in_flight",
    "stream_max_fields",
    "stream_max_field_bytes",
    "stream_max_files",
    "stream_memory_mib",
    "tus_part_size",
    "tus_parts_in_flight",
    "tus_lock_lease_seconds",
    "image_workers",
    "image_queue",
    "image_max_dimension",
    "image_max_alloc_mib",
    "image_max_source_mib",
    "image_max_output_dimension",
    "image_format",
    "image_quality",
    "image_requeue_after_seconds",
    "image_status_urls",
];

impl RawConfig {
    /// Merges, lowest first: defaults, the TOML file (if any), `CHUTE_*`
    /// environment variables, then `overrides` (the command line).
    pub fn load(file: Option<&Path>, overrides: RawConfig) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::prefixed("CHUTE_").only(&ENV_KEYS))
            .merge(Serialized::defaults(overrides));
        figment.extract().map_err(|e| {
            let name = e.path.join(".");
            ConfigError::new(
                if name.is_empty() { "config".into() } else { name },
                e.kind.to_string(),
            )
        })
    }
}

/// Whether Chute runs for a developer or for production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Embedded store, generated credentials, open CORS for loopback.
    Development,
    /// Every secret must be set explicitly.
    Production,
}

/// Credentials of the embedded store and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreCredentials {
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
}

impl fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCredentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// The validated configuration the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development or production.
    pub mode: Mode,
    /// App listener address.
    pub listen: SocketAddr,
    /// Embedded S3 listener address.
    pub s3_listen: SocketAddr,
    /// The embedded store's data directory.
    pub data_dir: PathBuf,
    /// The bucket uploads go to.
    pub bucket: BucketName,
    /// The signing region.
    pub region: String,
    /// Explicit credentials; `None` in development means "generate and keep
    /// them in the data directory".
    pub credentials: Option<StoreCredentials>,
    /// The S3 backend, when `store = "s3"`; `None` means the embedded store.
    pub s3_backend: Option<chute_store::s3::S3StoreConfig>,
    /// The S3 backend's timeouts (`s3_connect_timeout_seconds`,
    /// `s3_request_timeout_seconds`) and sizes.
    pub s3_tuning: chute_store::s3::S3Tuning,
    /// Browser origins allowed on the API and the store (configured ones;
    /// development mode also allows any loopback origin).
    pub allowed_origins: Vec<String>,
    /// The app's public base URL, when configured.
    pub public_url: Option<String>,
    /// The store's URL as browsers reach it, when configured.
    pub s3_public_url: Option<String>,
    /// The token signing key and the retired keys still accepted.
    pub grant_keys: Option<chute_core::Keyring>,
    /// The audience grants must name.
    pub grant_audience: String,
    /// The authorization webhook, when configured.
    pub grant_webhook_url: Option<String>,
    /// How long the authorization webhook has to answer.
    pub grant_webhook_timeout: Duration,
    /// Signed event webhooks, when URLs are configured.
    pub webhooks: Option<crate::webhooks::WebhookConfig>,
    /// Whether requests without a grant get an open one.
    pub open_grants: bool,
    /// Lifecycle tunables.
    pub lifecycle: crate::lifecycle::LifecycleSettings,
    /// How often the server reaps expired uploads; `None`: never.
    pub reap_interval: Option<Duration>,
    /// How long beyond the upload TTL grant `max_files` counters are kept.
    pub grant_counter_ttl: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Largest POST Object file in bytes.
    pub max_post_object_size: u64,
    /// Cap on the fields preceding the file in a POST form.
    pub max_post_form_fields_bytes: usize,
    /// How long a request body on the S3 listener may send nothing.
    pub body_idle_timeout: Duration,
    /// Connections each listener serves at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// The stream routes' limits (`stream_*`, and `body_idle_timeout`).
    pub stream: crate::stream::StreamSettings,
    /// The smallest part of a tus upload.
    pub tus_part_size: u64,
    /// Parts of one tus PATCH uploading at once.
    pub tus_parts_in_flight: usize,
    /// The store lease of a tus upload's writer.
    pub tus_lock_lease: Duration,
}

/// A setting that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}` (CHUTE_{env}): {reason}")]
pub struct ConfigError {
    /// The setting's name as in the TOML file.
    pub setting: String,
    env: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        let setting = setting.into();
        Self {
            env: setting.to_ascii_uppercase(),
            setting,
            reason: reason.into(),
        }
    }
}

const FIVE_GIB: u64 = 5 * 1024 * 1024 * 1024;

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let backend_raw = raw.clone();
        let mut lifecycle = lifecycle_settings(&raw)?;
        let stream = stream_settings(&raw)?;
        let grant_audience = raw
            .grant_audience
            .clone()
            .unwrap_or_else(|| chute_core::token::GRANT_AUDIENCE.into());
        if [
            chute_core::token::UPLOAD_AUDIENCE,
            chute_core::token::RECEIPT_AUDIENCE,
        ]
        .contains(&grant_audience.as_str())
            || grant_audience.is_empty()
        {
            // Receipts and upload tokens would pass as grants.
            return Err(ConfigError::new(
                "grant_audience",
                format!("{grant_audience:?} is reserved for Chute's own tokens; choose another"),
            ));
        }
        let webhooks = webhook_config(&raw)?;
        let mode = match raw.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("development") | Some("dev") => Mode::Development,
            Some("production") | Some("prod") => Mode::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "mode",
                    format!("{other:?} is neither development nor production"),
                ));
            }
        };
        // A receipt is not read access in production unless the operator says so.
        lifecycle.images.status_urls = raw.image_status_urls.unwrap_or(mode == Mode::Development);
        let addr = |name: &str, value: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
            let value = value.unwrap_or_else(|| default.to_owned());
            value.parse().map_err(|_| {
                ConfigError::new(name, format!("{value:?} is not an address like 127.0.0.1:8080"))
            })
        };
        let listen = addr("listen", raw.listen, "127.0.0.1:8080")?;
        let s3_listen = addr("s3_listen", raw.s3_listen, "127.0.0.1:9000")?;
        if listen == s3_listen && listen.port() != 0 {
            return Err(ConfigError::new("s3_listen", "must differ from `listen`"));
        }
        let bucket = BucketName::parse(raw.bucket.as_deref().unwrap_or("uploads"))
            .map_err(|e| ConfigError::new("bucket", e.to_string()))?;
        let region = raw.region.clone().unwrap_or_else(|| "us-east-1".into());
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ConfigError::new(
                "region",
                format!("{region:?} is not a region name like us-east-1"),
            ));
        }
        let s3_backend = s3_backend(&backend_raw, &bucket, &region)?;
        let s3_tuning = s3_tuning(&backend_raw)?;
        let credentials = if s3_backend.is_some() {
            None
        } else {
            credentials(mode, raw.s3_access_key, raw.s3_secret_key)?
        };
        let max_post_object_size = raw.max_post_object_size.unwrap_or(FIVE_GIB);
        if max_post_object_size == 0 || max_post_object_size > FIVE_GIB {
            return Err(ConfigError::new(
                "max_post_object_size",
                "must be 1 byte to 5 GiB (S3's POST limit)",
            ));
        }
        let max_post_form_fields_bytes = raw.max_post_form_fields_bytes.unwrap_or(20 * 1024);
        if !(1024..=1024 * 1024).contains(&max_post_form_fields_bytes) {
            return Err(ConfigError::new(
                "max_post_form_fields_bytes",
                "must be 1 KiB to 1 MiB",
            ));
        }
        let body_idle_timeout_seconds = raw.body_idle_timeout_seconds.unwrap_or(60);
        if !(1..=3600).contains(&body_idle_timeout_seconds) {
            return Err(ConfigError::new(
                "body_idle_timeout_seconds",
                "must be 1 to 3600 seconds",
            ));
        }
        let tus_part_size = raw.tus_part_size.unwrap_or(chute_tus::DEFAULT_PART_SIZE);
        // A PATCH holds its parts in flight plus about two: 256 MiB at most.
        if !(chute_store::MIN_PART_SIZE..=chute_tus::MAX_BASE).contains(&tus_part_size) {
            return Err(ConfigError::new(
                "tus_part_size",
                "must be 5 MiB (5242880) to 256 MiB (268435456) bytes",
            ));
        }
        let tus_parts_in_flight = raw
            .tus_parts_in_flight
            .unwrap_or(crate::tus::DEFAULT_PARTS_IN_FLIGHT);
        if !(1..=16).contains(&tus_parts_in_flight) {
            return Err(ConfigError::new("tus_parts_in_flight", "must be 1 to 16"));
        }
        let tus_lock_lease_seconds = raw
            .tus_lock_lease_seconds
            .unwrap_or(chute_tus::lease::DEFAULT_LEASE.as_secs());
        if !(5..=600).contains(&tus_lock_lease_seconds) {
            return Err(ConfigError::new(
                "tus_lock_lease_seconds",
                "must be 5 to 600 seconds",
            ));
        }
        let header_read_timeout_seconds = raw.header_read_timeout_seconds.unwrap_or(30);
        if !(1..=300).contains(&header_read_timeout_seconds) {
            return Err(ConfigError::new(
                "header_read_timeout_seconds",
                "must be 1 to 300 seconds",
            ));
        }
        let max_connections = raw.max_connections.unwrap_or(1024);
        if !(1..=65536).contains(&max_connections) {
            return Err(ConfigError::new("max_connections", "must be 1 to 65536"));
        }
        let reap_interval = match raw.reap_interval_seconds.unwrap_or(600) {
            0 => None,
            secs @ 10..=86400 => Some(Duration::from_secs(secs)),
            _ => {
                return Err(ConfigError::new(
                    "reap_interval_seconds",
                    "must be 0 (off) or 10 to 86400 seconds",
                ));
            }
        };
        let grant_counter_ttl = raw.grant_counter_ttl_seconds.unwrap_or(7 * 86400);
        if !(3600..=366 * 86400).contains(&grant_counter_ttl) {
            return Err(ConfigError::new(
                "grant_counter_ttl_seconds",
                "must be 3600 to 31622400 seconds (one hour to a year)",
            ));
        }
        let allowed_origins = raw.allowed_origins.clone().unwrap_or_default();
        for origin in &allowed_origins {
            let shaped =
                (origin.starts_with("http://") || origin.starts_with("https://")) && !origin.ends_with('/');
            if !(shaped || origin == "*") {
                return Err(ConfigError::new(
                    "allowed_origins",
                    format!("{origin:?} is not an origin like https://app.example.com (or *)"),
                ));
            }
        }
        for (name, url) in [
            ("public_url", &raw.public_url),
            ("s3_public_url", &raw.s3_public_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "{url:?} is not an http(s) URL; give the full URL, like https://uploads.example.com"
                    ),
                ));
            }
        }
        let grant_keys = match &raw.grant_secret {
            None => None,
            Some(spec) => {
                let current = chute_core::TokenKey::parse(spec)
                    .map_err(|e| ConfigError::new("grant_secret", e.to_string()))?;
                let retired = raw
                    .grant_secrets_retired
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| chute_core::TokenKey::parse(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::new("grant_secrets_retired", e.to_string()))?;
                Some(chute_core::Keyring::new(current, retired))
            }
        };
        if let Some(url) = &raw.grant_webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new(
                "grant_webhook_url",
                format!(
                    "{url:?} is not an http(s) URL; give the full URL, like https://app.example.com/chute/grant"
                ),
            ));
        }
        let grant_webhook_timeout = raw.grant_webhook_timeout_seconds.unwrap_or(5);
        if !(1..=60).contains(&grant_webhook_timeout) {
            return Err(ConfigError::new(
                "grant_webhook_timeout_seconds",
                "must be 1 to 60 seconds",
            ));
        }
        let grant_webhook_timeout = Duration::from_secs(grant_webhook_timeout);
        Ok(Self {
            mode,
            listen,
            s3_listen,
            data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from("chute-data")),
            bucket,
            region,
            credentials,
            s3_backend,
            s3_tuning,
            allowed_origins,
            public_url: raw.public_url,
            s3_public_url: raw.s3_public_url.map(|u| u.trim_end_matches('/').to_owned()),
            grant_keys,
            grant_audience,
            grant_webhook_url: raw.grant_webhook_url,
            grant_webhook_timeout,
            webhooks,
            open_grants: raw.open_grants.unwrap_or(mode == Mode::Development),
            lifecycle,
            reap_interval,
            grant_counter_ttl: Duration::from_secs(grant_counter_ttl),
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_seconds.unwrap_or(30)),
            max_post_object_size,
            max_post_form_fields_bytes,
            body_idle_timeout: Duration::from_secs(body_idle_timeout_seconds),
            max_connections,
            header_read_timeout: Duration::from_secs(header_read_timeout_seconds),
            stream,
            tus_part_size,
            tus_parts_in_flight,
            tus_lock_lease: Duration::from_secs(tus_lock_lease_seconds),
        })
    }
}

impl Config {
    /// Whether uploads go to the embedded filesystem store (served on
    /// `s3_listen`) rather than an external S3 backend. `chute check
    /// --deploy` refuses it in production.
    pub fn uses_embedded_store(&self) -> bool {
        self.s3_backend.is_none()
    }
}

/// The stream routes' settings, each checked against its bounds.
fn stream_settings(raw: &RawConfig) -> Result<crate::stream::StreamSettings, ConfigError> {
    let defaults = crate::stream::StreamSettings::default();
    let part_size = raw.stream_part_size.unwrap_or(defaults.part_size);
    if !(chute_store::MIN_PART_SIZE..=FIVE_GIB).contains(&part_size) {
        return Err(ConfigError::new(
            "stream_part_size",
            "must be 5 MiB to 5 GiB (S3's part sizes)",
        ));
    }
    let bounded = |name: &'static str, value: Option<usize>, default: usize, min: usize, max: usize| {
        let v = value.unwrap_or(default);
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::new(name, format!("must be {min} to {max}")))
        }
    };
    Ok(crate::stream::StreamSettings {
        part_size,
        parts_in_flight: bounded(
            "stream_parts_in_flight",
            raw.stream_parts_in_flight,
            defaults.parts_in_flight,
            1,
            64,
        )?,
        max_fields: bounded(
            "stream_max_fields",
            raw.stream_max_fields,
            defaults.max_fields,
            0,
            10_000,
        )?,
        max_field_bytes: bounded(
            "stream_max_field_bytes",
            raw.stream_max_field_bytes,
            defaults.max_field_bytes,
            1024,
            16 * 1024 * 1024,
        )?,
        max_files: bounded(
            "stream_max_files",
            raw.stream_max_files,
            defaults.max_files,
            1,
            1000,
        )?,
        body_idle_timeout: Duration::from_secs(raw.body_idle_timeout_seconds.unwrap_or(60)),
        memory_mib: bounded(
            "stream_memory_mib",
            raw.stream_memory_mib,
            defaults.memory_mib,
            usize::try_from(part_size.div_ceil(1024 * 1024)).unwrap_or(usize::MAX),
            1024 * 1024,
        )?,
    })
}

/// The event webhooks' settings, each checked against its bounds.
fn webhook_config(raw: &RawConfig) -> Result<Option<crate::webhooks::WebhookConfig>, ConfigError> {
    use crate::webhooks::{WebhookConfig, WebhookSecret};
    let urls = raw.webhook_urls.clone().unwrap_or_default();
    for url in &urls {
        crate::webhooks::parse_url(url).map_err(|e| ConfigError::new("webhook_urls", e.to_string()))?;
    }
    let timeout = raw.webhook_timeout_seconds.unwrap_or(10);
    if !(1..=300).contains(&timeout) {
        return Err(ConfigError::new(
            "webhook_timeout_seconds",
            "must be 1 to 300 seconds",
        ));
    }
    let max_attempts = raw.webhook_max_attempts.unwrap_or(5);
    if !(1..=20).contains(&max_attempts) {
        return Err(ConfigError::new("webhook_max_attempts", "must be 1 to 20"));
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let secret = raw
        .webhook_secret
        .clone()
        .ok_or_else(|| ConfigError::new("webhook_secret", "is required when webhook_urls is set"))
        .and_then(|s| WebhookSecret::new(s).map_err(|e| ConfigError::new("webhook_secret", e.to_string())))?;
    let mut config = WebhookConfig::new(urls, secret);
    config.timeout = Duration::from_secs(timeout);
    config.max_attempts = max_attempts;
    Ok(Some(config))
}

fn credentials(
    mode: Mode,
    access: Option<String>,
    secret: Option<String>,
) -> Result<Option<StoreCredentials>, ConfigError> {
    match (access, secret) {
        (Some(access_key), Some(secret_key)) => {
            if access_key.len() < 3 || !access_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ConfigError::new(
                    "s3_access_key",
                    "must be at least 3 ASCII letters or digits",
                ));
            }
            if secret_key.len() < 8 {
                return Err(ConfigError::new("s3_secret_key", "must be at least 8 characters"));
            }
            Ok(Some(StoreCredentials {
                access_key,
                secret_key,
            }))
        }
        (None, None) if mode == Mode::Development => Ok(None),
        (None, None) => Err(ConfigError::new(
            "s3_access_key",
            "production mode needs explicit credentials",
        )),
        (Some(_), None) => Err(ConfigError::new(
            "s3_secret_key",
            "is required when s3_access_key is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "s3_access_key",
            "is required when s3_secret_key is set",
        )),
    }
}

/// The S3 backend's settings when `store = "s3"`: endpoint, region and
/// credentials from the settings, else the usual AWS variables.
fn s3_backend(
    raw: &RawConfig,
    bucket: &BucketName,
    region: &str,
) -> Result<Option<chute_store::s3::S3StoreConfig>, ConfigError> {
    match raw.store.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("embedded") => {
            for (name, set) in [
                ("s3_endpoint", raw.s3_endpoint.is_some()),
                ("s3_path_style", raw.s3_path_style.is_some()),
                ("s3_allow_http", raw.s3_allow_http.is_some()),
                (
                    "s3_connect_timeout_seconds",
                    raw.s3_connect_timeout_seconds.is_some(),
                ),
                (
                    "s3_request_timeout_seconds",
                    raw.s3_request_timeout_seconds.is_some(),
                ),
            ] {
                if set {
                    return Err(ConfigError::new(name, "applies only with store = \"s3\""));
                }
            }
            return Ok(None);
        }
        Some("s3") => {}
        Some(other) => {
            return Err(ConfigError::new(
                "store",
                format!("{other:?} is neither embedded nor s3"),
            ));
        }
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = if raw.region.is_some() {
        region.to_owned()
    } else {
        env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| region.to_owned())
    };
    let custom = raw
        .s3_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    let path_style = raw.s3_path_style.unwrap_or(custom.is_some());
    let endpoint = custom
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"))
        .trim_end_matches('/')
        .to_owned();
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            endpoint
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        });
    let allow_http = raw.s3_allow_http.unwrap_or(loopback);
    let (access_key, secret_key) = match (&raw.s3_access_key, &raw.s3_secret_key) {
        (Some(a), Some(s)) => (a.clone(), s.clone()),
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => (a, s),
            _ => {
                return Err(ConfigError::new(
                    "s3_access_key",
                    "store = \"s3\" needs credentials: s3_access_key and s3_secret_key, or \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                ));
            }
        },
        (Some(_), None) => {
            return Err(ConfigError::new(
                "s3_secret_key",
                "is required when s3_access_key is set",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "s3_access_key",
                "is required when s3_secret_key is set",
            ));
        }
    };
    let config = chute_store::s3::S3StoreConfig {
        endpoint,
        region,
        bucket: bucket.clone(),
        credentials: chute_core::sigv4::Credentials {
            access_key,
            secret_key,
        },
        session_token: env("AWS_SESSION_TOKEN"),
        path_style,
        allow_http,
    };
    config
        .validate()
        .map_err(|e| ConfigError::new("s3_endpoint", e.to_string()))?;
    Ok(Some(config))
}

/// The S3 backend's timeouts, each checked against its bounds.
fn s3_tuning(raw: &RawConfig) -> Result<chute_store::s3::S3Tuning, ConfigError> {
    let defaults = chute_store::s3::S3Tuning::default();
    let secs = |name: &str, v: Option<u64>, default: Duration, max: u64| match v {
        None => Ok(default),
        Some(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ConfigError::new(name, format!("must be 1 to {max} seconds"))),
    };
    Ok(chute_store::s3::S3Tuning {
        connect_timeout: secs(
            "s3_connect_timeout_seconds",
            raw.s3_connect_timeout_seconds,
            defaults.connect_timeout,
            300,
        )?,
        request_timeout: secs(
            "s3_request_timeout_seconds",
            raw.s3_request_timeout_seconds,
            defaults.request_timeout,
            3600,
        )?,
        ..defaults
    })
}

/// The lifecycle tunables, each checked against its bounds.
fn lifecycle_settings(raw: &RawConfig) -> Result<crate::lifecycle::LifecycleSettings, ConfigError> {
    let mut s = crate::lifecycle::LifecycleSettings::default();
    let secs = |name: &str, v: Option<u64>, default: Duration, max: u64| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if (60..=max).contains(&v) => Ok(Duration::from_secs(v)),
            Some(_) => Err(ConfigError::new(name, format!("must be 60 to {max} seconds"))),
        }
    };
    s.upload_ttl = secs(
        "upload_ttl_seconds",
        raw.upload_ttl_seconds,
        s.upload_ttl,
        30 * 86400,
    )?;
    s.receipt_ttl = secs(
        "receipt_ttl_seconds",
        raw.receipt_ttl_seconds,
        s.receipt_ttl,
        30 * 86400,
    )?;
    // S3 presigned URLs live at most 7 days.
    s.presign_ttl = secs(
        "presign_ttl_seconds",
        raw.presign_ttl_seconds,
        s.presign_ttl,
        7 * 86400,
    )?;
    if let Some(t) = raw.multipart_threshold {
        if !(chute_store::MIN_PART_SIZE..=FIVE_GIB).contains(&t) {
            return Err(ConfigError::new("multipart_threshold", "must be 5 MiB to 5 GiB"));
        }
        s.multipart_threshold = t;
    }
    if let Some(t) = &raw.promote_template {
        chute_core::KeyTemplate::parse(t).map_err(|e| ConfigError::new("promote_template", e.to_string()))?;
        s.default_template = t.clone();
    }
    s.images = image_settings(raw)?;
    Ok(s)
}

/// The image derivative settings, each checked against its bounds.
fn image_settings(raw: &RawConfig) -> Result<crate::derivatives::ImageSettings, ConfigError> {
    fn bounded<T: PartialOrd + fmt::Display + Copy>(
        name: &str,
        v: Option<T>,
        default: T,
        (min, max): (T, T),
    ) -> Result<T, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if v >= min && v <= max => Ok(v),
            Some(_) => Err(ConfigError::new(name, format!("must be {min} to {max}"))),
        }
    }
    let mut s = crate::derivatives::ImageSettings::default();
    s.workers = bounded("image_workers", raw.image_workers, s.workers, (0, 256))?;
    s.queue = bounded("image_queue", raw.image_queue, s.queue, (0, 100_000))?;
    s.decode.max_dimension = bounded(
        "image_max_dimension",
        raw.image_max_dimension,
        s.decode.max_dimension,
        (16, 65_535),
    )?;
    let mib = bounded(
        "image_max_alloc_mib",
        raw.image_max_alloc_mib,
        s.decode.max_alloc / (1024 * 1024),
        (1, 16_384),
    )?;
    s.decode.max_alloc = mib * 1024 * 1024;
    let mib = bounded(
        "image_max_source_mib",
        raw.image_max_source_mib,
        s.max_source / (1024 * 1024),
        (1, 16_384),
    )?;
    s.max_source = mib * 1024 * 1024;
    s.limits.max_dimension = bounded(
        "image_max_output_dimension",
        raw.image_max_output_dimension,
        s.limits.max_dimension,
        (1, 16_384),
    )?;
    if let Some(f) = &raw.image_format {
        s.encode.format = chute_core::OutputFormat::parse(f)
            .ok_or_else(|| ConfigError::new("image_format", "must be jpeg or webp"))?;
    }
    s.encode.quality = bounded("image_quality", raw.image_quality, s.encode.quality, (1, 100))?;
    let secs = bounded(
        "image_requeue_after_seconds",
        raw.image_requeue_after_seconds,
        s.requeue_after.as_secs(),
        (0, 86_400),
    )?;
    s.requeue_after = Duration::from_secs(secs);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_settings_is_development_on_default_ports() {
        let c = Config::try_from(RawConfig::default()).unwrap();
        assert_eq!(c.mode, Mode::Development);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.s3_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.bucket.as_str(), "uploads");
        assert!(c.credentials.is_none());
        assert!(c.open_grants);
        assert!(c.grant_keys.is_none());
        assert_eq!(c.body_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.tus_part_size, 8 * 1024 * 1024);
        assert_eq!(c.reap_interval, Some(Duration::from_secs(600)));
    }

    #[test]
    fn reaper_settings() {
        let c = Config::try_from(RawConfig {
            reap_interval_seconds: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.reap_interval, None, "0 turns the reaper off");
        for (interval, counters, setting) in [
            (Some(5), None, "reap_interval_seconds"),
            (None, Some(60), "grant_counter_ttl_seconds"),
        ] {
            let err = Config::try_from(RawConfig {
                reap_interval_seconds: interval,
                grant_counter_ttl_seconds: counters,
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, setting);
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let bad = |raw: RawConfig, setting: &str| {
            let err = Config::try_from(raw).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
            assert!(
                err.to_string()
                    .contains(&format!("CHUTE_{}", setting.to_uppercase())),
                "{err}"
            );
        };
        bad(
            RawConfig {
                listen: Some("nowhere".into()),
                ..Default::default()
            },
            "listen",
        );
        bad(
            RawConfig {
                bucket: Some("Bad_Bucket".into()),
                ..Default::default()
            },
            "bucket",
        );
        bad(
            RawConfig {
                mode: Some("staging".into()),
                ..Default::default()
            },
            "mode",
        );
        bad(
            RawConfig {
                mode: Some("production".into()),
                ..Default::default()
            },
            "s3_access_key",
        );
        bad(
            RawConfig {
                s3_access_key: Some("AKIA1".into()),
                ..Default::default()
            },
            "s3_secret_key",
        );
        bad(
            RawConfig {
                max_post_object_size: Some(6 << 30),
                ..Default::default()
            },
            "max_post_object_size",
        );
        bad(
            RawConfig {
                allowed_origins: Some(vec!["ftp://x".into()]),
                ..Default::default()
            },
            "allowed_origins",
        );
        bad(
            RawConfig {
                grant_audience: Some("chute-receipt".into()),
                ..Default::default()
            },
            "grant_audience",
        );
        bad(
            RawConfig {
                grant_secret: Some("k:short".into()),
                ..Default::default()
            },
            "grant_secret",
        );
        bad(
            RawConfig {
                upload_ttl_seconds: Some(5),
                ..Default::default()
            },
            "upload_ttl_seconds",
        );
        for seconds in [0, 3601] {
            bad(
                RawConfig {
                    body_idle_timeout_seconds: Some(seconds),
                    ..Default::default()
                },
                "body_idle_timeout_seconds",
            );
        }
        for n in [0, 65537] {
            bad(
                RawConfig {
                    max_connections: Some(n),
                    ..Default::default()
                },
                "max_connections",
            );
        }
    }

    #[test]
    fn tus_part_size_is_bounded() {
        for n in [5 * 1024 * 1024 - 1, 256 * 1024 * 1024 + 1, 5 * 1024 * 1024 * 1024] {
            let err = Config::try_from(RawConfig {
                tus_part_size: Some(n),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "tus_part_size", "{err}");
        }
        let c = Config::try_from(RawConfig {
            tus_part_size: Some(5 * 1024 * 1024),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.tus_part_size, 5 * 1024 * 1024);
        let c = Config::try_from(RawConfig {
            tus_part_size: Some(256 * 1024 * 1024),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.tus_part_size, 256 * 1024 * 1024);
    }

    #[test]
    fn tus_parts_in_flight_is_bounded() {
        assert_eq!(
            Config::try_from(RawConfig::default())
                .unwrap()
                .tus_parts_in_flight,
            4
        );
        for n in [0, 17] {
            let err = Config::try_from(RawConfig {
                tus_parts_in_flight: Some(n),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "tus_parts_in_flight", "{err}");
        }
        let c = Config::try_from(RawConfig {
            tus_parts_in_flight: Some(1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.tus_parts_in_flight, 1);
    }

    #[test]
    fn tus_lock_lease_is_bounded() {
        assert_eq!(
            Config::try_from(RawConfig::default()).unwrap().tus_lock_lease,
            Duration::from_secs(15)
        );
        for n in [0, 4, 601] {
            let err = Config::try_from(RawConfig {
                tus_lock_lease_seconds: Some(n),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "tus_lock_lease_seconds", "{err}");
        }
        let c = Config::try_from(RawConfig {
            tus_lock_lease_seconds: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.tus_lock_lease, Duration::from_secs(5));
    }

    #[test]
    fn limits_accept_their_bounds() {
        for (seconds, n) in [(1, 1), (3600, 65536)] {
            let c = Config::try_from(RawConfig {
                body_idle_timeout_seconds: Some(seconds),
                max_connections: Some(n),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(c.body_idle_timeout, Duration::from_secs(seconds));
            assert_eq!(c.max_connections, n);
        }
    }

    #[test]
    fn fault_timeouts_have_defaults_and_bounds() {
        let c = Config::try_from(RawConfig::default()).unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.s3_tuning.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.s3_tuning.request_timeout, Duration::from_secs(120));
        for seconds in [0, 301] {
            let err = Config::try_from(RawConfig {
                header_read_timeout_seconds: Some(seconds),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "header_read_timeout_seconds", "{err}");
        }
        let s3 = |connect: Option<u64>, request: Option<u64>| RawConfig {
            store: Some("s3".into()),
            s3_endpoint: Some("http://127.0.0.1:3900".into()),
            region: Some("garage".into()),
            s3_access_key: Some("GKabc".into()),
            s3_secret_key: Some("secretsecret".into()),
            s3_connect_timeout_seconds: connect,
            s3_request_timeout_seconds: request,
            ..Default::default()
        };
        let c = Config::try_from(s3(Some(1), Some(3600))).unwrap();
        assert_eq!(
            (c.s3_tuning.connect_timeout, c.s3_tuning.request_timeout),
            (Duration::from_secs(1), Duration::from_secs(3600))
        );
        for (raw, setting) in [
            (s3(Some(0), None), "s3_connect_timeout_seconds"),
            (s3(Some(301), None), "s3_connect_timeout_seconds"),
            (s3(None, Some(0)), "s3_request_timeout_seconds"),
            (s3(None, Some(3601)), "s3_request_timeout_seconds"),
        ] {
            assert_eq!(Config::try_from(raw).unwrap_err().setting, setting);
        }
        // They belong to the S3 backend.
        let err = Config::try_from(RawConfig {
            s3_request_timeout_seconds: Some(5),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.setting, "s3_request_timeout_seconds", "{err}");
    }

    #[test]
    fn image_settings_have_defaults_and_bounds() {
        let c = Config::try_from(RawConfig::default()).unwrap();
        let defaults = crate::derivatives::ImageSettings::default();
        assert!(
            !defaults.status_urls,
            "embedders building settings from Default get no receipt-as-read-capability URLs"
        );
        assert_eq!(
            c.lifecycle.images,
            crate::derivatives::ImageSettings {
                status_urls: true,
                ..defaults
            }
        );
        assert!(
            c.lifecycle.images.status_urls,
            "development mode links derivatives"
        );
        let prod = Config::try_from(RawConfig {
            mode: Some("production".into()),
            grant_secret: Some("k1:0123456789abcdef0123456789abcdef".into()),
            s3_access_key: Some("access".into()),
            s3_secret_key: Some("a-secret-key-long-enough-0123456789".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(
            !prod.lifecycle.images.status_urls,
            "production does not, unless asked"
        );
        let c = Config::try_from(RawConfig {
            image_workers: Some(2),
            image_queue: Some(0),
            image_max_dimension: Some(8000),
            image_max_alloc_mib: Some(64),
            image_max_source_mib: Some(16),
            image_max_output_dimension: Some(1000),
            image_format: Some("WebP".into()),
            image_quality: Some(70),
            image_requeue_after_seconds: Some(0),
            ..Default::default()
        })
        .unwrap();
        let s = &c.lifecycle.images;
        assert_eq!((s.workers, s.queue, s.decode.max_dimension), (2, 0, 8000));
        assert_eq!(s.decode.max_alloc, 64 * 1024 * 1024);
        assert_eq!(s.max_source, 16 * 1024 * 1024);
        assert_eq!(s.limits.max_dimension, 1000);
        assert_eq!(s.encode.format, chute_core::OutputFormat::Webp);
        assert_eq!((s.encode.quality, s.requeue_after), (70, Duration::ZERO));
        for (raw, name) in [
            (
                RawConfig {
                    image_workers: Some(257),
                    ..Default::default()
                },
                "image_workers",
            ),
            (
                RawConfig {
                    image_max_dimension: Some(8),
                    ..Default::default()
                },
                "image_max_dimension",
            ),
            (
                RawConfig {
                    image_max_alloc_mib: Some(0),
                    ..Default::default()
                },
                "image_max_alloc_mib",
            ),
            (
                RawConfig {
                    image_max_source_mib: Some(0),
                    ..Default::default()
                },
                "image_max_source_mib",
            ),
            (
                RawConfig {
                    image_max_output_dimension: Some(0),
                    ..Default::default()
                },
                "image_max_output_dimension",
            ),
            (
                RawConfig {
                    image_format: Some("png".into()),
                    ..Default::default()
                },
                "image_format",
            ),
            (
                RawConfig {
                    image_quality: Some(0),
                    ..Default::default()
                },
                "image_quality",
            ),
            (
                RawConfig {
                    image_requeue_after_seconds: Some(86_401),
                    ..Default::default()
                },
                "image_requeue_after_seconds",
            ),
        ] {
            let err = Config::try_from(raw).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn stream_settings_have_defaults_and_bounds() {
        let c = Config::try_from(RawConfig::default()).unwrap();
        assert_eq!(c.stream, crate::stream::StreamSettings::default());
        assert_eq!(c.stream.part_size, 8 * 1024 * 1024);
        let c = Config::try_from(RawConfig {
            stream_part_size: Some(5 * 1024 * 1024),
            stream_parts_in_flight: Some(64),
            stream_max_fields: Some(0),
            stream_max_field_bytes: Some(1024),
            stream_max_files: Some(1000),
            body_idle_timeout_seconds: Some(7),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (c.stream.parts_in_flight, c.stream.max_fields, c.stream.max_files),
            (64, 0, 1000)
        );
        assert_eq!(c.stream.body_idle_timeout, Duration::from_secs(7));
        let cases = [
            (
                RawConfig {
                    stream_part_size: Some(5 * 1024 * 1024 - 1),
                    ..Default::default()
                },
                "stream_part_size",
            ),
            (
                RawConfig {
                    stream_part_size: Some(FIVE_GIB + 1),
                    ..Default::default()
                },
                "stream_part_size",
            ),
            (
                RawConfig {
                    stream_parts_in_flight: Some(0),
                    ..Default::default()
                },
                "stream_parts_in_flight",
            ),
            (
                RawConfig {
                    stream_max_fields: Some(10_001),
                    ..Default::default()
                },
                "stream_max_fields",
            ),
            (
                RawConfig {
                    stream_max_field_bytes: Some(1023),
                    ..Default::default()
                },
                "stream_max_field_bytes",
            ),
            (
                RawConfig {
                    stream_max_files: Some(0),
                    ..Default::default()
                },
                "stream_max_files",
            ),
            (
                RawConfig {
                    stream_memory_mib: Some(7),
                    ..Default::default()
                },
                "stream_memory_mib",
            ),
        ];
        for (raw, setting) in cases {
            let err = Config::try_from(raw).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn s3_backend_settings() {
        let s3 = |endpoint: &str, allow_http: Option<bool>| RawConfig {
            store: Some("s3".into()),
            s3_endpoint: Some(endpoint.into()),
            s3_allow_http: allow_http,
            region: Some("garage".into()),
            s3_access_key: Some("GKabc".into()),
            s3_secret_key: Some("secretsecret".into()),
            ..Default::default()
        };
        let c = Config::try_from(s3("http://127.0.0.1:3900", None)).unwrap();
        let b = c.s3_backend.as_ref().unwrap();
        assert!(b.path_style && b.allow_http && !c.uses_embedded_store());
        assert_eq!(
            (b.region.as_str(), b.endpoint.as_str()),
            ("garage", "http://127.0.0.1:3900")
        );
        assert!(
            c.credentials.is_none(),
            "the embedded store's credentials are not made up"
        );
        let err = Config::try_from(s3("http://garage.internal:3900", None)).unwrap_err();
        assert_eq!(err.setting, "s3_endpoint", "{err}");
        assert!(Config::try_from(s3("http://garage.internal:3900", Some(true))).is_ok());
        let err = Config::try_from(RawConfig {
            s3_endpoint: Some("https://s3.example".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.setting, "s3_endpoint", "{err}");
        let err = Config::try_from(RawConfig {
            store: Some("gcs".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.setting, "store", "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = StoreCredentials {
            access_key: "AKIA".into(),
            secret_key: "hunter2hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn file_env_and_flags_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chute.toml");
        std::fs::write(&path, "bucket = \"from-file\"\nregion = \"eu-west-1\"\n").unwrap();
        let flags = RawConfig {
            region: Some("eu-central-1".into()),
            ..Default::default()
        };
        let raw = RawConfig::load(Some(&path), flags).unwrap();
        assert_eq!(raw.bucket.as_deref(), Some("from-file"));
        assert_eq!(raw.region.as_deref(), Some("eu-central-1"));
        std::fs::write(&path, "buckit = \"typo\"\n").unwrap();
        let err = RawConfig::load(Some(&path), RawConfig::default()).unwrap_err();
        assert!(err.to_string().contains("buckit"), "{err}");
    }
    #[test]
    fn webhook_settings() {
        let secret = "w".repeat(32);
        let with = |raw: RawConfig| {
            Config::try_from(RawConfig {
                webhook_urls: raw
                    .webhook_urls
                    .clone()
                    .or_else(|| Some(vec!["https://app.example/hooks".into()])),
                ..raw
            })
        };
        let c = with(RawConfig {
            webhook_secret: Some(secret.clone()),
            ..Default::default()
        })
        .unwrap();
        let hooks = c.webhooks.unwrap();
        assert_eq!(hooks.timeout, Duration::from_secs(10));
        assert_eq!(hooks.max_attempts, 5);
        assert!(
            !format!("{hooks:?}").contains(&secret),
            "the secret stays out of logs"
        );
        assert_eq!(c.grant_webhook_timeout, Duration::from_secs(5));
        assert!(Config::try_from(RawConfig::default()).unwrap().webhooks.is_none());
        for (raw, setting) in [
            (RawConfig::default(), "webhook_secret"),
            (
                RawConfig {
                    webhook_secret: Some("short".into()),
                    ..Default::default()
                },
                "webhook_secret",
            ),
            (
                RawConfig {
                    webhook_secret: Some(secret.clone()),
                    webhook_max_attempts: Some(0),
                    ..Default::default()
                },
                "webhook_max_attempts",
            ),
            (
                RawConfig {
                    webhook_secret: Some(secret.clone()),
                    webhook_timeout_seconds: Some(0),
                    ..Default::default()
                },
                "webhook_timeout_seconds",
            ),
            (
                RawConfig {
                    webhook_secret: Some(secret.clone()),
                    webhook_urls: Some(vec!["ftp://x".into()]),
                    ..Default::default()
                },
                "webhook_urls",
            ),
            (
                RawConfig {
                    webhook_secret: Some(secret.clone()),
                    grant_webhook_timeout_seconds: Some(61),
                    ..Default::default()
                },
                "grant_webhook_timeout_seconds",
            ),
        ] {
            let err = with(raw).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
        }
    }
}
