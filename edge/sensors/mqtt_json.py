"""Sensors that publish JSON to the gateway's broker on ``sensors/<sensor id>``.

Payload: ``{"ts": <Unix seconds>, "<quantity>": <value>, ...}`` with quantities from
``QUANTITY_UNITS`` (a message may carry several). Contacts take ``"open"`` / ``"closed"``
(seals also ``"cut"``) or booleans (true = open).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator

from edge.sensors.decisions import Reading
from edge.sensors.source import CONTACT_QUANTITIES, QUANTITY_UNITS
from edge.trackers.mqtt_source import device_messages

log = logging.getLogger(__name__)

TOPIC_FILTER = "sensors/+"
_CONTACT_WORDS = {"open": 1.0, "opened": 1.0, "cut": 1.0, "closed": 0.0, "sealed": 0.0}


def parse_sensor_message(topic: str, payload: bytes) -> list[Reading]:
    """ValueError says what is wrong; unknown keys are errors (a typo must not hide a value)."""
    parts = topic.split("/")
    if len(parts) != 2 or parts[0] != "sensors" or not parts[1]:
        raise ValueError(f"topic {topic!r} is not sensors/<sensor id>")
    sensor = parts[1]
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("message is not a JSON object")
    ts = data.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError("message needs a numeric 'ts' (Unix seconds)")
    unknown = sorted(set(data) - set(QUANTITY_UNITS) - {"ts"})
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    t_us = int(ts * 1_000_000)
    readings = []
    for quantity in QUANTITY_UNITS:
        if quantity not in data:
            continue
        raw = data[quantity]
        if quantity in CONTACT_QUANTITIES:
            if isinstance(raw, bool):
                value = 1.0 if raw else 0.0
            elif isinstance(raw, str) and raw.lower() in _CONTACT_WORDS:
                value = _CONTACT_WORDS[raw.lower()]
            else:
                raise ValueError(f"{quantity} must be open/closed or a boolean, got {raw!r}")
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ValueError(f"{quantity} must be a number, got {raw!r}")
        else:
            value = float(raw)
        readings.append(Reading(sensor=sensor, quantity=quantity, value=value, t_us=t_us))
    return readings


class MqttJsonSensors:
    """All MQTT JSON sensors on one broker."""

    def __init__(self, url: str, *, client_id: str, topic: str = TOPIC_FILTER) -> None:
        self._url = url
        self._client_id = client_id
        self._topic = topic

    async def readings(self) -> AsyncIterator[Reading]:
        async for topic, payload in device_messages(
            self._url, [self._topic], client_id=self._client_id
        ):
            try:
                batch = parse_sensor_message(topic, payload)
            except ValueError as err:
                log.warning("sensor message refused", extra={"topic": topic, "reason": str(err)})
                continue
            for reading in batch:
                yield reading
