//! `chute upload FILE...`: the terminal client of Chute's upload API (and,
//! with `--tus`, of any tus 1.0 server). It owns the command's flags, the
//! loop over files, Ctrl-C, and what is printed; the protocols live in
//! [`direct`] (the API with presigned parts, as the widget uses it) and
//! [`tus`], printed by [`outcome`], resuming through [`state`] files keyed by a file's
//! [`fingerprint`], with retries from [`http`] and bars from [`progress`].
//!
//! Exit codes: 0 every file uploaded; 1 an upload failed (network, server
//! error, unreadable file); 2 bad usage; 3 the server refused a request
//! (bad or expired grant, a file the grant does not allow); 130
//! interrupted by Ctrl-C. A started upload keeps its state whatever the
//! failure (but a changed file), for a later run to resume.

mod api;
mod body;
mod direct;
mod error;
mod fingerprint;
mod http;
mod outcome;
mod plan;
mod progress;
mod state;
mod tus;

use error::{EXIT_FAILED, EXIT_INTERRUPTED, UploadError};
use fingerprint::Fingerprint;
use outcome::{Outcome, print_outcome};
use progress::{FileProgress, Progress};
use state::{Protocol, StateFile};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// `chute upload` flags.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The files to upload, one after another.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The Chute server.
    #[arg(
        long,
        env = "CHUTE_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_server_url
    )]
    to: String,
    /// The grant: a bearer JWT your app issued (none: the server's open
    /// grant in development).
    #[arg(long, env = "CHUTE_GRANT", value_name = "TOKEN", hide_env_values = true)]
    grant: Option<String>,
    /// One JSON object per file on stdout (receipt, key, size, bytes sent,
    /// resumed ...), no progress bars.
    #[arg(long)]
    json: bool,
    /// No progress bars; stdout gets only the receipts, one a line.
    #[arg(long, short)]
    quiet: bool,
    /// Upload to a tus 1.0 server instead: `--tus` uses <URL>/files/,
    /// `--tus=ENDPOINT` any tus creation endpoint.
    #[arg(long, value_name = "ENDPOINT", num_args = 0..=1, require_equals = true, value_parser = parse_server_url)]
    tus: Option<Option<String>>,
    /// Parts of one file in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: u16,
    /// The part size to ask the server for (5M to 1G, each part is held
    /// in memory; raised to fit 10,000 parts); a file no larger goes in
    /// one request.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    part_size: u64,
    /// tus: bytes per PATCH (each read into memory; 1 to 1G).
    #[arg(long, value_name = "SIZE", default_value = "32M", value_parser = parse_chunk_size)]
    chunk_size: u64,
    /// Send at most this many bytes a second (all files and parts together).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// The declared media type [default: from the file name's extension].
    #[arg(long = "type", value_name = "TYPE")]
    content_type: Option<String>,
    /// Where unfinished uploads are recorded [default:
    /// $XDG_STATE_HOME/chute/uploads, else ~/.local/state/chute/uploads].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Retries of a request after a network failure or a 5xx answer.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
    /// Seconds to wait for the answer once a part or chunk is sent (then
    /// the attempt counts as failed and is retried).
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    answer_timeout: u64,
}

/// `16M`, `8MiB`, `1G`, `512k`, `1000`: a byte count with an optional
/// binary suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 16M or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?}: the unit must be K, M or G")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// An http(s) URL (`--to`, `--tus=`): refused at once when malformed,
/// rather than after every retry of the first request.
fn parse_server_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(s.to_owned()),
        Ok(_) | Err(_) => Err(format!(
            "{s:?} is not a server URL like http://127.0.0.1:8080 or https://uploads.example.com"
        )),
    }
}

/// A `--limit-rate`: a size a second, above zero (0 would pace one byte a
/// second, a silent hang).
fn parse_rate(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!(
            "{s:?}: a rate must be above 0 (leave --limit-rate out for no limit)"
        )),
        n => Ok(n),
    }
}

/// A tus chunk size: a size from 1 byte to 1 GiB (each PATCH's bytes are
/// held in memory).
fn parse_chunk_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("{s:?}: a chunk holds at least one byte")),
        n if n > plan::MEMORY_BUDGET => Err(format!("{s:?}: a chunk is read into memory, so at most 1G")),
        n => Ok(n),
    }
}

/// Why a pipe, FIFO, device or directory is refused, and what to do.
const NOT_A_REGULAR_FILE: &str = "not a regular file (uploads read a file by offset, in parallel \
     and again on resume: save it to a file first)";

/// One file being uploaded.
#[derive(Debug)]
pub struct FileJob {
    /// The path as given.
    pub path: PathBuf,
    /// The open file (read with positioned reads from several tasks).
    pub file: Arc<std::fs::File>,
    /// Its fingerprint (size, mtime, sampled bytes).
    pub fingerprint: Fingerprint,
    /// The file name sent to the server.
    pub name: String,
    /// The declared media type.
    pub content_type: String,
    /// Where its unfinished upload is recorded.
    pub state_file: StateFile,
    /// Its bar.
    pub progress: FileProgress,
}

impl FileJob {
    /// Says so when a resumed upload began under another file name: the
    /// server took that name (and media type) at creation, so the object
    /// keeps it.
    pub fn note_resumed(&self, saved: &state::UploadState) {
        let before = Path::new(&saved.path);
        if before.file_name().map(|n| n.to_string_lossy()) != Some(self.name.as_str().into()) {
            self.progress.println(&format!(
                "{}: resuming the upload begun as {}; the stored object keeps that name",
                self.path.display(),
                before.display()
            ));
        }
    }
}

