"""The one interface every sensor adapter has: an async iterator of ``Reading`` values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

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
    def readings(self) -> AsyncIterator[Reading]:
        """Readings as they arrive; reconnects are the adapter's business."""
        ...
