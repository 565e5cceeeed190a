"""The one shape every sensor adapter has (ops/supervised.py): batches of ``Reading`` values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

from edge.sensors.decisions import Reading

# How quantities are read from devices and sent on the wire: name -> unit.
QUANTITY_UNITS: dict[str, str] = {
    "temperature": "degC",
    "humidity": "%RH",
    "shock": "g",
    "tilt": "deg",
    "door": "open",
    "seal": "open",
    "weight": "kg",
}
CONTACT_QUANTITIES = frozenset({"door", "seal"})


class SensorSource(Protocol):
    """``async with source: async for batch in source.batches()``; reconnects are its own."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def batches(self) -> AsyncIterator[list[Reading]]:
        """Batches of readings as they arrive, for as long as the source runs."""
        ...
