"""Per-lot reconciliation on values: every source's state, persistence, tolerance and drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from decisions.alert_text import render, text_of
from decisions.alert_types import AlertType
from decisions.reconciliation import (
    Declaration,
    Family,
    Figure,
    LotWatch,
    PalletLabel,
    Source,
    SourceState,
    Tolerance,
    labels_figure,
    reconcile,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DECL = Declaration("LOT-1", pieces=100, unit_weight_kg=25.0, declared_at=T0, pallets=4,
                   tare_kg=40.0)


def figures(at: datetime, *, tags: float = 100, labels: float = 100, kg: float = 2540.0,
            pallets: float = 4) -> dict[Source, Figure]:
    return {
        Source.RFID: Figure(Source.RFID, tags, at),
        Source.LABELS: Figure(Source.LABELS, labels, at),
        Source.LOAD_CELL: Figure(Source.LOAD_CELL, kg, at),
        Source.CAMERA: Figure(Source.CAMERA, pallets, at),
    }


def test_every_source_agrees_with_a_true_receipt() -> None:
    result = reconcile(DECL, figures(T0 + MIN), T0 + 2 * MIN, Tolerance())
    assert {r.source: r.state for r in result.readings} == {
        Source.RECEIPT: SourceState.AGREES,
        Source.RFID: SourceState.AGREES,
        Source.LABELS: SourceState.AGREES,
        Source.LOAD_CELL: SourceState.AGREES,
        Source.CAMERA: SourceState.AGREES,
    }


def test_a_source_that_never_reported_is_silent_and_an_old_one_stale() -> None:
    seen = figures(T0)
    del seen[Source.CAMERA]
    seen[Source.LABELS] = Figure(Source.LABELS, 60, T0 - timedelta(hours=3))  # old and wrong
    result = reconcile(DECL, seen, T0 + MIN, Tolerance(stale_after=timedelta(hours=2)))
    assert result.state(Source.CAMERA) is SourceState.SILENT
    # A stale figure is shown but never judged: it neither agrees nor raises anything.
    assert result.state(Source.LABELS) is SourceState.STALE
    assert result.disagreeing(Family.COUNT) == []
    assert result.state(Source.RECEIPT) is SourceState.AGREES


def test_no_sensor_at_all_leaves_the_receipt_silent() -> None:
    result = reconcile(DECL, {}, T0, Tolerance())
    assert {r.state for r in result.readings} == {SourceState.SILENT}


def test_a_lot_without_a_declared_pallet_count_cannot_be_checked_by_the_camera() -> None:
    decl = Declaration("LOT-2", pieces=10, unit_weight_kg=1.0, declared_at=T0)
    result = reconcile(decl, {Source.CAMERA: Figure(Source.CAMERA, 3, T0)}, T0, Tolerance())
    assert result.state(Source.CAMERA) is SourceState.SILENT


def test_count_tolerance_is_per_lot() -> None:
    seen = figures(T0, tags=97)
    strict = reconcile(DECL, seen, T0, Tolerance())
    loose = reconcile(DECL, seen, T0, Tolerance(count_fraction=0.05))
    assert strict.state(Source.RFID) is SourceState.DISAGREES
    assert strict.state(Source.RECEIPT) is SourceState.DISAGREES
    assert loose.state(Source.RFID) is SourceState.AGREES


def test_weight_within_accuracy_agrees_beyond_it_disagrees() -> None:
    tolerance = Tolerance(weight_fraction=0.01, weight_kg=5.0, drift_fraction_per_day=0.0)
    assert reconcile(DECL, figures(T0, kg=2540 - 25), T0, tolerance).state(
        Source.LOAD_CELL) is SourceState.AGREES
    assert reconcile(DECL, figures(T0, kg=2540 - 26), T0, tolerance).state(
        Source.LOAD_CELL) is SourceState.DISAGREES


def test_drift_allowance_grows_with_time_since_the_receipt_and_is_capped() -> None:
    tolerance = Tolerance(weight_fraction=0.0, weight_kg=0.0, drift_fraction_per_day=0.001,
                          max_drift_fraction=0.01)
    assert tolerance.allowed(Source.LOAD_CELL, 1000.0, T0, T0 + timedelta(days=5)) == 5.0
    assert tolerance.allowed(Source.LOAD_CELL, 1000.0, T0, T0 + timedelta(days=50)) == 10.0


def test_labels_read_twice_count_once() -> None:
    label = PalletLabel("003690000000000001", "09506000134352", 25)
    other = PalletLabel("003690000000000002", "09506000134352", 30)
    assert labels_figure([label, label, other], T0).value == 55


def test_a_brief_disagreement_is_not_a_finding() -> None:
    # A forklift stands on the scale for five minutes.
    watch = LotWatch(DECL, Tolerance(persist_for=15 * MIN))
    for f in figures(T0).values():
        watch.observe(f)
    watch.observe(Figure(Source.LOAD_CELL, 4100, T0 + MIN))
    assert watch.evaluate(T0 + 2 * MIN)[1] == []
    watch.observe(Figure(Source.LOAD_CELL, 2541, T0 + 6 * MIN))
    _, findings = watch.evaluate(T0 + 30 * MIN)
    assert findings == []
    assert watch.disagree_since == {}


def test_a_persistent_count_disagreement_is_a_count_mismatch_with_every_figure() -> None:
    watch = LotWatch(DECL, Tolerance(persist_for=15 * MIN))
    for k in range(0, 30, 5):
        for f in figures(T0 + k * MIN, tags=70, labels=70, pallets=3, kg=1790).values():
            watch.observe(f)
        _, findings = watch.evaluate(T0 + k * MIN)
        if k < 15:
            assert findings == []
    families = {f.family for f in findings}
    assert families == {Family.COUNT, Family.WEIGHT}
    count = next(f for f in findings if f.family is Family.COUNT)
    assert count.alert_type is AlertType.COUNT_MISMATCH
    assert count.subject == "lot:LOT-1"
    assert count.since == T0
    text = count.explanation()
    for shown in ("receipt: 100 pieces", "rfid: 70 tags", "labels: 70 pieces",
                  "camera: 3 pallets", "load_cell: 1790 kg", T0.isoformat()):
        assert shown in text
    sources = {s["source"]: s for s in count.evidence()["sources"]}
    assert sources["rfid"]["value"] == 70 and sources["rfid"]["state"] == "disagrees"
    assert sources["rfid"]["at"] == (T0 + 25 * MIN).isoformat()


def test_weight_down_with_every_tag_present_says_goods_swapped() -> None:
    watch = LotWatch(DECL, Tolerance(persist_for=10 * MIN))
    for f in figures(T0, kg=1800).values():
        watch.observe(f)
    _, findings = watch.evaluate(T0 + 11 * MIN)
    assert [f.alert_type for f in findings] == [AlertType.WEIGHT_MISMATCH]
    assert "every tag is present" in findings[0].explanation()
    # The alert carries its message, so a Chinese console says it in Chinese.
    message = text_of(findings[0].evidence())
    assert message is not None and message.message_id == "integrity_weight.raise_swapped"
    zh = render(message.message_id, message.params, "zh")
    assert "调包" in zh and "LOT-1" in zh and "1800" in zh and "2540" in zh  # goods plus tare


def test_facts_arriving_out_of_order_keep_the_newest_figure() -> None:
    watch = LotWatch(DECL)
    watch.observe(Figure(Source.RFID, 100, T0 + 5 * MIN))
    watch.observe(Figure(Source.RFID, 40, T0))  # an outbox drained late
    assert watch.figures[Source.RFID].value == 100


def test_a_redeclared_lot_starts_its_disagreements_over() -> None:
    watch = LotWatch(DECL, Tolerance(persist_for=10 * MIN))
    for f in figures(T0, tags=50, labels=50, pallets=2, kg=1290).values():
        watch.observe(f)
    watch.evaluate(T0)
    # Half the lot was released: the receipt now claims 50 pieces, and the sources agree.
    watch.redeclare(Declaration("LOT-1", 50, 25.0, T0 + MIN, pallets=2, tare_kg=40.0))
    result, findings = watch.evaluate(T0 + 20 * MIN)
    assert findings == []
    assert result.state(Source.RECEIPT) is SourceState.AGREES
