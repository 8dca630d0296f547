//! Development credentials for the embedded store: generated once, kept
//! in `<data dir>/credentials.json` (mode 0600) so that restarting
//! `chute serve` does not invalidate the keys a developer configured in
//! their tools. Production always takes explicit keys.

use crate::config::StoreCredentials;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct Stored {
    access_key: String,
    secret_key: String,
}

/// The file in the data dir that keeps them.
pub(crate) const FILE: &str = "credentials.json";

/// The development credentials kept in `data_dir`, if there are any and
/// they parse.
pub(crate) fn kept(data_dir: &Path) -> Option<StoreCredentials> {
    let bytes = std::fs::read(data_dir.join(FILE)).ok()?;
    let s: Stored = serde_json::from_slice(&bytes).ok()?;
    Some(StoreCredentials {
        access_key: s.access_key,
        secret_key: s.secret_key,
    })
}

/// Loads the kept development credentials, or generates and keeps new ones.
/// Returns them with `true` when they were generated just now.
pub(crate) fn load_or_generate(data_dir: &Path) -> io::Result<(StoreCredentials, bool)> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let s: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}; delete it to regenerate", path.display()),
                )
            })?;
            Ok((
                StoreCredentials {
                    access_key: s.access_key,
                    secret_key: s.secret_key,
                },
                false,
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let creds = StoreCredentials {
                access_key: format!("CHUTE{}", random_string(15).to_ascii_uppercase()),
                secret_key: random_string(40),
            };
            let stored = Stored {
                access_key: creds.access_key.clone(),
                secret_key: creds.secret_key.clone(),
            };
            let tmp = data_dir.join(".credentials.json.tmp");
            write_private(
                &tmp,
                &serde_json::to_vec_pretty(&stored).map_err(io::Error::other)?,
            )?;
            std::fs::rename(&tmp, &path)?;
            Ok((creds, true))
        }
        Err(e) => Err(e),
    }
}

/// Loads the development token secret (signing upload tokens and
/// receipts when no `grant_secret` is set) from `<data dir>/token-secret`,
/// or generates and keeps one, so receipts survive a restart.
pub(crate) fn load_or_generate_token_secret(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join("token-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().to_owned()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is shorter than 32 bytes; delete it to regenerate",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret = format!("dev:{}", random_string(48));
            let tmp = data_dir.join(".token-secret.tmp");
            write_private(&tmp, secret.as_bytes())?;
            std::fs::rename(&tmp, &path)?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, fresh) = load_or_generate(dir.path()).unwrap();
        assert!(fresh && first.secret_key.len() == 40 && first.access_key.starts_with("CHUTE"));
        let (again, fresh) = load_or_generate(dir.path()).unwrap();
        assert!(!fresh);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("credentials.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
