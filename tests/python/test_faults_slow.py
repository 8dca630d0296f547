"""Slow clients and slowloris on both listeners (the app's and the
embedded S3 one), with short timeouts set for the test
(`header_read_timeout_seconds`, `body_idle_timeout_seconds`):

- a client trickling its request headers is disconnected once the header
  read timeout passes, on either port;
- a body that stalls is cut off and leaves nothing partial: an S3 PUT or
  part stores nothing, a streamed upload is undone, a tus PATCH keeps the
  parts it had committed and nothing more, a JSON body is refused;
- hundreds of idle and trickling connections do not stop a normal upload
  from being served, and once the server has closed them its open file
  descriptors and memory are back near where they were.

Waits on the server are hang guards, never timing assertions.
"""

from __future__ import annotations

import os
import resource
import selectors
import shutil
import socket
import tempfile
import time
from pathlib import Path

import jwt
import pytest
import requests

from conftest import OCTETS, TUS, ChuteServer, MiB, grant

TIMEOUT = 2  # header read and body idle timeouts of the server under test
CROWD_TIMEOUT = 8  # the same for the test holding 600 slow connections
GUARD = 30  # hang guard for anything the server should do within TIMEOUT


def start_server(timeout: int) -> ChuteServer:
    srv = ChuteServer(Path(tempfile.mkdtemp(prefix="chute-slow-")))
    srv.extra_env = {
        "CHUTE_HEADER_READ_TIMEOUT_SECONDS": str(timeout),
        "CHUTE_BODY_IDLE_TIMEOUT_SECONDS": str(timeout),
        "CHUTE_TUS_PART_SIZE": str(5 * MiB),
        "CHUTE_STREAM_PART_SIZE": str(5 * MiB),
        "CHUTE_REAP_INTERVAL_SECONDS": "0",
    }
    srv.start()
    return srv


@pytest.fixture(scope="module")
def slow_srv():
    srv = start_server(TIMEOUT)
    yield srv
    srv.kill()
    shutil.rmtree(srv.workdir, ignore_errors=True)


@pytest.fixture
def crowded_srv():
    # Longer timeouts: the slow connections must outlast the normal upload.
    # Started with a soft open-file limit of 512 (as systemd's 1024, only
    # lower): the server raises it to what max_connections needs, else
    # 600 connections could not be accepted.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        srv = start_server(CROWD_TIMEOUT)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield srv
    srv.kill()
    shutil.rmtree(srv.workdir, ignore_errors=True)


def closed_by_server(sock: socket.socket, guard: float = GUARD) -> bytes:
    """Reads until the server closes the connection (EOF or reset); returns
    what it sent. Fails if it is still open after `guard` seconds."""
    sock.settimeout(guard)
    got = b""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got
        except socket.timeout:
            break
        if not chunk:
            return got
        got += chunk
    pytest.fail(f"the server kept the connection open for {guard}s; it sent {got[:200]!r}")


def trickle_headers(port: int, path: str = "/") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ".encode())
    return s


def fds(srv) -> int:
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


def open_file_limit(srv) -> int:
    """The server's soft limit on open files."""
    for line in Path(f"/proc/{srv.proc.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files")


def rss_kib(srv) -> int:
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("listener", ["app", "s3"])
def test_trickled_headers_are_cut_after_the_header_timeout(slow_srv, listener):
    port = slow_srv.app_port if listener == "app" else slow_srv.s3_port
    s = trickle_headers(port)
    s.settimeout(GUARD)
    # One header byte a second: never a complete request.
    deadline = time.monotonic() + GUARD
    closed = False
    while time.monotonic() < deadline:
        try:
            s.sendall(b"a")
            s.settimeout(1.0)
            if s.recv(65536) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
    s.close()
    assert closed, f"the {listener} listener kept a trickling client for {GUARD}s"


