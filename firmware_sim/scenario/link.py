"""A link we can cut: the gateway's broker connection goes through this TCP proxy, so a
scenario can stage a network outage."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableLink:
    """A TCP proxy to the broker: ``down()`` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.local_port = 0

    async def __aenter__(self) -> CuttableLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.local_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.down()
        assert self._server is not None
        self._server.close()

    def down(self) -> None:
        self.up = False
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

