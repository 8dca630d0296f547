//! [`UploadError`]: every way one file's upload fails, whether a retry
//! could help, and the exit code it maps to (in exactly one place,
//! [`UploadError::exit_code`]).

use std::path::PathBuf;

/// Exit code: a request was refused (4xx): bad or expired grant, a file
/// the grant does not allow, a checksum the store rejected.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code: an upload failed otherwise (network, server error, I/O).
pub const EXIT_FAILED: u8 = 1;
/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why one file's upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The Chute API, the store or the tus server refused a request with a
    /// 4xx status; retrying the same request cannot help.
    #[error("{what}: the server refused it ({status}{}): {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Refused {
        /// What was being done, e.g. "creating the upload".
        what: String,
        /// The HTTP status.
        status: u16,
        /// The API's error code or the store's, when it sent one.
        code: Option<String>,
        /// The server's explanation.
        message: String,
    },
    /// A server error (5xx) that outlived the retries.
    #[error("{what}: the server failed ({status}) after {attempts} attempt(s): {message}")]
    ServerFailed {
        /// What was being done.
        what: String,
        /// The HTTP status.
        status: u16,
        /// How many times it was tried.
        attempts: u32,
        /// The server's explanation.
        message: String,
    },
    /// The network failed (connection refused or reset, timeout) on every
    /// attempt.
    #[error("{what}: the network failed after {attempts} attempt(s): {source}")]
    Network {
        /// What was being done.
        what: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        #[source]
        source: reqwest::Error,
    },
    /// The request's body was sent and no answer came in time, on every
    /// attempt.
    #[error(
        "{what}: no answer within {seconds} s of sending the bytes, after {attempts} attempt(s) \
         (a longer --answer-timeout helps a slow store)"
    )]
    NoAnswer {
        /// What was being done.
        what: String,
        /// How many times it was tried.
        attempts: u32,
        /// The limit, in seconds.
        seconds: u64,
    },
    /// The server answered with something this client cannot use.
    #[error("{what}: unexpected answer from the server: {message}")]
    BadAnswer {
        /// What was being done.
        what: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// Reading the file (or writing the state file) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file changed while it was being uploaded.
    #[error("{}: the file changed during the upload (size or modification time); run the command again to upload the new contents", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
}

impl UploadError {
    /// The process exit code this failure asks for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. } => EXIT_REFUSED,
            _ => EXIT_FAILED,
        }
    }

    /// Whether the work done so far stays resumable (the state file is
    /// kept): always but for a changed file, whose upload is aborted. A
    /// refusal does not mean the stored parts are lost; the next run asks
    /// the server and starts over only if it forgot the upload.
    pub fn keeps_state(&self) -> bool {
        !matches!(self, Self::FileChanged { .. })
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed answer while doing `what`.
    pub fn bad_answer(what: &str, message: impl Into<String>) -> Self {
        Self::BadAnswer {
            what: what.to_owned(),
            message: message.into(),
        }
    }
}

/// The `(code, message)` of an error body: the API's JSON
/// `{"error": {"code", "message"}}`, an S3 XML `<Error>`, or plain text.
pub fn describe_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(err) = v.get("error")
    {
        let code = err.get("code").and_then(|c| c.as_str()).map(str::to_owned);
        let message = err.get("message").and_then(|m| m.as_str()).unwrap_or_default();
        return (code, message.to_owned());
    }
    let text = String::from_utf8_lossy(body);
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].to_owned())
    };
    if text.trim_start().starts_with("<?xml") || text.contains("<Error>") {
        return (tag("Code"), tag("Message").unwrap_or_default());
    }
    let trimmed: String = text.trim().chars().take(500).collect();
    (None, trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_api_s3_and_plain_errors() {
        let api = br#"{"error":{"code":"unauthorized","message":"bad grant"}}"#;
        assert_eq!(
            describe_body(api),
            (Some("unauthorized".into()), "bad grant".into())
        );
        let s3 = b"<?xml version=\"1.0\"?><Error><Code>BadDigest</Code><Message>no match</Message></Error>";
        assert_eq!(describe_body(s3), (Some("BadDigest".into()), "no match".into()));
        assert_eq!(
            describe_body(b" no such upload\n"),
            (None, "no such upload".into())
        );
    }

    #[test]
    fn refusals_exit_3_and_keep_state() {
        let e = UploadError::Refused {
            what: "creating".into(),
            status: 401,
            code: Some("unauthorized".into()),
            message: "expired".into(),
        };
        assert_eq!(e.exit_code(), EXIT_REFUSED);
        // A refused request (a throttled or skewed part PUT, a tus 409
        // that outlived the retries) says nothing about the parts stored:
        // the next run asks the server and starts over only if it forgot.
        assert!(e.keeps_state());
        assert!(!UploadError::FileChanged { path: "f".into() }.keeps_state());
        assert_eq!(
            e.to_string(),
            "creating: the server refused it (401 unauthorized): expired"
        );
    }
}
