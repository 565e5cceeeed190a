"""The judge: from the alerts the system holds and the webhooks the receiver got, what a
scenario found, missed and wrongly raised, with timings; and precision and recall over a suite.
Pure: fed the API's alert rows, no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from firmware_sim.scenario.schema import Expected, LotSpec, RunNames


class Judged(Protocol):
    """What the judge reads of a scenario, conclusion-level (schema.Scenario) or raw-signal
    (raw_player.RawScenario)."""

    @property
    def name(self) -> str: ...
    @property
    def lots(self) -> Sequence[LotSpec]: ...
    @property
    def must(self) -> Sequence[Expected]: ...
    @property
    def must_not(self) -> Sequence[Expected]: ...


@dataclass
class Verdict:
    scenario: str
    found: list[str]
    missing: list[str]
    forbidden_seen: list[str]
    other: list[str]
    timings: list[dict[str, Any]]
    webhooks: int
    local_alarms: int
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.skipped is None and not self.missing and not self.forbidden_seen


def judge(sc: Judged, names: RunNames, alerts: list[dict[str, Any]], *, started: float,
          webhooks: list[tuple[float, dict[str, str], bytes]], local_alarms: int) -> Verdict:
    """``alerts``: the API's rows; ``started``: the run's start (Unix s); ``webhooks``: what the
    receiver got (time, headers, body); ``local_alarms``: how often the gateway's siren
    sounded."""
    ours = {f"lot:{names.lot_id(lot.id)}" for lot in sc.lots}
    logical = {f"lot:{names.lot_id(lot.id)}": f"lot:{lot.id}" for lot in sc.lots}
    seen = [a for a in alerts
            if datetime.fromisoformat(a["first_seen_at"]).timestamp() >= started - 1
            and not a["alert_type"].startswith("webhook.")]

    def matches(e: Expected, a: dict[str, Any]) -> bool:
        return a["alert_type"] == e.alert_type and (
            e.subject is None or a["subject"] == names.subject(e.subject))

    found = [f"{e.alert_type} {e.subject or '*'}" for e in sc.must
             if any(matches(e, a) for a in seen)]
    missing = [f"{e.alert_type} {e.subject or '*'}" for e in sc.must
               if not any(matches(e, a) for a in seen)]
    forbidden = [f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}"
                 for a in seen for e in sc.must_not if matches(e, a)]
    other = [f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}" for a in seen
             if not any(matches(e, a) for e in (*sc.must, *sc.must_not))
             and (a["subject"] in ours or a["lot_id"] is None)]
    hooks: dict[int, float] = {}
    for at, _headers, body in webhooks:
        alert = json.loads(body)["data"]["alert"]
        hooks.setdefault(alert["id"], at)
    timings = [{
        "alert": f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}",
        "first_seen_s": round(datetime.fromisoformat(a["first_seen_at"]).timestamp()
                              - started, 2),
        "count": a["count"], "state": a["state"],
        "webhook_s": round(hooks[a["id"]] - started, 2) if a["id"] in hooks else None,
    } for a in seen if a["subject"] in ours or a["lot_id"] is None
        or a["subject"].startswith(("vehicle:", "reader:", "sensor:", "door:", "tracker:",
                                      "camera:"))]
    return Verdict(sc.name, found, missing, forbidden, other, timings, len(webhooks),
                   local_alarms)


def summary(verdicts: list[Verdict]) -> dict[str, Any]:
    """Precision and recall over the suite: must alerts are the positives, must-nots the
    known negatives (an alert outside both lists is reported, not scored)."""
    tp = sum(len(v.found) for v in verdicts)
    fn = sum(len(v.missing) for v in verdicts)
    fp = sum(len(v.forbidden_seen) for v in verdicts)
    return {
        "scenarios": len(verdicts),
        "passed": sum(v.passed for v in verdicts),
        "skipped": [v.scenario for v in verdicts if v.skipped],
        "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
    }
