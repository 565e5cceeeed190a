"""Decide what one MQTT message is: accepted (with its validated body) or rejected (with why).

Pure: fed the topic, the bytes and the registered gateways; no database, no broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from contract import (
    Channel,
    Envelope,
    EnvelopeError,
    open_envelope,
    parse_topic,
    validate_body,
    verify_signature,
)


@dataclass(frozen=True, slots=True)
class RegisteredGateway:
    gateway_id: str
    site_id: str
    public_key: Ed25519PublicKey


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


def decide(topic: str, raw: bytes, gateways: Mapping[str, RegisteredGateway]) -> Decision:
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
    try:
        verify_signature(envelope, gateway.public_key)
    except EnvelopeError as err:
        return Rejected(topic, raw, f"signature: {err}", envelope.gateway)
    try:
        body = validate_body(envelope.type, envelope.body)
    except ValueError as err:
        return Rejected(topic, raw, f"body: {err}", envelope.gateway, verified=envelope)
    return Accepted(envelope, body, topic, raw)
