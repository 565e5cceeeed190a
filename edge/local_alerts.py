"""The gateway's own alert decisions, so an alarm exists even while the cloud is unreachable.

Pure: fed presence changes and reader health, returns ``AlertBody`` values to emit. One active
alert per (type, subject) is the cloud's rule too; here a lot whose missing set grows raises
again (the cloud counts the repeat) and a lot whose tags are all back clears it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from contract import AlertBody
from decisions.alert_types import AlertType
from edge.rfid.presence import PresenceChange
from edge.rfid.reader import ReaderHealth

TAG_MISSING = AlertType.TAG_MISSING
READER_OFFLINE = AlertType.READER_OFFLINE


@dataclass
class LocalAlerts:
    _missing: dict[str, dict[str, int | None]] = field(default_factory=dict)

    def on_presence(self, changes: Iterable[PresenceChange]) -> list[AlertBody]:
        touched: dict[str, bool] = {}  # lot -> did its missing set grow
        for change in changes:
            missing = self._missing.setdefault(change.lot, {})
            if change.state == "missing":
                grew = change.epc not in missing
                missing[change.epc] = change.last_seen_us
                touched[change.lot] = touched.get(change.lot, False) or grew
            elif change.epc in missing:
                del missing[change.epc]
                touched.setdefault(change.lot, False)
        alerts = []
        for lot, grew in touched.items():
            missing = self._missing[lot]
            if grew:
                alerts.append(self._tag_missing(lot, missing))
            elif not missing:
                alerts.append(
                    AlertBody(
                        action="clear",
                        alert_type=TAG_MISSING,
                        subject=f"lot:{lot}",
                        severity="critical",
                        lot=lot,
                        explanation=f"all tags of lot {lot} are read again",
                    )
                )
        return alerts

    def _tag_missing(self, lot: str, missing: dict[str, int | None]) -> AlertBody:
        epcs = sorted(missing)
        return AlertBody(
            action="raise",
            alert_type=TAG_MISSING,
            subject=f"lot:{lot}",
            severity="critical",
            lot=lot,
            explanation=(
                f"{len(epcs)} tag(s) of pledged lot {lot} not read for longer than the "
                "lot's absence window while their reader was online"
            ),
            evidence={"missing_epcs": epcs[:200], "missing_count": len(epcs),
                      "last_seen_us": {e: missing[e] for e in epcs[:200]}},
        )

    def on_reader_health(self, health: ReaderHealth) -> AlertBody:
        return AlertBody(
            action="clear" if health.online else "raise",
            alert_type=READER_OFFLINE,
            subject=f"reader:{health.reader_id}",
            severity="major",
            explanation=f"reader {health.reader_id} "
            + ("is back online" if health.online else f"went offline: {health.reason}"),
            evidence={"reason": health.reason, "at_us": health.at_us},
        )
