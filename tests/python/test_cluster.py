"""Every upload path through the local cluster of deploy/local-cluster: 3
Garage nodes (replication factor 3), 3 `chute serve` instances, nginx round
robin in front of the instances and of Garage's S3 API (the store URL the
instances sign). Calls go through nginx unless a test names instances, to
make "this call on another instance" deterministic: an upload is created on
one instance, its parts signed, its bytes patched, completed, verified and
promoted on others.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import uuid

import pytest
import requests

from conftest import OCTETS, TUS, MiB, api, tus_metadata


@pytest.fixture(autouse=True)
def _all_up(cluster):
    cluster.ensure_all_up()
    yield


def data_of(size: int, seed: int = 0) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def check_stored(cluster, key: str, data: bytes) -> None:
    assert cluster.sha256_of(key) == (len(data), hashlib.sha256(data).hexdigest())


def verify_everywhere(cluster, receipt: str) -> dict:
    """The receipt verifies on every instance and through nginx."""
    claims = cluster.verify_receipt(receipt)
    for base in cluster.instances + [cluster.lb]:
        v = api(base, "POST", "/api/receipts/verify", json={"receipt": receipt})
        assert v.status_code == 200 and v.json()["valid"] is True, (base, v.text)
    return claims


def promote(cluster, base: str, receipt: str, data: bytes) -> str:
    p = api(base, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert p.status_code == 200, p.text
    key = p.json()["key"]
    cluster.remember(key)
    check_stored(cluster, key, data)
    return key


def finish(cluster, receipt: str, key: str, data: bytes, promote_on: str) -> None:
    cluster.remember(key)
    assert verify_everywhere(cluster, receipt)["key"] == key
    check_stored(cluster, key, data)
    promote(cluster, promote_on, receipt, data)


def create(cluster, base: str, data: bytes, method: str, name: str = "f.bin") -> dict:
    r = api(base, "POST", "/api/uploads", cluster.grant(),
            json={"filename": name, "size": len(data), "type": "application/octet-stream", "method": method})
    assert r.status_code == 201, r.text
    c = r.json()
    # The URLs the instances sign point at nginx's S3 port.
    assert c[method]["url" if method != "multipart" else "parts"]
    return c


def complete(base: str, c: dict) -> tuple[str, str]:
    r = api(base, "POST", f"/api/uploads/{c['id']}/complete", c["token"])
    assert r.status_code == 200, r.text
    return r.json()["receipt"], r.json()["object"]["key"]


def test_the_cluster_balances_round_robin(cluster):
    """No stickiness: consecutive requests through nginx reach every
    instance (nginx's access log names the upstream)."""
    s = requests.Session()
    tag = uuid.uuid4().hex
    for _ in range(9):
        assert s.get(f"{cluster.lb}/healthz?rr={tag}", timeout=10).status_code == 200
    log = (cluster.dir / "logs" / "nginx-access.log").read_text()
    served = [line.split("upstream=")[1].split()[0] for line in log.splitlines() if tag in line]
    # Each nginx worker keeps its own round robin: all three serve, in some order.
    assert len(served) == 9 and set(served) == {u.removeprefix("http://") for u in cluster.instances}, served
    c = create(cluster, cluster.lb, b"x", "post")
    assert c["post"]["url"].startswith(cluster.s3_url), c["post"]["url"]


def test_post_form_created_completed_and_promoted_on_different_instances(cluster):
    a, b, c3 = cluster.instances
    data = data_of(300 * 1024, 1)
    c = create(cluster, a, data, "post")
    form = c["post"]
    up = requests.post(form["url"], data=form["fields"], timeout=60,
                       files={"file": ("f.bin", data, form["fields"].get("content-type", "application/octet-stream"))})
    assert up.status_code in (200, 201, 204), up.text
    receipt, key = complete(b, c)
    finish(cluster, receipt, key, data, c3)


def test_presigned_put_through_nginx_completed_elsewhere(cluster):
    a, b, c3 = cluster.instances
    data = data_of(1 * MiB + 17, 2)
    c = create(cluster, c3, data, "put")
    put = c["put"]
    headers = {k: v for k, v in put["headers"].items() if k.lower() != "content-length"}
    r = requests.put(put["url"], data=data, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    receipt, key = complete(a, c)
    finish(cluster, receipt, key, data, b)


@pytest.mark.parametrize("route", ["instances", "nginx"])
def test_multipart_parts_signed_and_completed_on_different_instances(cluster, route):
    insts = cluster.instances if route == "instances" else [cluster.lb] * 3
    size = 11 * MiB + 5
    data = data_of(size, 3)
    c = create(cluster, insts[0], data, "multipart")
    mp = c["multipart"]
    assert mp["part_count"] == 3
    ps = mp["part_size"]
    # Each part's URL signed by another instance, then each part sent.
    for n in (1, 2, 3):
        r = api(insts[n % 3], "POST", f"/api/uploads/{c['id']}/parts", c["token"], json={"parts": [n]})
        assert r.status_code == 200, r.text
        part = r.json()["parts"][0]
        body = data[(n - 1) * ps:(n - 1) * ps + part["size"]]
        up = requests.put(part["url"], data=body, headers=part.get("headers") or {}, timeout=60)
        assert up.status_code == 200, up.text
        # Any instance sees the parts held so far.
        st = api(insts[(n + 1) % 3], "GET", f"/api/uploads/{c['id']}", c["token"])
        assert st.status_code == 200 and [p["number"] for p in st.json()["parts"]] == list(range(1, n + 1)), st.text
    receipt, key = complete(insts[1], c)
    finish(cluster, receipt, key, data, insts[2])


@pytest.mark.parametrize("route", ["instances", "nginx"])
def test_tus_patches_alternating_between_instances(cluster, route):
    insts = cluster.instances if route == "instances" else [cluster.lb] * 3
    data = data_of(7 * MiB + 333, 4)
    h = {**TUS, "Authorization": f"Bearer {cluster.grant()}", "Upload-Length": str(len(data)),
         "Upload-Metadata": tus_metadata("alt.bin")}
    r = requests.post(f"{insts[0]}/files/", headers=h, timeout=60)
    assert r.status_code == 201, r.text
    path = r.headers["Location"]
    at, i, last = 0, 1, None
    chunk = 1536 * 1024  # parts are 8 MiB: patches leave tails for the next instance
    while at < len(data):
        base = insts[i % 3]
        # Each instance sees the offset the previous one left.
        head = requests.head(f"{base}{path}", headers=TUS, timeout=30)
        assert head.status_code == 200 and int(head.headers["Upload-Offset"]) == at
        last = requests.patch(f"{base}{path}", data=data[at:at + chunk], timeout=120,
                              headers={**TUS, "Content-Type": OCTETS, "Upload-Offset": str(at)})
        assert last.status_code == 204, last.text
        at = int(last.headers["Upload-Offset"])
        i += 1
    receipt = last.headers["Chute-Receipt"]
    # A HEAD on another instance repeats the receipt.
    again = requests.head(f"{insts[i % 3]}{path}", headers=TUS, timeout=30)
    assert again.headers.get("Chute-Receipt") == receipt
    key = cluster.verify_receipt(receipt)["key"]
    finish(cluster, receipt, key, data, insts[(i + 1) % 3])


def test_streamed_form_and_raw_body_through_nginx(cluster):
    a, b = os.urandom(6 * MiB + 7), os.urandom(123)
    r = requests.post(f"{cluster.lb}/api/stream", headers={"Authorization": f"Bearer {cluster.grant()}"},
                      data={"title": "cluster"}, timeout=120,
                      files=[("big", ("big.bin", a, "application/octet-stream")),
                             ("small", ("small.bin", b, "application/octet-stream"))])
    assert r.status_code == 201, r.text
    assert r.json()["fields"] == {"title": "cluster"}
    files = {f["field"]: f for f in r.json()["files"]}
    for field, data, on in (("big", a, cluster.instances[0]), ("small", b, cluster.instances[2])):
        f = files[field]
        finish(cluster, f["receipt"], f["object"]["key"], data, on)
    raw = os.urandom(2 * MiB)
    r = requests.put(f"{cluster.lb}/api/stream/raw.bin", data=raw, timeout=120,
                     headers={"Authorization": f"Bearer {cluster.grant()}", "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    f = r.json()["files"][0]
    finish(cluster, f["receipt"], f["object"]["key"], raw, cluster.instances[1])


def test_companion_multipart_across_instances(cluster):
    a, b, c3 = cluster.instances
    auth = {"Authorization": f"Bearer {cluster.grant(sub='uppy-user')}"}
    data = data_of(9 * MiB + 1, 5)  # two parts: 5 MiB and 4 MiB + 1
    r = requests.post(f"{a}/s3/multipart", headers=auth, timeout=30,
                      json={"filename": "uppy.bin", "type": "application/octet-stream", "metadata": {"size": len(data)}})
    assert r.status_code == 200, r.text
    key, upload_id = r.json()["key"], r.json()["uploadId"]
    uid = urllib.parse.quote(upload_id, safe="")
    q = urllib.parse.urlencode({"key": key, "partNumbers": "1,2"})
    r = requests.get(f"{b}/s3/multipart/{uid}/batch?{q}", headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    urls = r.json()["presignedUrls"]
    etags = []
    for n in (1, 2):
        body = data[(n - 1) * 5 * MiB:n * 5 * MiB] if n == 1 else data[5 * MiB:]
        up = requests.put(urls[str(n)], data=body, timeout=60)
        assert up.status_code == 200, up.text
        etags.append({"PartNumber": n, "ETag": up.headers["ETag"]})
    listed = requests.get(f"{c3}/s3/multipart/{uid}?{urllib.parse.urlencode({'key': key})}", headers=auth, timeout=30)
    assert listed.status_code == 200 and [p["PartNumber"] for p in listed.json()] == [1, 2], listed.text
    done = requests.post(f"{cluster.lb}/s3/multipart/{uid}/complete?{urllib.parse.urlencode({'key': key})}",
                         headers=auth, json={"parts": etags}, timeout=60)
    assert done.status_code == 200, done.text
    finish(cluster, done.json()["receipt"], key, data, a)


def test_companion_post_params_then_completion_elsewhere(cluster):
    a, b, _ = cluster.instances
    data = data_of(2000, 6)
    q = urllib.parse.urlencode({"filename": "p.bin", "type": "application/octet-stream", "metadata[size]": len(data)})
    r = requests.get(f"{a}/s3/params?{q}", headers={"Authorization": f"Bearer {cluster.grant()}"}, timeout=30)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["method"] == "POST" and p["url"].startswith(cluster.s3_url)
    up = requests.post(p["url"], data=p["fields"], files={"file": ("p.bin", data, "application/octet-stream")}, timeout=60)
    assert up.status_code in (200, 201, 204), up.text
    receipt, key = complete(b, p)
    finish(cluster, receipt, key, data, cluster.lb)


def test_completion_retried_after_the_store_completed_the_upload(cluster):
    """An instance killed after Garage completed the multipart upload but
    before it answered (seen in test_cluster_faults.py): Garage then lists
    the upload as having no parts, not as gone. The retried completion on
    another instance finds the object and gives the receipt."""
    a, b, _ = cluster.instances
    data = data_of(150_000, 7)
    c = create(cluster, a, data, "multipart")
    part = c["multipart"]["parts"][0]
    up = requests.put(part["url"], data=data, headers=part.get("headers") or {}, timeout=60)
    assert up.status_code == 200, up.text
    # What the killed instance had done: the store's completion.
    cluster.s3.complete_multipart_upload(
        Bucket=cluster.bucket, Key=c["key"], UploadId=c["multipart"]["upload_id"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": up.headers["ETag"]}]})
    receipt, key = complete(b, c)
    finish(cluster, receipt, key, data, a)