/// Runs `chute upload`.
pub async fn run(args: UploadArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("chute upload: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn run_inner(args: UploadArgs) -> Result<u8, String> {
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => state::default_dir()
            .ok_or("no state directory: set XDG_STATE_HOME or HOME, or pass --state-dir")?,
    };
    let mut total = 0u64;
    for path in &args.files {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: {NOT_A_REGULAR_FILE}", path.display()));
        }
        total += meta.len();
    }
    let client = http::client().map_err(|e| e.to_string())?;
    let retry = http::RetryPolicy {
        attempts: args.retries.saturating_add(1),
        answer_timeout: std::time::Duration::from_secs(args.answer_timeout),
        ..http::RetryPolicy::default()
    };
    let visible = std::io::stderr().is_terminal() && !args.json && !args.quiet;
    let progress = Progress::new(total, args.files.len(), visible, args.limit_rate);
    let api = api::ChuteApi::new(client.clone(), &args.to, args.grant.clone(), retry);
    let tus = match &args.tus {
        None => None,
        Some(endpoint) => {
            let endpoint = match endpoint {
                Some(e) => e.clone(),
                None => format!("{}/files/", args.to.trim_end_matches('/')),
            };
            let endpoint = reqwest::Url::parse(&endpoint).map_err(|e| format!("--tus {endpoint:?}: {e}"))?;
            Some(tus::TusClient {
                client,
                endpoint,
                grant: args.grant.clone(),
                retry,
                chunk_size: args.chunk_size,
            })
        }
    };
    let uploads = async {
        let mut worst = 0u8;
        for path in &args.files {
            let code = upload_one(&args, path, &state_dir, &api, tus.as_ref(), &progress).await;
            worst = worst.max(code);
        }
        worst
    };
    let code = tokio::select! {
        code = uploads => code,
        _ = tokio::signal::ctrl_c() => {
            progress.println(&format!(
                "chute upload: interrupted; run the same command again to resume (unfinished uploads are recorded in {})",
                state_dir.display()
            ));
            EXIT_INTERRUPTED
        }
    };
    progress.finish();
    Ok(code)
}

/// Uploads one file and prints its outcome; the exit code it asks for.
async fn upload_one(
    args: &UploadArgs,
    path: &Path,
    state_dir: &Path,
    api: &api::ChuteApi,
    tus: Option<&tus::TusClient>,
    progress: &Progress,
) -> u8 {
    let started = Instant::now();
    let job = match prepare(args, path, state_dir, api, tus, progress).await {
        Ok(job) => job,
        Err(e) => {
            progress.println(&format!("chute upload: {e}"));
            return e.exit_code();
        }
    };
    let result = match tus {
        Some(t) => t.upload(&job).await,
        None => {
            let opts = direct::DirectOptions {
                parallel: usize::from(args.parallel),
                part_size: args.part_size,
            };
            direct::upload(api, &job, opts).await
        }
    };
    match result {
        Ok(outcome) => {
            job.progress.finish();
            print_outcome(args, path, &outcome, started.elapsed().as_secs_f64(), progress);
            0
        }
        Err(e) => {
            job.progress.abandon();
            let hint = if !e.keeps_state() {
                job.state_file.remove();
                String::new()
            } else if job.state_file.path().exists() {
                format!(
                    "; run the same command again to resume (or delete {} to start over)",
                    job.state_file.path().display()
                )
            } else {
                String::new()
            };
            progress.println(&format!("chute upload: {}: {e}{hint}", path.display()));
            e.exit_code()
        }
    }
}

async fn prepare(
    args: &UploadArgs,
    path: &Path,
    state_dir: &Path,
    api: &api::ChuteApi,
    tus: Option<&tus::TusClient>,
    progress: &Progress,
) -> Result<FileJob, UploadError> {
    let file = std::fs::File::open(path).map_err(|e| UploadError::io(path, e))?;
    // Checked again on the open file: the path may have been replaced
    // since the first check.
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(UploadError::io(path, std::io::Error::other(NOT_A_REGULAR_FILE)));
        }
        Err(e) => return Err(UploadError::io(path, e)),
    }
    let file = Arc::new(file);
    let fingerprint = {
        let file = Arc::clone(&file);
        tokio::task::spawn_blocking(move || Fingerprint::of(&file))
            .await
            .map_err(|e| UploadError::io(path, std::io::Error::other(e)))?
            .map_err(|e| UploadError::io(path, e))?
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "upload".to_owned());
    let content_type = args.content_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    });
    let grant = state::grant_identity(args.grant.as_deref());
    let state_file = match tus {
        Some(t) => StateFile::new(
            state_dir,
            &fingerprint.hex,
            Protocol::Tus,
            t.endpoint.as_str(),
            &grant,
        ),
        None => StateFile::new(state_dir, &fingerprint.hex, Protocol::Chute, api.base(), &grant),
    };
    let bar = progress.file(&name, fingerprint.size);
    Ok(FileJob {
        path: path.to_owned(),
        file,
        fingerprint,
        name,
        content_type,
        state_file,
        progress: bar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("12T").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn server_urls_need_http_and_a_host() {
        assert!(parse_server_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_server_url("https://u.example.com/files/").is_ok());
        for bad in ["localhost:8080", "ftp://h/", "http//h", "file:///x"] {
            assert!(parse_server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_zero_rate_is_refused_not_a_hang() {
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert!(parse_rate("0").unwrap_err().contains("leave --limit-rate out"));
    }

    #[test]
    fn chunk_sizes_fit_in_memory() {
        assert_eq!(parse_chunk_size("1G"), Ok(1 << 30));
        assert!(parse_chunk_size("2G").unwrap_err().contains("at most 1G"));
        assert!(parse_chunk_size("0").is_err());
    }
}
