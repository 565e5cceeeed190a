"""Alarm bits of 0x0200 reports that matter for pledged goods, as alerts (pure).

An alert is raised when a watched bit appears, not repeated for every report. What happens
when the bit goes away depends on the bit. Bits of conditions the terminal measures (power,
antenna) stay set while the condition lasts, so their disappearance clears the alert. The theft
bits (28 illegal displacement, 31 illegal door open, 27 illegal ignition, 0 emergency...) are
latched by the terminal only until the platform answers (JT/T 808-2013 table 24: "cleared
after the response"): their disappearance says nothing about the goods, so a theft alert stays
open until a person resolves it. A theft bit that appears again after going away raises again
(the alerts module folds it into the open alert as a repeat).
"""

from __future__ import annotations

from contract import AlertBody
from contract.jt808 import Location
from contract.messages import Severity
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType

# alarm name (codec.ALARM_BITS) -> (alert type, severity)
WATCHED: dict[str, tuple[str, Severity]] = {
    "vehicle_stolen": (AlertType.TERMINAL_THEFT_ALARM, "critical"),
    "illegal_displacement": (AlertType.TERMINAL_THEFT_ALARM, "critical"),
    "illegal_ignition": (AlertType.TERMINAL_THEFT_ALARM, "critical"),
    "illegal_door_open": (AlertType.TERMINAL_THEFT_ALARM, "critical"),
    "emergency": (AlertType.TERMINAL_THEFT_ALARM, "critical"),
    "collision_warning": ("damage.shock", "major"),
    "rollover_warning": ("damage.shock", "major"),
    "gnss_antenna_disconnected": (AlertType.TERMINAL_TAMPER_ALARM, "major"),
    "main_power_off": (AlertType.TERMINAL_TAMPER_ALARM, "major"),
}
# Alert types that only a person (or other evidence) ends, never the terminal's bits.
LATCHED: frozenset[str] = frozenset({AlertType.TERMINAL_THEFT_ALARM})


class TerminalAlarms:
    def __init__(self) -> None:
        self._active: dict[tuple[str, str], frozenset[str]] = {}  # (tracker, type) -> alarms

    def on_location(self, tracker: str, location: Location, lot: str | None) -> list[AlertBody]:
        by_type: dict[str, set[str]] = {}
        severity: dict[str, Severity] = {}
        for alarm in location.alarms:
            if alarm in WATCHED:
                alert_type, sev = WATCHED[alarm]
                by_type.setdefault(alert_type, set()).add(alarm)
                severity[alert_type] = sev
        alerts = []
        for alert_type in sorted({t for t, _ in WATCHED.values()}):
            key = (tracker, alert_type)
            now = frozenset(by_type.get(alert_type, ()))
            before = self._active.get(key, frozenset())
            if now == before:
                continue
            self._active[key] = now
            if now - before:
                text = alert_text("terminal_alarm.raise", tracker=tracker,
                                  alarms=", ".join(sorted(now)))
                alerts.append(
                    text.alert(
                        action="raise",
                        alert_type=alert_type,
                        subject=f"tracker:{tracker}",
                        severity=severity[alert_type],
                        lot=lot,
                        evidence={
                            "alarms": sorted(now),
                            "fix_t_us": location.t_us,
                            "lon": location.lon,
                            "lat": location.lat,
                        },
                    )
                )
            elif not now and alert_type not in LATCHED:
                text = alert_text("terminal_alarm.clear", tracker=tracker,
                                  alarms=", ".join(sorted(before)))
                alerts.append(
                    text.alert(
                        action="clear",
                        alert_type=alert_type,
                        subject=f"tracker:{tracker}",
                        severity=WATCHED[next(iter(before))][1],
                        lot=lot,
                        evidence={"fix_t_us": location.t_us},
                    )
                )
        return alerts
