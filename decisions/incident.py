"""One incident, one alert: what a lot's departure incident is, and how its reports merge.

The facts that fire together when goods leave (tags departing, the gateway's own decision,
the cloud's release guard and rules, a door opened after hours, an unknown truck, the lot's
weight dropping) are one incident, one alert: ``theft.unreleased_departure`` on ``lot:<id>``
at its site (docs/alerts.md). Every source that reports it raises that one (site, type,
subject); :func:`merge_evidence` folds each report into what the alert already holds, so the
counts are the incident's (every tag that left since it began), never the last batch's, and
:func:`escalated` says whether a report is news a financier should hear (more tags gone).

Pure: values in, values out. The gateway (edge/alerting.py) and the cloud (cloud/alerts.py,
cloud/alerting/) both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decisions.alert_types import AlertType

INCIDENT = AlertType.UNRELEASED_DEPARTURE
# This many departed tags of one lot corroborate each other (the lot's count drops by more
# than one tag): such a departure is theft at once, on either side.
CORROBORATING_TAGS = 2
# Alerts on other subjects that are facts of an incident: standing when a lot's incident opens
# or grows, and seen in the FOLD_BEFORE_S before (the theft rule's window: the door opened,
# then the tags left), they are folded into it. A door or a truck that comes while an incident
# is open stands alone until the incident next grows: nothing ties it to one lot before that
# (two lots of a site can be robbed within minutes of each other).
FOLDED_TYPES = frozenset({AlertType.DOOR_OPEN_OUTSIDE_HOURS, AlertType.UNAUTHORISED_VEHICLE,
                          AlertType.WEIGHT_DROP})
FOLD_BEFORE_S = 600.0
MAX_EPCS = 200
MAX_FACTS = 50
MAX_RECEIPTS = 20


def departed_count(evidence: Mapping[str, Any] | None) -> int:
    incident = (evidence or {}).get("incident") or {}
    count = incident.get("departed_count", 0)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def merge_evidence(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The incident's evidence after ``new`` is reported on top of ``old`` (None: it opens).

    The newest report's other fields win (its message, its envelope); the incident's tags,
    facts and receipts are the union of all reports, its counts the largest reported.
    """
    if not old:
        return dict(new)
    merged = {**old, **new}
    before, now = old.get("incident") or {}, new.get("incident") or {}
    if before or now:
        epcs = sorted({e for e in [*_list(before.get("departed_epcs")),
                                   *_list(now.get("departed_epcs"))] if isinstance(e, str)})
        incident = {**before, **now}
        incident["departed_epcs"] = epcs[:MAX_EPCS]
        incident["departed_count"] = max(departed_count(old), departed_count(new), len(epcs))
        for key in ("released_count",):
            values = [v for v in (before.get(key), now.get(key)) if isinstance(v, int)]
            if values:
                incident[key] = max(values)
        kinds = [*_list(before.get("corroborated_by")), *_list(now.get("corroborated_by"))]
        incident["corroborated_by"] = sorted({k for k in kinds if isinstance(k, str)})
        if isinstance(before.get("since_us"), int):
            incident["since_us"] = before["since_us"]
        merged["incident"] = incident
    facts: dict[tuple[Any, ...], Any] = {}
    for fact in [*_list(old.get("facts")), *_list(new.get("facts"))]:
        if isinstance(fact, dict):
            facts.setdefault((fact.get("kind"), fact.get("subject"), fact.get("at_us")), fact)
    if facts:
        merged["facts"] = sorted(facts.values(), key=lambda f: (
            f.get("at_us") if isinstance(f.get("at_us"), int) else 0))[-MAX_FACTS:]
    receipts = {**(old.get("receipts") or {}), **(new.get("receipts") or {})}
    if receipts:
        merged["receipts"] = dict(sorted(receipts.items())[:MAX_RECEIPTS])
    return merged


def escalated(old: Mapping[str, Any] | None, merged: Mapping[str, Any]) -> bool:
    """Whether the merged incident is news: more tags gone than the alert already counted.
    An incident opened without a count (a rule's decision) that learns its count is not."""
    return old is not None and 0 < departed_count(old) < departed_count(merged)
