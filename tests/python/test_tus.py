"""tus 1.0 at /files/ against the real `chute serve`, spoken with plain
`requests` so every header is under the test's control: the core protocol
and its extensions, a restart (SIGKILL) in the middle of an upload, and the
hostile inputs of issue 5, each answered with the status the tus
specification gives and leaving nothing visible in the store.

Each test runs on the embedded store and on Garage (`backend`), except the
ones that need their own server (crash, idle timeout, reaper).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import zlib

import jwt
import pytest
import requests

from conftest import (
    GRANT_SECRET, OCTETS, TUS, ChuteServer, MiB, b64, download, grant, tus_metadata, use_garage
)


def create(srv, length=None, token=None, headers=None, data=None, meta=None, defer=False):
    h = dict(TUS)
    if token is None:
        token = grant()
    if token:
        h["Authorization"] = f"Bearer {token}"
    if length is not None:
        h["Upload-Length"] = str(length)
    if defer:
        h["Upload-Defer-Length"] = "1"
    h["Upload-Metadata"] = meta if meta is not None else tus_metadata()
    if data is not None:
        h["Content-Type"] = OCTETS
    h.update(headers or {})
    return requests.post(f"{srv.app_url}/files/", headers=h, data=data, timeout=120)


def url_of(srv, r) -> str:
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    loc = r.headers["Location"]
    assert loc.startswith("/files/"), loc
    return srv.app_url + loc


def head(url, headers=None):
    return requests.head(url, headers={**TUS, **(headers or {})}, timeout=30)


def offset(url) -> int:
    r = head(url)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    return int(r.headers["Upload-Offset"])


def patch(url, data, at, headers=None):
    h = {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(at)}
    h.update(headers or {})
    return requests.patch(url, headers=h, data=data, timeout=120)


def upload_in_chunks(url, data: bytes, chunk: int):
    at, r = 0, None
    while at < len(data):
        r = patch(url, data[at:at + chunk], at)
        assert r.status_code == 204, f"{r.status_code} {r.text}"
        at = int(r.headers["Upload-Offset"])
    return r


def receipt_key(receipt: str) -> str:
    return jwt.decode(receipt, options={"verify_signature": False})["key"]


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def stored_under(srv, uid: str) -> list[str]:
    """Objects and open multipart uploads the upload left under tmp/."""
    s3 = srv.client()
    prefix = f"tmp/{uid}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=srv.bucket, Prefix=prefix).get("Contents", [])]
    uploads = s3.list_multipart_uploads(Bucket=srv.bucket, Prefix=prefix).get("Uploads", [])
    return keys + [f"multipart:{u['Key']}" for u in uploads]


def tmp_snapshot(srv) -> set[str]:
    s3 = srv.client()
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=srv.bucket, Prefix="tmp/"):
        keys.update(o["Key"] for o in page.get("Contents", []))
    for u in s3.list_multipart_uploads(Bucket=srv.bucket, Prefix="tmp/").get("Uploads", []):
        keys.add(f"multipart:{u['Key']}:{u['UploadId']}")
    return keys


# ------------------------------------------------------------------ core


def test_options_advertises_version_extensions_and_checksums(backend):
    r = requests.options(f"{backend.app_url}/files/", timeout=10)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert int(r.headers["Tus-Max-Size"]) > 0
    ext = set(r.headers["Tus-Extension"].split(","))
    assert ext == {"creation", "creation-with-upload", "creation-defer-length", "termination",
                   "expiration", "checksum", "concatenation"}
    assert set(r.headers["Tus-Checksum-Algorithm"].split(",")) == {"md5", "sha1", "sha256", "crc32"}


@pytest.mark.parametrize("chunk", [3 * MiB + 7, 8 * MiB, 20 * MiB])
def test_upload_in_chunks_that_do_not_divide_the_file(backend, chunk):
    data = os.urandom(17 * MiB + 123)
    r = create(backend, len(data), meta=tus_metadata("movie.bin"))
    url = url_of(backend, r)
    assert "Upload-Expires" in r.headers
    assert offset(url) == 0
    last = upload_in_chunks(url, data, chunk)
    receipt = last.headers["Chute-Receipt"]
    claims = jwt.decode(receipt, GRANT_SECRET, algorithms=["HS256"], audience="chute-receipt")
    assert claims["size"] == len(data) and claims["filename"] == "movie.bin"
    assert download(backend, claims["key"]) == data
    # Later HEADs say complete and repeat the receipt.
    h = head(url)
    assert h.headers["Upload-Offset"] == h.headers["Upload-Length"] == str(len(data))
    assert h.headers["Chute-Receipt"] == receipt
    assert h.headers["Cache-Control"] == "no-store"


def test_creation_with_upload_and_small_files(backend):
    data = b"hello tus"
    r = create(backend, len(data), data=data, meta=tus_metadata("hi.txt", "text/plain"))
    url = url_of(backend, r)
    assert r.headers["Upload-Offset"] == str(len(data))
    key = receipt_key(r.headers["Chute-Receipt"])
    assert key.endswith("/hi.txt")
    assert download(backend, key) == data
    # An empty file completes at creation.
    r = create(backend, 0)
    url = url_of(backend, r)
    assert download(backend, receipt_key(head(url).headers["Chute-Receipt"])) == b""


def test_uppy_metadata_names_and_method_override(backend):
    data = os.urandom(1000)
    r = create(backend, len(data), meta=f"name {b64('u.bin')},type {b64('application/octet-stream')}")
    url = url_of(backend, r)
    r = requests.post(url, headers={**TUS, "X-HTTP-Method-Override": "PATCH", "Content-Type": OCTETS,
                                    "Upload-Offset": "0"}, data=data, timeout=30)
    assert r.status_code == 204, r.text
    assert receipt_key(r.headers["Chute-Receipt"]).endswith("/u.bin")


def test_deferred_length(backend):
    data = os.urandom(9 * MiB + 5)
    url = url_of(backend, create(backend, defer=True))
    h = head(url)
    assert h.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in h.headers
    r = patch(url, data[:9 * MiB], 0)
    assert r.status_code == 204 and "Chute-Receipt" not in r.headers
    r = patch(url, data[9 * MiB:], 9 * MiB, {"Upload-Length": str(len(data))})
    assert r.status_code == 204, r.text
    assert download(backend, receipt_key(r.headers["Chute-Receipt"])) == data


def test_checksum_good_and_bad(backend):
    data = os.urandom(2 * MiB)
    url = url_of(backend, create(backend, len(data)))
    bad = patch(url, data[:MiB], 0, {"Upload-Checksum": f"sha1 {b64(hashlib.sha1(b'other').digest())}"})
    assert bad.status_code == 460, bad.text
    assert offset(url) == 0
    for algo, digest in [("sha256", hashlib.sha256(data[:MiB]).digest()),
                         ("crc32", zlib.crc32(data[MiB:]).to_bytes(4, "big"))]:
        at = offset(url)
        r = patch(url, data[at:at + MiB], at, {"Upload-Checksum": f"{algo} {b64(digest)}"})
        assert r.status_code == 204, r.text
    assert download(backend, receipt_key(r.headers["Chute-Receipt"])) == data
    r = patch(url_of(backend, create(backend, 4)), b"abcd", 0, {"Upload-Checksum": f"whirlpool {b64(b'x' * 64)}"})
    assert r.status_code == 400


def test_termination(backend):
    data = os.urandom(9 * MiB)
    url = url_of(backend, create(backend, 20 * MiB))
    assert patch(url, data, 0).status_code == 204
    r = requests.delete(url, headers=TUS, timeout=30)
    assert r.status_code == 204
    assert head(url).status_code == 404
    assert stored_under(backend, upload_id(url)) == []


def test_terminating_a_completed_upload_keeps_its_object_and_use(backend):
    # The receipt names the object: DELETE drops only the tus state, and
    # the grant's use stays spent.
    token = grant(sub="alice", max_files=1)
    data = os.urandom(1000)
    url = url_of(backend, create(backend, len(data), token=token))
    r = patch(url, data, 0)
    assert r.status_code == 204, r.text
    key = receipt_key(r.headers["Chute-Receipt"])
    assert requests.delete(url, headers=TUS, timeout=30).status_code == 204
    assert head(url).status_code == 404
    assert download(backend, key) == data
    r = create(backend, 4, token=token)
    assert r.status_code == 403 and "max_files_reached" in r.text, r.text


def test_terminating_a_completed_partial_upload_gives_its_use_back(backend):
    # A partial upload has no receipt: terminating it removes everything.
    token = grant(sub="alice", max_files=1)
    url = url_of(backend, create(backend, 4, token=token, headers={"Upload-Concat": "partial"}))
    assert patch(url, b"abcd", 0).status_code == 204
    assert requests.delete(url, headers=TUS, timeout=30).status_code == 204
    assert stored_under(backend, upload_id(url)) == []
    assert create(backend, 4, token=token).status_code == 201


def test_concatenation(backend):
    # Two partial uploads hand their max_files uses to the final one.
    token = grant(sub="alice", max_files=2)
    a, b = os.urandom(6 * MiB + 1), os.urandom(3 * MiB)
    urls = []
    for part in (a, b):
        url = url_of(backend, create(backend, len(part), token=token, headers={"Upload-Concat": "partial"}))
        r = patch(url, part, 0)
        assert r.status_code == 204 and "Chute-Receipt" not in r.headers
        urls.append(url)
    r = create(backend, token=token, meta=tus_metadata("joined.bin"),
               headers={"Upload-Concat": "final;" + " ".join(u.replace(backend.app_url, "") for u in urls)})
    final = url_of(backend, r)
    assert head(final).headers["Upload-Length"] == str(len(a + b))
    assert download(backend, receipt_key(r.headers["Chute-Receipt"])) == a + b
    # The partial uploads are gone once joined.
    for url in urls:
        assert head(url).status_code == 404
        assert stored_under(backend, upload_id(url)) == []


def test_failed_concatenation_keeps_the_partials_counted(backend):
    # The final upload is rejected (declared PNG, sniffed GIF): the two
    # partial uploads still hold both max_files uses, however often the
    # client retries, and a successful join then leaves one use taken.
    token = grant(sub="alice", max_files=2)
    gif = b"GIF89a" + os.urandom(100)
    urls = []
    for part in (gif, b"tail"):
        url = url_of(backend, create(backend, len(part), token=token, meta=tus_metadata("p.png", "image/png"),
                                     headers={"Upload-Concat": "partial"}))
        assert patch(url, part, 0).status_code == 204
        urls.append(url)
    joined = "final;" + " ".join(u.replace(backend.app_url, "") for u in urls)
    for _ in range(2):
        r = create(backend, token=token, meta=tus_metadata("j.png", "image/png"), headers={"Upload-Concat": joined})
        assert r.status_code == 422, r.text
        r = create(backend, 4, token=token)
        assert r.status_code == 403 and "max_files_reached" in r.text, r.text
    for url in urls:
        assert head(url).status_code == 200
    r = create(backend, token=token, meta=tus_metadata("j.gif", "image/gif"), headers={"Upload-Concat": joined})
    assert r.status_code == 201, r.text
    # The final upload holds one use: one more file fits, then none.
    assert create(backend, 4, token=token).status_code == 201
    r = create(backend, 4, token=token)
    assert r.status_code == 403 and "max_files_reached" in r.text, r.text


def test_kill_mid_patch_then_resume(fresh_chute):
    _kill_mid_patch_then_resume(fresh_chute)


def test_kill_mid_patch_then_resume_on_garage(garage, tmp_path):
    srv = use_garage(ChuteServer(tmp_path), garage)
    srv.start()
    try:
        _kill_mid_patch_then_resume(srv)
    finally:
        srv.kill()


def _kill_mid_patch_then_resume(srv):
    """SIGKILL with a PATCH in flight, restart, resume from the server's
    offset: the object is byte-identical."""
    data = os.urandom(20 * MiB + 11)
    url = url_of(srv, create(srv, len(data)))
    path = url.replace(srv.app_url, "")
    assert patch(url, data[:9 * MiB], 0).status_code == 204
    conn = http.client.HTTPConnection("127.0.0.1", srv.app_port, timeout=30)
    conn.putrequest("PATCH", path)
    for k, v in {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(9 * MiB),
                 "Content-Length": str(len(data) - 9 * MiB)}.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(data[9 * MiB:17 * MiB])
    time.sleep(1.0)
    srv.restart_after_crash()
    conn.close()
    url = srv.app_url + path  # the restarted server listens on a new port
    at = offset(url)
    # At least the part stored before the first PATCH ended; at most what was sent.
    assert 8 * MiB <= at <= 17 * MiB, at
    # The killed instance's lease on the upload stays in the store until it
    # expires (two leases, 30 s): until then a PATCH waits 10 s and gets
    # 423, which a tus client retries.
    deadline = time.monotonic() + 180  # a hang guard, not a timing check
    while (r := patch(url, data[at:at + 5 * MiB], at)).status_code == 423:
        assert time.monotonic() < deadline, "the dead instance's lease never expired"
    assert r.status_code == 204, f"{r.status_code} {r.text}"
    at = int(r.headers["Upload-Offset"])
    r = upload_in_chunks_from(url, data, at, 5 * MiB) or r
    assert download(srv, receipt_key(r.headers["Chute-Receipt"])) == data


def upload_in_chunks_from(url, data, at, chunk):
    r = None
    while at < len(data):
        r = patch(url, data[at:at + chunk], at)
        assert r.status_code == 204, f"{r.status_code} {r.text}"
        at = int(r.headers["Upload-Offset"])
    return r


def test_cors_for_browsers(backend):
    origin = "http://localhost:5173"
    pre = requests.options(f"{backend.app_url}/files/", headers={
        "Origin": origin, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type,authorization"}, timeout=10)
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == origin
    r = create(backend, 3, headers={"Origin": origin})
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    for h in ("location", "upload-offset", "chute-receipt", "upload-expires"):
        assert h in exposed


# ------------------------------------------------------------- hostile


def test_wrong_upload_offset_is_409(backend):
    url = url_of(backend, create(backend, 10))
    assert patch(url, b"abcde", 0).status_code == 204
    for wrong in (0, 3, 7):
        r = patch(url, b"xxx", wrong)
        assert r.status_code == 409, r.text
        assert r.headers["Upload-Offset"] == "5"
    assert patch(url, b"y", "-1").status_code == 400
    assert offset(url) == 5


def test_missing_or_wrong_tus_resumable_is_412(backend):
    before = tmp_snapshot(backend)
    for version in (None, "0.2.2"):
        h = {"Authorization": f"Bearer {grant()}", "Upload-Length": "5"}
        if version:
            h["Tus-Resumable"] = version
        r = requests.post(f"{backend.app_url}/files/", headers=h, timeout=10)
        assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
        assert "Location" not in r.headers
    url = url_of(backend, create(backend, 5))
    r = requests.patch(url, headers={"Content-Type": OCTETS, "Upload-Offset": "0"}, data=b"abcde", timeout=10)
    assert r.status_code == 412
    assert offset(url) == 0
    assert tmp_snapshot(backend) - before <= {f"multipart:{k}" for k in []} | _own(backend, url)


def _own(srv, url) -> set[str]:
    uid = upload_id(url)
    return {k for k in tmp_snapshot(srv) if f"/{uid}/" in k}


def test_wrong_content_type_is_415(backend):
    url = url_of(backend, create(backend, 5))
    for ct in (None, "application/octet-stream", "text/plain"):
        h = {**TUS, "Upload-Offset": "0"}
        if ct:
            h["Content-Type"] = ct
        r = requests.patch(url, headers=h, data=b"abcde", timeout=10)
        assert r.status_code == 415, r.text
    assert offset(url) == 0


def test_patch_past_upload_length_is_413(backend):
    url = url_of(backend, create(backend, 10))
    r = patch(url, b"x" * 11, 0)
    assert r.status_code == 413
    assert offset(url) == 0

    # Without Content-Length (chunked): cut off at the length, nothing completes.
    def gen():
        yield b"y" * 6
        yield b"z" * 6
    r = patch(url, gen(), 0)
    assert r.status_code == 413
    assert "Chute-Receipt" not in head(url).headers
    assert offset(url) < 10
    assert [k for k in stored_under(backend, upload_id(url)) if not k.startswith("multipart:")] == []


def test_bad_checksum_keeps_nothing(backend):
    data = os.urandom(9 * MiB)  # more than one part: parts are stored but not committed
    url = url_of(backend, create(backend, len(data)))
    r = patch(url, data, 0, {"Upload-Checksum": f"md5 {b64(hashlib.md5(b'nope').digest())}"})
    assert r.status_code == 460, r.text
    assert offset(url) == 0
    r = patch(url, data, 0, {"Upload-Checksum": f"md5 {b64(hashlib.md5(data).digest())}"})
    assert r.status_code == 204 and "Chute-Receipt" in r.headers
    assert download(backend, receipt_key(r.headers["Chute-Receipt"])) == data


def _expire(srv, url):
    """Moves the upload's expiry into the past by rewriting its state, as
    time passing would."""
    s3 = srv.client()
    key = f".chute/tus/{upload_id(url)}/info"
    info = json.loads(s3.get_object(Bucket=srv.bucket, Key=key)["Body"].read())
    info["expires_at"] = int(time.time()) - 5
    s3.put_object(Bucket=srv.bucket, Key=key, Body=json.dumps(info).encode())


def test_expired_upload_is_410(backend):
    url = url_of(backend, create(backend, 10))
    assert patch(url, b"abc", 0).status_code == 204
    _expire(backend, url)
    assert head(url).status_code == 410
    assert patch(url, b"defg", 3).status_code == 410
    assert [k for k in stored_under(backend, upload_id(url)) if not k.startswith("multipart:")] == []


def test_expired_partial_cannot_be_joined(backend):
    token = grant(sub="alice")
    url = url_of(backend, create(backend, 4, token=token, headers={"Upload-Concat": "partial"}))
    assert patch(url, b"mine", 0).status_code == 204
    _expire(backend, url)
    before = tmp_snapshot(backend)
    r = create(backend, token=token, headers={"Upload-Concat": f"final;{url}"})
    assert r.status_code == 410, r.text
    assert tmp_snapshot(backend) == before


def test_patch_crossing_the_expiry_gets_no_receipt(backend):
    # The upload expires while its last PATCH is being sent: completion
    # re-checks, so no receipt names an object the reaper may remove.
    data = os.urandom(1000)
    url = url_of(backend, create(backend, len(data)))

    def body():
        yield data[:500]
        _expire(backend, url)
        yield data[500:]

    r = patch(url, body(), 0)
    assert r.status_code == 410, r.text
    assert "Chute-Receipt" not in r.headers
    assert head(url).status_code == 410


def test_concatenating_someone_elses_partials_is_403(backend):
    alice, mallory = grant(sub="alice"), grant(sub="mallory")
    url = url_of(backend, create(backend, 4, token=alice, headers={"Upload-Concat": "partial"}))
    assert patch(url, b"mine", 0).status_code == 204
    before = tmp_snapshot(backend)
    r = create(backend, token=mallory, headers={"Upload-Concat": f"final;{url}"})
    assert r.status_code == 403, r.text
    assert "Location" not in r.headers
    assert tmp_snapshot(backend) == before
    # Alice's partial is untouched; an unfinished partial cannot be joined.
    assert head(url).headers["Upload-Offset"] == "4"
    open_partial = url_of(backend, create(backend, 4, token=alice, headers={"Upload-Concat": "partial"}))
    r = create(backend, token=alice, headers={"Upload-Concat": f"final;{url} {open_partial}"})
    assert r.status_code == 400
    # Not a partial upload, or not an upload at all.
    plain = url_of(backend, create(backend, 4, token=alice))
    assert create(backend, token=alice, headers={"Upload-Concat": f"final;{plain}"}).status_code == 400
    assert create(backend, token=alice, headers={"Upload-Concat": "final;/files/nosuchupload"}).status_code == 404
    assert create(backend, token=alice, headers={"Upload-Concat": "final;/files/..%2Fetc"}).status_code == 400
    assert create(backend, token=alice, headers={"Upload-Concat": f"final;{url} {url}"}).status_code == 400


def test_huge_headers_are_refused(backend):
    before = tmp_snapshot(backend)
    r = create(backend, 5, headers={"X-Padding": "a" * MiB})
    assert r.status_code in (400, 431), r.status_code
    r = create(backend, 5, meta=tus_metadata("a.bin", note="x" * 8192))
    assert r.status_code == 400 and "Upload-Metadata" in r.text
    r = create(backend, 5, meta="filename !!notbase64!!")
    assert r.status_code == 400
    assert tmp_snapshot(backend) == before


def test_body_larger_than_the_grant_is_413(backend):
    before = tmp_snapshot(backend)
    r = create(backend, 2 * MiB, token=grant(max_size=MiB))
    assert r.status_code == 413, r.text
    assert tmp_snapshot(backend) == before
    # A deferred length is held to the grant while bytes arrive.
    url = url_of(backend, create(backend, token=grant(max_size=1000), defer=True))
    r = patch(url, b"x" * 1001, 0)
    assert r.status_code == 413
    assert patch(url, b"x" * 10, 0, {"Upload-Length": "1001"}).status_code == 413
    assert offset(url) == 0


def test_creation_with_a_body_too_large_leaves_nothing(backend):
    # Content-Length past Upload-Length or the grant is refused before
    # anything is begun: no state, no object, no max_files use taken.
    token = grant(sub="alice", max_files=1, max_size=100)
    before = tmp_snapshot(backend)
    for length in (10, None):
        r = create(backend, length, token=token, data=b"x" * 101, defer=length is None)
        assert r.status_code == 413, r.text
        assert "Location" not in r.headers
    assert tmp_snapshot(backend) == before
    assert create(backend, 4, token=token).status_code == 201


def test_object_failing_the_grant_is_rejected_and_removed(backend):
    token = grant(types=["image/png"])
    data = b"GIF89a" + os.urandom(100)  # declared PNG, sniffed GIF
    url = url_of(backend, create(backend, len(data), token=token, meta=tus_metadata("pic.png", "image/png")))
    r = patch(url, data, 0)
    assert r.status_code == 422, r.text
    assert "Chute-Receipt" not in r.headers
    assert head(url).status_code == 404
    assert stored_under(backend, upload_id(url)) == []


def test_unknown_upload_is_404(backend):
    for path in ("/files/nosuchupload", "/files/a%2F..%2Fb"):
        assert head(backend.app_url + path).status_code == 404
        assert patch(backend.app_url + path, b"x", 0).status_code == 404


def test_every_answer_under_files_is_a_tus_answer(backend):
    # Paths the router itself refuses still say Tus-Resumable.
    for path in ("/files/a/b", "/files/%FF", "/files/a/b/c"):
        r = head(backend.app_url + path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert r.headers.get("Tus-Resumable") == "1.0.0", (path, r.headers)


def test_head_of_an_unfinished_final_upload_has_no_offset(backend):
    token = grant(sub="alice")
    url = url_of(backend, create(backend, 4, token=token, headers={"Upload-Concat": "partial"}))
    assert patch(url, b"abcd", 0).status_code == 204
    final = url_of(backend, create(backend, token=token, headers={"Upload-Concat": f"final;{url}"}))
    # As if completion had not been recorded yet.
    backend.client().delete_object(Bucket=backend.bucket, Key=f".chute/tus/{upload_id(final)}/done")
    r = head(final)
    assert r.status_code == 200, r.text
    assert "Upload-Offset" not in r.headers, r.headers
    assert r.headers["Upload-Concat"].startswith("final;")


def _trickle(srv, url, gap: float, rounds: int = 12) -> bytes:
    """Opens a PATCH of 100 bytes and sends one byte every `gap` seconds;
    returns the server's answer (empty if it never answered)."""
    sock = socket.create_connection(("127.0.0.1", srv.app_port), timeout=30)
    path = url.replace(srv.app_url, "")
    sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: {OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: 100\r\n\r\n").encode())
    answer = b""
    try:
        for _ in range(rounds):
            try:
                sock.sendall(b"x")
            except OSError:
                break
            sock.settimeout(gap)
            try:
                answer = sock.recv(4096)
                break
            except socket.timeout:
                continue
    finally:
        sock.close()
    return answer


@pytest.mark.parametrize("gap", [1.0, 3.0], ids=["byte-a-second", "pauses"])
def test_slow_client_is_cut_off(tmp_path, gap):
    """A byte a second is under the minimum rate (1 KiB/s over each idle
    window); pauses longer than the idle timeout fail sooner. Either way:
    408, the server stays up, what arrived is kept, nothing completes."""
    srv = ChuteServer(tmp_path)
    srv.extra_env = {"CHUTE_BODY_IDLE_TIMEOUT_SECONDS": "2"}
    srv.start()
    try:
        url = url_of(srv, create(srv, 100))
        started = time.monotonic()
        answer = _trickle(srv, url, gap)
        assert time.monotonic() - started < 10
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert 0 <= offset(url) < 100
        assert "Chute-Receipt" not in head(url).headers
        assert requests.get(f"{srv.app_url}/healthz", timeout=5).status_code == 200
    finally:
        srv.kill()


@pytest.mark.parametrize("store", ["embedded", "garage"])
def test_reaper_removes_expired_uploads(request, tmp_path, store):
    env = {"CHUTE_REAP_INTERVAL_SECONDS": "10"}
    srv = ChuteServer(tmp_path)
    if store == "garage":
        use_garage(srv, request.getfixturevalue("garage"), env)
    else:
        srv.extra_env = env
    srv.start()
    try:
        data = os.urandom(9 * MiB)
        url = url_of(srv, create(srv, 20 * MiB))
        assert patch(url, data, 0).status_code == 204
        _expire(srv, url)
        uid = upload_id(url)
        s3 = srv.client()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            state = s3.list_objects_v2(Bucket=srv.bucket, Prefix=f".chute/tus/{uid}/").get("Contents", [])
            if not state and not stored_under(srv, uid):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"expired tus upload not reaped: {state} {stored_under(srv, uid)}\n{srv.output()}")
        assert head(url).status_code == 404
    finally:
        srv.kill()
