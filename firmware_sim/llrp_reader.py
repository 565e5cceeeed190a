"""A simulated fixed UHF reader speaking LLRP 1.0.1 over TCP (what Impinj Speedway/R700 and
Zebra FX readers speak on port 5084).

It answers the control messages a client needs (capabilities, reader config with keepalive,
ROSpec add/enable/start/stop/disable/delete, CLOSE_CONNECTION; anything else gets an
M_UnsupportedMessage status), greets with a ConnectionAttemptEvent, sends KEEPALIVEs, and while
an enabled ROSpec runs, sends one RO_ACCESS_REPORT per inventory round with a TagReportData per
tag read and, when the client asked for AISpec event notifications, a READER_EVENT_NOTIFICATION
with an end-of-AISpec AISpecEvent after every round, tags read or not. Each tag in front of an
antenna is read per round with ``read_probability``; its RSSI is its own mean (drawn once
around ``rssi_mean_dbm``) plus Gaussian noise. Scripted events change the world while it runs:
tags removed or added, tags moved between antennas, the reader unplugged (connections dropped
and refused) or slow (silent, sockets open).

Control messages are packed with pyllrp (slow but exact); reports with edge.rfid.llrp's encoder
so a busy simulated reader stays cheap.

Driven (``driven=True``): no inventory or keepalive of its own; a scenario player sends each
read cycle's report (``report``, stamped with the simulated time it happened, then an
end-of-AISpec event per round it held, each dated in simulated time), each keepalive
(``keepalive``), cuts power or network (``set_power``, ``set_network``), and waits until the
client has read everything sent so far (``barrier``: a KEEPALIVE the client must acknowledge,
and an LLRP client handles a connection's messages in order).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import bitstring
from pyllrp import pyllrp as P

from edge.rfid import llrp
from firmware_sim.tags import lot_tags
from ops import timeouts

log = logging.getLogger(__name__)

Action = Literal[
    "remove",
    "add",
    "move",
    "unplug",
    "slow",
    "read_probability",
    "antenna_disconnect",
    "antenna_connect",
]


@dataclass(frozen=True)
class ScriptedEvent:
    at_s: float  # seconds after start()
    action: Action
    epcs: tuple[str, ...] = ()
    antenna: int | None = None
    seconds: float = 0.0  # unplug / slow duration
    value: float = 0.0  # read_probability

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ScriptedEvent:
        if item.get("action") not in get_args(Action):
            raise ValueError(f"scripted action must be one of {get_args(Action)}: {item!r}")
        return cls(
            at_s=float(item["at_s"]),
            action=item["action"],
            epcs=tuple(e.upper() for e in item.get("epcs", ())),
            antenna=item.get("antenna"),
            seconds=float(item.get("seconds", 0.0)),
            value=float(item.get("value", 0.0)),
        )


@dataclass
class TagPopulation:
    """Which tag is in front of which antenna, and how each one reads."""

    by_antenna: dict[int, list[str]]
    read_probability: float = 0.8
    rssi_mean_dbm: float = -55.0
    rssi_spread_db: float = 6.0  # between tags
    rssi_noise_db: float = 2.0  # between reads of one tag
    rng: random.Random = field(default_factory=random.Random)
    dead_antennas: set[int] = field(default_factory=set)
    _antenna: dict[str, int] = field(init=False, default_factory=dict)
    _rssi: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for antenna, epcs in self.by_antenna.items():
            self.add([e.upper() for e in epcs], antenna)

    def add(self, epcs: list[str] | tuple[str, ...], antenna: int) -> None:
        for epc in epcs:
            self._antenna[epc] = antenna
            self._rssi.setdefault(epc, self.rng.gauss(self.rssi_mean_dbm, self.rssi_spread_db))

    def remove(self, epcs: list[str] | tuple[str, ...]) -> None:
        for epc in epcs:
            self._antenna.pop(epc, None)

    def move(self, epcs: list[str] | tuple[str, ...], antenna: int) -> None:
        for epc in epcs:
            if epc in self._antenna:
                self._antenna[epc] = antenna

    def antenna_of(self, epc: str) -> int | None:
        return self._antenna.get(epc)

    def read_round(self, antennas: set[int]) -> list[tuple[str, int, int]]:
        """(epc, antenna, peak RSSI dBm) of the tags read in one inventory round."""
        rng = self.rng
        p = self.read_probability
        reads = []
        dead = self.dead_antennas
        for epc, antenna in self._antenna.items():
            if antenna in dead:
                continue
            if (0 in antennas or antenna in antennas) and rng.random() < p:
                rssi = round(self._rssi[epc] + rng.gauss(0.0, self.rssi_noise_db))
                reads.append((epc, antenna, max(-128, min(-1, rssi))))
        return reads


class Seen(NamedTuple):
    """A tag in a driven report: where, how strong, when last read, how often."""

    epc: str
    antenna: int
    rssi_dbm: int
    last_us: int
    count: int = 1


def _pack(message: Any) -> bytes:
    return bytes(message.pack(bitstring.BitStream()).tobytes())


# READER_EVENT_NOTIFICATION > ReaderEventNotificationData(246) > UTCTimestamp(128) +
# AISpecEvent(254: event type, ROSpec id, spec index), packed by hand: a driven reader sends
# one per simulated round, and pyllrp's packing costs a millisecond each.
_AISPEC_END = struct.Struct(">HH HHQ HHBIH")


def _aispec_end_body(at_us: int, spec_id: int) -> bytes:
    return _AISPEC_END.pack(246, 27, 128, 12, at_us, 254, 11, 0, spec_id, 1)  # 0: End_Of_AISpec


def _status(code: int = 0, description: str = "") -> Any:
    return P.LLRPStatus_Parameter(StatusCode=code, ErrorDescription=description)


def round_ends(since_us: int, until_us: int, rounds: int) -> list[int]:
    """The ends of ``rounds`` equal inventory rounds over (``since_us``, ``until_us``]."""
    span = max(0, until_us - since_us)
    return [since_us + span * k // rounds for k in range(1, rounds + 1)] if rounds > 0 else []


class _ReaderConnection:
    """One client's session with the simulated reader."""

    def __init__(
        self,
        sim: LlrpReaderSim,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.rospecs: dict[int, dict[str, Any]] = {}
        self.keepalive_ms = 0
        self.keepalives_unacked = 0
        self.aispec_events = False  # announce each round's end (SET_READER_CONFIG asked)
        self.acked = asyncio.Event()  # a KEEPALIVE_ACK came (driven: the barrier)
        self.ready = asyncio.Event()  # greeted: reports may follow
        self.silent = False  # driven: the reader lost power under this connection
        self._msg_id = 1
        self._tasks: list[asyncio.Task[None]] = []

    def next_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    async def send(self, raw: bytes) -> None:
        await self.sim.wait_while_slow()
        if self.silent or not self.sim.networked:  # driven: dead or cut off, nothing arrives
            return
        self.writer.write(raw)
        await self.writer.drain()

    async def run(self) -> None:
        await self.sim.wait_while_slow()
        greeting = P.READER_EVENT_NOTIFICATION_Message(
            MessageID=self.next_id(),
            Parameters=[
                P.ReaderEventNotificationData_Parameter(
                    Parameters=[
                        P.UTCTimestamp_Parameter(Microseconds=self.sim.reader_now_us()),
                        P.ConnectionAttemptEvent_Parameter(
                            Status=P.ConnectionAttemptStatusType.Success
                        ),
                    ]
                )
            ],
        )
        await self.send(_pack(greeting))
        self._tasks = [] if self.sim.driven else [
            asyncio.create_task(self._inventory()),
            asyncio.create_task(self._keepalive()),
        ]
        self.ready.set()
        framer = llrp.LlrpFramer()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for frame in framer.feed(data):
                    if not await self._on_message(frame):
                        return
        except llrp.LlrpFrameError as err:
            log.warning("client sent garbage; closing", extra={"error": str(err)})
        finally:
            for task in self._tasks:
                task.cancel()
            self.writer.close()

    async def _on_message(self, frame: llrp.LlrpFrame) -> bool:
        if frame.msg_type == llrp.KEEPALIVE_ACK:
            self.keepalives_unacked = 0
            self.acked.set()
            return True
        try:
            message = P.UnpackMessage(bitstring.ConstBitStream(bytes=frame.raw))
        except Exception as err:  # noqa: BLE001 - pyllrp raises asserts and KeyErrors
            error = P.ERROR_MESSAGE_Message(
                MessageID=frame.msg_id,
                Parameters=[_status(P.StatusCode.M_UnsupportedMessage, repr(err)[:200])],
            )
            await self.send(_pack(error))
            return True
        name = type(message).__name__.removesuffix("_Message")
        self.sim.received.append(name)
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            error = P.ERROR_MESSAGE_Message(
                MessageID=frame.msg_id,
                Parameters=[_status(P.StatusCode.M_UnsupportedMessage, f"{name} not simulated")],
            )
            await self.send(_pack(error))
            return True
        try:
            result: bool = await handler(message)
        except (AssertionError, KeyError, ValueError, AttributeError) as err:
            # The simulator's own bug or an odd request: answer like a reader would.
            log.exception("simulated reader could not handle %s", name)
            error = P.ERROR_MESSAGE_Message(
                MessageID=frame.msg_id,
                Parameters=[_status(P.StatusCode.R_DeviceError, repr(err)[:200])],
            )
            await self.send(_pack(error))
            return True
        return result

    async def _reply(self, request: Any, response_class: Any, *extra: Any) -> None:
        status = self.sim.status_override.get(type(request).__name__.removesuffix("_Message"))
        params = [_status(*status)] if status else [_status(), *extra]
        await self.send(_pack(response_class(MessageID=request.MessageID, Parameters=params)))

    async def _on_get_reader_capabilities(self, m: Any) -> bool:
        general = P.GeneralDeviceCapabilities_Parameter(
            MaxNumberOfAntennaSupported=self.sim.max_antennas,
            CanSetAntennaProperties=False,
            HasUTCClockCapability=True,
            DeviceManufacturerName=25882,
            ModelName=2001002,
            ReaderFirmwareVersion="pledgewatch-sim-1",
            Parameters=[
                P.ReceiveSensitivityTableEntry_Parameter(Index=1, ReceiveSensitivityValue=0),
                P.GPIOCapabilities_Parameter(NumGPIs=0, NumGPOs=0),
                *(
                    P.PerAntennaAirProtocol_Parameter(AntennaID=a, ProtocolID=[1])
                    for a in range(1, self.sim.max_antennas + 1)
                ),
            ],
        )
        await self._reply(m, P.GET_READER_CAPABILITIES_RESPONSE_Message, general)
        return True

    async def _on_set_reader_config(self, m: Any) -> bool:
        keepalive = m.getFirstParameterByClass(P.KeepaliveSpec_Parameter)
        if keepalive is not None:
            periodic = keepalive.KeepaliveTriggerType == P.KeepaliveTriggerType.Periodic
            self.keepalive_ms = keepalive.PeriodicTriggerValue if periodic else 0
        for state in m.getAllParametersByClass(P.EventNotificationState_Parameter):
            if state.EventType == P.NotificationEventType.AISpec_Event:
                self.aispec_events = bool(state.NotificationState) and self.sim.announces_aispec
        await self._reply(m, P.SET_READER_CONFIG_RESPONSE_Message)
        return True

    async def _on_add_rospec(self, m: Any) -> bool:
        spec = m.getFirstParameterByClass(P.ROSpec_Parameter)
        ai = spec.getFirstParameterByClass(P.AISpec_Parameter)
        selector = spec.getFirstParameterByClass(P.TagReportContentSelector_Parameter)
        self.rospecs[spec.ROSpecID] = {
            "antennas": set(ai.AntennaIDs) if ai else {0},
            "selector": selector,
            "enabled": False,
            "running": False,
            "immediate": (
                spec.getFirstParameterByClass(P.ROSpecStartTrigger_Parameter).ROSpecStartTriggerType
                == P.ROSpecStartTriggerType.Immediate
            ),
        }
        await self._reply(m, P.ADD_ROSPEC_RESPONSE_Message)
        return True

    def _specs(self, spec_id: int) -> list[dict[str, Any]]:
        return list(self.rospecs.values()) if spec_id == 0 else [self.rospecs[spec_id]]

    async def _spec_command(self, m: Any, response: Any, change: dict[str, bool]) -> bool:
        try:
            specs = self._specs(m.ROSpecID)
        except KeyError:
            await self.send(
                _pack(
                    response(
                        MessageID=m.MessageID,
                        Parameters=[_status(P.StatusCode.A_Invalid, f"no ROSpec {m.ROSpecID}")],
                    )
                )
            )
            return True
        for spec in specs:
            spec.update(change)
            if change.get("enabled") and spec["immediate"]:
                spec["running"] = True
        await self._reply(m, response)
        return True

    async def _on_enable_rospec(self, m: Any) -> bool:
        return await self._spec_command(m, P.ENABLE_ROSPEC_RESPONSE_Message, {"enabled": True})

    async def _on_start_rospec(self, m: Any) -> bool:
        return await self._spec_command(m, P.START_ROSPEC_RESPONSE_Message, {"running": True})

    async def _on_stop_rospec(self, m: Any) -> bool:
        return await self._spec_command(m, P.STOP_ROSPEC_RESPONSE_Message, {"running": False})

    async def _on_disable_rospec(self, m: Any) -> bool:
        change = {"enabled": False, "running": False}
        return await self._spec_command(m, P.DISABLE_ROSPEC_RESPONSE_Message, change)

    async def _on_delete_rospec(self, m: Any) -> bool:
        if m.ROSpecID == 0:
            self.rospecs.clear()
        elif self.rospecs.pop(m.ROSpecID, None) is None:
            response = P.DELETE_ROSPEC_RESPONSE_Message(
                MessageID=m.MessageID,
                Parameters=[_status(P.StatusCode.A_Invalid, f"no ROSpec {m.ROSpecID}")],
            )
            await self.send(_pack(response))
            return True
        await self._reply(m, P.DELETE_ROSPEC_RESPONSE_Message)
        return True

    async def _on_close_connection(self, m: Any) -> bool:
        await self._reply(m, P.CLOSE_CONNECTION_RESPONSE_Message)
        return False

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_ms / 1000 if self.keepalive_ms else 0.5)
            if self.keepalive_ms:
                self.keepalives_unacked += 1
                await self.send(llrp.encode_message(llrp.KEEPALIVE, self.next_id()))

    async def _inventory(self) -> None:
        sim = self.sim
        while True:
            await asyncio.sleep(1.0 / sim.rounds_per_s)
            await sim.wait_while_slow()
            for spec_id, spec in list(self.rospecs.items()):
                if spec["enabled"] and spec["running"]:
                    await self._report(spec)
                    if self.aispec_events:
                        await self._aispec_end(spec_id)

    async def _aispec_end(self, spec_id: int) -> None:
        event = P.READER_EVENT_NOTIFICATION_Message(
            MessageID=self.next_id(),
            Parameters=[
                P.ReaderEventNotificationData_Parameter(
                    Parameters=[
                        P.UTCTimestamp_Parameter(Microseconds=self.sim.reader_now_us()),
                        P.AISpecEvent_Parameter(
                            EventType=P.AISpecEventType.End_Of_AISpec,
                            ROSpecID=spec_id,
                            SpecIndex=1,
                        ),
                    ]
                )
            ],
        )
        await self.send(_pack(event))

    async def send_aispec_ends(self, spec_id: int, ends_us: list[int]) -> None:
        """Driven: the end of each round the world says ran, at its own simulated time (only
        to a client that asked for AISpec events, as a real reader does)."""
        if not self.aispec_events:
            return
        await self.send(b"".join(
            llrp.encode_message(llrp.READER_EVENT_NOTIFICATION, self.next_id(),
                                _aispec_end_body(at_us, spec_id))
            for at_us in ends_us))

    async def send_seen(self, spec: dict[str, Any], rows: list[Seen]) -> None:
        """A report of these tags, each with its own last read time and seen count."""
        sel = spec["selector"]
        params = [
            llrp.encode_tag_report_data(
                r.epc,
                antenna=r.antenna if sel is None or sel.EnableAntennaID else None,
                peak_rssi_dbm=r.rssi_dbm if sel is not None and sel.EnablePeakRSSI else None,
                first_seen_us=r.last_us if sel is None or sel.EnableFirstSeenTimestamp else None,
                last_seen_us=r.last_us if sel is not None and sel.EnableLastSeenTimestamp
                else None,
                seen_count=r.count if sel is not None and sel.EnableTagSeenCount else None,
            )
            for r in rows
        ]
        self.sim.reads_sent += len(params)
        await self.send(llrp.encode_ro_access_report(self.next_id(), params))

    async def _report(self, spec: dict[str, Any]) -> None:
        reads = self.sim.population.read_round(spec["antennas"])
        if not reads:
            return
        sel = spec["selector"]
        now = self.sim.reader_now_us()
        params = [
            llrp.encode_tag_report_data(
                epc,
                antenna=antenna if sel is None or sel.EnableAntennaID else None,
                peak_rssi_dbm=rssi if sel is not None and sel.EnablePeakRSSI else None,
                first_seen_us=now if sel is None or sel.EnableFirstSeenTimestamp else None,
                last_seen_us=now if sel is not None and sel.EnableLastSeenTimestamp else None,
                seen_count=1 if sel is not None and sel.EnableTagSeenCount else None,
            )
            for epc, antenna, rssi in reads
        ]
        self.sim.reads_sent += len(params)
        await self.send(llrp.encode_ro_access_report(self.next_id(), params))


