"""The gateway's one alerting stage, fed values (no I/O): presence changes and reader health
become tag-missing and reader-offline alerts; emitted facts run the correlation rules, which
speak (and sound the siren) only while the cloud is unreachable, judged against the gate list
and the releases the cloud last sent."""

from __future__ import annotations

from datetime import time

from contract import AlertBody, MessageType, PresenceChangeBody
from contract.messages import PlateReadBody, PresenceState
from decisions.alert_types import AlertType
from decisions.rules import default_rules
from decisions.vehicles import AuthorisedVehicle, AuthorisedVehicles, TimeWindow
from edge.alerting import READER_OFFLINE, TAG_MISSING, EdgeAlerting, Verdict
from edge.rfid.presence import PresenceChange
from edge.rfid.reader import ReaderHealth

T0_US = 1_764_136_000_000_000  # Wed 2025-11-26 05:46:40 UTC
THEFT = AlertType.UNRELEASED_DEPARTURE


def _change(epc: str, state: PresenceState, previous: PresenceState = "present",
            lot: str = "LOT-A") -> PresenceChange:
    return PresenceChange(lot=lot, epc=epc, state=state, previous=previous,
                          last_seen_us=1_000, reader="r1", at_us=2_000)


def test_first_missing_tag_raises_and_a_growing_set_raises_again() -> None:
    alerts = EdgeAlerting(None)
    first = alerts.on_presence([_change("E3", "missing")])
    assert [(a.action, a.alert_type, a.subject, a.lot) for a in first] == [
        ("raise", TAG_MISSING, "lot:LOT-A", "LOT-A")]
    assert first[0].evidence["missing_epcs"] == ["E3"]
    assert first[0].severity == "critical"
    more = alerts.on_presence([_change("E1", "missing")])
    assert more[0].evidence["missing_epcs"] == ["E1", "E3"]
    assert more[0].evidence["missing_count"] == 2


def test_nothing_new_raises_nothing() -> None:
    alerts = EdgeAlerting(None)
    alerts.on_presence([_change("E3", "missing")])
    assert alerts.on_presence([_change("E3", "missing")]) == []
    assert alerts.on_presence([_change("E1", "present", previous="unknown")]) == []


def test_alert_clears_only_when_every_missing_tag_is_back() -> None:
    alerts = EdgeAlerting(None)
    alerts.on_presence([_change("E1", "missing"), _change("E2", "missing")])
    assert alerts.on_presence([_change("E1", "present", previous="missing")]) == []
    cleared = alerts.on_presence([_change("E2", "present", previous="missing")])
    assert [(a.action, a.subject) for a in cleared] == [("clear", "lot:LOT-A")]


def test_lots_are_judged_separately() -> None:
    alerts = EdgeAlerting(None)
    raised = alerts.on_presence([_change("E1", "missing"), _change("F1", "missing", lot="LOT-B")])
    assert sorted(a.subject for a in raised) == ["lot:LOT-A", "lot:LOT-B"]


def test_unknown_is_not_missing() -> None:
    alerts = EdgeAlerting(None)
    assert alerts.on_presence([_change("E1", "unknown")]) == []


def test_a_missing_tag_whose_reader_dies_is_not_back() -> None:
    # A reader cut right after a theft makes the stolen tags "unknown": the theft stays open
    # until the tags are read again.
    alerts = EdgeAlerting(None)
    alerts.on_presence([_change("E1", "missing")])
    assert alerts.on_presence([_change("E1", "unknown", previous="missing")]) == []
    cleared = alerts.on_presence([_change("E1", "present", previous="unknown")])
    assert [(a.action, a.subject) for a in cleared] == [("clear", "lot:LOT-A")]


def test_reader_health_alerts_raise_and_clear() -> None:
    alerts = EdgeAlerting(None)
    down = alerts.on_reader_health(ReaderHealth("r1", False, "stream ended", 5))
    up = alerts.on_reader_health(ReaderHealth("r1", True, "stream connected", 9))
    assert (down.action, down.alert_type, down.subject) == ("raise", READER_OFFLINE, "reader:r1")
    assert "stream ended" in down.explanation
    assert up.action == "clear"


def test_observed_batches_and_health_come_back_as_alerts() -> None:
    alerts = EdgeAlerting(default_rules())
    batch = alerts.on_observed([_change("E1", "missing"), _change("E2", "missing")])
    assert [(a.action, a.alert_type) for a in batch.alerts] == [("raise", TAG_MISSING)]
    health = alerts.on_observed(ReaderHealth("r1", False, "stream ended", 5))
    assert [(a.action, a.alert_type) for a in health.alerts] == [("raise", READER_OFFLINE)]
    assert batch.alarms == health.alarms == []


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
    verdict = alerting.on_emitted(MessageType.PLATE_READ, _plate(plate), T0_US,
                                  cloud_reachable=reachable)
    verdict.extend(alerting.on_emitted(MessageType.PRESENCE_CHANGE, _departed(), T0_US + 10,
                                       cloud_reachable=reachable))
    return verdict


def test_offline_an_unlisted_truck_and_departing_tags_raise_theft_and_sound_the_siren() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate(AuthorisedVehicle(plate="沪A99999")))
    verdict = _truck_then_departure(alerting, "沪A12345")
    assert [(a.action, a.alert_type, a.subject, a.evidence["decided_at"])
            for a in verdict.alerts] == [("raise", THEFT, "lot:LOT-A", "edge")]
    assert "vehicle_unauthorised" in verdict.alerts[0].explanation
    assert [(a.on, a.alert_type, a.subject) for a in verdict.alarms] == [
        (True, THEFT, "lot:LOT-A")]


def test_offline_a_truck_on_the_gate_list_takes_goods_without_an_alarm() -> None:
    # The bug this stage fixes: the agent's rules had no gate list, so any plate was a thief.
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


def test_while_the_cloud_is_reachable_the_cloud_decides() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate())
    verdict = _truck_then_departure(alerting, "沪A12345", reachable=True)
    assert verdict.alerts == [] and verdict.alarms == []
    # The engine still saw the facts: a departure after the link drops completes the picture.
    late = alerting.on_emitted(MessageType.PRESENCE_CHANGE,
                               _departed(epc="30340000000000000000AAAA"), T0_US + 20,
                               cloud_reachable=False)
    assert [a.alert_type for a in late.alerts] == [THEFT]


def test_a_released_lot_leaving_is_a_movement_not_a_theft() -> None:
    alerting = EdgeAlerting(default_rules(), gate_list=_gate())
    assert alerting.releases_received({"LOT-A"}, T0_US - 1_000_000,
                                      cloud_reachable=False).alerts == []
    assert _truck_then_departure(alerting, "沪A12345").alerts == []


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


def test_without_rules_only_the_rfid_alerts_remain() -> None:
    alerting = EdgeAlerting(None, gate_list=_gate())
    assert _truck_then_departure(alerting, "沪A12345").alerts == []
