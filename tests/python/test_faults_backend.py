"""The S3 backend fully down: a single Garage killed (SIGKILL) or frozen
(SIGSTOP: it keeps its sockets, so connections open and nothing answers,
a black hole) while uploads are under way. Every route that needs the
store answers `503 store_unavailable` with `Retry-After`, in bounded time
(the S3 client's connect and request timeouts, short here); nothing
partial appears; once Garage is back on the same ports and data, the same
uploads finish (tus resumes from what it had committed).

Each test has its own Garage and `chute serve`, since it stops the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import (
    TUS, ChuteServer, Garage, MiB, api, bucket_keys, form_body, grant, open_uploads, tus_create, tus_patch, use_garage
)

# Hang guard for one request while the store is down: the server's S3
# timeouts are 2 s, three attempts, so its answers come well before this.
GUARD = 60


class Downable:
    """A Garage of its own that the test can kill, freeze and bring back."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.garage = Garage(workdir)

    @property
    def pid(self) -> int:
        return int((self.workdir / "garage.pid").read_text())

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        # Reap it when it is our child; wait until it is gone either way.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)

    def restart(self) -> None:
        """Starts Garage again over the same config (ports, keys, data)."""
        self.garage.restart()

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        self.garage.stop()


@pytest.fixture
def down_env():
    work = Path(tempfile.mkdtemp(prefix="chute-down-"))
    store = Downable(work / "garage")
    srv = use_garage(ChuteServer(work / "chute"), store.garage, {
        "CHUTE_S3_CONNECT_TIMEOUT_SECONDS": "2",
        "CHUTE_S3_REQUEST_TIMEOUT_SECONDS": "2",
        "CHUTE_REAP_INTERVAL_SECONDS": "0",
        "CHUTE_TUS_PART_SIZE": str(5 * MiB),
    })
    srv.start()
    yield store, srv
    srv.kill()
    store.stop()
    shutil.rmtree(work, ignore_errors=True)


def stored(srv) -> tuple[set[str], set[tuple[str, str]]]:
    """Every object key and open multipart upload in the bucket."""
    s3 = srv.client()
    return bucket_keys(s3, srv.bucket), open_uploads(s3, srv.bucket)


def assert_unavailable(what: str, r: requests.Response) -> None:
    assert r.status_code == 503, f"{what}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("Retry-After", "").isdigit(), f"{what}: no Retry-After: {dict(r.headers)}"
    if r.request.method == "HEAD":
        return
    if what.startswith("tus"):
        # tus clients show the body as text: `code: message`.
        assert r.text.startswith("store_unavailable: "), f"{what}: {r.text[:300]}"
        return
    assert r.headers.get("content-type", "").startswith("application/json"), f"{what}: {r.text[:300]}"
    assert r.json()["error"]["code"] == "store_unavailable", f"{what}: {r.text[:300]}"


