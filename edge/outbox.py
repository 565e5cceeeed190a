"""The durable outbox between the gateway's producers and its MQTT publisher.

Theory of operation: a message is signed and written to SQLite (WAL) *before* anyone tries to
send it, and deleted only when the cloud confirms it stored it (``cmd/stored``, after its
database commit). In between a row is *unsent* (``sent_us`` NULL), *sent* (published, no PUBACK
yet) or *acked* (the broker took it). The broker's PUBACK is not enough to forget a message: a
broker can lose what it acknowledged. Rows sent but not acked when a connection drops are sent
again; acked rows the cloud has not confirmed although it confirmed later ones are presumed lost
in the broker and sent again too. Duplicates are absorbed by the cloud's (gateway, seq) key. The
sequence number of
every envelope is allocated here, in the same transaction as the row, so it is strictly
increasing across restarts. A process killed with SIGKILL loses nothing that ``put`` returned
for: SQLite's WAL keeps committed transactions across a process crash (``fsync=True`` also
keeps them across power loss, at the cost of one fsync per write).

When the outbox exceeds its byte cap, the oldest *telemetry* rows are dropped first and
counted; events are never dropped (an outbox holding only events grows past the cap rather than
lose one). The drop counter is persisted and published in the agent's health telemetry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.clock import SYSTEM_CLOCK

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    is_event INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    sent_us INTEGER,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_telemetry ON outbox (seq) WHERE is_event = 0;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_us IS NULL;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('last_seq', 0), ('dropped_telemetry', 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    seq: int
    topic: str
    payload: bytes
    is_event: bool
    retain: bool


class Outbox:
    def __init__(self, path: Path, *, max_bytes: int = 256 * 1024 * 1024, fsync: bool = False,
                 clock_us: Callable[[], int] = SYSTEM_CLOCK.now_us):
        path.parent.mkdir(parents=True, exist_ok=True)
        # The agent's event loop is the only writer; autocommit off, explicit transactions.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self.max_bytes = max_bytes
        self._last_seq = self._counter("last_seq")
        self.dropped_telemetry = self._counter("dropped_telemetry")
        row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox")
        self.depth, self.bytes = row.fetchone()
        self._listeners: list[Callable[[], None]] = []
        # When a row was written and sent, on the uplink's clock: the publisher's loss check
        # compares sent times with its own reading of that clock.
        self._clock_us = clock_us
        self.max_confirmed = 0  # highest seq the cloud confirmed (since this process started)
        self.beyond_allocated = 0  # confirmations naming seqs never allocated (suspicious)

    def _counter(self, name: str) -> int:
        cur = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,))
        return int(cur.fetchone()[0])

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def on_put(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every successful put (the publisher wakes on it)."""
        self._listeners.append(listener)

    def allocate_seq(self) -> int:
        """A sequence number for a message that bypasses the outbox (the MQTT last will)."""
        seq = self._last_seq + 1
        with self._transaction():
            self._db.execute("UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,))
        self._last_seq = seq
        return seq

    def put(
        self,
        topic: str,
        make_payload: Callable[[int], bytes],
        *,
        is_event: bool,
        retain: bool = False,
    ) -> int:
        """Store one message; ``make_payload(seq)`` signs it with its sequence number."""
        seq = self._last_seq + 1
        payload = make_payload(seq)
        with self._transaction():
            self._db.execute(
                "INSERT INTO outbox (seq, topic, payload, is_event, retain, created_us) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, topic, payload, int(is_event), int(retain), self._clock_us()),
            )
            self._db.execute("UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,))
        self._last_seq = seq
        self.depth += 1
        self.bytes += len(payload)
        if self.bytes > self.max_bytes:
            with self._transaction():
                self._drop_oldest_telemetry()
        for listener in self._listeners:
            listener()
        return seq

    def _drop_oldest_telemetry(self) -> None:
        excess = self.bytes - self.max_bytes
        rows = self._db.execute(
            "SELECT seq, length(payload) FROM outbox WHERE is_event = 0 ORDER BY seq"
        )
        victims: list[int] = []
        freed = 0
        for seq, size in rows:
            if freed >= excess:
                break
            victims.append(seq)
            freed += size
        if not victims:
            return
        self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in victims])
        self.dropped_telemetry += len(victims)
        self._db.execute(
            "UPDATE counters SET value = ? WHERE name = 'dropped_telemetry'",
            (self.dropped_telemetry,),
        )
        self.depth -= len(victims)
        self.bytes -= freed

    def pending(self, *, after: int, up_to: int | None = None, limit: int) -> list[OutboxMessage]:
        """Unsent messages with ``after < seq <= up_to``, oldest first."""
        upper = self._last_seq if up_to is None else up_to
        rows = self._db.execute(
            "SELECT seq, topic, payload, is_event, retain FROM outbox "
            "WHERE sent_us IS NULL AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, upper, limit),
        )
        return [OutboxMessage(s, t, p, bool(e), bool(r)) for s, t, p, e, r in rows]

    def mark_sent(self, seqs: list[int]) -> None:
        if seqs:
            now = self._clock_us()
            with self._transaction():
                self._db.executemany("UPDATE outbox SET sent_us = ? WHERE seq = ?",
                                     [(now, s) for s in seqs])

    def mark_acked(self, seqs: list[int]) -> None:
        """The broker has these (PUBACK); keep them until the cloud confirms."""
        if seqs:
            with self._transaction():
                self._db.executemany("UPDATE outbox SET acked = 1 WHERE seq = ?",
                                     [(s,) for s in seqs])

    def confirm(self, ranges: list[tuple[int, int]]) -> int:
        """The cloud stored these: forget them. Returns how many rows went.

        Ranges are clamped to sequence numbers this outbox allocated: the cloud cannot have
        stored a message that was never written, so a range beyond them is counted as
        ``beyond_allocated`` and deletes nothing past the last allocated seq.
        """
        removed = 0
        with self._transaction():
            for first, wanted_last in ranges:
                last = min(wanted_last, self._last_seq)
                if last != wanted_last:
                    self.beyond_allocated += 1
                if first > last:
                    continue
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE seq BETWEEN ? AND ? RETURNING length(payload)",
                    (first, last),
                )
                sizes = [row[0] for row in cur.fetchall()]
                removed += len(sizes)
                self.depth -= len(sizes)
                self.bytes -= sum(sizes)
                self.max_confirmed = max(self.max_confirmed, last)
        return removed

    def resend_unacked(self) -> int:
        """After a lost connection: what the broker never acknowledged goes again."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE outbox SET sent_us = NULL WHERE acked = 0 AND sent_us IS NOT NULL"
            )
        return cur.rowcount

    def resend_lost(self, sent_before_us: int) -> int:
        """Acked long ago, unconfirmed although later messages were confirmed: lost in transit."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE outbox SET sent_us = NULL, acked = 0 "
                "WHERE acked = 1 AND seq < ? AND sent_us < ?",
                (self.max_confirmed, sent_before_us),
            )
        return cur.rowcount

    def resend_awaiting(self) -> int:
        """Everything acked but unconfirmed goes again (the cloud has confirmed nothing lately)."""
        with self._transaction():
            cur = self._db.execute("UPDATE outbox SET sent_us = NULL, acked = 0 WHERE acked = 1")
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        """Rows waiting to be sent, in flight to the broker, and awaiting the cloud."""
        row = self._db.execute(
            "SELECT count(*) FILTER (WHERE sent_us IS NULL), "
            "count(*) FILTER (WHERE sent_us IS NOT NULL AND acked = 0), "
            "count(*) FILTER (WHERE acked = 1) FROM outbox"
        ).fetchone()
        return {"unsent": row[0], "sent": row[1], "awaiting_confirmation": row[2]}

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
