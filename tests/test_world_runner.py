"""The value-level runner: a world's raw signals through the edge's real decision objects on
the simulated clock, judged against a story's expectations."""

from __future__ import annotations

from firmware_sim.world import Story, World, load_story
from firmware_sim.world.judge import judge, run_story, summary
from firmware_sim.world.runner import run_worlds

US = 1_000_000
NIGHT = "2026-11-27T22:00:00"


def site(**over: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "start": NIGHT, "duration_s": 1200,
        "readers": [{"name": "r1", "rounds_per_s": 2, "report_interval_s": 2, "keepalive_s": 5,
                     "antennas": [{"port": 1, "zone": "pz-1"}]}],
        "lots": [{"name": "A", "pieces": 20, "at": ["r1/1"]}],
    }
    spec.update(over)
    return spec


def test_a_dead_reader_is_seen_by_its_silence_not_by_the_worlds_power_signal() -> None:
    w = World.model_validate(site(readers=[{
        "name": "r1", "report_interval_s": 2, "keepalive_s": 5,
        "antennas": [{"port": 1, "zone": "pz-1"}],
        "events": [{"at_s": 300, "power": "off"}, {"at_s": 600, "power": "on"}]}]))
    out = run_worlds([w], seed=1)
    [offline] = [a for a in out.alerts if a.alert_type == "tamper.reader_offline"]
    # The adapter's stale timer: 3 keepalive periods after the last report (at 300 s).
    assert 15 * US <= offline.decided_us - w.at_us(298) <= 17 * US
    assert offline.cleared_us is not None and offline.cleared_us >= w.at_us(600)


def test_nothing_moves_nothing_is_said() -> None:
    w = World.model_validate(site(duration_s=3600, interference=[
        {"at_s": 600, "for_s": 1200, "read_probability": 0.45}]))
    assert run_worlds([w], seed=3).alerts == []


def test_during_a_link_cut_the_gateways_alerts_reach_the_cloud_when_it_is_back() -> None:
    w = World.model_validate(site(
        link_cuts=[{"at_s": 300, "for_s": 400}],
        doors=[{"at_s": 400, "door": "dock-1", "open_s": 60}]))
    out = run_worlds([w], seed=1)
    [door] = [a for a in out.alerts if a.alert_type == "theft.door_open_outside_hours"]
    assert door.decided_us == w.at_us(400)
    assert door.raised_us == w.at_us(700)


def test_a_stolen_lot_is_named_and_its_neighbour_is_not() -> None:
    verdict, out = run_story(load_story("two_lots_one_reader"))
    subjects = {a.subject for a in out.alerts if a.alert_type.startswith("theft.")}
    assert "lot:B" in subjects and "lot:A" not in subjects
    assert verdict.time_to_alert_s["theft-b"] is not None


def test_the_judge_checks_counts_pieces_timing_and_clearing() -> None:
    story = Story.model_validate({
        "name": "cold", "sites": [{
            "start": NIGHT, "duration_s": 3600,
            "sensors": [{"name": "f1", "value": 4, "noise": 0, "period_s": 30, "low": 2,
                         "high": 8, "min_duration_s": 600,
                         "excursions": [{"at_s": 600, "for_s": 900, "value": 11}]}]}],
        "must": [{"alert_type": "damage.temperature", "subject": "sensor:f1", "count": 1,
                  "cleared": True}],
        "must_not": [{"alert_type": "theft.*"}]})
    verdict, out = run_story(story)
    assert verdict.passed, verdict.as_dict()
    data = story.model_dump()
    data["must"][0]["count"] = 2
    data["must_not"] = [{"alert_type": "damage.*"}]
    stricter = Story.model_validate(data)
    failed = judge(stricter, out)
    assert not failed.passed
    assert "1 alerts, not 2" in failed.missing[0]
    assert failed.forbidden_seen == ["damage.temperature sensor:f1@site-1"]
    assert summary([verdict, failed])["passed"] == 1


def test_a_short_excursion_is_no_alert_and_a_long_one_is_exactly_one() -> None:
    short, _ = run_story(load_story("cold_chain_short"))
    long, _ = run_story(load_story("cold_chain_long"))
    assert short.passed and long.passed


def test_alerts_are_kept_per_site() -> None:
    verdict, out = run_story(load_story("same_names_two_sites"))
    assert verdict.passed, verdict.as_dict()
    assert sorted(a.site for a in out.alerts if a.subject == "reader:r1") == [
        "site-a", "site-b"]
    assert [(a.site, a.subject) for a in out.alerts if a.alert_type.startswith("theft.")] == [
        ("site-b", "lot:B")]
