"""The gateway's own alert decisions, fed presence changes and reader health (no I/O)."""

from __future__ import annotations

from contract.messages import PresenceState
from edge.local_alerts import READER_OFFLINE, TAG_MISSING, LocalAlerts
from edge.rfid.presence import PresenceChange
from edge.rfid.reader import ReaderHealth


def _change(epc: str, state: PresenceState, previous: PresenceState = "present",
            lot: str = "LOT-A") -> PresenceChange:
    return PresenceChange(lot=lot, epc=epc, state=state, previous=previous,
                          last_seen_us=1_000, reader="r1", at_us=2_000)


def test_first_missing_tag_raises_and_a_growing_set_raises_again() -> None:
    alerts = LocalAlerts()
    first = alerts.on_presence([_change("E3", "missing")])
    assert [(a.action, a.alert_type, a.subject, a.lot) for a in first] == [
        ("raise", TAG_MISSING, "lot:LOT-A", "LOT-A")]
    assert first[0].evidence["missing_epcs"] == ["E3"]
    assert first[0].severity == "critical"
    more = alerts.on_presence([_change("E1", "missing")])
    assert more[0].evidence["missing_epcs"] == ["E1", "E3"]
    assert more[0].evidence["missing_count"] == 2


def test_nothing_new_raises_nothing() -> None:
    alerts = LocalAlerts()
    alerts.on_presence([_change("E3", "missing")])
    assert alerts.on_presence([_change("E3", "missing")]) == []
    assert alerts.on_presence([_change("E1", "present", previous="unknown")]) == []


def test_alert_clears_only_when_every_missing_tag_is_back() -> None:
    alerts = LocalAlerts()
    alerts.on_presence([_change("E1", "missing"), _change("E2", "missing")])
    assert alerts.on_presence([_change("E1", "present", previous="missing")]) == []
    cleared = alerts.on_presence([_change("E2", "present", previous="missing")])
    assert [(a.action, a.subject) for a in cleared] == [("clear", "lot:LOT-A")]


def test_lots_are_judged_separately() -> None:
    alerts = LocalAlerts()
    raised = alerts.on_presence([_change("E1", "missing"), _change("F1", "missing", lot="LOT-B")])
    assert sorted(a.subject for a in raised) == ["lot:LOT-A", "lot:LOT-B"]


def test_unknown_is_not_missing() -> None:
    alerts = LocalAlerts()
    assert alerts.on_presence([_change("E1", "unknown")]) == []


def test_reader_health_alerts_raise_and_clear() -> None:
    alerts = LocalAlerts()
    down = alerts.on_reader_health(ReaderHealth("r1", False, "stream ended", 5))
    up = alerts.on_reader_health(ReaderHealth("r1", True, "stream connected", 9))
    assert (down.action, down.alert_type, down.subject) == ("raise", READER_OFFLINE, "reader:r1")
    assert "stream ended" in down.explanation
    assert up.action == "clear"
