"""Per-lot reconciliation: the receipt's claim held against every sensor that can check it.

Theory of operation. A lot's receipt declares how many pieces it holds, what one piece weighs
and (optionally) how many pallets and tags there are. Four independent sources can confirm it:
the RFID tags present, the pallet labels read (GS1 SSCC labels carrying a GTIN and a quantity),
the load cell's weight and a stack camera's pallet count. :func:`reconcile` takes the latest
figure of each source (values, with the time each was observed) and a clock, and gives every
source a state:

- ``silent``: the source never reported for this lot (no reader, no camera there);
- ``stale``: its latest figure is older than the lot's ``stale_after``: shown, never judged;
- ``agrees`` / ``disagrees``: within / beyond the lot's tolerance of the receipt's figure.

The receipt is the claim under test; its own state is ``disagrees`` when any fresh source
disagrees with it, ``silent`` when there is none yet.

A disagreement only becomes a finding when it persists (``persist_for``): a forklift on the
scale or a pallet half-read is not fraud. :class:`LotWatch` keeps, per lot, the latest figure of
each source and when each family (count, weight) started to disagree; it is fed facts and asked
for findings at a time it is given. It never reads a clock. A weight that falls slowly within
the load cell's drift allowance (``drift_fraction_per_day`` since the receipt, capped) is not a
disagreement: a leak smaller than the sensor's own drift cannot be told from the drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from decisions.alert_text import AlertText, alert_text
from decisions.alert_types import AlertType


class Source(StrEnum):
    RECEIPT = "receipt"
    RFID = "rfid"
    LABELS = "labels"
    LOAD_CELL = "load_cell"
    CAMERA = "camera"


class SourceState(StrEnum):
    AGREES = "agrees"
    DISAGREES = "disagrees"
    SILENT = "silent"
    STALE = "stale"


class Family(StrEnum):
    """What a disagreement is about; one finding (and one alert) per family and lot."""

    COUNT = "count"
    WEIGHT = "weight"


FAMILY_OF: dict[Source, Family] = {
    Source.RFID: Family.COUNT,
    Source.LABELS: Family.COUNT,
    Source.CAMERA: Family.COUNT,
    Source.LOAD_CELL: Family.WEIGHT,
}
ALERT_OF: dict[Family, AlertType] = {
    Family.COUNT: AlertType.COUNT_MISMATCH,
    Family.WEIGHT: AlertType.WEIGHT_MISMATCH,
}
UNIT: dict[Source, str] = {
    Source.RFID: "tags",
    Source.LABELS: "pieces",
    Source.CAMERA: "pallets",
    Source.LOAD_CELL: "kg",
}


@dataclass(frozen=True, slots=True)
class Declaration:
    """What the receipt claims about the lot."""

    lot: str
    pieces: int
    unit_weight_kg: float
    declared_at: datetime
    pallets: int | None = None
    tags: int | None = None  # one tag per piece unless the receipt says otherwise
    tare_kg: float = 0.0  # pallets and packaging on the scale

    @property
    def expected_tags(self) -> int:
        return self.pieces if self.tags is None else self.tags

    @property
    def expected_kg(self) -> float:
        return self.pieces * self.unit_weight_kg + self.tare_kg


@dataclass(frozen=True, slots=True)
class PalletLabel:
    """One GS1 logistic label read on a pallet: its SSCC, the trade item and the quantity."""

    sscc: str
    gtin: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Figure:
    """A source's latest figure for a lot and when it was observed."""

    source: Source
    value: float
    at: datetime


