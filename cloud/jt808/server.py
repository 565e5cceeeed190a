"""The JT/T 808 TCP server: one ``Jt808Session`` per connection, events handed to a sink.

The sink runs before the platform's answers are written, so a position is acknowledged only
once it is stored: if storing fails the connection is closed unanswered and the terminal sends
it again (JT/T 808 terminals retransmit unacknowledged messages). A connection idle past
``idle_timeout_s`` (three heartbeat intervals by default) is closed.

Whatever the server reads and cannot place (a refused frame, an item set aside, a fix dated out
of range) is counted in ``jt808_unplaced_total{reason}`` (served on /metrics) and logged once
per reason per minute, so a hostile or broken terminal cannot flood the log. Nothing a
connection does ends another connection or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter

from cloud.jt808.session import Jt808Session, Refused, SessionEvent, SetAside, TerminalAuthority
from ops import timeouts

log = logging.getLogger(__name__)

Sink = Callable[[list[SessionEvent]], Awaitable[None]]
Clock = Callable[[], float]
_READ_SIZE = 4096
LOG_EVERY_S = 60.0


class UnplacedLog:
    """Counts what could not be placed, by reason; logs a reason at most once per minute
    (with how many were seen since it was last logged)."""

    def __init__(self, registry: CollectorRegistry, clock: Clock = time.monotonic) -> None:
        self.counter = Counter(
            "jt808_unplaced",
            "JT/T 808 input read but not placed (refused frames, items set aside)",
            ["reason"],
            registry=registry,
        )
        self._clock = clock
        self._logged_at: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, reason: str, detail: str, phone: str | None, peer: str) -> bool:
        """Count; True when this note was logged."""
        self.counter.labels(reason).inc()
        self._since[reason] = self._since.get(reason, 0) + 1
        now = self._clock()
        last = self._logged_at.get(reason)
        if last is not None and now - last < LOG_EVERY_S:
            return False
        self._logged_at[reason] = now
        count = self._since.pop(reason)
        log.warning(
            "jt808 input not placed",
            extra={
                "reason": reason,
                "detail": detail,
                "phone": phone,
                "peer": peer,
                "count_since_last_log": count,
            },
        )
        return True


class Jt808Server:
    def __init__(
        self,
        authority: TerminalAuthority,
        sink: Sink,
        *,
        idle_timeout_s: float = 180.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._authority = authority
        self._sink = sink
        self._idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self.connections = 0
        self.registry = registry or CollectorRegistry()
        self.unplaced = UnplacedLog(self.registry)
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_connection, host, port)
        log.info("jt808 listening", extra={"host": host, "port": self.port})

    async def serve_forever(self, host: str, port: int) -> None:
        await self.start(host, port)
        if self._server is None:  # unreachable: start() sets it
            return
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and end the open connections (their terminals reconnect)."""
        if self._server is not None:
            self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        session = Jt808Session(self._authority)
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                try:
                    data = await timeouts.wait_for(reader.read(_READ_SIZE), self._idle_timeout_s)
                except TimeoutError:
                    log.info("jt808 terminal idle; closing", extra={"phone": session.phone})
                    return
                if not data:
                    return
                events, answer = session.receive(data, time.time_ns() // 1000)
                for event in events:
                    if isinstance(event, Refused):
                        self.unplaced.note(event.kind, event.reason, event.phone, str(peer))
                    elif isinstance(event, SetAside):
                        self.unplaced.note(event.reason, event.reason, event.phone, str(peer))
                if events:
                    await self._sink(events)
                if answer:
                    writer.write(answer)
                    await writer.drain()
        except ConnectionError as err:
            log.info("jt808 connection lost", extra={"phone": session.phone, "error": str(err)})
        except asyncio.CancelledError:
            # Only close() cancels a handler: the connection ends with the server. Not
            # re-raised, because nobody awaits this task but close() (and asyncio's stream
            # callback would log a cancelled handler as an error).
            log.debug("jt808 connection closed with the server", extra={"phone": session.phone})
        except Exception:
            # The sink failed (database down, or a bug): this connection ends unanswered, so its
            # terminal retransmits; no other connection is touched. Logged once, here.
            log.exception("jt808 events not stored; closing", extra={"phone": session.phone})
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
