"""The AWS CLI (v1, from PyPI) against the embedded endpoint: multipart
`s3 cp` both ways and `s3 sync` both ways, configured only through
environment variables and a throwaway AWS_CONFIG_FILE."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MiB = 1024 * 1024


def aws_bin() -> str:
    beside = Path(sys.executable).parent / "aws"
    found = str(beside) if beside.exists() else shutil.which("aws")
    if not found:
        pytest.fail("aws CLI not installed (scripts/test installs awscli into the venv)")
    return found


@pytest.fixture
def aws(chute, tmp_path):
    cfg = tmp_path / "aws-config"
    cfg.write_text(
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
        "    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n    max_concurrent_requests = 4\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=chute.access_key,
        AWS_SECRET_ACCESS_KEY=chute.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(cfg),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )

    def run(*args: str) -> str:
        cmd = [aws_bin(), "--endpoint-url", chute.endpoint, *args]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
        return p.stdout

    return run


def test_cp_40mib_multipart_round_trip(aws, s3, bucket, prefix, tmp_path):
    src = tmp_path / "forty.bin"
    with open(src, "wb") as f:
        block = os.urandom(MiB)
        for i in range(40):
            f.write(bytes([i]) + block[1:])
    aws("s3", "cp", str(src), f"s3://{bucket}/{prefix}forty.bin")
    head = s3.head_object(Bucket=bucket, Key=prefix + "forty.bin")
    assert head["ContentLength"] == 40 * MiB
    assert head["ETag"].endswith('-5"'), head["ETag"]  # 8 MiB parts
    dst = tmp_path / "forty.down"
    aws("s3", "cp", f"s3://{bucket}/{prefix}forty.bin", str(dst))
    assert filecmp.cmp(src, dst, shallow=False)
    out = aws("s3", "ls", f"s3://{bucket}/{prefix}")
    assert "forty.bin" in out and str(40 * MiB) in out


def test_sync_both_ways(aws, s3, bucket, prefix, tmp_path):
    up = tmp_path / "up"
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(300_000), "sub/deeper/c d.txt": b"with space", "empty": b""}
    for rel, data in files.items():
        p = up / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    aws("s3", "sync", str(up), f"s3://{bucket}/{prefix}tree")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    assert keys == sorted(f"{prefix}tree/{k}" for k in files)
    # A second sync uploads nothing.
    assert "upload:" not in aws("s3", "sync", str(up), f"s3://{bucket}/{prefix}tree")
    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{bucket}/{prefix}tree", str(down))
    for rel, data in files.items():
        assert (down / rel).read_bytes() == data, rel
    # Sync with --delete removes what the source lost.
    (up / "a.txt").unlink()
    aws("s3", "sync", "--delete", str(up), f"s3://{bucket}/{prefix}tree")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    assert f"{prefix}tree/a.txt" not in keys and len(keys) == 3
