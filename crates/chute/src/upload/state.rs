//! The state file of an unfinished upload: one small JSON file per file
//! and destination in `$XDG_STATE_HOME/chute/uploads/` (else
//! `~/.local/state/chute/uploads/`, or `--state-dir`), named
//! `<sha256(fingerprint, protocol, destination, grant identity)>.json`, so
//! the same file sent to two servers, or under two users' grants, keeps
//! two states. It is written (to a temporary
//! file, then renamed) as soon as the upload exists and after every part,
//! and removed once the upload is complete or can never finish. The
//! server stays the authority on which parts it holds; the file only says
//! where to ask.

use super::error::UploadError;
use chute_core::{ChecksumAlgorithm, ChecksumHasher};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The format version; a file of another version is ignored.
const VERSION: u32 = 1;

/// How the bytes travel; part of the state file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Chute's own API: presigned multipart parts.
    Chute,
    /// A tus 1.0 server.
    Tus,
}

/// What an unfinished upload needs to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// [`VERSION`].
    pub version: u32,
    /// Which protocol the upload uses.
    pub protocol: Protocol,
    /// The destination: the Chute server URL or the tus endpoint.
    pub destination: String,
    /// The file's path when the upload began (for people reading the file).
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// The file's fingerprint (hex).
    pub fingerprint: String,
    /// Chute: the upload id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Chute: the upload token (a capability for this one upload only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Chute: the part size the server chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// tus: the upload URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tus_url: Option<String>,
    /// How many parts (Chute) were stored, for people reading the file: a
    /// count, not a list, since the file is rewritten after every part
    /// (a list of 10,000 made that quadratic); the server is asked which
    /// parts it holds on resume.
    #[serde(default)]
    pub parts_done: u32,
    /// Bytes known to be stored.
    #[serde(default)]
    pub bytes_done: u64,
    /// When the upload began (Unix seconds).
    pub started_at: i64,
}

impl UploadState {
    /// A fresh state for a file of `size` bytes with `fingerprint`.
    pub fn new(protocol: Protocol, destination: &str, path: &Path, size: u64, fingerprint: &str) -> Self {
        Self {
            version: VERSION,
            protocol,
            destination: destination.to_owned(),
            path: path.display().to_string(),
            size,
            fingerprint: fingerprint.to_owned(),
            upload_id: None,
            token: None,
            part_size: None,
            tus_url: None,
            parts_done: 0,
            bytes_done: 0,
            started_at: time_now(),
        }
    }
}

impl UploadState {
    /// Records one more stored part of `len` bytes.
    pub fn record_part(&mut self, len: u64) {
        self.parts_done = self.parts_done.saturating_add(1);
        self.bytes_done = self.bytes_done.saturating_add(len);
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The directory of state files: `$XDG_STATE_HOME/chute/uploads`, else
/// `$HOME/.local/state/chute/uploads`.
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
            .join(".local")
            .join("state"),
    };
    Some(base.join("chute").join("uploads"))
}

/// One file's place in the state directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// What a grant is for, stable across reissues: the hex SHA-256 of its
/// JWT claims without `exp`, `iat`, `nbf` and `jti` (which change each
/// time an app issues one), of the whole token when it is not a JWT, of
/// nothing without a grant. Part of the state file's name, so a fresh
/// grant for the same purpose resumes an upload and another user's (or
/// another form's) grant never continues it under the first one's claims.
pub fn grant_identity(grant: Option<&str>) -> String {
    let mut h = ChecksumHasher::new(ChecksumAlgorithm::Sha256);
    match grant {
        None => h.update(b"none"),
        Some(token) => match super::outcome::jwt_claims(token) {
            Some(serde_json::Value::Object(mut claims)) => {
                for reissued in ["exp", "iat", "nbf", "jti"] {
                    claims.remove(reissued);
                }
                // Sorted keys (a BTreeMap-backed map): the same claims in
                // any order give the same bytes.
                let sorted: std::collections::BTreeMap<_, _> = claims.into_iter().collect();
                h.update(b"claims:");
                h.update(serde_json::to_string(&sorted).unwrap_or_default().as_bytes());
            }
            _ => {
                h.update(b"token:");
                h.update(token.as_bytes());
            }
        },
    }
    hex::encode(h.finish().value)
}

