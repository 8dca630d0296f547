"""The `chute check` and `chute gc` commands, run as a user runs them.

The logic is unit-tested in Rust (check.rs, tests/it/reaper.rs); these
check what only the binary shows: one line per problem on stdout, the
exit status, and that `gc` refuses a store a running server holds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import BIN, ChuteServer


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    clean.update(env, RUST_BACKTRACE="0")
    return subprocess.run([str(BIN), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60)


def test_check_validates_and_deploy_lists_each_problem(tmp_path):
    ok = run("check", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ok: the settings are valid (development mode)"

    deploy = run("check", "--deploy", cwd=tmp_path)
    assert deploy.returncode == 1, deploy
    settings = [line.split(":", 1)[0] for line in deploy.stdout.splitlines()]
    assert settings == ["mode", "store", "s3_access_key", "grant_secret", "open_grants"], deploy.stdout
    assert "5 setting(s) unfit for production" in deploy.stderr

    bad = run("check", cwd=tmp_path, CHUTE_MODE="staging")
    assert bad.returncode != 0 and "CHUTE_MODE" in bad.stderr, bad


def test_check_deploy_on_a_production_config(tmp_path):
    config = tmp_path / "chute.toml"
    config.write_text(
        'mode = "production"\n'
        's3_access_key = "AKIA7QNRJX2M4Z8WKD5T"\n'
        's3_secret_key = "c0Vq1fY9pX3nL7tR2kW8sJ5mB4hD6gZ0aE1uI9oQ"\n'
        'grant_secret = "k1:3d8f0b6c2a9e4f71b5c8d0e2a4f6b8c1"\n'
        'public_url = "http://uploads.example.com"\n'
        'allowed_origins = ["*"]\n'
        'grant_webhook_url = "https://app.example.com/grant"\n'
    )
    out = run("check", "--deploy", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 1
    settings = [line.split(":", 1)[0] for line in out.stdout.splitlines()]
    # The embedded store stays a problem until an S3 backend is configured.
    assert [s for s in settings if s != "store"] == ["allowed_origins", "public_url"], out.stdout


def test_gc_refuses_a_served_store_then_reports(tmp_path):
    server = ChuteServer(tmp_path)
    server.start()
    try:
        env = {"CHUTE_S3_LISTEN": f"127.0.0.1:{server.s3_port}"}
        refused = run("gc", "--data-dir", str(server.data_dir), cwd=tmp_path, **env)
        assert refused.returncode != 0
        assert "s3_listen" in refused.stderr and "in-flight" in refused.stderr, refused.stderr
    finally:
        assert server.stop() == 0

    dry = run("gc", "--dry-run", "--data-dir", str(server.data_dir), cwd=tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would remove 0 stale multipart upload(s)"), dry.stdout
    done = run("gc", "--data-dir", str(server.data_dir), cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed 0 stale multipart upload(s)"), done.stdout

    missing = run("gc", "--data-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode != 0 and "no store" in missing.stderr, missing.stderr


def test_gc_installs_the_lifecycle_rule_on_an_s3_backend(tmp_path, garage):
    e = garage.env
    env = dict(
        CHUTE_STORE="s3", CHUTE_S3_ENDPOINT=e["CHUTE_TEST_S3_ENDPOINT"], CHUTE_REGION=e["CHUTE_TEST_S3_REGION"],
        CHUTE_BUCKET=e["CHUTE_TEST_S3_BUCKET"], CHUTE_S3_ACCESS_KEY=e["CHUTE_TEST_S3_ACCESS_KEY"],
        CHUTE_S3_SECRET_KEY=e["CHUTE_TEST_S3_SECRET_KEY"], CHUTE_DATA_DIR=str(tmp_path / "data"),
    )
    first = run("gc", "--install-lifecycle-rule", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    assert "installed the bucket lifecycle rule" in first.stdout
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=e["CHUTE_TEST_S3_ENDPOINT"], region_name=e["CHUTE_TEST_S3_REGION"],
                      aws_access_key_id=e["CHUTE_TEST_S3_ACCESS_KEY"],
                      aws_secret_access_key=e["CHUTE_TEST_S3_SECRET_KEY"],
                      config=Config(s3={"addressing_style": "path"}))
    rules = s3.get_bucket_lifecycle_configuration(Bucket=e["CHUTE_TEST_S3_BUCKET"])["Rules"]
    (rule,) = [r for r in rules if r["ID"] == "chute-expire-tmp"]
    assert rule["Filter"]["Prefix"] == "tmp/" and rule["Expiration"]["Days"] == 3
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 2
    # A second run keeps what is there rather than overwriting rules.
    again = run("gc", "--install-lifecycle-rule", cwd=tmp_path, **env)
    assert again.returncode == 0 and "left it unchanged" in again.stdout, again.stdout + again.stderr
    # The embedded store has no such rule to install.
    embedded = run("gc", "--install-lifecycle-rule", "--data-dir", str(tmp_path / "d2"), cwd=tmp_path)
    assert embedded.returncode != 0 and "S3 backends" in embedded.stderr