@pytest.mark.parametrize("how", ["sigkill", "sigstop"])
def test_backend_down_answers_503_then_the_same_uploads_finish(down_env, how):
    store, srv = down_env
    tag = os.urandom(4).hex()
    data = os.urandom(6 * MiB + 17)

    # Before: a tus upload with its first part committed, a multipart
    # upload with one part, a POST form uploaded but not completed, a
    # completed upload not yet promoted, and a Companion multipart upload.
    r = tus_create(srv, len(data))
    assert r.status_code == 201, r.text
    tus_url = srv.app_url + r.headers["Location"]
    r = tus_patch(tus_url, data[:5 * MiB], 0)
    assert r.status_code == 204, r.text
    committed = int(r.headers["Upload-Offset"])
    assert committed == 5 * MiB

    mp = api(srv, "POST", "/api/uploads", grant(), json={"filename": f"mp-{tag}.bin", "size": len(data),
                                                         "type": "application/octet-stream", "method": "multipart"})
    assert mp.status_code == 201, mp.text
    mp = mp.json()
    p1 = mp["multipart"]["parts"][0]
    assert requests.put(p1["url"], data=data[:p1["size"]], timeout=GUARD).status_code == 200

    small = b"small file " + tag.encode()
    post = api(srv, "POST", "/api/uploads", grant(), json={"filename": f"s-{tag}.txt", "size": len(small),
                                                           "type": "text/plain", "method": "post"})
    assert post.status_code == 201, post.text
    post = post.json()
    up = requests.post(post["post"]["url"], data=post["post"]["fields"], files={"file": ("s.txt", small, "text/plain")},
                       timeout=GUARD)
    assert up.status_code in (200, 201, 204), up.text

    done = api(srv, "POST", "/api/uploads", grant(), json={"filename": f"d-{tag}.txt", "size": len(small),
                                                           "type": "text/plain", "method": "post"}).json()
    up = requests.post(done["post"]["url"], data=done["post"]["fields"], files={"file": ("d.txt", small, "text/plain")},
                       timeout=GUARD)
    assert up.status_code in (200, 201, 204), up.text
    finished = api(srv, "POST", f"/api/uploads/{done['id']}/complete", done["token"])
    assert finished.status_code == 200, finished.text
    receipt = finished.json()["receipt"]

    comp = api(srv, "POST", "/s3/multipart", grant(), json={"filename": f"c-{tag}.bin", "type": "application/octet-stream",
                                                            "metadata": {"size": 6 * MiB}})
    assert comp.status_code == 200, comp.text
    comp = comp.json()
    comp_path = f"/s3/multipart/{comp['uploadId']}"
    assert api(srv, "GET", "/readyz").status_code == 200
    before = stored(srv)

    # Down.
    if how == "sigkill":
        store.kill()
    else:
        os.kill(store.pid, signal.SIGSTOP)

    boundary = "b-" + tag
    calls = {
        "readyz": lambda: api(srv, "GET", "/readyz"),
        "create multipart": lambda: api(srv, "POST", "/api/uploads", grant(), json={
            "filename": "x.bin", "size": 6 * MiB, "type": "application/octet-stream", "method": "multipart"}),
        "status": lambda: api(srv, "GET", f"/api/uploads/{mp['id']}", mp["token"]),
        "complete multipart": lambda: api(srv, "POST", f"/api/uploads/{mp['id']}/complete", mp["token"]),
        "complete post": lambda: api(srv, "POST", f"/api/uploads/{post['id']}/complete", post["token"]),
        "promote": lambda: api(srv, "POST", "/api/objects/promote", json={"receipt": receipt}),
        "tus create": lambda: tus_create(srv, 1000),
        "tus create with upload": lambda: tus_create(srv, 1000, b"y" * 1000),
        "tus head": lambda: requests.head(tus_url, headers=TUS, timeout=GUARD),
        "tus patch": lambda: tus_patch(tus_url, data[committed:committed + 64 * 1024], committed),
        "stream form": lambda: api(srv, "POST", "/api/stream", grant(), data=form_body(boundary, f"f-{tag}.bin", b"z" * 70000),
                                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}),
        "stream raw": lambda: api(srv, "PUT", f"/api/stream/r-{tag}.bin", grant(), data=b"r" * 70000),
        "companion create": lambda: api(srv, "POST", "/s3/multipart", grant(), json={
            "filename": "c.bin", "type": "application/octet-stream", "metadata": {"size": 6 * MiB}}),
        "companion list parts": lambda: api(srv, "GET", comp_path, grant(), params={"key": comp["key"]}),
        "companion complete": lambda: api(srv, "POST", f"{comp_path}/complete", grant(), params={"key": comp["key"]},
                                          json={"parts": [{"PartNumber": 1, "ETag": "\"x\""}]}),
    }
    began = time.monotonic()
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        answers = {name: f.result() for name, f in futures.items()}
    print(f"{how}: {len(calls)} requests answered in {time.monotonic() - began:.1f} s")
    wrong = []
    for name, r in answers.items():
        try:
            assert_unavailable(name, r)
        except AssertionError as e:
            wrong.append(str(e).splitlines()[0])
    assert wrong == [], "\n".join(wrong)
    # Liveness does not depend on the store.
    assert api(srv, "GET", "/healthz").status_code == 200

    # Back, on the same ports and data.
    if how == "sigkill":
        store.restart()
    else:
        os.kill(store.pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while api(srv, "GET", "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "chute never became ready after Garage came back"
        time.sleep(0.2)

    # Nothing partial: the requests that failed left no object, no upload.
    assert stored(srv) == before
    s3 = srv.client()

    # tus resumes from what it had committed.
    r = requests.head(tus_url, headers=TUS, timeout=GUARD)
    assert r.status_code == 200 and int(r.headers["Upload-Offset"]) == committed, r.headers
    r = tus_patch(tus_url, data[committed:], committed)
    assert r.status_code == 204, r.text
    assert int(r.headers["Upload-Offset"]) == len(data)
    tus_key = __import__("jwt").decode(r.headers["Chute-Receipt"], options={"verify_signature": False})["key"]
    got = s3.get_object(Bucket=srv.bucket, Key=tus_key)["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    # The multipart upload finishes with its other part.
    more = api(srv, "POST", f"/api/uploads/{mp['id']}/parts", mp["token"], json={"parts": [2]})
    assert more.status_code == 200, more.text
    p2 = more.json()["parts"][0]
    assert requests.put(p2["url"], data=data[p1["size"]:], timeout=GUARD).status_code == 200
    fin = api(srv, "POST", f"/api/uploads/{mp['id']}/complete", mp["token"])
    assert fin.status_code == 200, fin.text
    got = s3.get_object(Bucket=srv.bucket, Key=mp["key"])["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    # The POST form completes; the receipt promotes.
    fin = api(srv, "POST", f"/api/uploads/{post['id']}/complete", post["token"])
    assert fin.status_code == 200, fin.text
    pr = api(srv, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert pr.status_code == 200, pr.text
    assert s3.get_object(Bucket=srv.bucket, Key=pr.json()["key"])["Body"].read() == small

    # Streamed uploads and Companion work again.
    r = api(srv, "PUT", f"/api/stream/r-{tag}.bin", grant(), data=b"r" * 70000)
    assert r.status_code in (200, 201), r.text
    r = api(srv, "GET", comp_path, grant(), params={"key": comp["key"]})
    assert r.status_code == 200 and r.json() == [], r.text
