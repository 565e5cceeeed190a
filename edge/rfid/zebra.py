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

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field

from contract import TagObservation, safejson
from contract.bounds import time_us_in_range
from contract.safejson import JsonRefused
from edge.refusals import REFUSALS, DeviceInputRefused
from edge.rfid.checks import RSSI_CDBM_MAX, RSSI_CDBM_MIN, checked_epc, tag_read
from edge.rfid.reader import CycleCallback, CyclesFromReads, HealthCallback, reader_health
from ops import timeouts
from ops.backoff import Backoff
from ops.supervised import BatchSource, Supervised, describe

log = logging.getLogger(__name__)

ADAPTER = "zebra_iot"

# Our name -> the IoT Connector's JSON field inside "data".
ZEBRA_FIELDS = {
    "epc": "idHex",
    "antenna": "antenna",
    "rssi_dbm": "peakRssi",
    "event_num": "eventNum",
}


TagMetadata = Literal["ANTENNA", "RSSI", "SEEN_COUNT", "PC"]
DEFAULT_TAG_METADATA: tuple[TagMetadata, ...] = ("ANTENNA", "RSSI")


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
    # The reader's management request topic (IoT Connector MQTT management interface). When set,
    # every connect sends ``set_mode`` (SIMPLE, EPC format, the metadata below) and ``start``.
    command_topic: str | None = None
    tag_metadata: list[TagMetadata] = Field(default_factory=lambda: list(DEFAULT_TAG_METADATA))
    # Tag events carry no inventory round: a message with reads counts as one read cycle (the
    # proof presence needs, edge/rfid/presence.py), at most one per this many seconds.
    # Heartbeats prove the reader is up, not that it reads: they count for nothing.
    min_cycle_s: float = Field(0.25, gt=0)


def set_up_commands(config: ZebraIotReaderConfig, command_id: str) -> list[dict[str, Any]]:
    """What the gateway publishes on the management topic: operating mode, then start."""
    return [
        {
            "command": "set_mode",
            "command_id": f"{command_id}-mode",
            "payload": {"type": "SIMPLE", "tagMetaData": list(config.tag_metadata)},
        },
        {"command": "start", "command_id": f"{command_id}-start", "payload": {}},
    ]


class ZebraEventError(DeviceInputRefused):
    """A message or event that is not an IoT Connector tag data event; ``reason`` says why."""


