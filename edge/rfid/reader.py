"""The one interface every RFID reader adapter implements (the shape of ops/supervised.py).

An adapter owns its connection: ``async with Reader(config, on_health) as reader: async for
batch in reader.batches()``; it reconnects with backoff on its own (its session is supervised)
and yields batches of `TagObservation`s. Health changes (reader unreachable, back again) are
reported through `ReaderHealth` values so the presence logic can mark tags "unknown" instead of
"missing" while a reader is down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, Self

from contract import TagObservation
from ops.supervised import Health


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    reader_id: str
    online: bool
    reason: str
    at_us: int


HealthCallback = Callable[[ReaderHealth], None]


def reader_health(on_health: HealthCallback) -> Callable[[Health], None]:
    """The owner's health reports, in the reader's terms."""

    def report(health: Health) -> None:
        on_health(ReaderHealth(health.source, health.online, health.reason, health.at_us))

    return report


class TagReader(Protocol):
    reader_id: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def batches(self) -> AsyncIterator[list[TagObservation]]:
        """Batches of observations, for as long as the adapter runs (it reconnects itself)."""
        ...
