"""The one owner of a connection: one supervised task, backoff between attempts, health reports.

Every adapter (RFID reader, camera, tracker feed, sensor source) and every connection owner
(MQTT publisher, ingest consumer, webhook sender, evidence uploader) has the same shape::

    async with Adapter(config, on_health) as adapter:
        async for batch in adapter.batches():
            ...

`Supervised` runs a *session* coroutine in one task. A session connects, calls ``owner.up()``
once the connection works (health goes online, the backoff starts again from its first delay),
and then works until the connection fails. A failure listed in ``retry_on`` (or `SessionLost`)
reports the source offline and starts a new session after the next backoff delay; any other
exception ends the task and is raised to whoever waits on it. A session that returns has
finished for good (a video file that has been read to its end).

`BatchSource` is the base of adapters: its session ``put``s batches, ``batches()`` yields them,
and ends (or raises) when the session does. The queue between them is bounded, so a slow
consumer slows the device reads instead of growing memory.

Sleeping and the clock are injected so the policy is tested without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

from ops.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Health:
    source: str  # the adapter's or connection's name (a reader id, "broker", ...)
    online: bool
    reason: str
    at_us: int


HealthCallback = Callable[[Health], None]
Sleep = Callable[[float], Awaitable[None]]


class SessionLost(Exception):
    """A session's connection ended (stream closed, device silent): reconnect after backoff."""


def describe(err: BaseException) -> str:
    if isinstance(err, SessionLost):
        return str(err)
    return f"{type(err).__name__}: {err}"


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class Supervised:
    """An async context manager that owns one task running ``session(owner)`` again and again."""

    def __init__(
        self,
        name: str,
        session: Callable[[Supervised], Awaitable[None]],
        *,
        on_health: HealthCallback | None = None,
        retry_on: tuple[type[BaseException], ...] = (OSError,),
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock_us: Callable[[], int] = wall_clock_us,
        reason_of: Callable[[BaseException], str] = describe,
    ) -> None:
        self.name = name
        self._session = session
        self._on_health = on_health
        self._retry_on: tuple[type[BaseException], ...] = (SessionLost, *retry_on)
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock_us = clock_us
        self._reason_of = reason_of
        self.online: bool | None = None  # None: not known yet
        self.sessions = 0  # sessions started
        self.failures = 0  # sessions that ended in a retryable failure
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- what a session calls ---------------------------------------------------------------
    def up(self, reason: str = "connected") -> None:
        """The connection works: report online (once per change) and reset the backoff."""
        self.backoff.reset()
        self._report(True, reason)

    def down(self, reason: str) -> None:
        """Report offline without ending the session (a device that went quiet, say)."""
        self._report(False, reason)

    # -- the task ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Sessions until one returns (finished) or raises something not in ``retry_on``."""
        while True:
            self.sessions += 1
            try:
                await self._session(self)
                return
            except self._retry_on as err:
                # A cancelled query can surface as a driver error (psycopg does): a stop
                # asked for is a stop, not a lost connection to retry. (Not judged by
                # ``cancelling()``: Python 3.11's TaskGroup leaves it set after a child fails.)
                if self._stopping:
                    raise asyncio.CancelledError from err
                reason = self._reason_of(err)
            self.failures += 1
            self._report(False, reason)
            delay = self.backoff.next_delay()
            log.warning(
                "connection lost; retrying",
                extra={"source": self.name, "reason": reason, "retry_in_s": round(delay, 2),
                       "attempt": self.backoff.attempts},
            )
            await self._sleep(delay)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name=f"supervised:{self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:
            return
        self._stopping = True
        if not task.done():
            task.cancel()
        # wait() raises only when *this* task is cancelled, never with the session's outcome.
        await asyncio.wait({task})
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and exc is None:  # an error inside the block matters more
            raise error

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "use `async with` first"
        return self._task

    async def wait(self) -> None:
        """Until the session finishes; raises what ended it."""
        await self.task

    def _report(self, online: bool, reason: str) -> None:
        if online == self.online:
            return
        self.online = online
        if self._on_health is not None:
            self._on_health(Health(self.name, online, reason, self._clock_us()))


_END = object()


class BatchSource(Generic[T]):
    """Base of every adapter: a supervised session that ``put``s batches; ``batches()`` reads.

    Subclasses implement ``session(owner)`` and may override ``close()`` (called once on exit,
    after the session task has stopped)."""

    name: str
    retry_on: tuple[type[BaseException], ...] = (OSError,)
    queue_size: int = 16

    def __init__(
        self,
        name: str,
        on_health: HealthCallback | None,
        *,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        self.name = name
        self.owner = Supervised(
            name, self.session, on_health=on_health, retry_on=self.retry_on,
            backoff=backoff or Backoff(initial_s=0.5, maximum_s=30.0), sleep=sleep,
            clock_us=clock_us, reason_of=self.reason_of,
        )
        self._batch_queue: asyncio.Queue[object] = asyncio.Queue(self.queue_size)
        self._ending: asyncio.Task[None] | None = None

    async def session(self, owner: Supervised) -> None:
        raise NotImplementedError

    def reason_of(self, err: BaseException) -> str:
        return describe(err)

    async def close(self) -> None:
        return None

    async def put(self, batch: T) -> None:
        await self._batch_queue.put(batch)

    async def __aenter__(self) -> Self:
        await self.owner.__aenter__()
        # The end of the session (finished or failed) reaches the reader behind its batches.
        self.owner.task.add_done_callback(self._on_session_end)
        return self

    def _on_session_end(self, _task: asyncio.Task[None]) -> None:
        self._ending = asyncio.get_running_loop().create_task(self._batch_queue.put(_END))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.owner.__aexit__(exc_type, exc, tb)
        finally:
            if self._ending is not None and not self._ending.done():
                self._ending.cancel()
            await self.close()

    async def batches(self) -> AsyncIterator[T]:
        """Batches in the order the session put them; ends when the session has finished."""
        queue = self._batch_queue
        while True:
            item = await queue.get()
            if item is _END:
                task = self.owner.task
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
