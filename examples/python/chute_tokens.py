"""Chute grants and receipts with PyJWT: what a Python app needs.

An app signs a **grant** (who may upload what) and hands it to the browser;
Chute answers a finished upload with a **receipt**, which the browser posts
back to the app instead of a bare key. Both are compact HS256 JWTs signed
with the secret Chute is configured with (`CHUTE_GRANT_SECRET`), so the app
needs nothing but PyJWT:

    from chute_tokens import mint_grant, verify_receipt

    grant = mint_grant(str(user.pk), max_size=5 * 2**20, types=["image/*"],
                       template="avatars/{sub}/{uuid}{ext}")
    claims = verify_receipt(request.POST["receipt"], subject=str(user.pk))
    claims["key"], claims["size"], claims["type"]   # what Chute checked

The secret is written as Chute reads it: `kid:secret` (the key id goes into
every token's `kid` header, so secrets rotate) or a bare secret, whose key
id Chute derives from its SHA-256. Pass `keys=` (from `parse_key`) to use
anything but the `CHUTE_GRANT_SECRET` environment variable; list retired
keys after the current one to keep accepting receipts they signed.

Chute signs grants, upload tokens and receipts with the same secret, and
only the audience (`aud`) tells them apart: `verify_receipt` insists on
`chute-receipt`, so a grant or an upload token (which the browser holds
before any byte is stored) is never taken for a receipt.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import jwt

GRANT_AUDIENCE = "chute"
RECEIPT_AUDIENCE = "chute-receipt"
ALGORITHM = "HS256"
MIN_SECRET_LEN = 32  # bytes; Chute refuses shorter secrets

# The claims every receipt carries (chute_core::ReceiptClaims).
RECEIPT_CLAIMS = ("aud", "exp", "iat", "jti", "bucket", "key", "size", "etag", "type", "filename", "grant")
_KID = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True)
class Key:
    """One signing key: its id (the `kid` header) and its secret."""

    kid: str
    secret: bytes = field(repr=False)


class ReceiptError(Exception):
    """A receipt that must not be trusted. `code` is stable (Chute's own
    codes where they exist) and the message safe to show to the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def parse_key(spec: str) -> Key:
    """A key as Chute parses `grant_secret`: `kid:secret` when the part
    before the colon looks like a key id (1-32 of `A-Za-z0-9._-`) and the
    rest is a full-length secret; otherwise the whole string is the secret
    and its key id the first 8 hex digits of its SHA-256."""
    kid, sep, secret = spec.partition(":")
    if sep and _KID.fullmatch(kid) and len(secret.encode()) >= MIN_SECRET_LEN:
        return Key(kid, secret.encode())
    if len(spec.encode()) < MIN_SECRET_LEN:
        raise ValueError(f"a Chute secret needs at least {MIN_SECRET_LEN} bytes; generate one with `openssl rand -hex 32`")
    return Key(hashlib.sha256(spec.encode()).hexdigest()[:8], spec.encode())


def keys_from_env(environ: Mapping[str, str] = os.environ) -> list[Key]:
    """The key in `CHUTE_GRANT_SECRET`, the same value Chute is given."""
    spec = environ.get("CHUTE_GRANT_SECRET")
    if not spec:
        raise RuntimeError("CHUTE_GRANT_SECRET is not set; give the app the same value as the Chute server")
    return [parse_key(spec)]


def mint_grant(
    subject: str | None,
    *,
    keys: Sequence[Key] | None = None,
    ttl: int = 600,
    max_size: int | None = None,
    min_size: int | None = None,
    types: Iterable[str] = (),
    extensions: Iterable[str] = (),
    max_files: int | None = None,
    template: str | None = None,
    prefix: str | None = None,
    metadata: Mapping[str, str] | None = None,
    upload_ttl: int | None = None,
    grant_id: str | None = None,
    audience: str = GRANT_AUDIENCE,
) -> str:
    """A grant JWT for `subject` (the user id; it comes back as the
    receipt's `sub` and fills `{sub}` in templates), valid for `ttl`
    seconds and signed with the first of `keys`.

    Every limit is a keyword argument on purpose: a typo is a TypeError
    here, before Chute would refuse the grant for an unknown claim."""
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    if isinstance(types, str) or isinstance(extensions, str):
        raise TypeError("types and extensions are lists, for example types=['image/*']")
    key = (keys if keys is not None else keys_from_env())[0]
    now = int(time.time())
    claims: dict[str, Any] = {"aud": audience, "iat": now, "exp": now + ttl, "jti": grant_id or uuid.uuid4().hex}
    optional = {
        "sub": subject,
        "max_size": max_size,
        "min_size": min_size,
        "types": list(types) or None,
        "extensions": list(extensions) or None,
        "max_files": max_files,
        "template": template,
        "prefix": prefix,
        "metadata": dict(metadata) if metadata else None,
        "upload_ttl": upload_ttl,
    }
    claims.update({k: v for k, v in optional.items() if v is not None})
    return jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


