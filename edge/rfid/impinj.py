"""Impinj IoT device interface (R700, firmware 7.5+): newline-delimited JSON over HTTP.

The reader streams events on ``GET /api/v1/data/stream``; tag reads look like
``{"timestamp": "...Z", "hostname": "...", "eventType": "tagInventory",
"tagInventoryEvent": {"epcHex": "...", "antennaPort": 1, "peakRssiCdbm": -5200}}``.
A line that is not such an event is logged and counted, never fatal. A stream that stays silent
longer than ``stale_after_s`` is treated as a dead reader: reported offline, then reconnected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from contract import TagObservation
from edge.rfid.reader import HealthCallback, ReaderHealth
from ops.backoff import Backoff

log = logging.getLogger(__name__)


class ImpinjIotReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["impinj_iot"]
    id: str
    url: str  # e.g. http://reader.local/api/v1/data/stream
    username: str | None = None
    password: str | None = None
    stale_after_s: float = Field(10.0, gt=0)


def parse_event(line: bytes, reader_id: str) -> TagObservation | None:
    """One NDJSON line to an observation; None for other event types; ValueError if garbage."""
    try:
        event: Any = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(event, dict):
        raise ValueError("event is not a JSON object")
    if event.get("eventType") != "tagInventory":
        return None
    inventory = event.get("tagInventoryEvent")
    if not isinstance(inventory, dict):
        raise ValueError("tagInventory event without tagInventoryEvent object")
    epc = inventory.get("epcHex")
    antenna = inventory.get("antennaPort", 0)
    rssi = inventory.get("peakRssiCdbm")
    stamp = event.get("timestamp")
    if not isinstance(epc, str) or not epc or len(epc) % 4:
        raise ValueError(f"epcHex {epc!r} is not a whole number of 16-bit words in hex")
    try:
        int(epc, 16)
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"bad field: {err}") from None
    if when.tzinfo is None:
        raise ValueError(f"timestamp {stamp!r} has no time zone")
    if not isinstance(antenna, int) or (rssi is not None and not isinstance(rssi, int)):
        raise ValueError("antennaPort and peakRssiCdbm must be integers")
    return TagObservation(
        epc=epc.upper(),
        antenna=antenna,
        rssi_cdbm=rssi,
        observed_at_us=int(when.timestamp() * 1_000_000),
        reader_id=reader_id,
    )


class ImpinjIotReader:
    def __init__(self, config: ImpinjIotReaderConfig, on_health: HealthCallback) -> None:
        self.reader_id = config.id
        self._config = config
        self._on_health = on_health
        self._online: bool | None = None
        self.garbage_lines = 0
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ImpinjIotReader:
        auth = None
        if self._config.username is not None:
            auth = httpx.BasicAuth(self._config.username, self._config.password or "")
        self._client = httpx.AsyncClient(
            auth=auth, timeout=httpx.Timeout(10.0, read=self._config.stale_after_s)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _health(self, online: bool, reason: str) -> None:
        if online == self._online:
            return
        self._online = online
        now_us = int(datetime.now().timestamp() * 1_000_000)
        self._on_health(ReaderHealth(self.reader_id, online, reason, now_us))

    async def observations(self) -> AsyncIterator[list[TagObservation]]:
        assert self._client is not None, "use `async with` first"
        backoff = Backoff(initial_s=0.5, maximum_s=30)
        while True:
            try:
                async with self._client.stream("GET", self._config.url) as response:
                    response.raise_for_status()
                    self._health(True, "stream connected")
                    backoff.reset()
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue  # keep-alive blank line
                        try:
                            observation = parse_event(line.encode(), self.reader_id)
                        except ValueError as err:
                            self.garbage_lines += 1
                            log.error(
                                "unparseable reader event skipped",
                                extra={"reader": self.reader_id, "error": str(err)},
                            )
                            continue
                        if observation is not None:
                            yield [observation]
                reason = "stream ended"
            except httpx.ReadTimeout:
                reason = f"no data for {self._config.stale_after_s} s"
            except (httpx.HTTPError, OSError) as err:
                reason = f"{type(err).__name__}: {err}"
            self._health(False, reason)
            delay = backoff.next_delay()
            log.warning(
                "reader stream lost; reconnecting",
                extra={"reader": self.reader_id, "reason": reason, "retry_in_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)
