"""The financier's webhook receiver: a local HTTP endpoint (h11 over asyncio streams) that
keeps what it was sent and when."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11


@dataclass
class WebhookInbox:
    received: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = b""
        with contextlib.suppress(ConnectionError, h11.RemoteProtocolError):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if not (data := await reader.read(65536)):
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            self.received.append((time.time(), headers, body))
            writer.write(conn.send(h11.Response(status_code=204, headers=[])))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookInbox]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()

