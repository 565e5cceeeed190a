"""The signed envelope every edge message travels in.

Wire form: one JSON object

    {"v": 1, "site": "...", "gw": "...", "seq": 42, "ts": "2026-11-26T05:48:47.123456Z",
     "off": null, "type": "tag_reads", "body": {...}, "sig": "<base64 Ed25519 signature>"}

The signature covers the *canonical bytes*: the same object without ``sig``, serialised as
JSON with keys sorted at every level, no whitespace, UTF-8 (not ASCII-escaped), no NaN or
infinity, numbers as Python's ``json`` writes them (integers exactly; floats as the shortest
repr that round-trips, which is what JavaScript writes for them too). Receivers re-serialise
what they parsed, so any whitespace or key order on the wire is accepted.

``seq`` is strictly increasing per gateway across restarts (the edge outbox persists it);
the cloud stores ``(gw, seq)`` once, so redelivery and replay are absorbed and gaps show.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract import safejson
from contract.bounds import INT32_MAX, INT64_MAX, TIME_US_MAX, TIME_US_MIN
from contract.topics import validate_identifier

SCHEMA_VERSION = 1
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
# The deepest legitimate envelope (alert evidence) nests well under this; refusing deeper input
# keeps the parser's recursion far from Python's limit.
MAX_ENVELOPE_DEPTH = 32
# The longest legitimate number is an int64 (19 digits) or a float's repr; 5,000 digits is an
# attack on int() (quadratic) and on the bigint columns.
MAX_NUMBER_DIGITS = 24

_FIELDS = frozenset({"v", "site", "gw", "seq", "ts", "off", "type", "body", "sig"})


class EnvelopeError(ValueError):
    """The bytes are not a well-formed envelope; ``reason`` says why, for the dead-letter row."""


class SignatureInvalid(EnvelopeError):
    """Well formed, but the signature does not verify against the gateway's registered key."""


@dataclass(frozen=True, slots=True)
class Envelope:
    version: int
    site: str
    gateway: str
    seq: int
    observed_at: datetime
    observed_at_text: str  # as sent: the signature covers these exact characters
    clock_offset_ms: int | None
    type: str
    body: dict[str, Any]
    signature: bytes

    def signed_fields(self) -> dict[str, Any]:
        return {
            "v": self.version,
            "site": self.site,
            "gw": self.gateway,
            "seq": self.seq,
            "ts": self.observed_at_text,
            "off": self.clock_offset_ms,
            "type": self.type,
            "body": self.body,
        }


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("observation times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not text.endswith("Z"):
        raise ValueError(f"time {text!r} must be UTC and end with 'Z'")
    moment = datetime.fromisoformat(text[:-1])
    if moment.tzinfo is not None:
        raise ValueError(f"time {text!r} carries an offset besides 'Z'")
    return moment.replace(tzinfo=UTC)


def seal(
    key: Ed25519PrivateKey,
    *,
    site: str,
    gateway: str,
    seq: int,
    type: str,
    body: dict[str, Any],
    observed_at: datetime,
    clock_offset_ms: int | None = None,
) -> bytes:
    """Sign a message and return its wire bytes."""
    fields = {
        "v": SCHEMA_VERSION,
        "site": site,
        "gw": gateway,
        "seq": seq,
        "ts": format_time(observed_at),
        "off": clock_offset_ms,
        "type": type,
        "body": body,
    }
    signed = canonical_bytes(fields)
    sig = base64.b64encode(key.sign(signed)).decode("ascii")
    # The canonical object ends with '}': append the signature as its last member.
    return signed[:-1] + b',"sig":"' + sig.encode("ascii") + b'"}'


def time_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _bad_text(value: Any) -> str | None:
    """What no string may contain: NUL (PostgreSQL text refuses it) or a lone surrogate (not
    encodable as UTF-8, so neither signable nor storable)."""
    stack = [value]
    while stack:  # iterative: depth is already bounded, but no recursion is cheaper still
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (U+0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a lone surrogate (not UTF-8)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _require(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise EnvelopeError(f"missing field {name!r}")
    value = obj[name]
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and kind is not bool:
        raise EnvelopeError(f"field {name!r} must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise EnvelopeError(f"field {name!r} must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def open_envelope(raw: bytes) -> Envelope:
    """Parse and structurally validate wire bytes. Does not check the signature.

    Every limit is explicit: size, nesting, digits (contract.safejson), integer and time ranges
    (contract.bounds) and NUL characters (PostgreSQL text refuses them). Anything else raises
    :class:`EnvelopeError` and nothing else.
    """
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        obj = safejson.loads(raw, max_bytes=MAX_ENVELOPE_BYTES, max_depth=MAX_ENVELOPE_DEPTH,
                             max_digits=MAX_NUMBER_DIGITS)
    except safejson.JsonRefused as err:
        raise EnvelopeError(f"not JSON: {err}") from None
    if b"\\u" in raw:  # cheap test first: only a \u escape can carry NUL or a lone surrogate
        problem = _bad_text(obj)
        if problem is not None:
            raise EnvelopeError(f"a string contains {problem}")
    if not isinstance(obj, dict):
        raise EnvelopeError("envelope must be a JSON object")
    unknown = obj.keys() - _FIELDS
    if unknown:
        raise EnvelopeError(f"unknown fields {sorted(unknown)}")
    version = _require(obj, "v", int)
    if version != SCHEMA_VERSION:
        raise EnvelopeError(f"schema version {version} unsupported (expected {SCHEMA_VERSION})")
    site = _require(obj, "site", str)
    gateway = _require(obj, "gw", str)
    try:
        validate_identifier(site, "site")
        validate_identifier(gateway, "gateway")
    except ValueError as err:
        raise EnvelopeError(str(err)) from None
    seq = _require(obj, "seq", int)
    if not 1 <= seq <= INT64_MAX:
        raise EnvelopeError(f"seq must be a positive integer up to {INT64_MAX}, got {seq}")
    ts_text = _require(obj, "ts", str)
    if len(ts_text) > 40:
        raise EnvelopeError("field 'ts' is too long for a time")
    try:
        observed_at = parse_time(ts_text)
    except ValueError as err:
        raise EnvelopeError(f"field 'ts': {err}") from None
    if not TIME_US_MIN <= time_us(observed_at) <= TIME_US_MAX:
        raise EnvelopeError(f"field 'ts': {ts_text!r} is outside 2000-01-01..2100-01-01")
    offset = obj.get("off")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)
                               or abs(offset) > INT32_MAX):
        raise EnvelopeError("field 'off' must be an integer number of milliseconds "
                            f"(at most {INT32_MAX} either way) or null")
    msg_type = _require(obj, "type", str)
    body = _require(obj, "body", dict)
    try:
        signature = base64.b64decode(_require(obj, "sig", str), validate=True)
    except (binascii.Error, ValueError):  # non-ASCII text raises a bare ValueError
        raise EnvelopeError("field 'sig' is not base64") from None
    if len(signature) != 64:
        raise EnvelopeError(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    return Envelope(
        version=version,
        site=site,
        gateway=gateway,
        seq=seq,
        observed_at=observed_at,
        observed_at_text=ts_text,
        clock_offset_ms=offset,
        type=msg_type,
        body=body,
        signature=signature,
    )


def verify_signature(envelope: Envelope, public_key: Ed25519PublicKey) -> None:
    try:
        public_key.verify(envelope.signature, canonical_bytes(envelope.signed_fields()))
    except InvalidSignature:
        raise SignatureInvalid(
            f"signature does not verify with the key registered for gateway {envelope.gateway!r}"
        ) from None