MAX_MESSAGE_BYTES = 1024 * 1024  # a batching-mode array of a few thousand events
MAX_DEPTH = 8
MAX_TIME_CHARS = 40
TID_HEX = 24  # fastID appends the 96-bit TID to the EPC
HEARTBEAT_TYPES = frozenset({"heartbeat"})  # compared lower-case
# ``data.format`` -> which memory ``idHex`` holds. tid and user memory carry no EPC: such a read
# cannot be placed in a lot, so it is refused by reason, never taken as an EPC.
ID_FORMATS = {"epc": "epc", "fastid": "epc+tid", "tid": "tid", "user": "user"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp_us(text: object) -> int:
    if not isinstance(text, str) or len(text) > MAX_TIME_CHARS:
        raise ZebraEventError("bad_time", f"timestamp {str(text)[:40]!r} is not a string")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            raise ZebraEventError("bad_time", f"timestamp {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise ZebraEventError("bad_time", f"timestamp {text!r} has no time zone")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _epc_of(data: dict[str, Any]) -> str:
    raw_format = data.get("format", "epc")
    kind = ID_FORMATS.get(raw_format.lower()) if isinstance(raw_format, str) else None
    if kind is None:
        raise ZebraEventError("unknown_format", f"format {str(raw_format)[:40]!r} is not known")
    if kind in ("tid", "user"):
        raise ZebraEventError("no_epc", f"format {raw_format!r}: idHex is {kind} memory, no EPC")
    ident = checked_epc(data.get(ZEBRA_FIELDS["epc"]), "idHex")
    if kind == "epc+tid":
        if len(ident) <= TID_HEX:
            raise ZebraEventError("bad_epc", f"fastID idHex {ident!r} is too short for EPC+TID")
        ident = ident[:-TID_HEX]  # the TID stays in the reader's log, the EPC names the lot
    return checked_epc(ident, "idHex")


def parse_event(event: Any, reader_id: str) -> TagObservation | None:
    """One event to an observation; None for a heartbeat. `ZebraEventError` says what is wrong."""
    if isinstance(event, dict) and str(event.get("type", "")).lower() in HEARTBEAT_TYPES:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise ZebraEventError("bad_event", "event is not an object with a 'data' object")
    data = event["data"]
    rssi = data.get(ZEBRA_FIELDS["rssi_dbm"])
    if rssi is not None and (isinstance(rssi, bool) or not isinstance(rssi, int | float)):
        raise ZebraEventError("bad_rssi", f"peakRssi {str(rssi)[:40]} is not a number")
    if rssi is not None and not RSSI_CDBM_MIN <= rssi * 100 <= RSSI_CDBM_MAX:
        raise ZebraEventError("bad_rssi", f"peakRssi {rssi} dBm is out of range")
    return tag_read(
        epc=_epc_of(data),
        # SIMPLE mode without antenna metadata (FXR90) names no port: 0, "not reported".
        antenna=data.get(ZEBRA_FIELDS["antenna"], 0),
        rssi_cdbm=None if rssi is None else round(rssi * 100),
        observed_at_us=_timestamp_us(event.get("timestamp")),
        reader_id=reader_id,
    )


@dataclass(frozen=True, slots=True)
class ZebraMessage:
    observations: list[TagObservation]
    refused: list[ZebraEventError]
    heartbeats: int


def parse_message(payload: bytes, reader_id: str) -> ZebraMessage:
    """Observations in one MQTT payload, heartbeats seen, and why any events were refused."""
    try:
        body = safejson.loads(payload, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_DEPTH)
    except JsonRefused as err:
        return ZebraMessage([], [ZebraEventError("not_json", f"not JSON: {err}")], 0)
    events = body if isinstance(body, list) else [body]
    observations: list[TagObservation] = []
    refused: list[ZebraEventError] = []
    heartbeats = 0
    for event in events:
        try:
            observation = parse_event(event, reader_id)
        except DeviceInputRefused as err:
            refused.append(
                err if isinstance(err, ZebraEventError) else ZebraEventError(err.reason, str(err))
            )
            continue
        if observation is None:
            heartbeats += 1
        else:
            observations.append(observation)
    return ZebraMessage(observations, refused, heartbeats)


def _now_us() -> int:
    return time.time_ns() // 1000


class ZebraIotReader(BatchSource[list[TagObservation]]):
    """`TagReader` for the Zebra IoT Connector's MQTT data interface."""

    retry_on = (aiomqtt.MqttError,)

    def __init__(
        self, config: ZebraIotReaderConfig, on_health: HealthCallback,
        on_cycle: CycleCallback | None = None,
    ) -> None:
        super().__init__(config.id, reader_health(on_health),
                         backoff=Backoff(initial_s=0.5, maximum_s=30))
        self.reader_id = config.id
        self._config = config
        self._on_cycle = on_cycle
        self._cycles = CyclesFromReads(config.id, (0,), config.min_cycle_s)
        self._offset_us: int | None = None
        self.bad_events = 0

    def reason_of(self, err: BaseException) -> str:
        return f"MQTT: {err}" if isinstance(err, aiomqtt.MqttError) else describe(err)

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
        shifted = []
        for o in batch:
            if time_us_in_range(o.observed_at_us + shift):
                shifted.append(
                    TagObservation(
                        o.epc, o.antenna, o.rssi_cdbm, o.observed_at_us + shift, o.reader_id
                    )
                )
            else:  # the correction measured on a first event far off pushes this one out
                REFUSALS.refuse(ADAPTER, "time_out_of_range", f"{self.reader_id}: corrected")
        return shifted

    async def session(self, owner: Supervised) -> None:
        stale = self._config.stale_after_s
        async with self._client() as client:
            await client.subscribe(self._config.topic, qos=1)
            if self._config.command_topic is not None:
                command_id = f"pw-{self.reader_id}-{_now_us()}"
                for command in set_up_commands(self._config, command_id):
                    await client.publish(
                        self._config.command_topic, json.dumps(command).encode(), qos=1
                    )
            self._offset_us = None  # measured again on this connection's first event
            owner.backoff.reset()  # connected; health waits for the reader's first word
            messages = aiter(client.messages)
            while True:
                try:
                    message = await timeouts.wait_for(anext(messages), stale)
                except TimeoutError:
                    owner.down(f"no tag events for {stale} s")
                    continue
                payload = message.payload
                raw = payload if isinstance(payload, bytes) else str(payload).encode()
                parsed = parse_message(raw, self.reader_id)
                for err in parsed.refused:
                    self.bad_events += 1
                    REFUSALS.refuse(ADAPTER, err.reason, f"{self.reader_id}: {err}")
                if parsed.heartbeats and not parsed.observations:
                    owner.up("reader heartbeat")
                if parsed.observations:
                    owner.up("tag events flowing")
                    batch = self._in_gateway_time(parsed.observations)
                    # A cycle is judged by its time, so it may go before the batch.
                    cycle = self._cycles.seen(batch, _now_us())
                    if cycle is not None and self._on_cycle is not None:
                        self._on_cycle(cycle)
                    await self.put(batch)