def start_request(port: int, head: str, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    s.sendall(head.encode() + first)
    return s


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def test_stalled_bodies_are_cut_and_leave_nothing_partial(slow_srv):
    srv = slow_srv
    s3 = srv.client()
    b = srv.bucket
    tag = os.urandom(4).hex()
    auth = f"Authorization: Bearer {grant()}\r\n"

    # A tus upload and an S3 multipart upload, opened before the snapshot.
    r = requests.post(f"{srv.app_url}/files/", headers={**TUS, "Authorization": f"Bearer {grant()}",
                                                          "Upload-Length": str(8 * MiB)}, timeout=GUARD)
    assert r.status_code == 201, r.text
    tus_path = r.headers["Location"]
    tus_id = tus_path.rstrip("/").rsplit("/", 1)[1]
    tus_tmp = (f"tmp/{tus_id}/", f".chute/tus/{tus_id}/")  # the tus upload's own state
    s3mp = f"slow/{tag}/mp.bin"

    def stored() -> tuple[set[str], set[str]]:
        """Objects and open multipart uploads, but the tus upload's state."""
        keys = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
            keys.update(o["Key"] for o in page.get("Contents", []) if not o["Key"].startswith(tus_tmp))
        ups = {u["Key"] + " " + u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
               if not u["Key"].startswith(tus_tmp)}
        return keys, ups

    upload_id = s3.create_multipart_upload(Bucket=b, Key=f"slow/{tag}/mp.bin")["UploadId"]
    before = stored()

    # S3 PUT on the S3 listener, signed with UNSIGNED-PAYLOAD by a presigned URL.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": f"slow/{tag}/put.bin"}, ExpiresIn=300)
    path = url.split(str(srv.s3_port), 1)[1]
    put = start_request(srv.s3_port, f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.s3_port}\r\n"
                        f"Content-Length: {4 * MiB}\r\n\r\n", os.urandom(100_000))
    # An S3 part, likewise.
    url = s3.generate_presigned_url("upload_part", Params={"Bucket": b, "Key": f"slow/{tag}/mp.bin",
                                                           "UploadId": upload_id, "PartNumber": 1}, ExpiresIn=300)
    path = url.split(str(srv.s3_port), 1)[1]
    part = start_request(srv.s3_port, f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.s3_port}\r\n"
                         f"Content-Length: {6 * MiB}\r\n\r\n", os.urandom(100_000))
    # A streamed raw upload that stalls after one part's worth.
    stream = start_request(srv.app_port, f"PUT /api/stream/s-{tag}.bin HTTP/1.1\r\nHost: x\r\n{auth}"
                           f"Content-Length: {12 * MiB}\r\n\r\n", os.urandom(6 * MiB))
    # A tus PATCH that commits one part and then stalls.
    tus_data = os.urandom(8 * MiB)
    tus = start_request(srv.app_port, f"PATCH {tus_path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                        f"Content-Type: {OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: {8 * MiB}\r\n\r\n",
                        tus_data[:6 * MiB])
    # A JSON body that stalls.
    js = start_request(srv.app_port, f"POST /api/uploads HTTP/1.1\r\nHost: x\r\n{auth}"
                       "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n", b'{"filename": "a')

    answers = {name: closed_by_server(sock) for name, sock in
               [("put", put), ("part", part), ("stream", stream), ("tus", tus), ("json", js)]}
    for sock in (put, part, stream, tus, js):
        sock.close()
    assert status_of(answers["put"]) == 400 and b"<Code>RequestTimeout</Code>" in answers["put"], answers["put"]
    assert status_of(answers["part"]) == 400 and b"<Code>RequestTimeout</Code>" in answers["part"], answers["part"]
    assert status_of(answers["stream"]) == 408 and b"body_timeout" in answers["stream"], answers["stream"]
    assert status_of(answers["tus"]) == 408, answers["tus"]
    assert 400 <= status_of(answers["json"]) < 500, answers["json"]

    # Nothing partial: no object, no part, the stream's multipart upload
    # aborted (the S3 one was opened by the test and stays, empty).
    assert s3.list_parts(Bucket=b, Key=s3mp, UploadId=upload_id).get("Parts", []) == []
    deadline = time.monotonic() + GUARD
    while stored() != before:
        assert time.monotonic() < deadline, f"the cut requests left {stored()} (before: {before})"
        time.sleep(0.2)
    # tus keeps the bytes it received (a full part and the tail it stores
    # when the body is cut), and resumes from there.
    r = requests.head(srv.app_url + tus_path, headers=TUS, timeout=GUARD)
    at = int(r.headers["Upload-Offset"])
    assert at == 6 * MiB, at
    r = requests.patch(srv.app_url + tus_path, headers={**TUS, "Content-Type": OCTETS, "Upload-Offset": str(at)},
                       data=tus_data[at:], timeout=GUARD)
    assert r.status_code == 204, r.text
    key = jwt.decode(r.headers["Chute-Receipt"], options={"verify_signature": False})["key"]
    assert s3.get_object(Bucket=b, Key=key)["Body"].read() == tus_data


def test_hundreds_of_slow_connections_do_not_starve_an_upload(crowded_srv):
    srv = crowded_srv
    s3 = srv.client()
    # Warm up (the client pools, the store's files), then take the baseline.
    s3.put_object(Bucket=srv.bucket, Key="warm.bin", Body=b"warm")
    base_fds, base_rss = fds(srv), rss_kib(srv)
    assert open_file_limit(srv) >= 3 * 1024 + 256, "the server did not raise its open-file limit"

    url = s3.generate_presigned_url("put_object", Params={"Bucket": srv.bucket, "Key": "slow.bin"}, ExpiresIn=300)
    s3_put = url.split(str(srv.s3_port), 1)[1]
    # Bodies that stall after a few bytes, on requests each listener accepts.
    stalled = {
        srv.s3_port: f"PUT {s3_put} HTTP/1.1\r\nHost: 127.0.0.1:{srv.s3_port}\r\nContent-Length: 1000000\r\n\r\nabc",
        srv.app_port: "PUT /api/stream/slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc",
    }
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(600):
        port = srv.app_port if i % 2 else srv.s3_port
        s = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
        if i % 3 == 0:
            pass  # idle: sends nothing at all
        elif i % 3 == 1:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never finished
        else:
            s.sendall(stalled[port].encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    deadline = time.monotonic() + GUARD
    while fds(srv) < base_fds + 500:
        assert time.monotonic() < deadline, f"the server accepted only {fds(srv) - base_fds} of 600 connections"
        time.sleep(0.05)

    held_fds, held_rss = fds(srv), rss_kib(srv)
    print(f"600 slow connections: fds {base_fds} -> {held_fds}, RSS {base_rss} -> {held_rss} KiB")

    # A normal upload through both listeners while they hang on.
    data = os.urandom(3 * MiB)
    r = requests.post(f"{srv.app_url}/api/uploads", headers={"Authorization": f"Bearer {grant()}"},
                      json={"filename": "n.bin", "size": len(data), "type": "application/octet-stream",
                            "method": "put"}, timeout=GUARD)
    assert r.status_code == 201, r.text
    c = r.json()
    put = requests.put(c["put"]["url"], data=data, headers={k: v for k, v in c["put"]["headers"].items()
                                                            if k != "content-length"}, timeout=GUARD)
    assert put.status_code == 200, put.text
    done = requests.post(f"{srv.app_url}/api/uploads/{c['id']}/complete",
                         headers={"Authorization": f"Bearer {c['token']}"}, timeout=GUARD)
    assert done.status_code == 200, done.text
    assert s3.get_object(Bucket=srv.bucket, Key=c["key"])["Body"].read() == data

    # The server closes every one of them (header or body timeout).
    open_ = set(socks)
    deadline = time.monotonic() + GUARD
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(s)
                open_.discard(s)
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} slow connections still open after {GUARD}s"

    deadline = time.monotonic() + GUARD
    while fds(srv) > base_fds + 10:
        assert time.monotonic() < deadline, f"fds {fds(srv)} stayed above the baseline {base_fds}"
        time.sleep(0.2)
    print(f"after they closed: fds {fds(srv)}, RSS {rss_kib(srv)} KiB")
    assert rss_kib(srv) <= base_rss + 64 * 1024, (rss_kib(srv), base_rss)
