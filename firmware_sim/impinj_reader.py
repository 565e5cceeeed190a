"""A simulated Impinj R700 speaking the IoT device interface: NDJSON tag events over HTTP.

Every ``cycle_s`` each tag in the field is read with its own probability (drawn once per tag
from ``read_rate``, 0.6-0.9 by default: real readers miss 10-40 % of reads), with an RSSI that
wanders around the tag's mean. ``POST /sim/remove?lot=LOT-A&count=5`` takes tags out of the
field (a theft), ``POST /sim/restore`` brings them all back, ``POST /sim/unplug?seconds=10``
drops every stream and refuses connections for a while, ``GET /sim/state`` reports.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from firmware_sim.tags import demo_lots
from ops import timeouts

log = logging.getLogger(__name__)

STREAM_PATH = "/api/v1/data/stream"
API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_EVENT_FIELDS = frozenset({"epc", "antennaPort", "peakRssiCdbm"})


@dataclass
class TagField:
    """The tags in front of the reader, per lot, and which of them have been taken away."""

    lots: dict[str, list[str]]
    read_rate: tuple[float, float] = (0.6, 0.9)
    rng: random.Random = field(default_factory=random.Random)
    removed: set[str] = field(default_factory=set)
    # The R700's out-of-the-box TagInventoryEventConfiguration: base64url ``epc`` on, ``epcHex``
    # and ``lastSeenTime`` off. A preset PUT through the REST API changes it.
    event_fields: set[str] = field(default_factory=lambda: set(DEFAULT_EVENT_FIELDS))
    _probability: dict[str, float] = field(init=False, default_factory=dict)
    _antenna: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for index, epcs in enumerate(self.lots.values()):
            for epc in epcs:
                self._probability[epc] = self.rng.uniform(*self.read_rate)
                self._antenna[epc] = index + 1

    def remove(self, lot: str, count: int) -> list[str]:
        present = [e for e in self.lots.get(lot, []) if e not in self.removed]
        taken = present[:count]
        self.removed.update(taken)
        return taken

    def restore(self) -> None:
        self.removed.clear()

    def read_cycle(self, now: datetime) -> list[dict[str, Any]]:
        stamp = now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        events = []
        for epc, probability in self._probability.items():
            if epc in self.removed or self.rng.random() > probability:
                continue
            every = {
                "epc": base64.urlsafe_b64encode(bytes.fromhex(epc)).decode().rstrip("="),
                "epcHex": epc,
                "antennaPort": self._antenna[epc],
                "peakRssiCdbm": int(self.rng.gauss(-5500, 400)),
                "lastSeenTime": stamp,
            }
            events.append({
                "timestamp": stamp,
                "hostname": "impinj-sim",
                "eventType": "tagInventory",
                "tagInventoryEvent": {k: v for k, v in every.items() if k in self.event_fields},
            })
        return events


class SimulatedImpinjReader:
    def __init__(self, tags: TagField, *, host: str, port: int, cycle_s: float) -> None:
        self.tags = tags
        self.host, self.port, self.cycle_s = host, port, cycle_s
        self.reads_sent = 0
        self._unplugged_until = 0.0
        self._streams: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.presets: dict[str, dict[str, Any]] = {}
        # A reader out of the box keeps streaming its default preset's events (as the project's
        # other callers expect); a started preset replaces the event fields.
        self.running_preset: str | None = None

    async def __aenter__(self) -> SimulatedImpinjReader:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._streams):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await timeouts.wait_for(self._server.wait_closed(), 2)

    def unplugged(self) -> bool:
        return asyncio.get_running_loop().time() < self._unplugged_until

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        method, target = request.split(b" ", 2)[:2]
        url = urlsplit(target.decode("latin-1"))
        if self.unplugged():
            writer.close()
            return
        if method == b"GET" and url.path == STREAM_PATH:
            await self._stream(writer)
            return
        length = 0
        for header in request.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = min(int(value), MAX_BODY_BYTES)
        try:
            body = await reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if url.path.startswith(API_PREFIX):
            status, answer = self._rest(method.decode(), url.path, body)
            await self._reply(writer, status, answer)
        else:
            await self._control(method.decode(), url.path, parse_qs(url.query), writer)

    def _rest(self, method: str, path: str, body: bytes) -> tuple[str, object]:
        """The part of the IoT device interface's REST API the gateway's set-up calls."""
        parts = path.removeprefix(API_PREFIX).strip("/").split("/")
        presets = parts[:3] == ["profiles", "inventory", "presets"]
        if method == "PUT" and presets and len(parts) == 4:
            try:
                preset = json.loads(body)
            except ValueError:
                return "400 Bad Request", {"message": "preset is not JSON"}
            if not isinstance(preset, dict):
                return "400 Bad Request", {"message": "preset is not an object"}
            self.presets[parts[3]] = preset
            return "204 No Content", None
        if method == "POST" and presets and parts[4:] == ["start"]:
            preset = self.presets.get(parts[3])
            if preset is None:
                return "404 Not Found", {"message": f"no preset {parts[3]}"}
            fields = preset.get("eventConfig", {}).get("tagInventory", {})
            self.tags.event_fields = {k for k, v in fields.items() if v == "enabled"}
            self.running_preset = parts[3]
            return "204 No Content", None
        if method == "POST" and parts == ["profiles", "stop"]:
            self.running_preset = None
            return "204 No Content", None
        return "404 Not Found", {"message": f"no route {method} {path}"}

    async def _reply(self, writer: asyncio.StreamWriter, status: str, body: object) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _control(
        self, method: str, path: str, query: dict[str, list[str]], writer: asyncio.StreamWriter
    ) -> None:
        status, body = "200 OK", {}
        if method == "POST" and path == "/sim/remove":
            lot, count = query.get("lot", [""])[0], int(query.get("count", ["1"])[0])
            body = {"removed": self.tags.remove(lot, count)}
            log.info("tags removed from the field", extra={"lot": lot, "count": count})
        elif method == "POST" and path == "/sim/restore":
            self.tags.restore()
        elif method == "POST" and path == "/sim/unplug":
            seconds = float(query.get("seconds", ["10"])[0])
            self._unplugged_until = asyncio.get_running_loop().time() + seconds
            for stream in list(self._streams):
                stream.close()
        elif method == "GET" and path == "/sim/state":
            body = {"reads_sent": self.reads_sent, "removed": sorted(self.tags.removed)}
        else:
            status, body = "404 Not Found", {"error": f"no route {method} {path}"}
        data = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        # HTTP/1.0-style body: the stream ends when the connection closes.
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
        )
        self._streams.add(writer)
        try:
            while not writer.is_closing():
                events = self.tags.read_cycle(datetime.now(UTC))
                writer.write(b"".join(json.dumps(e).encode() + b"\n" for e in events))
                await writer.drain()
                self.reads_sent += len(events)
                await asyncio.sleep(self.cycle_s)
        except ConnectionError:
            pass
        finally:
            self._streams.discard(writer)
            writer.close()


async def serve(args: argparse.Namespace, lots: dict[str, list[str]]) -> None:
    tags = TagField(lots, read_rate=(args.read_rate_min, args.read_rate_max))
    async with SimulatedImpinjReader(
        tags, host=args.host, port=args.port, cycle_s=args.cycle_s
    ) as reader:
        log.info("simulated Impinj reader listening",
                 extra={"url": f"http://{args.host}:{reader.port}{STREAM_PATH}"})
        if args.theft_after is not None:
            await asyncio.sleep(args.theft_after)
            tags.remove(args.theft_lot, args.theft_count)
            log.info("scenario: theft", extra={"lot": args.theft_lot, "count": args.theft_count})
        await asyncio.Event().wait()


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "impinj-reader", help="a simulated Impinj R700 (IoT device interface, NDJSON stream)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--lots", help="JSON file {lot: [epc, ...]}; default: the demo's lots")
    parser.add_argument("--tags-per-lot", type=int, default=40)
    parser.add_argument("--cycle-s", type=float, default=0.5)
    parser.add_argument("--read-rate-min", type=float, default=0.6)
    parser.add_argument("--read-rate-max", type=float, default=0.9)
    parser.add_argument("--theft-after", type=float, help="remove tags after this many seconds")
    parser.add_argument("--theft-lot", default="LOT-A")
    parser.add_argument("--theft-count", type=int, default=5)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    lots = json.loads(Path(args.lots).read_text()) if args.lots else demo_lots(args.tags_per_lot)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, lots))
    return 0
