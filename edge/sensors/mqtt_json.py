"""Sensors that publish JSON to the gateway's broker on ``sensors/<sensor id>``.

Payload: ``{"ts": <Unix seconds>, "<quantity>": <value>, ...}`` with quantities from
``QUANTITY_UNITS`` (a message may carry several). Contacts take ``"open"`` / ``"closed"``
(seals also ``"cut"``) or booleans (true = open).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from contract import safejson
from contract.bounds import TIME_US_MAX, TIME_US_MIN
from contract.safejson import JsonRefused
from edge.refusals import REFUSALS, DeviceInputRefused
from edge.sensors.decisions import Reading
from edge.sensors.source import CONTACT_QUANTITIES, QUANTITY_UNITS
from ops.mqtt import DeviceBroker, DeviceMessages
from ops.supervised import HealthCallback

log = logging.getLogger(__name__)

TOPIC_FILTER = "sensors/+"
ADAPTER = "sensor_json"
MAX_MESSAGE_BYTES = 16 * 1024
MAX_DEPTH = 4
VALUE_LIMIT = 1e9  # beyond any quantity we read (kg, g, degC, %RH, deg); keeps floats finite


class SensorMessageRefused(DeviceInputRefused):
    """A sensor message that yields no reading; ``reason`` is the counter's code."""
_CONTACT_WORDS = {"open": 1.0, "opened": 1.0, "cut": 1.0, "closed": 0.0, "sealed": 0.0}


def parse_sensor_message(topic: str, payload: bytes) -> list[Reading]:
    """`SensorMessageRefused` (a ValueError) says what is wrong; unknown keys are errors (a typo
    must not hide a value)."""
    parts = topic.split("/")
    if len(parts) != 2 or parts[0] != "sensors" or not parts[1]:
        raise SensorMessageRefused("bad_topic", f"topic {topic[:80]!r} is not sensors/<sensor id>")
    sensor = parts[1]
    try:
        data = safejson.loads(payload, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_DEPTH)
    except JsonRefused as err:
        raise SensorMessageRefused("not_json", f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise SensorMessageRefused("not_an_object", "message is not a JSON object")
    ts = data.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SensorMessageRefused("bad_time", "message needs a numeric 'ts' (Unix seconds)")
    unknown = sorted(set(data) - set(QUANTITY_UNITS) - {"ts"})
    if unknown:
        raise SensorMessageRefused("unknown_field", f"unknown fields {str(unknown)[:80]}")
    # Range first: a finite ts like 1e303 overflows to infinity once scaled to microseconds.
    if not TIME_US_MIN <= ts * 1_000_000 <= TIME_US_MAX:
        raise SensorMessageRefused("time_out_of_range", f"ts {ts} is outside 2000-2100")
    t_us = round(ts * 1_000_000)
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
                raise SensorMessageRefused(
                    "bad_value", f"{quantity} must be open/closed or a boolean, got {str(raw)[:40]}"
                )
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise SensorMessageRefused("bad_value", f"{quantity} must be a number: {str(raw)[:40]}")
        elif abs(raw) > VALUE_LIMIT:
            raise SensorMessageRefused("bad_value", f"{quantity} {raw} is out of range")
        else:
            value = float(raw)
        readings.append(Reading(sensor=sensor, quantity=quantity, value=value, t_us=t_us))
    return readings


@dataclass(frozen=True)
class MqttJsonConfig:
    url: str
    client_id: str
    topic: str = TOPIC_FILTER


def _readings_of(topic: str, payload: bytes) -> list[Reading]:
    try:
        return parse_sensor_message(topic, payload)
    except SensorMessageRefused as err:
        REFUSALS.refuse(ADAPTER, err.reason, f"{topic[:80]}: {err}")
        return []


class MqttJsonSensors(DeviceMessages[Reading]):
    """All MQTT JSON sensors on one broker."""

    def __init__(self, config: MqttJsonConfig, on_health: HealthCallback | None = None) -> None:
        super().__init__(
            DeviceBroker(config.url, (config.topic,), config.client_id), on_health, _readings_of
        )
