"""The one interface every RFID reader adapter implements.

An adapter owns its connection: it is an async context manager, reconnects with backoff on its
own, and yields batches of `TagObservation`s. Health changes (reader unreachable, back again)
are reported through `ReaderHealth` values so the presence logic can mark tags "unknown"
instead of "missing" while a reader is down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from contract import TagObservation


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    reader_id: str
    online: bool
    reason: str
    at_us: int


HealthCallback = Callable[[ReaderHealth], None]


class TagReader(Protocol):
    reader_id: str

    async def __aenter__(self) -> TagReader: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def observations(self) -> AsyncIterator[list[TagObservation]]:
        """Batches of observations, for as long as the adapter runs (it reconnects itself)."""
        ...
