"""Threshold decisions about sensor readings, pure and with hysteresis.

Theory of operation. A ``RangeMonitor`` watches one quantity of one sensor against an allowed
range [low, high]:

    normal   --reading outside [low, high]------------------> pending (excursion starts)
    pending  --reading inside [low, high]-------------------> normal  (too short: nothing)
    pending  --outside for min_duration_s (reading time)----> alarmed, RAISE (once)
    alarmed  --reading inside [low + h, high - h]-----------> normal, CLEAR

so an excursion shorter than the allowed duration produces nothing, a longer one exactly one
alert, and a value hovering at a limit cannot flap (it has to come back by the hysteresis h).
Shock and tilt are the same monitor with only a ``high`` limit and no duration. Contacts
(doors against a schedule, electronic seals) and load cells are thin rules on top. Readings
older than the last one seen are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from contract import AlertBody
from contract.messages import Severity
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from geofences.schedule import Schedule

DOOR_OPEN_OUTSIDE_HOURS = AlertType.DOOR_OPEN_OUTSIDE_HOURS
SEAL_BROKEN = AlertType.SEAL_BROKEN
WEIGHT_DROP = AlertType.WEIGHT_DROP


@dataclass(frozen=True, slots=True)
class Reading:
    sensor: str
    quantity: str  # temperature, humidity, shock, tilt, door, seal, weight
    value: float  # contacts: 1.0 open, 0.0 closed
    t_us: int


@dataclass(frozen=True, slots=True)
class RangeRule:
    alert_type: str
    low: float | None = None
    high: float | None = None
    hysteresis: float = 0.0
    min_duration_s: float = 0.0
    severity: Severity = "major"
    unit: str = ""

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError(f"{self.alert_type}: a range needs low, high or both")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"{self.alert_type}: low {self.low} must be below high {self.high}")
        if self.hysteresis < 0 or self.min_duration_s < 0:
            raise ValueError(f"{self.alert_type}: hysteresis and duration must be >= 0")


class RangeMonitor:
    def __init__(self, rule: RangeRule, *, subject: str, lot: str | None = None) -> None:
        self.rule = rule
        self.subject = subject
        self.lot = lot
        self.state: Literal["normal", "pending", "alarmed"] = "normal"
        self._started_us = 0
        self._peak = 0.0
        self._last_us: int | None = None

    def _outside(self, value: float) -> bool:
        low, high = self.rule.low, self.rule.high
        return (low is not None and value < low) or (high is not None and value > high)

    def _recovered(self, value: float) -> bool:
        low, high, h = self.rule.low, self.rule.high, self.rule.hysteresis
        return (low is None or value >= low + h) and (high is None or value <= high - h)

    def _worse(self, value: float) -> bool:
        """Is value further from the allowed range than the peak so far?"""
        if self.rule.high is not None and value > self.rule.high:
            return value > self._peak
        return value < self._peak

    def feed(self, value: float, t_us: int) -> AlertBody | None:
        if not math.isfinite(value) or (self._last_us is not None and t_us <= self._last_us):
            return None
        self._last_us = t_us
        if self.state == "normal":
            if not self._outside(value):
                return None
            self.state, self._started_us, self._peak = "pending", t_us, value
        elif self.state == "pending":
            if not self._outside(value):
                self.state = "normal"
                return None
            if self._worse(value):
                self._peak = value
        elif self.state == "alarmed":
            if self._recovered(value):
                self.state = "normal"
                return self._alert("clear", value, t_us)
            return None
        if t_us - self._started_us >= int(self.rule.min_duration_s * 1e6):
            self.state = "alarmed"
            return self._alert("raise", value, t_us)
        return None

    def _alert(self, action: Literal["raise", "clear"], value: float, t_us: int) -> AlertBody:
        rule = self.rule
        low = "-inf" if rule.low is None else f"{rule.low:g}"
        high = "inf" if rule.high is None else f"{rule.high:g}"
        if action == "raise":
            text = alert_text(
                "sensor_range.raise", subject=self.subject,
                quantity=rule.alert_type.split(".")[1], low=low, high=high, unit=rule.unit,
                duration_s=f"{(t_us - self._started_us) / 1e6:.0f}", peak=f"{self._peak:g}")
        else:
            text = alert_text("sensor_range.clear", subject=self.subject, low=low, high=high,
                              unit=rule.unit, value=f"{value:g}")
        return text.alert(
            action=action,
            alert_type=rule.alert_type,
            subject=self.subject,
            severity=rule.severity,
            lot=self.lot,
            evidence={
                "value": value,
                "peak": self._peak,
                "excursion_started_us": self._started_us,
                "decided_at_us": t_us,
                "low": rule.low,
                "high": rule.high,
                "min_duration_s": rule.min_duration_s,
            },
        )


class DoorMonitor:
    """A door contact may only be open while the schedule is open."""

    def __init__(self, schedule: Schedule, *, subject: str, lot: str | None = None) -> None:
        self.schedule = schedule
        self.subject = subject
        self.lot = lot
        self._raised = False

    def feed(self, is_open: bool, t_us: int) -> AlertBody | None:
        if is_open and not self._raised and not self.schedule.is_open(t_us):
            self._raised = True
            return alert_text("door_open.raise", subject=self.subject).alert(
                action="raise",
                alert_type=DOOR_OPEN_OUTSIDE_HOURS,
                subject=self.subject,
                severity="critical",
                lot=self.lot,
                evidence={"opened_at_us": t_us, "timezone": self.schedule.timezone},
            )
        if not is_open and self._raised:
            self._raised = False
            return alert_text("door_open.clear", subject=self.subject).alert(
                action="clear",
                alert_type=DOOR_OPEN_OUTSIDE_HOURS,
                subject=self.subject,
                severity="critical",
                lot=self.lot,
                evidence={"closed_at_us": t_us},
            )
        return None


class SealMonitor:
    """An electronic seal: open (or cut) is a theft candidate until it reports closed again."""

    def __init__(self, *, subject: str, lot: str | None = None) -> None:
        self.subject = subject
        self.lot = lot
        self._broken = False

    def feed(self, is_open: bool, t_us: int) -> AlertBody | None:
        if is_open == self._broken:
            return None
        self._broken = is_open
        text = alert_text("seal_broken.raise" if is_open else "seal_broken.clear",
                          subject=self.subject)
        return text.alert(
            action="raise" if is_open else "clear",
            alert_type=SEAL_BROKEN,
            subject=self.subject,
            severity="critical",
            lot=self.lot,
            evidence={"at_us": t_us},
        )


class WeightWatch:
    """A load cell under a pledged stack: a drop beyond tolerance without a release.

    The expected weight is configured or taken from the first reading. While the lot's release
    is approved the watch follows the scale (goods may leave), so the weight left after a
    release becomes the new expectation.
    """

    def __init__(
        self,
        *,
        subject: str,
        lot: str | None,
        tolerance_kg: float,
        min_duration_s: float,
        hysteresis_kg: float = 0.0,
        expected_kg: float | None = None,
    ) -> None:
        self.subject = subject
        self.lot = lot
        self.tolerance_kg = tolerance_kg
        self.min_duration_s = min_duration_s
        self.hysteresis_kg = hysteresis_kg
        self.expected_kg = expected_kg
        self._monitor: RangeMonitor | None = None
        if expected_kg is not None:
            self._rebase(expected_kg)

    def _rebase(self, expected_kg: float) -> None:
        self.expected_kg = expected_kg
        rule = RangeRule(
            alert_type=WEIGHT_DROP,
            low=expected_kg - self.tolerance_kg,
            hysteresis=self.hysteresis_kg,
            min_duration_s=self.min_duration_s,
            severity="critical",
            unit=" kg",
        )
        previous = self._monitor
        self._monitor = RangeMonitor(rule, subject=self.subject, lot=self.lot)
        if previous is not None:
            self._monitor._last_us = previous._last_us

    def feed(self, kg: float, t_us: int, *, released: bool) -> AlertBody | None:
        if self._monitor is None or (released and self._monitor.state != "alarmed"):
            self._rebase(kg)
        if self._monitor is None:  # unreachable: rebased above
            return None
        return self._monitor.feed(kg, t_us)
