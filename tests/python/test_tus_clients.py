"""tuspy, the Python tus 1.0 client, against Chute's `/files/` endpoint on
the embedded store and on Garage.

The resume test is the one issue 5 asks for: a first client uploads part of
a file chunk by chunk and stops; a fresh `TusClient`, knowing nothing but the
upload URL, asks the server for the offset (HEAD), sends the rest and gets
the receipt on the final PATCH. The crash test SIGKILLs the server in the
middle of a tuspy upload and restarts it over the same store: a fresh client
resumes from what the store kept. Objects are read back over S3 and
compared byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from tusclient import client as tus
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader import Uploader

from conftest import GRANT_SECRET, ChuteServer, download, grant

MiB = 1024 * 1024


def random_file(tmp_path, name: str, size: int):
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def files_url(server) -> str:
    return f"{server.app_url}/files/"


def receipt_claims(receipt: str) -> dict:
    return jwt.decode(receipt, GRANT_SECRET, algorithms=["HS256"], audience="chute-receipt")


def check_object(server, receipt: str | None, data: bytes, name: str) -> dict:
    """The receipt verifies, names tmp/<id>/<name>, and the object is `data`."""
    assert receipt, f"no Chute-Receipt header on the final PATCH\n{server.output()}"
    claims = receipt_claims(receipt)
    assert claims["key"].startswith("tmp/") and claims["key"].endswith(f"/{name}"), claims
    assert claims["size"] == len(data), claims
    v = requests.post(f"{server.app_url}/api/receipts/verify", json={"receipt": receipt}, timeout=30)
    assert v.status_code == 200 and v.json()["valid"] is True, v.text
    body = download(server, claims["key"])
    assert len(body) == len(data)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest(), "stored object differs"
    return claims


def test_tuspy_uploads_in_uneven_chunks(backend, tmp_path):
    """One uploader, chunks that do not divide the file, sha1 Upload-Checksum
    on each; a non-ASCII filename in Upload-Metadata (UTF-8, base64)."""
    path, data = random_file(tmp_path, "tuspy-whole.bin", 12 * MiB + 12345)
    name = "Grüße aus Köln (v2).bin"
    c = tus.TusClient(files_url(backend), headers={"Authorization": f"Bearer {grant(sub='tuspy')}"})
    up = c.uploader(
        file_path=str(path),
        chunk_size=2 * MiB + 3,
        metadata={"filename": name, "filetype": "application/octet-stream"},
        upload_checksum=True,
    )
    up.upload()
    assert up.offset == len(data)
    assert up.request.status_code == 204, up.request.response_content
    # The key and the receipt hold the sanitised name, as for direct
    # uploads (chute_core::sanitize_filename).
    claims = check_object(backend, up.request.response_headers.get("chute-receipt"), data, "Grüße_aus_Köln_v2_.bin")
    assert claims.get("sub") == "tuspy", claims
    assert claims["filename"] == "Grüße_aus_Köln_v2_.bin", claims
    assert claims["declared_type"] == "application/octet-stream", claims


def test_tuspy_async_uploader(backend, tmp_path):
    """tuspy's aiohttp uploader, chunk by chunk."""
    path, data = random_file(tmp_path, "tuspy-async.bin", 7 * MiB + 1)

    async def run():
        c = tus.TusClient(files_url(backend), headers={"Authorization": f"Bearer {grant(sub='tuspy-async')}"})
        up = c.async_uploader(
            file_path=str(path),
            chunk_size=3 * MiB - 1,
            metadata={"filename": path.name, "filetype": "application/octet-stream"},
        )
        await up.upload()
        return up

    up = asyncio.run(run())
    assert up.offset == len(data)
    assert up.request.status_code == 204, up.request.response_content
    check_object(backend, up.request.response_headers.get("chute-receipt"), data, path.name)


def test_tuspy_fresh_client_resumes_from_server_offset(backend, tmp_path):
    path, data = random_file(tmp_path, "tuspy-resume.bin", 9 * MiB + 777)
    token = grant(sub="tuspy-resume")

    # First client: creates the upload and sends three uneven chunks, then
    # goes away (its uploader, client and any local state are dropped).
    first = tus.TusClient(files_url(backend), headers={"Authorization": f"Bearer {token}"})
    up1 = first.uploader(
        file_path=str(path),
        chunk_size=MiB + 1,
        metadata={"filename": path.name, "filetype": "application/octet-stream"},
    )
    for _ in range(3):
        up1.upload_chunk()
    sent = up1.offset
    assert sent == 3 * (MiB + 1)
    url = up1.url
    assert url.startswith(files_url(backend)), url
    del up1, first

    # The server holds exactly what was sent.
    head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.status_code == 200, head.text
    assert head.headers["Upload-Offset"] == str(sent), head.headers
    assert head.headers["Upload-Length"] == str(len(data)), head.headers

    # A fresh client with only the URL: tuspy HEADs for the offset and
    # continues from there, with larger chunks and checksums this time.
    fresh = tus.TusClient(files_url(backend))
    up2 = fresh.uploader(file_path=str(path), url=url, chunk_size=4 * MiB - 5, upload_checksum=True)
    assert up2.offset == sent, "the fresh client read a different offset than the server reported"
    offsets = []
    while up2.offset < len(data):
        offsets.append(up2.offset)
        up2.upload_chunk()
    assert offsets == list(range(sent, len(data), 4 * MiB - 5)), offsets
    assert up2.offset == len(data)
    assert up2.request.status_code == 204, up2.request.response_content
    claims = check_object(backend, up2.request.response_headers.get("chute-receipt"), data, path.name)
    assert claims.get("sub") == "tuspy-resume", claims


    # The finished upload still answers HEAD with its full offset and the
    # same receipt, for a client that lost the final PATCH's response.
    head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.status_code == 200, head.text
    assert head.headers["Upload-Offset"] == str(len(data)), head.headers
    assert head.headers.get("Chute-Receipt") == up2.request.response_headers.get("chute-receipt")


