"""MQTT session settings shared by the edge publisher and cloud ingest.

Both speak MQTT 5 where the broker accepts it and fall back to 3.1.1 (the embedded demo broker,
amqtt, refuses a v5 CONNECT). Sessions are persistent either way: a stable client id with
``clean_start=False`` (v5, with a long session expiry) or ``clean_session=False`` (3.1.1), so
the broker keeps QoS 1 messages for a client that is briefly away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ops.backoff import Backoff

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 1000

ProtocolSetting = Literal["auto", "5", "3.1.1"]

# The same versions as paho names them (ops/mqtt_acks.py talks to paho directly).
PAHO_VERSIONS: dict[aiomqtt.ProtocolVersion, MQTTProtocolVersion] = {
    aiomqtt.ProtocolVersion.V5: MQTTProtocolVersion.MQTTv5,
    aiomqtt.ProtocolVersion.V311: MQTTProtocolVersion.MQTTv311,
}


def protocol_candidates(setting: ProtocolSetting) -> list[aiomqtt.ProtocolVersion]:
    if setting == "5":
        return [aiomqtt.ProtocolVersion.V5]
    if setting == "3.1.1":
        return [aiomqtt.ProtocolVersion.V311]
    return [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311]


def persistent_session_kwargs(protocol: aiomqtt.ProtocolVersion) -> dict[str, Any]:
    if protocol is aiomqtt.ProtocolVersion.V5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        return {"protocol": protocol, "clean_start": False, "properties": props}
    return {"protocol": protocol, "clean_session": False}


async def connect_first(
    make_client: Callable[[aiomqtt.ProtocolVersion], aiomqtt.Client],
    protocols: list[aiomqtt.ProtocolVersion],
) -> tuple[aiomqtt.Client, aiomqtt.ProtocolVersion]:
    """Connect with the first protocol the broker accepts; the last refusal if none."""
    last_error: aiomqtt.MqttError | None = None
    for protocol in protocols:
        client = make_client(protocol)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as err:
            last_error = err
            continue
        return client, protocol
    assert last_error is not None, "no protocol to try"
    raise last_error


# Messages from devices on an MQTT broker (the gateway's local one, usually), with reconnects:
# device messages are read with QoS 0 semantics on the device side, so nothing here promises
# delivery; what the gateway decides from them is made durable by ``ctx.emit``.
def broker_address(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"broker URL {url!r} must look like mqtt://host:port")
    return parts.hostname, parts.port or 1883, parts.username, parts.password


async def device_messages(
    url: str, topics: Sequence[str], *, client_id: str
) -> AsyncIterator[tuple[str, bytes]]:
    host, port, user, password = broker_address(url)
    backoff = Backoff(initial_s=0.5, maximum_s=15.0)
    while True:
        try:
            async with aiomqtt.Client(
                host, port, identifier=client_id, username=user, password=password
            ) as client:
                for topic in topics:
                    await client.subscribe(topic, qos=1)
                if backoff.attempts:
                    log.info("device broker reconnected", extra={"url": url})
                backoff.reset()
                async for message in client.messages:
                    payload = message.payload
                    if payload is None:
                        payload = b""  # an empty message: the parser refuses it, by reason
                    elif isinstance(payload, str | int | float):
                        payload = str(payload).encode()
                    yield str(message.topic), bytes(payload)
        except aiomqtt.MqttError as err:
            delay = backoff.next_delay()
            if backoff.attempts == 1:
                log.warning("device broker unreachable", extra={"url": url, "error": str(err)})
            await asyncio.sleep(delay)
