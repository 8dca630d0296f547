//! Runs boto3 in a `python3` subprocess with fixed credentials, region,
//! endpoint and a frozen clock, and returns what it generated as JSON.
//!
//! botocore reads the time through `get_current_datetime`, imported into
//! both `botocore.auth` (signing) and `botocore.signers` (POST policy
//! expiration); both are patched, and the CRT signer (which reads its own
//! clock) is disabled. Checksums are only computed when
//! required, so presigned URLs carry none.

use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};
use time::OffsetDateTime;
use time::macros::datetime;

pub const ACCESS_KEY: &str = "AKIDCHUTETEST";
pub const SECRET_KEY: &str = "chute/secret+key=EXAMPLE";
pub const REGION: &str = "eu-west-3";
pub const ENDPOINT: &str = "http://127.0.0.1:9000";
pub const NOW: OffsetDateTime = datetime!(2024-05-01 12:30:45 UTC);

const SCRIPT: &str = r#"
import datetime, json, os, sys
os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"] = "WHEN_REQUIRED"
# With awscrt installed (the test venv has it for CRC32C), botocore signs
# through the CRT, which reads its own clock; the Python signer is the one
# whose clock we can freeze.
os.environ["BOTO_DISABLE_CRT"] = "true"
try:
    import boto3, botocore.auth, botocore.signers
    from botocore.config import Config
except ImportError as e:
    sys.exit("boto3 is not installed: %s" % e)
spec = json.load(sys.stdin)
fixed = datetime.datetime(*spec["now"])
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: fixed
botocore.signers.get_current_datetime = lambda remove_tzinfo=True: fixed
client = boto3.client(
    "s3",
    aws_access_key_id=spec["access_key"],
    aws_secret_access_key=spec["secret_key"],
    region_name=spec["region"],
    endpoint_url=spec["endpoint"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                  request_checksum_calculation="when_required"),
)
out = []
for req in spec["requests"]:
    if req["kind"] == "url":
        out.append(client.generate_presigned_url(req["method"], Params=req["params"], ExpiresIn=req["expires"]))
    else:
        post = client.generate_presigned_post(
            req["bucket"], req["key"], Fields=dict(req["fields"]),
            Conditions=req["conditions"], ExpiresIn=req["expires"])
        out.append({"url": post["url"], "fields": list(post["fields"].items())})
json.dump(out, sys.stdout)
"#;

/// Runs `requests` through boto3; panics with instructions when it cannot.
pub fn run(requests: Vec<Value>) -> Vec<Value> {
    let spec = json!({
        "now": [NOW.year(), u8::from(NOW.month()), NOW.day(), NOW.hour(), NOW.minute(), NOW.second()],
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "region": REGION,
        "endpoint": ENDPOINT,
        "requests": requests,
    });
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): these tests need python3 with boto3; run the project's test script `scripts/test`, which installs boto3 with pip")
        });
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(spec.to_string().as_bytes())
        .expect("write the request spec to python3");
    let output = child.wait_with_output().expect("wait for python3");
    assert!(
        output.status.success(),
        "boto3 helper failed: {}\nthese tests need python3 with boto3; run the project's test script `scripts/test`, which installs boto3 with pip",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("boto3 helper prints JSON")
}
