"""Does an alert's condition still hold? Values in, the reason out (no I/O).

A supervisor may not resolve an alert whose cause is still there: the lot's tags still missing,
the tracker still outside its fence, the temperature still out of range, the reader or gateway
still offline. The cloud gathers what it knows now into a ``ConditionNow`` and asks here; a
reason (a sentence for the supervisor) means "refuse the resolve", None means "it may close".
An alert type this module does not know, or a fact the cloud could not find, never blocks:
refusing on ignorance would leave an alert that nobody can close.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from decisions.alert_types import AlertType


@dataclass(frozen=True)
class SensorValue:
    """The latest reading of the quantity the alert is about, and the alert's allowed range."""

    value: float
    low: float | None
    high: float | None
    unit: str = ""


@dataclass(frozen=True)
class ConditionNow:
    """What the cloud knows now about the alert's subject; None: not known."""

    missing_epcs: tuple[str, ...] = field(default=())
    tracker_outside: str | None = None  # the fence the tracker is outside of, if it is
    sensor: SensorValue | None = None
    reader_online: bool | None = None
    gateway_online: bool | None = None


# A shock is a moment, not a state: once felt there is nothing left to clear.
_RANGE_TYPES = frozenset({AlertType.TEMPERATURE, AlertType.HUMIDITY})


def still_holds(alert_type: str, subject: str, now: ConditionNow) -> str | None:
    """Why the alert cannot be resolved yet, or None when its condition has cleared."""
    if alert_type == AlertType.TAG_MISSING:
        if now.missing_epcs:
            shown = ", ".join(now.missing_epcs[:5])
            more = f" and {len(now.missing_epcs) - 5} more" if len(now.missing_epcs) > 5 else ""
            return (f"{len(now.missing_epcs)} tag(s) of {subject} are still missing "
                    f"({shown}{more})")
        return None
    if alert_type == AlertType.GEOFENCE_EXIT:
        if now.tracker_outside is not None:
            return f"{subject} is still outside fence {now.tracker_outside}"
        return None
    if alert_type in _RANGE_TYPES and now.sensor is not None:
        s = now.sensor
        if (s.low is not None and s.value < s.low) or (s.high is not None and s.value > s.high):
            low = "-inf" if s.low is None else f"{s.low:g}"
            high = "inf" if s.high is None else f"{s.high:g}"
            return (f"{subject} still reads {s.value:g}{s.unit}, outside "
                    f"[{low}, {high}]{s.unit}")
        return None
    if alert_type == AlertType.READER_OFFLINE and now.reader_online is False:
        return f"{subject} is still offline"
    if alert_type == AlertType.GATEWAY_OFFLINE and now.gateway_online is False:
        return f"{subject} is still offline"
    return None
