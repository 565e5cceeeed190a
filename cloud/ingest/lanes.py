"""Which messages ingest stores next, and which it may acknowledge: events go before bulk.

Theory of operation. Messages arrive numbered in arrival order, each in one of two lanes:
*events* (what alerts are made of: a departure, a plate, the edge's alert) and *bulk* (tag
reads, telemetry). Ingest stores each lane on its own connection, so an event never waits
behind the tag reads queued before it, nor inside their transaction, nor for one that is
being written (at 10,000 readings/s a batch of five tag-read messages takes three times as
long to store as the departure alone). An event batch closes once no event has come for
``burst_gap_s`` (a pallet's tags leave together, and one batch makes them one departure); a
bulk batch once it holds ``limit`` messages or its first message is ``window_s`` old, so bulk
is written in few, large transactions.

Reordering is safe because the cloud's state is ordered by observation time, not by when a row
was written (tag state and presence keep the latest observation; rules read facts by their
time), within one batch order never counted, and events keep their order among themselves.
What must stay in arrival order is the acknowledgement to the broker (MQTT's rule for
PUBACKs): :meth:`Lanes.committed` hands back only the messages every earlier arrival of which
is committed too, so an event stored ahead of the bulk before it is acknowledged right after
that bulk.

Pure: fed messages and clock values, no broker, no database, no sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Taken(Generic[T]):
    """A message in a batch, with its arrival number (what :meth:`Lanes.committed` needs)."""

    number: int
    message: T


class Lanes(Generic[T]):
    def __init__(self, *, limit: int, window_s: float, burst_gap_s: float) -> None:
        if limit < 1:
            raise ValueError("a batch holds at least one message")
        self.limit = limit
        self.window_s = window_s
        self.burst_gap_s = burst_gap_s
        self._events: deque[tuple[float, Taken[T]]] = deque()
        self._bulk: deque[tuple[float, Taken[T]]] = deque()
        self._arrived = 0
        # Taken but not yet acknowledged, by arrival number; and which of those are committed.
        self._unacked: dict[int, T] = {}
        self._committed: set[int] = set()
        self._next_ack = 0

    def __len__(self) -> int:
        """Messages waiting to be taken."""
        return len(self._events) + len(self._bulk)

    @property
    def unacknowledged(self) -> int:
        """Messages taken whose acknowledgement still waits (on their own commit or an
        earlier one)."""
        return len(self._unacked)

    def arrive(self, message: T, *, event: bool, at: float) -> None:
        taken = Taken(self._arrived, message)
        self._arrived += 1
        (self._events if event else self._bulk).append((at, taken))

    def next_events(self, now: float) -> list[Taken[T]] | float | None:
        """An event batch to store now; else the clock value at which one will be due (unless
        another event comes first); else None when no event waits."""
        if not self._events:
            return None
        first, last = self._events[0][0], self._events[-1][0]
        due = min(last + self.burst_gap_s, first + self.window_s)
        if len(self._events) >= self.limit or now >= due:
            return self._take(self._events)
        return due

    def next_bulk(self, now: float) -> list[Taken[T]] | float | None:
        """The same for bulk: due when full or when its first message is ``window_s`` old."""
        if not self._bulk:
            return None
        due = self._bulk[0][0] + self.window_s
        if len(self._bulk) >= self.limit or now >= due:
            return self._take(self._bulk)
        return due

    def _take(self, lane: deque[tuple[float, Taken[T]]]) -> list[Taken[T]]:
        batch = [lane.popleft()[1] for _ in range(min(self.limit, len(lane)))]
        for taken in batch:
            self._unacked[taken.number] = taken.message
        return batch

    def committed(self, batch: Iterable[Taken[T]]) -> list[T]:
        """Record ``batch`` as committed; returns what may be acknowledged now, in arrival
        order (possibly messages of earlier batches, possibly none of this one)."""
        for taken in batch:
            if taken.number in self._unacked:
                self._committed.add(taken.number)
        ready: list[T] = []
        while self._next_ack in self._committed:
            self._committed.remove(self._next_ack)
            ready.append(self._unacked.pop(self._next_ack))
            self._next_ack += 1
        return ready
