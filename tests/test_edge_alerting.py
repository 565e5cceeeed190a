"""The gateway's one alerting stage, fed values (no I/O): presence changes become one departure
incident per lot (release-aware, corroborated or after the lot's absence window, counted over
the whole incident, cleared only by reads), reader health becomes reader-offline alerts;
emitted facts run the correlation rules, which speak (and sound the siren) only while the
cloud is unreachable, judged against the gate list and the releases the cloud last sent."""

from __future__ import annotations

import json
from datetime import time

import pytest

from contract import AlertBody, MessageType, PresenceChangeBody
from contract.messages import PlateReadBody, PresenceState
from decisions.alert_types import AlertType
from decisions.rules import default_rules, load_rule_set
from decisions.vehicles import (
    AuthorisedVehicle,
    AuthorisedVehicles,
    Release,
    ReleasePlan,
    TimeWindow,
)
from edge.alerting import READER_OFFLINE, EdgeAlerting, Verdict
from edge.rfid.presence import PresenceChange
from edge.rfid.reader import ReaderHealth
from edge.trackers.releases import parse_release_plan, parse_releases

T0_US = 1_764_136_000_000_000  # Wed 2025-11-26 05:46:40 UTC
THEFT = AlertType.UNRELEASED_DEPARTURE


S = 1_000_000


def _gone(*epcs: str, at_us: int = T0_US, lot: str = "LOT-A") -> list[PresenceChange]:
    return [PresenceChange(lot=lot, epc=e, state="missing", previous="present",
                           last_seen_us=at_us - 30 * S, reader="r1", at_us=at_us) for e in epcs]


def _read(*epcs: str, at_us: int, previous: PresenceState = "missing", lot: str = "LOT-A"
          ) -> list[PresenceChange]:
    return [PresenceChange(lot=lot, epc=e, state="present", previous=previous,
                           last_seen_us=at_us, reader="r1", at_us=at_us) for e in epcs]


def _epcs(n: int, start: int = 0) -> list[str]:
    return [f"E{i:04d}" for i in range(start, start + n)]


def _observe(alerting: EdgeAlerting, changes: list[PresenceChange], *,
             reachable: bool = True) -> Verdict:
    return alerting.on_observed(changes, cloud_reachable=reachable)


def test_an_uncorroborated_absence_is_theft_only_after_the_lots_absence_window() -> None:
    alerting = EdgeAlerting(None, absence_window_s=300, absence_windows={"LOT-B": 60})
    assert _observe(alerting, _gone("E1")).alerts == []
    assert alerting.tick(T0_US + 299 * S, cloud_reachable=True).alerts == []
    [theft] = alerting.tick(T0_US + 300 * S, cloud_reachable=True).alerts
    assert (theft.action, theft.alert_type, theft.subject, theft.lot, theft.severity) == (
        "raise", THEFT, "lot:LOT-A", "LOT-A", "critical")
    assert theft.evidence["incident"]["departed_count"] == 1
    assert "absence window of 300 s" in theft.explanation
    assert alerting.tick(T0_US + 900 * S, cloud_reachable=True).alerts == []  # once
    # The window is the lot's own setting.
    _observe(alerting, _gone("F1", lot="LOT-B"))
    assert [a.subject for a in alerting.tick(T0_US + 60 * S, cloud_reachable=True).alerts] == [
        "lot:LOT-B"]


def test_other_tags_of_the_lot_leaving_corroborate_at_once() -> None:
    alerting = EdgeAlerting(None)
    [theft] = _observe(alerting, _gone("E1", "E2")).alerts
    assert theft.evidence["incident"]["departed_count"] == 2
    assert "tags_departed" in theft.explanation


