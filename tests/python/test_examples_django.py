"""The Django example (examples/python/django_app) through Django's test
client, against the real `chute serve`: the grant view, an upload with
that grant, the form view verifying the receipt, promoting it through
Chute and storing the final key; and the hostile receipts, each refused
with 400 or 403 and nothing promoted or stored.
"""

from __future__ import annotations

import sys
import time

import jwt
import pytest
import requests

from conftest import GRANT_KID, GRANT_SECRET, REPO, download, free_port
from test_examples import KEYS, PNG, b64, mint_grant, raw_signed, upload

sys.path.insert(0, str(REPO / "examples" / "python" / "django_app"))


@pytest.fixture(scope="module")
def site(chute):
    """Django configured from the example's settings module, on an
    in-memory database, pointed at the test server."""
    import django
    from django.conf import settings

    if not settings.configured:
        from chute_site import settings as example

        values = {name: getattr(example, name) for name in dir(example) if name.isupper()}
        values.update(
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            CHUTE_URL=chute.app_url,
            CHUTE_GRANT_SECRET=f"{GRANT_KID}:{GRANT_SECRET}",
            # The test client sends Host: testserver.
            ALLOWED_HOSTS=["testserver"],
        )
        settings.configure(**values)
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return settings


@pytest.fixture
def user(site):
    from django.contrib.auth.models import User

    return User.objects.create_user(f"u{time.monotonic_ns()}")


@pytest.fixture
def client(user):
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


def avatars(user):
    from avatars.models import Avatar

    return list(Avatar.objects.filter(user=user))


def tmp_keys(chute, upload_id):
    out = chute.client().list_objects_v2(Bucket=chute.bucket, Prefix=f"tmp/{upload_id}/")
    return [o["Key"] for o in out.get("Contents", [])]


def test_grant_view_needs_login_and_mints_for_the_user(site, client, user):
    from django.test import Client

    r = Client().get("/chute/grant")
    assert r.status_code == 401 and r.json()["error"]["code"] == "login_required"
    r = client.get("/chute/grant")
    assert r.status_code == 200
    assert r.json()["uploads_url"] == f"{site.CHUTE_URL}/api/uploads"
    assert "no-store" in r["Cache-Control"]
    claims = jwt.decode(r.json()["grant"], GRANT_SECRET, algorithms=["HS256"], audience="chute")
    assert claims["sub"] == str(user.pk) and claims["metadata"] == {"purpose": "avatar"}
    # The form page embeds a grant for the widget.
    page = client.get("/avatar")
    assert page.status_code == 200 and b"data-grant=" in page.content and b"/chute.js" in page.content


def test_upload_then_submit_the_receipt(chute, client, user):
    grant = client.get("/chute/grant").json()["grant"]
    receipt, created = upload(chute, grant)
    r = client.post("/avatar", {"receipt": receipt})
    assert r.status_code == 302 and r["Location"] == "/avatar", r.content.decode()
    [avatar] = avatars(user)
    assert avatar.key.startswith(f"avatars/{user.pk}/") and avatar.key.endswith(".png")
    assert avatar.upload_id == created["id"] and avatar.size == len(PNG) and avatar.content_type == "image/png"
    assert download(chute, avatar.key) == PNG
    assert tmp_keys(chute, created["id"]) == []
    # Submitting it again (a double click, a replay) keeps one avatar.
    assert client.post("/avatar", {"receipt": receipt}).status_code == 302
    assert [a.key for a in avatars(user)] == [avatar.key]
    assert avatar.key.encode() in client.get("/avatar").content


def test_hostile_receipts_are_refused_and_nothing_is_kept(chute, site, client, user):
    from django.contrib.auth.models import User

    mine, created = upload(chute, client.get("/chute/grant").json()["grant"])
    claims = jwt.decode(mine, options={"verify_signature": False})
    head, body, sig = mine.split(".")
    other = User.objects.create_user(f"other{time.monotonic_ns()}")
    theirs, _ = upload(chute, mint_grant(str(other.pk), keys=KEYS, metadata={"purpose": "avatar"}))
    document, _ = upload(chute, mint_grant(str(user.pk), keys=KEYS, metadata={"purpose": "document"}))

    def signed(payload, algorithm="HS256"):
        return jwt.encode(payload, GRANT_SECRET, algorithm=algorithm, headers={"kid": GRANT_KID})

    cases = [
        ({}, 400, "wait for its upload"),
        ({"receipt": "not a receipt"}, 400, "not a JWT"),
        ({"receipt": raw_signed({"alg": "HS256", "kid": 7}, claims)}, 400, "not a JWT"),
        ({"receipt": signed(dict(claims, grant=None))}, 400, "grant is not an object"),
        ({"receipt": jwt.encode(claims, GRANT_SECRET, algorithm="HS256", headers={"kid": "ключ"})}, 403, "unknown key id"),
        ({"receipt": mine[:-3] + ("AAA" if not mine.endswith("AAA") else "BBB")}, 403, "signature is invalid"),
        ({"receipt": f"{head}.{b64(dict(claims, sub=str(other.pk)))}.{sig}"}, 403, "signature is invalid"),
        ({"receipt": signed(dict(claims, exp=int(time.time()) - 5))}, 403, "expired"),
        ({"receipt": signed(claims, algorithm="HS512")}, 403, "signed with HS256"),
        ({"receipt": f"eyJhbGciOiJub25lIn0.{body}."}, 403, "signed with HS256"),
        ({"receipt": created["token"]}, 403, "not a receipt"),
        ({"receipt": client.get("/chute/grant").json()["grant"]}, 403, "not a receipt"),
        ({"receipt": theirs}, 403, "another user"),
        ({"receipt": document}, 403, "not issued for purpose"),
    ]
    for data, status, message in cases:
        r = client.post("/avatar", data)
        assert r.status_code == status, (data, r.status_code, r.content.decode())
        assert message in r.content.decode(), (message, r.content.decode())
    assert avatars(user) == [] and avatars(other) == []
    assert tmp_keys(chute, created["id"]) != [], "a refused receipt must leave the upload unpromoted"


def test_chute_refusing_or_down_is_a_clear_answer(chute, site, client, user):
    receipt, created = upload(chute, client.get("/chute/grant").json()["grant"])
    # The object is gone (expired, or removed) before the form is sent.
    for key in tmp_keys(chute, created["id"]):
        chute.client().delete_object(Bucket=chute.bucket, Key=key)
    r = client.post("/avatar", {"receipt": receipt})
    assert r.status_code == 400 and "cannot be kept" in r.content.decode(), r.content.decode()
    # Chute not answering at all.
    receipt, created = upload(chute, client.get("/chute/grant").json()["grant"])
    from django.test import override_settings

    with override_settings(CHUTE_URL=f"http://127.0.0.1:{free_port()}"):
        r = client.post("/avatar", {"receipt": receipt})
    assert r.status_code == 502 and "unavailable" in r.content.decode()
    assert avatars(user) == []
    # Once Chute answers again the same receipt still works.
    assert client.post("/avatar", {"receipt": receipt}).status_code == 302
    assert len(avatars(user)) == 1
    assert requests.post(f"{chute.app_url}/api/receipts/verify", json={"receipt": receipt}, timeout=30).ok
