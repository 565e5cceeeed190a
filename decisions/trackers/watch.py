"""Theft and tamper decisions about tracked assets (pure: crossings and times in, alerts out).

- ``theft.geofence_exit``: a tracker bound to a pledged lot leaves a fence that guards that
  lot while the lot is not released. Cleared when the tracker is back inside that fence.
- ``tamper.tracker_silent``: nothing heard from a tracker for ``silent_after_intervals`` of its
  reporting interval (measured on the gateway's clock when messages arrive, so a tracker that
  uploads late batches is not silent). Cleared by the next message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contract import AlertBody
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from geofences.crossing import GeofenceCrossing

GEOFENCE_EXIT = AlertType.GEOFENCE_EXIT
TRACKER_SILENT = AlertType.TRACKER_SILENT


@dataclass(frozen=True, slots=True)
class TrackedAsset:
    tracker: str
    lot: str | None
    report_interval_s: float


class TrackerWatch:
    def __init__(
        self, assets: Sequence[TrackedAsset], *, started_us: int, silent_after_intervals: float = 3
    ) -> None:
        self._assets = {a.tracker: a for a in assets}
        self._silent_after = silent_after_intervals
        self._heard_us: dict[str, int] = {a.tracker: started_us for a in assets}
        self._silent: set[str] = set()
        self._outside: set[tuple[str, str]] = set()  # (tracker, fence) with a raised exit
        self.released: set[str] = set()

    def set_released(self, lots: Iterable[str]) -> None:
        self.released = set(lots)

    def on_crossing(self, crossing: GeofenceCrossing) -> list[AlertBody]:
        asset = self._assets.get(crossing.tracker)
        if asset is None or asset.lot is None or asset.lot not in crossing.lots:
            return []
        key = (crossing.tracker, crossing.fence_id)
        fix = crossing.fix
        evidence = {
            "fence": crossing.fence_id,
            "fix": {"t_us": fix.t_us, "lon": fix.lon, "lat": fix.lat, "acc_m": fix.accuracy_m},
            "run_started_us": crossing.run_started_us,
            "run_fixes": crossing.run_fixes,
        }
        if crossing.kind == "geofence_exit" and asset.lot not in self.released:
            self._outside.add(key)
            text = alert_text("geofence_exit.raise", tracker=crossing.tracker, lot=asset.lot,
                              fence=crossing.fence_id)
            return [
                text.alert(
                    action="raise",
                    alert_type=GEOFENCE_EXIT,
                    subject=f"tracker:{crossing.tracker}",
                    severity="critical",
                    lot=asset.lot,
                    evidence=evidence,
                )
            ]
        if crossing.kind == "geofence_enter" and key in self._outside:
            self._outside.discard(key)
            text = alert_text("geofence_exit.clear", tracker=crossing.tracker,
                              fence=crossing.fence_id)
            return [
                text.alert(
                    action="clear",
                    alert_type=GEOFENCE_EXIT,
                    subject=f"tracker:{crossing.tracker}",
                    severity="critical",
                    lot=asset.lot,
                    evidence=evidence,
                )
            ]
        return []

    def on_heard(self, tracker: str, received_us: int) -> list[AlertBody]:
        self._heard_us[tracker] = max(received_us, self._heard_us.get(tracker, received_us))
        if tracker not in self._silent:
            return []
        self._silent.discard(tracker)
        asset = self._assets.get(tracker)
        text = alert_text("tracker_silent.clear", tracker=tracker)
        return [
            text.alert(
                action="clear",
                alert_type=TRACKER_SILENT,
                subject=f"tracker:{tracker}",
                severity="major",
                lot=asset.lot if asset else None,
            )
        ]

    def check_silence(self, now_us: int) -> list[AlertBody]:
        alerts = []
        for tracker, asset in self._assets.items():
            heard = self._heard_us[tracker]
            limit_us = int(asset.report_interval_s * self._silent_after * 1e6)
            if tracker in self._silent or now_us - heard <= limit_us:
                continue
            self._silent.add(tracker)
            text = alert_text("tracker_silent.raise", tracker=tracker,
                              silent_s=f"{(now_us - heard) / 1e6:.0f}",
                              interval_s=f"{asset.report_interval_s:.0f}")
            alerts.append(
                text.alert(
                    action="raise",
                    alert_type=TRACKER_SILENT,
                    subject=f"tracker:{tracker}",
                    severity="major",
                    lot=asset.lot,
                    evidence={"last_heard_us": heard, "report_interval_s": asset.report_interval_s},
                )
            )
        return alerts
