"""Standard Webhooks 1.0 signatures: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

Secrets are ``whsec_`` + base64 of the key bytes. During a rotation an endpoint has several
live secrets and every message carries one signature per secret, space-separated, so a
receiver holding either the old or the new secret verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random

PREFIX = "whsec_"
TOLERANCE_S = 300


class SignatureError(ValueError):
    """The message is not signed by any secret the receiver holds (or is too old)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    return base64.b64decode(secret[len(PREFIX):], validate=True)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every live secret."""
    if not secrets:
        raise ValueError("an endpoint needs at least one secret")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }


def verify(secret: str, headers_in: dict[str, str], body: bytes, now: int) -> None:
    """What a receiver does (also shown in docs/webhooks.md). Raises SignatureError."""
    lower = {k.lower(): v for k, v in headers_in.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        offered = lower["webhook-signature"].split()
    except (KeyError, ValueError) as err:
        raise SignatureError(f"missing or malformed webhook header: {err}") from None
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureError("webhook-timestamp outside the tolerance")
    expected = signature(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, sig) for sig in offered):
        raise SignatureError("no signature matches")
