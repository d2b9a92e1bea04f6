"""Views answering with values derived from secrets, never the secrets themselves.

- ``/webhook-signature?message=...``: HMAC-SHA256 of the message under
  ``website/webhook_key``, read through a live handle at each request, so
  a new key is used by the next request (no restart).
- ``/signed?value=...``: the value signed by Django's ``Signer``, that is
  with ``SECRET_KEY``, read once at startup (a new key needs a restart).
- ``/site``: a row of the database ``DATABASES`` names, also fixed at startup.
"""

from __future__ import annotations

import hashlib
import hmac

from django.core.signing import Signer
from django.db import connection
from django.http import HttpRequest, JsonResponse

from macula_secrets.config import secret_ref

from .settings import APP

# A live handle: .require() reads the node's store at each call (about a microsecond).
WEBHOOK_KEY = secret_ref(APP, "webhook_key")


def webhook_signature(request: HttpRequest) -> JsonResponse:
    message = request.GET.get("message", "")
    key = WEBHOOK_KEY.require()
    mac = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return JsonResponse({"message": message, "hmac_sha256": mac})


def signed(request: HttpRequest) -> JsonResponse:
    value = request.GET.get("value", "")
    return JsonResponse({"signed": Signer(salt="macula-example").sign(value)})


def site(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM meta WHERE name = 'site'")
        (name,) = cursor.fetchone()
    return JsonResponse({"site": name})
