"""Impinj IoT device interface (R700, firmware 7.5+): newline-delimited JSON over HTTP.

The reader streams events on ``GET /api/v1/data/stream``; tag reads look like
``{"timestamp": "...Z", "hostname": "...", "eventType": "tagInventory",
"tagInventoryEvent": {"epcHex": "...", "antennaPort": 1, "peakRssiCdbm": -5200}}``.
A line that is not such an event is logged and counted, never fatal. A stream that stays silent
longer than ``stale_after_s`` is treated as a dead reader: reported offline, then reconnected.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field

from contract import TagObservation, safejson
from contract.safejson import JsonRefused
from edge.refusals import REFUSALS, DeviceInputRefused
from edge.rfid.checks import EPC_MAX_HEX, checked_epc, tag_read
from edge.rfid.reader import CycleCallback, CyclesFromReads, HealthCallback, reader_health
from ops.backoff import Backoff
from ops.supervised import BatchSource, SessionLost, Supervised, describe

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ADAPTER = "impinj_iot"


class ImpinjIotReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["impinj_iot"]
    id: str
    url: str  # e.g. http://reader.local/api/v1/data/stream
    username: str | None = None
    password: str | None = None
    stale_after_s: float = Field(10.0, gt=0)
    # Set the reader up on every connect: PUT our inventory preset (event fields, antennas, RF
    # mode) and start it, so a reader out of the box works without hand configuration.
    set_up: bool = True
    preset_id: str = Field("pledgewatch", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    antenna_ports: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], min_length=1)
    rf_mode: int | None = Field(None, ge=0)  # None: the reader's default for its region
    # The stream reports no inventory rounds: a chunk with reads counts as one read cycle (the
    # proof presence needs, edge/rfid/presence.py), at most one per this many seconds.
    min_cycle_s: float = Field(0.25, gt=0)


def inventory_preset(config: ImpinjIotReaderConfig) -> dict[str, Any]:
    """The InventoryPreset the gateway PUTs: the event fields it reads, antennas, RF mode."""
    antenna: dict[str, Any] = {"inventorySession": 1, "inventorySearchMode": "single-target"}
    if config.rf_mode is not None:
        antenna["rfMode"] = config.rf_mode
    return {
        "eventConfig": {
            "common": {"hostname": "enabled"},
            "tagInventory": {
                "epc": "enabled",
                "epcHex": "enabled",
                "antennaPort": "enabled",
                "peakRssiCdbm": "enabled",
                "lastSeenTime": "enabled",
            },
        },
        "antennaConfigs": [{"antennaPort": port, **antenna} for port in config.antenna_ports],
    }


def api_base(stream_url: str) -> str:
    """``http://reader/api/v1/data/stream`` -> ``http://reader/api/v1``."""
    head, found, _ = stream_url.partition("/api/v1/")
    return f"{head}/api/v1" if found else stream_url.rstrip("/").rsplit("/", 2)[0]


MAX_LINE_BYTES = 64 * 1024  # one tag event is well under 2 kB; a line past this is not one
MAX_DEPTH = 8
MAX_TIME_CHARS = 40

# Which fields of ``tagInventoryEvent`` we read, as data (Impinj API v1.7 names).
IMPINJ_FIELDS = {
    "epc_hex": "epcHex",  # disabled in the reader's default event configuration
    "epc_base64url": "epc",  # enabled by default
    "antenna": "antennaPort",
    "rssi_cdbm": "peakRssiCdbm",
    "seen_at": "lastSeenTime",  # when the tag was last singulated (event "timestamp" is later)
}


def _time_us(text: object, field: str) -> int:
    if not isinstance(text, str) or len(text) > MAX_TIME_CHARS:
        raise DeviceInputRefused("bad_time", f"{field} {str(text)[:40]!r} is not a time")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DeviceInputRefused("bad_time", f"{field} {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise DeviceInputRefused("bad_time", f"{field} {text!r} has no time zone")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _epc_hex(inventory: dict[str, Any]) -> str:
    """``epcHex`` when the reader was set to send it, else the default base64url ``epc``."""
    hex_text = inventory.get(IMPINJ_FIELDS["epc_hex"])
    if hex_text is not None:
        return checked_epc(hex_text, "epcHex")
    encoded = inventory.get(IMPINJ_FIELDS["epc_base64url"])
    if not isinstance(encoded, str) or not encoded or len(encoded) > 4 * EPC_MAX_HEX:
        raise DeviceInputRefused("bad_epc", "tag event has neither epcHex nor a base64url epc")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, binascii.Error):
        raise DeviceInputRefused("bad_epc", f"epc {encoded[:40]!r} is not base64url") from None
    return checked_epc(raw.hex(), "epc")


