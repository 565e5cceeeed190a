"""The live feed over a WebSocket: ``/api/v1/live``, resumable from a cursor.

Protocol (JSON text frames). The browser opens the socket and sends
``{"key": "pw_...", "after": "<cursor>"}`` (browsers cannot set headers on a WebSocket; ``after``
is the cursor of the map state or of the last frame it applied, or null for "from now").
The server answers ``{"type": "hello", "cursor": ..., "role": ...}``, then
``{"type": "events", "cursor": ..., "events": [...]}`` frames in cursor order. Close codes:
4401 bad key (also when the key is revoked while the socket is open), 4403 role may not watch,
4400 bad hello, 4409 the cursor is older than the feed keeps (reload the map state), 4408 the
browser fell behind (reconnect with its cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect

from cloud import live
from cloud.apikeys import Principal, authenticate, is_active
from ops import timeouts

HELLO_TIMEOUT_S = 10.0
# How often an open socket asks whether its key still stands: a revoked key's socket closes
# within this many seconds.
KEY_RECHECK_S = 2.0


@contextlib.asynccontextmanager
async def feed_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with live.LiveFeed(app.state.settings.database_url) as feed:
        app.state.live_feed = feed
        yield


router = APIRouter(tags=["live"], lifespan=feed_lifespan)


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


async def _hello(ws: WebSocket) -> tuple[live.Audience, live.Cursor | None, Principal]:
    try:
        hello = await timeouts.wait_for(ws.receive_json(), HELLO_TIMEOUT_S)
    except (TimeoutError, ValueError, KeyError) as err:
        raise Refused(4400, f"send {{\"key\": ..., \"after\": ...}} first ({err})") from None
    if not isinstance(hello, dict) or not isinstance(hello.get("key"), str):
        raise Refused(4400, "the first frame must be {\"key\": \"pw_...\", \"after\": ...}")
    after = hello.get("after")
    try:
        cursor = live.Cursor.parse(after) if isinstance(after, str) else None
    except ValueError as err:
        raise Refused(4400, str(err)) from None
    async with ws.app.state.pool.connection() as conn:
        principal = await authenticate(conn, hello["key"])
        if principal is None:
            raise Refused(4401, "unknown or revoked API key")
        if principal.role == "gateway":
            raise Refused(4403, "gateway keys may not watch the live feed")
        return await live.audience_of(conn, principal), cursor, principal


@router.websocket("/api/v1/live")
async def live_feed(ws: WebSocket) -> None:
    await ws.accept()
    try:
        audience, after, principal = await _hello(ws)
        feed: live.LiveFeed = ws.app.state.live_feed
        with feed.subscribe() as sub:
            await _first_to_end(
                _until_closed(ws), _until_revoked(ws, principal.key_id),
                _stream(ws, feed, sub, audience=audience, after=after, role=principal.role))
    except Refused as refused:
        await _close(ws, refused.code, refused.reason)
    except WebSocketDisconnect:
        pass
    except live.SlowSubscriber:
        await _close(ws, 4408, "fell behind the live feed; reconnect with your cursor")


async def _first_to_end(*coros: Coroutine[Any, Any, None]) -> None:
    """Run both; when one ends (the browser left, or the stream failed) cancel the other."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(code, reason)


async def _until_closed(ws: WebSocket) -> None:
    # The browser sends nothing after its hello; this only notices it going away.
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))


async def _until_revoked(ws: WebSocket, key_id: str) -> None:
    while True:
        await asyncio.sleep(KEY_RECHECK_S)
        async with ws.app.state.pool.connection() as conn:
            if not await is_active(conn, key_id):
                raise Refused(4401, "the API key was revoked")


async def _stream(ws: WebSocket, feed: live.LiveFeed, sub: live.Subscription, *,
                  audience: live.Audience, after: live.Cursor | None, role: str) -> None:
    async with ws.app.state.pool.connection() as conn:
        if after is None:
            position = await live.head(conn)
        elif after < await live.horizon(conn):
            raise Refused(4409, "the cursor is older than the feed keeps; reload the map")
        else:
            position = after
        await ws.send_json({"type": "hello", "cursor": str(position), "role": role})
        async for batch in live.backlog(conn, position, feed.position):
            frame = batch.encoded_for(audience, position)
            if frame is not None:
                await ws.send_text(frame)
            position = batch.last
    # No pool connection is held while streaming: the feed's own connection reads for all.
    while True:
        batch = await sub.next()
        frame = batch.encoded_for(audience, position)
        if frame is not None:
            await ws.send_text(frame)
        position = max(position, batch.last)