def test_a_door_after_hours_or_an_unknown_truck_corroborates_one_tag() -> None:
    door = AlertBody(action="raise", alert_type=AlertType.DOOR_OPEN_OUTSIDE_HOURS,
                     subject="door:dock-1", severity="major", explanation="door")
    alerting = EdgeAlerting(None)
    alerting.on_emitted(MessageType.ALERT, door, T0_US - 20 * S, cloud_reachable=True)
    [theft] = _observe(alerting, _gone("E1")).alerts
    assert "door_opened_after_hours door:dock-1" in theft.explanation
    # A truck seen after the tag left still corroborates it (no gate list: no fact).
    alerting = EdgeAlerting(None, gate_list=_gate(AuthorisedVehicle(plate="沪A99999")))
    assert _observe(alerting, _gone("E1")).alerts == []
    late = alerting.on_emitted(MessageType.PLATE_READ, _plate("沪A12345"), T0_US + 5 * S,
                               cloud_reachable=True)
    assert [a.alert_type for a in late.alerts] == [THEFT]
    assert "vehicle_unauthorised" in late.alerts[0].explanation
    # A door long before the departure proves nothing about it.
    alerting = EdgeAlerting(None)
    alerting.on_emitted(MessageType.ALERT, door, T0_US - 3600 * S, cloud_reachable=True)
    assert _observe(alerting, _gone("E1")).alerts == []


def test_the_incident_counts_every_tag_since_it_began_not_the_last_batch() -> None:
    # 8 tags every 30 minutes, 01:00-03:00: one incident, raised once and updated as it grows.
    alerting = EdgeAlerting(None)
    counts = []
    for k in range(5):
        verdict = _observe(alerting, _gone(*_epcs(8, 8 * k), at_us=T0_US + k * 1800 * S))
        counts += [(a.action, a.evidence["incident"]["departed_count"]) for a in verdict.alerts]
    assert counts == [("raise", 8), ("raise", 16), ("raise", 24), ("raise", 32), ("raise", 40)]
    assert {a.subject for a in [*alerting.on_presence([])]} == set()
    # The same tags reported again change nothing.
    assert _observe(alerting, _gone("E0001", at_us=T0_US + 9000 * S)).alerts == []


def test_only_reads_clear_the_incident_and_missing_then_unknown_is_no_return() -> None:
    alerting = EdgeAlerting(None)
    _observe(alerting, _gone("E1", "E2"), reachable=False)
    went_unknown = [PresenceChange(lot="LOT-A", epc="E1", state="unknown", previous="missing",
                                   last_seen_us=None, reader="r1", at_us=T0_US + S)]
    assert _observe(alerting, went_unknown).alerts == []
    assert _observe(alerting, _read("E1", at_us=T0_US + 2 * S, previous="unknown")).alerts == []
    cleared = _observe(alerting, _read("E2", at_us=T0_US + 3 * S))
    assert [(a.action, a.alert_type, a.subject) for a in cleared.alerts] == [
        ("clear", THEFT, "lot:LOT-A")]
    assert [(a.on, a.subject) for a in cleared.alarms] == [(False, "lot:LOT-A")]
    # A departure that never became theft clears silently.
    _observe(alerting, _gone("E9"))
    assert _observe(alerting, _read("E9", at_us=T0_US + 4 * S)).alerts == []
    assert alerting.tick(T0_US + 3600 * S, cloud_reachable=True).alerts == []


def test_unknown_is_not_missing() -> None:
    alerting = EdgeAlerting(None, absence_window_s=0)
    unknown = [PresenceChange(lot="LOT-A", epc="E1", state="unknown", previous="present",
                              last_seen_us=1, reader="r1", at_us=T0_US)]
    assert _observe(alerting, unknown).alerts == []
    assert alerting.tick(T0_US + 3600 * S, cloud_reachable=True).alerts == []


def test_the_gateways_own_departure_sounds_the_siren_while_the_cloud_is_unreachable() -> None:
    alerting = EdgeAlerting(None)
    verdict = _observe(alerting, _gone("E1", "E2"), reachable=False)
    assert [(a.on, a.alert_type, a.subject, a.severity) for a in verdict.alarms] == [
        (True, THEFT, "lot:LOT-A", "critical")]
    connected = EdgeAlerting(None)
    assert _observe(connected, _gone("E1", "E2"), reachable=True).alarms == []


# -- releases ---------------------------------------------------------------------------------
TRUCK = "沪A12345"


def _plan(pieces: int, *, vehicles: tuple[str, ...] = (TRUCK,), start_s: int = -3600,
          end_s: int = 3600) -> ReleasePlan:
    return ReleasePlan(frozenset({"LOT-A"}), (Release(
        "LOT-A", pieces, vehicles, T0_US + start_s * S, T0_US + end_s * S),))


