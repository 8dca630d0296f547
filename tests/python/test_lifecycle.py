"""The upload lifecycle end to end against the real `chute serve`: grants,
signed direct uploads (POST form, PUT, multipart), completion checks,
receipts, promotion, abort; and the hostile inputs of issue 3, each
answered with a JSON error and leaving nothing behind.

Grants are minted with PyJWT, as an app in Python would.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import jwt
import pytest
import requests

from conftest import GRANT_KID, GRANT_SECRET

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
MiB = 1024 * 1024


def grant(**claims) -> str:
    body = {"aud": "chute", "exp": int(time.time()) + 600, "jti": uuid.uuid4().hex}
    body.update(claims)
    secret = claims.pop("_secret", GRANT_SECRET)
    body.pop("_secret", None)
    return jwt.encode(body, secret, algorithm="HS256", headers={"kid": GRANT_KID})


def api(chute, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{chute.app_url}{path}", headers=headers, timeout=60, **kw)


def create(chute, token=None, **body):
    body.setdefault("filename", "pic.png")
    body.setdefault("size", len(PNG))
    body.setdefault("type", "image/png")
    return api(chute, "POST", "/api/uploads", token, json=body)


def post_form(created, data: bytes, filename="pic.png", content_type=None):
    form = created["post"]
    files = {"file": (filename, data, content_type or form["fields"].get("content-type", "application/octet-stream"))}
    return requests.post(form["url"], data=form["fields"], files=files, timeout=60)


def error_code(r) -> str:
    assert r.headers.get("content-type", "").startswith("application/json"), r.text
    return r.json()["error"]["code"]


def tmp_keys(chute, upload_id):
    s3 = chute.client()
    out = s3.list_objects_v2(Bucket=chute.bucket, Prefix=f"tmp/{upload_id}/")
    return [o["Key"] for o in out.get("Contents", [])]


def upload_post(chute, token=None, data=PNG, **body):
    r = create(chute, token, size=len(data), **body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["method"] == "post"
    up = post_form(c, data)
    assert up.status_code in (200, 201, 204), up.text
    return c


def complete(chute, c):
    return api(chute, "POST", f"/api/uploads/{c['id']}/complete", c["token"])


# ------------------------------------------------------------------ happy paths


def test_post_form_upload_complete_verify_promote(backend):
    c = upload_post(backend, grant(template="avatars/{sub}/{uuid}{ext}", sub="user-42", types=["image/*"]))
    assert c["key"].startswith(f"tmp/{c['id']}/") and c["key"].endswith("pic.png")
    assert c["post"]["fields"]["key"] == c["key"]
    done = complete(backend, c)
    assert done.status_code == 200, done.text
    receipt = done.json()["receipt"]
    obj = done.json()["object"]
    assert obj["size"] == len(PNG) and obj["type"] == "image/png" and obj["key"] == c["key"]

    # Any JWT library verifies the receipt with the shared secret.
    claims = jwt.decode(receipt, GRANT_SECRET, algorithms=["HS256"], audience="chute-receipt")
    assert claims["etag"] == hashlib.md5(PNG).hexdigest()
    v = api(backend, "POST", "/api/receipts/verify", json={"receipt": receipt})
    assert v.status_code == 200 and v.json()["valid"] is True

    p1 = api(backend, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert p1.status_code == 200, p1.text
    key = p1.json()["key"]
    assert key.startswith("avatars/user-42/") and key.endswith(".png")
    # Idempotent: the same receipt promotes to the same key, once.
    p2 = api(backend, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert p2.status_code == 200 and p2.json()["key"] == key
    s3 = backend.client()
    assert s3.get_object(Bucket=backend.bucket, Key=key)["Body"].read() == PNG
    assert tmp_keys(backend, c["id"]) == []
    listed = s3.list_objects_v2(Bucket=backend.bucket, Prefix=f"avatars/user-42/")["Contents"]
    assert [o["Key"] for o in listed].count(key) == 1


def test_presigned_put_binds_length_type_and_checksum(backend):
    data = b"hello, plain text\n" * 100
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    r = create(backend, filename="notes.txt", size=len(data), type="text/plain", method="put",
               checksum={"algorithm": "sha256", "value": digest})
    assert r.status_code == 201, r.text
    put = r.json()["put"]
    headers = {k: v for k, v in put["headers"].items() if k != "content-length"}
    # Other bytes of the same length: the signed checksum refuses them.
    bad = requests.put(put["url"], data=data.upper(), headers=headers, timeout=30)
    assert bad.status_code == 400, bad.text
    # Another type: the signature refuses it.
    wrong_type = dict(headers, **{"content-type": "text/html"})
    assert requests.put(put["url"], data=data, headers=wrong_type, timeout=30).status_code == 403
    ok = requests.put(put["url"], data=data, headers=headers, timeout=30)
    assert ok.status_code == 200, ok.text
    done = complete(backend, r.json())
    assert done.status_code == 200, done.text
    assert done.json()["object"]["checksum"] == f"sha256:{digest}"


def test_multipart_resume_from_server_state(backend):
    size = 12 * MiB + 123
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    r = create(backend, filename="big.bin", size=size, type="application/octet-stream", method="multipart")
    assert r.status_code == 201, r.text
    c = r.json()
    mp = c["multipart"]
    assert mp["part_size"] == 5 * MiB and mp["part_count"] == 3 and len(mp["parts"]) == 3
    part = mp["parts"][0]
    up = requests.put(part["url"], data=data[: part["size"]], timeout=60)
    assert up.status_code == 200, up.text
    # "Reload": the client knows only the id and token, asks what is stored.
    st = api(backend, "GET", f"/api/uploads/{c['id']}", c["token"])
    assert st.status_code == 200, st.text
    assert st.json()["state"] == "uploading"
    assert [p["number"] for p in st.json()["parts"]] == [1]
    # Incomplete: completion refuses and keeps the parts.
    early = complete(backend, c)
    assert early.status_code == 409 and error_code(early) == "parts_incomplete"
    more = api(backend, "POST", f"/api/uploads/{c['id']}/parts", c["token"], json={"parts": [2, 3]})
    assert more.status_code == 200, more.text
    for p in more.json()["parts"]:
        start = (p["number"] - 1) * mp["part_size"]
        assert requests.put(p["url"], data=data[start:start + p["size"]], timeout=60).status_code == 200
    done = complete(backend, c)
    assert done.status_code == 200, done.text
    assert done.json()["object"]["size"] == size
    got = backend.client().get_object(Bucket=backend.bucket, Key=c["key"])["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # Completing again returns an equivalent receipt.
    again = complete(backend, c)
    assert again.status_code == 200 and again.json()["object"]["etag"] == done.json()["object"]["etag"]


def test_abort_removes_everything(backend):
    r = create(backend, filename="big.bin", size=6 * MiB, method="multipart")
    c = r.json()
    p = c["multipart"]["parts"][0]
    assert requests.put(p["url"], data=b"\0" * p["size"], timeout=60).status_code == 200
    d = api(backend, "DELETE", f"/api/uploads/{c['id']}", c["token"])
    assert d.status_code == 204, d.text
    s3 = backend.client()
    ups = s3.list_multipart_uploads(Bucket=backend.bucket, Prefix=c["key"]).get("Uploads", [])
    assert ups == []
    assert tmp_keys(backend, c["id"]) == []


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    "token,code",
    [
        (lambda: grant(exp=int(time.time()) - 5), "token_expired"),
        (lambda: grant(aud="someone-else"), "token_wrong_audience"),
        (lambda: grant(_secret="x" * 40), "token_bad_signature"),
        (lambda: grant()[:-3] + "abc", "token_bad_signature"),
        (lambda: "not-a-jwt", "token_malformed"),
        (lambda: jwt.encode({"aud": "chute", "exp": int(time.time()) + 60}, GRANT_SECRET, algorithm="HS256",
                            headers={"kid": "other-kid"}), "token_unknown_key"),
    ],
)
def test_bad_grants_are_refused(backend, token, code):
    r = create(backend, token())
    assert r.status_code in (401, 403), r.text
    assert error_code(r) == code


def test_grant_limits_at_creation(backend):
    small = grant(max_size=100)
    r = create(backend, small, size=101)
    assert r.status_code == 413 and error_code(r) == "too_large"
    r = create(backend, grant(types=["image/*"]), filename="x.pdf", type="application/pdf")
    assert r.status_code == 422 and error_code(r) == "type_not_allowed"
    r = create(backend, grant(extensions=[".png"]), filename="x.exe")
    assert r.status_code == 422 and error_code(r) == "extension_not_allowed"


def test_grant_used_beyond_max_files(backend):
    g = grant(max_files=2)
    assert create(backend, g).status_code == 201
    assert create(backend, g).status_code == 201
    third = create(backend, g)
    assert third.status_code == 403 and error_code(third) == "max_files_reached"


def test_post_form_refuses_more_bytes_than_granted(backend):
    r = create(backend, grant(max_size=len(PNG)), size=len(PNG))
    c = r.json()
    up = post_form(c, PNG + b"extra")
    # S3 and the embedded store say EntityTooLarge; Garage says InvalidRequest.
    assert up.status_code == 400, up.text
    assert tmp_keys(backend, c["id"]) == []


def test_html_named_png_is_rejected_and_deleted(backend):
    html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
    c = upload_post(backend, grant(types=["image/*"]), data=html, filename="cat.png", type="image/png")
    assert tmp_keys(backend, c["id"]) != []
    done = complete(backend, c)
    assert done.status_code == 422 and error_code(done) == "type_mismatch"
    assert tmp_keys(backend, c["id"]) == []


def test_swapped_upload_id_or_token(backend):
    a = create(backend).json()
    b = create(backend).json()
    # b's token on a's id.
    r = api(backend, "POST", f"/api/uploads/{a['id']}/complete", b["token"])
    assert r.status_code == 403 and error_code(r) == "upload_mismatch"
    # A grant is not an upload token.
    r = api(backend, "GET", f"/api/uploads/{a['id']}", grant())
    assert r.status_code == 403 and error_code(r) == "token_wrong_audience"
    r = api(backend, "GET", f"/api/uploads/{a['id']}")
    assert r.status_code == 401


def test_the_post_form_is_bound_to_its_key(backend):
    c = create(backend).json()
    fields = dict(c["post"]["fields"], key="avatars/someone-else.png")
    up = requests.post(c["post"]["url"], data=fields, files={"file": ("pic.png", PNG, "image/png")}, timeout=30)
    # S3 and the embedded store answer 403 AccessDenied; Garage 400 InvalidRequest.
    assert up.status_code in (400, 403), up.text
    assert backend.client().list_objects_v2(Bucket=backend.bucket, Prefix="avatars/someone-else").get("KeyCount") == 0


def test_part_urls_only_for_the_uploads_parts(backend):
    c = create(backend, filename="big.bin", size=6 * MiB, method="multipart").json()
    for body in ({"parts": [3]}, {"parts": [0]}, {"parts": []}, {"parts": "1"}):
        r = api(backend, "POST", f"/api/uploads/{c['id']}/parts", c["token"], json=body)
        assert r.status_code in (400, 422), (body, r.text)
        assert "error" in r.json()


def test_part_of_wrong_size_is_refused_by_the_store(backend):
    c = create(backend, filename="big.bin", size=6 * MiB, method="multipart").json()
    p = c["multipart"]["parts"][1]
    r = requests.put(p["url"], data=b"\0" * (p["size"] + 1), timeout=30)
    assert r.status_code == 403, r.text


def test_tampered_and_expired_receipts(backend):
    c = upload_post(backend, grant(template="docs/{uuid}{ext}"))
    receipt = complete(backend, c).json()["receipt"]
    head, body, sig = receipt.split(".")
    claims = jwt.decode(receipt, options={"verify_signature": False})
    claims["key"] = "avatars/admin.png"
    forged_body = base64.urlsafe_b64encode(
        __import__("json").dumps(claims).encode()).rstrip(b"=").decode()
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    for bad in (f"{head}.{forged_body}.{sig}", f"{head}.{body}.{flipped}"):
        r = api(backend, "POST", "/api/receipts/verify", json={"receipt": bad})
        assert r.status_code == 401 and error_code(r) == "token_bad_signature"
        r = api(backend, "POST", "/api/objects/promote", json={"receipt": bad})
        assert r.status_code == 401
    expired = jwt.encode(dict(claims, exp=int(time.time()) - 1, key=c["key"]), GRANT_SECRET,
                         algorithm="HS256", headers={"kid": GRANT_KID})
    r = api(backend, "POST", "/api/receipts/verify", json={"receipt": expired})
    assert r.status_code == 401 and error_code(r) == "token_expired"
    # A grant is not a receipt.
    r = api(backend, "POST", "/api/receipts/verify", json={"receipt": grant()})
    assert r.status_code == 403 and error_code(r) == "token_wrong_audience"


def test_promotion_outside_the_template(backend):
    c = upload_post(backend, grant(template="avatars/{sub}/{uuid}{ext}", sub="u1"))
    receipt = complete(backend, c).json()["receipt"]
    for template, code in [
        ("public/{uuid}{ext}", "key_not_allowed"),
        ("avatars/../../etc/{uuid}", "key_not_allowed"),
    ]:
        r = api(backend, "POST", "/api/objects/promote", json={"receipt": receipt, "template": template})
        assert r.status_code == 403 and error_code(r) == code, r.text
    # With a prefix grant, `..` in the template is refused as a bad key.
    c2 = upload_post(backend, grant(prefix="docs/"))
    r2 = complete(backend, c2).json()["receipt"]
    r = api(backend, "POST", "/api/objects/promote", json={"receipt": r2, "template": "docs/../{uuid}"})
    assert r.status_code == 400 and error_code(r) == "bad_template", r.text
    r = api(backend, "POST", "/api/objects/promote", json={"receipt": r2, "template": "tmp/{uuid}"})
    assert r.status_code == 403 and error_code(r) == "key_not_allowed", r.text
    # The object is still there, unpromoted.
    assert tmp_keys(backend, c2["id"]) != []


def test_completion_before_upload_and_malformed_bodies(backend):
    c = create(backend).json()
    r = complete(backend, c)
    assert r.status_code == 409 and error_code(r) == "not_uploaded"
    for body in (b"{", b"[]", b'{"filename": 5}', b'{"filename":"a","size":-1}', b'{"filename":"a","size":1,"evil":1}'):
        r = api(backend, "POST", "/api/uploads", headers={"content-type": "application/json"}, data=body)
        assert r.status_code in (400, 415, 422), (body, r.text)
        assert "error" in r.json()
    r = api(backend, "POST", "/api/uploads", data=b"filename=a", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and error_code(r) == "need_json"
    r = api(backend, "POST", "/api/uploads", json={"filename": "a" * 100, "size": 1, "pad": "x" * 100_000})
    assert r.status_code == 413


def test_filename_traversal_is_sanitised(backend):
    c = create(backend, filename="../../../etc/passwd", type="text/plain", size=3).json()
    assert c["key"] == f"tmp/{c['id']}/passwd"
    c = create(backend, filename="..\\..\\boot.ini", type="text/plain", size=3).json()
    assert c["key"] == f"tmp/{c['id']}/boot.ini"


def test_cors_for_a_page_on_another_loopback_port(backend):
    origin = "http://localhost:5173"
    pre = requests.options(f"{backend.app_url}/api/uploads", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"}, timeout=10)
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == origin
    r = requests.post(
        f"{backend.app_url}/api/uploads", json={"filename": "a.png", "size": len(PNG), "type": "image/png"},
        headers={"Origin": origin}, timeout=10)
    assert r.headers["access-control-allow-origin"] == origin
    evil = requests.options(f"{backend.app_url}/api/uploads", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert "access-control-allow-origin" not in evil.headers
    # The store answers the same page's preflight.
    s3pre = requests.options(f"{backend.endpoint}/{backend.bucket}", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"}, timeout=10)
    assert s3pre.status_code == 200, s3pre.text


def test_bytes_replaced_after_completion_are_not_promoted(backend):
    # The PUT URL stays valid after completion: a client may swap the
    # checked bytes for others of the same length before promotion.
    good = b"%PDF-1.4\n" + b"0" * 500
    r = create(backend, filename="doc.pdf", size=len(good), type="application/pdf", method="put")
    c = r.json()
    headers = {k: v for k, v in c["put"]["headers"].items() if k != "content-length"}
    assert requests.put(c["put"]["url"], data=good, headers=headers, timeout=30).status_code == 200
    done = complete(backend, c)
    assert done.status_code == 200, done.text
    evil = b"<html><script>x</script>" + b" " * (len(good) - 24)
    assert len(evil) == len(good)
    assert requests.put(c["put"]["url"], data=evil, headers=headers, timeout=30).status_code == 200
    p = api(backend, "POST", "/api/objects/promote", json={"receipt": done.json()["receipt"]})
    assert p.status_code == 409 and error_code(p) == "object_changed", p.text
    listed = backend.client().list_objects_v2(Bucket=backend.bucket, Prefix="uploads/").get("Contents", [])
    assert all(o["Size"] != len(good) or o["ETag"].strip('"') != hashlib.md5(evil).hexdigest() for o in listed)


def test_open_grant_never_lets_the_client_choose_the_key(backend):
    c = upload_post(backend)
    receipt = complete(backend, c).json()["receipt"]
    r = api(backend, "POST", "/api/objects/promote", json={"receipt": receipt, "template": "avatars/alice.png"})
    assert r.status_code == 403 and error_code(r) == "key_not_allowed", r.text
    ok = api(backend, "POST", "/api/objects/promote", json={"receipt": receipt})
    assert ok.status_code == 200 and ok.json()["key"].startswith("uploads/"), ok.text
    head = backend.client().head_object(Bucket=backend.bucket, Key=ok.json()["key"])
    # The promoted object is served with the verified type.
    assert head["ContentType"] == "image/png"


@pytest.mark.parametrize("honest", [True, False])
def test_multipart_whole_object_checksum_is_verified(backend, honest):
    size = 5 * MiB + 10
    data = bytes((i * 7) % 251 for i in range(size))
    declared = hashlib.sha256(data if honest else data[::-1]).digest()
    r = create(backend, filename="v.bin", size=size, method="multipart", type="application/octet-stream",
               checksum={"algorithm": "sha256", "value": base64.b64encode(declared).decode()})
    assert r.status_code == 201, r.text
    c = r.json()
    for p in c["multipart"]["parts"]:
        start = (p["number"] - 1) * c["multipart"]["part_size"]
        assert requests.put(p["url"], data=data[start:start + p["size"]], timeout=60).status_code == 200
    done = complete(backend, c)
    if honest:
        assert done.status_code == 200, done.text
        assert done.json()["object"]["checksum"].startswith("sha256:")
    else:
        assert done.status_code == 422 and error_code(done) == "checksum_mismatch", done.text
        assert tmp_keys(backend, c["id"]) == []
