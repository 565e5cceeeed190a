"""The one interface every RFID reader adapter implements (the shape of ops/supervised.py).

An adapter owns its connection: ``async with Reader(config, on_health) as reader: async for
batch in reader.batches()``; it reconnects with backoff on its own (its session is supervised)
and yields batches of `TagObservation`s. Health changes (reader unreachable, back again) are
reported through `ReaderHealth` values so the presence logic can mark tags "unknown" instead of
"missing" while a reader is down; completed read cycles through `ReaderCycle` values (the
``on_cycle`` callback), the proof presence needs before it calls a silent tag missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from contract import TagObservation
from ops.supervised import Health


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    reader_id: str
    online: bool
    reason: str
    at_us: int


@dataclass(frozen=True, slots=True)
class ReaderCycle:
    """A reader completed an inventory round on ``antennas`` at ``at_us`` (gateway clock),
    whether or not any tag answered: the proof that it was alive and reading (presence.py). An
    empty tuple, or one holding 0, means all its antennas."""

    reader_id: str
    antennas: tuple[int, ...]
    at_us: int


HealthCallback = Callable[[ReaderHealth], None]
CycleCallback = Callable[[ReaderCycle], None]


def reader_health(on_health: HealthCallback) -> Callable[[Health], None]:
    """The owner's health reports, in the reader's terms."""

    def report(health: Health) -> None:
        on_health(ReaderHealth(health.source, health.online, health.reason, health.at_us))

    return report


class TagReader(Protocol):
    reader_id: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def batches(self) -> AsyncIterator[list[TagObservation]]:
        """Batches of observations, for as long as the adapter runs (it reconnects itself)."""
        ...


class CyclesFromReads:
    """Read cycles for a reader whose interface reports none (Impinj IoT, Zebra IoT Connector):
    a report of any tag proves the reader was reading then. At most one cycle per
    ``min_cycle_s`` is counted, since reads close together share their RF conditions (a
    chunk of the stream is not a round), and a cycle is never dated after it was received
    (reader clocks are untrusted)."""

    def __init__(self, reader_id: str, antennas: tuple[int, ...], min_cycle_s: float) -> None:
        self.reader_id = reader_id
        self.antennas = antennas
        self._min_us = int(min_cycle_s * 1_000_000)
        self._last_us: int | None = None

    def seen(self, batch: list[TagObservation], received_us: int) -> ReaderCycle | None:
        if not batch:
            return None
        at_us = min(max(o.observed_at_us for o in batch), received_us)
        if self._last_us is not None and at_us - self._last_us < self._min_us:
            return None
        self._last_us = at_us
        return ReaderCycle(self.reader_id, self.antennas, at_us)
