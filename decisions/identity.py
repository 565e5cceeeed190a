"""Cloned or re-used identities: one EPC, SSCC or receipt number standing for two things.

Theory of operation. Every identity (an RFID tag's EPC, a pallet label's SSCC, a receipt's
number) is bound, by the first sighting that names them, to a site, a lot and a receipt.
:class:`IdentityRegister` is fed sightings and answers each with the duplicates it reveals:

- **under two lots** / **on two receipts**: the identity turns up bound to another lot or
  receipt while its first binding still stands (not released). A lot relabelled and re-pledged
  elsewhere is caught here, however long afterwards it happens.
- **at two sites**: the identity is seen at another site sooner after its last sighting at the
  first than goods can travel between them (``travel_time``). A tag that leaves one warehouse
  and is read at the next hours later is a move (a shipment judges it); a cloned EPC read at two
  sites within minutes is two tags.

A release (the receipt released, the goods shipped) frees the binding, so a legitimate transfer
is bound afresh at its destination. Each pair of conflicting bindings is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from decisions.alert_text import AlertText, alert_text
from decisions.alert_types import AlertType

ALERT_TYPE = AlertType.DUPLICATE_IDENTITY


class IdentityKind(StrEnum):
    EPC = "epc"
    SSCC = "sscc"
    RECEIPT = "receipt"


class DuplicateReason(StrEnum):
    TWO_SITES = "two_sites"
    TWO_LOTS = "two_lots"
    TWO_RECEIPTS = "two_receipts"


@dataclass(frozen=True, slots=True)
class Sighting:
    kind: IdentityKind
    value: str
    site: str
    at: datetime
    lot: str | None = None
    receipt: str | None = None
    source: str = ""  # which reader, camera or API call saw it

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": str(self.kind),
            "value": self.value,
            "site": self.site,
            "lot": self.lot,
            "receipt": self.receipt,
            "at": self.at.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class DuplicateIdentity:
    reason: DuplicateReason
    first: Sighting
    second: Sighting

    alert_type = ALERT_TYPE

    @property
    def subject(self) -> str:
        return f"{self.first.kind}:{self.first.value}"

    def explanation(self) -> str:
        a, b = self.first, self.second
        where = {
            DuplicateReason.TWO_SITES: f"at sites {a.site} and {b.site}",
            DuplicateReason.TWO_LOTS: f"under lots {a.lot} and {b.lot}",
            DuplicateReason.TWO_RECEIPTS: f"on receipts {a.receipt} and {b.receipt}",
        }[self.reason]
        return (
            f"{a.kind} {a.value} seen {where}: first at {a.site} {a.at.isoformat()}"
            f" ({a.source or 'unknown source'}), then at {b.site} {b.at.isoformat()}"
            f" ({b.source or 'unknown source'})"
        )

    def text(self) -> AlertText:
        """The explanation as a catalogue message, for the reader's language."""
        a, b = self.first, self.second
        common = {"kind": str(a.kind), "value": a.value}
        if self.reason is DuplicateReason.TWO_SITES:
            return alert_text("duplicate_identity.two_sites", **common, first_site=a.site,
                              first_at=a.at.strftime("%Y-%m-%d %H:%M"), second_site=b.site,
                              second_at=b.at.strftime("%Y-%m-%d %H:%M"))
        if self.reason is DuplicateReason.TWO_LOTS:
            return alert_text("duplicate_identity.two_lots", **common,
                              first_lot=a.lot or "–", second_lot=b.lot or "–")
        return alert_text("duplicate_identity.two_receipts", **common,
                          first_receipt=a.receipt or "–", second_receipt=b.receipt or "–")

    def evidence(self) -> dict[str, Any]:
        return {
            **self.text().evidence(),
            "reason": str(self.reason),
            "sightings": [self.first.as_json(), self.second.as_json()],
        }


@dataclass(slots=True)
class _Binding:
    first: Sighting
    last_at_site: dict[str, Sighting] = field(default_factory=dict)


@dataclass(slots=True)
class IdentityRegister:
    """Bindings of identities to sites, lots and receipts; fed sightings, answers duplicates."""

    travel_time: timedelta = timedelta(hours=1)
    _bindings: dict[tuple[IdentityKind, str], _Binding] = field(default_factory=dict)
    _reported: set[tuple[object, ...]] = field(default_factory=set)

    def bind(self, sighting: Sighting) -> None:
        """A binding known from a register (the lot's tag list), not a sighting at a place:
        it fixes lot and receipt, and says nothing about when the identity was where."""
        key = (sighting.kind, sighting.value)
        if key not in self._bindings:
            self._bindings[key] = _Binding(sighting)

    def release(self, kind: IdentityKind, value: str) -> None:
        """The identity's goods left under a release: its next sighting binds it afresh."""
        self._bindings.pop((kind, value), None)

    def observe(self, sighting: Sighting) -> list[DuplicateIdentity]:
        key = (sighting.kind, sighting.value)
        binding = self._bindings.get(key)
        if binding is None:
            self._bindings[key] = _Binding(sighting, {sighting.site: sighting})
            return []
        found: list[DuplicateIdentity] = []
        first = binding.first
        if sighting.lot and first.lot and sighting.lot != first.lot:
            found.append(DuplicateIdentity(DuplicateReason.TWO_LOTS, first, sighting))
        if sighting.receipt and first.receipt and sighting.receipt != first.receipt:
            found.append(DuplicateIdentity(DuplicateReason.TWO_RECEIPTS, first, sighting))
        for site, last in binding.last_at_site.items():
            if site != sighting.site and abs(sighting.at - last.at) < self.travel_time:
                found.append(DuplicateIdentity(DuplicateReason.TWO_SITES, last, sighting))
        previous = binding.last_at_site.get(sighting.site)
        if previous is None or sighting.at >= previous.at:
            binding.last_at_site[sighting.site] = sighting
        return [d for d in found if self._first_report(d)]

    def _first_report(self, duplicate: DuplicateIdentity) -> bool:
        a, b = duplicate.first, duplicate.second
        sides = sorted((x.site, x.lot or "", x.receipt or "") for x in (a, b))
        key = (a.kind, a.value, duplicate.reason, *sides)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True
