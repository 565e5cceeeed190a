"""The JT/T 808 TCP server: one ``Jt808Session`` per connection, events handed to a sink.

The sink runs before the platform's answers are written, so a position is acknowledged only
once it is stored: if storing fails the connection is closed unanswered and the terminal sends
it again (JT/T 808 terminals retransmit unacknowledged messages). Refusals are logged here, at
warning level, once per frame. A connection idle past ``idle_timeout_s`` (three heartbeat
intervals by default) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cloud.jt808.session import Jt808Session, Refused, SessionEvent, TerminalAuthority

log = logging.getLogger(__name__)

Sink = Callable[[list[SessionEvent]], Awaitable[None]]
_READ_SIZE = 4096


class Jt808Server:
    def __init__(
        self, authority: TerminalAuthority, sink: Sink, *, idle_timeout_s: float = 180.0
    ) -> None:
        self._authority = authority
        self._sink = sink
        self._idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self.connections = 0

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
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        session = Jt808Session(self._authority)
        self.connections += 1
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(_READ_SIZE), self._idle_timeout_s)
                except TimeoutError:
                    log.info("jt808 terminal idle; closing", extra={"phone": session.phone})
                    return
                if not data:
                    return
                events, answer = session.receive(data)
                for event in events:
                    if isinstance(event, Refused):
                        log.warning(
                            "jt808 frame refused",
                            extra={
                                "phone": event.phone,
                                "peer": str(peer),
                                "reason": event.reason,
                                "msg_id": event.msg_id,
                            },
                        )
                if events:
                    await self._sink(events)
                if answer:
                    writer.write(answer)
                    await writer.drain()
        except ConnectionError as err:
            log.info("jt808 connection lost", extra={"phone": session.phone, "error": str(err)})
        except Exception:
            # The sink failed (database down): leave the terminal unanswered so it retransmits.
            log.exception("jt808 events not stored; closing", extra={"phone": session.phone})
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
