"""The live feed: changes from ``live_events`` (filled by triggers) fanned out to browsers.

Theory of operation. Every API process runs one ``LiveFeed``: one connection LISTENs on
``pw_live``; on a wake-up (or every ``poll_s``) it reads the rows after its position, in cursor
order, and hands each batch to every subscriber. A browser connects with the cursor of the last
event it applied; the socket handler subscribes first (so batches queue up), reads the rows
between the browser's cursor and the feed from the database, then forwards queued batches,
skipping what the backlog already covered. A browser that reconnects therefore misses nothing,
and one that is too slow is dropped and resumes from its cursor instead of stalling the others.

A cursor is ``(tx, id)`` (see migration 0500): only rows whose transaction precedes every
running transaction are read, so a row committed late can never sort before one delivered.
Who may see an event is decided by ``Audience.sees`` (plain values, no I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from cloud.apikeys import Principal
from ops import timeouts
from ops.backoff import Backoff
from ops.supervised import Health, Supervised

log = logging.getLogger(__name__)

CHANNEL = "pw_live"
_SAFE = "tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


@dataclass(frozen=True, order=True, slots=True)
class Cursor:
    tx: int
    id: int

    def __str__(self) -> str:
        return f"{self.tx}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``"<tx>-<id>"`` as given out in events; ValueError with the reason otherwise."""
        tx, sep, ident = text.partition("-")
        if not sep or not tx.isdigit() or not ident.isdigit():
            raise ValueError(f"cursor {text!r} is not <tx>-<id> (two non-negative integers)")
        return cls(int(tx), int(ident))


START = Cursor(0, 0)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    cursor: Cursor
    kind: str
    at: datetime
    site_id: str | None
    lot_id: str | None
    financier_id: str | None
    payload: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"cursor": str(self.cursor), "kind": self.kind, "at": self.at.isoformat(),
                "site_id": self.site_id, "lot_id": self.lot_id, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class Audience:
    """What one principal may see of the feed (the same rules as cloud.scope)."""

    role: str
    sites: frozenset[str] = frozenset()
    financier_id: str | None = None

    def sees(self, event: LiveEvent) -> bool:
        if self.role == "admin":
            return True
        if self.role == "supervisor":
            return event.site_id in self.sites
        if self.role == "financier":
            # Only events about their own lots: no trackers, gates or other pledgees' goods.
            return event.financier_id is not None and event.financier_id == self.financier_id
        return False


@dataclass
class Batch:
    """Events read together; encoded once per audience however many browsers share it."""

    events: list[LiveEvent]
    _encoded: dict[Audience, str | None] = field(default_factory=dict)

    @property
    def last(self) -> Cursor:
        return self.events[-1].cursor

    def encoded_for(self, audience: Audience, after: Cursor) -> str | None:
        """The JSON frame this audience gets for events past ``after``; None if nothing."""
        if after >= self.last:
            return None
        if after < self.events[0].cursor and audience in self._encoded:
            return self._encoded[audience]
        frame = encode_frame(
            [e for e in self.events if e.cursor > after and audience.sees(e)], self.last
        )
        if after < self.events[0].cursor:
            self._encoded[audience] = frame
        return frame


def encode_frame(events: list[LiveEvent], cursor: Cursor) -> str | None:
    # Nothing to say when this audience sees none of the events: its cursor stays behind and
    # a resuming browser reads those rows again, only to filter them out again.
    if not events:
        return None
    return json.dumps({"type": "events", "cursor": str(cursor),
                       "events": [e.public() for e in events]}, default=str)


