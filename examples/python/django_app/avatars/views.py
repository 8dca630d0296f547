"""Two views around Chute: one hands the logged-in user a grant, the other
takes the receipt the upload widget put into the form, verifies it,
promotes the object to its final key and stores that key.

The bytes never pass through Django: the browser sends them to the store
and only the signed receipt reaches this app.
"""

from __future__ import annotations

import requests
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from chute_tokens import ReceiptError, mint_grant, parse_key, verify_receipt

from .models import Avatar

# Every grant this view mints carries it, so a receipt from another form's
# grant (a document upload, say) is refused here.
PURPOSE = {"purpose": "avatar"}
# Codes of a receipt that is absent or not even a JWT: the request is bad.
# Any other refusal (signature, expiry, audience, another user) is 403.
MALFORMED = {"receipt_missing", "token_malformed"}


class ReceiptForm(forms.Form):
    # The widget posts a hidden input named like the file input.
    receipt = forms.CharField(max_length=16384, error_messages={"required": "Choose an image and wait for its upload."})


def _keys():
    return [parse_key(s) for s in [settings.CHUTE_GRANT_SECRET, *settings.CHUTE_GRANT_SECRETS_RETIRED]]


def _grant_for(user) -> str:
    return mint_grant(
        str(user.pk),
        keys=_keys(),
        max_size=settings.AVATAR_MAX_SIZE,
        types=["image/png", "image/jpeg", "image/webp"],
        extensions=[".png", ".jpg", ".jpeg", ".webp"],
        template="avatars/{sub}/{uuid}{ext}",
        metadata=PURPOSE,
    )


@never_cache  # a grant is a credential: no shared cache may keep it
@require_GET
def grant(request: HttpRequest) -> JsonResponse:
    """`{"grant", "uploads_url"}` for the logged-in user, for scripts and
    widgets that fetch their grant (the form page embeds one already)."""
    if not request.user.is_authenticated:
        return _error(401, "login_required", "log in to upload")
    return JsonResponse({"grant": _grant_for(request.user), "uploads_url": f"{settings.CHUTE_URL}/api/uploads"})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def avatar(request: HttpRequest) -> HttpResponse:
    """The avatar form: GET shows it, POST takes its `receipt`."""
    if request.method == "GET":
        return _page(request, ReceiptForm())
    # Bound even when empty (`request.POST or None` would skip validation).
    form = ReceiptForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        claims = verify_receipt(form.cleaned_data["receipt"], keys=_keys(), subject=str(request.user.pk),
                                metadata=PURPOSE)
    except ReceiptError as e:
        form.add_error("receipt", e.message)
        return _page(request, form, status=400 if e.code in MALFORMED else 403)
    try:
        promoted = promote(form.cleaned_data["receipt"])
    except PromoteError as e:
        form.add_error("receipt", e.message)
        return _page(request, form, status=e.status)
    Avatar.objects.update_or_create(
        upload_id=claims["jti"],
        defaults={"user": request.user, "key": promoted["key"], "size": promoted["size"],
                  "content_type": promoted["type"]},
    )
    return redirect("avatar")


class PromoteError(Exception):
    """Chute would not promote: `status` is this app's answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def promote(receipt: str) -> dict:
    """`POST /api/objects/promote`: Chute copies the object to the grant's
    template key and answers `{"bucket", "key", "size", "etag", "type",
    "upload_id"}`. Idempotent: the same receipt lands on the same key."""
    try:
        r = requests.post(f"{settings.CHUTE_URL}/api/objects/promote", json={"receipt": receipt}, timeout=30)
    except requests.RequestException as e:
        raise PromoteError(502, f"the upload service is unavailable ({type(e).__name__}); try again") from None
    if r.status_code == 200:
        return r.json()
    try:
        error = r.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "unexpected", f"HTTP {r.status_code}"
    if r.status_code >= 500:
        raise PromoteError(502, f"the upload service failed ({message}); try again")
    # 409 key_taken, 410 object_gone (expired or deleted), a token refusal...
    status = 403 if code.startswith("token_") else 400
    raise PromoteError(status, f"the upload cannot be kept: {message}")


def _page(request: HttpRequest, form: ReceiptForm, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "grant": _grant_for(request.user),
        "chute_url": settings.CHUTE_URL,
        "avatars": request.user.avatars.order_by("-created"),
    }
    return render(request, "avatars/avatar.html", context, status=status)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)