class LlrpReaderSim:
    """The simulated reader: `await start()`, then `port`; `await stop()` at the end."""

    def __init__(
        self,
        population: TagPopulation,
        *,
        rounds_per_s: float = 4.0,
        max_antennas: int = 4,
        script: list[ScriptedEvent] | None = None,
        clock_offset_s: float = 0.0,
        announces_aispec: bool = True,  # False: a reader that ignores AISpec event requests
        driven: bool = False,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        self.driven = driven
        # The reader's own clock: a driven reader lives in the player's simulated time.
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self.powered = True  # driven: False drops connections and refuses new ones
        self.networked = True  # driven: False keeps sockets open but sends nothing
        self.population = population
        self.announces_aispec = announces_aispec
        self.rounds_per_s = rounds_per_s
        self.max_antennas = max_antennas
        self.script = sorted(script or [], key=lambda e: e.at_s)
        self.clock_offset_us = int(clock_offset_s * 1_000_000)
        self.status_override: dict[str, tuple[int, str]] = {}  # message name -> LLRPStatus
        self.received: list[str] = []  # names of client messages, for tests and logs
        self.reads_sent = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._connections: set[_ReaderConnection] = set()
        self._session_of: dict[asyncio.Task[None], _ReaderConnection] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._unplugged_until = 0.0
        self._slow_until = 0.0
        self._script_task: asyncio.Task[None] | None = None

    def reader_now_us(self) -> int:
        return self._clock_us() + self.clock_offset_us

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._script_task = asyncio.create_task(self._run_script())
        return self.port

    async def stop(self) -> None:
        if self._script_task:
            self._script_task.cancel()
        for task in list(self._sessions):
            task.cancel()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> LlrpReaderSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- driven by a player ----------------------------------------------------------------

    def _live(self) -> list[_ReaderConnection]:
        return [c for c in self._connections if c.ready.is_set() and not c.silent]

    def connecting(self) -> bool:
        """A client connected but has no running ROSpec yet (its handshake is under way)."""
        return any(not c.silent and not any(s["enabled"] and s["running"]
                                             for s in c.rospecs.values())
                   for c in self._connections)

    def live_clients(self) -> int:
        """Clients greeted and not cut off."""
        return len(self._live()) if self.networked else 0

    async def report(self, reads: list[tuple[str, int, int]] | list[Seen], at_us: int, *,
                     empty: bool = False, rounds: int = 0, since_us: int | None = None) -> int:
        """One report period's reads at ``at_us`` to every client whose ROSpec runs on their
        antennas: (epc, antenna, peak RSSI dBm), or `Seen` rows with each tag's own last read
        and seen count. ``empty``: send the report even with no reads (rounds ran, nothing
        answered: a reader's end-of-AISpec report). ``rounds``: how many inventory rounds the
        period held, their ends spread evenly over (``since_us``, ``at_us``]; each is announced
        after the report as an end-of-AISpec event to a client that asked for them. How many
        reads went out."""
        if not self.networked:
            return 0
        rows = [r if isinstance(r, Seen) else Seen(r[0], r[1], r[2], at_us, 1) for r in reads]
        ends = round_ends(at_us if since_us is None else since_us, at_us, rounds)
        sent = 0
        for connection in self._live():
            for spec_id, spec in list(connection.rospecs.items()):
                if not (spec["enabled"] and spec["running"]):
                    continue
                wanted = spec["antennas"]
                mine = [r for r in rows if 0 in wanted or r.antenna in wanted]
                if mine or empty:
                    await connection.send_seen(spec, mine)
                if ends:
                    await connection.send_aispec_ends(spec_id, ends)
                sent += len(mine)
        return sent

    async def keepalive(self) -> None:
        if not self.networked:
            return
        for connection in self._live():
            if connection.keepalive_ms:
                await connection.send(llrp.encode_message(llrp.KEEPALIVE, connection.next_id()))

    async def barrier(self, timeout_s: float = 10.0) -> None:
        """Until every client acknowledged a keepalive sent after everything before it."""
        if not self.networked:
            return
        for connection in self._live():
            connection.acked.clear()
            await connection.send(llrp.encode_message(llrp.KEEPALIVE, connection.next_id()))
            with contextlib.suppress(TimeoutError):  # a client that went away: nothing to wait
                await timeouts.wait_for(connection.acked.wait(), timeout_s)

    def set_power(self, on: bool) -> None:
        """Off: the reader goes silent under its connections (a dead host sends no FIN) and
        refuses new ones; on: it boots with no memory of them (they are dropped)."""
        self.powered = on
        for connection in list(self._connections):
            if not on:
                connection.silent = True
        if on:
            for task, connection in list(self._session_of.items()):
                if connection.silent:
                    task.cancel()

    def set_network(self, up: bool) -> None:
        """Down: the sockets stay open but nothing reaches the client (a dead switch port)."""
        self.networked = up

    async def connected(self, timeout_s: float = 10.0) -> None:
        """Until a client has an enabled, running ROSpec."""
        async with asyncio.timeout(timeout_s):
            # The ROSpec is set by the client's messages; nothing here to wait on but a poll.
            while not any(s["enabled"] and s["running"] for c in self._live()  # noqa: ASYNC110
                          for s in c.rospecs.values()):
                await asyncio.sleep(0.01)

    # -- scripted world changes ------------------------------------------------------------

    def unplug(self, seconds: float) -> None:
        """Drop every connection and refuse new ones (accept, then close) for a while."""
        self._unplugged_until = time.monotonic() + seconds
        for task in list(self._sessions):
            task.cancel()

    def slow(self, seconds: float) -> None:
        """Send nothing at all (no reports, no keepalives, no responses) for a while."""
        self._slow_until = time.monotonic() + seconds

    def set_antenna(self, antenna: int, *, connected: bool) -> None:
        """Cut or restore an antenna cable: its tags go silent and clients get an AntennaEvent."""
        if connected:
            self.population.dead_antennas.discard(antenna)
        else:
            self.population.dead_antennas.add(antenna)
        kinds = P.AntennaEventType
        kind = kinds.Antenna_Connected if connected else kinds.Antenna_Disconnected
        for connection in list(self._connections):
            event = P.READER_EVENT_NOTIFICATION_Message(
                MessageID=connection.next_id(),
                Parameters=[
                    P.ReaderEventNotificationData_Parameter(
                        Parameters=[
                            P.UTCTimestamp_Parameter(Microseconds=self.reader_now_us()),
                            P.AntennaEvent_Parameter(EventType=kind, AntennaID=antenna),
                        ]
                    )
                ],
            )
            task = asyncio.get_running_loop().create_task(connection.send(_pack(event)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def inject(self, raw: bytes) -> None:
        """Send raw bytes to every connected client (a misbehaving reader, in tests)."""
        for connection in list(self._connections):
            await connection.send(raw)

    async def wait_while_slow(self) -> None:
        # A deadline that may be pushed out while we wait, hence a loop and not an Event.
        while (left := self._slow_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)

    def apply(self, event: ScriptedEvent) -> None:
        log.info("scripted event", extra={"action": event.action, "epcs": len(event.epcs)})
        if event.action == "remove":
            self.population.remove(event.epcs)
        elif event.action == "add":
            self.population.add(event.epcs, event.antenna or 1)
        elif event.action == "move":
            self.population.move(event.epcs, event.antenna or 1)
        elif event.action == "unplug":
            self.unplug(event.seconds)
        elif event.action == "slow":
            self.slow(event.seconds)
        elif event.action == "read_probability":
            self.population.read_probability = event.value
        elif event.action in ("antenna_disconnect", "antenna_connect"):
            self.set_antenna(event.antenna or 1, connected=event.action == "antenna_connect")
        else:
            raise ValueError(f"unknown scripted action {event.action!r}")

    async def _run_script(self) -> None:
        started = time.monotonic()
        for event in self.script:
            await asyncio.sleep(max(0.0, started + event.at_s - time.monotonic()))
            self.apply(event)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._unplugged_until or not (self.powered and self.networked):
            writer.close()
            return
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        connection = _ReaderConnection(self, reader, writer)
        self._connections.add(connection)
        self._session_of[task] = connection
        try:
            await connection.run()
        except (ConnectionError, asyncio.CancelledError):
            writer.close()
        finally:
            self._sessions.discard(task)
            self._connections.discard(connection)
            self._session_of.pop(task, None)


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("llrp-reader", help="a simulated LLRP reader (TCP, port 5084)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5084)
    parser.add_argument("--antennas", type=int, default=2, help="antennas with tags in front")
    parser.add_argument("--tags-per-antenna", type=int, default=40)
    parser.add_argument(
        "--population", help="JSON file {antenna: [epc, ...]} instead of generated SGTIN-96 tags"
    )
    parser.add_argument("--read-probability", type=float, default=0.8)
    parser.add_argument("--rounds-per-s", type=float, default=4.0)
    parser.add_argument("--rssi-mean-dbm", type=float, default=-55.0)
    parser.add_argument(
        "--script",
        help='JSON file: [{"at_s": 30, "action": "remove|add|move|unplug|slow|read_probability",'
        ' "epcs": [...], "antenna": 2, "seconds": 10, "value": 0.5}, ...]',
    )
    parser.add_argument("--seed", type=int)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.population:
        raw = json.loads(Path(args.population).read_text())
        by_antenna = {int(k): list(v) for k, v in raw.items()}
    else:
        antennas = range(1, args.antennas + 1)
        by_antenna = {a: lot_tags(a - 1, args.tags_per_antenna) for a in antennas}
    script = []
    if args.script:
        script = [ScriptedEvent.from_json(e) for e in json.loads(Path(args.script).read_text())]
    population = TagPopulation(
        by_antenna,
        read_probability=args.read_probability,
        rssi_mean_dbm=args.rssi_mean_dbm,
        rng=random.Random(args.seed),
    )
    sim = LlrpReaderSim(population, rounds_per_s=args.rounds_per_s, script=script)

    async def serve() -> None:
        port = await sim.start(args.host, args.port)
        log.info("simulated LLRP reader listening", extra={"port": port})
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
