"""Decide what one MQTT message is: accepted (with its validated body) or rejected (with why).

Pure: fed the topic, the bytes, the registered gateways and a clock value; no database, no
broker, no wall clock. Times are plausible or refused: nothing observed further in the future
than the clock-skew window (a cloud setting), and no envelope dated before its gateway was
registered, may be stored or pin state (a presence dated 9999 once froze a tag "present").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from contract import (
    Channel,
    Envelope,
    EnvelopeError,
    MessageType,
    open_envelope,
    parse_topic,
    validate_body,
    verify_signature,
)
from contract.envelope import time_us

DEFAULT_MAX_CLOCK_SKEW_S = 300.0


@dataclass(frozen=True, slots=True)
class RegisteredGateway:
    gateway_id: str
    site_id: str
    public_key: Ed25519PublicKey
    registered_at_us: int = 0
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    envelope: Envelope
    body: BaseModel
    topic: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    topic: str
    raw: bytes
    reason: str
    gateway_id: str | None
    # Set only when the signature verified (the body was bad): the gateway really sent it, so
    # the cloud confirms it as received and the gateway stops resending it.
    verified: Envelope | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """Not for ingest (commands the cloud itself sends to gateways)."""

    topic: str


Decision = Accepted | Rejected | Ignored


_FOURTH = itemgetter(3)


def latest_body_time(msg_type: str, body: BaseModel) -> int | None:
    """The latest observation time (us) a body states, or None if it states none."""
    b: Any = body
    match msg_type:
        case MessageType.TAG_READS:
            return max(map(_FOURTH, b.reads))  # C-level: this runs for every read
        case MessageType.PRESENCE_CHANGE:
            return b.last_seen_us
        case MessageType.PLATE_READ:
            return max(b.first_seen_us, b.last_seen_us)
        case MessageType.UNEXPECTED_TAGS:
            return max((max(u.first_seen_us, u.last_seen_us) for u in b.new), default=None)
        case MessageType.TRACKER_POSITIONS:
            return max(f[0] for f in b.fixes)
        case MessageType.GEOFENCE_ENTER | MessageType.GEOFENCE_EXIT | MessageType.GEOFENCE_DWELL:
            return max(b.fix[0], b.run_started_us)
        case MessageType.SENSOR_READINGS:
            return max(r[0] for r in b.readings)
        case MessageType.GATEWAY_STATUS:
            return b.session_started_us
    return None


def implausible_time(
    envelope: Envelope, body: BaseModel, gateway: RegisteredGateway, *, now_us: int,
    max_skew_us: int,
) -> str | None:
    """Why the message's times cannot be true, or None. Body times are only bounded above:
    readings buffered at the edge may predate the gateway's registration in the cloud."""
    latest_ok = now_us + max_skew_us
    ts = time_us(envelope.observed_at)
    if ts > latest_ok:
        return (f"time: envelope ts {envelope.observed_at_text} is more than "
                f"{max_skew_us // 1_000_000} s ahead of the cloud's clock")
    if ts < gateway.registered_at_us - max_skew_us:
        return (f"time: envelope ts {envelope.observed_at_text} is before gateway "
                f"{gateway.gateway_id!r} was registered")
    latest = latest_body_time(envelope.type, body)
    if latest is not None and latest > latest_ok:
        return (f"time: the body states a time of {latest} us, more than "
                f"{max_skew_us // 1_000_000} s ahead of the cloud's clock")
    return None


def decide(
    topic: str, raw: bytes, gateways: Mapping[str, RegisteredGateway], *, now_us: int,
    max_skew_us: int = int(DEFAULT_MAX_CLOCK_SKEW_S * 1_000_000),
) -> Decision:
    try:
        address = parse_topic(topic)
    except ValueError as err:
        return Rejected(topic, raw, f"topic: {err}", None)
    if address.channel is Channel.CMD:
        return Ignored(topic)
    if address.channel is Channel.STATUS and not raw:
        return Ignored(topic)  # an empty retained message only clears the retained status
    try:
        envelope = open_envelope(raw)
    except EnvelopeError as err:
        return Rejected(topic, raw, f"envelope: {err}", address.gateway)
    if (envelope.site, envelope.gateway) != (address.site, address.gateway):
        return Rejected(
            topic, raw,
            f"envelope names {envelope.site}/{envelope.gateway} but came on the topic of "
            f"{address.site}/{address.gateway}",
            address.gateway,
        )
    gateway = gateways.get(envelope.gateway)
    if gateway is None:
        return Rejected(topic, raw, f"unknown gateway {envelope.gateway!r}", envelope.gateway)
    if gateway.site_id != envelope.site:
        return Rejected(
            topic, raw,
            f"gateway {envelope.gateway!r} is registered at site {gateway.site_id!r}, "
            f"not {envelope.site!r}",
            envelope.gateway,
        )
    if gateway.revoked:
        return Rejected(topic, raw, f"gateway {envelope.gateway!r} is revoked", envelope.gateway)
    try:
        verify_signature(envelope, gateway.public_key)
    except EnvelopeError as err:
        return Rejected(topic, raw, f"signature: {err}", envelope.gateway)
    try:
        body = validate_body(envelope.type, envelope.body)
    except ValueError as err:
        return Rejected(topic, raw, f"body: {err}", envelope.gateway, verified=envelope)
    why = implausible_time(envelope, body, gateway, now_us=now_us, max_skew_us=max_skew_us)
    if why is not None:
        return Rejected(topic, raw, why, envelope.gateway, verified=envelope)
    return Accepted(envelope, body, topic, raw)