def labels_figure(labels: Iterable[PalletLabel], at: datetime) -> Figure:
    """The pieces the labels read account for; a label read twice (same SSCC) counts once."""
    by_sscc = {label.sscc: label.quantity for label in labels}
    return Figure(Source.LABELS, float(sum(by_sscc.values())), at)


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a source may stray from the receipt, per lot (a bulk lot is looser than gold)."""

    count_pieces: int = 0
    count_fraction: float = 0.0
    weight_kg: float = 5.0
    weight_fraction: float = 0.01
    drift_fraction_per_day: float = 0.0005
    max_drift_fraction: float = 0.02
    persist_for: timedelta = timedelta(minutes=15)
    stale_after: timedelta = timedelta(hours=2)

    def allowed(
        self, source: Source, expected: float, declared_at: datetime, now: datetime
    ) -> float:
        if source is Source.LOAD_CELL:
            days = max(0.0, (now - declared_at).total_seconds() / 86_400)
            drift = min(self.max_drift_fraction, self.drift_fraction_per_day * days)
            return max(self.weight_kg, expected * (self.weight_fraction + drift))
        return max(float(self.count_pieces), expected * self.count_fraction)


@dataclass(frozen=True, slots=True)
class SourceReading:
    """One row of the lot panel: a source, its figure against the receipt's, and its state."""

    source: Source
    state: SourceState
    expected: float | None
    value: float | None
    at: datetime | None
    allowed: float | None

    def describe(self) -> str:
        if self.value is None or self.at is None:
            return f"{self.source}: silent"
        unit = UNIT.get(self.source, "")
        shown = f"{self.value:g} {unit}".strip()
        if self.expected is not None:
            shown += f" (receipt {self.expected:g}, ±{round(self.allowed or 0, 1):g})"
        return f"{self.source}: {shown} at {self.at.isoformat()}, {self.state}"


@dataclass(frozen=True, slots=True)
class Reconciliation:
    lot: str
    at: datetime
    readings: tuple[SourceReading, ...]

    def state(self, source: Source) -> SourceState:
        return next(r.state for r in self.readings if r.source is source)

    def disagreeing(self, family: Family) -> list[SourceReading]:
        return [
            r for r in self.readings
            if FAMILY_OF.get(r.source) is family and r.state is SourceState.DISAGREES
        ]


def _expected(declaration: Declaration, source: Source) -> float | None:
    if source is Source.RFID:
        return float(declaration.expected_tags)
    if source is Source.LABELS:
        return float(declaration.pieces)
    if source is Source.CAMERA:
        return None if declaration.pallets is None else float(declaration.pallets)
    if source is Source.LOAD_CELL:
        return declaration.expected_kg
    return None


SENSORS = (Source.RFID, Source.LABELS, Source.LOAD_CELL, Source.CAMERA)


def reconcile(
    declaration: Declaration,
    figures: dict[Source, Figure],
    now: datetime,
    tolerance: Tolerance,
) -> Reconciliation:
    """Every source's state for one lot at ``now``, from its latest figures."""
    readings: list[SourceReading] = []
    any_fresh = False
    any_disagrees = False
    for source in SENSORS:
        figure = figures.get(source)
        expected = _expected(declaration, source)
        if figure is None:
            readings.append(SourceReading(source, SourceState.SILENT, expected, None, None, None))
            continue
        if expected is None:  # the receipt says nothing this source could check
            readings.append(
                SourceReading(source, SourceState.SILENT, None, figure.value, figure.at, None)
            )
            continue
        allowed = tolerance.allowed(source, expected, declaration.declared_at, now)
        if now - figure.at > tolerance.stale_after:
            state = SourceState.STALE
        elif abs(figure.value - expected) > allowed + 1e-9:
            state = SourceState.DISAGREES
            any_fresh = any_disagrees = True
        else:
            state = SourceState.AGREES
            any_fresh = True
        readings.append(SourceReading(source, state, expected, figure.value, figure.at, allowed))
    if any_disagrees:
        receipt_state = SourceState.DISAGREES
    elif any_fresh:
        receipt_state = SourceState.AGREES
    else:
        receipt_state = SourceState.SILENT
    receipt = SourceReading(
        Source.RECEIPT, receipt_state, float(declaration.pieces), float(declaration.pieces),
        declaration.declared_at, 0.0,
    )
    return Reconciliation(declaration.lot, now, (receipt, *readings))


