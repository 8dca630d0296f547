"""The `chute check`, `chute gc` and `chute upload` commands, run as a user
runs them.

The logic is unit-tested in Rust (check.rs, tests/it/reaper.rs,
crates/chute/src/upload/); these check what only the binary shows: one
line per problem on stdout, the exit status, that `gc` refuses a store a
running server holds, and `chute upload` end to end against the embedded
store and Garage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import BIN, ChuteServer, grant, stored_sha256


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


# ---------------------------------------------------------------- chute upload
#
# The real binary against the embedded store and Garage (`backend`): sizes
# 0 B, 1 B and 100 MiB checked by a streamed SHA-256 of the stored object,
# several files in one run, --json, --tus, SIGKILL and SIGINT mid-upload
# then a resume that sends fewer bytes, a server that forgot the upload,
# another user's grant (never resumes), a renamed file, an unwritable
# state directory, pipes and FIFOs, refused grants, and small fake tus
# servers (no real one misbehaves on demand) whose offset goes back, that
# hang after a PATCH, or that authorise every request.

MiB = 1024 * 1024


def make_file(path: Path, size: int) -> tuple[Path, str]:
    """`size` random bytes at `path` (each MiB distinct) and their SHA-256."""
    digest = hashlib.sha256()
    block = bytearray(os.urandom(min(size, MiB)))
    with open(path, "wb") as f:
        for i, off in enumerate(range(0, size, MiB)):
            chunk = block[: min(MiB, size - off)]
            chunk[:8] = i.to_bytes(8, "big")[: len(chunk)]
            f.write(chunk)
            digest.update(chunk)
    return path, digest.hexdigest()


def upload_argv(srv: ChuteServer, state: Path, *args: str) -> list[str]:
    return [str(BIN), "upload", "--to", srv.app_url, "--state-dir", str(state), *args]


def upload(srv: ChuteServer, state: Path, *args: str, timeout: float = 170) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    return subprocess.run(upload_argv(srv, state, *args), env=clean, capture_output=True, text=True, timeout=timeout)


def receipts(out: subprocess.CompletedProcess) -> list[dict]:
    assert out.returncode == 0, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines()]


def verified(srv: ChuteServer, receipt: str) -> dict:
    r = requests.post(f"{srv.app_url}/api/receipts/verify", json={"receipt": receipt}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["receipt"]


def test_upload_0_1_and_100_mib_in_one_run(backend, tmp_path):
    files = [make_file(tmp_path / "empty.bin", 0), make_file(tmp_path / "one.bin", 1),
             make_file(tmp_path / "hundred.bin", 100 * MiB)]
    out = upload(backend, tmp_path / "state", "--json", "--grant", grant(), *[str(p) for p, _ in files])
    lines = receipts(out)
    assert [line["file"] for line in lines] == [str(p) for p, _ in files]
    for (path, sha), line in zip(files, lines):
        size = path.stat().st_size
        assert (line["size"], line["bytes_sent"], line["resumed"]) == (size, size, False), line
        assert line["key"].startswith("tmp/") and line["key"].endswith("/" + path.name), line
        assert stored_sha256(backend, line["key"]) == (size, sha)
        claims = verified(backend, line["receipt"])
        assert (claims["key"], claims["size"]) == (line["key"], size)
    small, big = lines[1], lines[2]
    # One PUT with the whole file's SHA-256, bound into the signature and
    # stated in the receipt; multipart with each part's CRC32C.
    assert (small["method"], small["verified_with"]) == ("put", "sha256")
    assert small["checksum"] == "sha256:" + base64.b64encode(bytes.fromhex(files[1][1])).decode()
    assert (big["method"], big["verified_with"]) == ("multipart", "crc32c of each part")
    assert not list((tmp_path / "state").glob("*.json")), "finished uploads leave no state"


def test_upload_prints_receipts_for_people(chute, tmp_path):
    path, _ = make_file(tmp_path / "note.txt", 10)
    out = upload(chute, tmp_path / "state", str(path))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first.startswith(f"{path}: tmp/") and "(10 bytes, 10 sent)" in first, first
    assert second.startswith("  receipt: ey"), second
    # stderr is not a terminal: no progress bars.
    assert out.stderr == "", out.stderr
    quiet = upload(chute, tmp_path / "state", "--quiet", str(path))
    assert quiet.returncode == 0 and quiet.stdout.count(".") == 2 and quiet.stdout.startswith("ey"), quiet


def test_tus_upload(backend, tmp_path):
    files = [make_file(tmp_path / "t0.bin", 0), make_file(tmp_path / "t1.bin", 1),
             make_file(tmp_path / "t20.bin", 20 * MiB + 3)]
    # The endpoint spelled out (`--tus` alone means <URL>/files/, as the resume tests use it).
    # With a grant, sent on every request to the endpoint (Chute checks it on creation).
    out = upload(backend, tmp_path / "state", "--json", f"--tus={backend.app_url}/files/", "--chunk-size", "8M",
                 "--grant", grant(), *[str(p) for p, _ in files])
    for (path, sha), line in zip(files, receipts(out)):
        size = path.stat().st_size
        assert (line["method"], line["size"], line["bytes_sent"], line["resumed"]) == ("tus", size, size, False)
        assert line["tus_url"].startswith(f"{backend.app_url}/files/"), line
        assert line["verified_with"] == "crc32 of each PATCH"
        assert stored_sha256(backend, line["key"]) == (size, sha)
        assert verified(backend, line["receipt"])["size"] == size


def wait_for_progress(proc: subprocess.Popen, state: Path, timeout: float = 60) -> dict:
    """The state file once it records stored bytes (the upload is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chute upload ended early: {proc.communicate()}"
        for f in state.glob("*.json"):
            try:
                saved = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if saved.get("bytes_done", 0) > 0:
                return saved
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no part was recorded within the timeout")


def protocol_args(protocol: str) -> list[str]:
    """Small parts or chunks, so an interruption falls mid-upload."""
    return ["--tus", "--chunk-size", "5M"] if protocol == "tus" else ["--part-size", "5M"]


def killed_mid_upload(srv: ChuteServer, state: Path, *args: str) -> dict:
    """Runs `chute upload --json --limit-rate 16M ARGS`, SIGKILLs it once a
    part is recorded, and returns the state it left."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    proc = subprocess.Popen(upload_argv(srv, state, "--json", "--limit-rate", "16M", *args),
                            env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saved = wait_for_progress(proc, state)
    proc.kill()
    proc.communicate(timeout=30)
    return saved


@pytest.mark.parametrize("how", ["sigkill", "sigint"])
@pytest.mark.parametrize("protocol", ["api", "tus"])
def test_interrupted_upload_resumes_with_fewer_bytes(backend, tmp_path, how, protocol):
    path, sha = make_file(tmp_path / f"resume-{protocol}.bin", 48 * MiB)
    state = tmp_path / "state"
    extra = protocol_args(protocol)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    proc = subprocess.Popen(upload_argv(backend, state, "--json", "--limit-rate", "16M", *extra, str(path)),
                            env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved = wait_for_progress(proc, state)
    assert saved["size"] == 48 * MiB and saved["protocol"] == ("tus" if protocol == "tus" else "chute")
    if how == "sigkill":
        proc.kill()
        proc.communicate(timeout=30)
    else:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "interrupted" in err and "run the same command again to resume" in err, err
        assert out == ""
    assert list(state.glob("*.json")), "the state file survives the interruption"

    [line] = receipts(upload(backend, state, "--json", *extra, str(path)))
    assert line["resumed"] is True, line
    assert 0 < line["bytes_sent"] < 48 * MiB, line
    assert stored_sha256(backend, line["key"]) == (48 * MiB, sha)
    assert not list(state.glob("*.json"))


@pytest.mark.parametrize("protocol", ["api", "tus"])
def test_a_renamed_file_resumes_and_says_under_which_name(chute, tmp_path, protocol):
    path, sha = make_file(tmp_path / "before.bin", 24 * MiB)
    state = tmp_path / "state"
    extra = protocol_args(protocol)
    killed_mid_upload(chute, state, *extra, str(path))
    renamed = path.rename(tmp_path / "after.bin")
    out = upload(chute, state, "--json", *extra, str(renamed))
    [line] = receipts(out)
    assert line["resumed"] is True and line["key"].endswith("/before.bin"), line
    assert f"{renamed}: resuming the upload begun as {path}" in out.stderr, out.stderr
    assert stored_sha256(chute, line["key"]) == (24 * MiB, sha)


@pytest.mark.parametrize("protocol", ["api", "tus"])
def test_a_forgotten_upload_starts_over(backend, tmp_path, protocol):
    path, sha = make_file(tmp_path / "forgotten.bin", 24 * MiB)
    state = tmp_path / "state"
    extra = protocol_args(protocol)
    saved = killed_mid_upload(backend, state, *extra, str(path))
    # The upload is removed behind the client's back (as expiry would).
    if protocol == "tus":
        r = requests.delete(saved["tus_url"], headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    else:
        r = requests.delete(f"{backend.app_url}/api/uploads/{saved['upload_id']}",
                            headers={"Authorization": f"Bearer {saved['token']}"}, timeout=30)
    assert r.status_code == 204, r.text
    out = upload(backend, state, "--json", *extra, str(path))
    [line] = receipts(out)
    assert "no longer has" in out.stderr and "starting over" in out.stderr, out.stderr
    assert (line["resumed"], line["bytes_sent"]) == (False, 24 * MiB), line
    if protocol == "tus":
        assert line["tus_url"] != saved["tus_url"]
    else:
        assert line["upload_id"] != saved["upload_id"]
    assert stored_sha256(backend, line["key"]) == (24 * MiB, sha)


@pytest.mark.parametrize("protocol", ["api", "tus"])
def test_a_file_changed_mid_upload_is_refused(chute, tmp_path, protocol):
    path, _ = make_file(tmp_path / "growing.bin", 24 * MiB)
    state = tmp_path / "state"
    extra = protocol_args(protocol)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    proc = subprocess.Popen(upload_argv(chute, state, "--json", "--limit-rate", "16M", *extra, str(path)),
                            env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved = wait_for_progress(proc, state)
    with open(path, "ab") as f:
        f.write(b"more")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == "", (out, err)
    assert "the file changed during the upload" in err, err
    assert not list(state.glob("*.json")), "a changed file's upload cannot finish: no state kept"
    # Nor does the server keep its parts until expiry.
    if protocol == "tus":
        assert requests.head(saved["tus_url"], headers={"Tus-Resumable": "1.0.0"}, timeout=30).status_code == 404
    else:
        r = requests.get(f"{chute.app_url}/api/uploads/{saved['upload_id']}",
                         headers={"Authorization": f"Bearer {saved['token']}"}, timeout=30)
        assert r.status_code == 200 and r.json()["state"] == "gone", r.text


def test_another_grant_never_resumes_an_upload(chute, tmp_path):
    """An upload interrupted under one grant is resumed by a reissued grant
    for the same purpose, never continued under another user's grant (its
    object would land under the first grant's key and claims)."""
    path, sha = make_file(tmp_path / "shared.bin", 24 * MiB)
    state = tmp_path / "state"
    extra = ["--json", "--part-size", "5M", str(path)]
    saved = killed_mid_upload(chute, state, "--grant", grant(sub="alice"), "--part-size", "5M", str(path))

    [bob] = receipts(upload(chute, state, "--grant", grant(sub="bob"), *extra))
    assert (bob["resumed"], bob["bytes_sent"]) == (False, 24 * MiB), bob
    assert bob["upload_id"] != saved["upload_id"]
    # Alice's upload is still recorded; a fresh grant of hers resumes it.
    [alice] = receipts(upload(chute, state, "--grant", grant(sub="alice"), *extra))
    assert (alice["resumed"], alice["upload_id"]) == (True, saved["upload_id"]), alice
    assert alice["bytes_sent"] < 24 * MiB
    for line, who in ((bob, "bob"), (alice, "alice")):
        assert verified(chute, line["receipt"])["sub"] == who
        assert stored_sha256(chute, line["key"]) == (24 * MiB, sha)
    assert not list(state.glob("*.json"))


class FakeTus:
    """A tus server (threads, memory). With `rewind`, its store loses what
    it had taken when the second PATCH fails: its HEAD then reports an
    offset behind the client's, as a store that keeps only flushed chunks
    does after a crash. With `token`, every request must carry it as a
    bearer (as @tus/server's onIncomingRequest or a proxy checks it). With
    `hang`, the first PATCH is stored but never answered."""

    def __init__(self, size: int, rewind: bool = False, token: str | None = None, hang: bool = False):
        import http.server
        import threading

        self.data = bytearray()
        self.patches = 0
        self.refused = 0
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status: int, **headers):
                self.send_response(status)
                for k, v in {"Tus-Resumable": "1.0.0", "Content-Length": "0", **headers}.items():
                    self.send_header(k.replace("_", "-"), str(v))
                self.end_headers()

            def parse_request(self):
                if not super().parse_request():
                    return False
                if token and self.command != "OPTIONS" and self.headers.get("Authorization") != f"Bearer {token}":
                    outer.refused += 1
                    self.answer(401)
                    return False
                return True

            def do_OPTIONS(self):
                self.answer(204, Tus_Version="1.0.0")

            def do_POST(self):
                self.answer(201, Location="/files/one")

            def do_HEAD(self):
                self.answer(200, Upload_Offset=len(outer.data), Upload_Length=size)

            def do_PATCH(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if int(self.headers["Upload-Offset"]) != len(outer.data):
                    return self.answer(409)
                outer.patches += 1
                if hang and outer.patches == 1:
                    outer.data += body
                    outer.stop.wait(60)  # no answer (until the test ends)
                    return
                if rewind and outer.patches == 2:
                    del outer.data[:]  # the store lost the first chunk
                    return self.answer(500)
                outer.data += body
                self.answer(204, Upload_Offset=len(outer.data))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/files/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def upload(self, path: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
        """`chute upload --json --tus=THIS --chunk-size 5M ARGS path`, then
        the server stops."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
        try:
            return subprocess.run([str(BIN), "upload", "--json", f"--tus={self.url}", "--chunk-size", "5M",
                                   "--state-dir", str(state), *args, str(path)],
                                  env=clean, capture_output=True, text=True, timeout=30)
        finally:
            self.stop.set()
            self.server.shutdown()


def test_tus_goes_back_to_an_offset_the_server_rewound(tmp_path):
    path, sha = make_file(tmp_path / "rewound.bin", 12 * MiB)
    tus = FakeTus(12 * MiB, rewind=True)
    [line] = receipts(tus.upload(path, tmp_path / "state"))
    assert hashlib.sha256(tus.data).hexdigest() == sha
    # 5 MiB taken, lost, then the whole file again from offset 0.
    assert line["bytes_sent"] == 17 * MiB, line


def test_tus_sends_the_grant_on_every_request_to_its_origin(tmp_path):
    path, sha = make_file(tmp_path / "authed.bin", 12 * MiB)
    tus = FakeTus(12 * MiB, token="s3cret")
    [line] = receipts(tus.upload(path, tmp_path / "state", "--grant", "s3cret"))
    assert (line["bytes_sent"], tus.refused) == (12 * MiB, 0), line
    assert hashlib.sha256(tus.data).hexdigest() == sha


def test_an_unanswered_request_is_retried(tmp_path):
    """A server that took a PATCH's bytes but never answers: after
    --answer-timeout the client asks where it stands and goes on."""
    path, sha = make_file(tmp_path / "unanswered.bin", 12 * MiB)
    tus = FakeTus(12 * MiB, hang=True)
    [line] = receipts(tus.upload(path, tmp_path / "state", "--answer-timeout", "2"))
    assert hashlib.sha256(tus.data).hexdigest() == sha
    assert line["bytes_sent"] == 12 * MiB, line


def test_a_bad_grant_is_a_clear_error(chute, tmp_path):
    path, _ = make_file(tmp_path / "g.bin", 6 * MiB)
    state = tmp_path / "state"
    cases = [("not-a-jwt", "(401 token_malformed)"), (grant(exp=int(time.time()) - 60), "(401 "),
             (grant(max_size=5), "(413 too_large)")]
    for token, status in cases:
        out = upload(chute, state, "--json", "--grant", token, "--part-size", "5M", str(path))
        assert out.returncode == 3, (out.returncode, out.stderr)
        assert out.stdout == ""
        assert out.stderr.startswith(f"chute upload: {path}: creating the upload (POST /api/uploads): the server refused it {status}"), out.stderr
        assert len(out.stderr.splitlines()) == 1, out.stderr
        if status.startswith("(401"):
            assert out.stderr.rstrip().endswith("; check the grant (--grant or CHUTE_GRANT)"), out.stderr
    assert not list(state.glob("*.json"))
    # The grant also comes from CHUTE_GRANT.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    out = subprocess.run(upload_argv(chute, state, str(path)), env=dict(env, CHUTE_GRANT="not-a-jwt"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "(401 token_malformed)" in out.stderr, out.stderr


def test_an_unreachable_server_fails_after_retries(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path, _ = make_file(tmp_path / "u.bin", 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    out = subprocess.run([str(BIN), "upload", "--retries", "1", "--state-dir", str(tmp_path / "s"), str(path)],
                         env=dict(env, CHUTE_URL=f"http://127.0.0.1:{port}"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    assert "the network failed after 2 attempt(s)" in out.stderr, out.stderr
    missing = subprocess.run([str(BIN), "upload", str(tmp_path / "nope.bin")], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "nope.bin" in missing.stderr, missing


def test_only_regular_files_are_taken(tmp_path):
    """A pipe, a FIFO or a directory cannot be read by offset (nor resumed):
    refused before any request, saying what to do, without blocking on the
    FIFO's open."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    for arg, stdin in (("/dev/stdin", "piped"), (str(fifo), None), (str(tmp_path), None)):
        out = subprocess.run([str(BIN), "upload", "--state-dir", str(tmp_path / "s"), arg], env=env, input=stdin,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1 and out.stdout == "", out
        assert f"{arg}: not a regular file" in out.stderr and "save it to a file first" in out.stderr, out.stderr


@pytest.mark.parametrize("protocol", ["api", "tus"])
def test_an_unwritable_state_dir_leaves_no_upload_behind(chute, tmp_path, protocol):
    """An upload the client cannot record could never be resumed: it is
    aborted (or terminated) at once rather than left in the store until
    expiry."""
    path, _ = make_file(tmp_path / "unrecorded.bin", 12 * MiB)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    extra = protocol_args(protocol)
    out = upload(chute, blocker / "state", "--json", *extra, str(path))
    assert out.returncode == 1 and out.stdout == "", out
    assert str(blocker / "state") in out.stderr and "run the same command again" not in out.stderr, out.stderr
    listed = chute.client().list_multipart_uploads(Bucket=chute.bucket)
    assert not listed.get("Uploads"), listed


def test_a_server_url_without_scheme_is_bad_usage(tmp_path):
    path, _ = make_file(tmp_path / "x.bin", 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    for bad in ("localhost:8080", "ftp://h/", "http//h"):
        t0 = time.monotonic()
        out = subprocess.run([str(BIN), "upload", "--to", bad, "--state-dir", str(tmp_path / "s"), str(path)],
                             env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and "http://" in out.stderr, out
        assert time.monotonic() - t0 < 2, "refused at once, not after retries"


def restart_on_same_ports(srv: ChuteServer, monkeypatch) -> None:
    """Restarts a killed server on its old ports, so the URL the client
    resumes against (and keys its state file by) stays the same."""
    import conftest

    ports = iter([srv.app_port, srv.s3_port])
    with monkeypatch.context() as m:
        m.setattr(conftest, "free_port", lambda: next(ports))
        srv.start()


def test_network_loss_is_retried_then_resumed(crashable, tmp_path, monkeypatch):
    srv = crashable
    path, sha = make_file(tmp_path / "flaky.bin", 40 * MiB)
    state = tmp_path / "state"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    argv = upload_argv(srv, state, "--json", "--part-size", "5M", str(path))

    # The server vanishes for a second: the client's backoff outlasts it.
    proc = subprocess.Popen([*argv, "--limit-rate", "16M", "--retries", "10"], env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_progress(proc, state)
    srv.kill()
    time.sleep(1)
    restart_on_same_ports(srv, monkeypatch)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [line] = [json.loads(x) for x in out.splitlines()]
    assert (line["resumed"], line["bytes_sent"]) == (False, 40 * MiB), line
    assert stored_sha256(srv, line["key"]) == (40 * MiB, sha)

    # Gone for longer than the retries: the command fails, keeps its state,
    # and the next run sends only what is missing.
    proc = subprocess.Popen([*argv, "--limit-rate", "16M", "--retries", "1"], env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_progress(proc, state)
    srv.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "the network failed after 2 attempt(s)" in err and "run the same command again to resume" in err, err
    restart_on_same_ports(srv, monkeypatch)
    [line] = receipts(upload(srv, state, "--json", "--part-size", "5M", str(path)))
    assert line["resumed"] is True and 0 < line["bytes_sent"] < 40 * MiB, line
    assert stored_sha256(srv, line["key"]) == (40 * MiB, sha)


def test_bars_on_a_terminal(chute, tmp_path):
    """With stderr on a terminal: a bar per file and a total with speed and
    time left; stdout (a pipe) still gets only the receipts."""
    import pty

    a, _ = make_file(tmp_path / "bar-a.bin", 6 * MiB)
    b, _ = make_file(tmp_path / "bar-b.bin", 6 * MiB)
    master, slave = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    proc = subprocess.Popen(upload_argv(chute, tmp_path / "state", "--limit-rate", "12M", "--part-size", "5M", str(a), str(b)),
                            env=dict(clean, TERM="xterm"), stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    text = drawn.decode(errors="replace")
    assert "bar-a.bin" in text and "bar-b.bin" in text and "total" in text, text[-2000:]
    assert "MiB/s" in text and "eta" in text, text[-2000:]
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith("  ")] == [str(a), str(b)]
