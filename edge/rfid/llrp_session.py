"""LLRP reader adapter: one TCP session to a fixed reader (Impinj, Zebra FX, ...), port 5084.

Control messages are built and read with `pyllrp` (it knows every LLRP parameter and checks our
ROSpec against the spec); the tag stream (RO_ACCESS_REPORT) goes through the fast parser in
llrp.py. One session: wait for the reader's ConnectionAttemptEvent, read its capabilities, set
the keepalive and AISpec event notifications, delete old ROSpecs, add/enable our ROSpec
(antennas and report content from the config), then read reports and acknowledge KEEPALIVEs
until something breaks; then report the reader offline, back off and start over. Every end of
AISpec the reader announces is a completed read cycle (``on_cycle``): the proof presence needs
before a silent tag is missing, sent whether or not a tag answered. A reader that announces no
AISpec end falls back on its reports, one cycle per report interval at most. A reader that
sends nothing (no report, no keepalive) for ``stale_after_s`` is treated as gone: the socket may
still look open when a switch port or the reader's power died. That silence, the cycles, the
reader's timestamps' correction and the backoff before a reconnect are measured on the agent's
clock (decisions); the TCP connect and the handshake's timeouts guard real I/O and stay on the
real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal

import bitstring
from pydantic import BaseModel, ConfigDict, Field
from pyllrp import pyllrp as llrp_def

from contract import TagObservation
from edge.refusals import REFUSALS, DeviceInputRefused
from edge.rfid import llrp
from edge.rfid.checks import tag_read
from edge.rfid.reader import CycleCallback, HealthCallback, ReaderCycle, reader_health
from ops import timeouts
from ops.backoff import Backoff
from ops.clock import SYSTEM_CLOCK, Clock
from ops.supervised import BatchSource, Supervised, describe

log = logging.getLogger(__name__)

ADAPTER = "llrp"

ROSPEC_ID = 0x5057  # "PW": ours, so a restart deletes and re-adds the same spec
INVENTORY_PARAMETER_SPEC_ID = 1


class LlrpReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["llrp"]
    id: str
    host: str
    port: int = Field(5084, ge=1, le=65535)
    antennas: list[int] = Field(default_factory=lambda: [0])  # 0: all antennas
    keepalive_s: float = Field(5.0, gt=0)
    stale_after_s: float | None = Field(None, gt=0)  # default: 3 keepalive periods
    connect_timeout_s: float = Field(10.0, gt=0)
    report_every_n_tags: int = Field(100, ge=0, le=65535)
    report_interval_ms: int = Field(500, ge=10)  # AISpec duration: a report at least this often
    peak_rssi: bool = True
    first_seen: bool = True
    last_seen: bool = False
    seen_count: bool = False
    max_frame_bytes: int = Field(llrp.DEFAULT_MAX_FRAME_BYTES, ge=1024)
    clock_skew_tolerance_s: float = Field(1.0, ge=0)  # correct reader time beyond this offset


class LlrpSessionError(Exception):
    """The reader refused or broke the session; the adapter reconnects."""


def pack(message: Any) -> bytes:
    return bytes(message.pack(bitstring.BitStream()).tobytes())


def unpack(raw: bytes) -> Any:
    """A control message as a pyllrp object."""
    return llrp_def.UnpackMessage(bitstring.ConstBitStream(bytes=raw))


def add_rospec_message(config: LlrpReaderConfig, msg_id: int) -> Any:
    p = llrp_def
    return p.ADD_ROSPEC_Message(
        MessageID=msg_id,
        Parameters=[
            p.ROSpec_Parameter(
                ROSpecID=ROSPEC_ID,
                CurrentState=p.ROSpecState.Disabled,
                Parameters=[
                    p.ROBoundarySpec_Parameter(
                        Parameters=[
                            p.ROSpecStartTrigger_Parameter(
                                ROSpecStartTriggerType=p.ROSpecStartTriggerType.Immediate
                            ),
                            p.ROSpecStopTrigger_Parameter(
                                ROSpecStopTriggerType=p.ROSpecStopTriggerType.Null
                            ),
                        ]
                    ),
                    p.AISpec_Parameter(
                        AntennaIDs=list(config.antennas),
                        Parameters=[
                            p.AISpecStopTrigger_Parameter(
                                AISpecStopTriggerType=p.AISpecStopTriggerType.Duration,
                                DurationTrigger=config.report_interval_ms,
                            ),
                            p.InventoryParameterSpec_Parameter(
                                InventoryParameterSpecID=INVENTORY_PARAMETER_SPEC_ID,
                                ProtocolID=p.AirProtocols.EPCGlobalClass1Gen2,
                            ),
                        ],
                    ),
                    p.ROReportSpec_Parameter(
                        ROReportTrigger=p.ROReportTriggerType.Upon_N_Tags_Or_End_Of_AISpec,
                        N=config.report_every_n_tags,
                        Parameters=[
                            p.TagReportContentSelector_Parameter(
                                EnableAntennaID=True,
                                EnablePeakRSSI=config.peak_rssi,
                                EnableFirstSeenTimestamp=config.first_seen,
                                EnableLastSeenTimestamp=config.last_seen,
                                EnableTagSeenCount=config.seen_count,
                            )
                        ],
                    ),
                ],
            )
        ],
    )


def status_ok(response: Any) -> tuple[bool, str]:
    status = response.getFirstParameterByClass(llrp_def.LLRPStatus_Parameter)
    if status is None:
        return False, f"{type(response).__name__} without LLRPStatus"
    if status.StatusCode == llrp_def.StatusCode.M_Success:
        return True, ""
    name = llrp_def.StatusCode.getName(status.StatusCode)
    return False, f"{name}: {status.ErrorDescription}"


def reports_to_observations(
    reports: list[llrp.TagReport], reader_id: str, received_us: int, offset_us: int
) -> list[TagObservation]:
    """Reader time (corrected by ``offset_us``) when reported, else the time we received it.

    LastSeen is preferred: a report covers a whole AISpec, and presence wants the freshest read.
    """
    out = []
    for r in reports:
        stamp = r.last_seen_us if r.last_seen_us is not None else r.first_seen_us
        at_us = stamp + offset_us if stamp is not None else received_us
        try:
            out.append(
                tag_read(
                    epc=r.epc,
                    antenna=r.antenna or 0,
                    rssi_cdbm=r.rssi_cdbm,
                    observed_at_us=at_us,
                    reader_id=reader_id,
                )
            )
        except DeviceInputRefused as err:  # e.g. a LastSeen of 2**63: never signed and sent
            REFUSALS.refuse(ADAPTER, err.reason, f"{reader_id}: {err}")
    return out


class LlrpReader(BatchSource[list[TagObservation]]):
    """`TagReader` for LLRP readers. Health goes to ``on_health`` on every change."""

    retry_on = (llrp.LlrpFrameError, LlrpSessionError, OSError, EOFError)  # OSError: timeouts

    def __init__(
        self, config: LlrpReaderConfig, on_health: HealthCallback,
        on_cycle: CycleCallback | None = None, *, clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(config.id, reader_health(on_health),
                         backoff=Backoff(initial_s=0.5, maximum_s=30), sleep=clock.sleep,
                         clock_us=clock.now_us)
        self._clock = clock
        self.reader_id = config.id
        self._config = config
        self._on_cycle = on_cycle
        self._antennas = tuple(config.antennas)
        self._aispec_events = False  # the reader announces AISpec ends (this session)
        self._last_report_cycle_us: int | None = None
        self.cycles = 0
        self._msg_id = 1000
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = llrp.LlrpFramer(config.max_frame_bytes)
        self._queue: deque[llrp.LlrpFrame] = deque()
        self._broken: llrp.LlrpFrameError | None = None
        self._early: list[TagObservation] = []
        self._offset_us = 0
        self._antennas_down: set[int] = set()
        self.bad_reports = 0
        self.sessions = 0
        self.capabilities: dict[str, Any] = {}

    @property
    def stale_after_s(self) -> float:
        return self._config.stale_after_s or 3 * self._config.keepalive_s

    async def close(self) -> None:
        await self._close(polite=True)

    def _health(self, online: bool, reason: str) -> None:
        if online:
            self.owner.up(reason)
        else:
            self.owner.down(reason)

    def reason_of(self, err: BaseException) -> str:
        if isinstance(err, TimeoutError):
            return f"no message from the reader for {self.stale_after_s} s"
        if isinstance(err, llrp.LlrpFrameError):
            log.error(
                "LLRP stream corrupt; reconnecting",
                extra={"reader": self.reader_id, "error": str(err)},
            )
            return f"corrupt LLRP stream: {err}"
        return describe(err)

    async def session(self, owner: Supervised) -> None:
        try:
            await self._open()
            self.sessions += 1
            owner.up("LLRP session established")
            if self._early:
                early, self._early = self._early, []
                await self.put(early)
            async for batch in self._stream():
                await self.put(batch)
        except asyncio.CancelledError:
            await self._close(polite=True)  # we are stopping: say goodbye to the reader
            raise
        except BaseException:
            await self._close(polite=False)
            raise

    # -- session -------------------------------------------------------------------------

    async def _open(self) -> None:
        cfg = self._config
        self._framer = llrp.LlrpFramer(cfg.max_frame_bytes)
        self._queue.clear()
        self._broken = None
        self._antennas_down.clear()
        self._aispec_events = False
        self._reader, self._writer = await timeouts.wait_for(
            asyncio.open_connection(cfg.host, cfg.port), cfg.connect_timeout_s
        )
        greeting = await self._next_control(cfg.connect_timeout_s)
        attempt = greeting.getFirstParameterByClass(llrp_def.ConnectionAttemptEvent_Parameter)
        if greeting.TypeCode != llrp.READER_EVENT_NOTIFICATION or attempt is None:
            got = type(greeting).__name__
            raise LlrpSessionError(f"expected ConnectionAttemptEvent, got {got}")
        if attempt.Status != llrp_def.ConnectionAttemptStatusType.Success:
            name = llrp_def.ConnectionAttemptStatusType.getName(attempt.Status)
            raise LlrpSessionError(f"reader refused the connection: {name}")
        stamp = greeting.getFirstParameterByClass(llrp_def.UTCTimestamp_Parameter)
        self._offset_us = 0
        if stamp is not None:
            offset = self._clock.now_us() - stamp.Microseconds
            if abs(offset) > cfg.clock_skew_tolerance_s * 1_000_000:
                log.warning(
                    "reader clock differs from the gateway's; correcting its timestamps",
                    extra={"reader": self.reader_id, "offset_s": offset / 1e6},
                )
                self._offset_us = offset
        p = llrp_def
        caps = await self._transact(
            p.GET_READER_CAPABILITIES_Message(
                MessageID=self._next_id(),
                RequestedData=p.GetReaderCapabilitiesRequestedData.General_Device_Capabilities,
            )
        )
        general = caps.getFirstParameterByClass(p.GeneralDeviceCapabilities_Parameter)
        if general is not None:
            self.capabilities = {
                "max_antennas": general.MaxNumberOfAntennaSupported,
                "manufacturer": general.DeviceManufacturerName,
                "model": general.ModelName,
                "firmware": general.ReaderFirmwareVersion,
            }
        await self._transact(
            p.SET_READER_CONFIG_Message(
                MessageID=self._next_id(),
                ResetToFactoryDefault=False,
                Parameters=[
                    p.KeepaliveSpec_Parameter(
                        KeepaliveTriggerType=p.KeepaliveTriggerType.Periodic,
                        PeriodicTriggerValue=int(cfg.keepalive_s * 1000),
                    )
                ],
            )
        )
        await self._ask_for_aispec_events()
        # ROSpecID 0 = all: a previous session's (or another client's) spec would otherwise
        # keep running beside ours and double every read.
        await self._transact(p.DELETE_ROSPEC_Message(MessageID=self._next_id(), ROSpecID=0))
        await self._transact(add_rospec_message(cfg, self._next_id()))
        await self._transact(p.ENABLE_ROSPEC_Message(MessageID=self._next_id(), ROSpecID=ROSPEC_ID))

    async def _ask_for_aispec_events(self) -> None:
        """Each end of an AISpec is a read cycle, even when no tag answered. Asked for on its
        own: a reader that refuses it is still read, proving its cycles by its reports."""
        p = llrp_def
        try:
            await self._transact(
                p.SET_READER_CONFIG_Message(
                    MessageID=self._next_id(),
                    ResetToFactoryDefault=False,
                    Parameters=[
                        p.ReaderEventNotificationSpec_Parameter(
                            Parameters=[
                                p.EventNotificationState_Parameter(
                                    EventType=p.NotificationEventType.AISpec_Event,
                                    NotificationState=True,
                                )
                            ]
                        )
                    ],
                )
            )
        except LlrpSessionError as err:
            log.warning(
                "reader refused AISpec event notifications; its reports prove its cycles",
                extra={"reader": self.reader_id, "error": str(err)},
            )

    def _next_id(self) -> int:
        self._msg_id = (self._msg_id + 1) & 0xFFFFFFFF
        return self._msg_id

    async def _next_frame(self, timeout_s: float, *, stale: bool = False) -> llrp.LlrpFrame:
        """``stale``: the timeout is the reader's silence limit, on the agent's clock; else a
        guard on the handshake's I/O, on the real one."""
        assert self._reader is not None
        wait_for = self._clock.wait_for if stale else timeouts.wait_for
        while not self._queue:
            if self._broken is not None:
                raise self._broken
            data = await wait_for(self._reader.read(65536), timeout_s)
            if not data:
                raise EOFError("connection closed by the reader")
            try:
                self._queue.extend(self._framer.feed(data))
            except llrp.LlrpFrameError as err:
                # Whole messages before the damage are still good reads; then reconnect.
                self._queue.extend(err.frames)
                self._broken = err
        return self._queue.popleft()

    async def _send(self, raw: bytes) -> None:
        assert self._writer is not None
        self._writer.write(raw)
        await self._writer.drain()

    async def _next_control(self, timeout_s: float) -> Any:
        """Next message that is not a report or keepalive (those are handled on the way)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            control = await self._handle(await self._next_frame(left))
            if control is not None:
                return control

    async def _transact(self, message: Any) -> Any:
        await self._send(pack(message))
        want = message.MessageID
        while True:
            response = await self._next_control(self._config.connect_timeout_s)
            if response.TypeCode == llrp.ERROR_MESSAGE:
                ok, why = status_ok(response)
                raise LlrpSessionError(f"{type(message).__name__} rejected: {why}")
            if response.MessageID != want:
                log.info(
                    "LLRP message while waiting for a response",
                    extra={"reader": self.reader_id, "type": type(response).__name__},
                )
                continue
            ok, why = status_ok(response)
            if not ok:
                raise LlrpSessionError(f"{type(message).__name__} failed: {why}")
            return response

    async def _handle(self, frame: llrp.LlrpFrame) -> Any | None:
        """Reports and keepalives are dealt with here; anything else is returned parsed."""
        if frame.msg_type == llrp.RO_ACCESS_REPORT:
            self._early += self._observations(frame)
            if not self._aispec_events:
                self._report_cycle()
            return None
        if frame.msg_type == llrp.KEEPALIVE:
            await self._send(llrp.encode_message(llrp.KEEPALIVE_ACK, frame.msg_id))
            return None
        try:
            return unpack(frame.raw)
        except Exception as err:  # noqa: BLE001 - pyllrp raises asserts, KeyError, bitstring errors
            log.error(
                "unreadable LLRP control message skipped",
                extra={"reader": self.reader_id, "type": frame.msg_type, "error": repr(err)},
            )
            return None

    def _observations(self, frame: llrp.LlrpFrame) -> list[TagObservation]:
        received = self._clock.now_us()
        try:
            reports = llrp.parse_ro_access_report(frame.raw)
        except llrp.LlrpReportError as err:
            self.bad_reports += 1
            REFUSALS.refuse(ADAPTER, "bad_report", f"{self.reader_id} #{frame.msg_id}: {err}")
            return []
        return reports_to_observations(reports, self.reader_id, received, self._offset_us)

    async def _stream(self) -> AsyncIterator[list[TagObservation]]:
        while True:
            control = await self._handle(await self._next_frame(self.stale_after_s, stale=True))
            if control is not None:
                self._on_event(control)
            if self._early and not self._queue:
                batch, self._early = self._early, []
                yield batch

    def _cycle(self, at_us: int) -> None:
        self.cycles += 1
        if self._on_cycle is not None:
            self._on_cycle(ReaderCycle(self.reader_id, self._antennas, at_us))

    def _report_cycle(self) -> None:
        """A reader that announces no AISpec end: a report proves it was reading, counted once
        per report interval at most (a report of N tags may come mid-AISpec)."""
        now = self._clock.now_us()
        last = self._last_report_cycle_us
        if last is not None and now - last < self._config.report_interval_ms * 1000:
            return
        self._last_report_cycle_us = now
        self._cycle(now)

    def _aispec_ended(self, message: Any) -> None:
        # The reader's time, corrected, but never after we received it: a reader clock ahead
        # would otherwise vouch for cycles that have not happened yet.
        received = self._clock.now_us()
        stamp = message.getFirstParameterByClass(llrp_def.UTCTimestamp_Parameter)
        at_us = received if stamp is None else min(stamp.Microseconds + self._offset_us, received)
        self._aispec_events = True
        self._cycle(at_us)

    def _on_event(self, message: Any) -> None:
        p = llrp_def
        if message.getFirstParameterByClass(p.ConnectionCloseEvent_Parameter) is not None:
            raise LlrpSessionError("reader announced it is closing the connection")
        aispec = message.getFirstParameterByClass(p.AISpecEvent_Parameter)
        if aispec is not None and aispec.EventType == p.AISpecEventType.End_Of_AISpec:
            self._aispec_ended(message)
            return
        for antenna in message.getAllParametersByClass(p.AntennaEvent_Parameter):
            self._on_antenna(antenna.AntennaID, antenna.EventType)
        found = message.getFirstParameterByClass(p.ReaderExceptionEvent_Parameter)
        if found is not None:
            log.warning(
                "reader exception event",
                extra={"reader": self.reader_id, "event": repr(found).strip()},
            )
            return
        kind = type(message).__name__
        log.debug("reader message", extra={"reader": self.reader_id, "type": kind})

    def _on_antenna(self, antenna: int, event_type: int) -> None:
        """A cut antenna cable silences its tags: that is tampering, not a departure. The whole
        reader is reported offline (its tags unknown) until every antenna is back."""
        wanted = self._config.antennas
        if 0 not in wanted and antenna not in wanted:
            return  # an antenna port we do not inventory
        if event_type == llrp_def.AntennaEventType.Antenna_Disconnected:
            self._antennas_down.add(antenna)
            where = {"reader": self.reader_id, "antenna": antenna}
            log.warning("antenna disconnected", extra=where)
            self._health(False, f"antenna {antenna} disconnected")
        elif event_type == llrp_def.AntennaEventType.Antenna_Connected:
            self._antennas_down.discard(antenna)
            log.info("antenna connected", extra={"reader": self.reader_id, "antenna": antenna})
            if not self._antennas_down:
                self._health(True, f"antenna {antenna} reconnected")

    async def _close(self, *, polite: bool) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        if polite:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(pack(llrp_def.CLOSE_CONNECTION_Message(MessageID=self._next_id())))
                await timeouts.wait_for(writer.drain(), 1.0)
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await timeouts.wait_for(writer.wait_closed(), 1.0)
