"""How the cloud's alert rows of a raw-signal run read back as the world's outcome, and what the
world's judge then says: a door alert the cloud folded into a lot's incident is that incident's
evidence, not an alert of its own; a door alert nothing folded stands. Pure (rows as the API
returns them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from firmware_sim.scenario.raw_player import RawRun
from firmware_sim.scenario.schema import RunNames
from firmware_sim.scenario.stories import outcome
from firmware_sim.world import story as world_story
from firmware_sim.world.judge import judge

NAMES = RunNames("abc123")


def _row(id_: int, alert_type: str, subject: str, at: datetime, *, lot: str | None = None,
         resolved_by: str | None = None, evidence: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    return {"id": id_, "alert_type": alert_type, "subject": subject, "lot_id": lot,
            "state": "resolved" if resolved_by else "open", "resolved_by": resolved_by,
            "first_seen_at": at.isoformat(), "last_seen_at": at.isoformat(), "count": 1,
            "explanation": "", "evidence": evidence or {}, "rule": None}


def _run(story: world_story.Story, rows: list[dict[str, Any]]) -> RawRun:
    return RawRun(NAMES, story.sites[0].epoch_us, 0, rows, [], [], 14400.0, 1.0)


def _at(story: world_story.Story, s: float) -> datetime:
    return datetime.fromtimestamp(story.sites[0].epoch_us / 1e6, UTC) + timedelta(seconds=s)


def test_doors_the_cloud_folded_into_the_lot_s_incident_are_its_evidence_not_alerts() -> None:
    story = world_story.load_story("slow_bleed_night")
    lot, door = NAMES.lot_id("A"), f"sensor:dock-1-{NAMES.run_id}"
    incident = _row(7, "theft.unreleased_departure", f"lot:{lot}", _at(story, 3646), lot=lot,
                    evidence={"incident": {"departed_count": 40}})
    doors = [_row(10 + k, "theft.door_open_outside_hours", door, _at(story, 3570 + 1800 * k),
                  resolved_by="incident:7") for k in range(5)]
    result = outcome(story, _run(story, [incident, *doors]))
    assert [a.folded_into for a in result.alerts if a.subject == "door:dock-1"] == [
        "lot:A"] * 5
    verdict = judge(story, result)
    assert verdict.passed, verdict.as_dict()


def test_a_door_resolved_by_anything_but_an_incident_stands_as_its_own_alert() -> None:
    story = world_story.load_story("slow_bleed_night")
    lot, door = NAMES.lot_id("A"), f"sensor:dock-1-{NAMES.run_id}"
    incident = _row(7, "theft.unreleased_departure", f"lot:{lot}", _at(story, 3646), lot=lot,
                    evidence={"incident": {"departed_count": 40}})
    closed = _row(8, "theft.door_open_outside_hours", door, _at(story, 3570),
                  resolved_by="gateway:raw-abc123")  # the door closed: not the incident's
    verdict = judge(story, outcome(story, _run(story, [incident, closed])))
    assert not verdict.passed
    assert verdict.forbidden_seen == [
        "theft.door_open_outside_hours door:dock-1@wh-1 (the door is evidence in the lot's "
        "incident)"]


def test_a_door_opened_at_night_with_nothing_leaving_is_its_own_alert() -> None:
    story = world_story.load_story("door_at_night_no_theft")
    door = f"sensor:dock-1-{NAMES.run_id}"
    rows = [_row(3, "theft.door_open_outside_hours", door, _at(story, 7200),
                 resolved_by="gateway:raw-abc123")]
    result = outcome(story, _run(story, rows))
    assert [(a.subject, a.folded_into) for a in result.alerts] == [("door:dock-1", None)]
    assert judge(story, result).passed