def test_tuspy_resumes_after_the_server_is_killed_mid_upload(crashable, tmp_path):
    srv = crashable
    path, data = random_file(tmp_path, "tuspy-crash.bin", 24 * MiB + 4321)
    c = tus.TusClient(files_url(srv), headers={"Authorization": f"Bearer {grant(sub='tuspy-crash')}"})
    up1 = c.uploader(
        file_path=str(path),
        chunk_size=MiB + 17,
        metadata={"filename": path.name, "filetype": "application/octet-stream"},
    )
    up1.upload_chunk()
    upload_path = up1.url[len(srv.app_url):]
    assert upload_path.startswith("/files/"), up1.url

    # tuspy goes on in a thread; once the server holds more than 7 MiB
    # (a stored 5 MiB part and a tail), SIGKILL it, PATCH or no PATCH in
    # flight.
    failure: list[BaseException] = []

    def go_on():
        try:
            up1.upload()
        except BaseException as e:  # the server dies under it
            failure.append(e)

    t = threading.Thread(target=go_on, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while True:
        h = requests.head(up1.url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
        assert h.status_code == 200, h.text
        if int(h.headers["Upload-Offset"]) > 7 * MiB:
            break
        assert time.monotonic() < deadline and t.is_alive(), f"no progress past 7 MiB\n{srv.output()}"
        time.sleep(0.02)
    srv.kill()
    t.join(30)
    assert not t.is_alive()
    assert failure, "the upload finished before the server was killed"

    # Same store, new process (and new ports): a fresh client with only the
    # upload's path continues from the offset the store kept.
    srv.start()
    url = f"{srv.app_url}{upload_path}"
    head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.status_code == 200, f"{head.status_code} {head.text}\n{srv.output()}"
    kept = int(head.headers["Upload-Offset"])
    assert 7 * MiB < kept < len(data), kept
    fresh = tus.TusClient(files_url(srv))
    # A PATCH in flight at the kill leaves the dead process's lease on the
    # upload in the store until it expires (30 s): until then PATCHes get
    # 423, which tuspy retries when told to.
    up2 = fresh.uploader(
        file_path=str(path), url=url, chunk_size=3 * MiB + 1, upload_checksum=True, retries=5, retry_delay=1
    )
    assert up2.offset == kept
    up2.upload()
    assert up2.offset == len(data)
    assert up2.request.status_code == 204, up2.request.response_content
    check_object(srv, up2.request.response_headers.get("chute-receipt"), data, path.name)


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_tuspy_checksums_with_other_algorithms(backend, tmp_path, algorithm):
    """tuspy sends sha1 Upload-Checksums; its uploader class names the pair
    to use, so a subclass sends the other algorithms the server advertises."""

    class ChecksumUploader(Uploader):
        CHECKSUM_ALGORITHM_PAIR = (algorithm, getattr(hashlib, algorithm))

    opts = requests.options(files_url(backend), headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert algorithm in opts.headers.get("Tus-Checksum-Algorithm", "").split(","), opts.headers
    path, data = random_file(tmp_path, f"tuspy-{algorithm}.bin", 6 * MiB + 99)
    c = tus.TusClient(files_url(backend), headers={"Authorization": f"Bearer {grant(sub='tuspy')}"})
    up = ChecksumUploader(
        file_path=str(path),
        client=c,
        chunk_size=2 * MiB - 7,
        metadata={"filename": path.name, "filetype": "application/octet-stream"},
        upload_checksum=True,
    )
    up.upload()
    assert up.request.status_code == 204, up.request.response_content
    check_object(backend, up.request.response_headers.get("chute-receipt"), data, path.name)

    # The server did check them: a digest of other bytes is refused with 460.
    class WrongUploader(Uploader):
        CHECKSUM_ALGORITHM_PAIR = (algorithm, lambda chunk: getattr(hashlib, algorithm)(chunk + b"!"))

    bad = WrongUploader(file_path=str(path), client=c, chunk_size=MiB,
                        metadata={"filename": path.name, "filetype": "application/octet-stream"},
                        upload_checksum=True)
    with pytest.raises(TusUploadFailed) as failed:
        bad.upload_chunk()
    assert failed.value.status_code == 460, failed.value
    head = requests.head(bad.url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.headers["Upload-Offset"] == "0", head.headers