# -- reading the table ---------------------------------------------------------------------------
async def read_after(conn: AsyncConnection, after: Cursor, limit: int = 2000) -> list[LiveEvent]:
    """Committed rows past ``after`` that no running transaction can still precede."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT tx, id, kind, at, site_id, lot_id, financier_id, payload FROM live_events "
            f"WHERE (tx, id) > (%s, %s) AND {_SAFE} ORDER BY tx, id LIMIT %s",
            (after.tx, after.id, limit),
        )
        rows = await cur.fetchall()
    return [LiveEvent(Cursor(r["tx"], r["id"]), r["kind"], r["at"], r["site_id"], r["lot_id"],
                      r["financier_id"], r["payload"]) for r in rows]


async def head(conn: AsyncConnection) -> Cursor:
    """The newest cursor a reader may start after (what a page's snapshot is as of)."""
    row = await _one(
        conn, f"SELECT tx, id FROM live_events WHERE {_SAFE} ORDER BY tx DESC, id DESC LIMIT 1"
    )
    if row is None:
        # Empty table: the horizon, if retention removed everything.
        return await horizon(conn)
    return Cursor(int(row[0]), int(row[1]))


async def _one(conn: AsyncConnection, sql: str) -> tuple[Any, ...] | None:
    # Callers pass pool connections whose default rows are dicts.
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(sql)
        return await cur.fetchone()


async def horizon(conn: AsyncConnection) -> Cursor:
    row = await _one(conn, "SELECT tx, id FROM live_feed_horizon")
    return START if row is None else Cursor(int(row[0]), int(row[1]))


async def prune(conn: AsyncConnection, keep_s: float) -> int:
    """Drop events older than ``keep_s``; a browser resuming from before them must reload."""
    cur = await conn.execute(
        "WITH gone AS (DELETE FROM live_events WHERE at < now() - make_interval(secs => %s) "
        "RETURNING tx, id), newest AS (SELECT tx, id FROM gone ORDER BY tx DESC, id DESC "
        "LIMIT 1) UPDATE live_feed_horizon h SET tx = n.tx, id = n.id FROM newest n "
        "WHERE (n.tx, n.id) > (h.tx, h.id) RETURNING 1",
        (keep_s,),
    )
    return cur.rowcount


async def audience_of(conn: AsyncConnection, p: Principal) -> Audience:
    if p.role == "supervisor":
        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute("SELECT id FROM sites WHERE operator_id = %s", (p.operator_id,))
            sites = frozenset(r[0] for r in await cur.fetchall())
        return Audience("supervisor", sites)
    return Audience(p.role, financier_id=p.financier_id)


# -- fan-out -------------------------------------------------------------------------------------
class SlowSubscriber(Exception):
    """The browser did not keep up; it should reconnect and resume from its cursor."""


class Subscription:
    def __init__(self, feed: LiveFeed, max_batches: int) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue(max_batches)
        self.dropped = False

    def offer(self, batch: Batch) -> None:
        if self.dropped:
            return
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            # Its backlog is useless now: it will resume from its cursor after reconnecting.
            self.dropped = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def next(self) -> Batch:
        batch = await self._queue.get()
        if batch is None:
            raise SlowSubscriber("the browser fell behind the live feed")
        return batch

    def close(self) -> None:
        self._feed._subscribers.discard(self)


LISTEN_POLL_S = 0.5  # how often the LISTEN loop looks up to see whether to stop


class LiveFeed:
    """One LISTEN connection per API process, reading ``live_events`` and fanning out."""

    def __init__(self, database_url: str, *, poll_s: float = 1.0, keep_s: float = 86_400,
                 max_batches: int = 256) -> None:
        self._url = database_url
        self._poll_s = poll_s
        self._keep_s = keep_s
        self._max_batches = max_batches
        self._subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self.position = START
        self.connected = False
        self._owner = Supervised(
            "live-feed", self._run, on_health=self._on_health, retry_on=(psycopg.Error, OSError),
            backoff=Backoff(initial_s=0.2, maximum_s=5.0),
        )

    async def __aenter__(self) -> LiveFeed:
        await self._owner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await timeouts.wait_for(self._owner.__aexit__(None, None, None), 10)
        except (TimeoutError, psycopg.Error, OSError) as err:
            log.warning("live feed did not stop cleanly", extra={"error": repr(err)})

    def _on_health(self, health: Health) -> None:
        self.connected = health.online

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        sub = Subscription(self, self._max_batches)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            sub.close()

    async def _run(self, owner: Supervised) -> None:
        async with await AsyncConnection.connect(self._url, autocommit=True) as listen, \
                await AsyncConnection.connect(self._url, autocommit=True) as conn:
            await listen.execute(f"LISTEN {CHANNEL}")
            if self.position == START:
                self.position = await head(conn)
            owner.up("listening")
            stop = asyncio.Event()
            waker = asyncio.create_task(self._listen(listen, stop))
            try:
                await self._pump(conn)
            finally:
                # Cancelling a task blocked in notifies() can hang (seen in tests): ask it to
                # stop; it wakes at least every LISTEN_POLL_S to check.
                stop.set()
                try:
                    await timeouts.wait_for(asyncio.shield(waker), LISTEN_POLL_S * 4)
                except (TimeoutError, asyncio.CancelledError, psycopg.Error):
                    waker.cancel()

    async def _listen(self, listen: AsyncConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async for _ in listen.notifies(timeout=LISTEN_POLL_S):
                self._wake.set()

    async def _pump(self, conn: AsyncConnection) -> None:
        loop = asyncio.get_running_loop()
        last_wake = 0.0
        next_prune = loop.time() + 60
        while True:
            # After a wake-up, poll briefly: rows of a transaction that committed while an
            # older one still ran are withheld until that one ends, with no second NOTIFY.
            timeout = 0.05 if loop.time() - last_wake < 1.0 else self._poll_s
            with contextlib.suppress(TimeoutError):
                await timeouts.wait_for(self._wake.wait(), timeout)
            if self._wake.is_set():
                self._wake.clear()
                last_wake = loop.time()
            while True:
                events = await read_after(conn, self.position)
                if not events:
                    break
                batch = Batch(events)
                self.position = batch.last
                for sub in list(self._subscribers):
                    sub.offer(batch)
            if loop.time() >= next_prune:
                next_prune = loop.time() + 600
                await prune(conn, self._keep_s)


async def backlog(conn: AsyncConnection, after: Cursor, upto: Cursor) -> AsyncIterator[Batch]:
    """The rows a resuming browser missed, read in pages, up to at least ``upto``."""
    position = after
    while True:
        events = await read_after(conn, position)
        if not events:
            return
        yield Batch(events)
        position = events[-1].cursor
        if position >= upto and len(events) < 2000:
            return
