"""Duplicate identities on values: two sites, two lots, two receipts, moves and releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from decisions.alert_types import AlertType
from decisions.identity import DuplicateReason, IdentityKind, IdentityRegister, Sighting

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
EPC = "E2801160600002054C2A1B33"


def epc(site: str, at: datetime, lot: str | None = "LOT-1", receipt: str | None = None,
        source: str = "") -> Sighting:
    return Sighting(IdentityKind.EPC, EPC, site, at, lot=lot, receipt=receipt, source=source)


def test_the_same_epc_at_two_sites_within_travel_time_is_a_clone_with_both_sightings() -> None:
    register = IdentityRegister(travel_time=timedelta(hours=1))
    assert register.observe(epc("site-a", T0, source="a/reader-1")) == []
    found = register.observe(epc("site-b", T0 + 20 * MIN, source="b/reader-4"))
    assert [d.reason for d in found] == [DuplicateReason.TWO_SITES]
    dup = found[0]
    assert dup.alert_type is AlertType.DUPLICATE_IDENTITY
    assert dup.subject == f"epc:{EPC}"
    assert (dup.first.site, dup.second.site) == ("site-a", "site-b")
    text = dup.explanation()
    assert "site-a" in text and "site-b" in text and "a/reader-1" in text and "b/reader-4" in text
    sightings = dup.evidence()["sightings"]
    assert [s["site"] for s in sightings] == ["site-a", "site-b"]


def test_a_tag_that_moved_between_sites_slower_than_travel_time_is_no_duplicate() -> None:
    register = IdentityRegister(travel_time=timedelta(hours=1))
    register.observe(epc("site-a", T0))
    assert register.observe(epc("site-b", T0 + timedelta(hours=5))) == []


def test_a_clone_keeps_being_reported_once() -> None:
    register = IdentityRegister()
    found = []
    for k in range(10):
        found += register.observe(epc("site-a", T0 + k * 2 * MIN))
        found += register.observe(epc("site-b", T0 + k * 2 * MIN + MIN))
    assert len(found) == 1


def test_the_same_sscc_under_two_lots_is_a_duplicate_however_late() -> None:
    register = IdentityRegister()
    first = Sighting(IdentityKind.SSCC, "003690000000000001", "site-a", T0, lot="LOT-1",
                     receipt="WR-1")
    later = Sighting(IdentityKind.SSCC, "003690000000000001", "site-b",
                     T0 + timedelta(days=30), lot="LOT-9", receipt="WR-9")
    register.observe(first)
    found = register.observe(later)
    assert {d.reason for d in found} == {DuplicateReason.TWO_LOTS, DuplicateReason.TWO_RECEIPTS}
    assert all((d.first, d.second) == (first, later) for d in found)


def test_one_lot_pledged_on_two_receipts() -> None:
    register = IdentityRegister()
    register.observe(epc("site-a", T0, receipt="WR-1"))
    found = register.observe(epc("site-a", T0 + timedelta(days=2), receipt="WR-2"))
    assert [d.reason for d in found] == [DuplicateReason.TWO_RECEIPTS]
    assert "WR-1" in found[0].explanation() and "WR-2" in found[0].explanation()


def test_a_receipt_number_issued_twice_is_a_duplicate() -> None:
    register = IdentityRegister()
    register.observe(Sighting(IdentityKind.RECEIPT, "WR-7", "site-a", T0, lot="LOT-1",
                              receipt="WR-7"))
    found = register.observe(Sighting(IdentityKind.RECEIPT, "WR-7", "site-b",
                                      T0 + timedelta(days=1), lot="LOT-2", receipt="WR-7"))
    assert [d.reason for d in found] == [DuplicateReason.TWO_LOTS]
    assert found[0].subject == "receipt:WR-7"


def test_a_released_identity_binds_afresh_at_its_destination() -> None:
    register = IdentityRegister()
    register.observe(epc("site-a", T0, lot="LOT-1", receipt="WR-1"))
    register.release(IdentityKind.EPC, EPC)
    assert register.observe(epc("site-b", T0 + 10 * MIN, lot="LOT-5", receipt="WR-5")) == []


def test_sightings_without_a_lot_do_not_conflict_with_one() -> None:
    register = IdentityRegister()
    register.observe(epc("site-a", T0, lot="LOT-1"))
    assert register.observe(epc("site-a", T0 + MIN, lot=None)) == []


def test_a_register_binding_fixes_the_lot_but_not_a_place_and_time() -> None:
    register = IdentityRegister(travel_time=timedelta(hours=1))
    register.bind(epc("site-a", T0 + 5 * MIN, lot="LOT-1", receipt="WR-1", source="lot register"))
    # Read at site B minutes after the binding's date: no two-sites claim from a register row.
    assert register.observe(epc("site-b", T0 + 10 * MIN, lot=None)) == []
    found = register.observe(epc("site-b", T0 + 11 * MIN, lot="LOT-9"))
    assert [d.reason for d in found] == [DuplicateReason.TWO_LOTS]
    assert found[0].first.source == "lot register"
