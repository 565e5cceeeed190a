"""A real HTTP webhook receiver on a free local port, scripted per request (h11 over asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import h11
import psycopg


@dataclass(frozen=True)
class Answer:
    status: int = 204
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    script: Callable[[int], Answer] = lambda n: Answer()
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        with contextlib.suppress(ConnectionError, h11.RemoteProtocolError):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert request is not None
            answer = self.script(len(self.received))
            self.received.append(Received(
                request.target.decode(),
                {k.decode().lower(): v.decode() for k, v in request.headers},
                body, time.monotonic(), answer.status))
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
            headers = [("content-length", "0"), *answer.headers]
            writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None


@contextlib.asynccontextmanager
async def receiving(script: Callable[[int], Answer] = lambda n: Answer()
                    ) -> AsyncIterator[Receiver]:
    receiver = Receiver(script)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def pledge_lot(database_url: str, lot: str = "L1", financier: str = "bank-a",
               site: str = "site-1") -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lots (id, site_id, name, financier_id) VALUES (%s, %s, %s, %s)",
                     (lot, site, f"Lot {lot}", financier))
