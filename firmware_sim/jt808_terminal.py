"""A JT/T 808 vehicle terminal: registers, authenticates, heartbeats and reports positions.

It drives the demo site's coil route (``firmware_sim.trackers.drive_out``). With
``--blind-from/--blind-to`` it loses its mobile link for that stretch of the route, stores the
positions and uploads them afterwards as a 0x0704 blind-area batch, as real terminals do.

    python -m firmware_sim jt808-terminal --server 127.0.0.1:7808 --speedup 10

The platform accepts only provisioned terminals: provision the number with the terminal ID
this terminal registers with (``--terminal-id``, default ``T`` + the last six digits), or
give it the code provisioned out of band (``--auth-code``, then it does not register).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from contract.jt808 import (
    STATUS_ACC_ON,
    STATUS_POSITIONED,
    FrameSplitter,
    GeneralResponse,
    Header,
    Location,
    LocationBatch,
    MsgId,
    Registration,
    RegistrationResponse,
    decode_frame,
    encode_frame,
)
from geofences.crossing import Fix
from geofences.fences import load_site
from ops import timeouts

log = logging.getLogger(__name__)


@dataclass
class TerminalLog:
    """What the platform answered (by our serial), for tests and logs."""

    answers: dict[int, GeneralResponse] = field(default_factory=dict)
    auth_code: str | None = None


class Jt808Terminal:
    def __init__(
        self,
        phone: str,
        *,
        registration: Registration | None = None,
        terminal_id: str | None = None,
    ) -> None:
        self.phone = phone
        self.registration = registration or Registration(
            31, 115, "PWSIM", "PW-808", terminal_id or "T" + phone[-6:], 1, "沪A" + phone[-5:]
        )
        self._serial = 0
        self._splitter = FrameSplitter()
        self.log = TerminalLog()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def send(self, msg_id: int, body: bytes) -> int:
        """Send one message and wait for the platform's answer to it; returns its serial."""
        if self._writer is None:
            raise RuntimeError("not connected")
        self._serial = (self._serial + 1) & 0xFFFF
        serial = self._serial
        self._writer.write(encode_frame(Header(msg_id, self.phone, serial), body))
        await self._writer.drain()
        await self._await_answer(serial)
        return serial

    async def send_raw(self, data: bytes) -> None:
        if self._writer is None:
            raise RuntimeError("not connected")
        self._writer.write(data)
        await self._writer.drain()

    async def _await_answer(self, serial: int, timeout_s: float = 5.0) -> None:
        if self._reader is None:
            raise RuntimeError("not connected")
        deadline = time.monotonic() + timeout_s
        while serial not in self.log.answers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to serial {serial}")
            data = await timeouts.wait_for(self._reader.read(4096), remaining)
            if not data:
                raise ConnectionError("platform closed the connection")
            for raw in self._splitter.feed(data):
                frame = decode_frame(raw)
                if frame.header.msg_id == MsgId.REGISTER_RESPONSE:
                    reply = RegistrationResponse.decode(frame.body)
                    self.log.auth_code = reply.auth_code if reply.result == 0 else None
                    self.log.answers[reply.serial] = GeneralResponse(
                        reply.serial, MsgId.REGISTER, reply.result
                    )
                elif frame.header.msg_id == MsgId.PLATFORM_RESPONSE:
                    answer = GeneralResponse.decode(frame.body)
                    self.log.answers[answer.serial] = answer

    async def log_in(self, auth_code: str | None = None) -> bool:
        if auth_code is None:
            await self.send(MsgId.REGISTER, self.registration.encode())
            auth_code = self.log.auth_code
            if auth_code is None:
                return False
        serial = await self.send(MsgId.AUTHENTICATE, auth_code.encode("gbk"))
        return self.log.answers[serial].result == 0

    async def report(self, fix: Fix, *, speed_kmh: float = 20.0, alarm: int = 0) -> int:
        return await self.send(MsgId.LOCATION, location_of(fix, speed_kmh, alarm).encode())

    async def report_batch(self, fixes: Sequence[Fix], *, backfill: bool) -> int:
        batch = LocationBatch(1 if backfill else 0, tuple(location_of(f, 0.0, 0) for f in fixes))
        return await self.send(MsgId.LOCATION_BATCH, batch.encode())


def location_of(fix: Fix, speed_kmh: float, alarm: int) -> Location:
    return Location(
        alarm=alarm,
        status=STATUS_ACC_ON | STATUS_POSITIONED,
        lat=fix.lat,
        lon=fix.lon,
        altitude_m=4,
        speed_kmh=speed_kmh,
        heading_deg=0,
        t_us=fix.t_us - fix.t_us % 1_000_000,  # BCD time has whole seconds
    )


async def drive(
    host: str,
    port: int,
    phone: str,
    *,
    speedup: float,
    blind: tuple[float, float] | None,
    terminal_id: str | None = None,
    auth_code: str | None = None,
) -> None:
    from firmware_sim.trackers import drive_out

    terminal = Jt808Terminal(phone, terminal_id=terminal_id)
    await terminal.connect(host, port)
    if not await terminal.log_in(auth_code):
        raise SystemExit("the platform refused registration or authentication")
    started = time.monotonic()
    t0_us = time.time_ns() // 1000
    stored: list[Fix] = []
    for p in drive_out(load_site("demo-site"), t0_us, device=phone):
        delay = p.publish_s / speedup - (time.monotonic() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        if blind is not None and blind[0] <= p.publish_s < blind[1]:
            stored.append(p.fix)
            continue
        if stored:
            await terminal.report_batch(stored, backfill=True)
            stored = []
        await terminal.report(p.fix)
    await terminal.close()


def _run(args: argparse.Namespace) -> int:
    host, _, port = args.server.rpartition(":")
    blind = (args.blind_from, args.blind_to) if args.blind_to > args.blind_from else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            drive(
                host,
                int(port),
                args.phone,
                speedup=args.speedup,
                blind=blind,
                terminal_id=args.terminal_id,
                auth_code=args.auth_code,
            )
        )
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("jt808-terminal", help="a JT/T 808 vehicle terminal")
    parser.add_argument("--server", default="127.0.0.1:7808")
    parser.add_argument("--phone", default="13800138000")
    parser.add_argument("--terminal-id", help="sent in the registration (default T + 6 digits)")
    parser.add_argument("--auth-code", help="a code provisioned out of band (skips registering)")
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--blind-from", type=float, default=0.0, help="seconds into the route")
    parser.add_argument("--blind-to", type=float, default=0.0)
    parser.set_defaults(func=_run)
