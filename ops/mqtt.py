"""MQTT session settings shared by the edge publisher and cloud ingest.

Both speak MQTT 5 where the broker accepts it and fall back to 3.1.1 (the embedded demo broker,
amqtt, refuses a v5 CONNECT). Sessions are persistent either way: a stable client id with
``clean_start=False`` (v5, with a long session expiry) or ``clean_session=False`` (3.1.1), so
the broker keeps QoS 1 messages for a client that is briefly away.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ops.backoff import Backoff
from ops.supervised import BatchSource, HealthCallback, Supervised

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 1000
# Nagle's algorithm off for our end of the broker connection, as mosquitto.conf's
# set_tcp_nodelay does for the broker's. With it on, a small packet (a departure, a PUBACK)
# written while the bulk tag reads before it are not yet acknowledged by the peer's TCP waits
# for that acknowledgement, which the peer may delay up to 40 ms (delayed ACK).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

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


@contextlib.asynccontextmanager
async def first_accepted(
    make_client: Callable[[aiomqtt.ProtocolVersion], aiomqtt.Client],
    protocols: list[aiomqtt.ProtocolVersion],
) -> AsyncIterator[tuple[aiomqtt.Client, aiomqtt.ProtocolVersion]]:
    """Connected with the first protocol the broker accepts; the last refusal if none."""
    last_error: aiomqtt.MqttError | None = None
    async with contextlib.AsyncExitStack() as stack:
        for protocol in protocols:
            try:
                client = await stack.enter_async_context(make_client(protocol))
            except aiomqtt.MqttError as err:
                last_error = err
                continue
            yield client, protocol
            return
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


@dataclass(frozen=True)
class DeviceBroker:
    """Where devices publish and what to read there."""

    url: str
    topics: tuple[str, ...]
    client_id: str


class DeviceMessages(BatchSource[list[T]]):
    """Messages from devices on a broker, parsed by ``parse(topic, payload)`` into values;
    each batch holds what one read of the broker found waiting. ``parse`` deals with bad
    input itself (counts it, logs it) and returns no values for it."""

    retry_on = (aiomqtt.MqttError,)

    def __init__(
        self, broker: DeviceBroker, on_health: HealthCallback | None,
        parse: Callable[[str, bytes], Sequence[T]],
    ) -> None:
        super().__init__(broker.url, on_health, backoff=Backoff(initial_s=0.5, maximum_s=15.0))
        self._address = broker_address(broker.url)
        self._broker = broker
        self._parse = parse

    def reason_of(self, err: BaseException) -> str:
        return f"MQTT: {err}"

    async def session(self, owner: Supervised) -> None:
        host, port, user, password = self._address
        async with aiomqtt.Client(
            host, port, identifier=self._broker.client_id, username=user, password=password
        ) as client:
            for topic in self._broker.topics:
                await client.subscribe(topic, qos=1)
            owner.up("subscribed")
            messages, parse = client.messages, self._parse
            async for message in messages:
                batch = list(parse(*_pair(message)))
                while len(messages) and len(batch) < MAX_DEVICE_BATCH:  # what already waits
                    batch.extend(parse(*_pair(await anext(messages))))
                if batch:
                    await self.put(batch)


MAX_DEVICE_BATCH = 256


def _pair(message: aiomqtt.Message) -> tuple[str, bytes]:
    payload = message.payload
    if payload is None:
        payload = b""  # an empty message: the parser refuses it, by reason
    elif isinstance(payload, str | int | float):
        payload = str(payload).encode()
    return str(message.topic), bytes(payload)
