//! What a finished upload prints: a line with the key and the receipt for
//! people, the receipt alone with `--quiet`, or one JSON object with
//! `--json` for scripts.

use super::UploadArgs;
use super::api::Completed;
use super::progress::Progress;
use std::path::Path;

/// A finished upload, as printed.
#[derive(Debug)]
pub struct Outcome {
    upload_id: Option<String>,
    method: &'static str,
    receipt: Option<String>,
    object: serde_json::Value,
    size: u64,
    bytes_sent: u64,
    resumed: bool,
    verified_with: Option<String>,
    tus_url: Option<String>,
}

impl Outcome {
    pub fn new(
        id: &str,
        method: &'static str,
        done: Completed,
        bytes_sent: u64,
        resumed: bool,
        checksum: Option<&str>,
    ) -> Self {
        let size = done
            .object
            .get("size")
            .and_then(|s| s.as_u64())
            .unwrap_or_default();
        Self {
            upload_id: Some(id.to_owned()),
            method,
            receipt: Some(done.receipt),
            object: done.object,
            size,
            bytes_sent,
            resumed,
            verified_with: checksum.map(|c| match method {
                "multipart" => format!("{c} of each part"),
                _ => c.to_owned(),
            }),
            tus_url: None,
        }
    }

    pub fn from_tus(
        url: &str,
        receipt: Option<String>,
        size: u64,
        bytes_sent: u64,
        resumed: bool,
        checksum: Option<chute_core::ChecksumAlgorithm>,
    ) -> Self {
        let object = receipt
            .as_deref()
            .and_then(jwt_claims)
            .unwrap_or(serde_json::Value::Null);
        Self {
            upload_id: None,
            method: "tus",
            receipt,
            object,
            size,
            bytes_sent,
            resumed,
            verified_with: checksum.map(|a| format!("{} of each PATCH", a.as_str().to_ascii_lowercase())),
            tus_url: Some(url.to_owned()),
        }
    }

    fn field(&self, name: &str) -> serde_json::Value {
        self.object.get(name).cloned().unwrap_or(serde_json::Value::Null)
    }

    fn json(&self, path: &Path, seconds: f64) -> serde_json::Value {
        serde_json::json!({
            "file": path.display().to_string(),
            "key": self.field("key"),
            "bucket": self.field("bucket"),
            "size": self.size,
            "type": self.field("type"),
            "etag": self.field("etag"),
            "checksum": self.field("checksum"),
            "verified_with": self.verified_with,
            "receipt": self.receipt,
            "upload_id": self.upload_id,
            "tus_url": self.tus_url,
            "method": self.method,
            "bytes_sent": self.bytes_sent,
            "resumed": self.resumed,
            "seconds": (seconds * 1000.0).round() / 1000.0,
        })
    }
}

/// The claims of a JWT, read without verifying it (for display only: the
/// app verifies receipts; state files use a grant's to name it).
pub(super) fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

pub fn print_outcome(args: &UploadArgs, path: &Path, outcome: &Outcome, seconds: f64, progress: &Progress) {
    let line = if args.json {
        outcome.json(path, seconds).to_string()
    } else if args.quiet {
        outcome.receipt.clone().unwrap_or_default()
    } else {
        let key = outcome.field("key");
        let key = key.as_str().unwrap_or("(no receipt: the tus server sent none)");
        let resumed = if outcome.resumed { ", resumed" } else { "" };
        let mut s = format!(
            "{}: {key} ({} bytes, {} sent{resumed})",
            path.display(),
            outcome.size,
            outcome.bytes_sent
        );
        if let Some(r) = &outcome.receipt {
            s.push_str(&format!("\n  receipt: {r}"));
        }
        s
    };
    progress.suspend(|| println!("{line}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_claims_for_display() {
        // {"key":"tmp/a/b.bin","size":3}
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJrZXkiOiJ0bXAvYS9iLmJpbiIsInNpemUiOjN9.sig";
        let claims = jwt_claims(token).unwrap();
        assert_eq!(claims["key"], "tmp/a/b.bin");
        assert_eq!(claims["size"], 3);
        assert!(jwt_claims("not a jwt").is_none());
    }
}
