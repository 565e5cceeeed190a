"""MQTT session settings shared by the edge publisher and cloud ingest.

Both speak MQTT 5 where the broker accepts it and fall back to 3.1.1 (the embedded demo broker,
amqtt, refuses a v5 CONNECT). Sessions are persistent either way: a stable client id with
``clean_start=False`` (v5, with a long session expiry) or ``clean_session=False`` (3.1.1), so
the broker keeps QoS 1 messages for a client that is briefly away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 1000

ProtocolSetting = Literal["auto", "5", "3.1.1"]


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
