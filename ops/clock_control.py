"""The control channel of a simulated clock: a player moves a gateway's time from outside its
process, and learns when the gateway has done everything due up to then (a barrier).

The controller (the scenario player) listens on a loopback port; the process whose clock is
simulated (``python -m edge run --clock sim:127.0.0.1:PORT``) connects to it, so the gateway
opens no listening socket. Newline-delimited JSON, one request and one answer at a time:

    controller → follower   {"op": "start", "t_us": N}        first line: the clock starts at N
    follower → controller   {"now_us": N}
    controller → follower   {"op": "advance_to", "t_us": M}   every sleeper due by M wakes
    follower → controller   {"now_us": M, "woken": k}          ...and the loop has settled

Every line is bounded (``MAX_LINE``), every field checked; a line the follower cannot accept
ends the channel, and a follower without its controller stops (its time would never move).
A step is bounded too (``MAX_STEP_US``): a typo must not fast-forward a gateway by a century.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from ops import timeouts
from ops.clock import SimulatedClock

MAX_LINE = 256
MAX_STEP_US = 31 * 24 * 3600 * 1_000_000  # a month per step at most
MIN_START_US = 946_684_800 * 1_000_000  # 2000-01-01: an epoch earlier than this is a mistake
MAX_START_US = 4_102_444_800 * 1_000_000  # 2100-01-01


class ClockChannelError(Exception):
    """The other end sent something that is no clock message, or went away."""


async def _read(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        raise ClockChannelError("the other end closed the clock channel") from err
    except asyncio.LimitOverrunError as err:
        raise ClockChannelError(f"clock line longer than {MAX_LINE} bytes") from err
    if len(line) > MAX_LINE:
        raise ClockChannelError(f"clock line longer than {MAX_LINE} bytes")
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise ClockChannelError("clock line is not JSON") from err
    if not isinstance(message, dict):
        raise ClockChannelError("clock line is not an object")
    return message


def _time(message: dict[str, Any], field: str, low: int, high: int) -> int:
    value = message.get(field)
    if type(value) is not int or not low <= value <= high:
        raise ClockChannelError(f"{field} must be an integer in [{low}, {high}], not {value!r}")
    return value


def _write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


async def attach(host: str, port: int) -> tuple[SimulatedClock, asyncio.StreamReader,
                                                 asyncio.StreamWriter]:
    """Connect to the controller and take the start of simulated time from it."""
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
    try:
        message = await _read(reader)
        if message.get("op") != "start":
            raise ClockChannelError(f"expected start, got {message.get('op')!r}")
        clock = SimulatedClock(_time(message, "t_us", MIN_START_US, MAX_START_US))
        _write(writer, {"now_us": clock.now_us()})
        await writer.drain()
    except BaseException:
        writer.close()
        raise
    return clock, reader, writer


async def follow(clock: SimulatedClock, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    """Do what the controller says until it goes away; raises ClockChannelError then."""
    try:
        while True:
            message = await _read(reader)
            if message.get("op") != "advance_to":
                raise ClockChannelError(f"unknown clock op {message.get('op')!r}")
            now = clock.now_us()
            target = _time(message, "t_us", now, now + MAX_STEP_US)
            woken = await clock.advance_to(target)
            _write(writer, {"now_us": clock.now_us(), "woken": woken})
            await writer.drain()
    finally:
        writer.close()


class ClockController:
    """The player's end: ``async with ClockController(start_us) as ctl``, hand the follower
    ``ctl.spec``, ``await ctl.attached()``, then ``await ctl.advance_to(t)`` (returns once the
    follower has settled at ``t``).

    ``followers``: how many processes share this one time (a story's two sites, one gateway
    each): ``attached`` waits for all of them, ``advance_to`` moves them all to ``t`` and
    returns once every one has settled there, so no site runs ahead of another."""

    def __init__(self, start_us: int, *, followers: int = 1, attach_timeout_s: float = 60.0,
                 step_timeout_s: float = 120.0) -> None:
        if followers < 1:
            raise ValueError("a clock needs at least one follower")
        self.now_us = start_us
        self.port = 0
        self.followers = followers
        self._attach_timeout_s = attach_timeout_s
        self._step_timeout_s = step_timeout_s
        self._server: asyncio.Server | None = None
        self._peers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: asyncio.Future[None] | None = None

    @property
    def spec(self) -> str:
        return f"sim:127.0.0.1:{self.port}"

    async def __aenter__(self) -> ClockController:
        self._all = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Let the followers go (they stop: their time would never move again)."""
        assert self._server is not None and self._all is not None
        self._server.close()
        if not self._all.done():
            self._all.cancel()
        for _, writer in self._peers:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._all is not None
        if len(self._peers) >= self.followers:  # as many followers as the controller was told
            writer.close()
            return
        self._peers.append((reader, writer))
        if len(self._peers) == self.followers and not self._all.done():
            self._all.set_result(None)

    async def attached(self) -> None:
        """Until every follower connected and took the start time."""
        assert self._all is not None
        await timeouts.wait_for(asyncio.shield(self._all), self._attach_timeout_s)
        for reader, writer in self._peers:
            _write(writer, {"op": "start", "t_us": self.now_us})
            answer = await timeouts.wait_for(_read(reader), self._attach_timeout_s)
            if answer.get("now_us") != self.now_us:
                raise ClockChannelError(f"follower did not start at {self.now_us}: {answer!r}")

    async def advance_to(self, t_us: int) -> int:
        """Move the followers' time to ``t_us``; returns once every one has settled there
        (the timers they woke, summed)."""
        assert self._all is not None and self._all.done()
        for _, writer in self._peers:  # all at once: the sites' steps overlap in real time
            _write(writer, {"op": "advance_to", "t_us": t_us})
        woken = 0
        for reader, writer in self._peers:
            await writer.drain()
            answer = await timeouts.wait_for(_read(reader), self._step_timeout_s)
            if answer.get("now_us") != t_us:
                raise ClockChannelError(f"follower answered {answer!r} to advance_to {t_us}")
            woken += int(answer.get("woken", 0))
        self.now_us = t_us
        return woken