def _released(plan: ReleasePlan, *, truck: str | None = TRUCK) -> EdgeAlerting:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate())
    alerting.releases_received(plan, T0_US - 3600 * S, cloud_reachable=False)
    if truck is not None:
        alerting.on_emitted(MessageType.PLATE_READ, _plate(truck), T0_US - 60 * S,
                            cloud_reachable=False)
    return alerting


def test_an_approved_partial_release_leaving_on_its_truck_is_no_theft() -> None:
    alerting = _released(_plan(30))
    verdict = _observe(alerting, _gone(*_epcs(30)), reachable=False)
    assert verdict.alerts == [] and verdict.alarms == []
    assert alerting.tick(T0_US + 3600 * S, cloud_reachable=False).alerts == []
    assert len(alerting.incidents["LOT-A"].released) == 30


def test_a_release_overrun_is_theft_of_the_excess_counted_over_the_incident() -> None:
    alerting = _released(_plan(30))
    assert _observe(alerting, _gone(*_epcs(30)), reachable=False).alerts == []
    first = _observe(alerting, _gone(*_epcs(3, 30), at_us=T0_US + 10 * S), reachable=False)
    later = _observe(alerting, _gone(*_epcs(2, 33), at_us=T0_US + 20 * S), reachable=False)
    assert [a.evidence["incident"]["departed_count"] for a in first.alerts + later.alerts] == [
        3, 5]
    assert later.alerts[0].evidence["incident"]["released_count"] == 30
    assert later.alerts[0].explanation.startswith("5 tag(s) of pledged lot LOT-A")
    assert [a.on for a in first.alarms + later.alarms] == [True, True]


def test_a_release_needs_its_truck_and_its_window() -> None:
    no_truck = _released(_plan(30), truck=None)
    assert [a.alert_type for a in _observe(no_truck, _gone("E1", "E2")).alerts] == [THEFT]
    other_truck = _released(_plan(30), truck="京C99999")
    assert [a.alert_type for a in _observe(other_truck, _gone("E1", "E2")).alerts] == [THEFT]
    closed = _released(_plan(30, end_s=-1))
    assert [a.alert_type for a in _observe(closed, _gone("E1", "E2")).alerts] == [THEFT]
    # A release naming no vehicle takes any truck the gate list authorises.
    gate_truck = _released(_plan(30, vehicles=()))
    gate_truck.gate_list_received(_gate(AuthorisedVehicle(plate=TRUCK), version=2))
    gate_truck.on_emitted(MessageType.PLATE_READ, _plate(TRUCK), T0_US - S, cloud_reachable=False)
    assert _observe(gate_truck, _gone("E1", "E2")).alerts == []


def test_a_cloud_sending_only_the_released_lots_is_still_understood() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(AuthorisedVehicle(plate=TRUCK)))
    alerting.releases_received({"LOT-A"}, T0_US - S, cloud_reachable=False)
    alerting.on_emitted(MessageType.PLATE_READ, _plate(TRUCK), T0_US - S, cloud_reachable=False)
    assert _observe(alerting, _gone("E1", "E2"), reachable=False).alerts == []


def test_the_release_command_is_parsed_strictly() -> None:
    body = {"released": ["LOT-A"], "releases": [
        {"lot": "LOT-A", "pieces": 30, "vehicles": [TRUCK],
         "window_start": "2026-11-27T08:00:00+00:00", "window_end": "2026-11-28T08:00:00Z"}]}
    plan = parse_release_plan(json.dumps(body).encode())
    assert plan.released == {"LOT-A"}
    [release] = plan.releases
    assert (release.lot, release.pieces, release.vehicles) == ("LOT-A", 30, (TRUCK,))
    assert release.window_end_us - release.window_start_us == 86400 * S
    assert parse_releases(b'{"released": ["LOT-A"]}') == {"LOT-A"}
    one = body["releases"][0]
    for bad in ({**one, "pieces": -1}, {**one, "pieces": True}, {**one, "pieces": "30"},
                {**one, "window_end": "2026-11-27T07:00:00+00:00"},
                {**one, "window_start": "2026-11-27T08:00:00"}, {**one, "vehicles": [""]},
                {**one, "vehicles": ["X"] * 21}, {**one, "lot": "L" * 65}, {**one, "extra": 1}):
        with pytest.raises(ValueError):
            parse_release_plan(json.dumps({"released": [], "releases": [bad]}).encode())
    for payload in (b"[]", b'{"releases": []}', b'{"released": "LOT-A"}', b"\xff",
                    b'{"released": [], "more": 1}', b" " * (256 * 1024 + 1)):
        with pytest.raises(ValueError):
            parse_release_plan(payload)


