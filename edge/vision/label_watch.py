"""Labels that should be readable and are not: the ``damage.label_unreadable`` decision.

Theory of operation: the config names, per lot, where its label is in a stack camera's picture.
After each look at a label the caller reports ``read_ok`` with the time. A label unread for
``unreadable_after_us`` since its last good read (or since watching started) raises once; the
next good read clears. Pure: values and times in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from decisions.alert_types import AlertType

ALERT_TYPE = AlertType.LABEL_UNREADABLE


@dataclass(frozen=True, slots=True)
class LabelVerdict:
    lot: str
    action: Literal["raise", "clear"]
    last_read_us: int | None
    unread_for_us: int


class LabelWatch:
    def __init__(self, lots: list[str], *, unreadable_after_us: int, started_us: int) -> None:
        self.unreadable_after_us = unreadable_after_us
        self._started_us = started_us
        self._last_ok: dict[str, int | None] = dict.fromkeys(lots)
        self._raised: set[str] = set()

    def report(self, lot: str, read_ok: bool, now_us: int) -> LabelVerdict | None:
        if lot not in self._last_ok:
            raise KeyError(f"lot {lot!r} has no watched label")
        if read_ok:
            self._last_ok[lot] = now_us
            if lot in self._raised:
                self._raised.discard(lot)
                return LabelVerdict(lot, "clear", now_us, 0)
            return None
        last = self._last_ok[lot]
        unread_for = now_us - (last if last is not None else self._started_us)
        if unread_for >= self.unreadable_after_us and lot not in self._raised:
            self._raised.add(lot)
            return LabelVerdict(lot, "raise", last, unread_for)
        return None
