"""The correlation engine on values: the default rules, windows, explanations, clearing."""

from __future__ import annotations

import pytest

from decisions.rules import Fact, RuleEngine, default_rules, load_rule_set

S = 1_000_000
T0 = 1_795_000_000 * S


def engine() -> RuleEngine:
    return RuleEngine(default_rules())


def departed(at: int, lot: str = "L1") -> Fact:
    return Fact("tags_departed", f"lot:{lot}", at, {"lot": lot, "tags": 12})


def test_departure_with_an_unauthorised_plate_is_theft_and_says_which_facts_fired() -> None:
    e = engine()
    assert e.feed(Fact("vehicle_unauthorised", "vehicle:ZZ999", T0, {"plate": "ZZ999"})) == []
    [d] = e.feed(departed(T0 + 40 * S))
    assert (d.action, d.alert_type, d.severity, d.subject) == (
        "raise", "theft.unreleased_departure", "critical", "lot:L1")
    assert "vehicle_unauthorised vehicle:ZZ999" in d.explanation
    assert "tags_departed lot:L1" in d.explanation
    assert [f.kind for f in d.facts] == ["vehicle_unauthorised", "tags_departed"]
    assert d.lot == "L1"


def test_a_supporting_fact_after_the_departure_still_correlates_once() -> None:
    e = engine()
    assert e.feed(departed(T0)) == []
    [d] = e.feed(Fact("door_opened_after_hours", "door:dock", T0 + 30 * S))
    assert d.alert_type == "theft.unreleased_departure"
    assert e.feed(Fact("vehicle_unauthorised", "vehicle:X", T0 + 60 * S)) == []  # fired once


def test_outside_the_window_nothing_correlates() -> None:
    e = engine()
    e.feed(Fact("vehicle_unauthorised", "vehicle:X", T0))
    assert e.feed(departed(T0 + 601 * S)) == []


def test_approved_release_with_authorised_vehicle_records_a_movement_and_no_alert() -> None:
    e = engine()
    e.feed(Fact("release_approved", "lot:L1", T0 - 3600 * S, {"lot": "L1", "vehicle": "AB123"}))
    e.feed(Fact("vehicle_authorised", "vehicle:AB123", T0))
    # The same departure with another, unknown truck at the gate: a release is in progress,
    # so it is not theft either (the unknown truck alone is the camera's alert).
    e.feed(Fact("vehicle_unauthorised", "vehicle:QQ1", T0 + S))
    decisions = e.feed(departed(T0 + 120 * S))
    assert [(d.action, d.rule) for d in decisions] == [("record", "release-pickup")]
    assert "release_approved lot:L1" in decisions[0].explanation


def test_release_of_another_lot_does_not_cover_this_one() -> None:
    e = engine()
    e.feed(Fact("release_approved", "lot:L2", T0 - 60 * S, {"lot": "L2"}))
    e.feed(Fact("vehicle_unauthorised", "vehicle:X", T0))
    assert [d.action for d in e.feed(departed(T0 + S, "L1"))] == ["raise"]


def test_reader_offline_raises_and_back_online_clears() -> None:
    e = engine()
    [d] = e.feed(Fact("reader_offline", "reader:dock-1", T0, {"reason": "unplugged"}))
    assert (d.action, d.alert_type) == ("raise", "tamper.reader_offline")
    assert "unknown, not missing" in d.explanation
    [c] = e.feed(Fact("reader_online", "reader:dock-1", T0 + 10 * S))
    assert (c.action, c.alert_type, c.subject) == ("clear", "tamper.reader_offline",
                                                   "reader:dock-1")


def test_history_remembered_does_not_fire_again() -> None:
    first = engine()
    unauthorised = Fact("vehicle_unauthorised", "vehicle:X", T0)
    dep = departed(T0 + S)
    first.feed(unauthorised)
    assert first.feed(dep)
    second = engine()
    second.remember([unauthorised, dep], [("theft-departure", dep)])
    assert second.feed(Fact("door_opened_after_hours", "door:d", T0 + 2 * S)) == []


def test_rule_sets_are_validated_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="alert_type"):
        load_rule_set({"version": 1, "rules": [
            {"name": "x", "trigger": "a", "explanation": "{subject}"}]})
    with pytest.raises(ValueError, match="placeholders"):
        load_rule_set({"version": 1, "rules": [
            {"name": "x", "trigger": "a", "alert_type": "theft.x", "explanation": "{lot}"}]})
    with pytest.raises(ValueError, match="extra"):
        load_rule_set({"version": 1, "rules": [
            {"name": "x", "trigger": "a", "alert_type": "theft.x", "explanation": "e",
             "windw_s": 3}]})


def test_a_site_rule_with_a_small_window() -> None:
    rules = load_rule_set({"version": 3, "rules": [{
        "name": "fast-theft", "trigger": "tags_departed", "window_s": 2,
        "any_of": [{"fact": "weight_dropped", "same_subject": True}],
        "alert_type": "theft.weight_and_tags", "severity": "critical",
        "explanation": "{subject}: {facts}"}]})
    e = RuleEngine(rules)
    e.feed(Fact("weight_dropped", "lot:L9", T0))
    assert e.feed(departed(T0 + 3 * S, "L9")) == []
    e.feed(Fact("weight_dropped", "lot:L8", T0 + 3 * S))
    assert e.feed(departed(T0 + 4 * S, "L9")) == []  # another lot's scale
    e.feed(Fact("weight_dropped", "lot:L9", T0 + 4 * S))
    assert len(e.feed(departed(T0 + 5 * S, "L9"))) == 1
