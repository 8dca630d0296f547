"""Starts the real `chute serve` binary for the Python suites.

`chute` (session) is one server shared by most tests; tests use unique key
prefixes so they never see each other's objects. `fresh_chute` (function)
gives a test its own server and data dir, for crash tests that SIGKILL and
restart it. The binary is `$CHUTE_BIN` or `target/debug/chute` (scripts/test
builds it first); a missing binary or a server that never answers /healthz
fails loudly with the server's output.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import jwt
import pytest
import requests
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CHUTE_BIN", REPO / "target" / "debug" / "chute"))
ACCESS_KEY = "chutetestaccess"
SECRET_KEY = "chute-test-secret-key-0123456789abcdef"
# Grants in the suites are minted with this key (kid "test1").
GRANT_KID = "test1"
GRANT_SECRET = "grant-secret-for-tests-0123456789abcdef"
BUCKET = "uploads"
STARTUP_TIMEOUT = 60
MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grant(*, key: tuple[str, str] = (GRANT_KID, GRANT_SECRET), ttl: int = 600, **claims) -> str:
    """An upload grant signed with `key` (kid, secret; default the test
    servers' GRANT_KID and GRANT_SECRET), valid `ttl` seconds, a fresh jti;
    `claims` add to or replace those."""
    body = {"aud": "chute", "exp": int(time.time()) + ttl, "jti": uuid.uuid4().hex}
    body.update(claims)
    return jwt.encode(body, key[1], algorithm="HS256", headers={"kid": key[0]})


def download(srv: "ChuteServer", key: str) -> bytes:
    """The whole object `key` from srv's bucket, in memory."""
    return srv.client().get_object(Bucket=srv.bucket, Key=key)["Body"].read()


def stored_sha256(srv: "ChuteServer", key: str) -> tuple[int, str]:
    """Size and SHA-256 of the object `key`, streamed down in 1 MiB pieces
    (for objects too big for `download`)."""
    return object_sha256(srv.client(), srv.bucket, key)


def object_sha256(s3, bucket: str, key: str) -> tuple[int, str]:
    """Size and SHA-256 of `bucket`/`key` read with the client `s3`."""
    obj = s3.get_object(Bucket=bucket, Key=key)
    digest, size = hashlib.sha256(), 0
    for chunk in obj["Body"].iter_chunks(MiB):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def bucket_keys(s3, bucket: str) -> set[str]:
    """Every object key in `bucket`."""
    out = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update(o["Key"] for o in page.get("Contents", []))
    return out


def open_uploads(s3, bucket: str) -> set[tuple[str, str]]:
    """(key, upload id) of every multipart upload open in `bucket`."""
    return {(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def api(base, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
    """A call to the JSON API of `base` (a URL, or anything with an
    `app_url`), with `token` as the bearer; a 120 s hang guard unless
    `timeout` says otherwise."""
    url = getattr(base, "app_url", base)
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kw.setdefault("timeout", 120)
    return requests.request(method, f"{url}{path}", headers=headers, **kw)


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def tus_metadata(filename="data.bin", filetype="application/octet-stream", **extra) -> str:
    """An Upload-Metadata header: filename, filetype and `extra`, base64."""
    pairs = {"filename": filename, "filetype": filetype, **extra}
    return ",".join(f"{k} {b64(v)}" for k, v in pairs.items())


def tus_create(srv, length: int, data: bytes | None = None, timeout: float = 60) -> requests.Response:
    """A tus creation on `srv` under a fresh grant, with `data` as its
    first bytes (creation-with-upload) when given."""
    h = {**TUS, "Authorization": f"Bearer {grant()}", "Upload-Length": str(length),
         "Upload-Metadata": "filename ZGF0YS5iaW4="}
    if data is not None:
        h["Content-Type"] = OCTETS
    return requests.post(f"{srv.app_url}/files/", headers=h, data=data, timeout=timeout)


def tus_patch(url: str, data: bytes, at: int, timeout: float = 60) -> requests.Response:
    return requests.patch(url, headers={**TUS, "Content-Type": OCTETS, "Upload-Offset": str(at)}, data=data,
                          timeout=timeout)


def form_body(boundary: str, name: str, data: bytes) -> bytes:
    """A multipart/form-data body with one file field `f` named `name`."""
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


class ChuteServer:
    """One `chute serve` process on free ports over `data_dir`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.app_port = 0
        self.s3_port = 0
        # Extra CHUTE_* settings (for example the S3 backend's).
        self.extra_env: dict[str, str] = {}
        # The store's S3 endpoint when it is not the embedded one.
        self.store_endpoint: str | None = None
        self.region = "us-east-1"
        self.bucket = BUCKET

    @property
    def endpoint(self) -> str:
        return self.store_endpoint or f"http://127.0.0.1:{self.s3_port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def _log_paths(self) -> tuple[Path, Path]:
        return self.workdir / f"stdout.{self.starts}.txt", self.workdir / f"stderr.{self.starts}.txt"

    def output(self) -> str:
        out, err = self._log_paths()
        text = ""
        for p in (out, err):
            if p.exists():
                text += f"--- {p.name} ---\n" + p.read_text(errors="replace")[-8000:] + "\n"
        return text

    def start(self) -> None:
        if not BIN.exists():
            pytest.fail(f"chute binary not found at {BIN}; run `cargo build -p chute` (scripts/test does)")
        self.starts += 1
        # Fresh ports on every start: a killed server's port may linger.
        self.app_port, self.s3_port = free_port(), free_port()
        while self.s3_port == self.app_port:
            self.s3_port = free_port()
        env = dict(os.environ)
        env.update(
            CHUTE_S3_ACCESS_KEY=self.access_key,
            CHUTE_S3_SECRET_KEY=self.secret_key,
            CHUTE_GRANT_SECRET=f"{GRANT_KID}:{GRANT_SECRET}",
            RUST_BACKTRACE="1",
        )
        env.update(self.extra_env)
        env.setdefault("RUST_LOG", "info")
        out, err = self._log_paths()
        self.proc = subprocess.Popen(
            [
                str(BIN),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.app_port}",
                "--s3-listen",
                f"127.0.0.1:{self.s3_port}",
            ],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(out, "wb"),
            stderr=open(err, "wb"),
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chute serve exited with {self.proc.returncode} before /healthz answered\n{self.output()}")
            try:
                r = requests.get(f"{self.app_url}/healthz", timeout=2)
                if r.status_code == 200:
                    self._wait_s3_port()
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"chute serve did not answer /healthz within {STARTUP_TIMEOUT}s (last: {last})\n{self.output()}")

    def _wait_s3_port(self) -> None:
        if self.store_endpoint:
            return
        # /healthz promises both listeners are up; check the S3 one anyway.
        with socket.create_connection(("127.0.0.1", self.s3_port), timeout=5):
            pass

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait (graceful shutdown); SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"chute serve ignored SIGTERM for {timeout}s\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart_after_crash(self) -> None:
        self.kill()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **cfg):
        return make_client(self, **cfg)


def make_client(server: ChuteServer, **cfg):
    conf = dict(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=120)
    conf.update(cfg)
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(**conf),
    )


@pytest.fixture(scope="session")
def chute(tmp_path_factory):
    srv = ChuteServer(tmp_path_factory.mktemp("chute"))
    srv.start()
    yield srv
    code = srv.stop()
    # Graceful shutdown must exit cleanly.
    assert code == 0, f"chute serve exited with {code} on SIGTERM\n{srv.output()}"


@pytest.fixture
def fresh_chute():
    work = Path(tempfile.mkdtemp(prefix="chute-crash-"))
    srv = ChuteServer(work)
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def _server_still_alive(request):
    """A test that crashed the shared server fails itself, not the next one."""
    yield
    if "chute" in request.fixturenames:
        srv = request.getfixturevalue("chute")
        if not srv.alive():
            out = srv.output()
            srv.start()
            pytest.fail(f"chute serve died during this test\n{out}")


@pytest.fixture
def s3(chute):
    return make_client(chute)


@pytest.fixture
def bucket() -> str:
    return BUCKET


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}/"


class Garage:
    """A single-node Garage started by `scripts/garage start` (built and
    cached under ~/.cache/chute by `scripts/garage build`)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        out = subprocess.run([str(REPO / "scripts" / "garage"), "start", str(workdir)],
                             capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            pytest.fail(f"scripts/garage start failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        self.env = {}
        for line in out.stdout.splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v.strip().strip("'\"")
        for k in ("CHUTE_TEST_S3_ENDPOINT", "CHUTE_TEST_S3_REGION", "CHUTE_TEST_S3_BUCKET",
                  "CHUTE_TEST_S3_ACCESS_KEY", "CHUTE_TEST_S3_SECRET_KEY"):
            if k not in self.env:
                pytest.fail(f"scripts/garage start printed no {k}:\n{out.stdout}")

    def restart(self) -> None:
        """The same Garage again (ports, keys, data) after it was stopped
        or killed: `scripts/garage run`, which waits until it answers."""
        out = subprocess.run([str(REPO / "scripts" / "garage"), "run", str(self.workdir)],
                             capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            pytest.fail(f"scripts/garage run failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts" / "garage"), "stop", str(self.workdir)], timeout=60)


@pytest.fixture(scope="session")
def garage(tmp_path_factory):
    g = Garage(tmp_path_factory.mktemp("garage"))
    yield g
    g.stop()


def use_garage(srv: ChuteServer, garage: Garage, extra_env: dict[str, str] | None = None) -> ChuteServer:
    """Points `srv` (not yet started) at `garage` as its store: `store =
    "s3"`, path-style, the test bucket and key; `extra_env` adds settings."""
    e = garage.env
    srv.access_key, srv.secret_key = e["CHUTE_TEST_S3_ACCESS_KEY"], e["CHUTE_TEST_S3_SECRET_KEY"]
    srv.store_endpoint = e["CHUTE_TEST_S3_ENDPOINT"]
    srv.region = e["CHUTE_TEST_S3_REGION"]
    srv.bucket = e["CHUTE_TEST_S3_BUCKET"]
    srv.extra_env = {
        "CHUTE_STORE": "s3",
        "CHUTE_S3_ENDPOINT": srv.store_endpoint,
        "CHUTE_S3_PATH_STYLE": "true",
        "CHUTE_REGION": srv.region,
        "CHUTE_BUCKET": srv.bucket,
        **(extra_env or {}),
    }
    return srv


@pytest.fixture(scope="session")
def chute_on_garage(tmp_path_factory, garage):
    """`chute serve` with Garage as its store (no embedded S3 listener use)."""
    srv = use_garage(ChuteServer(tmp_path_factory.mktemp("chute-garage")), garage)
    srv.start()
    # No CORS set up here: chute serve installs the bucket's rule itself.
    yield srv
    code = srv.stop()
    assert code == 0, f"chute serve exited with {code} on SIGTERM\n{srv.output()}"


@pytest.fixture(params=["embedded", "garage"])
def crashable(request):
    """A server of its own on the embedded store or on the session's
    Garage, for tests that SIGKILL and restart it; killed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="chute-crash-"))
    srv = ChuteServer(work)
    if request.param == "garage":
        use_garage(srv, request.getfixturevalue("garage"))
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(params=["embedded", "garage"])
def backend(request):
    """The lifecycle suites run once per store backend."""
    return request.getfixturevalue("chute" if request.param == "embedded" else "chute_on_garage")


@pytest.fixture(scope="session")
def cluster():
    """deploy/local-cluster started once per session (3 Garage nodes, 3
    instances of $CHUTE_BIN, nginx), stopped at the end; tests that stop a
    part of it start it again. Its directory is its own (not pytest's
    tmp_path, which a cleanup of old pytest runs may remove under it) and
    loses its stored data once the cluster stopped (the logs stay, for
    a failure's post-mortem)."""
    from clusterutil import Cluster

    if not BIN.exists():
        pytest.fail(f"chute binary not found at {BIN}; run `cargo build -p chute` (scripts/test does)")
    work = Path(tempfile.mkdtemp(prefix="chute-cluster-"))
    c = Cluster(work, BIN)
    try:
        c.start()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        subprocess.run([str(REPO / "deploy" / "local-cluster"), "--base-port", str(c.base), "stop", str(work)],
                       timeout=120, check=False)
        pytest.fail(f"deploy/local-cluster start failed: {e}")
    yield c
    c.stop()
    for data in [*work.glob("garage-*/data"), *work.glob("garage-*/meta"), *work.glob("chute-*/data")]:
        shutil.rmtree(data, ignore_errors=True)