def verify_receipt(
    token: str,
    *,
    keys: Sequence[Key] | None = None,
    subject: str | None = None,
    metadata: Mapping[str, str] | None = None,
    leeway: int = 0,
) -> dict[str, Any]:
    """The claims of a Chute receipt, or `ReceiptError`.

    Checks the HS256 signature (no other algorithm, no `none`) with the key
    its `kid` names, the audience `chute-receipt`, the expiry, that every
    receipt claim is present, and, when given, that the grant was issued to
    `subject` and carried `metadata` (for example `{"purpose": "avatar"}`,
    so a receipt from another form's grant is refused)."""
    keys = keys if keys is not None else keys_from_env()
    if not isinstance(token, str) or not token.strip():
        raise ReceiptError("receipt_missing", "no receipt was sent")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as e:  # not a JWT, or a header of the wrong shape
        raise ReceiptError("token_malformed", f"the receipt is not a JWT: {e}") from None
    if header.get("alg") != ALGORITHM:
        raise ReceiptError("token_wrong_algorithm", f"receipts are signed with {ALGORITHM}, not {header.get('alg')!r}")
    kid = header.get("kid")
    candidates = list(keys) if kid is None else [k for k in keys if k.kid == str(kid)]
    if not candidates:
        raise ReceiptError("token_unknown_key", f"the receipt is signed with an unknown key id {kid!r}")
    claims = _decode(token, candidates, leeway)
    missing = [name for name in RECEIPT_CLAIMS if name not in claims]
    if missing:
        raise ReceiptError("token_malformed", f"the receipt lacks the claims {', '.join(missing)}")
    if subject is not None and claims.get("sub") != subject:
        raise ReceiptError("receipt_wrong_subject", "this receipt belongs to an upload of another user")
    if not isinstance(claims["grant"], dict):
        raise ReceiptError("token_malformed", "the receipt's grant is not an object")
    granted = claims["grant"].get("metadata") or {}
    for name, value in (metadata or {}).items():
        if granted.get(name) != value:
            raise ReceiptError("receipt_wrong_grant", f"this receipt was not issued for {name}={value!r}")
    return claims


def _decode(token: str, candidates: list[Key], leeway: int) -> dict[str, Any]:
    options = {
        # The other receipt claims are checked once the audience says
        # this is a receipt at all.
        "require": ["exp", "aud"],
        "strict_aud": True,
        # `iat` is informational in Chute; PyJWT would refuse a receipt
        # whose `iat` is a second ahead of this machine's clock.
        "verify_iat": False,
    }
    for key in candidates:
        try:
            return jwt.decode(token, key.secret, algorithms=[ALGORITHM], audience=RECEIPT_AUDIENCE,
                              leeway=leeway, options=options)
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise ReceiptError("token_expired", "the receipt has expired; upload the file again") from None
        except jwt.InvalidAudienceError:
            raise ReceiptError("token_wrong_audience", f"this token is not a receipt (audience must be {RECEIPT_AUDIENCE!r})") from None
        except jwt.MissingRequiredClaimError as e:
            code = "token_wrong_audience" if e.claim == "aud" else "token_malformed"
            raise ReceiptError(code, f"the receipt lacks the {e.claim!r} claim") from None
        except jwt.InvalidTokenError as e:
            raise ReceiptError("token_malformed", f"the receipt is not valid: {e}") from None
    raise ReceiptError("token_bad_signature", "the receipt's signature is invalid")
