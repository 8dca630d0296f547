"""examples/python/chute_tokens.py against the real `chute serve`: a grant
minted by the example creates an upload, the server enforces its limits,
and the receipt Chute answers verifies with the example; forged, tampered,
expired, foreign and wrong-algorithm receipts are refused by the example
and by Chute alike. The Django view is in test_examples_django.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

import jwt
import pytest
import requests

from conftest import GRANT_KID, GRANT_SECRET, REPO, ChuteServer

sys.path.insert(0, str(REPO / "examples" / "python"))
import chute_tokens  # noqa: E402
from chute_tokens import Key, ReceiptError, mint_grant, parse_key, verify_receipt  # noqa: E402

KEYS = [parse_key(f"{GRANT_KID}:{GRANT_SECRET}")]
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


def create(chute, grant: str, data: bytes = PNG, filename: str = "me.png", type: str = "image/png"):
    return requests.post(f"{chute.app_url}/api/uploads", headers={"Authorization": f"Bearer {grant}"},
                         json={"filename": filename, "size": len(data), "type": type}, timeout=30)


def upload(chute, grant: str, data: bytes = PNG, filename: str = "me.png", type: str = "image/png") -> tuple[str, dict]:
    """Creates an upload with `grant`, sends the bytes with its POST form to
    the embedded store, completes it: (receipt, the create answer)."""
    r = create(chute, grant, data, filename, type)
    assert r.status_code == 201, r.text
    c = r.json()
    form = c["post"]
    sent = requests.post(form["url"], data=form["fields"], files={"file": (filename, data, type)}, timeout=30)
    assert sent.status_code in (200, 201, 204), sent.text
    done = requests.post(f"{chute.app_url}/api/uploads/{c['id']}/complete",
                         headers={"Authorization": f"Bearer {c['token']}"}, timeout=30)
    assert done.status_code == 200, done.text
    return done.json()["receipt"], c


def chute_verdict(chute, receipt: str) -> str | None:
    """Chute's own word on a receipt: None when valid, else its error code."""
    r = requests.post(f"{chute.app_url}/api/receipts/verify", json={"receipt": receipt}, timeout=30)
    return None if r.status_code == 200 else r.json()["error"]["code"]


def refused(token: str, **kw) -> str:
    with pytest.raises(ReceiptError) as e:
        verify_receipt(token, keys=kw.pop("keys", KEYS), **kw)
    return e.value.code


