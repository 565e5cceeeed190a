"""How the cloud's alert rows of a raw-signal run read back as the world's outcome, and what the
world's judge then says: a door alert the cloud folded into a lot's incident is that incident's
evidence, not an alert of its own; a door alert nothing folded stands. Pure (rows as the API
returns them)."""

from __future__ import annotations

import json
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


# -- two sites, two financiers ----------------------------------------------------------------
def _hook(event: str, row: dict[str, Any]) -> tuple[float, dict[str, str], bytes]:
    return (0.0, {}, json.dumps({"type": event, "data": {"alert": row}}).encode())


def _two_sites(hooks_a: list[dict[str, Any]], hooks_b: list[dict[str, Any]]
               ) -> tuple[world_story.Story, list[RawRun]]:
    """same_names_two_sites as the cloud would hold it: each site's reader r1 offline (the
    same subject at both sites), lot B's theft at site B; ``hooks_*``: what each site's
    financier's endpoint received."""
    story = world_story.load_story("same_names_two_sites")
    reader, lot_b = f"reader:r1-{NAMES.run_id}", NAMES.lot_id("B")
    rows = [{**_row(1, "tamper.reader_offline", reader, _at(story, 310)), "site_id": "site-1"},
            {**_row(2, "tamper.reader_offline", reader, _at(story, 460)), "site_id": "site-2"},
            {**_row(3, "theft.unreleased_departure", f"lot:{lot_b}", _at(story, 1215),
                    lot=lot_b), "site_id": "site-2"}]
    runs = [RawRun(NAMES, story.sites[0].epoch_us, 0, rows, [_hook("alert.opened", r)
                                                           for r in hooks], [], 1800.0, 1.0,
                   site=site, financier=bank)
            for site, bank, hooks in (("site-1", "bank-a", hooks_a),
                                      ("site-2", "bank-b", hooks_b))]
    return story, runs


def test_the_same_reader_name_at_two_sites_is_two_alerts_and_a_theft_goes_to_its_pledgee(
) -> None:
    story, runs = _two_sites([], [])
    theft = runs[0].alerts[2]
    runs[1].webhooks.append(_hook("alert.opened", theft))
    verdict = judge(story, outcome(story, runs))
    assert verdict.passed, verdict.as_dict()
    assert verdict.found[-1] == "theft.* lot:B@site-b -> fin-b"


def test_a_webhook_to_the_other_site_s_financier_is_a_false_alarm() -> None:
    story, runs = _two_sites([], [])
    theft = runs[0].alerts[2]
    runs[0].webhooks.append(_hook("alert.opened", theft))  # site A's pledgee hears of B
    verdict = judge(story, outcome(story, runs))
    assert verdict.missing == ["theft.* lot:B@site-b -> fin-b: no webhook to fin-b"]
    assert verdict.forbidden_seen == [
        "alert.opened to fin-a: theft.unreleased_departure lot:B@site-b "
        "(site B's alerts are not site A's pledgee's)"]


def test_one_alert_shared_by_both_sites_misses_one_site() -> None:
    story, runs = _two_sites([], [])
    for run in runs:  # as before the site was in the active-alert key: one row for both
        run.alerts[:] = [a for a in run.alerts if a["id"] != 2]
    runs[1].webhooks.append(_hook("alert.opened", runs[0].alerts[1]))
    verdict = judge(story, outcome(story, runs))
    assert verdict.missing == ["tamper.reader_offline reader:r1@site-b: 0 alerts, not 1"]


def test_without_webhooks_the_value_level_runner_leaves_webhook_checks_unjudged() -> None:
    from firmware_sim.world.judge import run_story

    verdict, _ = run_story(world_story.load_story("same_names_two_sites"))
    assert verdict.passed, verdict.as_dict()
    assert verdict.unjudged == ["theft.* lot:B@site-b -> fin-b", "* *@site-b -> fin-a"]
