"""JT/T 808 terminals in the adapter shape: ``async with Jt808Terminals(config, on_health) as
terminals: async for batch in terminals.batches()``.

The session listens (`Jt808Server`); a port that cannot be bound is retried with backoff by the
owner (ops/supervised.py). Each batch is what one terminal's frames produced, with a future the
consumer settles once the batch is stored: the terminal is answered only then, and a batch that
could not be stored leaves its terminal unanswered, so it sends again (what the server did with
its sink before, unchanged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from cloud.jt808.server import Jt808Server
from cloud.jt808.session import SessionEvent, TerminalAuthority
from ops.backoff import Backoff
from ops.supervised import BatchSource, HealthCallback, Supervised

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Jt808Listen:
    host: str
    port: int
    idle_timeout_s: float = 180.0


@dataclass(frozen=True)
class TerminalEvents:
    events: list[SessionEvent]
    stored: asyncio.Future[None]  # settled by the consumer; the terminal is answered after


class Jt808Terminals(BatchSource[TerminalEvents]):
    def __init__(
        self, config: Jt808Listen, on_health: HealthCallback | None, *,
        authority: TerminalAuthority, registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(f"jt808:{config.port}", on_health,
                         backoff=Backoff(initial_s=1.0, maximum_s=30.0))
        self._config = config
        self.server = Jt808Server(authority, self._sink, idle_timeout_s=config.idle_timeout_s,
                                  registry=registry)

    @property
    def port(self) -> int:
        return self.server.port

    async def _sink(self, events: list[SessionEvent]) -> None:
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.put(TerminalEvents(events, stored))
        await stored  # raises what storing raised: the server leaves the terminal unanswered

    async def session(self, owner: Supervised) -> None:
        await self.server.start(self._config.host, self._config.port)
        owner.up("listening")
        try:
            await asyncio.Event().wait()  # serving until stopped
        finally:
            await self.server.close()


async def settle(batch: TerminalEvents, store: Callable[[list[SessionEvent]], Awaitable[None]]
                 ) -> None:
    """Store one batch and tell its terminal's connection how that went."""
    try:
        await store(batch.events)
    except Exception as err:  # noqa: BLE001 - whatever it was, the terminal must not be answered
        if not batch.stored.done():
            batch.stored.set_exception(err)
        return
    if not batch.stored.done():
        batch.stored.set_result(None)
