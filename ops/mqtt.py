"""MQTT session settings shared by the edge publisher and cloud ingest.

Both speak MQTT 5 where the broker accepts it and fall back to 3.1.1 (the embedded demo broker,
amqtt, refuses a v5 CONNECT). Sessions are persistent either way: a stable client id with
``clean_start=False`` (v5, with a long session expiry) or ``clean_session=False`` (3.1.1), so
the broker keeps QoS 1 messages for a client that is briefly away.
"""

from __future__ import annotations

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
