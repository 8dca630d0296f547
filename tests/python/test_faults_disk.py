"""Disk full on the embedded store: `chute serve` runs over a small tmpfs
mounted by the test (root is needed to mount it; the suite runs as root
here and in CI, and fails loudly otherwise). With the disk nearly full,
every upload path that does not fit is refused with 507 (S3 XML
`InsufficientStorage` on the S3 listener; `insufficient_storage` from the
API, tus and stream routes); objects stored before stay byte-identical,
nothing partial is visible, temp files are removed so the space comes
back, and once objects are deleted the same uploads succeed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jwt
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import TUS, ChuteServer, MiB, api, bucket_keys, form_body, grant, open_uploads, tus_create, tus_patch
from s3util import temp_files

DISK_MIB = 48
SIZE = 8 * MiB  # every refused upload: more than the room left


@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        pytest.fail("test_faults_disk mounts a tmpfs and needs root (scripts/test runs as root in CI)")
    work = Path(tempfile.mkdtemp(prefix="chute-disk-"))
    srv = ChuteServer(work)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(srv.data_dir)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"mount -t tmpfs failed ({out.returncode}): {out.stderr}")
    try:
        srv.extra_env = {"CHUTE_REAP_INTERVAL_SECONDS": "0", "CHUTE_TUS_PART_SIZE": str(5 * MiB),
                         "CHUTE_STREAM_PART_SIZE": str(5 * MiB)}
        srv.start()
        yield srv
    finally:
        srv.kill()
        subprocess.run(["umount", str(srv.data_dir)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def free_bytes(srv) -> int:
    st = os.statvfs(srv.data_dir)
    return st.f_bavail * st.f_frsize


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def create(srv, name: str, size: int, method: str, typ="application/octet-stream"):
    r = api(srv, "POST", "/api/uploads", grant(), json={"filename": name, "size": size, "type": typ, "method": method})
    assert r.status_code == 201, r.text
    return r.json()


def post_form(c, data: bytes):
    form = c["post"]
    return requests.post(form["url"], data=form["fields"],
                         files={"file": ("f.bin", data, form["fields"].get("content-type", "application/octet-stream"))},
                         timeout=60)


def s3_status(call) -> tuple[int, str]:
    try:
        call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, ""


def is_insufficient(r: requests.Response, json_api: bool = True) -> str | None:
    """None when `r` is the expected 507, else what it was."""
    if r.status_code != 507:
        return f"{r.status_code} {r.text[:200]}"
    if json_api:
        if not r.headers.get("content-type", "").startswith("application/json"):
            return f"507 but not JSON: {r.text[:200]}"
        if r.json()["error"]["code"] != "insufficient_storage":
            return f"507 with code {r.json()['error']['code']}"
    elif not r.text.startswith("insufficient_storage: "):
        return f"507 with text {r.text[:200]}"
    return None


def test_disk_full_is_507_without_damage_and_recovers(small_disk):
    srv = small_disk
    s3 = srv.client()
    b = srv.bucket

    # Stored before the disk fills: they must survive byte for byte.
    kept = {f"kept/{i}.bin": os.urandom(n) for i, n in enumerate([1 * MiB, 3 * MiB + 5])}
    for k, v in kept.items():
        s3.put_object(Bucket=b, Key=k, Body=v)
    # Under way before: a multipart upload with its parts stored (its
    # completion writes the whole object again), and a completed upload
    # whose promotion copies it.
    mp_data = os.urandom(5 * MiB + 1234)
    mp = create(srv, "mp.bin", len(mp_data), "multipart")
    for p in mp["multipart"]["parts"]:
        start = (p["number"] - 1) * mp["multipart"]["part_size"]
        assert requests.put(p["url"], data=mp_data[start:start + p["size"]], timeout=60).status_code == 200
    pr_data = os.urandom(5 * MiB)
    pr = create(srv, "pr.bin", len(pr_data), "post")
    assert post_form(pr, pr_data).status_code in (200, 201, 204)
    done = api(srv, "POST", f"/api/uploads/{pr['id']}/complete", pr["token"])
    assert done.status_code == 200, done.text
    receipt = done.json()["receipt"]
    tus_data = os.urandom(SIZE)
    r = tus_create(srv, len(tus_data))
    assert r.status_code == 201, r.text
    tus_url = srv.app_url + r.headers["Location"]
    s3mp = s3.create_multipart_upload(Bucket=b, Key="full/mp.bin")["UploadId"]

    # Fill the disk, leaving about 3 MiB.
    filler = free_bytes(srv) - 3 * MiB
    assert filler > SIZE, f"the tmpfs has too little room left: {free_bytes(srv)}"
    s3.put_object(Bucket=b, Key="filler.bin", Body=os.urandom(filler))
    before = bucket_keys(s3, b), open_uploads(s3, b)
    room = free_bytes(srv)
    assert room < 4 * MiB, room

    big = os.urandom(SIZE)
    wrong = []

    # The S3 listener: PUT, POST form, a multipart part.
    st = s3_status(lambda: s3.put_object(Bucket=b, Key="full/put.bin", Body=big))
    if st != (507, "InsufficientStorage"):
        wrong.append(f"S3 PUT: {st}")
    form = create(srv, "form.bin", SIZE, "post")
    r = post_form(form, big)
    if r.status_code != 507 or b"<Code>InsufficientStorage</Code>" not in r.content:
        wrong.append(f"S3 POST form: {r.status_code} {r.text[:200]}")
    st = s3_status(lambda: s3.upload_part(Bucket=b, Key="full/mp.bin", UploadId=s3mp, PartNumber=1, Body=big))
    if st != (507, "InsufficientStorage"):
        wrong.append(f"S3 UploadPart: {st}")

    # The API, tus and stream routes.
    r = api(srv, "POST", f"/api/uploads/{mp['id']}/complete", mp["token"])
    if why := is_insufficient(r):
        wrong.append(f"API complete: {why}")
    r = api(srv, "POST", "/api/objects/promote", json={"receipt": receipt})
    if why := is_insufficient(r):
        wrong.append(f"API promote: {why}")
    r = tus_patch(tus_url, tus_data, 0)
    if why := is_insufficient(r, json_api=False):
        wrong.append(f"tus PATCH: {why}")
    boundary = "full-boundary"
    r = api(srv, "POST", "/api/stream", grant(), data=form_body(boundary, "sf.bin", big),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    if why := is_insufficient(r):
        wrong.append(f"stream form: {why}")
    r = api(srv, "PUT", "/api/stream/sr.bin", grant(), data=big)
    if why := is_insufficient(r):
        wrong.append(f"stream raw: {why}")
    assert wrong == [], "\n".join(wrong)

    # Nothing partial, no temp file left, the space is back, nothing damaged.
    assert (bucket_keys(s3, b), open_uploads(s3, b)) == before
    assert s3.list_parts(Bucket=b, Key="full/mp.bin", UploadId=s3mp).get("Parts", []) == []
    assert temp_files(srv.data_dir) == []
    assert free_bytes(srv) >= room - 256 * 1024, (free_bytes(srv), room)
    r = requests.head(tus_url, headers=TUS, timeout=60)
    assert r.status_code == 200 and r.headers["Upload-Offset"] == "0", r.headers
    for k, v in kept.items():
        assert sha(s3.get_object(Bucket=b, Key=k)["Body"].read()) == sha(v), k

    # Completely full: writes of a few bytes (metadata, upload state) fail
    # the same way, and free what they took.
    n = 0
    for step in (MiB, 64 * 1024, 4096, 1):
        while s3_status(lambda: s3.put_object(Bucket=b, Key=f"fill/{n}", Body=os.urandom(step)))[0] == 200:
            n += 1
    wrong = []
    st = s3_status(lambda: s3.create_multipart_upload(Bucket=b, Key="full/mp2.bin"))
    if st != (507, "InsufficientStorage"):
        wrong.append(f"S3 CreateMultipartUpload: {st}")
    r = api(srv, "POST", "/api/uploads", grant(), json={"filename": "x.bin", "size": SIZE,
                                                        "type": "application/octet-stream", "method": "multipart"})
    if why := is_insufficient(r):
        wrong.append(f"API create multipart: {why}")
    r = requests.post(f"{srv.app_url}/files/", headers={**TUS, "Authorization": f"Bearer {grant()}",
                                                          "Upload-Length": "10"}, timeout=60)
    if why := is_insufficient(r, json_api=False):
        wrong.append(f"tus create: {why}")
    assert wrong == [], "\n".join(wrong)
    assert temp_files(srv.data_dir) == []
    for i in range(n):
        s3.delete_object(Bucket=b, Key=f"fill/{i}")

    # Space frees: the same uploads succeed.
    s3.delete_object(Bucket=b, Key="filler.bin")
    s3.put_object(Bucket=b, Key="full/put.bin", Body=big)
    s3.delete_object(Bucket=b, Key="full/put.bin")
    part = s3.upload_part(Bucket=b, Key="full/mp.bin", UploadId=s3mp, PartNumber=1, Body=big)
    s3.complete_multipart_upload(Bucket=b, Key="full/mp.bin", UploadId=s3mp,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert sha(s3.get_object(Bucket=b, Key="full/mp.bin")["Body"].read()) == sha(big)
    s3.delete_object(Bucket=b, Key="full/mp.bin")

    r = api(srv, "POST", f"/api/uploads/{mp['id']}/complete", mp["token"])
    assert r.status_code == 200, r.text
    assert sha(s3.get_object(Bucket=b, Key=mp["key"])["Body"].read()) == sha(mp_data)
    r = api(srv, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert r.status_code == 200, r.text
    assert sha(s3.get_object(Bucket=b, Key=r.json()["key"])["Body"].read()) == sha(pr_data)

    r = tus_patch(tus_url, tus_data, 0)
    assert r.status_code == 204, r.text
    tus_key = jwt.decode(r.headers["Chute-Receipt"], options={"verify_signature": False})["key"]
    assert sha(s3.get_object(Bucket=b, Key=tus_key)["Body"].read()) == sha(tus_data)
    s3.delete_object(Bucket=b, Key=tus_key)

    r = api(srv, "PUT", "/api/stream/sr.bin", grant(), data=big)
    assert r.status_code in (200, 201), r.text
    for k, v in kept.items():
        assert sha(s3.get_object(Bucket=b, Key=k)["Body"].read()) == sha(v), k
    assert temp_files(srv.data_dir) == []