impl StateFile {
    /// The state file of `fingerprint` sent with `protocol` to
    /// `destination` under the grant whose [`grant_identity`] is `grant`.
    pub fn new(dir: &Path, fingerprint: &str, protocol: Protocol, destination: &str, grant: &str) -> Self {
        let mut h = ChecksumHasher::new(ChecksumAlgorithm::Sha256);
        for piece in [
            fingerprint,
            match protocol {
                Protocol::Chute => "chute",
                Protocol::Tus => "tus",
            },
            destination.trim_end_matches('/'),
            grant,
        ] {
            h.update(&(piece.len() as u64).to_be_bytes());
            h.update(piece.as_bytes());
        }
        let name = format!("{}.json", hex::encode(h.finish().value));
        Self { path: dir.join(name) }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, if there is a readable one for this file. A
    /// corrupt or foreign file is treated as absent (and replaced later).
    pub fn load(&self, fingerprint: &str) -> Option<UploadState> {
        let raw = std::fs::read(&self.path).ok()?;
        let state: UploadState = serde_json::from_slice(&raw).ok()?;
        (state.version == VERSION && state.fingerprint == fingerprint).then_some(state)
    }

    /// Saves `state` atomically (a new temporary file, fsync, rename), creating
    /// the directory (mode 0700: the file holds an upload token).
    pub fn save(&self, state: &UploadState) -> Result<(), UploadError> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| UploadError::io(dir, e))?;
        let body = serde_json::to_vec_pretty(state)
            .map_err(|e| UploadError::io(&self.path, std::io::Error::other(e)))?;
        // A fresh name created exclusively (O_EXCL never follows a link):
        // in a shared --state-dir, a file or link planted at a guessable
        // name is never written through, and the mode is always 0600.
        let (mut f, tmp) = {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tmp = self
                    .path
                    .with_extension(format!("json.{:016x}.tmp", rand::random::<u64>()));
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                {
                    Ok(f) => break (f, tmp),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {}
                    Err(e) => return Err(UploadError::io(&tmp, e)),
                }
            }
        };
        let mut write = || -> std::io::Result<()> {
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            UploadError::io(&self.path, e)
        })
    }

    /// Removes the state (the upload finished or can never finish).
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the state file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let f = StateFile::new(&nested, "fp1", Protocol::Chute, "http://h:8080/", "");
        assert_eq!(f.path().parent(), Some(nested.as_path()));
        // The trailing slash of the destination does not matter; the rest does.
        assert_eq!(
            f.path(),
            StateFile::new(&nested, "fp1", Protocol::Chute, "http://h:8080", "").path()
        );
        assert_ne!(
            f.path(),
            StateFile::new(&nested, "fp1", Protocol::Tus, "http://h:8080", "").path()
        );
        assert_ne!(
            f.path(),
            StateFile::new(&nested, "fp1", Protocol::Chute, "http://g:8080", "").path()
        );
        assert_ne!(
            f.path(),
            StateFile::new(&nested, "fp2", Protocol::Chute, "http://h:8080", "").path()
        );

        assert_eq!(f.load("fp1"), None);
        let mut s = UploadState::new(Protocol::Chute, "http://h:8080", Path::new("x.bin"), 10, "fp1");
        s.upload_id = Some("id".into());
        s.record_part(4);
        f.save(&s).unwrap();
        assert_eq!(f.load("fp1"), Some(s.clone()));
        // Another fingerprint under the same name (impossible but cheap to refuse).
        assert_eq!(f.load("fp2"), None);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        f.remove();
        assert_eq!(f.load("fp1"), None);
        f.remove(); // twice is fine
    }

    /// A JWT with `claims` (unsigned: only the payload is read).
    fn jwt(claims: &str) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(claims))
    }

    #[test]
    fn grants_for_another_purpose_never_share_a_state() {
        let alice = grant_identity(Some(&jwt(
            r#"{"aud":"chute","sub":"alice","prefix":"a/","exp":1,"jti":"x"}"#,
        )));
        // Reissued: other expiry, id and times, same purpose.
        let alice_again = grant_identity(Some(&jwt(
            r#"{"jti":"y","sub":"alice","aud":"chute","exp":99,"iat":5,"nbf":5,"prefix":"a/"}"#,
        )));
        let bob = grant_identity(Some(&jwt(
            r#"{"aud":"chute","sub":"bob","prefix":"b/","exp":1,"jti":"x"}"#,
        )));
        assert_eq!(alice, alice_again);
        assert_ne!(alice, bob);
        assert_ne!(grant_identity(None), alice);
        // An opaque grant counts whole.
        assert_ne!(grant_identity(Some("opaque-1")), grant_identity(Some("opaque-2")));
        let dir = tempfile::tempdir().unwrap();
        let key = |g: &str| StateFile::new(dir.path(), "fp", Protocol::Chute, "http://h", g);
        assert_eq!(key(&alice).path(), key(&alice_again).path());
        assert_ne!(key(&alice).path(), key(&bob).path());
    }

    #[test]
    fn saving_never_writes_through_a_planted_link() {
        // A shared --state-dir: another user plants links where a
        // temporary file could be; saving must not truncate their target.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let f = StateFile::new(dir.path(), "fp", Protocol::Chute, "u", "");
        let planted = f
            .path()
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let s = UploadState::new(Protocol::Chute, "u", Path::new("p"), 1, "fp");
        f.save(&s).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(f.load("fp"), Some(s));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::symlink_metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::symlink_metadata(f.path()).unwrap().is_file());
    }

    #[test]
    fn the_state_stays_small_however_many_parts() {
        let mut s = UploadState::new(Protocol::Chute, "u", Path::new("p"), 1, "fp");
        for _ in 0..10_000 {
            s.record_part(16 << 20);
        }
        let body = serde_json::to_vec_pretty(&s).unwrap();
        assert!(body.len() < 1024, "{} bytes", body.len());
        assert_eq!((s.parts_done, s.bytes_done), (10_000, 10_000 * (16 << 20)));
    }

    #[test]
    fn a_corrupt_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "fp", Protocol::Tus, "u", "");
        std::fs::write(f.path(), b"{not json").unwrap();
        assert_eq!(f.load("fp"), None);
        let s = UploadState::new(Protocol::Tus, "u", Path::new("p"), 1, "fp");
        f.save(&s).unwrap();
        assert_eq!(f.load("fp"), Some(s));
    }
}
