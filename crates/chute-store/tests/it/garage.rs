//! A real Garage for the S3 backend's tests: [`shared`] starts one
//! single-node Garage per test process (sqlite metadata, replication
//! factor 1, loopback ports) from the cached binary, and [`Garage::bucket`]
//! gives each test a fresh bucket and an [`S3StoreConfig`] for it
//! ([`shared_bucket`] does both from async code). The
//! process is killed when the last test holding it drops it, and by a
//! watchdog if the test process dies first.
//!
//! The binary is `$CHUTE_GARAGE_BIN`, else
//! `~/.cache/chute/garage-2.5.0/bin/garage` (`scripts/garage build`). A
//! missing binary fails the test with that advice: never a silent skip.

use chute_core::Credentials;
use chute_store::BucketName;
use chute_store::s3::S3StoreConfig;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Garage's S3 region in the generated configuration.
pub const REGION: &str = "garage";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running single-node Garage.
pub struct Garage {
    child: Child,
    watchdog: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The key every bucket is opened to.
    pub credentials: Credentials,
}

/// The Garage binary tests use.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHUTE_GARAGE_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/chute/garage-2.5.0/bin/garage")
}

/// The Garage of this test process, started on first use.
pub fn shared() -> Arc<Garage> {
    static SHARED: Mutex<Weak<Garage>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = slot.upgrade() {
        return g;
    }
    let g = Arc::new(Garage::start());
    *slot = Arc::downgrade(&g);
    g
}

/// The Garage of this test process and a fresh bucket `<prefix>-<random>`
/// in it, from async code (both steps block: they run off the runtime).
pub async fn shared_bucket(prefix: &str) -> (Arc<Garage>, S3StoreConfig) {
    let g = tokio::task::spawn_blocking(shared).await.unwrap();
    let config = {
        let g = g.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || g.bucket(&prefix))
            .await
            .unwrap()
    };
    (g, config)
}

/// Three distinct free loopback ports: all bound at once, so the kernel
/// cannot hand out one twice.
fn free_ports() -> (u16, u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free loopback port: {e}"));
    let (a, b, c) = (bind(), bind(), bind());
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    (port(&a), port(&b), port(&c))
}

fn random_hex(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

impl Garage {
    /// Starts Garage, assigns its layout and imports a key; panics with
    /// Garage's log if it is not ready within a minute.
    pub fn start() -> Self {
        let bin = binary();
        assert!(
            bin.is_file(),
            "the Garage binary is missing at {}: build it with `scripts/garage build` \
             (or point CHUTE_GARAGE_BIN at a garage 2.5 binary)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let (rpc, s3, admin) = free_ports();
        let config = format!(
            r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{token}"
"#,
            root = dir.path().display(),
            secret = random_hex(32),
            token = random_hex(16),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(&bin)
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let watchdog = watch(child.id());
        let g = Self {
            child,
            watchdog,
            dir,
            bin,
            endpoint: format!("http://127.0.0.1:{s3}"),
            credentials: Credentials {
                access_key: format!("GK{}", random_hex(12)),
                secret_key: random_hex(32),
            },
        };
        g.wait_until(|g| g.cli(&["status"]).is_ok(), "answers `garage status`");
        let node = g.cli_ok(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        g.cli_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli_ok(&["layout", "apply", "--version", "1"]);
        let (id, secret) = (g.credentials.access_key.clone(), g.credentials.secret_key.clone());
        g.cli_ok(&["key", "import", "--yes", "-n", "chute-test", &id, &secret]);
        g
    }

    /// Creates a bucket named `<prefix>-<random>` that the test key owns.
    pub fn bucket(&self, prefix: &str) -> S3StoreConfig {
        let name = format!("{prefix}-{}", &random_hex(4));
        // Right after the layout is applied, Garage may refuse for a moment.
        self.wait_until(
            |g| g.cli(&["bucket", "create", &name]).is_ok(),
            "creates a bucket",
        );
        self.cli_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &name,
            "--key",
            "chute-test",
        ]);
        S3StoreConfig {
            endpoint: self.endpoint.clone(),
            region: REGION.into(),
            bucket: BucketName::parse(&name).unwrap_or_else(|e| panic!("{e}")),
            credentials: self.credentials.clone(),
            session_token: None,
            path_style: true,
            allow_http: true,
        }
    }

    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running garage {args:?}: {e}"))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(format!(
                "garage {args:?} failed ({}): {}{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            ))
        }
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        self.cli(args)
            .unwrap_or_else(|e| panic!("{e}\n--- garage.log ---\n{}", self.log_tail()))
    }

    fn wait_until(&self, ready: impl Fn(&Self) -> bool, what: &str) {
        let start = Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "Garage never {what} within {READY_TIMEOUT:?}\n--- garage.log ---\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A shell loop that kills `child` if this test process dies without
/// dropping it (a timeout's SIGKILL); it ends by itself once `child` does.
fn watch(child: u32) -> Option<Child> {
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {child} 2>/dev/null; do \
           if ! kill -0 {parent} 2>/dev/null; then kill {child}; exit 0; fi; sleep 1; \
         done"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
