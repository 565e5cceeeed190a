"""Weekly opening windows ("mon-fri 07:00-19:00") in a site's time zone.

Used for a fence's active schedule and for door contacts that may only open in working hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?P<d0>[a-z]{3})(?:-(?P<d1>[a-z]{3}))?\s+(?P<h0>\d\d):(?P<m0>\d\d)-(?P<h1>\d\d):(?P<m1>\d\d)\s*$"
)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after local midnight
    end_min: int  # exclusive; may be below start_min for a window that crosses midnight

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start_min <= self.end_min:
            return weekday in self.days and self.start_min <= minute < self.end_min
        # Overnight window: the part after midnight belongs to the previous day's window.
        return (weekday in self.days and minute >= self.start_min) or (
            (weekday - 1) % 7 in self.days and minute < self.end_min
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    timezone: str
    windows: tuple[WeeklyWindow, ...]

    def is_open(self, t_us: int) -> bool:
        local = datetime.fromtimestamp(t_us / 1e6, UTC).astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return any(w.contains(local.weekday(), minute) for w in self.windows)


def parse_window(text: str) -> WeeklyWindow:
    match = _WINDOW.match(text.lower())
    if match is None:
        raise ValueError(f"schedule window {text!r} is not like 'mon-fri 07:00-19:00'")
    try:
        d0 = _DAYS.index(match["d0"])
        d1 = _DAYS.index(match["d1"]) if match["d1"] else d0
    except ValueError:
        raise ValueError(f"schedule window {text!r}: days are {', '.join(_DAYS)}") from None
    h0, m0, h1, m1 = (int(match[k]) for k in ("h0", "m0", "h1", "m1"))
    if h0 > 23 or h1 > 24 or m0 > 59 or m1 > 59 or (h1 == 24 and m1 != 0):
        raise ValueError(f"schedule window {text!r} has an impossible time of day")
    days = frozenset(range(d0, d1 + 1)) if d0 <= d1 else frozenset([*range(d0, 7), *range(d1 + 1)])
    return WeeklyWindow(days=days, start_min=h0 * 60 + m0, end_min=h1 * 60 + m1)


def parse_schedule(value: object) -> Schedule:
    """Parse ``{"timezone": "Asia/Shanghai", "open": ["mon-fri 07:00-19:00", ...]}``."""
    if not isinstance(value, dict) or set(value) - {"timezone", "open"} or "open" not in value:
        raise ValueError('schedule must be {"timezone": ..., "open": ["mon-fri 07:00-19:00"]}')
    timezone = value.get("timezone", "UTC")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"schedule timezone {timezone!r} is unknown") from None
    windows = value["open"]
    if not isinstance(windows, list) or not windows:
        raise ValueError("schedule 'open' must be a non-empty list of windows")
    return Schedule(timezone=str(timezone), windows=tuple(parse_window(str(w)) for w in windows))
