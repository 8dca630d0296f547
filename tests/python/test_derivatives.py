"""Image derivatives through the real `chute serve`, on the embedded store
and on Garage: a grant names them, the receipt lists them, the status
route reports them, and the objects in the store are real images of the
right size (opened with Pillow). Hostile images fail their derivatives and
leave the upload in place.

Fixtures are made here with Pillow; the decompression bomb is a
30000x30000 PNG streamed through zlib row by row, never held as pixels.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
import requests
from PIL import Image

from conftest import download, grant


def photo(w: int, h: int) -> Image.Image:
    """Gradients and texture, so the encoders have work to do."""
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    noise = Image.effect_noise((w, h), 40).convert("RGB")
    return Image.blend(img, noise, 0.3)


def jpeg(img: Image.Image, orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    if orientation is None:
        img.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def halves(w: int, h: int) -> Image.Image:
    """Left half red, right half blue."""
    img = Image.new("RGB", (w, h), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, w // 2, h))
    return img


def bomb_png(side: int = 30_000) -> bytes:
    """A valid side x side 1-bit grey PNG of zeros: tiny compressed, side**2
    bytes decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def put(srv, name: str, content_type: str, body: bytes, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.put(f"{srv.app_url}/api/stream/{name}", data=body, headers=headers, timeout=60)


def upload(srv, name: str, content_type: str, body: bytes, token: str | None = None) -> dict:
    r = put(srv, name, content_type, body, token)
    assert r.status_code == 201, r.text
    return r.json()["files"][0]


def status(srv, receipt: str) -> dict:
    r = requests.get(f"{srv.app_url}/api/objects/{receipt}/derivatives", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def settled(srv, receipt: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(srv, receipt)
        if all(d["status"] != "pending" for d in s["derivatives"].values()):
            return s
        time.sleep(0.1)
    pytest.fail(f"derivatives still pending after {timeout}s: {s}")


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_named_derivatives_are_real_images_in_the_store(backend):
    token = grant(derivatives={"thumb": "200x200 crop", "medium": "1200x1200 fit webp", "small": "300x300 fit q60"})
    # Stored 1600x1200 with EXIF orientation 6: shown as 1200x1600.
    original = jpeg(photo(1600, 1200), orientation=6)
    f = upload(backend, "photo.jpg", "image/jpeg", original, token)
    upload_id = f["object"]["jti"]
    assert f["object"]["derivatives"] == {
        "thumb": f"derivatives/{upload_id}/thumb.jpg",
        "medium": f"derivatives/{upload_id}/medium.webp",
        "small": f"derivatives/{upload_id}/small.jpg",
    }
    s = settled(backend, f["receipt"])
    expected = {"thumb": (200, 200, "JPEG"), "medium": (900, 1200, "WEBP"), "small": (225, 300, "JPEG")}
    for name, (w, h, fmt) in expected.items():
        d = s["derivatives"][name]
        assert d["status"] == "ready", d
        assert (d["width"], d["height"]) == (w, h)
        # The object in the store, read with the store's own client.
        stored = download(backend, d["key"])
        assert len(stored) == d["size"]
        img = opened(stored)
        assert (img.format, img.size) == (fmt, (w, h)), name
        # The presigned URL serves the same bytes.
        r = requests.get(d["url"], timeout=30)
        assert r.status_code == 200 and r.content == stored
        assert r.headers["Content-Type"] == d["type"]
    assert download(backend, f["object"]["key"]) == original


def test_every_source_format_and_orientation(backend):
    token = grant(derivatives={"thumb": "120x80 crop"})
    cases = [
        ("a.png", "image/png", encoded(photo(300, 300).convert("RGBA"), "PNG")),
        ("a.webp", "image/webp", encoded(photo(300, 300), "WEBP")),
        ("a.gif", "image/gif", encoded(photo(300, 300), "GIF")),
        ("a.jpg", "image/jpeg", jpeg(halves(300, 200), orientation=3)),
    ]
    for name, ctype, body in cases:
        f = upload(backend, name, ctype, body, token)
        d = settled(backend, f["receipt"])["derivatives"]["thumb"]
        assert d["status"] == "ready", (name, d)
        img = opened(download(backend, d["key"]))
        assert (img.format, img.size) == ("JPEG", (120, 80)), name
        if name == "a.jpg":
            # Orientation 3 (180 degrees): the stored right half, blue, is now left.
            r, g, b = img.convert("RGB").getpixel((10, 40))
            assert b > 200 and r < 60, (r, g, b)


def test_hostile_images_fail_their_derivatives_not_the_upload(backend):
    token = grant(derivatives={"thumb": "200x200 crop"})
    bomb = bomb_png()
    assert len(bomb) < 1024 * 1024
    full = jpeg(photo(400, 300))
    for name, ctype, body, why in [
        ("bomb.png", "image/png", bomb, "30000x30000"),
        ("cut.jpg", "image/jpeg", full[:300], "cannot decode"),
    ]:
        f = upload(backend, name, ctype, body, token)
        d = settled(backend, f["receipt"])["derivatives"]["thumb"]
        assert d["status"] == "failed" and why in d["error"], (name, d)
        assert "url" not in d
        assert download(backend, f["object"]["key"]) == body, f"{name}: the upload is kept"
    # HTML named .jpg: declared a JPEG, sniffing refuses it (nothing stored)...
    html = b"<!doctype html><html><script>alert(1)</script></html>"
    r = put(backend, "page.jpg", "image/jpeg", html, token)
    assert r.status_code == 422 and r.json()["error"]["code"] == "type_mismatch", r.text
    # ...declared HTML it is kept, and gets no derivatives: it is no image.
    f = upload(backend, "page.jpg", "text/html", html, token)
    assert "derivatives" not in f["object"]
    assert status(backend, f["receipt"])["derivatives"] == {}


def test_bad_specs_are_refused_at_the_grant(backend):
    for derivatives in [{"thumb": "0x10 crop"}, {"thumb": "99999x10 fit"}, {"a/b": "10x10 fit"}, {"t": "10x10"},
                        {"t": "10x10 fit webp q80"}]:
        r = put(backend, "a.jpg", "image/jpeg", jpeg(photo(20, 20)), grant(derivatives=derivatives))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "bad_derivative"


def test_derive_on_promote_waits_for_the_promotion(backend):
    token = grant(derivatives={"thumb": "64x64 crop"}, derive_on="promote")
    f = upload(backend, "p.jpg", "image/jpeg", jpeg(photo(256, 256)), token)
    # That completion starts nothing is checked without timing by the Rust
    # unit test derivatives::tests::promote_grants_start_nothing_on_completion.
    assert status(backend, f["receipt"])["derivatives"]["thumb"]["status"] == "pending"
    r = requests.post(f"{backend.app_url}/api/objects/promote", json={"receipt": f["receipt"]}, timeout=30)
    assert r.status_code == 200, r.text
    d = settled(backend, f["receipt"])["derivatives"]["thumb"]
    assert d["status"] == "ready", d
    assert opened(download(backend, d["key"])).size == (64, 64)
