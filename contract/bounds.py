"""Ranges every number on the wire must fall in, so no sender can choose an overflow.

Times are microseconds since the Unix epoch (UTC). The range is wide enough for any real
observation and narrow enough that every value converts to a PostgreSQL ``timestamptz`` and a
Python ``datetime`` (a value of 2**62 raised "year out of range" deep inside ingest).
Whether a time is *plausible* (not in the future beyond the clock-skew window, not before the
gateway was registered) is a separate decision, taken where a clock is known.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

TIME_US_MIN = 946_684_800_000_000  # 2000-01-01T00:00:00Z
TIME_US_MAX = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

TimeUs = Annotated[int, Field(ge=TIME_US_MIN, le=TIME_US_MAX)]
"""A time on the wire: microseconds since the Unix epoch, 2000-01-01 to 2100-01-01."""


def time_us_in_range(value: int) -> bool:
    return TIME_US_MIN <= value <= TIME_US_MAX