def test_reader_health_alerts_raise_and_clear() -> None:
    alerts = EdgeAlerting(None)
    down = alerts.on_reader_health(ReaderHealth("r1", False, "stream ended", 5))
    up = alerts.on_reader_health(ReaderHealth("r1", True, "stream connected", 9))
    assert (down.action, down.alert_type, down.subject) == ("raise", READER_OFFLINE, "reader:r1")
    assert "stream ended" in down.explanation
    assert up.action == "clear"
    health = alerts.on_observed(ReaderHealth("r1", False, "stream ended", 5))
    assert [(a.action, a.alert_type) for a in health.alerts] == [("raise", READER_OFFLINE)]
    assert health.alarms == []


# -- correlation ------------------------------------------------------------------------------
def _plate(plate: str) -> PlateReadBody:
    return PlateReadBody(camera="gate", plate=plate, region="cn", plate_format="cn_standard",
                         confidence_pct=90, reads=3, direction="out", first_seen_us=T0_US,
                         last_seen_us=T0_US + 1, box=(1, 1, 1, 1))


def _departed(lot: str = "LOT-A", epc: str = "3034257BF7194E4000003030") -> PresenceChangeBody:
    return PresenceChangeBody(lot=lot, epc=epc, state="missing", previous="present",
                              last_seen_us=T0_US, reader="r1")


def _gate(*vehicles: AuthorisedVehicle, version: int = 1) -> AuthorisedVehicles:
    return AuthorisedVehicles(version=version, vehicles=list(vehicles))


def _truck_then_departure(alerting: EdgeAlerting, plate: str, *, reachable: bool = False
                          ) -> Verdict:
    """A truck at the gate, then one tag of LOT-A leaves (the message and the observation the
    RFID pipeline hands the agent for it)."""
    verdict = alerting.on_emitted(MessageType.PLATE_READ, _plate(plate), T0_US,
                                  cloud_reachable=reachable)
    verdict.extend(alerting.on_emitted(MessageType.PRESENCE_CHANGE, _departed(), T0_US + 10,
                                       cloud_reachable=reachable))
    verdict.extend(alerting.on_observed(_gone(_departed().epc, at_us=T0_US + 10),
                                        cloud_reachable=reachable))
    return verdict


def test_offline_an_unlisted_truck_and_departing_tags_raise_theft_and_sound_the_siren() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(AuthorisedVehicle(plate="沪A99999")))
    verdict = _truck_then_departure(alerting, "沪A12345")
    # One alert: the rules' own theft-departure is the same incident, not a second alert.
    assert [(a.action, a.alert_type, a.subject, a.evidence["decided_at"])
            for a in verdict.alerts] == [("raise", THEFT, "lot:LOT-A", "edge")]
    assert "vehicle_unauthorised" in verdict.alerts[0].explanation
    assert [(a.on, a.alert_type, a.subject) for a in verdict.alarms] == [
        (True, THEFT, "lot:LOT-A")]


def test_offline_a_truck_on_the_gate_list_is_no_corroboration() -> None:
    # The gate list matters: the agent's rules once had none, so any plate was a thief.
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(AuthorisedVehicle(plate="沪A12345")))
    verdict = _truck_then_departure(alerting, "沪A12345")
    assert verdict.alerts == [] and verdict.alarms == []


def test_a_listed_truck_outside_its_window_is_unauthorised() -> None:
    night_only = AuthorisedVehicle(plate="沪A12345",
                                   windows=[TimeWindow(start=time(22, 0), end=time(4, 0))])
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(night_only))
    assert [a.alert_type for a in _truck_then_departure(alerting, "沪A12345").alerts] == [THEFT]


def test_without_a_gate_list_a_plate_proves_nothing() -> None:
    alerting = EdgeAlerting(default_rules())
    assert alerting.vehicle_authorised("沪A12345", T0_US) is None
    assert _truck_then_departure(alerting, "沪A12345").alerts == []


