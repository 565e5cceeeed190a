"""Zebra IoT Connector (FX9600, FX7500, ATR7000): tag data events as JSON over MQTT.

The reader publishes to the broker configured in its IoT Connector "data" endpoint; each
message is one event or a JSON array of them (batching mode):
``{"type": "SIMPLE", "timestamp": "2024-05-01T10:00:00.123+0000",
"data": {"idHex": "3034...", "antenna": 1, "peakRssi": -56, "eventNum": 7, "reads": 1}}``.
Field names are declared once (`ZEBRA_FIELDS`), as data. A message that is not JSON or an event
without an ``idHex`` is logged and counted, never fatal. Silence longer than ``stale_after_s``
(the reader stops publishing, or its broker link died) reports the reader offline; the next event
brings it back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field

from contract import TagObservation
from edge.rfid.reader import HealthCallback, ReaderHealth
from ops.backoff import Backoff

log = logging.getLogger(__name__)

# Our name -> the IoT Connector's JSON field inside "data".
ZEBRA_FIELDS = {
    "epc": "idHex",
    "antenna": "antenna",
    "rssi_dbm": "peakRssi",
    "event_num": "eventNum",
}


class ZebraIotReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["zebra_iot"]
    id: str
    broker_url: str = "mqtt://127.0.0.1:1883"  # the broker the reader publishes to
    topic: str  # the reader's data topic, e.g. zebra/fx9600-1/data
    username: str | None = None
    password: str | None = None
    stale_after_s: float = Field(10.0, gt=0)
    clock_skew_tolerance_s: float = Field(2.0, ge=0)  # correct reader time beyond this offset


class ZebraEventError(ValueError):
    """A message or event that is not an IoT Connector tag data event."""


def _timestamp_us(text: object) -> int:
    if not isinstance(text, str):
        raise ZebraEventError(f"timestamp {text!r} is not a string")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            raise ZebraEventError(f"timestamp {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise ZebraEventError(f"timestamp {text!r} has no time zone")
    return int(when.timestamp() * 1_000_000)


def parse_event(event: Any, reader_id: str) -> TagObservation:
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise ZebraEventError("event is not an object with a 'data' object")
    data = event["data"]
    epc = data.get(ZEBRA_FIELDS["epc"])
    if not isinstance(epc, str) or not epc or len(epc) % 4:
        raise ZebraEventError(f"idHex {epc!r} is not a whole number of 16-bit words")
    try:
        int(epc, 16)
    except ValueError:
        raise ZebraEventError(f"idHex {epc!r} is not hex") from None
    antenna = data.get(ZEBRA_FIELDS["antenna"], 0)
    rssi = data.get(ZEBRA_FIELDS["rssi_dbm"])
    if not isinstance(antenna, int) or isinstance(antenna, bool) or antenna < 0:
        raise ZebraEventError(f"antenna {antenna!r} is not a port number")
    if rssi is not None and not isinstance(rssi, int | float):
        raise ZebraEventError(f"peakRssi {rssi!r} is not a number")
    return TagObservation(
        epc=epc.upper(),
        antenna=antenna,
        rssi_cdbm=None if rssi is None else round(rssi * 100),
        observed_at_us=_timestamp_us(event.get("timestamp")),
        reader_id=reader_id,
    )


def parse_message(payload: bytes, reader_id: str) -> tuple[list[TagObservation], list[str]]:
    """Observations in one MQTT payload, and why any of its events were rejected."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return [], [f"not JSON: {err}"]
    events = body if isinstance(body, list) else [body]
    observations: list[TagObservation] = []
    errors: list[str] = []
    for event in events:
        try:
            observations.append(parse_event(event, reader_id))
        except ZebraEventError as err:
            errors.append(str(err))
    return observations, errors


def _now_us() -> int:
    return time.time_ns() // 1000


class ZebraIotReader:
    """`TagReader` for the Zebra IoT Connector's MQTT data interface."""

    def __init__(self, config: ZebraIotReaderConfig, on_health: HealthCallback) -> None:
        self.reader_id = config.id
        self._config = config
        self._on_health = on_health
        self._online: bool | None = None
        self._offset_us: int | None = None
        self.bad_events = 0

    async def __aenter__(self) -> ZebraIotReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _health(self, online: bool, reason: str) -> None:
        if online == self._online:
            return
        self._online = online
        self._on_health(ReaderHealth(self.reader_id, online, reason, _now_us()))

    def _client(self) -> aiomqtt.Client:
        url = urlsplit(self._config.broker_url)
        return aiomqtt.Client(
            hostname=url.hostname or "127.0.0.1",
            port=url.port or 1883,
            username=self._config.username,
            password=self._config.password,
            identifier=f"pledgewatch-zebra-{self.reader_id}",
        )

    def _in_gateway_time(self, batch: list[TagObservation]) -> list[TagObservation]:
        """Reader clocks drift; presence compares read times with the gateway's clock."""
        if self._offset_us is None:
            offset = _now_us() - max(o.observed_at_us for o in batch)
            tolerance = int(self._config.clock_skew_tolerance_s * 1_000_000)
            self._offset_us = offset if abs(offset) > tolerance else 0
            if self._offset_us:
                log.warning(
                    "reader clock differs from the gateway's; correcting its timestamps",
                    extra={"reader": self.reader_id, "offset_s": offset / 1e6},
                )
        if not self._offset_us:
            return batch
        shift = self._offset_us
        return [
            TagObservation(o.epc, o.antenna, o.rssi_cdbm, o.observed_at_us + shift, o.reader_id)
            for o in batch
        ]

    async def observations(self) -> AsyncIterator[list[TagObservation]]:
        backoff = Backoff(initial_s=0.5, maximum_s=30)
        stale = self._config.stale_after_s
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self._config.topic, qos=1)
                    self._offset_us = None  # measured again on this connection's first event
                    backoff.reset()
                    messages = aiter(client.messages)
                    while True:
                        try:
                            message = await asyncio.wait_for(anext(messages), stale)
                        except TimeoutError:
                            self._health(False, f"no tag events for {stale} s")
                            continue
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        batch, errors = parse_message(raw, self.reader_id)
                        if errors:
                            self.bad_events += len(errors)
                            log.error(
                                "Zebra IoT Connector events rejected",
                                extra={"reader": self.reader_id, "errors": errors[:5]},
                            )
                        if batch:
                            self._health(True, "tag events flowing")
                            yield self._in_gateway_time(batch)
            except aiomqtt.MqttError as err:
                reason = f"MQTT: {err}"
            self._health(False, reason)
            delay = backoff.next_delay()
            log.warning(
                "Zebra data broker lost; reconnecting",
                extra={"reader": self.reader_id, "reason": reason, "retry_in_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)