@dataclass(frozen=True, slots=True)
class MismatchFinding:
    """A persistent disagreement: an ``integrity.count_mismatch`` or ``weight_mismatch``."""

    declaration: Declaration
    family: Family
    since: datetime
    at: datetime
    readings: tuple[SourceReading, ...]

    @property
    def lot(self) -> str:
        return self.declaration.lot

    @property
    def alert_type(self) -> AlertType:
        return ALERT_OF[self.family]

    @property
    def subject(self) -> str:
        return f"lot:{self.lot}"

    def explanation(self) -> str:
        d = self.declaration
        head = f"lot {self.lot}: {self.family} disagrees since {self.since.isoformat()}"
        by_source = {r.source: r for r in self.readings}
        tags = by_source.get(Source.RFID)
        if self.family is Family.WEIGHT and tags is not None and tags.state is SourceState.AGREES:
            head += " while every tag is present (goods swapped?)"
        claim = f"receipt: {d.pieces} pieces, {d.expected_kg:g} kg"
        if d.pallets is not None:
            claim += f", {d.pallets} pallets"
        claim += f" declared at {d.declared_at.isoformat()}"
        sensors = [r.describe() for r in self.readings if r.source is not Source.RECEIPT]
        return "; ".join([head, claim, *sensors])

    def text(self) -> AlertText:
        """The explanation as a catalogue message, for the reader's language."""
        by_source = {r.source: r for r in self.readings}

        def figure(source: Source) -> str:
            reading = by_source.get(source)
            return "–" if reading is None or reading.value is None else f"{reading.value:g}"

        since = self.since.strftime("%Y-%m-%d %H:%M")
        if self.family is Family.COUNT:
            return alert_text("integrity_count.raise", lot=self.lot, since=since,
                              pieces=self.declaration.pieces, rfid=figure(Source.RFID),
                              labels=figure(Source.LABELS), camera=figure(Source.CAMERA))
        tags = by_source.get(Source.RFID)
        swapped = tags is not None and tags.state is SourceState.AGREES
        return alert_text("integrity_weight.raise_swapped" if swapped else
                          "integrity_weight.raise", lot=self.lot, since=since,
                          kg=f"{self.declaration.expected_kg:g}",
                          load_cell=figure(Source.LOAD_CELL))

    def evidence(self) -> dict[str, Any]:
        return {
            **self.text().evidence(),
            "lot": self.lot,
            "family": str(self.family),
            "declared": {
                "pieces": self.declaration.pieces,
                "unit_weight_kg": self.declaration.unit_weight_kg,
                "expected_kg": self.declaration.expected_kg,
                "pallets": self.declaration.pallets,
                "tags": self.declaration.expected_tags,
                "at": self.declaration.declared_at.isoformat(),
            },
            "since": self.since.isoformat(),
            "sources": [
                {
                    "source": str(r.source),
                    "state": str(r.state),
                    "expected": r.expected,
                    "value": r.value,
                    "allowed": r.allowed,
                    "at": None if r.at is None else r.at.isoformat(),
                }
                for r in self.readings
            ],
        }


@dataclass(slots=True)
class LotWatch:
    """One lot's reconciliation over time: fed facts, asked for findings at a given time."""

    declaration: Declaration
    tolerance: Tolerance = field(default_factory=Tolerance)
    figures: dict[Source, Figure] = field(default_factory=dict)
    disagree_since: dict[Family, datetime] = field(default_factory=dict)

    def observe(self, figure: Figure) -> None:
        # Facts can arrive out of order (an outbox drained after an outage): keep the newest.
        current = self.figures.get(figure.source)
        if current is None or figure.at >= current.at:
            self.figures[figure.source] = figure

    def redeclare(self, declaration: Declaration) -> None:
        """A partial release or a split changes the claim; disagreements start over."""
        self.declaration = declaration
        self.disagree_since.clear()

    def evaluate(self, now: datetime) -> tuple[Reconciliation, list[MismatchFinding]]:
        result = reconcile(self.declaration, self.figures, now, self.tolerance)
        findings: list[MismatchFinding] = []
        for family in Family:
            disagreeing = result.disagreeing(family)
            if not disagreeing:
                self.disagree_since.pop(family, None)
                continue
            # The disagreement began when the first source that still disagrees reported it.
            began = min(r.at for r in disagreeing if r.at is not None)
            since = self.disagree_since.setdefault(family, began)
            if now - since >= self.tolerance.persist_for:
                findings.append(
                    MismatchFinding(self.declaration, family, since, now, result.readings)
                )
        return result, findings

    @property
    def lot(self) -> str:
        return self.declaration.lot
