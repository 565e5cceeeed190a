"""A device message that is not a read, a fix or a reading: what every device decoder raises."""

from __future__ import annotations


class DeviceInputRefused(ValueError):
    """A device message that is not a read; ``reason`` is the counter's code for it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
