"""Helpers shared by the Python suites: a tiny SigV4/SigV2 signer for raw
requests (so hostile tests control every byte of the request line), POST
policy forms, hand-built multipart bodies, S3 XML error parsing and data-dir
snapshots.

Raw requests go through http.client, which sends the path exactly as
given: requests/urllib3 would normalise `..` segments away.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"


# ---------------------------------------------------------------- signing


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, datestamp: str, region: str = REGION) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), datestamp)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


def uri_encode(s: str, keep_slash: bool) -> str:
    return quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_uri(raw_path: str) -> str:
    """S3's canonical URI: the decoded path, each segment encoded once."""
    return uri_encode(unquote(raw_path, errors="surrogateescape"), keep_slash=True) if raw_path else "/"


def canonical_query(params: list[tuple[str, str]]) -> str:
    enc = sorted((uri_encode(k, False), uri_encode(v, False)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in enc)


def amz_now(now: dt.datetime | None = None) -> tuple[str, str]:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")


def sign_headers(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    payload_hash: str,
    access: str,
    secret: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Returns `headers` plus x-amz-date, x-amz-content-sha256 and
    Authorization (SigV4, every given header signed)."""
    amz_date, ds = amz_now(now)
    h = {k.lower(): v for k, v in headers.items()}
    h["x-amz-date"] = amz_date
    h["x-amz-content-sha256"] = payload_hash
    names = sorted(h)
    canon_headers = "".join(f"{n}:{' '.join(str(h[n]).split())}\n" for n in names)
    signed = ";".join(names)
    creq = "\n".join(
        [method, canonical_uri(raw_path), canonical_query(query), canon_headers, signed, payload_hash]
    )
    scope = f"{ds}/{REGION}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, ds), sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={sig}"
    return h


def presign_query(
    method: str,
    raw_path: str,
    host: str,
    access: str,
    secret: str,
    expires: int = 300,
    now: dt.datetime | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Query parameters of a SigV4 presigned URL for `raw_path` (host signed)."""
    amz_date, ds = amz_now(now)
    scope = f"{ds}/{REGION}/s3/aws4_request"
    q = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{access}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ] + list(extra or [])
    creq = "\n".join([method, canonical_uri(raw_path), canonical_query(q), f"host:{host}\n", "host", UNSIGNED])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, ds), sts.encode(), hashlib.sha256).hexdigest()
    return q + [("X-Amz-Signature", sig)]


