"""The scenario judge on values: the API's alert rows and the receiver's webhooks become what a
scenario found, missed and wrongly raised, with timings (no system running)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from firmware_sim.scenario import RunNames, Scenario, judge, summary

STARTED = datetime(2026, 11, 27, 22, 0, tzinfo=UTC).timestamp()
NAMES = RunNames(run_id="abc123")
SCENARIO = Scenario.model_validate({
    "name": "night_theft", "lots": [{"id": "L1"}], "steps": [],
    "must": [{"alert_type": "theft.unreleased_departure", "subject": "lot:L1"},
             {"alert_type": "theft.unauthorized_vehicle", "subject": "vehicle:ZZ99999"}],
    "must_not": [{"alert_type": "tamper.reader_offline"}],
})


def _row(alert_id: int, alert_type: str, subject: str, after_s: float,
         lot: str | None = None) -> dict[str, Any]:
    at = datetime.fromtimestamp(STARTED + after_s, UTC).isoformat()
    return {"id": alert_id, "alert_type": alert_type, "subject": subject, "first_seen_at": at,
            "count": 1, "state": "open", "lot_id": lot}


def test_found_missing_forbidden_and_timings_under_the_run_s_names() -> None:
    rows = [
        _row(1, "theft.unreleased_departure", "lot:L1-abc123", 1.25, lot="L1-abc123"),
        _row(2, "tamper.reader_offline", "reader:dock-1", 0.5),
        _row(3, "theft.unreleased_departure", "lot:L1-zzz999", -30, lot="L1-zzz999"),  # earlier
        _row(4, "webhook.endpoint_disabled", "endpoint:1", 2),
    ]
    hook = json.dumps({"data": {"alert": {"id": 1}}}).encode()
    verdict = judge(SCENARIO, NAMES, rows, started=STARTED,
                    webhooks=[(STARTED + 1.5, {}, hook)], local_alarms=0)
    assert verdict.found == ["theft.unreleased_departure lot:L1"]
    assert verdict.missing == ["theft.unauthorized_vehicle vehicle:ZZ99999"]
    assert verdict.forbidden_seen == ["tamper.reader_offline reader:dock-1"]
    assert not verdict.passed
    theft = next(t for t in verdict.timings if t["alert"] == "theft.unreleased_departure lot:L1")
    assert (theft["first_seen_s"], theft["webhook_s"]) == (1.25, 1.5)
    assert verdict.webhooks == 1


def test_summary_scores_must_as_positives_and_must_not_as_negatives() -> None:
    good = judge(SCENARIO, NAMES, [
        _row(1, "theft.unreleased_departure", "lot:L1-abc123", 1, lot="L1-abc123"),
        _row(2, "theft.unauthorized_vehicle", "vehicle:ZZ99999", 1)],
        started=STARTED, webhooks=[], local_alarms=0)
    bad = judge(SCENARIO, NAMES, [_row(3, "tamper.reader_offline", "reader:r", 1)],
                started=STARTED, webhooks=[], local_alarms=0)
    assert good.passed
    assert summary([good, bad]) == {"scenarios": 2, "passed": 1, "skipped": [],
                                    "precision": round(2 / 3, 3), "recall": 0.5}
