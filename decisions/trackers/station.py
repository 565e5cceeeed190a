"""Everything the gateway decides about trackers, without I/O: fixes in, messages out.

Fixes are buffered as they arrive and decided together at each ``flush`` (so fixes of one
tracker that arrive out of order within a flush are taken in fix-time order, and a delayed
batch upload is one batch). A flush yields the messages to emit: per tracker its positions
(telemetry), the geofence enter/exit/dwell events with the deciding fix, and theft and tamper
alerts. Fence updates from the cloud are decided by ``geofences.update`` and acknowledged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from contract import MessageType
from contract.messages import GeofenceEventBody, GeofencesAppliedBody, TrackerPositionsBody
from decisions.outgoing import Outgoing
from decisions.trackers.watch import TrackedAsset, TrackerWatch
from geofences.crossing import CrossingDetector, CrossingRules, Fix, GeofenceCrossing, carry_over
from geofences.fences import FenceSet
from geofences.update import decide_update

log = logging.getLogger(__name__)

_KIND_TYPE = {
    "geofence_enter": MessageType.GEOFENCE_ENTER,
    "geofence_exit": MessageType.GEOFENCE_EXIT,
    "geofence_dwell": MessageType.GEOFENCE_DWELL,
}


def fix_row(
    fix: Fix, battery_pct: int | None = None
) -> tuple[int, int, int, int | None, int | None]:
    return (
        fix.t_us,
        round(fix.lon * 1e7),
        round(fix.lat * 1e7),
        None if fix.accuracy_m is None else round(fix.accuracy_m * 100),
        battery_pct,
    )


class TrackerStation:
    def __init__(
        self,
        fences: FenceSet,
        assets: Sequence[TrackedAsset],
        *,
        rules: CrossingRules,
        source: str,
        started_us: int,
        silent_after_intervals: float = 3,
    ) -> None:
        self.site = fences.site
        self.detector = CrossingDetector(fences, rules)
        self.watch = TrackerWatch(
            assets, started_us=started_us, silent_after_intervals=silent_after_intervals
        )
        self._source = source
        self._pending: list[tuple[Fix, int | None]] = []
        self._reported_rejects: dict[str, int] = {}

    @property
    def fences(self) -> FenceSet:
        return self.detector.fences

    def add(self, fix: Fix, battery_pct: int | None, received_us: int) -> list[Outgoing]:
        self._pending.append((fix, battery_pct))
        return [(MessageType.ALERT, a) for a in self.watch.on_heard(fix.tracker, received_us)]

    def flush(self, now_us: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        pending, self._pending = self._pending, []
        if pending:
            fixes = [fix for fix, _ in pending]
            crossings = self.detector.feed(fixes)
            out += self._positions(pending)
            for crossing in crossings:
                out.append((_KIND_TYPE[crossing.kind], self._event(crossing)))
                out += [(MessageType.ALERT, a) for a in self.watch.on_crossing(crossing)]
        out += [(MessageType.ALERT, a) for a in self.watch.check_silence(now_us)]
        return out

    def _positions(self, pending: list[tuple[Fix, int | None]]) -> list[Outgoing]:
        by_tracker: dict[str, list[tuple[Fix, int | None]]] = defaultdict(list)
        for fix, battery in pending:
            by_tracker[fix.tracker].append((fix, battery))
        counts = self.detector.counts.as_dict()
        rejected = {
            reason: n - self._reported_rejects.get(reason, 0)
            for reason, n in counts.items()
            if reason != "accepted" and n - self._reported_rejects.get(reason, 0) > 0
        }
        self._reported_rejects = counts
        out: list[Outgoing] = []
        for i, (tracker, items) in enumerate(sorted(by_tracker.items())):
            items.sort(key=lambda item: item[0].t_us)
            for start in range(0, len(items), 5_000):
                body = TrackerPositionsBody(
                    tracker=tracker,
                    source=self._source,
                    fixes=[fix_row(f, b) for f, b in items[start : start + 5_000]],
                    # Rejections are counted for the station as a whole; report them once.
                    rejected=rejected if i == 0 and start == 0 else {},
                )
                out.append((MessageType.TRACKER_POSITIONS, body))
        return out

    def _event(self, crossing: GeofenceCrossing) -> GeofenceEventBody:
        fence = self.fences.by_id(crossing.fence_id)
        return GeofenceEventBody(
            tracker=crossing.tracker,
            fence=crossing.fence_id,
            fence_kind=fence.kind.value,
            lots=list(crossing.lots),
            fix=fix_row(crossing.fix),
            run_started_us=crossing.run_started_us,
            run_fixes=crossing.run_fixes,
            fences_version=self.fences.version,
        )

    def applied(self) -> Outgoing:
        return (
            MessageType.GEOFENCES_APPLIED,
            GeofencesAppliedBody(
                version=self.fences.version, state="applied", fences=len(self.fences.fences)
            ),
        )

    def update_fences(self, payload: bytes) -> Outgoing:
        decision = decide_update(payload, site=self.site, running_version=self.fences.version)
        if decision.fences is not None:
            self.detector = carry_over(self.detector, decision.fences)
            log.info("geofences applied", extra={"version": decision.version})
            return self.applied()
        if decision.state == "unchanged":
            return self.applied()
        log.warning(
            "geofence update refused",
            extra={"version": decision.version, "reason": decision.reason},
        )
        return (
            MessageType.GEOFENCES_APPLIED,
            GeofencesAppliedBody(
                version=decision.version,
                state="refused",
                fences=len(self.fences.fences),
                reason=decision.reason,
            ),
        )