def encode_query(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{uri_encode(k, False)}={uri_encode(v, False)}" for k, v in params)


# ---------------------------------------------------------------- raw HTTP


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        return error_code(self.body)

    def __repr__(self) -> str:  # shows the exchange in assertion messages
        return f"<HTTP {self.status} {self.headers} {self.body[:600]!r}>"


def raw_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30,
) -> Resp:
    """Sends `target` verbatim (path and query) and returns the response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        hdrs.setdefault("host", f"127.0.0.1:{port}")
        if body is not None and "content-length" not in hdrs:
            hdrs["content-length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
    timeout: float = 30,
) -> Resp:
    """Like raw_request, over a bare socket, for servers that answer before
    the body is sent: sending stops at the first send error (the server may
    close early) and whatever response arrived is read and returned."""
    import socket

    hdrs = {k.lower(): v for k, v in headers.items()}
    hdrs.setdefault("host", f"127.0.0.1:{port}")
    hdrs.setdefault("content-length", str(len(body)))
    hdrs["connection"] = "close"
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    try:
        sock.sendall(head.encode())
        view = memoryview(body)
        for i in range(0, len(view), 65536):
            try:
                sock.sendall(view[i : i + 65536])
            except OSError:
                break
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    h, rest = data.split(b"\r\n\r\n", 1)
                    m = [ln for ln in h.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if m and len(rest) >= int(m[0].split(b":")[1]):
                        break
        except ConnectionResetError:
            if b"\r\n\r\n" not in data:
                raise AssertionError(f"connection reset before a complete response arrived (got {data[:300]!r})")
    finally:
        sock.close()
    h, _, rest = data.partition(b"\r\n\r\n")
    lines = h.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    rh = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        rh[k.strip().lower()] = v.strip()
    if "content-length" in rh:
        rest = rest[: int(rh["content-length"])]
    return Resp(status, rh, rest)


def signed_request(
    server,
    method: str,
    raw_path: str,
    query: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    access: str | None = None,
    secret: str | None = None,
    payload_hash: str | None = None,
) -> Resp:
    """A SigV4 header-signed request for `raw_path` sent byte for byte."""
    query = query or []
    host = f"127.0.0.1:{server.s3_port}"
    h = dict(headers or {})
    h["host"] = host
    ph = payload_hash or hashlib.sha256(body).hexdigest()
    h = sign_headers(method, raw_path, query, h, ph, access or server.access_key, secret or server.secret_key)
    target = raw_path + ("?" + encode_query(query) if query else "")
    return raw_request(server.s3_port, method, target, h, body)


def error_code(body: bytes) -> str | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    el = root.find("Code")
    return el.text if el is not None else None


def assert_s3_error(resp: Resp, status: int, code: str) -> None:
    assert (resp.status, resp.code) == (status, code), f"expected {status} {code}, got {resp!r}"


# ---------------------------------------------------------------- POST forms


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def post_policy_v4(
    access: str,
    secret: str,
    conditions: list,
    expires_in: int = 300,
    now: dt.datetime | None = None,
    policy_b64: str | None = None,
) -> dict[str, str]:
    """Signed SigV4 POST fields (no key): the policy covers the algorithm,
    credential and date plus `conditions`. `policy_b64` replaces the encoded
    policy (and is what gets signed), for malformed-policy tests."""
    now = now or dt.datetime.now(dt.timezone.utc)
    amz_date, ds = amz_now(now)
    cred = f"{access}/{ds}/{REGION}/s3/aws4_request"
    policy = {
        "expiration": _iso(now + dt.timedelta(seconds=expires_in)),
        "conditions": list(conditions)
        + [
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": cred},
            {"x-amz-date": amz_date},
        ],
    }
    b64 = policy_b64 if policy_b64 is not None else base64.b64encode(json.dumps(policy).encode()).decode()
    sig = hmac.new(signing_key(secret, ds), b64.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": cred,
        "x-amz-date": amz_date,
        "policy": b64,
        "x-amz-signature": sig,
    }


def post_policy_v2(access: str, secret: str, conditions: list, expires_in: int = 300) -> dict[str, str]:
    now = dt.datetime.now(dt.timezone.utc)
    policy = {"expiration": _iso(now + dt.timedelta(seconds=expires_in)), "conditions": conditions}
    b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    sig = base64.b64encode(hmac.new(secret.encode(), b64.encode(), hashlib.sha1).digest()).decode()
    return {"AWSAccessKeyId": access, "policy": b64, "signature": sig}


def multipart_body(
    fields: list[tuple[str, str]],
    file_name: str | None = "upload.bin",
    file_bytes: bytes | None = b"hello",
    boundary: str | None = None,
    file_field: str = "file",
    filename_fields: tuple[str, ...] = (),
    closing: bool = True,
) -> tuple[bytes, str]:
    """multipart/form-data by hand; returns (body, content-type). Fields in
    `filename_fields` carry a `filename=` attribute although not files."""
    boundary = boundary or ("----chute" + uuid.uuid4().hex)
    out = bytearray()
    for name, value in fields:
        disp = f'form-data; name="{name}"'
        if name in filename_fields:
            disp += '; filename="field.txt"'
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value.encode() + b"\r\n"
    if file_bytes is not None:
        disp = f'form-data; name="{file_field}"'
        if file_name is not None:
            disp += f'; filename="{file_name}"'
        out += (
            f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
            + file_bytes
            + b"\r\n"
        )
    if closing:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def post_form(server, bucket: str, fields: list[tuple[str, str]], **kw) -> Resp:
    body, ctype = multipart_body(fields, **kw)
    return raw_exchange(server.s3_port, "POST", f"/{bucket}", {"content-type": ctype}, body)


# ---------------------------------------------------------------- data dir


def is_temp(rel: str) -> bool:
    parts = rel.split(os.sep)
    return rel.endswith(".tmp") or any(p in ("tmp", "temp", ".tmp") for p in parts[:-1])


def snapshot(data_dir: Path) -> set[str]:
    """Every regular file under the data dir (relative paths), temp files
    and logs excluded."""
    out = set()
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), data_dir)
            if is_temp(rel) or rel.endswith(".log"):
                continue
            out.add(rel)
    return out


def temp_files(data_dir: Path) -> list[str]:
    out = []
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), data_dir)
            if is_temp(rel):
                out.append(rel)
    return sorted(out)


def md5_hex(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()
