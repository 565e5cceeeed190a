"""At most once every so often, on the caller's time: how a camera spends a costly model."""

from __future__ import annotations


class Pacing:
    """True at most once every ``every_us`` of the time the caller gives (picture time, so a
    file or a simulated camera is paced as a live one). Pure: no clock of its own."""

    def __init__(self, *, every_us: int) -> None:
        self.every_us = every_us
        self._next_us: int | None = None

    def take(self, at_us: int) -> bool:
        """True (and spent until ``at_us + every_us``) if a call may run now."""
        if self._next_us is not None and at_us < self._next_us:
            return False
        self._next_us = at_us + self.every_us
        return True