def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_signed(header, payload, secret: str = GRANT_SECRET) -> str:
    """A token of any shape with a valid HS256 signature."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def test_grant_upload_and_receipt_round_trip(chute):
    grant = mint_grant("user-7", keys=KEYS, max_size=1024, types=["image/*"], extensions=[".png"],
                       template="avatars/{sub}/{uuid}{ext}", metadata={"purpose": "avatar"})
    assert jwt.get_unverified_header(grant) == {"alg": "HS256", "typ": "JWT", "kid": GRANT_KID}
    receipt, created = upload(chute, grant)
    claims = verify_receipt(receipt, keys=KEYS, subject="user-7", metadata={"purpose": "avatar"})
    assert claims["key"] == created["key"] and claims["jti"] == created["id"]
    assert claims["size"] == len(PNG) and claims["type"] == "image/png" and claims["filename"] == "me.png"
    assert claims["etag"] == hashlib.md5(PNG).hexdigest() and claims["bucket"] == chute.bucket
    assert claims["aud"] == "chute-receipt" and claims["exp"] > time.time()
    # The grant travels inside the receipt, under Chute's own field names.
    assert claims["grant"]["subject"] == "user-7" and claims["grant"]["max_size"] == 1024
    assert claims["grant"]["template"] == "avatars/{sub}/{uuid}{ext}"
    assert jwt.get_unverified_header(receipt)["kid"] == GRANT_KID
    # The key from the environment, as Chute reads it, works the same.
    env = {"CHUTE_GRANT_SECRET": f"{GRANT_KID}:{GRANT_SECRET}"}
    assert verify_receipt(receipt, keys=chute_tokens.keys_from_env(env))["jti"] == created["id"]
    # And Chute promotes it to the grant's template.
    p = requests.post(f"{chute.app_url}/api/objects/promote", json={"receipt": receipt}, timeout=30)
    assert p.status_code == 200 and p.json()["key"].startswith("avatars/user-7/"), p.text


def test_forged_and_foreign_receipts_are_refused(chute):
    receipt, created = upload(chute, mint_grant("user-7", keys=KEYS, metadata={"purpose": "avatar"}))
    head, body, sig = receipt.split(".")
    claims = jwt.decode(receipt, options={"verify_signature": False})
    other_kid_key = [Key(GRANT_KID, b"x" * 40)]

    def signed(payload, key=GRANT_SECRET, algorithm="HS256", kid=GRANT_KID):
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})

    cases = {
        # Payload swapped under the original signature.
        "token_bad_signature": [f"{head}.{b64(dict(claims, sub='admin'))}.{sig}",
                                f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}",
                                signed(claims, key="y" * 40)],
        "token_expired": [signed(dict(claims, exp=int(time.time()) - 1))],
        # A grant, and the upload token the browser held before any byte.
        "token_wrong_audience": [mint_grant("user-7", keys=KEYS), created["token"],
                                 signed({k: v for k, v in claims.items() if k != "aud"})],
        "token_wrong_algorithm": [f"{b64({'alg': 'none', 'kid': GRANT_KID})}.{body}.",
                                  signed(claims, algorithm="HS512"), signed(claims, algorithm="HS384")],
        "token_unknown_key": [signed(claims, kid="retired-long-ago"), signed(claims, kid="ключ")],
        "token_malformed": ["not-a-jwt", f"{head}.{body}", raw_signed([], claims), raw_signed({"alg": "HS256", "kid": 7}, claims),
                            raw_signed({"alg": "HS256", "kid": GRANT_KID}, [1]),
                            signed({k: v for k, v in claims.items() if k != "grant"}),
                            signed(dict(claims, grant="everything"))],
    }
    for code, tokens in cases.items():
        for token in tokens:
            assert refused(token) == code, (code, token)
            # Chute agrees that none of them is a receipt (its codes for a
            # receipt without `grant`/with a string grant are its own).
            assert chute_verdict(chute, token) is not None, (code, token)
    assert refused(receipt, keys=other_kid_key) == "token_bad_signature"
    assert refused("") == "receipt_missing"
    # A genuine receipt, but another user's or another form's.
    assert refused(receipt, subject="user-8") == "receipt_wrong_subject"
    assert refused(receipt, metadata={"purpose": "document"}) == "receipt_wrong_grant"
    assert verify_receipt(receipt, keys=KEYS, subject="user-7")["jti"] == created["id"]
    assert chute_verdict(chute, receipt) is None


def test_rotation_old_receipts_verify_with_retired_keys(chute):
    receipt, _ = upload(chute, mint_grant("user-7", keys=KEYS))
    new = parse_key("k2:" + "n" * 40)
    assert verify_receipt(receipt, keys=[new, *KEYS])["sub"] == "user-7"
    assert refused(receipt, keys=[new]) == "token_unknown_key"


def test_the_server_enforces_grant_limits_minted_by_the_example(chute):
    def code(r):
        return r.status_code, r.json()["error"]["code"]

    small = mint_grant("u", keys=KEYS, max_size=len(PNG) - 1)
    assert code(create(chute, small)) == (413, "too_large")
    images = mint_grant("u", keys=KEYS, types=["image/*"], extensions=[".png"])
    assert code(create(chute, images, b"hello", "notes.txt", "text/plain"))[1] in ("extension_not_allowed",
                                                                                      "type_not_allowed")
    assert code(create(chute, images, b"hello", "notes.png", "text/plain")) == (422, "type_not_allowed")
    once = mint_grant("u", keys=KEYS, max_files=1)
    upload(chute, once)
    assert code(create(chute, once))[1] == "max_files_reached"
    # A grant signed with another secret, or for another audience.
    assert code(create(chute, mint_grant("u", keys=[Key(GRANT_KID, b"z" * 40)])))[0] == 401
    assert code(create(chute, mint_grant("u", keys=KEYS, audience="someone-else")))[1] == "token_wrong_audience"
    # An HTML page named .png is not stored, whatever the grant says.
    r = create(chute, images, b"<html><script>alert(1)</script></html>", "evil.png", "image/png")
    c = r.json()
    form = c["post"]
    requests.post(form["url"], data=form["fields"],
                  files={"file": ("evil.png", b"<html><script>alert(1)</script></html>", "image/png")}, timeout=30)
    done = requests.post(f"{chute.app_url}/api/uploads/{c['id']}/complete",
                         headers={"Authorization": f"Bearer {c['token']}"}, timeout=30)
    assert code(done) == (422, "type_mismatch")


def test_hand_written_pyjwt_grants_as_rfc_7519_allows(chute):
    """Grants written with PyJWT directly: an `aud` list and a fractional
    `exp` (both RFC 7519) are accepted; a misspelt limit is refused, never
    ignored (it used to give an upload with no size limit)."""
    def hand(**claims):
        body = {"aud": "chute", "exp": time.time() + 600, "jti": uuid.uuid4().hex}
        body.update(claims)
        return jwt.encode(body, GRANT_SECRET, algorithm="HS256", headers={"kid": GRANT_KID})

    assert create(chute, hand(aud=["my-app", "chute"], iss="my-app")).status_code == 201
    assert create(chute, hand(aud=["my-app"])).json()["error"]["code"] == "token_wrong_audience"
    r = create(chute, hand(max_szie=10))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "token_malformed"
    assert "max_szie" in r.json()["error"]["message"]


def test_a_bare_secret_gets_the_key_id_chute_derives(tmp_path):
    bare = "a-bare-secret-without-key-id-" + uuid.uuid4().hex
    key = parse_key(bare)
    assert key.kid == hashlib.sha256(bare.encode()).hexdigest()[:8]
    srv = ChuteServer(tmp_path)
    srv.extra_env = {"CHUTE_GRANT_SECRET": bare}
    srv.start()
    try:
        receipt, _ = upload(srv, mint_grant("user-9", keys=[key]))
        assert jwt.get_unverified_header(receipt)["kid"] == key.kid
        assert verify_receipt(receipt, keys=[key], subject="user-9")["size"] == len(PNG)
    finally:
        srv.stop()


def test_bad_settings_are_refused_before_signing():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        parse_key("k1:too-short")
    with pytest.raises(ValueError, match="ttl"):
        mint_grant("u", keys=KEYS, ttl=0)
    with pytest.raises(TypeError, match="lists"):
        mint_grant("u", keys=KEYS, types="image/*")
    with pytest.raises(RuntimeError, match="CHUTE_GRANT_SECRET"):
        chute_tokens.keys_from_env({})
    # A passphrase with a colon stays whole, as in Chute.
    assert parse_key("my pass:phrase with a colon, long enough to use").secret.startswith(b"my pass:")