def test_the_incident_is_raised_whatever_the_link_and_sounds_only_when_it_is_down() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate())
    verdict = _truck_then_departure(alerting, "沪A12345", reachable=True)
    assert [a.alert_type for a in verdict.alerts] == [THEFT] and verdict.alarms == []


def test_offline_the_rules_still_speak_for_what_is_not_the_incident() -> None:
    # A site rule of its own (here: a weight drop alone) is decided at the edge offline.
    rules = load_rule_set({"version": 1, "rules": [{
        "name": "door-alone", "trigger": "door_opened_after_hours", "window_s": 10,
        "alert_type": "theft.door_at_night", "severity": "major",
        "explanation": "door {subject}"}]})
    alerting = EdgeAlerting(rules)
    door = AlertBody(action="raise", alert_type=AlertType.DOOR_OPEN_OUTSIDE_HOURS,
                     subject="door:dock-1", severity="major", explanation="door")
    verdict = alerting.on_emitted(MessageType.ALERT, door, T0_US, cloud_reachable=False)
    assert [(a.alert_type, a.subject) for a in verdict.alerts] == [
        ("theft.door_at_night", "door:dock-1")]
    assert alerting.on_emitted(MessageType.ALERT, door, T0_US + 1,
                               cloud_reachable=True).alerts == []


def test_an_older_gate_list_is_kept_out() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(version=5))
    assert not alerting.gate_list_received(_gate(AuthorisedVehicle(plate="沪A12345"), version=4))
    assert alerting.gate_list_received(_gate(AuthorisedVehicle(plate="沪A12345"), version=6))
    assert alerting.vehicle_authorised("沪A12345", T0_US) is True


def test_the_gateways_own_alerts_are_facts_but_not_repeated_by_the_rules() -> None:
    alerting = EdgeAlerting(default_rules())
    offline = alerting.on_reader_health(ReaderHealth("r1", False, "stream ended", T0_US))
    verdict = alerting.on_emitted(MessageType.ALERT, offline, T0_US, cloud_reachable=False)
    assert verdict.alerts == []  # the rule "reader-offline" agrees; the alert exists already
    own = AlertBody(action="raise", alert_type=THEFT, subject="lot:LOT-A", severity="critical",
                    explanation="x", evidence={"decided_at": "edge"})
    assert alerting.on_emitted(MessageType.ALERT, own, T0_US, cloud_reachable=False).alerts == []


def test_without_rules_the_gateways_own_decisions_remain() -> None:
    alerting = EdgeAlerting(None, gate_list=_gate(AuthorisedVehicle(plate="沪A99999")))
    assert [a.alert_type for a in _truck_then_departure(alerting, "沪A12345").alerts] == [THEFT]


def test_departures_only_emitted_as_messages_are_decided_at_the_next_tick_once() -> None:
    # A producer that emits presence changes without handing over the batch: no raise per
    # message (30 tags would be 29 updates), one decision at the next tick.
    alerting = EdgeAlerting(None)
    for i in range(30):
        verdict = alerting.on_emitted(
            MessageType.PRESENCE_CHANGE, _departed(epc=f"3034257BF7194E40000030{i:02X}"),
            T0_US + i, cloud_reachable=False)
        assert verdict.alerts == []
    [theft] = alerting.tick(T0_US + S, cloud_reachable=False).alerts
    assert theft.evidence["incident"]["departed_count"] == 30
    # The pipeline's observation of the same changes adds nothing.
    again = _gone(*[f"3034257BF7194E40000030{i:02X}" for i in range(30)], at_us=T0_US + 2 * S)
    assert _observe(alerting, again).alerts == []


def test_a_theft_in_progress_is_updated_at_most_every_ten_seconds() -> None:
    alerting = EdgeAlerting(None)
    raised = [a.evidence["incident"]["departed_count"]
              for i in range(10)
              for a in _observe(alerting, _gone(*_epcs(4, 4 * i), at_us=T0_US + i * S)).alerts]
    assert raised == [4]  # the other nine batches came within 10 s
    [update] = alerting.tick(T0_US + 10 * S, cloud_reachable=True).alerts
    assert update.evidence["incident"]["departed_count"] == 40
