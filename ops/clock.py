"""The time every decision reads, injected: the system's clock in production, a simulated one
that a controller advances in scenarios, so a three-hour night runs in seconds and the same
seed gives the same decisions.

Theory of operation: a decision never calls ``time.time()`` or ``asyncio.sleep()`` itself; it
asks its ``Clock``. `SystemClock` is the real thing. `SimulatedClock` holds a number that moves
only when its controller calls ``advance_to(t)``: every ``sleep`` due on the way wakes at its own
deadline, in deadline order, and the event loop is let run until nothing more is ready before
time moves on (``settle``), so a stale timer, a window or a retry sees exactly the simulated
time it would have seen on the wall clock. Guards on real I/O (a TCP connect timeout, a socket
drain) stay on the real clock: they protect against a stalled peer, not a decision about the
world.

``sim:HOST:PORT`` names a simulated clock driven over a local control channel
(ops/clock_control.py).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from ops import timeouts

T = TypeVar("T")


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""
        ...

    def now(self) -> datetime:
        """The same instant as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals (never jumps back)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` of this clock's time have passed."""
        ...

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        """``awaitable``'s result, or ``TimeoutError`` once ``timeout_s`` of this clock passed."""
        ...


class SystemClock:
    """The wall clock and the event loop's own timers: production behaves as it always has."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await timeouts.wait_for(awaitable, timeout_s)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()

# How many rounds of the event loop ``settle`` lets run at most before time moves on anyway: a
# task that reschedules itself forever (a busy loop) must not stall the simulation.
SETTLE_MAX_ROUNDS = 10_000


class SimulatedClock:
    """A clock that moves only when told. ``sleep`` waits for ``advance_to`` to pass its
    deadline; ``advance_to`` wakes sleepers one deadline at a time and settles between them."""

    def __init__(self, start_us: int) -> None:
        if start_us < 0:
            raise ValueError("a simulated clock starts at or after the epoch")
        self._now_us = start_us
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # equal deadlines wake in the order they slept
        self.wakeups = 0  # sleepers woken, for the control channel's replies and tests

    def now_us(self) -> int:
        return self._now_us

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now_us / 1e6, UTC)

    def monotonic(self) -> float:
        return self._now_us / 1e6

    @property
    def next_deadline_us(self) -> int | None:
        """When the earliest live sleeper wakes; None when nobody sleeps."""
        self._drop_abandoned()
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        deadline = self._now_us + max(1, round(seconds * 1_000_000))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), waiter))
        await waiter  # cancelled: the entry stays in the heap, done, and is skipped

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        work = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.sleep(timeout_s))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            raise TimeoutError(f"nothing within {timeout_s} s of simulated time")
        finally:
            for task in (work, timer):
                if not task.done():
                    task.cancel()
            if not work.done():
                # Like asyncio.wait_for: the abandoned work has stopped when this returns.
                await asyncio.wait({work})

    async def advance_to(self, target_us: int) -> int:
        """Move to ``target_us`` (never back), waking every sleeper due on the way at its own
        deadline; returns how many woke."""
        if target_us < self._now_us:
            raise ValueError(f"simulated time runs forward: at {self._now_us}, asked {target_us}")
        woken = 0
        await settle()
        while (deadline := self.next_deadline_us) is not None and deadline <= target_us:
            self._now_us = max(self._now_us, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now_us:
                _, _, waiter = heapq.heappop(self._sleepers)
                if not waiter.done():
                    waiter.set_result(None)
                    woken += 1
            await settle()
        self._now_us = target_us
        await settle()
        self.wakeups += woken
        return woken

    async def advance(self, seconds: float) -> int:
        return await self.advance_to(self._now_us + round(seconds * 1_000_000))

    def _drop_abandoned(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def __repr__(self) -> str:
        return f"SimulatedClock(now_us={self._now_us}, sleepers={len(self._sleepers)})"


async def settle(max_rounds: int = SETTLE_MAX_ROUNDS) -> None:
    """Let the event loop run until no callback is ready (twice in a row): everything that the
    last wake-up set going has run as far as it can without I/O or more time.

    Reads the loop's ready queue (CPython's ``BaseEventLoop._ready``); a loop without one gets
    a fixed number of rounds instead.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    idle = 0
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if ready is None:
            idle += 1
            if idle >= 100:
                return
            continue
        idle = idle + 1 if not ready else 0
        if idle >= 2:
            return


def parse_clock(spec: str | None) -> tuple[str, tuple[str, int] | None]:
    """``None``/``"system"`` or ``"sim:HOST:PORT"`` (a local control address) → kind, address.

    Only loopback addresses: whoever reaches the control channel moves the gateway's time."""
    if spec is None or spec == "system":
        return "system", None
    kind, _, rest = spec.partition(":")
    host, _, port_text = rest.rpartition(":")
    if kind != "sim" or not host or not port_text.isdigit():
        raise ValueError(f"clock must be 'system' or 'sim:HOST:PORT', not {spec!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"control port out of range: {port}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the clock's control channel listens on loopback only, not {host!r}")
    return "sim", (host, port)