class LineSplitter:
    """NDJSON framing with a bound: bytes in, complete lines out, an over-long line dropped whole.

    ``httpx``'s ``aiter_lines`` keeps a line in memory until its newline comes, so a reader (or
    anything on its port) sending bytes without one would grow the gateway's memory without end.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._skipping = False
        self.too_long = 0  # lines dropped for length since construction

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False
            elif len(self._buffer) + end - start > self._max:
                self.too_long += 1
            else:
                lines.append(bytes(self._buffer) + data[start:end])
            self._buffer.clear()
            start = end + 1
        if not self._skipping:
            self._buffer += data[start:]
            if len(self._buffer) > self._max:
                self.too_long += 1
                self._skipping = True
                self._buffer.clear()
        return [line.rstrip(b"\r") for line in lines if line.strip()]


def parse_event(line: bytes, reader_id: str) -> TagObservation | None:
    """One NDJSON line to an observation; None for an event that is not a tag read.

    `DeviceInputRefused` (a ValueError) says why a line is not an event we can use.
    Events without ``eventType`` (older firmware, Impinj's published stream samples) are tag
    reads when they carry a ``tagInventoryEvent`` object.
    """
    try:
        event: Any = safejson.loads(line, max_bytes=MAX_LINE_BYTES, max_depth=MAX_DEPTH)
    except JsonRefused as err:
        raise DeviceInputRefused("not_json", f"not JSON: {err}") from None
    if not isinstance(event, dict):
        raise DeviceInputRefused("not_an_object", "event is not a JSON object")
    kind = event.get("eventType", "tagInventory" if "tagInventoryEvent" in event else None)
    if kind != "tagInventory":
        return None
    inventory = event.get("tagInventoryEvent")
    if not isinstance(inventory, dict):
        raise DeviceInputRefused("bad_event", "tagInventory event without tagInventoryEvent object")
    epc = _epc_hex(inventory)
    seen = inventory.get(IMPINJ_FIELDS["seen_at"])
    if seen is not None:
        at_us = _time_us(seen, "lastSeenTime")
    else:
        at_us = _time_us(event.get("timestamp"), "timestamp")
    return tag_read(
        epc=epc,
        antenna=inventory.get(IMPINJ_FIELDS["antenna"], 0),
        rssi_cdbm=inventory.get(IMPINJ_FIELDS["rssi_cdbm"]),
        observed_at_us=at_us,
        reader_id=reader_id,
    )


def _now_us() -> int:
    return time.time_ns() // 1000


class ImpinjIotReader(BatchSource[list[TagObservation]]):
    """`TagReader` for the Impinj IoT interface's HTTP event stream."""

    retry_on = (httpx.HTTPError, OSError)

    def __init__(
        self, config: ImpinjIotReaderConfig, on_health: HealthCallback,
        on_cycle: CycleCallback | None = None,
    ) -> None:
        super().__init__(config.id, reader_health(on_health),
                         backoff=Backoff(initial_s=0.5, maximum_s=30))
        self.reader_id = config.id
        self._config = config
        self._on_cycle = on_cycle
        self._cycles = CyclesFromReads(config.id, (0,), config.min_cycle_s)
        self.garbage_lines = 0
        self._set_up_failed = False
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        auth = None
        if self._config.username is not None:
            auth = httpx.BasicAuth(self._config.username, self._config.password or "")
        self._client = httpx.AsyncClient(
            auth=auth, timeout=httpx.Timeout(10.0, read=self._config.stale_after_s)
        )
        return await super().__aenter__()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def reason_of(self, err: BaseException) -> str:
        if isinstance(err, httpx.ReadTimeout):
            return f"no data for {self._config.stale_after_s} s"
        return describe(err)

    def _read_of(self, line: bytes) -> TagObservation | None:
        try:
            observation = parse_event(line, self.reader_id)
        except DeviceInputRefused as err:
            self.garbage_lines += 1
            REFUSALS.refuse(ADAPTER, err.reason, f"{self.reader_id}: {err}")
            return None
        if observation is None:
            REFUSALS.refuse(ADAPTER, "not_a_tag_event", self.reader_id)
        return observation

    async def _set_up_reader(self) -> None:
        """Our preset, then start it. A reader that refuses still streams its own event fields,
        which `parse_event` reads too (base64url epc, event timestamp): logged, not fatal."""
        assert self._client is not None
        base = api_base(self._config.url)
        preset_url = f"{base}/profiles/inventory/presets/{self._config.preset_id}"
        try:
            response = await self._client.put(preset_url, json=inventory_preset(self._config))
            response.raise_for_status()
            response = await self._client.post(f"{preset_url}/start")
            response.raise_for_status()
        except (httpx.HTTPError, OSError) as err:
            if not self._set_up_failed:
                log.warning(
                    "reader set-up refused; reading its own event settings",
                    extra={"reader": self.reader_id, "error": f"{type(err).__name__}: {err}"},
                )
            self._set_up_failed = True
            return
        if self._set_up_failed:
            log.info("reader set-up applied", extra={"reader": self.reader_id})
        self._set_up_failed = False

    async def session(self, owner: Supervised) -> None:
        assert self._client is not None, "use `async with` first"
        if self._config.set_up:
            await self._set_up_reader()
        async with self._client.stream("GET", self._config.url) as response:
            response.raise_for_status()
            owner.up("stream connected")
            splitter = LineSplitter()
            async for chunk in response.aiter_bytes():
                too_long = splitter.too_long
                batch = [
                    read
                    for line in splitter.feed(chunk)
                    if (read := self._read_of(line)) is not None
                ]
                for _ in range(splitter.too_long - too_long):
                    self.garbage_lines += 1
                    REFUSALS.refuse(ADAPTER, "line_too_long", self.reader_id)
                if batch:
                    # A cycle is judged by its time, so it may go before the batch.
                    cycle = self._cycles.seen(batch, _now_us())
                    if cycle is not None and self._on_cycle is not None:
                        self._on_cycle(cycle)
                    await self.put(batch)
        raise SessionLost("stream ended")
